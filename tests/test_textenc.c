/* test_textenc.c - the text encoder (common/nn/textenc.h) and its
 * checkpoint glue (common/io/tencck.h).
 *
 * Evidence, each independent of the code under test:
 *   - the tokenizer against hand-written expected words (case, punctuation,
 *     apostrophes, hyphens, multibyte UTF-8 kept, invalid UTF-8 refused,
 *     word and token caps, empty texts);
 *   - FNV-1a against the published test vectors of its authors;
 *   - the vocabulary builder: cut-off, cap, order (count, then bytes),
 *     independence from the order of the texts;
 *   - forward against a double-precision reference written here from the
 *     definitions (own FNV-1a, own word ids by linear search, hand-made
 *     token lists), both activations;
 *   - backward against central finite differences of that reference, for
 *     every element of every parameter tensor (untouched rows must get
 *     exactly zero), and accumulation across calls;
 *   - learning: encoder + a linear softmax classifier trained with Adam
 *     separate garment x colour captions, and (order test) the colour of
 *     the shirt in "a dark shirt with light trousers" vs "a light shirt
 *     with dark trousers", which share every word: it must be learnt with
 *     bigrams and must NOT be learnable with a single bigram bucket (the
 *     ablation shows the test can fail); runs are bit-for-bit repeatable;
 *   - the checkpoint round trip (file written and read back) giving the
 *     same outputs bit for bit, and refusals of bad checkpoints;
 *   - unknown-word reporting;
 *   - the fuzz harness (tests/fuzz/fuzz_textenc.c, its invariants) on its
 *     seeds and on thousands of mutations of them. */
#include "base.h"
#include "ckpt.h"
#include "err.h"
#include "log.h"
#include "rng.h"
#include "tencck.h"
#include "test.h"
#include "textenc.h"

#define LLVMFuzzerTestOneInput fuzz_textenc_one
#include "fuzz/fuzz_textenc.c"
#undef LLVMFuzzerTestOneInput

#include <dirent.h>
#include <math.h>

/* ---- helpers ------------------------------------------------------------------ */

static int tok(const char *s, tenc_tokens_t *t, int max_tokens) {
    char err[128];
    return tenc_tokenize(s, strlen(s), max_tokens, t, err, sizeof err);
}

/* Tokens of s equal the NULL-terminated list want. */
static int tok_is(const char *s, const char *const *want) {
    tenc_tokens_t t;
    if (tok(s, &t, 32) != 0) {
        fprintf(stderr, "  tokenize('%s') failed\n", s);
        return 0;
    }
    int n = 0;
    while (want[n]) n++;
    int same = t.n == n;
    for (int i = 0; same && i < n; i++)
        same = strcmp(t.word[i], want[i]) == 0 && t.len[i] == strlen(want[i]);
    if (!same) {
        fprintf(stderr, "  tokenize('%s') gave %d words:", s, t.n);
        for (int i = 0; i < t.n; i++) fprintf(stderr, " [%s]", t.word[i]);
        fprintf(stderr, "\n");
    }
    return same;
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})
#define W0 ((const char *const[]){NULL})

/* FNV-1a 64, written again here from the definition. */
static uint64_t ref_fnv(const char *a, int with_b, const char *b) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    if (with_b) {
        h = (h ^ 0u) * 0x100000001b3ull;
        for (const unsigned char *p = (const unsigned char *)b; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    }
    return h;
}

static tenc_desc_t mkdesc(const char *const *vocab, int V, int B, int B2, int De, int Do, int T, tenc_act_t act) {
    return (tenc_desc_t){.vocab = vocab, .vocab_size = V, .hash_buckets = B, .bigram_buckets = B2,
                         .embed_dim = De, .out_dim = Do, .max_tokens = T, .act = act,
                         .tokenizer_version = TENC_TOKENIZER_VERSION};
}

static tenc_t *mkenc(const tenc_desc_t *d, int max_batch, uint64_t seed) {
    tenc_t *e = NULL;
    char err[256];
    int rc = tenc_new(d, max_batch, seed, &e, err, sizeof err);
    if (rc != 0) fprintf(stderr, "tenc_new: %s\n", err);
    ASSERT(rc == 0);
    return e;
}

/* ---- tokenizer ------------------------------------------------------------------ */

