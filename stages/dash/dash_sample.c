/* dash_sample.c - gambar-dash's client for a sampler's serve socket.
 *
 * A REQ socket is strict: after a request it must get the reply before it
 * may send again, and a sampler that died never replies. So each request
 * waits at most the timeout, and on a timeout the socket is closed and a
 * new one made for the next request (the "lazy pirate" pattern). Requests
 * from the HTTP threads are serialised by a mutex: a sampler answers one
 * at a time anyway. */
#include "dash.h"

#include "err.h"
#include "log.h"
#include "wire.h"

#include <errno.h>
#include <zmq.h>

#define SAMPLE_MAX_REPLY ((size_t)64 << 20)

struct dash_sample {
    pthread_mutex_t mu;
    void *zctx;
    char *ep;          /* NULL: no sampler */
    int timeout_ms;
    void *sock;        /* NULL until needed, and after a timeout */
};

dash_sample_t *dash_sample_new(void *zctx, const char *endpoint, int timeout_ms) {
    dash_sample_t *d = xcalloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    d->zctx = zctx;
    d->ep = endpoint ? xstrdup(endpoint) : NULL;
    d->timeout_ms = timeout_ms;
    return d;
}

void dash_sample_destroy(dash_sample_t **pd) {
    dash_sample_t *d = *pd;
    if (!d) return;
    wire_close(&d->sock);
    free(d->ep);
    pthread_mutex_destroy(&d->mu);
    free(d);
    *pd = NULL;
}

int dash_sample_get(dash_sample_t *d, const char *class_name, uint64_t seed, unsigned n, bool grid, void **png,
                    size_t *pnglen, char *err, size_t errlen) {
    return dash_sample_get_step(d, class_name, seed, n, grid, png, pnglen, NULL, err, errlen);
}

int dash_sample_get_step(dash_sample_t *d, const char *class_name, uint64_t seed, unsigned n, bool grid,
                         void **png, size_t *pnglen, uint64_t *step, char *err, size_t errlen) {
    dash_sample_req_t rq = {class_name, NULL, seed, n, grid};
    dash_sample_rep_t rep;
    int rc = dash_sample_ask(d, &rq, &rep, err, errlen);
    if (rc) return rc;
    *png = rep.png;
    *pnglen = rep.len;
    if (step) *step = rep.step;
    return 0;
}

int dash_sample_ask(dash_sample_t *d, const dash_sample_req_t *q, dash_sample_rep_t *out, char *err,
                    size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!d || !d->ep) {
        snprintf(err, errlen, "no sampler configured (start gambar-dash with --sample ENDPOINT)");
        return GB_ENOTFOUND;
    }
    pthread_mutex_lock(&d->mu);
    int rc = 0;
    wire_msg_t *m = NULL;
    if (!d->sock) {
        rc = wire_open(d->zctx, ZMQ_REQ, d->ep, 0, SAMPLE_MAX_REPLY, 0, &d->sock);
        if (rc) {
            snprintf(err, errlen, "sampler %s: cannot connect: %s", d->ep, err_str(rc));
            goto done;
        }
    }
    Gambar__SampleRequest rq = GAMBAR__SAMPLE_REQUEST__INIT;
    rq.n = q->n;
    rq.seed = q->seed;
    rq.class_name = (char *)(q->class_name ? q->class_name : "");
    rq.prompt = (char *)(q->prompt ? q->prompt : "");
    rq.class_index = -1;
    rq.grid = q->grid;
    rc = wire_send(d->sock, &rq.base, ZMQ_DONTWAIT);
    if (rc) {
        snprintf(err, errlen, "sampler %s: cannot send the request: %s", d->ep, err_str(rc));
        wire_close(&d->sock);
        if (rc == EAGAIN) snprintf(err, errlen, "sampler %s is not connected", d->ep);
        goto done;
    }
    static const ProtobufCMessageDescriptor *const acc[] = {&gambar__sample_reply__descriptor};
    wire_stats_t st = {0};
    rc = wire_recv(d->sock, acc, 1, SAMPLE_MAX_REPLY, d->timeout_ms, &m, &st);
    if (rc == EAGAIN || rc == GB_EINTR) {
        snprintf(err, errlen, "sampler %s did not answer within %d ms", d->ep, d->timeout_ms);
        log_warn("%s; reconnecting", err);
        wire_close(&d->sock); /* a REQ socket without its reply is stuck */
        rc = EAGAIN;
        goto done;
    }
    if (rc) {
        snprintf(err, errlen, "sampler %s: bad reply: %s", d->ep, err_str(rc));
        if (rc != GB_EPEER) wire_close(&d->sock);
        rc = GB_EPEER;
        goto done;
    }
    const Gambar__SampleReply *rep = (const Gambar__SampleReply *)m->msg;
    if (!rep->ok) {
        snprintf(err, errlen, "sampler refused: %s", rep->error ? rep->error : "(no reason given)");
        rc = GB_EFORMAT;
        goto done;
    }
    if (rep->n_png == 0 || rep->png[0].len == 0) {
        snprintf(err, errlen, "sampler %s: reply holds no image", d->ep);
        rc = GB_EPEER;
        goto done;
    }
    out->png = xmalloc(rep->png[0].len);
    memcpy(out->png, rep->png[0].data, rep->png[0].len);
    out->len = rep->png[0].len;
    out->step = rep->step;
    snprintf(out->warning, sizeof out->warning, "%s", rep->warning ? rep->warning : "");
done:
    wire_msg_destroy(&m);
    pthread_mutex_unlock(&d->mu);
    return rc;
}
