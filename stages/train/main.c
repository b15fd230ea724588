/* gambar-train - train a GAN on a stream of Batch messages, with
 * checkpoints that resume bit-exactly.
 *
 * Shape of the program: a PULL socket brings Batch/EndOfStream messages, a
 * PUB socket publishes Metric and CheckpointReady, and one loop receives,
 * checks, orders and trains. Everything that decides the weights is a pure
 * function of the checkpointed state and the batch stream:
 *   - the model holds no random state; z and fake labels for step s come
 *     from rng_derive(seed, s, 0x7a, 0, 0), so a resumed run draws the same
 *     noise without replaying the generator;
 *   - batch seq k is trained at exactly one step: the loop consumes seqs
 *     in order, starting at the checkpoint's next_batch_seq (0 for a new
 *     run). Early batches (seq below the one expected: a producer started
 *     too early) are dropped and counted; later ones are held in a small
 *     reorder window (several producers' shards interleave), and what falls
 *     outside the window is dropped and counted.
 * An orchestrator asks `gambar-train --print-start-batch --ckpt-dir D` for
 * the seq to start its producers at, so the normal pipeline never drops.
 *
 * Failure policy: outside input never crashes the trainer (train_batch.c);
 * NaN/Inf stops it (exit 5) without writing a checkpoint; SIGINT/SIGTERM
 * finish the current step, checkpoint and exit 0; SIGKILL loses at most
 * the steps since the last checkpoint (files are written atomically). */
#include "base.h"
#include "ckpt.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "model.h"
#include "modelck.h"
#include "nn.h"
#include "rng.h"
#include "sig.h"
#include "train.h"
#include "wire.h"
#include "wire_conn.h"
#include "wire_sec.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sys/resource.h>
#include <zmq.h>

#define TRAIN_Z_STREAM 0x7a /* rng_derive coordinate of the z/label stream */
/* Batches libzmq may queue for us per producer (ZMQ_RCVHWM). Each queued
 * f32 batch of 64 is 200 KB of our RSS, but do not lower it: with 2, a
 * producer that sends its last batches and exits (batch_source, even with
 * a 30 s linger) lost them in libzmq 4.3.4 and the trainer waited forever
 * (t_dash_train.sh). */
#define TRAIN_RCVHWM 8

typedef struct {
    const char *in, *model, *ckpt_dir, *init_from, *metrics, *loss, *conditional, *run, *db;
    long long steps, epochs, ckpt_every, keep, log_every, threads, width, embed_dim, producers, window, window_mb;
    long long micro; /* --micro-batches M */
    uint64_t seed;
    double lr_g, lr_d, beta1, beta2, ema;
    double gan_int; /* --gan-int W: GAN-INT weight of a text run (0 = off) */
    double contrast; /* --contrastive W: weight of a text run's contrastive terms (0 = off) */
    double mode_seek; /* --mode-seek W: weight of a text run's mode-seeking term (0 = off) */
    double aux_class; /* --aux-class W: weight of a text run's auxiliary classifier terms (0 = off) */
    long long text_window; /* --text-window P: the encoder's word-pair window (new text runs) */
    const char *text_grad; /* --text-grad d|dg: which losses train the text encoder */
    double lr_text;        /* --lr-text X: the text encoder's Adam learning rate */
    double text_g;         /* --text-grad-g W: weight of G's gradient in the encoder's step (dg) */
    double text_gain;      /* --text-gain X: G's text projection's initial scale */
    bool resume, print_start, fresh_if_damaged;
    bool seen_steps, seen_epochs, seen_lr_g, seen_lr_d, seen_beta1, seen_beta2, seen_ema, seen_width, seen_embed_dim,
        seen_loss, seen_model, seen_seed, seen_threads, seen_micro, seen_gan_int,
        seen_contrast, seen_mode_seek, seen_aux_class, seen_text_window, seen_text_grad, seen_text_g, seen_lr_text,
        seen_text_gain;
} opts_t;

typedef struct {
    opts_t o;
    void *ctx, *pub;
    wire_conn_t *pull; /* --in: comes back after a peer broke the protocol */
    model_t *m;
    model_desc_t want;         /* description for a model built on the first batch */
    Gambar__Checkpoint *init;  /* --init-from checkpoint until the model exists */
    train_db_t db;             /* class names and provenance notes (--db, or the resumed checkpoint's) */
    train_pos_t pos;
    train_expect_t ex;
    uint32_t fam_h, fam_w;     /* image size the model family needs */
    drop_stats_t drops;
    wire_msg_t **held;         /* reorder window, indexed by seq % window */
    uint32_t nheld;
    uint64_t held_bytes;       /* payload bytes of the held batches */
    int eos;                   /* EndOfStream messages received */
    float *real, *z;
    int32_t *labels, *fake_labels;
    int cap;                   /* batch capacity of the buffers */
    uint64_t saved_step;       /* step of the newest checkpoint on disk */
    int have_saved;
    char saved_path[PATH_MAX];
    uint64_t log_step;         /* step of the last progress line */
    double log_t, t_start, wall0;
    uint64_t log_images;
    model_stats_t last;
    char *cmdline;
    uint64_t trained;          /* steps trained by this process */
    int model_sent;            /* MPI: the other ranks hold the current model */
    int text;                  /* a text-conditional run (--conditional text, or resumed from one) */
    train_text_t tt;           /* its text encoder and buffers */
    char **vocab;              /* a new text run: the vocabulary from --db until the encoder exists */
    int n_vocab;
} trainer_t;


/* ---- metrics ------------------------------------------------------------ */

static void pub_metric(trainer_t *t, const char *name, double value) {
    if (!t->pub) return;
    Gambar__Metric mm = GAMBAR__METRIC__INIT;
    mm.stage = "train";
    mm.run = (char *)(t->o.run ? t->o.run : "");
    mm.name = (char *)name;
    mm.value = value;
    mm.step = t->pos.step;
    mm.epoch = t->pos.epoch;
    mm.wall_time = gb_wall();
    int rc = wire_send(t->pub, &mm.base, ZMQ_DONTWAIT);
    if (rc && rc != EAGAIN) log_debug("metric %s not sent: %s", name, err_str(rc));
}

static void log_progress(trainer_t *t) {
    double now = gb_now();
    double dt = now - t->log_t;
    double ips = dt > 0 ? (double)t->log_images / dt : 0;
    const model_stats_t *s = &t->last;
    log_info("step %" PRIu64 " epoch %u: loss_d %.4f loss_g %.4f D(x) %.3f D(G(z)) %.3f |g_d| %.3g |g_g| %.3g, "
             "%.0f img/s, dropped %" PRIu64,
             t->pos.step, t->pos.epoch, (double)s->loss_d, (double)s->loss_g, (double)s->d_real,
             (double)s->d_fake, (double)s->grad_norm_d, (double)s->grad_norm_g, ips, drop_total(&t->drops));
    pub_metric(t, "loss_d", s->loss_d);
    pub_metric(t, "loss_g", s->loss_g);
    pub_metric(t, "d_real", s->d_real);
    pub_metric(t, "d_fake", s->d_fake);
    pub_metric(t, "grad_norm_d", s->grad_norm_d);
    pub_metric(t, "grad_norm_g", s->grad_norm_g);
    if (t->text) {
        log_info("step %" PRIu64 ": D(x, mismatched caption) %.3f (D(x, its caption) %.3f)", t->pos.step,
                 (double)s->d_mismatch, (double)s->d_real);
        pub_metric(t, "d_mismatch", s->d_mismatch);
        if (model_text_aux(t->m) > 0) {
            log_info("step %" PRIu64 ": auxiliary classifier cross-entropy: real %.3f, fakes against their "
                     "captions' classes %.3f", t->pos.step, (double)s->aux_real, (double)s->aux_fake);
            pub_metric(t, "aux_ce_real", s->aux_real);
            pub_metric(t, "aux_ce_fake", s->aux_fake);
        }
    }
    pub_metric(t, "images_per_second", ips);
    pub_metric(t, "dropped_messages_total", (double)drop_total(&t->drops));
    t->log_t = now;
    t->log_images = 0;
    t->log_step = t->pos.step;
}

/* ---- checkpoints ---------------------------------------------------------- */

