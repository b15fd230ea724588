/* train_text.c - text-conditional training (--conditional text, GAN-CLS;
 * issue 10): the text encoder the trainer owns next to the model, its
 * vocabulary, and the step that ties the two together.
 *
 * WHERE THE VOCABULARY COMES FROM. A new text run reads every caption of
 * --db once at start (train_vocab_*, in the pass train_db_read makes over
 * the dataset anyway, so it is read once) and keeps the words seen at least
 * TT_MIN_COUNT times. Why --db and not the first batches: the vocabulary
 * is then a function of the dataset alone (tenc_counter_vocab does not
 * depend on the order), not of which images the first batches happened to
 * draw, so two runs on the same data agree; and it is stored in the
 * checkpoint (TextEncoderDesc.vocab), so --resume never reads it again and
 * resumes bit-exactly without --db.
 *
 * ONE STEP (train_text_step): the batch's captions (one per image, drawn
 * by gambar-augment) -> tenc_forward -> sentence vectors c; the
 * mismatched caption of image i is that of image mis[i], a random cyclic
 * permutation (Sattolo: no image keeps its own) drawn from the step's
 * noise generator after z (main.c make_noise), so a resumed run draws the
 * same; model_train_step_text(real, c, mis, z, c); the encoder's gradient
 * is dtext_d (D's loss through D's projection), plus dtext_g (G's loss
 * through G's input; model.h) with --text-grad dg -> tenc_backward -> one
 * Adam step over its block.
 * The encoder is updated after D and G, from the vectors both used.
 *
 * WHICH LOSS TRAINS THE ENCODER (--text-grad, note train.text_grad). "d":
 * D's loss only (the default of new runs): G conditions on vectors it
 * cannot move, as in Reed et al. and StackGAN, whose G does not train the
 * encoder. "dg": D's and G's (the first text runs; a checkpoint without
 * the note resumes so). Why "d": measured (README, Text-image agreement),
 * the class agreement is the same either way, and with a faster encoder
 * (--lr-text) "dg" costs FID (G blows the vectors up instead of drawing
 * better: 141 against 101 at 1500 steps).
 *
 * HOW FAST IT LEARNS (--lr-text, default TRAIN_TEXT_LR = 2e-3, ten times
 * D's; the rate is in the encoder's Adam state, so a resume keeps a run's
 * own). The embeddings start N(0, 1) and a caption's vector is the mean of
 * about 15 of them (words and bigrams), so at first the class word is a
 * small share of it, and synonyms ("ankle boot", "short boot") are
 * unrelated vectors. At D's 2e-4 they barely move in 3000 steps: on the
 * held-out captions the class explained 9% of the vectors' variance at
 * step 500 and 33% at 3000; at 1e-2, 65% by step 1500. Measured
 * (Fashion-MNIST, width 16; README, Text-image agreement): prompts drawn
 * in their class 0.29 -> 0.49-0.53 at 3000 steps with 2e-3 and G's
 * projection starting N(0, 1) (--text-gain, main.c;
 * model_scale_text_init); FID unchanged within its run-to-run spread. 1e-2
 * does as well on the class at 3000 steps, but with the larger projection
 * it costs diversity (recall 0.20 -> 0.03: the text outweighs z), so the
 * default is 2e-3.
 *
 * Nothing here allocates per step: the buffers grow with the batch
 * capacity (train_text_grow). */
#include "base.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "tencck.h"
#include "train.h"

#include <inttypes.h>
#include <math.h>

#define TT_MIN_COUNT 2        /* a word seen once is hashed (a bucket shared with other rare words) */
#define TT_MAX_VOCAB 20000
#define TT_HASH_BUCKETS 1024
#define TT_BIGRAM_BUCKETS 4096
#define TT_EMBED_DIM 32
#define TT_MAX_TOKENS 32

