/* metric_pub.c - publish made-up Metric and CheckpointReady messages on a
 * PUB socket, like gambar-train and gambar-eval do (test tool for
 * gambar-dash).
 *
 * Each step s publishes the trainer's figures (loss_d, loss_g, d_real,
 * d_fake, grad_norm_d, grad_norm_g, images_per_second,
 * dropped_messages_total) as smooth functions of s; every --eval-every
 * steps the evaluator's (fid, kid, precision, recall, class_kl, and
 * class_fraction with a "class" label for 3 classes) and a
 * CheckpointReady. --evil adds one metric whose labels hold quotes,
 * backslashes, a newline and invalid UTF-8, and one (evil_wide) with 8
 * labels of 127 quote characters; --garbage N sends N malformed
 * messages first (bad payload, three frames, unknown type). Binds by
 * default ('>' connects); waits --wait-ms for subscribers to join first.
 * Prints "published N" on stdout at the end. */
#include "base.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "sig.h"
#include "stream.pb-c.h"
#include "wire.h"

#include <inttypes.h>
#include <math.h>
#include <time.h>
#include <zmq.h>

static uint64_t published;

static void pub(void *s, const char *stage, const char *run, const char *name, double v, uint64_t step,
                const char *lk, const char *lv) {
    Gambar__Metric m = GAMBAR__METRIC__INIT;
    Gambar__Metric__LabelsEntry e = GAMBAR__METRIC__LABELS_ENTRY__INIT, *ep[1] = {&e};
    m.stage = (char *)stage;
    m.run = (char *)run;
    m.name = (char *)name;
    m.value = v;
    m.step = step;
    m.epoch = (uint32_t)(step / 100);
    m.wall_time = gb_wall();
    if (lk) {
        e.key = (char *)lk;
        e.value = (char *)lv;
        m.n_labels = 1;
        m.labels = ep;
    }
    if (wire_send(s, &m.base, 0) == 0) published++;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    const char *out = NULL, *run = "test-run";
    long long steps = 10, interval = 100, wait = 500, eval_every = 5, garbage = 0, start = 1, step_inc = 1;
    bool evil = false, forever = false;
    const cli_opt_t opts[] = {
        {"out", 'o', CLI_STR, &out, "ENDPOINT", "PUB endpoint (binds; '>' connects)", NULL},
        {"run", 0, CLI_STR, &run, "NAME", "run name in every metric (default test-run)", NULL},
        {"steps", 'n', CLI_INT, &steps, "N", "steps to publish (default 10)", NULL},
        {"start", 0, CLI_INT, &start, "S", "first step number (default 1)", NULL},
        {"step-inc", 0, CLI_INT, &step_inc, "K", "step number increment (default 1)", NULL},
        {"interval-ms", 0, CLI_INT, &interval, "MS", "pause between steps (default 100)", NULL},
        {"wait-ms", 0, CLI_INT, &wait, "MS", "wait for subscribers before publishing (default 500)", NULL},
        {"eval-every", 0, CLI_INT, &eval_every, "N", "eval metrics + checkpoint every N steps (default 5)", NULL},
        {"garbage", 0, CLI_INT, &garbage, "N", "send N malformed messages first", NULL},
        {"evil", 0, CLI_FLAG, &evil, NULL, "also publish a metric with hostile label values", NULL},
        {"forever", 0, CLI_FLAG, &forever, NULL, "keep publishing until SIGINT/SIGTERM", NULL},
    };
    const cli_spec_t spec = {"metric_pub", "--out ENDPOINT [options]", "Publish test metrics (test tool).", opts,
                             (int)ARRAY_LEN(opts), NULL};
    cli_parse(&spec, argc, argv);
    if (!out) cli_usage_error(&spec, "--out is required");
    if (eval_every < 1 || step_inc < 1) cli_usage_error(&spec, "--eval-every and --step-inc must be >= 1");
    sig_install();
    void *ctx = zmq_ctx_new(), *s = NULL;
    if (wire_open(ctx, ZMQ_PUB, out, 1, WIRE_MAX_SMALL_BYTES, 100000, &s)) return GB_EXIT_PEER;
    sleep_ms(wait);
    for (long long i = 0; i < garbage && !sig_stop_requested(); i++) {
        switch (i % 3) {
        case 0: wire_send_raw(s, "gambar.Metric", "\xff\xff\xff\xff\x0f", 5, 0); break;
        case 1: {
            zmq_send(s, "gambar.Metric", 13, ZMQ_SNDMORE);
            zmq_send(s, "x", 1, ZMQ_SNDMORE);
            zmq_send(s, "y", 1, 0);
            break;
        }
        default: wire_send_raw(s, "gambar.MetricX", "junk", 4, 0); break;
        }
    }
    static const char *const classes[] = {"T-shirt/top", "Trouser", "Bag"};
    for (long long i = 0; (forever || i < steps) && !sig_stop_requested(); i++) {
        uint64_t st = (uint64_t)(start + i * step_inc);
        double x = (double)st;
        pub(s, "train", run, "loss_d", 0.7 + 0.3 * exp(-x / 200.0) * cos(x / 7.0), st, NULL, NULL);
        pub(s, "train", run, "loss_g", 1.5 + 0.5 * sin(x / 11.0), st, NULL, NULL);
        pub(s, "train", run, "d_real", 0.6 + 0.2 * sin(x / 13.0), st, NULL, NULL);
        pub(s, "train", run, "d_fake", 0.4 - 0.2 * sin(x / 13.0), st, NULL, NULL);
        pub(s, "train", run, "grad_norm_d", 2.0 + sin(x / 5.0), st, NULL, NULL);
        pub(s, "train", run, "grad_norm_g", 3.0 + cos(x / 5.0), st, NULL, NULL);
        pub(s, "train", run, "images_per_second", 1000.0 + 50.0 * sin(x / 3.0), st, NULL, NULL);
        pub(s, "train", run, "dropped_messages_total", 0, st, NULL, NULL);
        if (evil && i == 0) pub(s, "train", run, "evil", 1.0, st, "what", "a\"b\\c\nd\xff\xfe e");
        if (evil && i == 0) { /* 8 labels of 127 bytes that all need escaping: the largest event */
            Gambar__Metric m = GAMBAR__METRIC__INIT;
            Gambar__Metric__LabelsEntry e[8], *ep[8];
            char keys[8][16], val[128];
            memset(val, '"', 127);
            val[127] = 0;
            for (int k = 0; k < 8; k++) {
                gambar__metric__labels_entry__init(&e[k]);
                snprintf(keys[k], sizeof keys[k], "k%d", k);
                e[k].key = keys[k];
                e[k].value = val;
                ep[k] = &e[k];
            }
            m.stage = (char *)"train";
            m.run = (char *)run;
            m.name = (char *)"evil_wide";
            m.value = 2.0;
            m.step = st;
            m.n_labels = 8;
            m.labels = ep;
            int rc = wire_send(s, &m.base, 0);
            if (rc == 0) published++;
            else log_warn("evil_wide not sent: %s", err_str(rc));
        }
        if ((i + 1) % eval_every == 0) {
            pub(s, "eval", run, "fid", 100.0 / (1.0 + x / 50.0), st, NULL, NULL);
            pub(s, "eval", run, "kid", 0.002 + 0.05 * exp(-x / 300.0), st, NULL, NULL);
            pub(s, "eval", run, "precision", 0.5 + 0.4 * (1.0 - exp(-x / 100.0)), st, NULL, NULL);
            pub(s, "eval", run, "recall", 0.3 + 0.5 * (1.0 - exp(-x / 150.0)), st, NULL, NULL);
            pub(s, "eval", run, "class_kl", 0.5 * exp(-x / 80.0), st, NULL, NULL);
            for (int c = 0; c < 3; c++)
                pub(s, "eval", run, "class_fraction", (c + 1 + sin(x + c)) / 6.0 / (1 + 0.0 * x), st, "class",
                    classes[c]);
            Gambar__CheckpointReady ck = GAMBAR__CHECKPOINT_READY__INIT;
            char path[256];
            snprintf(path, sizeof path, "/tmp/metric_pub/ckpt-%08" PRIu64 ".gbck", st);
            ck.path = path;
            ck.step = st;
            ck.epoch = (uint32_t)(st / 100);
            ck.run = (char *)run;
            if (wire_send(s, &ck.base, 0) == 0) published++;
        }
        if (interval > 0) sleep_ms(interval);
    }
    printf("published %" PRIu64 "\n", published);
    wire_close(&s);
    zmq_ctx_term(ctx);
    return 0;
}
