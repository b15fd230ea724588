/* textenc.c - tokenizer, vocabulary counter and the bag-of-words-and-
 * bigrams sentence encoder (see textenc.h for the design and the rules). */
#include "textenc.h"

#include "base.h"
#include "err.h"

#include <math.h>

/* ---- hashing ------------------------------------------------------------- */

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv_more(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t tenc_fnv1a(const void *p, size_t n) {
    return fnv_more(FNV_BASIS, p, n);
}

/* Word pairs of a text of n words, pairs at most window (0 = 1) apart. */
static int pair_count(int n, int window) {
    int w = window > 1 ? window : 1, c = 0;
    for (int d = 1; d <= w; d++) c += n > d ? n - d : 0;
    return c;
}

/* Bucket of the bigram (a, b): fnv1a(a || 0x00 || b) % nb. */
static int bigram_bucket(const char *a, size_t na, const char *b, size_t nb, int buckets) {
    const unsigned char zero = 0;
    uint64_t h = fnv_more(FNV_BASIS, a, na);
    h = fnv_more(h, &zero, 1);
    h = fnv_more(h, b, nb);
    return (int)(h % (uint64_t)buckets);
}

/* ---- tokenizer ------------------------------------------------------------ */

/* Decode the code point at p[0..n) (n >= 1): its length in bytes, or 0 when
 * the bytes there are not a valid UTF-8 sequence (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF). */
static int utf8_next(const unsigned char *p, size_t n, uint32_t *cp) {
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;        /* overlong */
        if (c == 0xED) hi = 0x9F;        /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;        /* overlong */
        if (c == 0xF4) hi = 0x8F;        /* above U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        unsigned char b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return len;
}

static bool is_word_cp(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
    return cp != 0x2019 && cp != 0x00A0;
}

static bool is_apostrophe(uint32_t cp) {
    return cp == '\'' || cp == 0x2019;
}

/* Words are built in place in out->word[out->n] (when there is room). */
typedef struct {
    tenc_tokens_t *out;
    int max_tokens;
    bool in_word;  /* inside a word */
    bool full;     /* the current word reached TENC_MAX_WORD: later code points dropped */
    bool pending;  /* an apostrophe right after a word character */
    size_t wlen;   /* bytes of the current word */
    char buf[TENC_MAX_WORD + 1];
} tok_state_t;

static void tok_end_word(tok_state_t *s) {
    if (!s->in_word) return;
    tenc_tokens_t *o = s->out;
    if (o->n < s->max_tokens) {
        memcpy(o->word[o->n], s->buf, s->wlen);
        o->word[o->n][s->wlen] = '\0';
        o->len[o->n] = (uint8_t)s->wlen;
        o->n++;
    } else {
        o->truncated = true;
    }
    s->in_word = s->full = s->pending = false;
    s->wlen = 0;
}

int tenc_tokenize(const char *text, size_t len, int max_tokens, tenc_tokens_t *out, char *err,
                  size_t errlen) {
    ASSERT(max_tokens >= 1 && max_tokens <= TENC_MAX_TOKENS);
    out->n = 0;
    out->truncated = false;
    tok_state_t s = {.out = out, .max_tokens = max_tokens};
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int n = utf8_next(p + i, len - i, &cp);
        if (n == 0) {
            out->n = 0;
            out->truncated = false;
            return gb_errf(err, errlen, GB_EFORMAT, "invalid UTF-8 at byte %zu (0x%02x)", i, p[i]);
        }
        if (is_word_cp(cp)) {
            s.in_word = true;
            s.pending = false;
            if (!s.full) {
                if (s.wlen + (size_t)n <= TENC_MAX_WORD) {
                    for (int k = 0; k < n; k++) {
                        unsigned char b = p[i + k];
                        s.buf[s.wlen++] = (char)(b >= 'A' && b <= 'Z' ? b + ('a' - 'A') : b);
                    }
                } else {
                    s.full = true;
                }
            }
        } else if (is_apostrophe(cp) && s.in_word && !s.pending) {
            s.pending = true; /* dropped if a word character follows */
        } else {
            tok_end_word(&s);
        }
        i += (size_t)n;
    }
    tok_end_word(&s);
    return 0;
}

/* ---- vocabulary counter ------------------------------------------------------ */

typedef struct {
    char *word;
    uint64_t hash;
    uint64_t count;
} cword_t;

struct tenc_counter {
    int max_tokens;
    cword_t *w;        /* distinct words */
    size_t n, cap;
    size_t *slot;      /* open addressing: index + 1 into w, 0 = empty */
    size_t nslot;      /* power of two, > 2 n */
    tenc_tokens_t tok;
};

tenc_counter_t *tenc_counter_new(int max_tokens) {
    ASSERT(max_tokens >= 1 && max_tokens <= TENC_MAX_TOKENS);
    tenc_counter_t *c = xcalloc(1, sizeof *c);
    c->max_tokens = max_tokens;
    c->nslot = 64;
    c->slot = xcalloc(c->nslot, sizeof *c->slot);
    return c;
}

void tenc_counter_free(tenc_counter_t **pc) {
    if (!pc || !*pc) return;
    tenc_counter_t *c = *pc;
    for (size_t i = 0; i < c->n; i++) free(c->w[i].word);
    free(c->w);
    free(c->slot);
    free(c);
    *pc = NULL;
}

static void counter_grow(tenc_counter_t *c) {
    size_t ns = c->nslot * 2;
    size_t *sl = xcalloc(ns, sizeof *sl);
    for (size_t i = 0; i < c->n; i++) {
        size_t j = (size_t)c->w[i].hash & (ns - 1);
        while (sl[j]) j = (j + 1) & (ns - 1);
        sl[j] = i + 1;
    }
    free(c->slot);
    c->slot = sl;
    c->nslot = ns;
}

static void counter_one(tenc_counter_t *c, const char *w, size_t len) {
    uint64_t h = tenc_fnv1a(w, len);
    size_t j = (size_t)h & (c->nslot - 1);
    while (c->slot[j]) {
        cword_t *x = &c->w[c->slot[j] - 1];
        if (x->hash == h && strlen(x->word) == len && memcmp(x->word, w, len) == 0) {
            x->count++;
            return;
        }
        j = (j + 1) & (c->nslot - 1);
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->w = xrealloc(c->w, c->cap * sizeof *c->w);
    }
    c->w[c->n] = (cword_t){xstrdup(w), h, 1};
    c->slot[j] = ++c->n;
    if (2 * c->n >= c->nslot) counter_grow(c);
}

int tenc_counter_add(tenc_counter_t *c, const char *text, char *err, size_t errlen) {
    int rc = tenc_tokenize(text, strlen(text), c->max_tokens, &c->tok, err, errlen);
    if (rc != 0) return rc;
    for (int i = 0; i < c->tok.n; i++) counter_one(c, c->tok.word[i], c->tok.len[i]);
    return 0;
}

size_t tenc_counter_distinct(const tenc_counter_t *c) {
    return c->n;
}

static int cmp_cword(const void *a, const void *b) {
    const cword_t *x = *(const cword_t *const *)a, *y = *(const cword_t *const *)b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->word, y->word); /* compares as unsigned char: byte order */
}

