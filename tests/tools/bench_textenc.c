/* bench_textenc.c - how many captions per second the text encoder
 * (common/nn/textenc.h) encodes and back-propagates, at the sizes a
 * text-to-image run would use.
 *
 * Prints `bench: NAME VALUE UNIT` lines (scripts/bench/textenc.sh runs it):
 *   tenc_texts_per_s   zero_grad + forward + backward on batches of 64
 *                      fashion-like captions (6..19 words, with a product
 *                      number as a long tail of rare words), median of runs
 *   tenc_adam_ms       one dense Adam step over all encoder parameters
 * Sizes: vocabulary from 4,000 generated captions (words seen at least
 * twice, at most 4,096), 1,024 hash buckets, 4,096 bigram buckets,
 * D_e = D_out = 128, max_tokens 32, tanh.
 * Usage: bench_textenc [--embed N] [--out N] [--batch N] */
#include "base.h"
#include "rng.h"
#include "textenc.h"

#define RUNS 9

static const char *const k_adj[] = {"dark", "light", "navy", "red", "white", "black", "striped", "floral",
                                    "long-sleeved", "short", "slim", "loose", "cotton", "denim", "wool", "silk"};
static const char *const k_item[] = {"shirt", "t-shirt", "trousers", "dress", "coat", "jacket", "sweater",
                                     "skirt", "sneakers", "boots", "bag", "hoodie", "blouse", "jeans"};
static const char *const k_tail[] = {"with buttons", "with a collar", "for women", "for men", "and a belt",
                                     "with pockets", "on a white background", "with a zip", "in size M"};

static void caption(rng_t *r, char *buf, size_t len) {
    size_t off = (size_t)snprintf(buf, len, "a");
    int na = 1 + (int)rng_below(r, 4);
    for (int i = 0; i < na; i++)
        off += (size_t)snprintf(buf + off, len - off, " %s", k_adj[rng_below(r, ARRAY_LEN(k_adj))]);
    off += (size_t)snprintf(buf + off, len - off, " %s", k_item[rng_below(r, ARRAY_LEN(k_item))]);
    /* a product number: a long tail of rare words, as real captions have */
    off += (size_t)snprintf(buf + off, len - off, " model %d", (int)rng_below(r, 3000));
    int nt = 1 + (int)rng_below(r, 3);
    for (int i = 0; i < nt; i++)
        off += (size_t)snprintf(buf + off, len - off, " %s", k_tail[rng_below(r, ARRAY_LEN(k_tail))]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int De = 128, Do = 128, N = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--embed") == 0) De = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--out") == 0) Do = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0) N = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_textenc [--embed N] [--out N] [--batch N]\n");
            return 2;
        }
    }
    if (De < 1 || Do < 1 || N < 1) {
        fprintf(stderr, "bench_textenc: sizes must be positive\n");
        return 2;
    }
    rng_t r;
    rng_seed(&r, 7);
    char buf[256], err[256];
    tenc_counter_t *c = tenc_counter_new(32);
    for (int i = 0; i < 4000; i++) {
        caption(&r, buf, sizeof buf);
        ASSERT(tenc_counter_add(c, buf, err, sizeof err) == 0);
    }
    char **vocab;
    int V;
    tenc_counter_vocab(c, 2, 4096, &vocab, &V);
    tenc_counter_free(&c);
    tenc_desc_t d = {.vocab = (const char *const *)vocab, .vocab_size = V, .hash_buckets = 1024,
                     .bigram_buckets = 4096, .embed_dim = De, .out_dim = Do, .max_tokens = 32,
                     .act = TENC_ACT_TANH, .tokenizer_version = TENC_TOKENIZER_VERSION};
    tenc_t *e;
    if (tenc_new(&d, N, 1, &e, err, sizeof err) != 0) {
        fprintf(stderr, "bench_textenc: %s\n", err);
        return 1;
    }
    tenc_vocab_free(vocab, V);
    /* 16 batches of captions, cycled */
    enum { NB = 16 };
    char (*cap)[256] = xmalloc((size_t)NB * (size_t)N * sizeof *cap);
    const char **texts = xmalloc((size_t)NB * (size_t)N * sizeof *texts);
    size_t words = 0;
    for (int i = 0; i < NB * N; i++) {
        caption(&r, cap[i], sizeof cap[i]);
        texts[i] = cap[i];
        tenc_tokens_t t;
        ASSERT(tenc_tokenize(cap[i], strlen(cap[i]), 32, &t, err, sizeof err) == 0);
        words += (size_t)t.n;
    }
    float *y = xmalloc((size_t)N * (size_t)Do * sizeof *y), *dy = xmalloc((size_t)N * (size_t)Do * sizeof *dy);
    for (size_t i = 0; i < (size_t)N * (size_t)Do; i++) dy[i] = rng_uniform(&r) - 0.5f;
    fprintf(stderr, "bench_textenc: V %d, %zu parameters, batch %d, %.1f words per caption\n", V,
            tenc_param_count(e), N, (double)words / (NB * N));

    double rates[RUNS], adam[RUNS];
    for (int run = -1; run < RUNS; run++) { /* run -1 warms up */
        int iters = 0;
        double t0 = gb_now(), t;
        do {
            tenc_zero_grad(e);
            ASSERT(tenc_forward(e, texts + (size_t)(iters % NB) * (size_t)N, N, y, err, sizeof err) == 0);
            tenc_backward(e, dy);
            iters++;
        } while ((t = gb_now() - t0) < 0.1);
        double ta0 = gb_now();
        tenc_adam_step(e);
        double ta = gb_now() - ta0;
        if (run >= 0) {
            rates[run] = (double)iters * N / t;
            adam[run] = ta * 1e3;
        }
    }
    qsort(rates, RUNS, sizeof *rates, cmp_double);
    qsort(adam, RUNS, sizeof *adam, cmp_double);
    printf("bench: tenc_texts_per_s %.0f texts/s\n", rates[RUNS / 2]);
    printf("bench: tenc_adam_ms %.3f ms\n", adam[RUNS / 2]);
    free(cap);
    free(texts);
    free(y);
    free(dy);
    tenc_free(&e);
    return 0;
}