/* Save now. Returns 0, or an rc (fatal: the caller stops). */
static int save_now(trainer_t *t) {
    char path[PATH_MAX];
    uint8_t dig[DIGEST_LEN];
    t->pos.wall_trained += gb_now() - t->t_start;
    t->t_start = gb_now();
    t->pos.command_line = t->cmdline;
    t->pos.threads = nn_get_threads();
    t->pos.max_batch = model_max_batch(t->m);
    t->pos.micro_batches = (int)t->o.micro;
    t->pos.db = &t->db;
    t->pos.tenc = t->text ? t->tt.enc : NULL;
    t->pos.text_pool = t->tt.vec;
    t->pos.n_pool = t->text ? t->tt.n_last : 0;
    t->pos.gan_int = t->text ? model_text_interp(t->m) : 0;
    t->pos.contrast = t->text ? model_text_contrast(t->m) : 0;
    t->pos.mode_seek = t->text ? model_text_modeseek(t->m) : 0;
    t->pos.aux_class = t->text ? model_text_aux(t->m) : 0;
    t->pos.text_from_g = t->text ? t->tt.from_g : 0;
    t->pos.text_g_weight = t->text ? t->tt.g_weight : 1;
    int rc = train_ckpt_save(t->o.ckpt_dir, (int)t->o.keep, t->m, &t->pos, path, sizeof path, dig);
    if (rc) {
        log_error("checkpoint at step %" PRIu64 " not written: %s", t->pos.step, err_str(rc));
        return rc;
    }
    char abs[PATH_MAX];
    if (!realpath(path, abs)) snprintf(abs, sizeof abs, "%s", path);
    snprintf(t->saved_path, sizeof t->saved_path, "%s", abs);
    t->saved_step = t->pos.step;
    t->have_saved = 1;
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(dig, DIGEST_LEN, hex);
    log_info("checkpoint %s (step %" PRIu64 ", next batch %" PRIu64 ", sha256 %.16s...)", abs, t->pos.step,
             t->pos.next_seq, hex);
    if (t->pub) {
        Gambar__CheckpointReady cr = GAMBAR__CHECKPOINT_READY__INIT;
        cr.path = abs;
        cr.step = t->pos.step;
        cr.digest.data = dig;
        cr.digest.len = DIGEST_LEN;
        cr.epoch = t->pos.epoch;
        cr.run = (char *)(t->o.run ? t->o.run : "");
        int r2 = wire_send(t->pub, &cr.base, ZMQ_DONTWAIT);
        if (r2 && r2 != EAGAIN) log_warn("CheckpointReady not sent: %s", err_str(r2));
    }
    return 0;
}

/* ---- model set-up ----------------------------------------------------------- */

static void ensure_buffers(trainer_t *t, int n) {
    if (n <= t->cap) return;
    free(t->real);
    free(t->z);
    free(t->labels);
    free(t->fake_labels);
    size_t img = (size_t)t->ex.c * t->ex.h * t->ex.w;
    const model_desc_t *d = model_desc(t->m);
    t->real = gb_xmalloc_aligned((size_t)n * img * sizeof(float));
    t->z = gb_xmalloc_aligned((size_t)n * (size_t)d->z_dim * sizeof(float));
    t->labels = xmalloc(sizeof(int32_t) * (size_t)n);
    t->fake_labels = xmalloc(sizeof(int32_t) * (size_t)n);
    t->cap = n;
}

/* Apply the optimiser/EMA options to the live model; on a resumed run only
 * those given explicitly. */
static void apply_hyper(trainer_t *t, int resumed) {
    adam_t *ag = model_adam(t->m, MODEL_G), *ad = model_adam(t->m, MODEL_D);
    const opts_t *o = &t->o;
    if (!resumed || o->seen_lr_g) ag->lr = (float)o->lr_g;
    if (!resumed || o->seen_lr_d) ad->lr = (float)o->lr_d;
    if (!resumed || o->seen_beta1) ag->beta1 = ad->beta1 = (float)o->beta1;
    if (!resumed || o->seen_beta2) ag->beta2 = ad->beta2 = (float)o->beta2;
    if (!resumed || o->seen_ema) model_set_ema_decay(t->m, (float)o->ema);
    if (t->tt.enc) { /* its own rate (train_text.c: why faster than D's) */
        adam_t *at = tenc_adam(t->tt.enc);
        if (!resumed || o->seen_lr_text) at->lr = (float)o->lr_text;
        if (!resumed || o->seen_beta1) at->beta1 = (float)o->beta1;
        if (!resumed || o->seen_beta2) at->beta2 = (float)o->beta2;
    }
    if (resumed && (o->seen_lr_g || o->seen_lr_d || o->seen_lr_text || o->seen_beta1 || o->seen_beta2 || o->seen_ema))
        log_info("resumed run: optimiser/EMA options given on the command line override the checkpoint's");
}

/* Build the model when the first good batch b has arrived (new runs).
 * Returns 0 or an rc for a fatal mismatch (logged). */
/* Whether a new run's model is class-conditional, decided on its first
 * batch: "auto" means the dataset has classes and every image of the batch
 * carries a label (a conditional model cannot train on unlabelled images:
 * it rejects batches with label -1). */
static int decide_conditional(const trainer_t *t, const Gambar__Batch *b) {
    if (t->text) return 0; /* conditioned on captions, not labels */
    if (strcmp(t->o.conditional, "yes") == 0) return 1;
    if (strcmp(t->o.conditional, "no") == 0) return 0;
    if (b->num_classes == 0 || b->n_labels != b->n) return 0;
    for (size_t i = 0; i < b->n_labels; i++)
        if (b->labels[i] < 0) return 0;
    return 1;
}

static int build_model(trainer_t *t, const Gambar__Batch *b) {
    model_desc_t d = t->want;
    d.channels = (int)b->c;
    int cond = decide_conditional(t, b);
    if (cond && b->num_classes == 0) {
        log_error("--conditional yes, but the dataset has no classes (num_classes 0)");
        return GB_EMISMATCH;
    }
    d.conditional = cond;
    d.num_classes = cond ? (int)b->num_classes : 0;
    if (!cond && t->o.seen_embed_dim) log_warn("--embed-dim %lld ignored: the model is unconditional", t->o.embed_dim);
    if (!cond) d.embed_dim = 0;
    else if (d.embed_dim <= 0) d.embed_dim = model_default_embed_dim(d.z_dim);
    d.class_names = NULL;
    if (t->text) {
        d.text_dim = TRAIN_TEXT_DIM;
        d.embed_dim = t->o.seen_embed_dim ? (int)t->o.embed_dim : model_default_embed_dim(d.z_dim);
        if (t->o.aux_class > 0) {
            /* the classifier needs every image's class (each batch: train_batch_check, ex.aux) */
            if (b->num_classes == 0) {
                log_error("--aux-class: the dataset has no classes (num_classes 0); the auxiliary classifier "
                          "learns the images' class labels");
                return GB_EMISMATCH;
            }
            d.aux_classes = (int)b->num_classes;
        }
    }
    if (cond && t->db.n_classes == (size_t)d.num_classes) d.class_names = t->db.class_names;
    else if (cond && t->db.n_classes)
        log_warn("--db names %zu classes but the batches have %d: the checkpoint will carry no class names",
                 t->db.n_classes, d.num_classes);
    char why[256];
    if (model_desc_check(&d, why, sizeof why) != 0) {
        log_error("model: %s", why);
        return GB_EMISMATCH;
    }
    int cap = (int)GB_MAX(b->n, 2u);
    t->m = model_new(&d, cap, t->o.seed);
    if (!t->m) {
        log_error("model_new failed for %s", model_family_name(d.family));
        return GB_EMISMATCH;
    }
    t->ex.conditional = cond;
    if (t->text) {
        int rc = train_text_new(&t->tt, t->vocab, t->n_vocab, cap, t->o.seed, strcmp(t->o.text_grad, "dg") == 0,
                                t->o.text_g, (int)t->o.text_window);
        if (rc) return rc;
        model_set_text_interp(t->m, (float)t->o.gan_int);
        model_set_text_contrast(t->m, (float)t->o.contrast);
        model_set_text_modeseek(t->m, (float)t->o.mode_seek);
        model_set_text_aux(t->m, (float)t->o.aux_class);
        if (t->o.text_gain != 1) model_scale_text_init(t->m, (float)t->o.text_gain);
        tenc_vocab_free(t->vocab, t->n_vocab);
        t->vocab = NULL;
    }
    if (t->init) {
        const Gambar__ModelDesc *pm = t->init->model;
        if ((int)pm->channels != d.channels || (pm->conditional != 0) != (cond != 0) ||
            (cond && (int)pm->num_classes != d.num_classes)) {
            log_error("--init-from %s: the parent model is %ux%ux%u %s with %u classes; this run needs %d channels, "
                      "%s, %d classes",
                      t->o.init_from, pm->channels, pm->height, pm->width,
                      pm->conditional ? "conditional" : "unconditional", pm->num_classes, d.channels,
                      cond ? "conditional" : "unconditional", d.num_classes);
            return GB_EMISMATCH;
        }
        int rc = modelck_load_weights(t->m, t->init, why, sizeof why);
        if (rc == GB_ENUMERIC) {
            log_error("--init-from %s: %s; refusing to train from it", t->o.init_from, why);
            return rc;
        }
        if (rc) {
            log_error("--init-from %s: %s", t->o.init_from, why);
            log_error("--init-from %s: the parent's tensors do not fit this model", t->o.init_from);
            return GB_EMISMATCH;
        }
        ckpt_free(&t->init);
        log_info("initialised from %s (fresh optimiser, step 0)", t->o.init_from);
    }
    apply_hyper(t, 0);
    t->model_sent = 0;
    log_info("model %s %dx%dx%d width %d/%d z %d%s, loss %s, %zu G + %zu D parameters, batch capacity %d",
             model_family_name(d.family), d.channels, d.height, d.width, d.g_mult, d.d_mult, d.z_dim,
             cond ? " conditional" : t->text ? " text-conditional" : "", model_loss_name(d.loss),
             model_param_count(t->m, MODEL_G), model_param_count(t->m, MODEL_D), cap);
    if (t->text) {
        log_info("text encoder: vocabulary %d words, word pairs up to %d apart, sentence vectors of %d, %zu "
                 "parameters; G projects them to %d, D to its last feature map; GAN-INT %s (weight %g); "
                 "contrastive terms %s (weight %g); mode seeking %s (weight %g); auxiliary classifier %s "
                 "(weight %g), %d classes; the encoder learns from %s",
                 t->n_vocab, tenc_pair_window(t->tt.enc), d.text_dim, tenc_param_count(t->tt.enc),
                 d.embed_dim, t->o.gan_int > 0 ? "on" : "off", t->o.gan_int,
                 model_text_contrast(t->m) > 0 ? "on" : "off", model_text_contrast(t->m),
                 model_text_modeseek(t->m) > 0 ? "on" : "off", model_text_modeseek(t->m),
                 model_text_aux(t->m) > 0 ? "on" : "off", model_text_aux(t->m), model_desc(t->m)->aux_classes,
                 t->tt.from_g ? "D's and G's losses (--text-grad dg)" : "D's loss (--text-grad d)");
    if (t->text && t->tt.from_g && t->tt.g_weight != 1)
        log_info("text encoder: G's gradient enters its step times %g (--text-grad-g)", t->tt.g_weight);
    }
    return 0;
}

