/* tencck.c - text encoder <-> Checkpoint (see tencck.h). */
#include "tencck.h"

#include "base.h"
#include "err.h"

#include <math.h>

int tencck_desc(const Gambar__TextEncoderDesc *md, tenc_desc_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!md) return gb_errf(err, errlen, GB_ENOTFOUND, "checkpoint has no text encoder");
    if (md->n_vocab > TENC_MAX_VOCAB)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder vocabulary of %zu words (at most %d)", md->n_vocab,
                       TENC_MAX_VOCAB);
    const uint32_t nums[5] = {md->hash_buckets, md->bigram_buckets, md->embed_dim, md->out_dim, md->max_tokens};
    for (int i = 0; i < 5; i++)
        if (nums[i] > INT32_MAX) return gb_errf(err, errlen, GB_EFORMAT, "text encoder field out of range (%u)", nums[i]);
    if (md->tokenizer_version > INT32_MAX)
        return gb_errf(err, errlen, GB_EUNSUPPORTED, "text encoder tokenizer version %u", md->tokenizer_version);
    out->vocab = (const char *const *)md->vocab;
    out->vocab_size = (int)md->n_vocab;
    out->hash_buckets = (int)md->hash_buckets;
    out->bigram_buckets = (int)md->bigram_buckets;
    out->embed_dim = (int)md->embed_dim;
    out->out_dim = (int)md->out_dim;
    out->max_tokens = (int)md->max_tokens;
    out->tokenizer_version = (int)md->tokenizer_version;
    if (md->pair_window >= TENC_MAX_TOKENS)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder pair_window %u (0..%d)", md->pair_window,
                       TENC_MAX_TOKENS - 1);
    out->pair_window = (int)md->pair_window;
    const char *act = md->activation ? md->activation : "";
    if (strcmp(act, "linear") == 0)
        out->act = TENC_ACT_LINEAR;
    else if (strcmp(act, "tanh") == 0)
        out->act = TENC_ACT_TANH;
    else
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder activation '%.32s' (linear or tanh)", act);
    return 0;
}

void tencck_store(const tenc_t *e, bool with_opt, ckpt_builder_t *b) {
    tenc_desc_t d;
    tenc_to_desc(e, &d);
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    Gambar__TextEncoderDesc *md = ckpt_builder_alloc(b, sizeof *md);
    gambar__text_encoder_desc__init(md);
    md->n_vocab = (size_t)d.vocab_size;
    md->vocab = ckpt_builder_alloc(b, (size_t)d.vocab_size * sizeof *md->vocab);
    for (int i = 0; i < d.vocab_size; i++) md->vocab[i] = ckpt_builder_strdup(b, d.vocab[i]);
    md->hash_buckets = (uint32_t)d.hash_buckets;
    md->bigram_buckets = (uint32_t)d.bigram_buckets;
    md->embed_dim = (uint32_t)d.embed_dim;
    md->out_dim = (uint32_t)d.out_dim;
    md->max_tokens = (uint32_t)d.max_tokens;
    md->activation = ckpt_builder_strdup(b, d.act == TENC_ACT_TANH ? "tanh" : "linear");
    md->tokenizer_version = (uint32_t)d.tokenizer_version;
    md->pair_window = (uint32_t)d.pair_window;
    if (with_opt) {
        const adam_t *a = tenc_adam((tenc_t *)e); /* tenc_adam hands out the live state */
        Gambar__AdamState *as = ckpt_builder_alloc(b, sizeof *as);
        gambar__adam_state__init(as);
        as->t = a->t;
        as->lr = a->lr;
        as->beta1 = a->beta1;
        as->beta2 = a->beta2;
        as->eps = a->eps;
        md->adam = as;
    }
    ck->text_encoder = md;
    for (int i = 0; i < tenc_tensor_count(e); i++) {
        const tenc_tensor_t *t = tenc_tensor(e, i);
        if (t->kind == TENC_T_GRAD || (t->kind != TENC_T_PARAM && !with_opt)) continue;
        int rc = ckpt_add_tensor(b, t->name, t->shape, t->ndim, t->data);
        ASSERT(rc == 0); /* a T.* name twice: the caller stored the encoder twice */
    }
}

int tencck_load(const Gambar__Checkpoint *ck, int max_batch, bool with_opt, tenc_t **out, char *err,
                size_t errlen) {
    *out = NULL;
    tenc_desc_t d;
    int rc = tencck_desc(ck->text_encoder, &d, err, errlen);
    if (rc != 0) return rc;
    if (with_opt && !ck->text_encoder->adam)
        return gb_errf(err, errlen, GB_ENOTFOUND, "checkpoint has no text encoder optimizer state");
    tenc_t *e;
    rc = tenc_new(&d, max_batch, 0, &e, err, errlen);
    if (rc != 0) return rc;
    /* Pass 0 checks every tensor, pass 1 copies: nothing half-loaded. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < tenc_tensor_count(e); i++) {
            const tenc_tensor_t *t = tenc_tensor(e, i);
            if (t->kind == TENC_T_GRAD || (t->kind != TENC_T_PARAM && !with_opt)) continue;
            const Gambar__Tensor *st = ckpt_tensor(ck, t->name);
            if (pass == 0) {
                rc = ckpt_tensor_check(st, t->name, "the text encoder", t->shape, t->ndim, t->n, true, err, errlen);
                if (rc != 0) goto fail;
            } else {
                /* Stored little-endian; every target gambar runs on is little-endian. */
                memcpy(t->data, st->data.data, t->n * sizeof(float));
            }
        }
    }
    const Gambar__AdamState *as = ck->text_encoder->adam;
    if (as) {
        adam_t *a = tenc_adam(e);
        a->lr = as->lr;
        a->beta1 = as->beta1;
        a->beta2 = as->beta2;
        a->eps = as->eps;
        a->t = with_opt ? as->t : 0;
    }
    *out = e;
    return 0;
fail:
    tenc_free(&e);
    return rc;
}
