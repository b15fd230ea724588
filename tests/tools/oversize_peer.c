/* oversize_peer.c - a hostile producer: binds an endpoint, waits for a
 * consumer to connect, sends it one frame over its size limit (by default
 * 256 MiB + 1 byte, one more than a Batch may be), and goes away. libzmq
 * 4.3 treats such a frame as a protocol error, and a socket that connected
 * never reconnects on its own: the test tool for wire_conn.
 *
 * --type push (a PULL consumer: gambar-train --in) or pub (SUB consumers:
 * gambar-dash --metrics, gambar-eval --follow, gambar-run's status line;
 * the frame starts with --topic so the subscription lets it through, and
 * it is sent once a subscription has arrived). The frame's memory is
 * calloc'd and handed to ZeroMQ without a copy, and the consumer refuses it
 * from its header, so even 256 MiB costs little. --hold-ms: how long to
 * stay bound after sending (the consumer has the frame by then). Prints
 * "sent BYTES" on stdout. Exit 0, 2 usage, 6 no consumer within --wait-ms
 * or a socket error. */
#include "base.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "wire.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static void free_buf(void *data, void *hint) {
    (void)hint;
    free(data);
}

int main(int argc, char **argv) {
    const char *out = NULL, *type = "push", *topic = "gambar.Metric";
    long long bytes = ((long long)256 << 20) + 1, wait = 10000, hold = 1000;
    const cli_opt_t opts[] = {
        {"out", 'o', CLI_STR, &out, "ENDPOINT", "endpoint to bind", NULL},
        {"type", 0, CLI_STR, &type, "push|pub", "socket type (default push)", NULL},
        {"bytes", 0, CLI_INT, &bytes, "N", "frame size (default 268435457)", NULL},
        {"topic", 0, CLI_STR, &topic, "PREFIX", "pub: first bytes of the frame (default gambar.Metric)", NULL},
        {"wait-ms", 0, CLI_INT, &wait, "MS", "wait this long for a consumer (default 10000)", NULL},
        {"hold-ms", 0, CLI_INT, &hold, "MS", "stay bound this long after sending (default 1000)", NULL},
    };
    const cli_spec_t spec = {"oversize_peer", "--out ENDPOINT [options]",
                             "Send one oversized frame to the first consumer (test tool).", opts,
                             (int)ARRAY_LEN(opts), NULL};
    cli_parse(&spec, argc, argv);
    if (!out) cli_usage_error(&spec, "--out is required");
    int pub = !strcmp(type, "pub");
    if (!pub && strcmp(type, "push")) cli_usage_error(&spec, "--type is push or pub");
    if (bytes < (long long)strlen(topic) || bytes <= 0) cli_usage_error(&spec, "--bytes too small");
    void *ctx = zmq_ctx_new(), *s = NULL;
    /* the limit only matters for what this socket receives */
    if (wire_open(ctx, pub ? ZMQ_XPUB : ZMQ_PUSH, out, 1, WIRE_MAX_SMALL_BYTES, 0, &s)) return GB_EXIT_PEER;
    int tmo = (int)wait;
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (pub) { /* a subscription message means a subscriber is there */
        char sub[256];
        if (zmq_recv(s, sub, sizeof sub, 0) < 0) {
            log_error("no subscriber on %s within %lld ms", out, wait);
            wire_close(&s);
            zmq_ctx_term(ctx);
            return GB_EXIT_PEER;
        }
    }
    char *buf = calloc(1, (size_t)bytes);
    if (!buf) {
        log_error("cannot allocate %lld bytes", bytes);
        return GB_EXIT_FAIL;
    }
    if (pub) memcpy(buf, topic, strlen(topic));
    zmq_msg_t m;
    zmq_msg_init_data(&m, buf, (size_t)bytes, free_buf, NULL);
    if (zmq_msg_send(&m, s, 0) < 0) { /* PUSH: blocks until a consumer connects */
        log_error("sending to %s: %s", out, zmq_strerror(zmq_errno()));
        zmq_msg_close(&m);
        wire_close(&s);
        zmq_ctx_term(ctx);
        return GB_EXIT_PEER;
    }
    printf("sent %lld\n", bytes);
    fflush(stdout);
    struct timespec ts = {hold / 1000, (hold % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    wire_close(&s);
    zmq_ctx_term(ctx);
    return 0;
}
