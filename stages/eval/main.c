/* gambar-eval - how good, how fair and how original a generator is.
 *
 * Three modes:
 *   --fit-features          fit the feature classifier on a labelled dataset
 *   (default)               evaluate one checkpoint (--ckpt) or one set of
 *                           images held in a dataset (--samples-db)
 *   --follow ENDPOINT       SUBscribe to a trainer's PUB socket and evaluate
 *                           each checkpoint it announces, newest first
 * The dataset-wide state (feature network, real statistics) is set up
 * once (eval_feat.c); each evaluation (eval_run.c) then costs seconds.
 * Results go out as Metric messages, a JSON report and a model card
 * (eval_out.c). */
#include "eval.h"

#include "base.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "nn.h"
#include "sig.h"
#include "stream.pb-c.h"
#include "wire.h"
#include "wire_conn.h"
#include "wire_sec.h"

#include <errno.h>
#include <unistd.h>
#include <zmq.h>

static cli_spec_t g_spec;

/* one evaluation: run, publish, write the report and the card */
static int evaluate_one(eval_ctx_t *e, const char *ckpt, uint64_t announced_step) {
    const eval_opts_t *o = e->o;
    eval_result_t r;
    int status = eval_run(e, ckpt, o->samples_db, &r);
    if (status) return status;
    if (ckpt && announced_step && r.step != announced_step)
        log_warn("%s: announced step %llu but the file holds step %llu", ckpt, (unsigned long long)announced_step,
                 (unsigned long long)r.step);
    eval_publish(e, &r);
    if (o->json && eval_write_json(e, &r, o->json) != 0) status = GB_EXIT_IO;
    if (o->card && ckpt && eval_write_card(e, &r, ckpt) != 0) status = GB_EXIT_IO;
    /* the report says which pairs are missing, but an output asked for and
     * not written is an I/O failure, not a success */
    if (r.pairs_failed) status = GB_EXIT_IO;
    /* a short summary on stdout */
    printf("%s step %llu n %zu", r.source, (unsigned long long)r.step, r.n);
    for (int i = 0; i < r.nm; i++) printf(" %s %.6g", r.m[i].name, r.m[i].value);
    printf("\n");
    fflush(stdout);
    eval_result_free(&r);
    return status;
}

/* --follow: evaluate the newest announced checkpoint, skipping older ones
 * that queued up while an evaluation ran. */
static int follow(eval_ctx_t *e) {
    const eval_opts_t *o = e->o;
    wire_conn_t *sub = NULL;
    int rc = wire_conn_open(e->zctx, ZMQ_SUB, o->follow, 0, WIRE_MAX_SMALL_BYTES, 0, "--follow", &sub);
    if (rc) return GB_EXIT_PEER;
    wire_conn_subscribe(sub, "gambar.CheckpointReady");
    const ProtobufCMessageDescriptor *acc[] = {&gambar__checkpoint_ready__descriptor};
    wire_stats_t st = {0};
    long long done = 0;
    int status = 0;
    log_info("following %s", o->follow);
    while (!sig_stop_requested() && (o->follow_count <= 0 || done < o->follow_count)) {
        wire_msg_t *m = NULL;
        rc = wire_conn_recv(sub, acc, 1, WIRE_MAX_SMALL_BYTES, 500, &m, &st);
        if (rc == EAGAIN || rc == GB_EPEER || rc == GB_EINTR) continue;
        if (rc) {
            log_error("--follow %s: %s", o->follow, err_str(rc));
            status = GB_EXIT_PEER;
            break;
        }
        /* skip to the newest announcement already queued (100 ms grace so
         * a burst that is still arriving counts as queued) */
        wire_msg_t *next = NULL;
        int skipped = 0;
        while (wire_conn_recv(sub, acc, 1, WIRE_MAX_SMALL_BYTES, 100, &next, &st) == 0) {
            wire_msg_destroy(&m);
            m = next;
            next = NULL;
            skipped++;
        }
        const Gambar__CheckpointReady *cr = (const Gambar__CheckpointReady *)m->msg;
        if (skipped) log_info("skipped %d older checkpoint announcement(s)", skipped);
        log_info("evaluating %s (step %llu)", cr->path, (unsigned long long)cr->step);
        int s = evaluate_one(e, cr->path, cr->step);
        if (s) log_warn("evaluation of %s failed (exit status %d); waiting for the next checkpoint", cr->path, s);
        wire_msg_destroy(&m);
        done++;
    }
    if (wire_stats_dropped(&st)) log_warn("dropped %llu malformed messages", (unsigned long long)wire_stats_dropped(&st));
    wire_conn_close(&sub);
    return status;
}