static void test_fnv_vectors(void) {
    /* Published FNV-1a 64 test vectors (Fowler/Noll/Vo). */
    CHECK(tenc_fnv1a("", 0) == 0xcbf29ce484222325ull);
    CHECK(tenc_fnv1a("a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(tenc_fnv1a("foobar", 6) == 0x85944171f73967e8ull);
    CHECK(ref_fnv("foobar", 0, NULL) == 0x85944171f73967e8ull);
}

static void test_tokenize_rules(void) {
    CHECK(tok_is("Dark SHIRT", W("dark", "shirt")));
    CHECK(tok_is("  a red,long-sleeved T-shirt!! ", W("a", "red", "long", "sleeved", "t", "shirt")));
    CHECK(tok_is("size 42/44 (XL)", W("size", "42", "44", "xl")));
    /* apostrophes join inside a word, separate elsewhere */
    CHECK(tok_is("men's coat", W("mens", "coat")));
    CHECK(tok_is("men\xe2\x80\x99s coat", W("mens", "coat"))); /* U+2019 */
    CHECK(tok_is("'quoted' words'", W("quoted", "words")));
    CHECK(tok_is("rock''n roll", W("rock", "n", "roll")));
    CHECK(tok_is("don't", W("dont")));
    /* multibyte UTF-8 kept inside words, ASCII lower-cased only */
    CHECK(tok_is("Caf\xc3\xa9 \xc3\x89T\xc3\x89", W("caf\xc3\xa9", "\xc3\x89t\xc3\x89")));
    CHECK(tok_is("\xe7\xba\xa2\xe8\x89\xb2 shirt", W("\xe7\xba\xa2\xe8\x89\xb2", "shirt")));
    CHECK(tok_is("emoji\xf0\x9f\x91\x95tee", W("emoji\xf0\x9f\x91\x95tee")));
    /* U+00A0 separates */
    CHECK(tok_is("a\xc2\xa0" "b", W("a", "b")));
    /* empty and punctuation-only texts */
    CHECK(tok_is("", W0));
    CHECK(tok_is(" ,.;!?-- '' ", W0));
    /* NUL and control characters separate (explicit length) */
    tenc_tokens_t t;
    char err[128];
    CHECK(tenc_tokenize("ab\0cd\tef", 8, 32, &t, err, sizeof err) == 0 && t.n == 3 &&
          strcmp(t.word[1], "cd") == 0);
}

static void test_tokenize_invalid(void) {
    static const char *const bad[] = {
        "\xff",                 /* never valid */
        "ok \x80",              /* lone continuation */
        "\xc0\xaf",             /* overlong '/' */
        "\xe0\x80\xaf",         /* overlong, 3 bytes */
        "\xed\xa0\x80",         /* surrogate U+D800 */
        "\xf4\x90\x80\x80",     /* above U+10FFFF */
        "\xf8\x88\x80\x80\x80", /* 5-byte form */
        "caf\xc3",              /* truncated at the end */
        "\xe2\x82 x",           /* truncated in the middle */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        tenc_tokens_t t;
        t.n = 7;
        char err[128] = "";
        int rc = tenc_tokenize(bad[i], strlen(bad[i]), 32, &t, err, sizeof err);
        CHECKF(rc == GB_EFORMAT && t.n == 0 && strstr(err, "invalid UTF-8 at byte"), "case %zu rc %d err '%s'", i,
               rc, err);
    }
    char err[128];
    tenc_tokens_t t;
    CHECK(tenc_tokenize("ok \x80", 4, 32, &t, err, sizeof err) == GB_EFORMAT && strstr(err, "byte 3"));
    /* the largest valid forms pass */
    CHECK(tok_is("\xf4\x8f\xbf\xbf \xef\xbf\xbf", W("\xf4\x8f\xbf\xbf", "\xef\xbf\xbf")));
}

static void test_tokenize_caps(void) {
    char buf[1024] = "";
    for (int i = 0; i < 40; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "w%d ", i);
    tenc_tokens_t t;
    CHECK(tok(buf, &t, 32) == 0 && t.n == 32 && t.truncated && strcmp(t.word[31], "w31") == 0);
    CHECK(tok(buf, &t, 40) == 0 && t.n == 40 && !t.truncated);
    CHECK(tok(buf, &t, 1) == 0 && t.n == 1 && t.truncated && strcmp(t.word[0], "w0") == 0);
    /* long words: cut at TENC_MAX_WORD bytes, on a code point boundary */
    char lw[200];
    memset(lw, 'A', 60);
    strcpy(lw + 60, " next");
    CHECK(tok(lw, &t, 32) == 0 && t.n == 2 && t.len[0] == TENC_MAX_WORD && t.word[0][0] == 'a' &&
          strcmp(t.word[1], "next") == 0);
    memset(lw, 'a', TENC_MAX_WORD - 1);
    strcpy(lw + TENC_MAX_WORD - 1, "\xc3\xa9z"); /* 47 + 2 bytes: the e-acute does not fit, nor z after it */
    CHECK(tok(lw, &t, 32) == 0 && t.n == 1 && t.len[0] == TENC_MAX_WORD - 1 &&
          (unsigned char)t.word[0][TENC_MAX_WORD - 2] == 'a');
}

/* ---- vocabulary ---------------------------------------------------------------- */

static const char *const k_corpus[] = {
    "a dark shirt", "A light shirt", "dark trousers", "the dark coat", "light coat!", "zebra", "Shirt",
};

static void test_vocab(void) {
    tenc_counter_t *c = tenc_counter_new(32);
    char err[128];
    for (size_t i = 0; i < ARRAY_LEN(k_corpus); i++) CHECK(tenc_counter_add(c, k_corpus[i], err, sizeof err) == 0);
    CHECK(tenc_counter_add(c, "bad \xff", err, sizeof err) == GB_EFORMAT);
    CHECK(tenc_counter_distinct(c) == 8); /* a dark shirt light trousers the coat zebra */
    char **v;
    int n;
    tenc_counter_vocab(c, 2, 100, &v, &n);
    /* counts: shirt 3, dark 3, light 2, a 2, coat 2; ties in byte order */
    static const char *const want[] = {"dark", "shirt", "a", "coat", "light"};
    CHECK(n == 5);
    for (int i = 0; i < n && i < 5; i++) CHECKF(strcmp(v[i], want[i]) == 0, "%d: %s", i, v[i]);
    tenc_vocab_free(v, n);
    tenc_counter_vocab(c, 1, 3, &v, &n); /* the cap keeps the most frequent */
    CHECK(n == 3 && strcmp(v[0], "dark") == 0 && strcmp(v[2], "a") == 0);
    tenc_vocab_free(v, n);
    tenc_counter_vocab(c, 4, 100, &v, &n);
    CHECK(n == 0 && v != NULL);
    tenc_vocab_free(v, n);
    /* the same texts in reverse order (and many more distinct words, to
     * make the table grow) give the same vocabulary */
    tenc_counter_t *c2 = tenc_counter_new(32);
    tenc_counter_t *c3 = tenc_counter_new(32);
    for (int i = 0; i < 500; i++) {
        char s[64];
        snprintf(s, sizeof s, "word%d and w%d", i, i % 7);
        CHECK(tenc_counter_add(c2, s, err, sizeof err) == 0);
        snprintf(s, sizeof s, "word%d and w%d", 499 - i, (499 - i) % 7);
        CHECK(tenc_counter_add(c3, s, err, sizeof err) == 0);
    }
    char **v2, **v3;
    int n2, n3;
    tenc_counter_vocab(c2, 1, 50, &v2, &n2);
    tenc_counter_vocab(c3, 1, 50, &v3, &n3);
    CHECK(n2 == 50 && n3 == 50 && strcmp(v2[0], "and") == 0 && strcmp(v2[1], "w0") == 0);
    for (int i = 0; i < n2 && i < n3; i++) CHECK(strcmp(v2[i], v3[i]) == 0);
    tenc_vocab_free(v2, n2);
    tenc_vocab_free(v3, n3);
    tenc_counter_free(&c);
    tenc_counter_free(&c2);
    tenc_counter_free(&c3);
    CHECK(c == NULL);
}

/* ---- forward and backward against the reference ---------------------------------- */

static const char *const k_vocab[] = {"dark", "shirt", "light", "a", "coat"};
#define K_V 5
#define K_B 3
#define K_B2 4
#define K_DE 6
#define K_DO 5

/* Texts and their words, tokenised by hand. */
static const char *const k_texts[] = {"Dark shirt", "light SHIRT, zebra!", "", "zebra zebra dark",
                                      "a coat-a COAT", "unknownword"};
static const char *const *const k_words[] = {W("dark", "shirt"), W("light", "shirt", "zebra"), W0,
                                             W("zebra", "zebra", "dark"), W("a", "coat", "a", "coat"),
                                             W("unknownword")};
#define K_N 6

typedef struct {
    double *Ew, *Eb, *W, *b; /* (V+B, De), (B2, De), (Do, De), (Do) */
} refp_t;

static int ref_id(const char *w) {
    for (int i = 0; i < K_V; i++)
        if (strcmp(k_vocab[i], w) == 0) return i;
    return K_V + (int)(ref_fnv(w, 0, NULL) % K_B);
}

/* The pair window the reference uses (textenc.h; 0 and 1: adjacent). */
static int g_ref_window;

/* y[K_N][K_DO] from the definitions, in double. */
static void ref_forward(const refp_t *p, tenc_act_t act, double *y) {
    for (int i = 0; i < K_N; i++) {
        const char *const *w = k_words[i];
        int n = 0;
        while (w[n]) n++;
        double s[K_DE] = {0};
        for (int t = 0; t < n; t++)
            for (int k = 0; k < K_DE; k++) s[k] += p->Ew[ref_id(w[t]) * K_DE + k];
        int npairs = 0;
        for (int t = 0; t < n; t++)
            for (int u = t + 1; u < n && u - t <= (g_ref_window > 1 ? g_ref_window : 1); u++) {
                int bkt = (int)(ref_fnv(w[t], 1, w[u]) % K_B2);
                for (int k = 0; k < K_DE; k++) s[k] += p->Eb[bkt * K_DE + k];
                npairs++;
            }
        for (int k = 0; k < K_DE && n > 0; k++) s[k] /= (double)(n + npairs);
        for (int o = 0; o < K_DO; o++) {
            double z = p->b[o];
            for (int k = 0; k < K_DE; k++) z += p->W[o * K_DE + k] * s[k];
            y[i * K_DO + o] = act == TENC_ACT_TANH ? tanh(z) : z;
        }
    }
}

/* A double copy of e's parameters, laid out as its block. */
static double *params_d(tenc_t *e, refp_t *p) {
    size_t np = tenc_param_count(e);
    double *d = xmalloc(np * sizeof *d);
    for (size_t i = 0; i < np; i++) d[i] = tenc_params(e)[i];
    p->Ew = d + (tenc_find(e, "T.embed.weight")->data - tenc_params(e));
    p->Eb = d + (tenc_find(e, "T.bigram.weight")->data - tenc_params(e));
    p->W = d + (tenc_find(e, "T.proj.weight")->data - tenc_params(e));
    p->b = d + (tenc_find(e, "T.proj.bias")->data - tenc_params(e));
    return d;
}

static void test_forward_reference(void) {
    for (int a = 0; a < 4; a++) {
        tenc_act_t act = a & 1 ? TENC_ACT_TANH : TENC_ACT_LINEAR;
        tenc_desc_t d = mkdesc(k_vocab, K_V, K_B, K_B2, K_DE, K_DO, 32, act);
        d.pair_window = g_ref_window = a < 2 ? 0 : 2; /* adjacent pairs, then pairs up to 2 apart */
        tenc_t *e = mkenc(&d, 8, 11);
        /* shapes of the table */
        const tenc_tensor_t *t = tenc_find(e, "T.embed.weight");
        CHECK(t && t->ndim == 2 && t->shape[0] == K_V + K_B && t->shape[1] == K_DE);
        t = tenc_find(e, "T.bigram.weight");
        CHECK(t && t->shape[0] == K_B2 && t->shape[1] == K_DE);
        t = tenc_find(e, "T.proj.weight");
        CHECK(t && t->shape[0] == K_DO && t->shape[1] == K_DE);
        t = tenc_find(e, "T.proj.bias");
        CHECK(t && t->ndim == 1 && t->shape[0] == K_DO);
        CHECK(tenc_param_count(e) == (K_V + K_B + K_B2) * K_DE + K_DO * K_DE + K_DO);
        CHECK(tenc_find(e, "OPT.T.v.proj.bias") && tenc_find(e, "GRAD.T.embed.weight"));

        float y[K_N * K_DO];
        char err[128];
        CHECK(tenc_forward(e, k_texts, K_N, y, err, sizeof err) == 0);
        refp_t p;
        double *pd = params_d(e, &p), yr[K_N * K_DO];
        ref_forward(&p, act, yr);
        double maxerr = 0;
        for (int i = 0; i < K_N * K_DO; i++) maxerr = fmax(maxerr, fabs(y[i] - yr[i]) / fmax(1.0, fabs(yr[i])));
        printf("# forward %s, pair window %d: max rel error vs double reference %.3g\n", a & 1 ? "tanh" : "linear",
               d.pair_window, maxerr);
        CHECK(maxerr < 1e-5);
        /* the empty text is act(b) */
        for (int o = 0; o < K_DO; o++) {
            float bo = tenc_find(e, "T.proj.bias")->data[o];
            CHECK(y[2 * K_DO + o] == (a & 1 ? tanhf(bo) : bo));
        }
        CHECK(tenc_info(e, 2)->empty && tenc_info(e, 2)->n_tokens == 0);
        CHECK(!tenc_info(e, 0)->empty && tenc_info(e, 0)->n_tokens == 2 && tenc_info(e, 0)->n_unknown == 0);
        CHECK(tenc_info(e, 1)->n_unknown == 1 && tenc_info(e, 3)->n_unknown == 2 && tenc_info(e, 5)->n_unknown == 1);
        /* determinism: the same call again gives the same bits, in any batch position */
        float y2[K_N * K_DO];
        CHECK(tenc_forward(e, k_texts, K_N, y2, err, sizeof err) == 0 && memcmp(y, y2, sizeof y) == 0);
        const char *one[1] = {k_texts[3]};
        CHECK(tenc_forward(e, one, 1, y2, err, sizeof err) == 0 &&
              memcmp(y2, y + 3 * K_DO, K_DO * sizeof(float)) == 0);
        /* window 1 is window 0 (the first encoders'), bit for bit; window 2
         * changes exactly the texts of 3 words or more */
        tenc_desc_t d1 = d;
        d1.pair_window = d.pair_window ? 1 : 0;
        tenc_t *e1 = mkenc(&d1, 8, 11);
        float y1[K_N * K_DO];
        CHECK(tenc_forward(e1, k_texts, K_N, y1, err, sizeof err) == 0);
        for (int i = 0; i < K_N; i++) {
            int same = memcmp(y1 + i * K_DO, y + i * K_DO, K_DO * sizeof(float)) == 0;
            int nw = tenc_info(e1, i)->n_tokens;
            CHECKF(same == (d.pair_window < 2 || nw < 3), "text %d (%d words), windows %d and %d: same %d", i, nw,
                   d1.pair_window, d.pair_window, same);
        }
        tenc_free(&e1);
        free(pd);
        tenc_free(&e);
    }
    g_ref_window = 0;
}

static void test_backward_fd(void) {
    for (int a = 0; a < 4; a++) {
        tenc_act_t act = a & 1 ? TENC_ACT_TANH : TENC_ACT_LINEAR;
        tenc_desc_t d = mkdesc(k_vocab, K_V, K_B, K_B2, K_DE, K_DO, 32, act);
        d.pair_window = g_ref_window = a < 2 ? 1 : 3;
        tenc_t *e = mkenc(&d, 8, 5);
        rng_t r;
        rng_seed(&r, 77);
        float dout[K_N * K_DO], y[K_N * K_DO];
        for (int i = 0; i < K_N * K_DO; i++) dout[i] = rng_uniform(&r) * 2 - 1;
        char err[128];
        CHECK(tenc_forward(e, k_texts, K_N, y, err, sizeof err) == 0);
        tenc_zero_grad(e);
        tenc_backward(e, dout);
        refp_t p;
        double *pd = params_d(e, &p), yp[K_N * K_DO], ym[K_N * K_DO];
        const float *g = tenc_grads(e);
        const double h = 1e-6;
        for (int ti = 0; ti < TENC_N_PARAM_TENSORS; ti++) {
            const tenc_tensor_t *t = tenc_tensor(e, ti);
            size_t off = (size_t)(t->data - tenc_params(e));
            double maxd = 0, maxfd = 0;
            int zero_bad = 0, n_zero = 0;
            for (size_t j = 0; j < t->n; j++) {
                double keep = pd[off + j];
                pd[off + j] = keep + h;
                ref_forward(&p, act, yp);
                pd[off + j] = keep - h;
                ref_forward(&p, act, ym);
                pd[off + j] = keep;
                double fd = 0;
                for (int i = 0; i < K_N * K_DO; i++) fd += dout[i] * (yp[i] - ym[i]) / (2 * h);
                double gj = g[off + j];
                if (fd == 0) { /* an untouched row: exactly zero, not approximately */
                    n_zero++;
                    if (gj != 0) zero_bad++;
                }
                maxd = fmax(maxd, fabs(gj - fd));
                maxfd = fmax(maxfd, fabs(fd));
            }
            double rel = maxd / fmax(maxfd, 1e-12);
            printf("# backward %s, pair window %d, %s max|g-fd| %.3g, relative %.3g (%d untouched elements)\n",
                   a & 1 ? "tanh" : "linear", d.pair_window, t->name, maxd, rel, n_zero);
            CHECKF(rel < 1e-4, "%s relative error %g", t->name, rel);
            CHECKF(zero_bad == 0, "%s: %d untouched elements got a gradient", t->name, zero_bad);
            CHECK(maxfd > 0);
        }
        /* accumulation: a second backward adds the same again (up to
         * float rounding: the contributions are summed in another order) */
        float *g1 = xmalloc(tenc_param_count(e) * sizeof *g1);
        memcpy(g1, g, tenc_param_count(e) * sizeof *g1);
        tenc_backward(e, dout);
        double dev = 0;
        for (size_t j = 0; j < tenc_param_count(e); j++)
            dev = fmax(dev, fabs(g[j] - 2.0 * g1[j]) / fmax(1.0, fabs(2.0 * g1[j])));
        CHECKF(dev < 1e-6, "second backward: deviation %g from twice the first", dev);
        tenc_zero_grad(e);
        int zero = 1;
        for (size_t j = 0; j < tenc_param_count(e); j++) zero &= g[j] == 0;
        CHECK(zero);
        free(g1);
        free(pd);
        tenc_free(&e);
    }
    g_ref_window = 0;
}

/* ---- learning -------------------------------------------------------------------- */

static const char *const k_colour[] = {"dark", "light"};
static const char *const k_garment[] = {"shirt", "trousers", "dress", "coat"};

/* A caption and its label. task 0: garment x colour (8 classes) from one of
 * a few templates; task 1: two garments of opposite colours, label = the
 * shirt's colour (2 classes), order of the two phrases random. */
static int make_caption(rng_t *r, int task, char *buf, size_t len) {
    if (task == 0) {
        int c = (int)rng_below(r, 2), g = (int)rng_below(r, 4), tpl = (int)rng_below(r, 4);
        static const char *const fmt[] = {"a %s %s", "%s %s for women", "The %s %s, casual", "%s-coloured %s"};
        snprintf(buf, len, fmt[tpl], k_colour[c], k_garment[g]);
        return g * 2 + c;
    }
    int c = (int)rng_below(r, 2), g = 1 + (int)rng_below(r, 3);
    if (rng_below(r, 2))
        snprintf(buf, len, "a %s shirt with %s %s", k_colour[c], k_colour[1 - c], k_garment[g]);
    else
        snprintf(buf, len, "%s %s and a %s shirt", k_colour[1 - c], k_garment[g], k_colour[c]);
    return c;
}

typedef struct {
    double acc_before, acc_after;
    uint64_t digest; /* FNV-1a of the final parameters (repeatability) */
} learn_t;

/* Train encoder (tanh, D_out 16) + linear softmax classifier with Adam
 * (lr 1e-2) for `steps` batches of 64; accuracy on 256 fresh captions
 * before and after. */
static learn_t learn(int task, int bigram_buckets, int steps) {
    enum { N = 64, DO = 16, NEVAL = 256 };
    const int K = task == 0 ? 8 : 2;
    /* vocabulary from a sample of the training captions */
    rng_t r;
    rng_seed(&r, 1234 + (uint64_t)task);
    tenc_counter_t *c = tenc_counter_new(32);
    char err[128], buf[N][96];
    for (int i = 0; i < 200; i++) {
        make_caption(&r, task, buf[0], sizeof buf[0]);
        ASSERT(tenc_counter_add(c, buf[0], err, sizeof err) == 0);
    }
    char **vocab;
    int V;
    tenc_counter_vocab(c, 1, 1000, &vocab, &V);
    tenc_counter_free(&c);
    tenc_desc_t d = mkdesc((const char *const *)vocab, V, 16, bigram_buckets, 32, DO, 32, TENC_ACT_TANH);
    tenc_t *e = mkenc(&d, NEVAL, 99);
    tenc_vocab_free(vocab, V);
    tenc_adam(e)->lr = 1e-2f;
    /* classifier: logits = Wc y + bc */
    float Wc[8 * DO], bc[8] = {0}, gW[8 * DO], gb[8], mW[8 * DO] = {0}, vW[8 * DO] = {0}, mb[8] = {0}, vb[8] = {0};
    for (int i = 0; i < K * DO; i++) Wc[i] = (rng_uniform(&r) * 2 - 1) * 0.25f;
    adam_t opt = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    static float y[NEVAL * DO], dy[NEVAL * DO];
    const char *texts[NEVAL];
    static char ebuf[NEVAL][96];
    int elab[NEVAL], lab[N];
    rng_t re;
    rng_seed(&re, 555 + (uint64_t)task);
    for (int i = 0; i < NEVAL; i++) elab[i] = make_caption(&re, task, ebuf[i], sizeof ebuf[i]);
    learn_t res = {0};
    for (int step = 0; step <= steps; step++) {
        if (step == 0 || step == steps) { /* evaluate */
            for (int i = 0; i < NEVAL; i++) texts[i] = ebuf[i];
            ASSERT(tenc_forward(e, texts, NEVAL, y, err, sizeof err) == 0);
            int right = 0;
            for (int i = 0; i < NEVAL; i++) {
                int best = 0;
                float bestv = -1e30f;
                for (int k = 0; k < K; k++) {
                    float z = bc[k];
                    for (int j = 0; j < DO; j++) z += Wc[k * DO + j] * y[i * DO + j];
                    if (z > bestv) bestv = z, best = k;
                }
                right += best == elab[i];
            }
            if (step == 0) res.acc_before = right / (double)NEVAL;
            else res.acc_after = right / (double)NEVAL;
            if (step == steps) break;
        }
        for (int i = 0; i < N; i++) {
            lab[i] = make_caption(&r, task, buf[i], sizeof buf[i]);
            texts[i] = buf[i];
        }
        ASSERT(tenc_forward(e, texts, N, y, err, sizeof err) == 0);
        memset(gW, 0, sizeof gW);
        memset(gb, 0, sizeof gb);
        for (int i = 0; i < N; i++) { /* softmax cross-entropy, mean over the batch */
            float z[8], mx = -1e30f, sum = 0;
            for (int k = 0; k < K; k++) {
                z[k] = bc[k];
                for (int j = 0; j < DO; j++) z[k] += Wc[k * DO + j] * y[i * DO + j];
                mx = fmaxf(mx, z[k]);
            }
            for (int k = 0; k < K; k++) sum += (z[k] = expf(z[k] - mx));
            for (int j = 0; j < DO; j++) dy[i * DO + j] = 0;
            for (int k = 0; k < K; k++) {
                float dz = (z[k] / sum - (k == lab[i])) / N;
                gb[k] += dz;
                for (int j = 0; j < DO; j++) {
                    gW[k * DO + j] += dz * y[i * DO + j];
                    dy[i * DO + j] += dz * Wc[k * DO + j];
                }
            }
        }
        tenc_zero_grad(e);
        tenc_backward(e, dy);
        tenc_adam_step(e);
        adam_begin(&opt);
        adam_update(&opt, (size_t)K * DO, Wc, gW, mW, vW);
        adam_update(&opt, (size_t)K, bc, gb, mb, vb);
    }
    res.digest = tenc_fnv1a(tenc_params(e), tenc_param_count(e) * sizeof(float));
    tenc_free(&e);
    return res;
}

static void test_learn_attributes(void) {
    learn_t a = learn(0, 64, 300);
    printf("# learn garment x colour (8 classes): accuracy %.3f -> %.3f after 300 steps\n", a.acc_before,
           a.acc_after);
    CHECK(a.acc_before < 0.4);
    CHECK(a.acc_after >= 0.98);
    learn_t b = learn(0, 64, 300);
    CHECK(a.digest == b.digest && a.acc_after == b.acc_after); /* bit-for-bit repeatable */
}

static void test_learn_order(void) {
    learn_t a = learn(1, 64, 300);
    learn_t nob = learn(1, 1, 300); /* one bigram bucket: only the bag of words is informative */
    printf("# learn shirt colour by word order: accuracy %.3f -> %.3f with bigrams, %.3f -> %.3f with one "
           "bigram bucket\n",
           a.acc_before, a.acc_after, nob.acc_before, nob.acc_after);
    CHECK(a.acc_after >= 0.98);
    CHECK(nob.acc_after < 0.7);
}

/* ---- checkpoint --------------------------------------------------------------------- */

static void test_ckpt_roundtrip(void) {
    tenc_desc_t d = mkdesc(k_vocab, K_V, K_B, K_B2, K_DE, K_DO, 16, TENC_ACT_TANH);
    d.pair_window = 3;
    tenc_t *e = mkenc(&d, 8, 3);
    float y[K_N * K_DO], y2[K_N * K_DO], dout[K_N * K_DO];
    char err[256];
    for (int i = 0; i < K_N * K_DO; i++) dout[i] = (float)(i % 7) - 3;
    for (int s = 0; s < 3; s++) { /* a few Adam steps: moments and t non-trivial */
        CHECK(tenc_forward(e, k_texts, K_N, y, err, sizeof err) == 0);
        tenc_zero_grad(e);
        tenc_backward(e, dout);
        tenc_adam_step(e);
    }
    tenc_adam(e)->lr = 3e-3f;
    CHECK(tenc_forward(e, k_texts, K_N, y, err, sizeof err) == 0);

    ckpt_builder_t *b = ckpt_builder_new();
    tencck_store(e, true, b);
    char path[600];
    char *dir = xmalloc(600);
    snprintf(dir, 600, "%s/ck", test_tmpdir());
    CHECK(ckpt_save(dir, ckpt_builder_msg(b), 0, path, sizeof path, NULL) == 0);
    ckpt_builder_destroy(&b);
    Gambar__Checkpoint *ck = NULL;
    CHECK(ckpt_load(path, &ck, NULL) == 0);
    if (!ck) return;
    CHECK(ck->text_encoder && ck->text_encoder->n_vocab == K_V &&
          strcmp(ck->text_encoder->activation, "tanh") == 0 && ck->text_encoder->max_tokens == 16 &&
          ck->text_encoder->pair_window == 3);
    CHECK(ckpt_tensor(ck, "T.embed.weight") && ckpt_tensor(ck, "OPT.T.m.bigram.weight") &&
          !ckpt_tensor(ck, "GRAD.T.proj.bias"));
    tenc_t *e2 = NULL;
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == 0);
    if (e2) {
        CHECK(tenc_forward(e2, k_texts, 4, y2, err, sizeof err) == 0);
        CHECK(memcmp(y, y2, 4 * K_DO * sizeof(float)) == 0);
        CHECK(tenc_adam(e2)->t == 3 && tenc_adam(e2)->lr == 3e-3f);
        for (int i = 0; i < tenc_tensor_count(e); i++) {
            const tenc_tensor_t *t = tenc_tensor(e, i), *t2 = tenc_tensor(e2, i);
            if (t->kind == TENC_T_GRAD) continue;
            CHECKF(strcmp(t->name, t2->name) == 0 && memcmp(t->data, t2->data, t->n * sizeof(float)) == 0, "%s",
                   t->name);
        }
        tenc_desc_t d2;
        tenc_to_desc(e2, &d2);
        CHECK(d2.vocab_size == K_V && strcmp(d2.vocab[4], "coat") == 0 && d2.act == TENC_ACT_TANH &&
              d2.pair_window == 3);
        tenc_free(&e2);
    }
    /* without the optimizer: weights only, fresh moments */
    CHECK(tencck_load(ck, 4, false, &e2, err, sizeof err) == 0 && e2 && tenc_adam(e2)->t == 0);
    tenc_free(&e2);

    /* refusals (the message is edited in memory, then restored) */
    log_set_level(LOG_QUIET);
    Gambar__TextEncoderDesc *md = ck->text_encoder;
    char *keep = md->vocab[1];
    md->vocab[1] = "Shirt";
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == GB_EFORMAT && !e2 && strstr(err, "word 1"));
    md->vocab[1] = "dark"; /* duplicate */
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == GB_EFORMAT && strstr(err, "duplicate"));
    md->vocab[1] = keep;
    char *act = md->activation;
    md->activation = "relu";
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == GB_EFORMAT);
    md->activation = act;
    md->tokenizer_version = 2;
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == GB_EUNSUPPORTED);
    md->tokenizer_version = 1;
    md->embed_dim = K_DE + 1;
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == GB_EMISMATCH && strstr(err, "T.embed.weight"));
    md->embed_dim = K_DE;
    md->hash_buckets = 900000;
    md->bigram_buckets = 900000;
    md->embed_dim = 4000;
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == GB_ETOOBIG);
    md->hash_buckets = K_B;
    md->bigram_buckets = K_B2;
    md->embed_dim = K_DE;
    Gambar__Tensor *tt = (Gambar__Tensor *)ckpt_tensor(ck, "T.proj.weight");
    float nan = NAN, keepf;
    memcpy(&keepf, tt->data.data + 8, 4);
    memcpy(tt->data.data + 8, &nan, 4);
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == GB_ENUMERIC && strstr(err, "T.proj.weight") &&
          strstr(err, "index 2"));
    memcpy(tt->data.data + 8, &keepf, 4);
    Gambar__AdamState *as = md->adam;
    md->adam = NULL;
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == GB_ENOTFOUND);
    CHECK(tencck_load(ck, 4, false, &e2, err, sizeof err) == 0);
    tenc_free(&e2);
    md->adam = as;
    CHECK(tencck_load(ck, 4, true, &e2, err, sizeof err) == 0);
    tenc_free(&e2);
    ck->text_encoder = NULL; /* a checkpoint without text */
    CHECK(tencck_load(ck, 4, false, &e2, err, sizeof err) == GB_ENOTFOUND && strstr(err, "no text encoder"));
    ck->text_encoder = md;
    log_set_level(LOG_INFO);
    ckpt_free(&ck);

    /* a checkpoint written without an encoder loads as before */
    b = ckpt_builder_new();
    snprintf(dir, 600, "%s/ck0", test_tmpdir());
    CHECK(ckpt_save(dir, ckpt_builder_msg(b), 0, path, sizeof path, NULL) == 0);
    ckpt_builder_destroy(&b);
    CHECK(ckpt_load(path, &ck, NULL) == 0 && ck && ck->text_encoder == NULL);
    ckpt_free(&ck);
    free(dir);
    tenc_free(&e);
}