void tenc_counter_vocab(const tenc_counter_t *c, int min_count, int max_size, char ***vocab_out,
                        int *n_out) {
    ASSERT(min_count >= 1 && max_size >= 0 && max_size <= TENC_MAX_VOCAB);
    const cword_t **sel = xmalloc((c->n ? c->n : 1) * sizeof *sel);
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->w[i].count >= (uint64_t)min_count) sel[k++] = &c->w[i];
    qsort(sel, k, sizeof *sel, cmp_cword);
    if (k > (size_t)max_size) k = (size_t)max_size;
    char **v = xmalloc((k ? k : 1) * sizeof *v);
    for (size_t i = 0; i < k; i++) v[i] = xstrdup(sel[i]->word);
    free(sel);
    *vocab_out = v;
    *n_out = (int)k;
}

void tenc_vocab_free(char **vocab, int n) {
    if (!vocab) return;
    for (int i = 0; i < n; i++) free(vocab[i]);
    free(vocab);
}

/* ---- the encoder -------------------------------------------------------------- */

#define TENC_MAX_PARAMS ((size_t)1 << 28) /* floats per block (1 GiB) */
#define N_KINDS 4

enum { P_EMBED = 0, P_BIGRAM = 1, P_PROJ_W = 2, P_PROJ_B = 3 };
static const char *const k_pname[TENC_N_PARAM_TENSORS] = {"embed.weight", "bigram.weight",
                                                         "proj.weight", "proj.bias"};
