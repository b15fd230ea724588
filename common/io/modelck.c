/* modelck.c - model_t <-> Checkpoint (see modelck.h).
 *
 * Loading checks every shape, and that every value is finite, before
 * writing anything, so a failed load never leaves a half-overwritten
 * model behind, and a checkpoint whose checksum is valid but whose
 * weights hold NaN/Inf (crafted, or saved by a buggy writer) is refused
 * by every stage that loads a model instead of producing garbage. */
#include "modelck.h"

#include "base.h"
#include "err.h"

#include <math.h>

int modelck_desc(const Gambar__ModelDesc *md, model_desc_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!md) return gb_errf(err, errlen, GB_EFORMAT, "checkpoint has no model description");
    model_family_t fam;
    if (model_family_parse(md->family, &fam) != 0)
        return gb_errf(err, errlen, GB_EFORMAT, "unknown model family '%s'", md->family);
    model_desc_default(out, fam);
    out->height = (int)md->height;
    out->width = (int)md->width;
    out->channels = (int)md->channels;
    out->g_mult = (int)md->g_mult;
    out->d_mult = (int)md->d_mult;
    out->z_dim = (int)md->z_dim;
    out->conditional = md->conditional ? 1 : 0;
    out->num_classes = (int)md->num_classes;
    out->embed_dim = (int)md->embed_dim;
    if (md->text_dim > MODEL_MAX_Z)
        return gb_errf(err, errlen, GB_EFORMAT, "text_dim %u: must be at most %d", md->text_dim, MODEL_MAX_Z);
    out->text_dim = (int)md->text_dim;
    if (md->aux_classes > MODEL_MAX_CLASSES)
        return gb_errf(err, errlen, GB_EFORMAT, "aux_classes %u: must be at most %d", md->aux_classes,
                       MODEL_MAX_CLASSES);
    out->aux_classes = (int)md->aux_classes;
    if (md->loss && *md->loss && model_loss_parse(md->loss, &out->loss) != 0)
        return gb_errf(err, errlen, GB_EFORMAT, "unknown loss '%s'", md->loss);
    if (md->n_class_names > 0) {
        if (md->n_class_names != md->num_classes)
            return gb_errf(err, errlen, GB_EFORMAT, "%zu class names for %u classes", md->n_class_names,
                        md->num_classes);
        out->class_names = xcalloc(md->n_class_names, sizeof(char *));
        for (size_t i = 0; i < md->n_class_names; i++) out->class_names[i] = xstrdup(md->class_names[i]);
    }
    int rc = model_desc_check(out, err, errlen);
    if (rc != 0) model_desc_release(out);
    return rc;
}

void modelck_store(const model_t *m, ckpt_builder_t *b) {
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    const model_desc_t *d = model_desc(m);
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
    md->text_dim = (uint32_t)d->text_dim;
    md->aux_classes = (uint32_t)d->aux_classes;
    md->loss = ckpt_builder_strdup(b, model_loss_name(d->loss));
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++) ckpt_add_class_name(b, d->class_names[i]);
    model_t *mm = (model_t *)m; /* model_adam hands out the live state */
    const adam_t *ag = model_adam(mm, MODEL_G), *ad = model_adam(mm, MODEL_D);
    Gambar__AdamState *sg = ck->state->adam_g, *sd = ck->state->adam_d;
    sg->t = ag->t; sg->lr = ag->lr; sg->beta1 = ag->beta1; sg->beta2 = ag->beta2; sg->eps = ag->eps;
    sd->t = ad->t; sd->lr = ad->lr; sd->beta1 = ad->beta1; sd->beta2 = ad->beta2; sd->eps = ad->eps;
    ck->state->ema_decay = model_ema_decay(m);
    for (int i = 0; i < model_tensor_count(m); i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (t->kind == MODEL_T_GRAD) continue;
        ASSERT(ckpt_add_tensor_ref(b, t->name, t->shape, t->ndim, t->data) == 0); /* borrowed */
    }
}

static void copy_le(float *dst, const Gambar__Tensor *st, size_t n) {
    /* Stored little-endian; every target gambar runs on is little-endian. */
    memcpy(dst, st->data.data, n * sizeof(float));
}

/* Verify (pass 0) then copy (pass 1) every tensor of m whose kind is
 * selected by want(kind). EMA tensors missing from ck fall back to G's
 * when ema_fallback. */
static int transfer(model_t *m, const Gambar__Checkpoint *ck, int kinds_mask, int ema_fallback, char *err,
                    size_t errlen) {
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < model_tensor_count(m); i++) {
            const model_tensor_t *t = model_tensor(m, i);
            if (!(kinds_mask & (1 << t->kind))) continue;
            const Gambar__Tensor *st = ckpt_tensor(ck, t->name);
            if (!st && t->kind == MODEL_T_EMA && ema_fallback) {
                st = ckpt_tensor(ck, t->name + 4); /* "EMA.G.x" -> "G.x" */
            }
            if (pass == 0) {
                int rc = ckpt_tensor_check(st, st ? st->name : t->name, "the model", t->shape, t->ndim, t->n, true,
                                           err, errlen);
                if (rc != 0) return rc;
            }
            if (pass == 1) copy_le(t->data, st, t->n);
        }
    }
    return 0;
}

#define KIND(k) (1 << (k))

int modelck_load(const Gambar__Checkpoint *ck, int max_batch, model_t **out, char *err, size_t errlen) {
    *out = NULL;
    model_desc_t d;
    int rc = modelck_desc(ck->model, &d, err, errlen);
    if (rc != 0) return rc;
    model_t *m = model_new(&d, max_batch, 0);
    model_desc_release(&d);
    if (!m) return gb_errf(err, errlen, GB_EFORMAT, "cannot build the model the checkpoint describes");
    rc = transfer(m, ck, KIND(MODEL_T_PARAM) | KIND(MODEL_T_BUFFER) | KIND(MODEL_T_EMA) | KIND(MODEL_T_ADAM_M) |
                             KIND(MODEL_T_ADAM_V),
                  0, err, errlen);
    if (rc != 0) {
        model_free(m);
        return rc;
    }
    if (ck->state) {
        const Gambar__AdamState *src[2] = {ck->state->adam_g, ck->state->adam_d};
        for (int k = 0; k < 2; k++) {
            if (!src[k]) continue;
            adam_t *a = model_adam(m, k == 0 ? MODEL_G : MODEL_D);
            a->t = src[k]->t;
            a->lr = src[k]->lr;
            a->beta1 = src[k]->beta1;
            a->beta2 = src[k]->beta2;
            a->eps = src[k]->eps;
        }
        model_set_ema_decay(m, ck->state->ema_decay);
    }
    *out = m;
    return 0;
}

int modelck_load_weights(model_t *m, const Gambar__Checkpoint *ck, char *err, size_t errlen) {
    return transfer(m, ck, KIND(MODEL_T_PARAM) | KIND(MODEL_T_BUFFER) | KIND(MODEL_T_EMA), 1, err, errlen);
}
