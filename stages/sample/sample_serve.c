/* sample_serve.c - gambar-sample --serve: images on request over ZeroMQ.
 *
 * One REP socket answers gambar.SampleRequest with gambar.SampleReply
 * (PNG files carrying the same provenance as the command line writes).
 * A REP socket must answer every request it has taken in or it stops
 * receiving, so every message wire_recv consumed gets a reply, even one it
 * dropped as garbage (wrong frame count, unknown type, undecodable
 * payload): then the reply is ok = false with the reason. A frame over
 * the size limit never reaches the socket (ZeroMQ drops the connection),
 * so there is nothing to answer. Requests are handled one at a time.
 * Without --follow the model is loaded once. With --follow DIR the
 * sampler serves the newest checkpoint of a training run: before each
 * request (and every FOLLOW_POLL_S while idle) it lists DIR, and when a
 * ckpt-STEP.gck of a higher step than the loaded one is there it loads it
 * aside and swaps it in only once it loaded and verified, so a request is
 * always answered by one whole model (the old one when the new file is
 * bad or was pruned meanwhile). The trainer renames a checkpoint into
 * place before it announces it, so a client that asks right after a
 * CheckpointReady gets that checkpoint (or a newer one; the reply's step
 * says which). SIGINT/SIGTERM end the loop between requests (the receive
 * wait is bounded so the flag is seen). A client may send refusable
 * requests without end, so the log lines about them are rate limited
 * (log_limit: the first few, then at powers of two, each naming how many
 * were suppressed) and counted in the summary at exit. */
#include "sample.h"

#include "base.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "sig.h"
#include "stream.pb-c.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <zmq.h>

#define SERVE_POLL_MS 200
#define FOLLOW_POLL_S 1.0

/* --follow: the folder watched and what was loaded from it */
typedef struct {
    const char *dir;        /* NULL: no following */
    char *path;             /* owned: the path c->path points to */
    uint64_t failed_step;   /* newest step that failed to load (not retried) */
    bool failed;
    bool said_waiting;      /* "no checkpoint yet" logged once */
} follow_t;