static const char *const k_kprefix[N_KINDS] = {"T.", "OPT.T.m.", "OPT.T.v.", "GRAD.T."};

struct tenc {
    tenc_desc_t d;         /* d.vocab points to vocab */
    char **vocab;
    uint8_t *vlen;         /* byte length of each vocabulary word */
    int32_t *table;        /* open addressing: id + 1, 0 = empty */
    uint32_t table_mask;
    int max_batch;
    size_t n_params;
    float *block[N_KINDS]; /* params, Adam m, Adam v, grads (tenc_tensor_kind_t order) */
    size_t off[TENC_N_PARAM_TENSORS];
    adam_t adam;
    tenc_tensor_t tensors[N_KINDS * TENC_N_PARAM_TENSORS];
    char names[N_KINDS * TENC_N_PARAM_TENSORS][32];
    /* last forward */
    int n;
    bool fwd_ok;
    int32_t *ids;      /* [max_batch][max_tokens] word ids */
    int32_t *bis;      /* [max_batch][max_pairs] pair buckets (npairs[i] used) */
    int *npairs;       /* [max_batch] word pairs of each text */
    int max_pairs;     /* pairs of a text of max_tokens words (pair_count) */
    tenc_info_t *info; /* [max_batch] */
    float *s;          /* [max_batch][D_e] sentence vectors */
    float *y;          /* [max_batch][D_out] outputs */
    float *dz;         /* [D_out] scratch */
    float *ds;         /* [D_e] scratch */
    tenc_tokens_t tok;
};

static int lookup(const tenc_t *e, const char *w, size_t len) {
    if (e->d.vocab_size == 0) return -1;
    uint32_t j = (uint32_t)tenc_fnv1a(w, len) & e->table_mask;
    while (e->table[j]) {
        int id = e->table[j] - 1;
        if (e->vlen[id] == len && memcmp(e->vocab[id], w, len) == 0) return id;
        j = (j + 1) & e->table_mask;
    }
    return -1;
}

