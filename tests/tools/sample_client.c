/* sample_client - a client for gambar-sample --serve (tests and manual
 * use). Sends one SampleRequest (or, with --garbage, a malformed message)
 * on a REQ socket and waits for the reply. Usage:
 *   sample_client ENDPOINT [--n N] [--seed S] [--class NAME]
 *                 [--prompt TEXT] [--class-index I] [--truncation X] [--grid]
 *                 [--garbage bytes|type|frames|payload] [--out DIR]
 *                 [--timeout MS] [--repeat K]
 * ENDPOINT connects by default (">" implied). Prints "ok N png(s), step
 * K, digest HEX" (and "warning: TEXT" when the reply has one) or
 * "error: TEXT" on stdout; with --out writes the PNGs
 * as DIR/reply-<i>.png. Exit 0 for an ok reply, 3 for an error reply,
 * 6 when no reply came within the timeout (default 10000 ms), 2 usage.
 * --repeat K sends the request K times, one after the other (a flood);
 * the output and exit status are the last reply's, or 6 at the first
 * missing reply. */
#include "base.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "stream.pb-c.h"
#include "wire.h"

#include <errno.h>
#include <sys/stat.h>
#include <zmq.h>

static _Noreturn void usage(const char *m) {
    fprintf(stderr, "sample_client: %s\nusage: sample_client ENDPOINT [--n N] [--seed S] [--class NAME] "
                    "[--prompt TEXT] [--class-index I] [--truncation X] [--grid] [--garbage KIND] [--out DIR] [--timeout MS] "
                    "[--repeat K]\n",
            m);
    exit(GB_EXIT_USAGE);
}

/* Send one request (or garbage) on s and wait for the reply; print it
 * when print. Returns the exit status for it. */
static int exchange(void *s, const Gambar__SampleRequest *rq_, const char *garbage, const char *out, int timeout,
                    bool print) {
    Gambar__SampleRequest rq = *rq_;
    int rc;
    if (!garbage) rc = wire_send(s, &rq.base, 0);
    else if (!strcmp(garbage, "bytes")) rc = zmq_send(s, "\x01\x02garbage", 9, 0) < 0 ? zmq_errno() : 0;
    else if (!strcmp(garbage, "type")) rc = wire_send_raw(s, "gambar.Heartbeat", "", 0, 0);
    else if (!strcmp(garbage, "payload")) rc = wire_send_raw(s, "gambar.SampleRequest", "\xff\xff\xff\xff", 4, 0);
    else if (!strcmp(garbage, "frames")) {
        zmq_send(s, "gambar.SampleRequest", 20, ZMQ_SNDMORE);
        zmq_send(s, "", 0, ZMQ_SNDMORE);
        rc = zmq_send(s, "x", 1, 0) < 0 ? zmq_errno() : 0;
    } else usage("--garbage: bytes, type, payload or frames");
    if (rc) {
        fprintf(stderr, "sample_client: send: %s\n", err_str(rc));
        return GB_EXIT_PEER;
    }
    const ProtobufCMessageDescriptor *acc[] = {&gambar__sample_reply__descriptor};
    wire_stats_t st;
    memset(&st, 0, sizeof st);
    wire_msg_t *m = NULL;
    rc = wire_recv(s, acc, 1, WIRE_MAX_BATCH_BYTES, timeout, &m, &st);
    int status = 0;
    if (rc == EAGAIN) {
        if (print) printf("timeout: no reply within %d ms\n", timeout);
        status = GB_EXIT_PEER;
    } else if (rc) {
        if (print) printf("bad reply: %s\n", err_str(rc));
        status = GB_EXIT_PEER;
    } else {
        const Gambar__SampleReply *r = (const Gambar__SampleReply *)m->msg;
        if (!r->ok) {
            if (print) printf("error: %s\n", r->error ? r->error : "");
            status = GB_EXIT_DATA;
        } else {
            char hex[65] = "";
            if (r->checkpoint_digest.len == 32) digest_hex(r->checkpoint_digest.data, 32, hex);
            if (print) printf("ok %zu png(s), step %llu, digest %s\n", r->n_png, (unsigned long long)r->step, hex);
            if (print && r->warning && *r->warning) printf("warning: %s\n", r->warning);
            if (out) {
                mkdir(out, 0755);
                for (size_t i = 0; i < r->n_png; i++) {
                    char path[4096];
                    snprintf(path, sizeof path, "%s/reply-%zu.png", out, i);
                    FILE *f = fopen(path, "wb");
                    if (!f || fwrite(r->png[i].data, 1, r->png[i].len, f) != r->png[i].len) status = GB_EXIT_IO;
                    if (f) fclose(f);
                }
            }
        }
        wire_msg_destroy(&m);
    }
    return status;
}

int main(int argc, char **argv) {
    log_init("sample_client");
    if (argc < 2 || argv[1][0] == '-') usage("missing ENDPOINT");
    const char *ep = argv[1], *garbage = NULL, *out = NULL;
    Gambar__SampleRequest rq = GAMBAR__SAMPLE_REQUEST__INIT;
    rq.class_index = -1;
    int timeout = 10000;
    long repeat = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--grid")) { rq.grid = true; continue; }
        if (i + 1 >= argc) usage("option needs a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--n")) rq.n = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seed")) rq.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--class")) rq.class_name = (char *)v;
        else if (!strcmp(a, "--prompt")) rq.prompt = (char *)v;
        else if (!strcmp(a, "--class-index")) rq.class_index = atoi(v);
        else if (!strcmp(a, "--truncation")) rq.truncation = strtof(v, NULL);
        else if (!strcmp(a, "--garbage")) garbage = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--timeout")) timeout = atoi(v);
        else if (!strcmp(a, "--repeat")) repeat = atol(v);
        else usage("unknown option");
    }
    void *ctx = zmq_ctx_new();
    void *s = NULL;
    int rc = wire_open(ctx, ZMQ_REQ, ep, 0, WIRE_MAX_BATCH_BYTES, 0, &s);
    if (rc) return GB_EXIT_PEER;
    int status = 0;
    for (long k = 0; k < repeat && status != GB_EXIT_PEER; k++)
        status = exchange(s, &rq, garbage, out, timeout, k == repeat - 1);
    wire_close(&s);
    zmq_ctx_term(ctx);
    return status;
}