/* ---- unknown words, errors ----------------------------------------------------------- */

static void test_unknown_words(void) {
    const char *const vocab[] = {"dark", "shirt"};
    tenc_desc_t d = mkdesc(vocab, 2, 8, 8, 4, 3, 32, TENC_ACT_LINEAR);
    tenc_t *e = mkenc(&d, 2, 1);
    tenc_tokens_t u;
    char err[128];
    CHECK(tenc_unknown_words(e, "Dark zebra shirt, ZEBRA quux dark", &u, err, sizeof err) == 0);
    CHECK(u.n == 2 && strcmp(u.word[0], "zebra") == 0 && strcmp(u.word[1], "quux") == 0 && !u.truncated);
    CHECK(tenc_unknown_words(e, "dark shirt", &u, err, sizeof err) == 0 && u.n == 0);
    CHECK(tenc_unknown_words(e, "x\xff", &u, err, sizeof err) == GB_EFORMAT && u.n == 0);
    bool known;
    CHECK(tenc_word_id(e, "shirt", 5, &known) == 1 && known);
    int id = tenc_word_id(e, "zebra", 5, &known);
    CHECK(!known && id == 2 + (int)(ref_fnv("zebra", 0, NULL) % 8));
    /* an empty vocabulary: every word hashed */
    tenc_desc_t d0 = mkdesc(NULL, 0, 8, 8, 4, 3, 32, TENC_ACT_LINEAR);
    tenc_t *e0 = mkenc(&d0, 2, 1);
    CHECK(tenc_unknown_words(e0, "dark dark", &u, err, sizeof err) == 0 && u.n == 1);
    tenc_free(&e0);
    tenc_free(&e);
}