int tenc_desc_check(const tenc_desc_t *d, char *err, size_t errlen) {
    if (d->tokenizer_version != TENC_TOKENIZER_VERSION)
        return gb_errf(err, errlen, GB_EUNSUPPORTED, "text encoder tokenizer version %d (this build knows %d)",
                       d->tokenizer_version, TENC_TOKENIZER_VERSION);
    if (d->vocab_size < 0 || d->vocab_size > TENC_MAX_VOCAB || (d->vocab_size > 0 && !d->vocab))
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder vocabulary size %d (0..%d)", d->vocab_size,
                       TENC_MAX_VOCAB);
    if (d->hash_buckets < 1 || d->hash_buckets > TENC_MAX_BUCKETS)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder hash_buckets %d (1..%d)", d->hash_buckets,
                       TENC_MAX_BUCKETS);
    if (d->pair_window < 0 || d->pair_window >= TENC_MAX_TOKENS)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder pair_window %d (0..%d)", d->pair_window,
                       TENC_MAX_TOKENS - 1);
    if (d->bigram_buckets < 1 || d->bigram_buckets > TENC_MAX_BUCKETS)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder bigram_buckets %d (1..%d)", d->bigram_buckets,
                       TENC_MAX_BUCKETS);
    if (d->embed_dim < 1 || d->embed_dim > TENC_MAX_DIM)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder embed_dim %d (1..%d)", d->embed_dim, TENC_MAX_DIM);
    if (d->out_dim < 1 || d->out_dim > TENC_MAX_DIM)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder out_dim %d (1..%d)", d->out_dim, TENC_MAX_DIM);
    if (d->max_tokens < 1 || d->max_tokens > TENC_MAX_TOKENS)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder max_tokens %d (1..%d)", d->max_tokens,
                       TENC_MAX_TOKENS);
    if (d->act != TENC_ACT_LINEAR && d->act != TENC_ACT_TANH)
        return gb_errf(err, errlen, GB_EFORMAT, "text encoder activation %d unknown", (int)d->act);
    size_t rows = (size_t)d->vocab_size + (size_t)d->hash_buckets + (size_t)d->bigram_buckets;
    size_t np = rows * (size_t)d->embed_dim + (size_t)d->out_dim * ((size_t)d->embed_dim + 1);
    if (np > TENC_MAX_PARAMS)
        return gb_errf(err, errlen, GB_ETOOBIG, "text encoder of %zu parameters (at most %zu)", np,
                       TENC_MAX_PARAMS);
    tenc_tokens_t tok;
    for (int i = 0; i < d->vocab_size; i++) {
        const char *w = d->vocab[i];
        size_t len = w ? strlen(w) : 0;
        if (len == 0 || len > TENC_MAX_WORD)
            return gb_errf(err, errlen, GB_EFORMAT, "text encoder vocabulary word %d has %zu bytes (1..%d)", i,
                           len, TENC_MAX_WORD);
        char why[96];
        if (tenc_tokenize(w, len, 2, &tok, why, sizeof why) != 0)
            return gb_errf(err, errlen, GB_EFORMAT, "text encoder vocabulary word %d: %s", i, why);
        if (tok.n != 1 || tok.len[0] != len || memcmp(tok.word[0], w, len) != 0)
            return gb_errf(err, errlen, GB_EFORMAT,
                           "text encoder vocabulary word %d '%.*s' is not one token of the tokenizer", i,
                           (int)GB_MIN(len, 64), w);
    }
    return 0;
}

static float *carve(float *block, size_t off) {
    return block + off;
}