/* Grow the model's batch capacity to n (a batch larger than the first). */
static void grow_model(trainer_t *t, int n) {
    model_t *nm = model_new(model_desc(t->m), n, t->o.seed);
    ASSERT(nm);
    train_model_copy(nm, t->m);
    if (t->text) {
        model_set_text_interp(nm, model_text_interp(t->m));
        model_set_text_contrast(nm, model_text_contrast(t->m));
        model_set_text_modeseek(nm, model_text_modeseek(t->m));
        model_set_text_aux(nm, model_text_aux(t->m));
    }
    model_free(t->m);
    t->m = nm;
    if (t->text) train_text_grow(&t->tt, n);
    t->model_sent = 0;
    log_info("batch capacity grown to %d", n);
}

/* ---- one step --------------------------------------------------------------- */

/* z and fake labels of step `step` (steps done before it) for N images:
 * a pure function of the seed and the step, the same on every rank. */
static void make_noise(const model_desc_t *d, uint64_t seed, uint64_t step, int N, float *z, int32_t *fake_labels,
                       int32_t *mismatch) {
    rng_t r;
    rng_derive(&r, seed, step, TRAIN_Z_STREAM, 0, 0);
    rng_normal_fill(&r, z, (size_t)N * (size_t)d->z_dim);
    for (int i = 0; i < N; i++)
        fake_labels[i] = d->conditional ? (int32_t)rng_below(&r, (uint64_t)d->num_classes) : 0;
    /* text models: each image's mismatched caption, after z (train_text.c) */
    if (mismatch) train_text_mismatch(&r, N, mismatch);
}

/* This rank's share of M micro-batches. */
static model_split_t my_split(int M) {
    int k = M / tmpi_size();
    model_split_t sp = {M, tmpi_rank() * k, (tmpi_rank() + 1) * k, NULL, NULL, NULL, NULL};
    if (tmpi_active()) {
        sp.gather = tmpi_gather;
        sp.recv_prefix = tmpi_recv_prefix;
        sp.share_sum = tmpi_share_sum;
    }
    return sp;
}

/* MPI, rank 0: send the model when the others do not have it yet, then
 * the step's batch. */
static void share_step(trainer_t *t, int N) {
    if (!tmpi_active()) return;
    tmpi_hdr_t h = {0, 0, 0, 0, 0};
    if (!t->model_sent) {
        h.cmd = TMPI_MODEL;
        tmpi_bcast(&h, sizeof h, "command");
        tmpi_send_model(t->m, t->o.seed, (int)t->o.micro);
        t->model_sent = 1;
    }
    h.cmd = TMPI_STEP;
    h.n = N;
    h.step = t->pos.step;
    tmpi_bcast(&h, sizeof h, "command");
    tmpi_bcast(t->real, (size_t)N * model_image_floats(t->m) * sizeof(float), "batch images");
    tmpi_bcast(t->labels, (size_t)N * sizeof(int32_t), "batch labels");
}

/* Train on batch b (checked, seq == pos.next_seq). Returns 0, or a fatal rc. */
static int train_on(trainer_t *t, const Gambar__Batch *b) {
    if (!t->m) {
        int rc = build_model(t, b);
        if (rc) return rc;
    }
    if (b->n % (uint32_t)t->o.micro != 0) {
        log_error("batch seq %" PRIu64 " has %u images: not divisible into --micro-batches %lld", b->seq, b->n,
                  t->o.micro);
        return GB_EFORMAT;
    }
    if (t->text && b->n < 2) {
        log_error("batch seq %" PRIu64 " has %u image: text-conditional training needs at least 2 per batch (the "
                  "mismatched caption comes from another image)",
                  b->seq, b->n);
        return GB_EFORMAT;
    }
    if ((int)b->n > model_max_batch(t->m)) grow_model(t, (int)b->n);
    ensure_buffers(t, (int)b->n);
    const model_desc_t *d = model_desc(t->m);
    int N = (int)b->n;
    train_batch_floats(b, t->real, t->labels);
    make_noise(d, t->o.seed, t->pos.step, N, t->z, t->fake_labels, t->text ? t->tt.mis : NULL);
    model_stats_t s;
    uint64_t step = t->pos.step + 1;
    int rc;
    if (t->text) { /* one process, M = 1 (parse_options refuses the rest) */
        rc = train_text_step(&t->tt, t->m, b, t->real, t->z, &s);
    } else {
        share_step(t, N);
        model_split_t sp = my_split((int)t->o.micro);
        rc = model_train_step_split(t->m, t->real, t->labels, N, t->z, t->fake_labels, &sp, &s);
    }
    const char *bad = NULL;
    if (rc == 0 && !(isfinite(s.loss_d) && isfinite(s.loss_g) && isfinite(s.grad_norm_d) &&
                     isfinite(s.grad_norm_g)))
        rc = GB_ENUMERIC;
    if (rc == 0 && !train_model_finite(t->m, &bad)) rc = GB_ENUMERIC;
    if (rc == 0 && t->text && !train_text_finite(t->tt.enc, &bad)) rc = GB_ENUMERIC;
    if (rc) {
        if (rc == GB_ENUMERIC)
            log_error("numeric failure at step %" PRIu64 " (batch seq %" PRIu64 "): loss_d %g loss_g %g "
                      "|grad_d| %g |grad_g| %g%s%s; stopping without a checkpoint. Last good checkpoint: %s",
                      step, b->seq, (double)s.loss_d, (double)s.loss_g, (double)s.grad_norm_d,
                      (double)s.grad_norm_g, bad ? ", non-finite tensor " : "", bad ? bad : "",
                      t->have_saved ? t->saved_path : "none");
        else
            log_error("training step %" PRIu64 " failed: %s", step, err_str(rc));
        return rc;
    }
    t->last = s;
    t->pos.step = step;
    t->pos.next_seq = b->seq + 1;
    t->pos.epoch = (uint32_t)(t->pos.next_seq / t->ex.bpe);
    t->pos.images_seen += b->n;
    t->log_images += b->n;
    return 0;
}

/* ---- receiving ----------------------------------------------------------- */

static int done_by_target(const trainer_t *t) {
    if (t->o.steps > 0 && t->pos.step >= (uint64_t)t->o.steps) return 1;
    if (t->o.epochs > 0 && t->ex.have_dataset && t->pos.next_seq >= (uint64_t)t->o.epochs * t->ex.bpe) return 1;
    return 0;
}

/* Handle a decoded Batch: check, order, train or hold or drop. Takes
 * ownership of *mp. Returns 0 or a fatal rc. */