/* train_db_visitor_t begin: a dataset without captions cannot train a text model */
static int vocab_begin(void *arg, const Gambar__DatasetInfo *info) {
    train_vocab_t *v = arg;
    if (info->captions_total == 0) {
        log_error("--conditional text: dataset %s has no captions (give gambar-ingest NAME.txt files next to the "
                  "images or a caption column in --manifest; gambar-ingest(1))",
                  v->path);
        return GB_EMISMATCH;
    }
    return 0;
}

/* train_db_visitor_t example: count every caption's words */
static int vocab_example(void *arg, uint64_t i, const Gambar__Example *ex) {
    train_vocab_t *v = arg;
    char why[256];
    for (size_t k = 0; k < ex->n_captions; k++) {
        v->caps++;
        if (tenc_counter_add(v->c, ex->captions[k], why, sizeof why) != 0) {
            log_error("--db %s: example %" PRIu64 " caption %zu: %s", v->path, i, k, why);
            return GB_EMISMATCH;
        }
    }
    return 0;
}

void train_vocab_init(train_vocab_t *v, const char *path, train_db_visitor_t *vis) {
    v->path = path;
    v->c = tenc_counter_new(TT_MAX_TOKENS);
    v->caps = 0;
    *vis = (train_db_visitor_t){vocab_begin, vocab_example, v};
}

void train_vocab_finish(train_vocab_t *v, char ***vocab, int *n, uint64_t *n_captions) {
    tenc_counter_vocab(v->c, TT_MIN_COUNT, TT_MAX_VOCAB, vocab, n);
    log_info("--db %s: %" PRIu64 " captions, %zu distinct words, vocabulary of %d (seen at least %d times)", v->path,
             v->caps, tenc_counter_distinct(v->c), *n, TT_MIN_COUNT);
    if (n_captions) *n_captions = v->caps;
}

void train_vocab_free(train_vocab_t *v) { tenc_counter_free(&v->c); }

/* (Re)allocate the per-batch buffers for cap texts. */
static void tt_buffers(train_text_t *tt, int cap) {
    int T = tenc_out_dim(tt->enc);
    free(tt->vec);
    free(tt->dtd);
    free(tt->dtg);
    free(tt->mis);
    free(tt->caps);
    tt->vec = xcalloc((size_t)cap * T, sizeof(float));
    tt->dtd = xcalloc((size_t)cap * T, sizeof(float));
    tt->dtg = xcalloc((size_t)cap * T, sizeof(float));
    tt->mis = xcalloc((size_t)cap, sizeof(int32_t));
    tt->caps = xcalloc((size_t)cap, sizeof(char *));
    tt->cap = cap;
    tt->n_last = 0;
}

int train_text_new(train_text_t *tt, char *const *vocab, int n, int cap, uint64_t seed, int from_g,
                   double g_weight, int pair_window) {
    memset(tt, 0, sizeof *tt);
    tt->from_g = from_g;
    tt->g_weight = g_weight;
    /* a wider pair window hashes several times the pairs: 4x the buckets,
     * so that the class-and-attribute pairs rarely share one */
    int buckets = pair_window > 1 ? 4 * TT_BIGRAM_BUCKETS : TT_BIGRAM_BUCKETS;
    tenc_desc_t d = {(const char *const *)vocab, n,       TT_HASH_BUCKETS, buckets,      TT_EMBED_DIM,
                     TRAIN_TEXT_DIM,             TT_MAX_TOKENS, TENC_ACT_TANH, TENC_TOKENIZER_VERSION,
                     pair_window};
    char why[256];
    /* the encoder's own stream: not the model's initialisation, not the noise */
    int rc = tenc_new(&d, cap, seed * 0x9E3779B97F4A7C15ull + 0x54, &tt->enc, why, sizeof why);
    if (rc) {
        log_error("text encoder: %s", why);
        return rc;
    }
    tt_buffers(tt, cap);
    return 0;
}

