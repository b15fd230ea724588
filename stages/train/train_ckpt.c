/* train_ckpt.c - the trainer's side of checkpoints: what goes into one and
 * how a run is rebuilt from it.
 *
 * The file format and the atomic write belong to common/ckpt.c, and the
 * model <-> checkpoint mapping (model description, every tensor of the
 * model's table except the gradients, both Adam states, EMA decay) to
 * common/modelck.c, shared with --resume, the sampler and the evaluator;
 * this file adds the training position (train_pos_t:
 * step, epoch, next batch seq, seed, dataset identity, stream shape,
 * provenance). The z noise is a pure function of (seed, step) (main.c), so
 * the "train" RngState stored is the generator of the next step: resume
 * recomputes it and does not need to trust it.
 *
 * Items of the position that checkpoint.proto has no field for (the
 * stream's batches_per_epoch, num_classes and image shape, the model's
 * batch capacity, a text run's GAN-INT weight) go in notes with a
 * "train." prefix. */
#include "base.h"
#include "ckpt.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "modelck.h"
#include "rng.h"
#include "tencck.h"
#include "train.h"

#include <inttypes.h>
#include <time.h>

#define TRAIN_RESTAT_BATCHES 16 /* x batch capacity latents per checkpoint */

int train_model_finite(const model_t *m, const char **bad) {
    int n = model_tensor_count(m);
    for (int i = 0; i < n; i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (t->kind == MODEL_T_GRAD) continue;
        if (!nn_all_finite(t->n, t->data)) {
            if (bad) *bad = t->name;
            return 0;
        }
    }
    return 1;
}

static void set_note_u64(ckpt_builder_t *b, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    ckpt_set_note(b, key, buf);
}

/* A weight note, read back exactly by note_weight (%.17g round-trips a double). */
static void set_note_weight(ckpt_builder_t *b, const char *key, double w) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", w);
    ckpt_set_note(b, key, buf);
}

static int get_note_u64(const Gambar__Checkpoint *ck, const char *key, uint64_t *v) {
    const char *s = ckpt_note(ck, key);
    if (!s || !*s) return GB_ENOTFOUND;
    char *end = NULL;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end) return GB_EFORMAT;
    *v = x;
    return 0;
}

/* A weight note in [0, 100] (GAN-INT, contrastive, mode seeking, G's share of the
 * encoder's gradient) into *w; absent or empty: dflt. Returns nonzero,
 * logged, when it is not such a number. */
static int note_weight(const Gambar__Checkpoint *ck, const char *key, double dflt, double *w) {
    const char *s = ckpt_note(ck, key);
    *w = dflt;
    if (!s || !*s) return 0;
    char *end = NULL;
    *w = strtod(s, &end);
    if (*end || !(*w >= 0 && *w <= 100)) {
        log_error("checkpoint: note %s '%s' is bad", key, s);
        return 1;
    }
    return 0;
}

int train_ckpt_save(const char *dir, int keep, model_t *m, const train_pos_t *p, char *path_out,
                    size_t path_len, uint8_t digest_out[DIGEST_LEN]) {
    const char *bad = NULL;
    if (!train_model_finite(m, &bad) || (p->tenc && !train_text_finite(p->tenc, &bad))) {
        log_error("refusing to checkpoint step %" PRIu64 ": tensor %s holds NaN/Inf", p->step, bad);
        return GB_ENUMERIC;
    }
    /* EMA.G's BN statistics measured with the EMA weights (model.h): what
     * the sampler and evaluator use; the next step overwrites them. A text
     * model draws its conditions from the last step's sentence vectors. */
    uint64_t rs = p->seed * 0x9E3779B97F4A7C15ull + p->step;
    if (model_desc(m)->text_dim == 0) model_ema_restat(m, TRAIN_RESTAT_BATCHES, rs);
    else if (p->n_pool > 0) model_ema_restat_text(m, TRAIN_RESTAT_BATCHES, rs, p->text_pool, p->n_pool);
    ckpt_builder_t *b = ckpt_builder_new();
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    modelck_store(m, b); /* description, every non-gradient tensor, Adam state, EMA decay */
    if (p->tenc) tencck_store(p->tenc, true, b); /* vocabulary, T.*, its Adam state and moments */

    Gambar__TrainState *st = ck->state;
    st->step = p->step;
    st->epoch = p->epoch;
    st->batches_seen = p->step;
    st->images_seen = p->images_seen;
    st->seed = p->seed;
    rng_t r;
    rng_derive(&r, p->seed, p->step, 0x7a, 0, 0); /* main.c's z stream for the next step */
    ckpt_add_rng(b, "train", r.s);
    st->next_batch_seq = p->next_seq;
    st->wall_time_trained = p->wall_trained;
    st->threads = (uint32_t)p->threads;
    st->micro_batches = (uint32_t)p->micro_batches;
    if (p->have_dataset) ck->dataset_digest = ckpt_builder_bytes(b, p->dataset_digest, DIGEST_LEN);
    if (p->have_parent) ck->parent_digest = ckpt_builder_bytes(b, p->parent_digest, DIGEST_LEN);
    ck->command_line = ckpt_builder_strdup(b, p->command_line);
    ck->software_version = ckpt_builder_strdup(b, "gambar " GAMBAR_VERSION);
    ck->created_unix = (int64_t)time(NULL);
    set_note_u64(b, "train.batches_per_epoch", p->bpe);
    set_note_u64(b, "train.num_classes", p->num_classes);
    set_note_u64(b, "train.c", p->c);
    set_note_u64(b, "train.h", p->h);
    set_note_u64(b, "train.w", p->w);
    set_note_u64(b, "train.max_batch", (uint64_t)p->max_batch);
    if (p->tenc) {
        set_note_weight(b, "train.gan_int", p->gan_int);
        set_note_weight(b, "train.contrastive", p->contrast);
        set_note_weight(b, "train.mode_seek", p->mode_seek);
        set_note_weight(b, "train.aux_class", p->aux_class);
        set_note_weight(b, "train.text_g_weight", p->text_g_weight);
        ckpt_set_note(b, "train.text_grad", p->text_from_g ? "dg" : "d");
    }
    train_db_notes(p->db, b);

    int rc = ckpt_save(dir, ck, keep, path_out, path_len, digest_out);
    ckpt_builder_destroy(&b);
    return rc;
}