static void test_errors(void) {
    const char *const vocab[] = {"dark", "shirt"};
    tenc_desc_t d = mkdesc(vocab, 2, 8, 8, 4, 3, 32, TENC_ACT_LINEAR);
    tenc_t *e = mkenc(&d, 2, 1);
    float y[3 * 3];
    char err[128];
    const char *nul[2] = {NULL, "dark"};
    CHECK(tenc_forward(e, nul, 2, y, err, sizeof err) == 0 && tenc_info(e, 0)->empty && !tenc_info(e, 1)->empty);
    const char *texts[3] = {"ok", "bad \xc3", "ok"};
    CHECK(tenc_forward(e, texts, 3, y, err, sizeof err) == GB_ETOOBIG);
    CHECK(tenc_forward(e, texts, 2, y, err, sizeof err) == GB_EFORMAT && strstr(err, "text 1") &&
          strstr(err, "byte 4"));
    tenc_free(&e);
    /* descriptions tenc_new refuses */
    const char *const upper[] = {"Dark"}, *const two[] = {"a b"}, *const empty[] = {""}, *const dup[] = {"a", "a"};
    const char *const punct[] = {"t-shirt"}, *const bad8[] = {"\xff"};
    struct { const char *const *v; int n; } bad[] = {{upper, 1}, {two, 1}, {empty, 1}, {dup, 2}, {punct, 1}, {bad8, 1}};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        tenc_desc_t b = mkdesc(bad[i].v, bad[i].n, 8, 8, 4, 3, 32, TENC_ACT_LINEAR);
        CHECKF(tenc_new(&b, 2, 1, &e, err, sizeof err) == GB_EFORMAT && e == NULL, "case %zu", i);
    }
    tenc_desc_t b = mkdesc(vocab, 2, 0, 8, 4, 3, 32, TENC_ACT_LINEAR);
    CHECK(tenc_desc_check(&b, err, sizeof err) == GB_EFORMAT && strstr(err, "hash_buckets"));
    b = mkdesc(vocab, 2, 8, 8, 4, 3, TENC_MAX_TOKENS + 1, TENC_ACT_LINEAR);
    CHECK(tenc_desc_check(&b, err, sizeof err) == GB_EFORMAT && strstr(err, "max_tokens"));
    b = mkdesc(vocab, 2, 8, 8, 0, 3, 32, TENC_ACT_LINEAR);
    CHECK(tenc_desc_check(&b, err, sizeof err) == GB_EFORMAT);
    b = mkdesc(vocab, 2, 8, 8, 4, 3, 32, (tenc_act_t)7);
    CHECK(tenc_desc_check(&b, err, sizeof err) == GB_EFORMAT);
    b = mkdesc(vocab, 2, 8, 8, 4, 3, 32, TENC_ACT_LINEAR);
    b.tokenizer_version = 0;
    CHECK(tenc_desc_check(&b, err, sizeof err) == GB_EUNSUPPORTED);
    b = mkdesc(vocab, 2, 8, 8, 4, 3, 32, TENC_ACT_LINEAR);
    b.pair_window = -1;
    CHECK(tenc_desc_check(&b, err, sizeof err) == GB_EFORMAT && strstr(err, "pair_window"));
    b.pair_window = TENC_MAX_TOKENS;
    CHECK(tenc_desc_check(&b, err, sizeof err) == GB_EFORMAT && strstr(err, "pair_window"));
    b.pair_window = TENC_MAX_TOKENS - 1; /* every pair of the longest text */
    CHECK(tenc_desc_check(&b, err, sizeof err) == 0);
    b = mkdesc(vocab, 2, 8, 8, 4, 3, 32, TENC_ACT_LINEAR);
    CHECK(tenc_desc_check(&b, err, sizeof err) == 0);
}

