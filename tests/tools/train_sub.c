/* train_sub.c - subscribe to a stage's metrics PUB socket and print what
 * arrives, one line per message (test tool):
 *   metric NAME STEP EPOCH VALUE STAGE RUN
 *   ckpt STEP EPOCH PATH DIGESTHEX RUN
 * Connects by default ('@' binds). Stops after --timeout-ms without a
 * message, after --count messages, or once a CheckpointReady with
 * step >= --until-ckpt-step arrives. Exit 0 when at least one message was
 * received, 1 otherwise. */
#include "base.h"
#include "cli.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "sig.h"
#include "stream.pb-c.h"
#include "wire.h"
#include "wire_sec.h"

#include <errno.h>
#include <inttypes.h>
#include <zmq.h>

int main(int argc, char **argv) {
    const char *in = NULL;
    long long timeout = 5000, count = 0;
    uint64_t until = 0;
    bool until_seen = false;
    const cli_opt_t opts[] = {
        {"in", 'i', CLI_STR, &in, "ENDPOINT", "SUB endpoint (connects; '@' binds)", NULL},
        {"timeout-ms", 0, CLI_INT, &timeout, "MS", "give up after MS quiet milliseconds (default 5000)", NULL},
        {"count", 0, CLI_INT, &count, "N", "stop after N messages (0 = no limit)", NULL},
        {"until-ckpt-step", 0, CLI_U64, &until, "S", "stop after a CheckpointReady of step >= S", &until_seen},
        WIRE_SEC_CLI_OPTS,
    };
    const cli_spec_t spec = {"train_sub", "--in ENDPOINT [options]",
                             "Print the Metric and CheckpointReady messages a stage publishes (test tool).", opts,
                             (int)ARRAY_LEN(opts), NULL};
    cli_parse(&spec, argc, argv);
    wire_sec_init(&spec, (const char *const[]){in}, 1);
    if (!in) cli_usage_error(&spec, "--in is required");
    sig_install();
    void *ctx = zmq_ctx_new(), *sock = NULL;
    if (wire_open(ctx, ZMQ_SUB, in, 0, WIRE_MAX_SMALL_BYTES, 0, &sock)) return GB_EXIT_PEER;
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "gambar.Metric", 13);
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "gambar.CheckpointReady", 22);
    static const ProtobufCMessageDescriptor *const acc[] = {&gambar__metric__descriptor,
                                                            &gambar__checkpoint_ready__descriptor};
    wire_stats_t st = {0};
    long long got = 0;
    for (;;) {
        if (sig_stop_requested()) break;
        wire_msg_t *m = NULL;
        int rc = wire_recv(sock, acc, 2, WIRE_MAX_SMALL_BYTES, (int)timeout, &m, &st);
        if (rc == GB_EPEER || rc == GB_EINTR) continue;
        if (rc) break;
        got++;
        int stop = 0;
        if (m->desc == &gambar__metric__descriptor) {
            const Gambar__Metric *x = (const Gambar__Metric *)m->msg;
            printf("metric %s %" PRIu64 " %u %.9g %s %s", x->name, x->step, x->epoch, x->value, x->stage,
                   x->run[0] ? x->run : "-");
            for (size_t i = 0; i < x->n_labels; i++) printf(" %s=%s", x->labels[i]->key, x->labels[i]->value);
            printf("\n");
        } else {
            const Gambar__CheckpointReady *x = (const Gambar__CheckpointReady *)m->msg;
            char hex[DIGEST_HEX_LEN + 1] = "none";
            if (x->digest.len == DIGEST_LEN) digest_hex(x->digest.data, DIGEST_LEN, hex);
            printf("ckpt %" PRIu64 " %u %s %s %s\n", x->step, x->epoch, x->path, hex, x->run[0] ? x->run : "-");
            if (until_seen && x->step >= until) stop = 1;
        }
        fflush(stdout);
        wire_msg_destroy(&m);
        if (stop || (count > 0 && got >= count)) break;
    }
    wire_close(&sock);
    zmq_ctx_term(ctx);
    return got > 0 ? 0 : 1;
}