int tenc_new(const tenc_desc_t *d, int max_batch, uint64_t seed, tenc_t **out, char *err,
             size_t errlen) {
    *out = NULL;
    ASSERT(max_batch >= 1);
    int rc = tenc_desc_check(d, err, errlen);
    if (rc != 0) return rc;
    tenc_t *e = xcalloc(1, sizeof *e);
    e->d = *d;
    int V = d->vocab_size;
    e->vocab = xcalloc((size_t)(V ? V : 1), sizeof *e->vocab);
    e->vlen = xcalloc((size_t)(V ? V : 1), 1);
    for (int i = 0; i < V; i++) {
        e->vocab[i] = xstrdup(d->vocab[i]);
        e->vlen[i] = (uint8_t)strlen(d->vocab[i]);
    }
    e->d.vocab = (const char *const *)e->vocab;
    uint32_t ts = 16;
    while (ts < 2u * (uint32_t)V) ts *= 2;
    e->table = xcalloc(ts, sizeof *e->table);
    e->table_mask = ts - 1;
    for (int i = 0; i < V; i++) {
        if (lookup(e, e->vocab[i], e->vlen[i]) >= 0) {
            rc = gb_errf(err, errlen, GB_EFORMAT, "text encoder vocabulary word %d '%s' is a duplicate", i,
                         e->vocab[i]);
            tenc_free(&e);
            return rc;
        }
        uint32_t j = (uint32_t)tenc_fnv1a(e->vocab[i], e->vlen[i]) & e->table_mask;
        while (e->table[j]) j = (j + 1) & e->table_mask;
        e->table[j] = i + 1;
    }

    const size_t De = (size_t)d->embed_dim, Do = (size_t)d->out_dim;
    const size_t sizes[TENC_N_PARAM_TENSORS] = {((size_t)V + (size_t)d->hash_buckets) * De,
                                                (size_t)d->bigram_buckets * De, Do * De, Do};
    const int64_t shapes[TENC_N_PARAM_TENSORS][2] = {
        {(int64_t)V + d->hash_buckets, (int64_t)De}, {d->bigram_buckets, (int64_t)De}, {(int64_t)Do, (int64_t)De},
        {(int64_t)Do, 0}};
    size_t np = 0;
    for (int p = 0; p < TENC_N_PARAM_TENSORS; p++) {
        e->off[p] = np;
        np += sizes[p];
    }
    e->n_params = np;
    for (int k = 0; k < N_KINDS; k++) e->block[k] = xcalloc(np, sizeof(float));
    for (int k = 0; k < N_KINDS; k++) {
        for (int p = 0; p < TENC_N_PARAM_TENSORS; p++) {
            int t = k * TENC_N_PARAM_TENSORS + p;
            snprintf(e->names[t], sizeof e->names[t], "%s%s", k_kprefix[k], k_pname[p]);
            tenc_tensor_t *x = &e->tensors[t];
            x->name = e->names[t];
            x->kind = (tenc_tensor_kind_t)k;
            x->ndim = p == P_PROJ_B ? 1 : 2;
            x->shape[0] = shapes[p][0];
            x->shape[1] = shapes[p][1];
            x->n = sizes[p];
            x->data = carve(e->block[k], e->off[p]);
        }
    }

    rng_t r;
    rng_seed(&r, seed);
    float *P = e->block[TENC_T_PARAM];
    rng_normal_fill(&r, P + e->off[P_EMBED], sizes[P_EMBED]);
    rng_normal_fill(&r, P + e->off[P_BIGRAM], sizes[P_BIGRAM]);
    const float bound = 1.0f / sqrtf((float)De);
    for (size_t i = 0; i < sizes[P_PROJ_W] + sizes[P_PROJ_B]; i++)
        P[e->off[P_PROJ_W] + i] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
    e->adam = (adam_t){.lr = 2e-4f, .beta1 = 0.5f, .beta2 = 0.999f, .eps = 1e-8f, .t = 0};

    e->max_batch = max_batch;
    const size_t T = (size_t)d->max_tokens, B = (size_t)max_batch;
    e->ids = xcalloc(B * T, sizeof *e->ids);
    e->max_pairs = pair_count((int)T, d->pair_window);
    e->bis = xcalloc(B * (size_t)(e->max_pairs > 0 ? e->max_pairs : 1), sizeof *e->bis);
    e->npairs = xcalloc(B, sizeof *e->npairs);
    e->info = xcalloc(B, sizeof *e->info);
    e->s = xcalloc(B * De, sizeof *e->s);
    e->y = xcalloc(B * Do, sizeof *e->y);
    e->dz = xcalloc(Do, sizeof *e->dz);
    e->ds = xcalloc(De, sizeof *e->ds);
    *out = e;
    return 0;
}

void tenc_free(tenc_t **pe) {
    if (!pe || !*pe) return;
    tenc_t *e = *pe;
    if (e->vocab)
        for (int i = 0; i < e->d.vocab_size; i++) free(e->vocab[i]);
    free(e->vocab);
    free(e->vlen);
    free(e->table);
    for (int k = 0; k < N_KINDS; k++) free(e->block[k]);
    free(e->ids);
    free(e->bis);
    free(e->npairs);
    free(e->info);
    free(e->s);
    free(e->y);
    free(e->dz);
    free(e->ds);
    free(e);
    *pe = NULL;
}

void tenc_to_desc(const tenc_t *e, tenc_desc_t *out) {
    *out = e->d;
}

int tenc_max_batch(const tenc_t *e) {
    return e->max_batch;
}

int tenc_pair_window(const tenc_t *e) {
    return e->d.pair_window > 1 ? e->d.pair_window : 1;
}

int tenc_out_dim(const tenc_t *e) {
    return e->d.out_dim;
}

int tenc_word_id(const tenc_t *e, const char *word, size_t len, bool *known) {
    int id = lookup(e, word, len);
    if (known) *known = id >= 0;
    if (id >= 0) return id;
    return e->d.vocab_size + (int)(tenc_fnv1a(word, len) % (uint64_t)e->d.hash_buckets);
}

