/* train_ckpt.c - the trainer's side of checkpoints: what goes into one and
 * how a run is rebuilt from it.
 *
 * The file format and the atomic write belong to common/ckpt.c; this file
 * decides the contents: the model description, every tensor of the model's
 * table except the gradients (G, D, BN running statistics, EMA, both Adam
 * moments), both Adam states, and the training position (train_pos_t:
 * step, epoch, next batch seq, seed, dataset identity, stream shape,
 * provenance). The z noise is a pure function of (seed, step) (main.c), so
 * the "train" RngState stored is the generator of the next step: resume
 * recomputes it and does not need to trust it.
 *
 * Items of the position that checkpoint.proto has no field for (the
 * stream's batches_per_epoch, num_classes and image shape, the model's
 * batch capacity) go in notes with a "train." prefix. */
#include "base.h"
#include "ckpt.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "rng.h"
#include "train.h"

#include <inttypes.h>
#include <time.h>

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

static int get_note_u64(const Gambar__Checkpoint *ck, const char *key, uint64_t *v) {
    const char *s = ckpt_note(ck, key);
    if (!s || !*s) return GB_ENOTFOUND;
    char *end = NULL;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end) return GB_EFORMAT;
    *v = x;
    return 0;
}

static void adam_to_msg(const adam_t *a, Gambar__AdamState *s) {
    s->t = a->t;
    s->lr = a->lr;
    s->beta1 = a->beta1;
    s->beta2 = a->beta2;
    s->eps = a->eps;
}

int train_ckpt_save(const char *dir, int keep, model_t *m, const train_pos_t *p, char *path_out,
                    size_t path_len, uint8_t digest_out[DIGEST_LEN]) {
    const char *bad = NULL;
    if (!train_model_finite(m, &bad)) {
        log_error("refusing to checkpoint step %" PRIu64 ": tensor %s holds NaN/Inf", p->step, bad);
        return GB_ENUMERIC;
    }
    const model_desc_t *d = model_desc(m);
    ckpt_builder_t *b = ckpt_builder_new();
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    Gambar__ModelDesc *md = ck->model;
    md->family = ckpt_builder_strdup(b, model_family_name(d->family));
    md->height = (uint32_t)d->height;
    md->width = (uint32_t)d->width;
    md->channels = (uint32_t)d->channels;
    md->g_mult = (uint32_t)d->g_mult;
    md->d_mult = (uint32_t)d->d_mult;
    md->z_dim = (uint32_t)d->z_dim;
    md->conditional = d->conditional != 0;
    md->num_classes = (uint32_t)d->num_classes;
    md->embed_dim = (uint32_t)d->embed_dim;
    md->loss = ckpt_builder_strdup(b, model_loss_name(d->loss));
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++) ckpt_add_class_name(b, d->class_names[i]);

    int n = model_tensor_count(m);
    for (int i = 0; i < n; i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (t->kind == MODEL_T_GRAD) continue;
        int rc = ckpt_add_tensor(b, t->name, t->shape, t->ndim, t->data);
        ASSERT(rc == 0); /* names are unique in the model's table */
    }

    Gambar__TrainState *st = ck->state;
    st->step = p->step;
    st->epoch = p->epoch;
    st->batches_seen = p->step;
    st->images_seen = p->images_seen;
    adam_to_msg(model_adam(m, MODEL_G), st->adam_g);
    adam_to_msg(model_adam(m, MODEL_D), st->adam_d);
    st->ema_decay = model_ema_decay(m);
    st->seed = p->seed;
    rng_t r;
    rng_derive(&r, p->seed, p->step, 0x7a, 0, 0); /* main.c's z stream for the next step */
    ckpt_add_rng(b, "train", r.s);
    st->next_batch_seq = p->next_seq;
    st->wall_time_trained = p->wall_trained;
    st->threads = (uint32_t)p->threads;
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

    int rc = ckpt_save(dir, ck, keep, path_out, path_len, digest_out);
    ckpt_builder_destroy(&b);
    return rc;
}

int train_ckpt_desc(const Gambar__Checkpoint *ck, model_desc_t *d) {
    const Gambar__ModelDesc *md = ck->model;
    model_family_t fam;
    if (!md || model_family_parse(md->family, &fam) != 0) {
        log_error("checkpoint: unknown model family '%s'", md && md->family ? md->family : "");
        return GB_EFORMAT;
    }
    model_desc_t t;
    model_desc_default(&t, fam);
    t.height = (int)md->height;
    t.width = (int)md->width;
    t.channels = (int)md->channels;
    t.g_mult = (int)md->g_mult;
    t.d_mult = (int)md->d_mult;
    t.z_dim = (int)md->z_dim;
    t.conditional = md->conditional;
    t.num_classes = (int)md->num_classes;
    t.embed_dim = (int)md->embed_dim;
    if (md->loss && *md->loss && model_loss_parse(md->loss, &t.loss) != 0) {
        log_error("checkpoint: unknown loss '%s'", md->loss);
        return GB_EFORMAT;
    }
    t.class_names = NULL;
    if (md->n_class_names == md->num_classes && md->n_class_names > 0)
        t.class_names = md->class_names; /* borrowed; copied below */
    char why[256];
    if (model_desc_check(&t, why, sizeof why) != 0) {
        log_error("checkpoint: bad model description: %s", why);
        return GB_EFORMAT;
    }
    model_desc_copy(d, &t);
    return 0;
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
    if (p->max_batch < 1 || p->max_batch > TRAIN_MAX_BATCH || !p->have_dataset || p->bpe == 0) {
        log_error("checkpoint: training position is incomplete (max_batch %d, dataset %s, bpe %u)",
                  p->max_batch, p->have_dataset ? "set" : "missing", p->bpe);
        return GB_EFORMAT;
    }
    return 0;
}

static void adam_from_msg(adam_t *a, const Gambar__AdamState *s) {
    a->t = s->t;
    a->lr = s->lr;
    a->beta1 = s->beta1;
    a->beta2 = s->beta2;
    a->eps = s->eps;
}

int train_ckpt_load_model(const Gambar__Checkpoint *ck, model_t *m, int full) {
    int n = model_tensor_count(m);
    int have_ema = 1;
    for (int i = 0; i < n; i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (t->kind == MODEL_T_GRAD) continue;
        if (!full && (t->kind == MODEL_T_ADAM_M || t->kind == MODEL_T_ADAM_V)) continue;
        if (!full && t->kind == MODEL_T_EMA && !ckpt_tensor(ck, t->name)) {
            have_ema = 0;
            continue;
        }
        int rc = ckpt_get_tensor(ck, t->name, t->shape, t->ndim, t->data);
        if (rc) return rc;
    }
    if (full) {
        if (!ck->state->adam_g || !ck->state->adam_d) {
            log_error("checkpoint: optimizer state missing");
            return GB_ENOTFOUND;
        }
        adam_from_msg(model_adam(m, MODEL_G), ck->state->adam_g);
        adam_from_msg(model_adam(m, MODEL_D), ck->state->adam_d);
        model_set_ema_decay(m, ck->state->ema_decay);
    } else if (!have_ema) {
        model_ema_reset(m);
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