int train_ckpt_pos(const Gambar__Checkpoint *ck, train_pos_t *p) {
    memset(p, 0, sizeof *p);
    const Gambar__TrainState *st = ck->state;
    p->step = st->step;
    p->epoch = st->epoch;
    p->next_seq = st->next_batch_seq;
    p->images_seen = st->images_seen;
    p->seed = st->seed;
    p->wall_trained = st->wall_time_trained;
    p->threads = (int)st->threads;
    p->micro_batches = st->micro_batches ? (int)st->micro_batches : 1;
    if (ck->dataset_digest.len == DIGEST_LEN) {
        memcpy(p->dataset_digest, ck->dataset_digest.data, DIGEST_LEN);
        p->have_dataset = 1;
    }
    if (ck->parent_digest.len == DIGEST_LEN) {
        memcpy(p->parent_digest, ck->parent_digest.data, DIGEST_LEN);
        p->have_parent = 1;
    }
    uint64_t v[6];
    static const char *const keys[6] = {"train.batches_per_epoch", "train.num_classes", "train.c",
                                        "train.h", "train.w", "train.max_batch"};
    for (int i = 0; i < 6; i++)
        if (get_note_u64(ck, keys[i], &v[i]) != 0 || v[i] > UINT32_MAX) {
            log_error("checkpoint: note %s is missing or bad (not written by gambar-train?)", keys[i]);
            return GB_EFORMAT;
        }
    p->bpe = (uint32_t)v[0];
    p->num_classes = (uint32_t)v[1];
    p->c = (uint32_t)v[2];
    p->h = (uint32_t)v[3];
    p->w = (uint32_t)v[4];
    p->max_batch = (int)v[5];
    /* text runs; absent (written before the note): off, and G's gradient as is */
    if (note_weight(ck, "train.gan_int", 0, &p->gan_int) || note_weight(ck, "train.contrastive", 0, &p->contrast) ||
        note_weight(ck, "train.mode_seek", 0, &p->mode_seek) || note_weight(ck, "train.aux_class", 0, &p->aux_class) ||
        note_weight(ck, "train.text_g_weight", 1, &p->text_g_weight))
        return GB_EFORMAT;
    const char *tg = ckpt_note(ck, "train.text_grad"); /* text runs; absent: written before the note, "dg" */
    p->text_from_g = 1;
    if (tg && *tg) {
        if (strcmp(tg, "d") && strcmp(tg, "dg")) {
            log_error("checkpoint: note train.text_grad '%s' is bad (d or dg)", tg);
            return GB_EFORMAT;
        }
        p->text_from_g = strcmp(tg, "dg") == 0;
    }
    if (p->max_batch < 1 || p->max_batch > TRAIN_MAX_BATCH || !p->have_dataset || p->bpe == 0) {
        log_error("checkpoint: training position is incomplete (max_batch %d, dataset %s, bpe %u)",
                  p->max_batch, p->have_dataset ? "set" : "missing", p->bpe);
        return GB_EFORMAT;
    }
    return 0;
}

void train_model_copy(model_t *dst, model_t *src) {
    int n = model_tensor_count(src);
    ASSERT(n == model_tensor_count(dst));
    for (int i = 0; i < n; i++) {
        const model_tensor_t *s = model_tensor(src, i), *d = model_tensor(dst, i);
        ASSERT(s->n == d->n && strcmp(s->name, d->name) == 0);
        if (s->kind == MODEL_T_GRAD) continue;
        memcpy(d->data, s->data, s->n * sizeof(float));
    }
    *model_adam(dst, MODEL_G) = *model_adam(src, MODEL_G);
    *model_adam(dst, MODEL_D) = *model_adam(src, MODEL_D);
    model_set_ema_decay(dst, model_ema_decay(src));
}