int tenc_forward(tenc_t *e, const char *const *texts, int n, float *out, char *err, size_t errlen) {
    e->fwd_ok = false;
    e->n = 0;
    if (n < 0 || n > e->max_batch)
        return gb_errf(err, errlen, GB_ETOOBIG, "%d texts for a text encoder of batch %d", n, e->max_batch);
    const int De = e->d.embed_dim, Do = e->d.out_dim, T = e->d.max_tokens;
    const float *P = e->block[TENC_T_PARAM];
    const float *Ew = P + e->off[P_EMBED], *Eb = P + e->off[P_BIGRAM];
    const float *W = P + e->off[P_PROJ_W], *bias = P + e->off[P_PROJ_B];
    for (int i = 0; i < n; i++) {
        char why[128];
        const char *text = texts[i] ? texts[i] : "";
        if (tenc_tokenize(text, strlen(text), T, &e->tok, why, sizeof why) != 0)
            return gb_errf(err, errlen, GB_EFORMAT, "text %d: %s", i, why);
        tenc_info_t *inf = &e->info[i];
        int32_t *ids = e->ids + (size_t)i * T, *bis = e->bis + (size_t)i * e->max_pairs;
        const int nt = e->tok.n;
        *inf = (tenc_info_t){.n_tokens = nt, .truncated = e->tok.truncated, .empty = nt == 0};
        for (int t = 0; t < nt; t++) {
            bool known;
            ids[t] = tenc_word_id(e, e->tok.word[t], e->tok.len[t], &known);
            if (!known) inf->n_unknown++;
        }
        /* pairs by distance, then position: (0,1) (1,2) ... (0,2) (1,3) ... */
        const int win = tenc_pair_window(e);
        int np = 0;
        for (int dist = 1; dist <= win; dist++)
            for (int t = 0; t + dist < nt; t++)
                bis[np++] = bigram_bucket(e->tok.word[t], e->tok.len[t], e->tok.word[t + dist],
                                          e->tok.len[t + dist], e->d.bigram_buckets);
        e->npairs[i] = np;
        float *s = e->s + (size_t)i * De;
        memset(s, 0, (size_t)De * sizeof *s);
        if (nt > 0) {
            for (int t = 0; t < nt; t++) {
                const float *row = Ew + (size_t)ids[t] * De;
                for (int k = 0; k < De; k++) s[k] += row[k];
            }
            for (int t = 0; t < np; t++) {
                const float *row = Eb + (size_t)bis[t] * De;
                for (int k = 0; k < De; k++) s[k] += row[k];
            }
            const float inv = 1.0f / (float)(nt + np);
            for (int k = 0; k < De; k++) s[k] *= inv;
        }
        float *y = e->y + (size_t)i * Do;
        for (int o = 0; o < Do; o++) {
            const float *w = W + (size_t)o * De;
            float acc = bias[o];
            for (int k = 0; k < De; k++) acc += w[k] * s[k];
            y[o] = e->d.act == TENC_ACT_TANH ? tanhf(acc) : acc;
        }
        memcpy(out + (size_t)i * Do, y, (size_t)Do * sizeof *y);
    }
    e->n = n;
    e->fwd_ok = true;
    return 0;
}

const tenc_info_t *tenc_info(const tenc_t *e, int i) {
    ASSERT(e->fwd_ok && i >= 0 && i < e->n);
    return &e->info[i];
}