static int on_batch(trainer_t *t, wire_msg_t **mp) {
    const Gambar__Batch *b = (const Gambar__Batch *)(*mp)->msg;
    char why[256];
    if (!t->ex.have_shape && (b->h != t->fam_h || b->w != t->fam_w || (b->c != 1 && b->c != 3))) {
        snprintf(why, sizeof why, "images are %ux%ux%u (CxHxW), %s needs 1 or 3 x %ux%u", b->c, b->h, b->w,
                 model_family_name(t->want.family), t->fam_h, t->fam_w);
        drop_note(&t->drops, DROP_SHAPE, b->seq, why);
        wire_msg_destroy(mp);
        return 0;
    }
    if (!t->m) {
        t->ex.conditional = decide_conditional(t, b);
        t->ex.aux = t->text && t->o.aux_class > 0;
    }
    int k = train_batch_check(b, &t->ex, why, sizeof why);
    if (k) {
        drop_note(&t->drops, (drop_kind_t)k, b->seq, why);
        wire_msg_destroy(mp);
        return 0;
    }
    uint64_t want = t->pos.next_seq;
    if (b->seq < want) {
        snprintf(why, sizeof why, "already trained on (waiting for seq %" PRIu64 ")", want);
        drop_note(&t->drops, DROP_STALE, b->seq, why);
        wire_msg_destroy(mp);
        return 0;
    }
    if (b->seq > want) {
        uint32_t W = (uint32_t)t->o.window;
        uint64_t cap = (uint64_t)t->o.window_mb << 20;
        if (b->seq - want >= W || t->held_bytes + b->data.len > cap) {
            snprintf(why, sizeof why,
                     "%" PRIu64 " batches ahead of seq %" PRIu64 " (window %u batches, %lld MiB; %u held)",
                     b->seq - want, want, W, t->o.window_mb, t->nheld);
            drop_note(&t->drops, DROP_AHEAD, b->seq, why);
            wire_msg_destroy(mp);
            return 0;
        }
        wire_msg_t **slot = &t->held[b->seq % W];
        if (*slot) {
            drop_note(&t->drops, DROP_DUPLICATE, b->seq, "this seq is already waiting in the reorder window");
            wire_msg_destroy(mp);
            return 0;
        }
        if (t->nheld == 0) log_debug("waiting for seq %" PRIu64 ", holding %" PRIu64, want, b->seq);
        *slot = *mp;
        *mp = NULL;
        t->nheld++;
        t->held_bytes += b->data.len;
        return 0;
    }
    int first = !t->ex.have_dataset;
    train_expect_fix(&t->ex, b);
    if (first) {
        char hex[DIGEST_HEX_LEN + 1];
        digest_hex(t->ex.digest, DIGEST_LEN, hex);
        memcpy(t->pos.dataset_digest, t->ex.digest, DIGEST_LEN);
        t->pos.have_dataset = 1;
        t->pos.bpe = t->ex.bpe;
        t->pos.num_classes = t->ex.num_classes;
        t->pos.c = t->ex.c;
        t->pos.h = t->ex.h;
        t->pos.w = t->ex.w;
        log_info("dataset %.16s..., %u classes, %ux%ux%u images, %u batches per epoch", hex, t->ex.num_classes,
                 t->ex.c, t->ex.h, t->ex.w, t->ex.bpe);
        if (t->o.db && memcmp(t->db.digest, t->ex.digest, DIGEST_LEN) != 0) {
            char dh[DIGEST_HEX_LEN + 1];
            digest_hex(t->db.digest, DIGEST_LEN, dh);
            log_error("the batches come from dataset %s, but --db %s is dataset %s: refusing to train", hex,
                      t->o.db, dh);
            wire_msg_destroy(mp);
            return GB_EMISMATCH;
        }
    }
    int rc = train_on(t, b);
    wire_msg_destroy(mp);
    return rc;
}

/* ---- main --------------------------------------------------------------------- */