/* ---- the fuzz harness's invariants on seeds and mutations ----------------------------- */

static int replay_seeds(uint8_t seeds[][256], size_t *lens, int max) {
    const char *root = getenv("GAMBAR_ROOT");
    char dir[1024], f[2048];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/seeds/fuzz_textenc", root && *root ? root : ".");
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        if (de->d_name[0] == '.') continue;
        snprintf(f, sizeof f, "%s/%.900s", dir, de->d_name);
        FILE *fp = fopen(f, "rb");
        if (!fp) continue;
        lens[n] = fread(seeds[n], 1, 256, fp);
        fclose(fp);
        uint8_t *exact = xmalloc(lens[n] ? lens[n] : 1); /* exact size: ASan sees overreads */
        memcpy(exact, seeds[n], lens[n]);
        fuzz_textenc_one(exact, lens[n]);
        free(exact);
        n++;
    }
    closedir(d);
    return n;
}

static void test_fuzz_mutations(void) {
    static uint8_t seeds[16][256];
    size_t lens[16];
    int ns = replay_seeds(seeds, lens, 16);
    CHECKF(ns >= 3, "%d seeds (run from the repository root or set GAMBAR_ROOT)", ns);
    if (ns < 1) return;
    /* bytes that matter to the tokenizer, to splice in */
    static const char *const pieces[] = {"'", "\xe2\x80\x99", "\xc2\xa0", "\xc3\xa9", "\xf0\x9f\x91\x95", "\xed\xa0\x80",
                                         "\xc0\xaf", "\xff", "\xe2\x82", "-", " ", "A", "\0"};
    rng_t r;
    rng_seed(&r, 99);
    uint8_t m[600];
    int ok_n = 0, bad_n = 0;
    for (int it = 0; it < 20000; it++) {
        int k = (int)rng_below(&r, (uint64_t)ns);
        size_t len = lens[k];
        memcpy(m, seeds[k], len);
        int edits = 1 + (int)rng_below(&r, 6);
        for (int e = 0; e < edits; e++) {
            size_t at = len ? (size_t)rng_below(&r, len) : 0;
            switch (rng_below(&r, 4)) {
            case 0: if (len) m[at] = (uint8_t)rng_u64(&r); break;
            case 1: if (len) m[at] ^= (uint8_t)(1u << rng_below(&r, 8)); break;
            case 2: len = at; break;
            default: {
                const char *p = pieces[rng_below(&r, ARRAY_LEN(pieces))];
                size_t pl = *p ? strlen(p) : 1;
                if (len + pl <= sizeof m) {
                    memmove(m + at + pl, m + at, len - at);
                    memcpy(m + at, p, pl);
                    len += pl;
                }
            }
            }
        }
        uint8_t *exact = xmalloc(len ? len : 1);
        memcpy(exact, m, len);
        fuzz_textenc_one(exact, len);
        tenc_tokens_t t;
        char err[128];
        if (len && tenc_tokenize((const char *)exact + 1, len - 1, 32, &t, err, sizeof err) == 0) ok_n++;
        else bad_n++;
        free(exact);
    }
    printf("# fuzz mutations: %d valid texts, %d refused or empty inputs\n", ok_n, bad_n);
    CHECK(ok_n > 1000 && bad_n > 1000);
}

int main(void) {
    log_init("test_textenc");
    RUN(test_fnv_vectors);
    RUN(test_tokenize_rules);
    RUN(test_tokenize_invalid);
    RUN(test_tokenize_caps);
    RUN(test_vocab);
    RUN(test_forward_reference);
    RUN(test_backward_fd);
    RUN(test_learn_attributes);
    RUN(test_learn_order);
    RUN(test_ckpt_roundtrip);
    RUN(test_unknown_words);
    RUN(test_errors);
    RUN(test_fuzz_mutations);
    return test_done();
}