void tenc_backward(tenc_t *e, const float *dout) {
    ASSERT(e->fwd_ok);
    const int De = e->d.embed_dim, Do = e->d.out_dim, T = e->d.max_tokens;
    const float *W = e->block[TENC_T_PARAM] + e->off[P_PROJ_W];
    float *G = e->block[TENC_T_GRAD];
    float *gEw = G + e->off[P_EMBED], *gEb = G + e->off[P_BIGRAM];
    float *gW = G + e->off[P_PROJ_W], *gb = G + e->off[P_PROJ_B];
    float *dz = e->dz, *ds = e->ds;
    for (int i = 0; i < e->n; i++) {
        const float *y = e->y + (size_t)i * Do, *dy = dout + (size_t)i * Do;
        const float *s = e->s + (size_t)i * De;
        for (int o = 0; o < Do; o++) dz[o] = e->d.act == TENC_ACT_TANH ? dy[o] * (1.0f - y[o] * y[o]) : dy[o];
        memset(ds, 0, (size_t)De * sizeof *ds);
        for (int o = 0; o < Do; o++) {
            const float g = dz[o];
            const float *w = W + (size_t)o * De;
            float *gw = gW + (size_t)o * De;
            gb[o] += g;
            for (int k = 0; k < De; k++) {
                gw[k] += g * s[k];
                ds[k] += w[k] * g;
            }
        }
        const int nt = e->info[i].n_tokens;
        if (nt == 0) continue;
        const int np = e->npairs[i];
        const float inv = 1.0f / (float)(nt + np);
        for (int k = 0; k < De; k++) ds[k] *= inv;
        const int32_t *ids = e->ids + (size_t)i * T, *bis = e->bis + (size_t)i * e->max_pairs;
        for (int t = 0; t < nt; t++) {
            float *row = gEw + (size_t)ids[t] * De;
            for (int k = 0; k < De; k++) row[k] += ds[k];
        }
        for (int t = 0; t < np; t++) {
            float *row = gEb + (size_t)bis[t] * De;
            for (int k = 0; k < De; k++) row[k] += ds[k];
        }
    }
}

void tenc_zero_grad(tenc_t *e) {
    memset(e->block[TENC_T_GRAD], 0, e->n_params * sizeof(float));
}

size_t tenc_param_count(const tenc_t *e) {
    return e->n_params;
}

float *tenc_params(tenc_t *e) {
    return e->block[TENC_T_PARAM];
}

float *tenc_grads(tenc_t *e) {
    return e->block[TENC_T_GRAD];
}

adam_t *tenc_adam(tenc_t *e) {
    return &e->adam;
}

void tenc_adam_step(tenc_t *e) {
    adam_begin(&e->adam);
    adam_update(&e->adam, e->n_params, e->block[TENC_T_PARAM], e->block[TENC_T_GRAD],
                e->block[TENC_T_ADAM_M], e->block[TENC_T_ADAM_V]);
}

int tenc_tensor_count(const tenc_t *e) {
    UNUSED(e);
    return N_KINDS * TENC_N_PARAM_TENSORS;
}

const tenc_tensor_t *tenc_tensor(const tenc_t *e, int i) {
    ASSERT(i >= 0 && i < N_KINDS * TENC_N_PARAM_TENSORS);
    return &e->tensors[i];
}

const tenc_tensor_t *tenc_find(const tenc_t *e, const char *name) {
    for (int i = 0; i < N_KINDS * TENC_N_PARAM_TENSORS; i++)
        if (strcmp(e->tensors[i].name, name) == 0) return &e->tensors[i];
    return NULL;
}

int tenc_unknown_words(const tenc_t *e, const char *text, tenc_tokens_t *out, char *err,
                       size_t errlen) {
    tenc_tokens_t tok;
    int rc = tenc_tokenize(text, strlen(text), e->d.max_tokens, &tok, err, errlen);
    out->n = 0;
    out->truncated = false;
    if (rc != 0) return rc;
    out->truncated = tok.truncated;
    for (int i = 0; i < tok.n; i++) {
        if (lookup(e, tok.word[i], tok.len[i]) >= 0) continue;
        bool seen = false;
        for (int j = 0; j < out->n && !seen; j++)
            seen = out->len[j] == tok.len[i] && memcmp(out->word[j], tok.word[i], tok.len[i]) == 0;
        if (seen) continue;
        memcpy(out->word[out->n], tok.word[i], (size_t)tok.len[i] + 1);
        out->len[out->n] = tok.len[i];
        out->n++;
    }
    return 0;
}