static char *join_argv(int argc, char **argv) {
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = xmalloc(n);
    s[0] = 0;
    for (int i = 0; i < argc; i++) {
        if (i) strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

static int exit_for(int rc) {
    if (rc == GB_EMISMATCH) return GB_EXIT_DATA;
    return err_exit_code(rc);
}

static int dir_has_checkpoints(const char *dir);
static double peak_rss_mib(void);

/* Log, as one error, every ckpt-*.gck file of dir with the reason it
 * cannot be loaded (ckpt_find_latest found none valid). */
static void log_damaged(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    size_t cap = 4096, len = 0;
    char *msg = xmalloc(cap), path[PATH_MAX];
    msg[0] = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 9 || strncmp(e->d_name, "ckpt-", 5) || strcmp(e->d_name + n - 4, ".gck")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int lrc = ckpt_load_quiet(path, LOG_DEBUG, NULL, NULL);
        size_t need = len + strlen(path) + 128;
        if (need > cap) msg = xrealloc(msg, cap = 2 * need);
        len += (size_t)snprintf(msg + len, cap - len, "%s%s (%s)", len ? "; " : "", path,
                                lrc ? err_str(lrc) : "valid now: written meanwhile?");
    }
    closedir(d);
    log_error("--resume: every checkpoint in %s is damaged: %s", dir, msg);
    free(msg);
}

/* Resume from the newest valid checkpoint (or note there is none). Returns
 * 0 (t->m set, or not when starting fresh) or a fatal rc. A folder with no
 * checkpoint files is a new run (said in one info line); one whose every
 * checkpoint is damaged is refused (GB_ECORRUPT, exit 3) naming each file
 * and why, unless --fresh-if-damaged: starting over is never silent. */
static int do_resume(trainer_t *t) {
    Gambar__Checkpoint *ck = NULL;
    char path[PATH_MAX];
    int rc = ckpt_find_latest(t->o.ckpt_dir, path, sizeof path, &ck, NULL);
    if (rc == GB_ENOTFOUND && dir_has_checkpoints(t->o.ckpt_dir)) {
        log_damaged(t->o.ckpt_dir);
        if (!t->o.fresh_if_damaged) {
            log_error("--resume: refusing to start over at step 0 (move the damaged files away, or pass "
                      "--fresh-if-damaged to start a new run next to them)");
            return GB_ECORRUPT;
        }
        log_warn("--resume --fresh-if-damaged: no usable checkpoint in %s; starting a NEW run at step 0",
                 t->o.ckpt_dir);
        return 0;
    }
    if (rc == GB_ENOTFOUND) {
        log_info("--resume: no checkpoint in %s; starting a new run at step 0", t->o.ckpt_dir);
        return 0;
    }
    if (rc) {
        log_error("--resume: cannot read %s: %s", t->o.ckpt_dir, err_str(rc));
        return rc;
    }
    model_desc_t d;
    char why[256];
    rc = modelck_desc(ck->model, &d, why, sizeof why);
    if (rc) log_error("checkpoint: bad model description: %s", why);
    else {
        rc = train_ckpt_pos(ck, &t->pos);
        if (rc) model_desc_release(&d);
    }
    if (rc) {
        log_error("--resume: %s cannot be resumed", path);
        ckpt_free(&ck);
        return GB_EFORMAT;
    }
    if (t->o.seen_model && d.family != t->want.family) {
        log_error("--resume: %s holds a %s model, not %s", path, model_family_name(d.family), t->o.model);
        rc = GB_EMISMATCH;
    } else if (t->o.seen_width && (d.g_mult != t->o.width || d.d_mult != t->o.width)) {
        log_error("--resume: %s has width %d/%d, not %lld", path, d.g_mult, d.d_mult, t->o.width);
        rc = GB_EMISMATCH;
    } else if (t->o.seen_embed_dim && d.conditional && d.embed_dim != t->o.embed_dim) {
        log_error("--resume: %s has class embedding width %d, not %lld", path, d.embed_dim, t->o.embed_dim);
        rc = GB_EMISMATCH;
    } else if (strcmp(t->o.conditional, "text") == 0 && d.text_dim == 0) {
        log_error("--resume: %s holds a %s model, not a text-conditional one (--conditional text)", path,
                  d.conditional ? "class-conditional" : "unconditional");
        rc = GB_EMISMATCH;
    } else if ((t->o.seen_gan_int || t->o.seen_contrast || t->o.seen_mode_seek || t->o.seen_aux_class ||
                t->o.seen_text_grad || t->o.seen_text_window || t->o.seen_text_g) &&
               d.text_dim == 0) {
        log_error("--resume: --%s is for text runs; %s holds a %s model",
                  t->o.seen_gan_int     ? "gan-int"
                  : t->o.seen_contrast  ? "contrastive"
                  : t->o.seen_mode_seek ? "mode-seek"
                  : t->o.seen_aux_class ? "aux-class"
                  : t->o.seen_text_grad ? "text-grad"
                  : t->o.seen_text_g    ? "text-grad-g"
                                        : "text-window",
                  path, d.conditional ? "class-conditional" : "unconditional");
        rc = GB_EMISMATCH;
    } else if (t->o.seen_seed && t->pos.seed != t->o.seed) {
        log_error("--resume: %s was trained with --seed %" PRIu64 ", not %" PRIu64, path, t->pos.seed, t->o.seed);
        rc = GB_EMISMATCH;
    }
    if (rc) {
        model_desc_release(&d);
        ckpt_free(&ck);
        return rc;
    }
    t->o.seed = t->pos.seed;
    if (t->o.seen_micro && t->pos.micro_batches != t->o.micro) {
        log_error("--resume: %s was trained with --micro-batches %d, not %lld (a different M changes the "
                  "maths; resume with the same M, any number of ranks dividing it)",
                  path, t->pos.micro_batches, t->o.micro);
        model_desc_release(&d);
        ckpt_free(&ck);
        return GB_EMISMATCH;
    }
    t->o.micro = t->pos.micro_batches;
    if (t->o.micro % tmpi_size() != 0) {
        log_error("--resume: %s uses --micro-batches %lld, which %d ranks do not divide", path, t->o.micro,
                  tmpi_size());
        model_desc_release(&d);
        ckpt_free(&ck);
        return GB_EMISMATCH;
    }
    if (!ck->state || !ck->state->adam_g || !ck->state->adam_d) {
        log_error("checkpoint: optimizer state missing");
        rc = GB_ENOTFOUND;
    } else {
        rc = modelck_load(ck, t->pos.max_batch, &t->m, why, sizeof why);
        if (rc == GB_ENUMERIC) {
            log_error("--resume: %s: %s; refusing to resume from it", path, why);
            model_desc_release(&d);
            ckpt_free(&ck);
            return rc;
        }
        if (rc) log_error("checkpoint: %s", why);
    }
    if (!rc && d.text_dim > 0) {
        rc = train_text_load(&t->tt, ck, t->pos.max_batch, d.text_dim, t->pos.text_from_g, t->pos.text_g_weight);
        t->text = rc == 0;
        if (!rc && t->o.seen_text_window && tenc_pair_window(t->tt.enc) != t->o.text_window) {
            log_error("--resume: %s's text encoder hashes word pairs up to %d apart, not %lld (--text-window is "
                      "the encoder's shape)", path, tenc_pair_window(t->tt.enc), t->o.text_window);
            model_desc_release(&d);
            ckpt_free(&ck);
            return GB_EMISMATCH;
        }
        if (!rc && t->o.seen_text_g && t->o.text_g != t->pos.text_g_weight) {
            log_error("--resume: %s was trained with --text-grad-g %g, not %g (it changes the maths)", path,
                      t->pos.text_g_weight, t->o.text_g);
            model_desc_release(&d);
            ckpt_free(&ck);
            return GB_EMISMATCH;
        }
        if (!rc && t->o.seen_text_grad && (strcmp(t->o.text_grad, "dg") == 0) != t->pos.text_from_g) {
            log_error("--resume: %s was trained with --text-grad %s, not %s (it changes the maths)", path,
                      t->pos.text_from_g ? "dg" : "d", t->o.text_grad);
            model_desc_release(&d);
            ckpt_free(&ck);
            return GB_EMISMATCH;
        }
        /* the loss weights a text run keeps: another value on resume would change the maths */
        const struct {
            const char *opt;
            bool seen;
            double want, had;
        } wt[] = {{"gan-int", t->o.seen_gan_int, t->o.gan_int, t->pos.gan_int},
                  {"contrastive", t->o.seen_contrast, t->o.contrast, t->pos.contrast},
                  {"mode-seek", t->o.seen_mode_seek, t->o.mode_seek, t->pos.mode_seek},
                  {"aux-class", t->o.seen_aux_class, t->o.aux_class, t->pos.aux_class}};
        for (size_t i = 0; !rc && i < ARRAY_LEN(wt); i++)
            if (wt[i].seen && wt[i].want != wt[i].had) {
                log_error("--resume: %s was trained with --%s %g, not %g (it changes the maths)", path, wt[i].opt,
                          wt[i].had, wt[i].want);
                model_desc_release(&d);
                ckpt_free(&ck);
                return GB_EMISMATCH;
            }
        if (!rc) {
            model_set_text_interp(t->m, (float)t->pos.gan_int);
            model_set_text_contrast(t->m, (float)t->pos.contrast);
            model_set_text_modeseek(t->m, (float)t->pos.mode_seek);
            if (t->pos.aux_class > 0 && d.aux_classes == 0) {
                log_error("--resume: %s: note train.aux_class %g, but the model has no auxiliary classifier",
                          path, t->pos.aux_class);
                rc = GB_EFORMAT;
            } else {
                model_set_text_aux(t->m, (float)t->pos.aux_class);
            }
        }
    }
    if (rc) {
        log_error("--resume: %s does not match its own model description", path);
        model_desc_release(&d);
        ckpt_free(&ck);
        return GB_EFORMAT;
    }
    apply_hyper(t, 1);
    t->model_sent = 0;
    memcpy(t->ex.digest, t->pos.dataset_digest, DIGEST_LEN);
    t->ex.num_classes = t->pos.num_classes;
    t->ex.bpe = t->pos.bpe;
    t->ex.have_dataset = 1;
    t->ex.c = t->pos.c;
    t->ex.h = t->pos.h;
    t->ex.w = t->pos.w;
    t->ex.have_shape = 1;
    t->ex.conditional = d.conditional;
    t->ex.aux = d.aux_classes > 0 && t->pos.aux_class > 0;
    t->ex.text = t->text;
    int thr = nn_get_threads();
    if (t->pos.threads && t->pos.threads != thr)
        log_warn("--resume: the checkpoint was trained with %d threads, this run uses %d: the result may "
                 "differ in the last bits from an uninterrupted run",
                 t->pos.threads, thr);
    train_db_from_ckpt(ck, &t->db);
    snprintf(t->saved_path, sizeof t->saved_path, "%s", path);
    t->saved_step = t->pos.step;
    t->have_saved = 1;
    log_info("resuming from %s: step %" PRIu64 ", epoch %u, next batch seq %" PRIu64, path, t->pos.step,
             t->pos.epoch, t->pos.next_seq);
    model_desc_release(&d);
    ckpt_free(&ck);
    return 0;
}

static int do_init_from(trainer_t *t) {
    uint8_t dig[DIGEST_LEN];
    int rc = ckpt_load(t->o.init_from, &t->init, dig);
    if (rc) {
        log_error("--init-from %s: %s", t->o.init_from, err_str(rc));
        return rc == GB_ECORRUPT || rc == GB_EFORMAT || rc == GB_EVERSION ? GB_EMISMATCH : rc;
    }
    model_desc_t pd;
    char why[256];
    rc = modelck_desc(t->init->model, &pd, why, sizeof why);
    if (rc) {
        log_error("--init-from %s: bad model description: %s", t->o.init_from, why);
        return GB_EMISMATCH;
    }
    /* What the command line did not fix explicitly follows the parent. */
    if (!t->o.seen_width) {
        t->want.g_mult = pd.g_mult;
        t->want.d_mult = pd.d_mult;
    }
    if (!t->o.seen_loss) t->want.loss = pd.loss;
    t->want.z_dim = pd.z_dim;
    if (!t->o.seen_embed_dim) t->want.embed_dim = pd.embed_dim;
    if (pd.family != t->want.family || pd.g_mult != t->want.g_mult || pd.d_mult != t->want.d_mult) {
        log_error("--init-from %s: the parent is %s width %d/%d; this run builds %s width %d/%d", t->o.init_from,
                  model_family_name(pd.family), pd.g_mult, pd.d_mult, model_family_name(t->want.family),
                  t->want.g_mult, t->want.d_mult);
        model_desc_release(&pd);
        return GB_EMISMATCH;
    }
    model_desc_release(&pd);
    memcpy(t->pos.parent_digest, dig, DIGEST_LEN);
    t->pos.have_parent = 1;
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(dig, DIGEST_LEN, hex);
    log_info("--init-from %s (sha256 %.16s...): weights load when the first batch fixes the shape",
             t->o.init_from, hex);
    return 0;
}

/* --db: read the dataset. A new run takes its class names and notes (and,
 * for a text model, the vocabulary of its captions, built in the same
 * pass over the dataset); a resumed run keeps the checkpoint's and only
 * checks that the dataset is the one it was trained on. Returns 0 or a
 * fatal rc (GB_EMISMATCH: exit 3). */
static int use_db(trainer_t *t) {
    train_db_t d;
    train_vocab_t voc;
    train_db_visitor_t vis;
    bool need_vocab = t->text && !t->m;
    if (need_vocab) train_vocab_init(&voc, t->o.db, &vis);
    int rc = train_db_read(t->o.db, &d, need_vocab ? &vis : NULL);
    if (need_vocab) {
        if (!rc) train_vocab_finish(&voc, &t->vocab, &t->n_vocab, NULL);
        train_vocab_free(&voc);
    }
    if (!rc && need_vocab && t->o.aux_class > 0 && d.n_classes == 0) {
        log_error("--aux-class: dataset %s has no classes; the auxiliary classifier learns the images' class "
                  "labels (class subfolders, IDX labels or a label column in --manifest; gambar-ingest(1))",
                  t->o.db);
        rc = GB_EMISMATCH;
    }
    if (rc) {
        train_db_free(&d);
        return rc;
    }
    char dh[DIGEST_HEX_LEN + 1];
    digest_hex(d.digest, DIGEST_LEN, dh);
    if (t->m) {
        if (memcmp(d.digest, t->pos.dataset_digest, DIGEST_LEN) != 0) {
            char ch[DIGEST_HEX_LEN + 1];
            digest_hex(t->pos.dataset_digest, DIGEST_LEN, ch);
            log_error("--db %s is dataset %s, but the checkpoint was trained on dataset %s", t->o.db, dh, ch);
            rc = GB_EMISMATCH;
        } else if (!t->db.have) {
            log_info("--db %s: the resumed checkpoint has no dataset notes; they stay unknown", t->o.db);
        }
        train_db_free(&d);
        return rc;
    }
    log_info("--db %s: dataset %.16s..., %zu classes, licences: %s", t->o.db, dh, d.n_classes,
             d.note[2] ? d.note[2] : "?");
    train_db_free(&t->db);
    t->db = d;
    return 0;
}

/* Non-zero when dir holds a file named like a checkpoint (valid or not). */
static int dir_has_checkpoints(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        found = n > 9 && strncmp(e->d_name, "ckpt-", 5) == 0 && strcmp(e->d_name + n - 4, ".gck") == 0;
    }
    closedir(d);
    return found;
}

