/* fuzz_textenc.c - libFuzzer harness for the text encoder's tokenizer and
 * forward/backward (common/nn/textenc.h): what the sampler does with a
 * --prompt typed by anyone, and the trainer with a dataset's captions.
 *
 * The first input byte picks max_tokens (1..TENC_MAX_TOKENS); the rest is
 * the text. Invariants (ASSERT):
 *   - tokenizing either succeeds or fails with GB_EFORMAT, n == 0 and a
 *     reason; never a crash, whatever the bytes;
 *   - on success: at most max_tokens words, each 1..TENC_MAX_WORD bytes,
 *     NUL-terminated at its length, without ASCII upper case; each word
 *     tokenizes to exactly itself, and the words joined by spaces
 *     tokenize to the same words (tokenizing is idempotent);
 *   - the text up to its first NUL goes through a small encoder: forward
 *     succeeds exactly when tokenizing that prefix does, outputs are
 *     finite, tenc_unknown_words agrees with the forward's unknown count
 *     (distinct words <= count), backward runs; the vocabulary counter
 *     accepts it and counts at most n distinct words.
 * tests/test_textenc.c compiles this file too (renaming the entry point)
 * to replay the seeds and a few thousand mutations in the normal run. */
#include "base.h"
#include "err.h"
#include "textenc.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tenc_t *ft_enc;

static void ft_check_words(const tenc_tokens_t *t, int max_tokens) {
    ASSERT(t->n >= 0 && t->n <= max_tokens);
    static char joined[TENC_MAX_TOKENS * (TENC_MAX_WORD + 1) + 1];
    size_t off = 0;
    for (int i = 0; i < t->n; i++) {
        size_t len = t->len[i];
        ASSERT(len >= 1 && len <= TENC_MAX_WORD && strlen(t->word[i]) == len);
        for (size_t k = 0; k < len; k++) ASSERT(!(t->word[i][k] >= 'A' && t->word[i][k] <= 'Z'));
        tenc_tokens_t one;
        char err[128];
        ASSERT(tenc_tokenize(t->word[i], len, 1, &one, err, sizeof err) == 0);
        ASSERT(one.n == 1 && !one.truncated && one.len[0] == len && memcmp(one.word[0], t->word[i], len) == 0);
        memcpy(joined + off, t->word[i], len);
        off += len;
        joined[off++] = ' ';
    }
    tenc_tokens_t again;
    char err[128];
    ASSERT(tenc_tokenize(joined, off, max_tokens, &again, err, sizeof err) == 0);
    ASSERT(again.n == t->n && !again.truncated);
    for (int i = 0; i < t->n; i++) ASSERT(again.len[i] == t->len[i] && strcmp(again.word[i], t->word[i]) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const int max_tokens = 1 + data[0] % TENC_MAX_TOKENS;
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    tenc_tokens_t t;
    char err[128] = "";
    int rc = tenc_tokenize(text, len, max_tokens, &t, err, sizeof err);
    if (rc != 0) {
        ASSERT(rc == GB_EFORMAT && t.n == 0 && !t.truncated && err[0]);
    } else {
        ft_check_words(&t, max_tokens);
    }

    /* the NUL-terminated prefix through an encoder */
    if (!ft_enc) {
        static const char *const vocab[] = {"dark", "shirt", "a", "caf\xc3\xa9"};
        tenc_desc_t d = {.vocab = vocab, .vocab_size = 4, .hash_buckets = 7, .bigram_buckets = 11,
                         .embed_dim = 5, .out_dim = 3, .max_tokens = 16, .act = TENC_ACT_TANH,
                         .tokenizer_version = TENC_TOKENIZER_VERSION};
        ASSERT(tenc_new(&d, 1, 1, &ft_enc, err, sizeof err) == 0);
    }
    char *s = xmalloc(len + 1);
    memcpy(s, text, len);
    s[len] = '\0';
    tenc_tokens_t pre, unk;
    int rc_pre = tenc_tokenize(s, strlen(s), 16, &pre, err, sizeof err);
    const char *texts[1] = {s};
    float y[3], dy[3] = {1, -1, 0.5f};
    int rc_f = tenc_forward(ft_enc, texts, 1, y, err, sizeof err);
    ASSERT((rc_f == 0) == (rc_pre == 0));
    int rc_u = tenc_unknown_words(ft_enc, s, &unk, err, sizeof err);
    ASSERT((rc_u == 0) == (rc_pre == 0));
    if (rc_f == 0) {
        const tenc_info_t *in = tenc_info(ft_enc, 0);
        ASSERT(in->n_tokens == pre.n && in->truncated == pre.truncated && in->empty == (pre.n == 0));
        ASSERT(unk.n <= in->n_unknown && (unk.n == 0) == (in->n_unknown == 0));
        for (int k = 0; k < 3; k++) ASSERT(isfinite(y[k]) && fabsf(y[k]) <= 1.0f);
        tenc_backward(ft_enc, dy);
        tenc_zero_grad(ft_enc);
        tenc_counter_t *c = tenc_counter_new(16);
        ASSERT(tenc_counter_add(c, s, err, sizeof err) == 0);
        ASSERT(tenc_counter_distinct(c) <= (size_t)pre.n);
        tenc_counter_free(&c);
    }
    free(s);
    return 0;
}