/* Parse "ckpt-<digits>.gck" (what ckpt_save writes) into *step. */
static bool ckpt_name_step(const char *name, uint64_t *step) {
    if (strncmp(name, "ckpt-", 5)) return false;
    const char *p = name + 5;
    size_t nd = 0;
    uint64_t v = 0;
    while (p[nd] >= '0' && p[nd] <= '9') {
        unsigned d = (unsigned)(p[nd] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
        nd++;
    }
    if (!nd || strcmp(p + nd, ".gck")) return false;
    *step = v;
    return true;
}

/* Load the newest checkpoint of f->dir when it is newer than c's (or c
 * holds none). c is replaced only by a model that loaded completely; *w
 * (the scratch, sized for c's generator) is remade with it. */
static void follow_check(follow_t *f, sctx_t *c, ginfer_ws_t **w) {
    DIR *d = opendir(f->dir);
    if (!d) {
        if (!f->said_waiting) log_info("--follow %s: %s; waiting for checkpoints", f->dir, strerror(errno));
        f->said_waiting = true;
        return;
    }
    uint64_t best = 0;
    bool any = false;
    char name[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t st;
        if (!ckpt_name_step(e->d_name, &st) || strlen(e->d_name) >= sizeof name) continue;
        if (!any || st > best) best = st, any = true, snprintf(name, sizeof name, "%s", e->d_name);
    }
    closedir(d);
    if (!any) {
        if (!f->said_waiting) log_info("--follow %s: no checkpoint yet; waiting", f->dir);
        f->said_waiting = true;
        return;
    }
    if ((c->gen && best <= c->step) || (f->failed && best == f->failed_step)) return;
    size_t len = strlen(f->dir) + strlen(name) + 2;
    char *path = xmalloc(len);
    snprintf(path, len, "%s/%s", f->dir, name);
    sctx_t nc;
    char err[1024];
    int rc = sctx_open(&nc, path, err, sizeof err);
    if (rc) {
        log_warn("%s; still serving %s", err, c->gen ? c->path : "nothing");
        f->failed = true;
        f->failed_step = best;
        free(path);
        return;
    }
    ginfer_ws_free(*w);
    sctx_close(c);
    free(f->path);
    *c = nc;
    f->path = path;
    f->failed = false;
    *w = ginfer_ws_new(c->gen, 64, 0);
    log_info("now serving %s (step %llu)", c->path, (unsigned long long)c->step);
}

static log_limit_t lim_refused, lim_send, lim_words;

static void reply_error(void *sock, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_error(void *sock, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    Gambar__SampleReply r = GAMBAR__SAMPLE_REPLY__INIT;
    r.ok = false;
    r.error = msg;
    log_info_limited(&lim_refused, "request refused: %s", msg);
    int rc = wire_send(sock, &r.base, 0);
    if (rc) log_warn_limited(&lim_send, "cannot send a reply: %s", err_str(rc));
}

/* Offset of the first byte of s that does not start a valid UTF-8
 * sequence, or strlen(s) when it is all valid. */
static size_t prompt_bad_utf8(const char *s) {
    size_t i = 0;
    while (s[i]) {
        int k = json_utf8_len((const unsigned char *)s + i);
        if (!k) return i;
        i += (size_t)k;
    }
    return i;
}

/* Build the reply for one request. Returns 0, or fills err. A text
 * model's warnings about the prompt go into a new *warn (the caller
 * frees it; NULL when there are none) and the log. */
static int handle(sctx_t *c, ginfer_ws_t *w, const Gambar__SampleRequest *rq, Gambar__SampleReply *rep,
                  ProtobufCBinaryData **pngs, size_t *npng, char **warn, char *err, size_t errlen) {
    int n = rq->n == 0 ? 1 : (int)rq->n;
    if (rq->n > SAMPLE_SERVE_MAX_N) {
        snprintf(err, errlen, "n = %u is out of range 1..%d", rq->n, SAMPLE_SERVE_MAX_N);
        return GB_EFORMAT;
    }
    double tr = rq->truncation;
    if (!isfinite(tr) || tr < 0 || (tr > 0 && tr < PROV_MIN_TRUNCATION)) {
        snprintf(err, errlen, "truncation %g is invalid: 0 (none) or >= %g", tr, PROV_MIN_TRUNCATION);
        return GB_EFORMAT;
    }
    job_t j;
    memset(&j, 0, sizeof j);
    j.mode = JOB_SEED;
    j.n = n;
    j.seed = rq->seed;
    j.truncation = (float)tr;
    j.class_index = -1;
    const char *cn = rq->class_name && *rq->class_name ? rq->class_name : NULL;
    const char *pr = rq->prompt && *rq->prompt ? rq->prompt : NULL;
    float *tb = NULL;
    if (cn && pr) {
        snprintf(err, errlen, "give prompt or class_name, not both");
        return GB_EFORMAT;
    }
    /* the text a text model is conditioned on: prompt, or class_name from
     * a client older than the prompt field */
    const char *text = pr ? pr : c->T ? cn : NULL;
    if (text) {
        const char *field = pr ? "prompt" : "class_name";
        size_t len = strlen(text), bad = prompt_bad_utf8(text);
        if (len > SAMPLE_SERVE_MAX_PROMPT) {
            snprintf(err, errlen, "%s is %zu bytes long: at most %d", field, len, SAMPLE_SERVE_MAX_PROMPT);
            return GB_EFORMAT;
        }
        if (bad < len) {
            snprintf(err, errlen, "%s is not valid UTF-8 (bad byte 0x%02x at offset %zu)", field,
                     (unsigned char)text[bad], bad);
            return GB_EFORMAT;
        }
    }
    if (c->T) {
        if (!text) {
            snprintf(err, errlen, "the model is text-conditional: put the text in prompt");
            return GB_EUNSUPPORTED;
        }
        j.prompt = text;
        int rc = job_encode(c, &j, &tb, err, errlen);
        if (rc) return rc;
        sample_warn_t *sw = xmalloc(sizeof *sw);
        sample_prompt_warnings(c, text, sw);
        size_t o = 0, cap = SAMPLE_WARN_LINES * sizeof sw->line[0] + 8;
        if (sw->n) *warn = xmalloc(cap);
        for (int i = 0; i < sw->n; i++) {
            log_warn_limited(&lim_words, "request: %s", sw->line[i]);
            o += (size_t)snprintf(*warn + o, cap - o, "%s%s", i ? "; " : "", sw->line[i]);
        }
        free(sw);
    } else if (pr) {
        int rc = sample_resolve_class(c, NULL, pr, &j.class_index, err, errlen);
        if (rc) return rc;
        j.prompt = pr;
    } else if (cn) {
        int rc = sample_resolve_class(c, cn, NULL, &j.class_index, err, errlen);
        if (rc == GB_ENOTFOUND) {
            /* not a name: maybe a prompt (a client older than the prompt
             * field); on failure keep the first reason, which lists the
             * known names */
            char e2[256];
            if (sample_resolve_class(c, NULL, cn, &j.class_index, e2, sizeof e2) == 0) {
                rc = 0;
                j.prompt = cn;
            }
        }
        if (rc) return rc;
    } else if (c->ncls && rq->class_index >= 0) {
        if (rq->class_index >= c->ncls) {
            snprintf(err, errlen, "class_index %d is out of range 0..%d", rq->class_index, c->ncls - 1);
            return GB_ENOTFOUND;
        }
        j.class_index = rq->class_index;
    } else if (!c->ncls && rq->class_index > 0) {
        snprintf(err, errlen, "class_index %d: the model is unconditional", rq->class_index);
        return GB_EUNSUPPORTED;
    }
    if (rq->grid) {
        j.cols = (int)ceil(sqrt((double)n));
        j.rows = (n + j.cols - 1) / j.cols;
    }
    char created[32];
    prov_now_iso8601(created, sizeof created);
    size_t P = ginfer_image_floats(c->gen);
    float *imgs = xmalloc((size_t)n * P * sizeof(float));
    for (int i0 = 0; i0 < n; i0 += 64) {
        int i1 = GB_MIN(n, i0 + 64);
        job_generate(c, &j, w, i0, i1, imgs + (size_t)i0 * P);
    }
    int count = rq->grid ? 1 : n, rc = 0;
    *pngs = xcalloc((size_t)count, sizeof **pngs);
    *npng = 0;
    uint8_t *px = xmalloc(P);
    for (int k = 0; k < count && !rc; k++) {
        img_t im;
        prov_t p;
        if (rq->grid) {
            job_grid(c, &j, imgs, &im);
            job_prov(c, &j, -1, created, &p);
        } else {
            ginfer_to_u8(imgs + (size_t)k * P, P, px);
            im = (img_t){(uint32_t)c->W, (uint32_t)c->H, (uint32_t)c->C, px};
            job_prov(c, &j, k, created, &p);
        }
        uint8_t *buf;
        size_t len;
        rc = sample_encode(&p, &im, 1, &buf, &len);
        prov_free(&p);
        if (rq->grid) img_free(&im);
        if (rc) {
            snprintf(err, errlen, "cannot encode PNG: %s", err_str(rc));
            break;
        }
        (*pngs)[k].data = buf;
        (*pngs)[k].len = len;
        (*npng)++;
    }
    free(px);
    free(imgs);
    free(tb);
    if (rc) return rc;
    rep->ok = true;
    rep->n_png = *npng;
    rep->png = *pngs;
    rep->checkpoint_digest.data = c->digest;
    rep->checkpoint_digest.len = 32;
    rep->step = c->step;
    if (*warn) rep->warning = *warn;
    return 0;
}

int sample_serve(sctx_t *c, const char *endpoint, const char *follow_dir) {
    void *zctx = zmq_ctx_new();
    void *sock = NULL;
    int rc = wire_open(zctx, ZMQ_REP, endpoint, 1, WIRE_MAX_SMALL_BYTES, 0, &sock);
    if (rc) {
        zmq_ctx_term(zctx);
        return rc;
    }
    sig_install();
    const ProtobufCMessageDescriptor *acc[] = {&gambar__sample_request__descriptor};
    wire_stats_t st;
    memset(&st, 0, sizeof st);
    ginfer_ws_t *w = c->gen ? ginfer_ws_new(c->gen, 64, 0) : NULL;
    follow_t fol = {.dir = follow_dir};
    uint64_t served = 0;
    if (c->gen) log_info("serving %s (step %llu) on %s", c->path, (unsigned long long)c->step, endpoint);
    if (follow_dir) {
        log_info("serving on %s the newest checkpoint in %s", endpoint, follow_dir);
        follow_check(&fol, c, &w);
    }
    double next_check = gb_now() + FOLLOW_POLL_S;
    while (!sig_stop_requested()) {
        wire_msg_t *msg = NULL;
        rc = wire_recv(sock, acc, 1, WIRE_MAX_SMALL_BYTES, SERVE_POLL_MS, &msg, &st);
        if (rc == EAGAIN || rc == GB_EINTR) {
            rc = 0;
            if (follow_dir && gb_now() >= next_check) {
                follow_check(&fol, c, &w);
                next_check = gb_now() + FOLLOW_POLL_S;
            }
            continue;
        }
        if (follow_dir && (rc == 0 || rc == GB_EPEER)) follow_check(&fol, c, &w);
        if (rc == GB_EPEER) {
            reply_error(sock, "malformed request: expected two frames [\"gambar.SampleRequest\"][payload] "
                              "with a decodable payload");
            rc = 0;
            continue;
        }
        if (rc) {
            log_error("receive on %s: %s", endpoint, err_str(rc));
            break;
        }
        Gambar__SampleReply rep = GAMBAR__SAMPLE_REPLY__INIT;
        ProtobufCBinaryData *pngs = NULL;
        size_t npng = 0;
        char err[2048], *warn = NULL;
        int hr = GB_ENOTFOUND;
        if (!c->gen) snprintf(err, sizeof err, "no checkpoint in %s yet", follow_dir);
        else hr = handle(c, w, (const Gambar__SampleRequest *)msg->msg, &rep, &pngs, &npng, &warn, err, sizeof err);
        if (hr) {
            reply_error(sock, "%s", err);
        } else {
            int sr = wire_send(sock, &rep.base, 0);
            if (sr) log_warn_limited(&lim_send, "cannot send a reply: %s", err_str(sr));
            else served++;
        }
        for (size_t k = 0; k < npng; k++) free(pngs[k].data);
        free(pngs);
        free(warn);
        wire_msg_destroy(&msg);
    }
    log_info("stopping: %llu requests served, %llu refused (%llu malformed), %llu replies not sent; "
             "%llu log lines about them suppressed",
             (unsigned long long)served, log_limit_seen(&lim_refused), (unsigned long long)wire_stats_dropped(&st),
             log_limit_seen(&lim_send), log_limit_suppressed(&lim_refused) + log_limit_suppressed(&lim_send));
    ginfer_ws_free(w);
    if (fol.path) {
        sctx_close(c); /* its path is ours */
        free(fol.path);
    }
    wire_close(&sock);
    zmq_ctx_term(zctx);
    return rc;
}