static int print_start_batch(const opts_t *o) {
    Gambar__Checkpoint *ck = NULL;
    int rc = ckpt_find_latest(o->ckpt_dir, NULL, 0, &ck, NULL);
    if (rc == GB_ENOTFOUND) {
        printf("0\n");
        return 0;
    }
    if (rc) {
        log_error("%s: %s", o->ckpt_dir, err_str(rc));
        return err_exit_code(rc);
    }
    printf("%" PRIu64 "\n", ck->state->next_batch_seq);
    ckpt_free(&ck);
    return 0;
}

/* MPI, ranks other than 0: follow rank 0's commands (train_mpi.c) until
 * STOP. Opens no socket and touches no file. Returns the exit status. */
static int worker_main(trainer_t *t) {
    model_t *m = NULL;
    uint64_t seed = 0;
    int micro = 1, cap = 0;
    float *real = NULL, *z = NULL;
    int32_t *labels = NULL, *fake = NULL;
    uint64_t steps = 0;
    for (;;) {
        tmpi_hdr_t h;
        tmpi_bcast(&h, sizeof h, "command");
        if (h.cmd == TMPI_STOP) break;
        if (h.cmd == TMPI_MODEL) {
            model_free(m);
            m = tmpi_recv_model(&seed, &micro);
            continue;
        }
        if (h.cmd != TMPI_STEP || !m || h.n < 1 || h.n > model_max_batch(m) || h.n % micro) {
            log_error("rank %d: unexpected command %d from rank 0 (n %d)", tmpi_rank(), h.cmd, h.n);
            model_free(m);
            return GB_EXIT_FAIL;
        }
        if (h.n > cap) {
            const model_desc_t *d = model_desc(m);
            cap = model_max_batch(m);
            free(real);
            free(z);
            free(labels);
            free(fake);
            real = xmalloc((size_t)cap * model_image_floats(m) * sizeof(float));
            z = xmalloc((size_t)cap * (size_t)d->z_dim * sizeof(float));
            labels = xmalloc((size_t)cap * sizeof(int32_t));
            fake = xmalloc((size_t)cap * sizeof(int32_t));
        }
        tmpi_bcast(real, (size_t)h.n * model_image_floats(m) * sizeof(float), "batch images");
        tmpi_bcast(labels, (size_t)h.n * sizeof(int32_t), "batch labels");
        make_noise(model_desc(m), seed, h.step, h.n, z, fake, NULL);
        model_split_t sp = my_split(micro);
        /* a failing step (NaN) fails on rank 0 too, which then sends STOP */
        (void)model_train_step_split(m, real, labels, h.n, z, fake, &sp, NULL);
        steps++;
    }
    (void)t;
    log_info("rank %d: %" PRIu64 " steps, %.1f ms per step in MPI calls, peak RSS %.1f MiB", tmpi_rank(), steps,
             steps ? 1e3 * tmpi_comm_seconds() / (double)steps : 0.0, peak_rss_mib());
    model_free(m);
    free(real);
    free(z);
    free(labels);
    free(fake);
    return 0;
}

/* ---- the run, step by step ------------------------------------------------ */

/* Defaults, the command line and its checks (usage errors exit 2); fills
 * t->o and t->want. Returns -1 to go on, or the exit status of a command
 * that is already done (--print-start-batch). */
/* A text run's loss weight --OPT W (GAN-INT, contrastive, mode seeking,
 * auxiliary classifier): W in [0, 100], and given only for a text run
 * (or a resume, whose checkpoint says what it is). Exits 2 otherwise. */
static void check_loss_weight(const cli_spec_t *spec, const char *opt, double w, bool seen, bool text, bool resume) {
    if (!(w >= 0 && w <= 100)) cli_usage_error(spec, "--%s must be in [0, 100]", opt);
    if (seen && !text && !resume) cli_usage_error(spec, "--%s is for text runs (--conditional text)", opt);
}