int train_text_load(train_text_t *tt, const Gambar__Checkpoint *ck, int cap, int text_dim, int from_g,
                    double g_weight) {
    memset(tt, 0, sizeof *tt);
    tt->from_g = from_g;
    tt->g_weight = g_weight;
    char why[256];
    int rc = tencck_load(ck, cap, true, &tt->enc, why, sizeof why);
    if (rc) {
        log_error("checkpoint: text encoder: %s", why);
        return rc;
    }
    if (tenc_out_dim(tt->enc) != text_dim) {
        log_error("checkpoint: the text encoder makes vectors of %d, the model takes %d", tenc_out_dim(tt->enc),
                  text_dim);
        tenc_free(&tt->enc);
        return GB_EMISMATCH;
    }
    tt_buffers(tt, cap);
    return 0;
}

void train_text_grow(train_text_t *tt, int cap) {
    if (!tt->enc || cap <= tt->cap) return;
    tenc_desc_t d;
    tenc_to_desc(tt->enc, &d);
    tenc_t *ne = NULL;
    char why[256];
    int rc = tenc_new(&d, cap, 0, &ne, why, sizeof why);
    ASSERT(rc == 0);
    for (int i = 0; i < tenc_tensor_count(ne); i++) {
        const tenc_tensor_t *s = tenc_tensor(tt->enc, i), *t = tenc_tensor(ne, i);
        ASSERT(s->n == t->n);
        if (s->kind != TENC_T_GRAD) memcpy(t->data, s->data, s->n * sizeof(float));
    }
    *tenc_adam(ne) = *tenc_adam(tt->enc);
    tenc_free(&tt->enc);
    tt->enc = ne;
    tt_buffers(tt, cap);
}

void train_text_free(train_text_t *tt) {
    tenc_free(&tt->enc);
    free(tt->vec);
    free(tt->dtd);
    free(tt->dtg);
    free(tt->mis);
    free(tt->caps);
    memset(tt, 0, sizeof *tt);
}

void train_text_mismatch(rng_t *r, int N, int32_t *mis) {
    /* Sattolo's algorithm: a uniformly random N-cycle, so mis[i] != i */
    for (int i = 0; i < N; i++) mis[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint64_t)i);
        int32_t t = mis[i];
        mis[i] = mis[j];
        mis[j] = t;
    }
}

int train_text_step(train_text_t *tt, model_t *m, const Gambar__Batch *b, const float *real, const float *z,
                    model_stats_t *s) {
    int N = (int)b->n, T = tenc_out_dim(tt->enc);
    ASSERT(N <= tt->cap && b->n_captions == b->n);
    for (int i = 0; i < N; i++) tt->caps[i] = b->captions[i];
    char why[256];
    int rc = tenc_forward(tt->enc, tt->caps, N, tt->vec, why, sizeof why);
    if (rc) {
        log_error("batch seq %" PRIu64 ": captions: %s", b->seq, why);
        return rc;
    }
    tt->n_last = N;
    rc = model_train_step_text(m, real, b->labels, tt->vec, tt->mis, N, z, tt->vec, tt->dtd,
                               tt->from_g ? tt->dtg : NULL, s);
    if (rc) return rc;
    if (tt->from_g) {
        const float gw = (float)tt->g_weight;
        for (size_t i = 0; i < (size_t)N * T; i++) tt->dtd[i] += gw * tt->dtg[i];
    }
    tenc_zero_grad(tt->enc);
    tenc_backward(tt->enc, tt->dtd);
    double gn = nn_sumsq(tenc_param_count(tt->enc), tenc_grads(tt->enc));
    if (!isfinite(gn)) return GB_ENUMERIC;
    tenc_adam_step(tt->enc);
    return 0;
}

int train_text_finite(const tenc_t *e, const char **bad) {
    for (int i = 0; i < tenc_tensor_count(e); i++) {
        const tenc_tensor_t *t = tenc_tensor(e, i);
        if (t->kind == TENC_T_GRAD) continue;
        if (!nn_all_finite(t->n, t->data)) {
            if (bad) *bad = t->name;
            return 0;
        }
    }
    return 1;
}