int main(int argc, char **argv) {
    eval_opts_t o = {0};
    o.n = 10000;
    o.threads = 0;
    o.epochs = 4;
    o.mem_n = 2000;
    o.worst_n = 8;
    o.kid_subsets = 50;
    o.text_pairs = 500;
    o.seed = 1;
    o.run = "";
    const cli_opt_t opts[] = {
        {"ckpt", 'c', CLI_STR, &o.ckpt, "FILE", "checkpoint to evaluate", NULL},
        {"db", 'd', CLI_STR, &o.db, "PATH", "the training dataset (real data, provenance, class counts)", NULL},
        {"n", 'n', CLI_INT, &o.n, "N", "generated images to evaluate (default 10000)", NULL},
        {"features", 0, CLI_STR, &o.features, "FILE", "feature network file (default: cached per dataset)", NULL},
        {"metrics", 0, CLI_STR, &o.metrics, "ENDPOINT", "PUB Metric messages here (binds; '>' connects)", NULL},
        {"json", 0, CLI_STR, &o.json, "FILE", "write the full report as JSON (atomic)", NULL},
        {"card", 0, CLI_FLAG, &o.card, NULL, "write the model card <ckpt>.card.md", NULL},
        {"test-db", 0, CLI_STR, &o.test_db, "PATH", "held-out real data: classifier accuracy", NULL},
        {"seed", 's', CLI_U64, &o.seed, "S", "seed for latents and subsets (default 1)", NULL},
        {"threads", 'j', CLI_INT, &o.threads, "N", "compute threads (default: all cores)", NULL},
        {"follow", 0, CLI_STR, &o.follow, "ENDPOINT", "evaluate each CheckpointReady from this PUB socket", NULL},
        {"follow-count", 0, CLI_INT, &o.follow_count, "N", "with --follow: stop after N evaluations", NULL},
        {"fit-features", 0, CLI_FLAG, &o.fit_features, NULL, "fit the feature network on --db, write --out", NULL},
        {"out", 'o', CLI_STR, &o.out, "FILE", "with --fit-features: output file (default: the cache name)", NULL},
        {"epochs", 0, CLI_INT, &o.epochs, "N", "feature network epochs (default 4)", NULL},
        {"samples-db", 0, CLI_STR, &o.samples_db, "PATH", "evaluate this dataset's images instead of a generator",
         NULL},
        {"mem-n", 0, CLI_INT, &o.mem_n, "N", "generated images in the pixel-space memorisation audit (2000)", NULL},
        {"worst", 0, CLI_STR, &o.worst_dir, "DIR", "write the closest pairs as PNGs here (default <ckpt>.nearest)",
         NULL},
        {"worst-n", 0, CLI_INT, &o.worst_n, "N", "closest pairs to write (default 8, 0 = none)", NULL},
        {"kid-subsets", 0, CLI_INT, &o.kid_subsets, "N", "KID subsets of up to 1000 images (default 50)", NULL},
        {"cache-dir", 0, CLI_STR, &o.cache_dir, "DIR", "cache folder (default: the dataset folder)", NULL},
        {"no-cache", 0, CLI_FLAG, &o.no_cache, NULL, "recompute real statistics, do not write them", NULL},
        {"run", 0, CLI_STR, &o.run, "NAME", "run name put in Metric messages", NULL},
        {"captions-db", 0, CLI_STR, &o.captions_db, "PATH",
         "text models: captioned held-out data whose captions are the prompts (default: --test-db, else --db)",
         NULL},
        {"caption-thresholds", 0, CLI_STR, &o.caption_thresholds, "FILE",
         "text models: attribute cut points from this captions file's header (default: terciles of --db)", NULL},
        {"text-pairs", 0, CLI_INT, &o.text_pairs, "N",
         "text models: prompts whose attribute words are swapped for the direction figure (default 500)", NULL},
        WIRE_SEC_CLI_OPTS,
    };
    g_spec = (cli_spec_t){PROG,
                          "--db PATH (--ckpt FILE | --samples-db PATH | --follow ENDPOINT | --fit-features) [options]",
                          "Evaluate a generator against its training data: FID, KID, precision/recall in the "
                          "feature space of a classifier fitted on the data, a bias audit (class balance), a "
                          "memorisation audit (nearest training images) and a model card. A text-conditional "
                          "model is prompted with held-out captions and also gets a text-image agreement audit "
                          "(class and attribute words checked on its images, with the real-data ceiling).",
                          opts, (int)ARRAY_LEN(opts),
                          "Bad data (exit 3) includes a corrupt or mismatched checkpoint, unlabelled data "
                          "where labels are needed, and a text-conditional checkpoint with a captions dataset "
                          "without captions."};
    int first = cli_parse(&g_spec, argc, argv);
    if (first < argc) cli_usage_error(&g_spec, "unexpected argument '%s'", argv[first]);
    if (!o.db) cli_usage_error(&g_spec, "--db PATH is required");
    wire_sec_init(&g_spec, (const char *const[]){o.metrics, o.follow}, 2);
    int modes = (o.ckpt != NULL) + (o.samples_db != NULL) + (o.follow != NULL) + o.fit_features;
    if (modes != 1)
        cli_usage_error(&g_spec, "give exactly one of --ckpt, --samples-db, --follow, --fit-features");
    if (o.n < 10 || o.n > 1000000) cli_usage_error(&g_spec, "--n must be 10..1000000");
    if (o.epochs < 1 || o.epochs > 1000) cli_usage_error(&g_spec, "--epochs must be 1..1000");
    if (o.mem_n < 0 || o.worst_n < 0 || o.worst_n > 1000) cli_usage_error(&g_spec, "--mem-n/--worst-n out of range");
    if (o.kid_subsets < 1 || o.kid_subsets > 10000) cli_usage_error(&g_spec, "--kid-subsets must be 1..10000");
    if (o.threads < 0 || o.threads > 1024) cli_usage_error(&g_spec, "--threads must be 0..1024");
    if (o.text_pairs < 0 || o.text_pairs > 1000000) cli_usage_error(&g_spec, "--text-pairs must be 0..1000000");
    if ((o.captions_db || o.caption_thresholds) && (o.samples_db || o.fit_features))
        cli_usage_error(&g_spec, "--captions-db and --caption-thresholds are for text-conditional checkpoints "
                                 "(--ckpt or --follow)");
    if (o.card && !o.ckpt && !o.follow) cli_usage_error(&g_spec, "--card needs --ckpt or --follow");
    if (o.out && !o.fit_features) cli_usage_error(&g_spec, "--out is for --fit-features");
    nn_set_threads((int)o.threads);
    sig_install();
    if (o.fit_features) return eval_fit_features_cmd(&o);

    eval_ctx_t e;
    int status = eval_ctx_open(&e, &o);
    if (status) {
        eval_ctx_close(&e);
        return status;
    }
    if (o.metrics || o.follow) e.zctx = zmq_ctx_new();
    if (o.metrics) {
        if (wire_open(e.zctx, ZMQ_PUB, o.metrics, 1, WIRE_MAX_SMALL_BYTES, 10000, &e.pub) != 0) {
            eval_ctx_close(&e);
            return GB_EXIT_PEER;
        }
        if (!o.follow) usleep(300 * 1000); /* let subscribers join before the one-shot results */
    }
    if (o.follow) status = follow(&e);
    else status = evaluate_one(&e, o.ckpt, 0);
    if (status == 0 && sig_stop_requested() && !o.follow) status = GB_EXIT_INTERRUPTED;
    wire_close(&e.pub);
    void *ctx = e.zctx;
    eval_ctx_close(&e);
    if (ctx) zmq_ctx_term(ctx);
    return status;
}