static int parse_options(trainer_t *t, int argc, char **argv) {
    opts_t *o = &t->o;
    o->ckpt_every = 1000;
    o->keep = 5;
    o->log_every = 100;
    o->threads = 0;
    o->width = 32;
    o->producers = 1;
    o->window = 1024;
    o->window_mb = 1024;
    o->seed = 1;
    o->lr_g = 2e-4;
    o->lr_d = 2e-4;
    o->beta1 = 0.5;
    o->beta2 = 0.999;
    o->ema = 0.999;
    o->loss = "bce";
    o->conditional = "auto";
    o->micro = 1;
    o->text_grad = "d";
    o->text_gain = TRAIN_TEXT_GAIN;
    o->lr_text = TRAIN_TEXT_LR;
    o->text_window = 1;
    o->text_g = 1;
    const cli_opt_t opts[] = {
        {"in", 'i', CLI_STR, &o->in, "ENDPOINT", "PULL Batch messages here (connects; '@' binds)", NULL},
        {"model", 'm', CLI_STR, &o->model, "NAME", "dcgan28, dcgan32 or dcgan64", &o->seen_model},
        {"steps", 'n', CLI_INT, &o->steps, "N", "stop after N steps in total (0 = no limit)", &o->seen_steps},
        {"epochs", 0, CLI_INT, &o->epochs, "N", "stop at the end of epoch N (0 = no limit)", &o->seen_epochs},
        {"ckpt-dir", 'o', CLI_STR, &o->ckpt_dir, "DIR", "checkpoint folder", NULL},
        {"ckpt-every", 0, CLI_INT, &o->ckpt_every, "N", "checkpoint every N steps (default 1000)", NULL},
        {"keep", 0, CLI_INT, &o->keep, "K", "keep the K newest checkpoints (default 5; 0 = all)", NULL},
        {"resume", 'r', CLI_FLAG, &o->resume, NULL, "continue from the newest valid checkpoint in --ckpt-dir", NULL},
        {"fresh-if-damaged", 0, CLI_FLAG, &o->fresh_if_damaged, NULL,
         "with --resume: start a new run when every checkpoint is damaged (default: refuse, exit 3)", NULL},
        {"print-start-batch", 0, CLI_FLAG, &o->print_start, NULL,
         "print the batch seq a resumed run starts at and exit", NULL},
        {"init-from", 0, CLI_STR, &o->init_from, "CKPT", "start a new run from this checkpoint's weights", NULL},
        {"metrics", 0, CLI_STR, &o->metrics, "ENDPOINT", "PUB Metric/CheckpointReady here (binds; '>' connects)",
         NULL},
        {"log-every", 0, CLI_INT, &o->log_every, "N", "progress line and metrics every N steps (default 100)",
         NULL},
        {"seed", 's', CLI_U64, &o->seed, "S", "model initialisation and noise seed (default 1)", &o->seen_seed},
        {"threads", 't', CLI_INT, &o->threads, "N", "OpenBLAS threads (default 0 = all cores; per MPI rank)",
         &o->seen_threads},
        {"micro-batches", 0, CLI_INT, &o->micro, "M",
         "split each batch into M micro-batches (default 1; MPI ranks must divide M)", &o->seen_micro},
        {"lr-g", 0, CLI_DBL, &o->lr_g, "X", "generator learning rate (default 2e-4)", &o->seen_lr_g},
        {"lr-d", 0, CLI_DBL, &o->lr_d, "X", "discriminator learning rate (default 2e-4)", &o->seen_lr_d},
        {"beta1", 0, CLI_DBL, &o->beta1, "X", "Adam beta1 (default 0.5)", &o->seen_beta1},
        {"beta2", 0, CLI_DBL, &o->beta2, "X", "Adam beta2 (default 0.999)", &o->seen_beta2},
        {"ema", 0, CLI_DBL, &o->ema, "X", "EMA decay of the generator (default 0.999)", &o->seen_ema},
        {"loss", 0, CLI_STR, &o->loss, "bce|hinge", "adversarial loss (default bce)", &o->seen_loss},
        {"width", 'w', CLI_INT, &o->width, "N", "base width of G and D (default 32)", &o->seen_width},
        {"conditional", 0, CLI_STR, &o->conditional, "auto|yes|no|text",
         "class-conditional model (auto: when the data has labels); text: conditioned on the captions "
         "(GAN-CLS; needs --db)",
         NULL},
        {"gan-int", 0, CLI_DBL, &o->gan_int, "W",
         "text runs: GAN-INT, G also learns from caption midpoints, weight W (default 0 = off; Reed et al. use 1)",
         &o->seen_gan_int},
        {"text-window", 0, CLI_INT, &o->text_window, "P",
         "new text runs: the encoder also hashes word pairs up to P words apart (default 1 = adjacent only)",
         &o->seen_text_window},
        {"contrastive", 0, CLI_DBL, &o->contrast, "W",
         "text runs: image-text contrastive terms in D's and G's losses, weight W (default 0 = off; XMC-GAN uses 1)",
         &o->seen_contrast},
        {"mode-seek", 0, CLI_DBL, &o->mode_seek, "W",
         "text runs: mode-seeking term in G's loss, pairs of fakes share a caption, weight W (default 0 = off; "
         "MSGAN uses 1)",
         &o->seen_mode_seek},
        {"aux-class", 0, CLI_DBL, &o->aux_class, "W",
         "new text runs: D also classifies real images by their class label, G must draw its caption's class, "
         "weight W (default 0 = off; TAC-GAN uses 1)",
         &o->seen_aux_class},
        {"text-grad", 0, CLI_STR, &o->text_grad, "d|dg",
         "text runs: the text encoder learns from D's loss (d, default) or D's and G's (dg)", &o->seen_text_grad},
        {"text-grad-g", 0, CLI_DBL, &o->text_g, "W",
         "with --text-grad dg: G's gradient enters the text encoder's step times W (default 1)", &o->seen_text_g},
        {"lr-text", 0, CLI_DBL, &o->lr_text, "X", "text runs: the text encoder's learning rate (default 2e-3)",
         &o->seen_lr_text},
        {"text-gain", 0, CLI_DBL, &o->text_gain, "X",
         "new text runs: G's text projection starts X times N(0, 1/T) (default sqrt(T) = 5.66: N(0, 1))", &o->seen_text_gain},
        {"embed-dim", 0, CLI_INT, &o->embed_dim, "N",
         "conditional: width of G's class embedding (default z size / 10 = 10)", &o->seen_embed_dim},
        {"producers", 0, CLI_INT, &o->producers, "N", "stop after N EndOfStream messages (default 1)", NULL},
        {"reorder-window", 0, CLI_INT, &o->window, "N", "hold batches up to N seqs early (default 1024)", NULL},
        {"reorder-mb", 0, CLI_INT, &o->window_mb, "MB", "...and at most MB MiB of them (default 1024)", NULL},
        {"run", 0, CLI_STR, &o->run, "NAME", "run name put in metrics", NULL},
        {"db", 'd', CLI_STR, &o->db, "PATH",
         "the dataset the batches come from: class names and licences for the checkpoints", NULL},
        WIRE_SEC_CLI_OPTS,
    };
    const cli_spec_t spec = {
        "gambar-train", "--in ENDPOINT --model NAME --ckpt-dir DIR [options]",
        "Train a GAN on the Batch stream at ENDPOINT, checkpointing to DIR. Resumes bit-exactly with --resume.",
        opts, (int)ARRAY_LEN(opts),
        "See gambar-train(1) for the resume design (next batch seq, --print-start-batch)."};
    int pos = cli_parse(&spec, argc, argv);
    if (pos < argc) cli_usage_error(&spec, "unexpected argument '%s'", argv[pos]);
    if (!o->ckpt_dir) cli_usage_error(&spec, "--ckpt-dir is required");
    if (o->print_start) return print_start_batch(o);
    if (!o->in) cli_usage_error(&spec, "--in is required");
    wire_sec_init(&spec, (const char *const[]){o->in, o->metrics}, 2);
    if (o->steps < 0 || o->epochs < 0) cli_usage_error(&spec, "--steps and --epochs must be >= 0");
    if (o->ckpt_every < 1) cli_usage_error(&spec, "--ckpt-every must be >= 1");
    if (o->keep < 0) cli_usage_error(&spec, "--keep must be >= 0");
    if (o->log_every < 1) cli_usage_error(&spec, "--log-every must be >= 1");
    if (o->threads < 0 || o->threads > 256) cli_usage_error(&spec, "--threads must be 0..256");
    if (o->width < 1 || o->width > MODEL_MAX_WIDTH) cli_usage_error(&spec, "--width must be 1..%d", MODEL_MAX_WIDTH);
    if (o->seen_embed_dim && (o->embed_dim < 1 || o->embed_dim > MODEL_MAX_Z))
        cli_usage_error(&spec, "--embed-dim must be 1..%d", MODEL_MAX_Z);
    if (o->producers < 1 || o->producers > 1024) cli_usage_error(&spec, "--producers must be 1..1024");
    if (o->window < 1 || o->window > 65536) cli_usage_error(&spec, "--reorder-window must be 1..65536");
    if (o->window_mb < 1 || o->window_mb > 1 << 20) cli_usage_error(&spec, "--reorder-mb must be 1..1048576");
    if (!(o->text_gain > 0 && o->text_gain <= 1000)) cli_usage_error(&spec, "--text-gain must be in (0, 1000]");
    if (o->seen_lr_text && !(o->lr_text > 0)) cli_usage_error(&spec, "--lr-text must be > 0");
    if (!(o->lr_g > 0) || !(o->lr_d > 0)) cli_usage_error(&spec, "learning rates must be > 0");
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        cli_usage_error(&spec, "--beta1/--beta2 must be in [0, 1)");
    if (!(o->ema >= 0 && o->ema < 1)) cli_usage_error(&spec, "--ema must be in [0, 1)");
    if (strcmp(o->conditional, "auto") && strcmp(o->conditional, "yes") && strcmp(o->conditional, "no") &&
        strcmp(o->conditional, "text"))
        cli_usage_error(&spec, "--conditional must be auto, yes, no or text");
    t->text = strcmp(o->conditional, "text") == 0;
    if (strcmp(o->text_grad, "d") && strcmp(o->text_grad, "dg")) cli_usage_error(&spec, "--text-grad must be d or dg");
    if (o->seen_text_g && !(o->text_g > 0 && o->text_g <= 100))
        cli_usage_error(&spec, "--text-grad-g must be in (0, 100]");
    if (o->seen_text_g && !o->resume && (!t->text || strcmp(o->text_grad, "dg")))
        cli_usage_error(&spec, "--text-grad-g is for text runs with --text-grad dg");
    if (o->seen_text_grad && !t->text && !o->resume)
        cli_usage_error(&spec, "--text-grad is for text runs (--conditional text)");
    if (t->text && o->micro != 1)
        cli_usage_error(&spec, "--conditional text: --micro-batches %lld is not supported yet (text models train "
                        "whole batches in one process: use --micro-batches 1 and no mpirun)", o->micro);
    if (t->text && o->init_from) cli_usage_error(&spec, "--conditional text: --init-from is not supported yet");
    check_loss_weight(&spec, "gan-int", o->gan_int, o->seen_gan_int, t->text, o->resume);
    check_loss_weight(&spec, "contrastive", o->contrast, o->seen_contrast, t->text, o->resume);
    check_loss_weight(&spec, "mode-seek", o->mode_seek, o->seen_mode_seek, t->text, o->resume);
    check_loss_weight(&spec, "aux-class", o->aux_class, o->seen_aux_class, t->text, o->resume);
    if (o->text_window < 1 || o->text_window >= TENC_MAX_TOKENS)
        cli_usage_error(&spec, "--text-window must be in [1, %d]", TENC_MAX_TOKENS - 1);
    if (o->seen_text_window && !t->text && !o->resume)
        cli_usage_error(&spec, "--text-window is for new text runs (--conditional text)");
    model_loss_t loss;
    if (model_loss_parse(o->loss, &loss) != 0) cli_usage_error(&spec, "--loss must be bce or hinge");
    model_family_t fam = MODEL_DCGAN28;
    if (o->model && model_family_parse(o->model, &fam) != 0)
        cli_usage_error(&spec, "--model '%s': known models are dcgan28, dcgan32, dcgan64", o->model);
    model_desc_default(&t->want, fam);
    t->want.g_mult = t->want.d_mult = (int)o->width;
    t->want.embed_dim = o->seen_embed_dim ? (int)o->embed_dim : 0; /* 0: the default, once z size is known */
    t->want.loss = loss;
    t->fam_h = (uint32_t)t->want.height;
    t->fam_w = (uint32_t)t->want.width;

    if (o->micro < 1 || o->micro > TRAIN_MAX_BATCH) cli_usage_error(&spec, "--micro-batches must be 1..%d", TRAIN_MAX_BATCH);
    return -1;
}

/* Resume, or check that a new run may start here; --db and --init-from.
 * Returns 0 to train, -1 when there is nothing to do, or an exit status. */
static int start_run(trainer_t *t) {
    opts_t *o = &t->o;
    int rc = 0, status = 0;

    if (o->resume) {
        rc = do_resume(t);
    } else if (dir_has_checkpoints(o->ckpt_dir)) {
        /* A new run would interleave its files with the old run's, and a
         * later --resume would pick whichever step is highest. */
        log_error("%s already holds checkpoints: use --resume to continue that run, or another --ckpt-dir",
                  o->ckpt_dir);
        rc = GB_EFORMAT;
        status = GB_EXIT_USAGE;
    }
    if (!rc && !t->m && !o->model) {
        log_error("--model is required for a new run");
        rc = GB_EFORMAT;
        status = GB_EXIT_USAGE;
    }
    if (!rc && t->text && !t->m && !o->db) {
        log_error("--conditional text: a new run needs --db (the vocabulary is built from the dataset's captions)");
        rc = GB_EFORMAT;
        status = GB_EXIT_USAGE;
    }
    if (!rc && o->db) rc = use_db(t);
    t->ex.text = t->text;
    if (!rc && !o->db && !t->m)
        log_info("no --db: the checkpoints will carry no class names, and licences will be unknown");
    if (!rc && t->m && o->init_from)
        log_info("--init-from %s ignored: resuming the run in %s", o->init_from, o->ckpt_dir);
    if (!rc && !t->m && o->init_from) rc = do_init_from(t);
    if (rc) return status ? status : exit_for(rc);
    if (t->m) {
        t->fam_h = (uint32_t)model_desc(t->m)->height;
        t->fam_w = (uint32_t)model_desc(t->m)->width;
    }
    if (done_by_target(t)) {
        log_info("already at step %" PRIu64 ": nothing to do", t->pos.step);
        return -1;
    }
    if (t->text && tmpi_size() > 1) {
        log_error("text-conditional training runs in one process: not under mpirun (%d ranks) yet", tmpi_size());
        return GB_EXIT_USAGE;
    }
    if (o->micro % tmpi_size() != 0) { /* e.g. --resume of an empty folder with the default M = 1 */
        log_error("--micro-batches %lld: the %d MPI ranks must divide it", o->micro, tmpi_size());
        return GB_EXIT_USAGE;
    }

    return 0;
}

/* The --in PULL and --metrics PUB sockets (rank 0 only). Returns 0 or an
 * exit status. */
static int open_sockets(trainer_t *t) {
    opts_t *o = &t->o;
    int rc;
    t->ctx = zmq_ctx_new();
    rc = wire_conn_open(t->ctx, ZMQ_PULL, o->in, 0, WIRE_MAX_BATCH_BYTES, TRAIN_RCVHWM, "--in", &t->pull);
    if (!rc && o->metrics) rc = wire_open(t->ctx, ZMQ_PUB, o->metrics, 1, WIRE_MAX_SMALL_BYTES, 10000, &t->pub);
    if (rc) return GB_EXIT_PEER;
    log_info("waiting for batches on %s (next seq %" PRIu64 ")", o->in, t->pos.next_seq);
    t->t_start = t->log_t = gb_now();
    t->log_step = t->pos.step;

    return 0;
}

/* Receive, check, order and train until a target, the end of the stream,
 * a signal or a fatal error. Sets *why (1 target, 2 end of stream, 3
 * signal); returns 0 or an exit status. */
static int receive_and_train(trainer_t *t, int *why) {
    opts_t *o = &t->o;
    int rc, status = 0;
    static const ProtobufCMessageDescriptor *const accepted[] = {&gambar__batch__descriptor,
                                                                 &gambar__end_of_stream__descriptor};
    int stop_reason = 0;
    while (!stop_reason) {
        if (sig_stop_requested()) { stop_reason = 3; break; }
        /* A held batch may be next. */
        wire_msg_t **slot = &t->held[t->pos.next_seq % (uint64_t)o->window];
        wire_msg_t *msg = NULL;
        if (*slot && ((const Gambar__Batch *)(*slot)->msg)->seq == t->pos.next_seq) {
            msg = *slot;
            *slot = NULL;
            t->nheld--;
            t->held_bytes -= ((const Gambar__Batch *)msg->msg)->data.len;
        } else if (t->eos >= o->producers) {
            if (t->nheld)
                log_warn("all producers ended, but seq %" PRIu64 " never arrived; %u later batches unused",
                         t->pos.next_seq, t->nheld);
            stop_reason = 2;
            break;
        } else {
            rc = wire_conn_recv(t->pull, accepted, 2, WIRE_MAX_BATCH_BYTES, 250, &msg, &t->drops.wire);
            if (rc == EAGAIN || rc == GB_EINTR) continue;
            if (rc == GB_EPEER) { drop_sync_wire(&t->drops); continue; }
            if (rc) {
                log_error("receiving from %s: %s", o->in, err_str(rc));
                status = GB_EXIT_PEER;
                break;
            }
            if (msg->desc == &gambar__end_of_stream__descriptor) {
                const Gambar__EndOfStream *e = (const Gambar__EndOfStream *)msg->msg;
                t->eos++;
                log_info("EndOfStream %d/%lld from '%s' (%" PRIu64 " batches, %s)", t->eos, o->producers,
                         e->producer ? e->producer : "", e->batches_sent, e->reason ? e->reason : "");
                wire_msg_destroy(&msg);
                continue;
            }
        }
        uint64_t before = t->pos.step;
        rc = on_batch(t, &msg);
        if (rc) {
            status = rc == GB_ENUMERIC ? GB_EXIT_NUMERIC : exit_for(rc);
            break;
        }
        if (t->pos.step == before) continue;
        t->trained++;
        if (t->pos.step % (uint64_t)o->log_every == 0) log_progress(t);
        if (t->pos.step % (uint64_t)o->ckpt_every == 0) {
            rc = save_now(t);
            if (rc) { status = rc == GB_ENUMERIC ? GB_EXIT_NUMERIC : GB_EXIT_IO; break; }
        }
        if (done_by_target(t)) stop_reason = 1;
    }
    *why = stop_reason;
    return status;
}

/* This process's peak resident set (VmHWM) in MiB: issue 11 bounds it to
 * 64 MiB per rank for the default job (tests/t_train_rss.sh). */
static double peak_rss_mib(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

/* After the loop: the last progress line and checkpoint, the stopping
 * line, the drop report. Returns the exit status. */
static int finish_run(trainer_t *t, int stop_reason, int status) {
    int rc;
    if (!status) {
        if (stop_reason == 3)
            log_info("stop requested (signal %d): checkpointing step %" PRIu64, sig_stop_requested(), t->pos.step);
        if (t->m && t->pos.step != t->log_step) log_progress(t);
        if (t->m && (!t->have_saved || t->saved_step != t->pos.step)) {
            rc = save_now(t);
            if (rc) status = rc == GB_ENUMERIC ? GB_EXIT_NUMERIC : GB_EXIT_IO;
        }
        if (!t->m && stop_reason == 3) status = GB_EXIT_INTERRUPTED;
        if (!t->trained && stop_reason == 2) {
            if (drop_total(&t->drops)) {
                log_error("the stream ended without one usable batch: every message was rejected");
                status = GB_EXIT_DATA;
            } else {
                log_warn("the stream ended before the first batch: nothing trained");
            }
        }
        if (!status)
            log_info("finished at step %" PRIu64 " (%s), peak RSS %.1f MiB", t->pos.step,
                     stop_reason == 1 ? "target reached" : stop_reason == 2 ? "end of stream" : "stopped",
                     peak_rss_mib());
    }
    drop_report(&t->drops);
    if (t->pub) pub_metric(t, "dropped_messages_total", (double)drop_total(&t->drops));

    return status;
}

/* Tell the other ranks to stop, free everything; returns status. */
static int release(trainer_t *t, int status) {
    opts_t *o = &t->o;
    if (tmpi_active()) {
        tmpi_hdr_t h = {TMPI_STOP, 0, status, 0, 0};
        tmpi_bcast(&h, sizeof h, "command");
        log_info("MPI: %d ranks, --micro-batches %lld: %.1f ms per step in MPI calls on rank 0", tmpi_size(),
                 o->micro, t->trained ? 1e3 * tmpi_comm_seconds() / (double)t->trained : 0.0);
    }
    tmpi_finalize();
    for (long long i = 0; t->held && i < o->window; i++) wire_msg_destroy(&t->held[i]);
    free(t->held);
    wire_conn_close(&t->pull);
    wire_close(&t->pub);
    if (t->ctx) zmq_ctx_term(t->ctx);
    ckpt_free(&t->init);
    train_db_free(&t->db);
    model_free(t->m);
    train_text_free(&t->tt);
    tenc_vocab_free(t->vocab, t->n_vocab);
    model_desc_release(&t->want);
    free(t->real);
    free(t->z);
    free(t->labels);
    free(t->fake_labels);
    free(t->cmdline);
    return status;
}

int main(int argc, char **argv) {
    static trainer_t T;
    trainer_t *t = &T;
    const opts_t *o = &t->o;
    int status = parse_options(t, argc, argv);
    if (status >= 0) return status;
    if (tmpi_init(&argc, &argv)) return GB_EXIT_PEER;
    if (o->micro % tmpi_size() != 0 && !o->resume) {
        if (tmpi_rank() == 0)
            log_error("--micro-batches %lld: the %d MPI ranks must divide it", o->micro, tmpi_size());
        tmpi_finalize();
        return GB_EXIT_USAGE;
    }
    sig_install();
    nn_set_threads((int)o->threads);
    if (tmpi_rank() != 0) {
        int wst = worker_main(t);
        tmpi_finalize();
        return wst;
    }
    t->cmdline = join_argv(argc, argv);
    t->pos.seed = o->seed;
    t->held = xcalloc((size_t)o->window, sizeof *t->held);
    status = start_run(t);
    if (status == 0) status = open_sockets(t);
    if (status == 0) {
        int why = 0;
        status = receive_and_train(t, &why);
        status = finish_run(t, why, status);
    } else if (status < 0) {
        status = 0;
    }
    return release(t, status);
}
