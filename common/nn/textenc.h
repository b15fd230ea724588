/* textenc.h - the text encoder: captions to sentence vectors for a
 * text-to-image GAN (issue 10; Reed et al. 2016's GAN-CLS conditions G and
 * D on such a vector).
 *
 * WHY THIS DESIGN. Reed et al. pretrained a char-CNN-RNN on a GPU; we
 * train from scratch on a CPU, jointly with G and D, so the encoder must
 * cost next to nothing per step and learn from few captions. A bag of
 * word embeddings averaged, plus word-bigram embeddings, then one linear
 * layer is:
 *   - cheap: per text O(tokens * D_e + D_out * D_e), no sequence model,
 *     no allocation per step, no threads (it is small);
 *   - order-aware enough: "dark shirt, light trousers" and "light shirt,
 *     dark trousers" share their words but not their bigrams;
 *   - robust to unseen words: words outside the vocabulary fall into B
 *     hashed buckets (FNV-1a), so a new word still gets a vector (shared
 *     with the rare training words of its bucket) and the sampler can name
 *     it (tenc_unknown_words) instead of silently ignoring it. Bigrams are
 *     always hashed (B2 buckets): there are too many to list.
 *
 * TOKENIZER (version 1; TENC_TOKENIZER_VERSION; changing any rule below
 * changes word ids, so it must bump the version stored in checkpoints):
 *   - input must be valid UTF-8 (no overlong forms, no surrogates, nothing
 *     above U+10FFFF), else GB_EFORMAT: never a crash, never a guess;
 *   - ASCII letters are lower-cased; other code points are left as they
 *     are (no Unicode case folding: "É" and "é" are different words);
 *   - a word is a maximal run of word characters: ASCII letters and
 *     digits, and every non-ASCII code point except U+2019 (right single
 *     quote) and U+00A0 (no-break space);
 *   - an apostrophe (' or U+2019) between two word characters is dropped
 *     and joins them ("men's" -> "mens", "don't" -> "dont"); elsewhere it
 *     separates;
 *   - everything else separates: spaces, control characters, NUL, ASCII
 *     punctuation including hyphens ("t-shirt" -> "t", "shirt": the bigram
 *     "t shirt" keeps the pair together) and U+00A0;
 *   - a word longer than TENC_MAX_WORD bytes is cut to its longest prefix
 *     of whole code points within TENC_MAX_WORD bytes;
 *   - at most max_tokens words are kept (the first ones); the rest are
 *     ignored and the text is flagged `truncated`.
 *
 * VOCABULARY: built from the training captions (tenc_counter_*): words
 * seen at least min_count times, the most frequent first (ties in byte
 * order), at most max_size of them; word id = index. Stored in the
 * checkpoint (proto/checkpoint.proto TextEncoderDesc.vocab).
 *
 * HASHING: FNV-1a 64-bit (offset basis 0xcbf29ce484222325, prime
 * 0x100000001b3) over the bytes of the lower-cased word. An out-of-vocabulary
 * word w has id V + fnv1a(w) % B. The bigram of consecutive kept words a, b
 * has bucket fnv1a(a || 0x00 || b) % B2 (NUL never occurs inside a word).
 * With a pair window P > 1 (tenc_desc_t.pair_window) every ordered pair of
 * kept words at most P apart (a at t, b at t + d, 1 <= d <= P) is hashed
 * the same way: "photo of a dark top that is thin" then also has the
 * pairs (top, thin) and (dark, top), so the encoder can give a class word
 * and an attribute word a vector of their own wherever they stand. Why:
 * in the synthetic captions an attribute means something per class ("thin"
 * is a tank top for a top, a slim sheath for a dress), which a mean of
 * single-word vectors cannot say and adjacent bigrams only say when the
 * words touch.
 *
 * MODEL (V = vocabulary size, T = a text's kept words, n = |T|, Q = its
 * word pairs: the n - 1 adjacent ones, or all within the pair window):
 *   s = (sum_{t<n} E_word[id_t] + sum_{(t,u) in Q} E_bi[bucket(t,u)]) / (n + |Q|)
 *   y = act(W s + b)       act = identity (TENC_ACT_LINEAR) or tanh
 *   E_word (V + B, D_e), E_bi (B2, D_e), W (D_out, D_e), b (D_out).
 *   A text with no words (empty, only punctuation) has s = 0 (so y = act(b))
 *   and is flagged `empty`.
 *
 * PARAMETERS are one float block in this order (like model.h's blocks, so
 * adam_update runs over it in one call), with gradients, Adam m and Adam v
 * blocks of the same layout; the checkpoint names (tenc_tensor):
 *   T.embed.weight  (V + B, D_e)     initialised N(0, 1) (as nn.Embedding)
 *   T.bigram.weight (B2, D_e)        N(0, 1)
 *   T.proj.weight   (D_out, D_e)     U(-1/sqrt(D_e), 1/sqrt(D_e)) (as nn.Linear)
 *   T.proj.bias     (D_out)          U(-1/sqrt(D_e), 1/sqrt(D_e))
 * Gradients are dense: backward adds into the rows the batch touched of a
 * dense gradient block (tens of thousands of rows at most, so zeroing and a
 * dense Adam step over it cost about a millisecond), and Adam then updates
 * every row, like PyTorch's dense Adam on an nn.Embedding.
 *
 * DETERMINISM: plain sequential loops in a fixed order, no BLAS, no
 * threads: the same inputs give the same bits on any thread count.
 *
 * OWNERSHIP: tenc_new copies what it needs from the description; a tenc_t
 * owns all its memory (freed by tenc_free). A tenc_t is not safe for
 * concurrent use. */
#ifndef GB_TEXTENC_H
#define GB_TEXTENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn.h"
#include "rng.h"

#define TENC_TOKENIZER_VERSION 1
#define TENC_MAX_WORD 48        /* bytes per word, longer words are cut */
#define TENC_MAX_TOKENS 64      /* upper bound of max_tokens */
#define TENC_MAX_VOCAB 1000000  /* upper bound of the vocabulary size */
#define TENC_MAX_BUCKETS 1000000 /* upper bound of B and B2 */
#define TENC_MAX_DIM 4096       /* upper bound of D_e and D_out */

/* ---- tokenizer ------------------------------------------------------------ */

typedef struct {
    int n;                                  /* words kept, 0..max_tokens */
    bool truncated;                         /* more than max_tokens words: rest ignored */
    uint8_t len[TENC_MAX_TOKENS];           /* bytes of word i, 1..TENC_MAX_WORD */
    char word[TENC_MAX_TOKENS][TENC_MAX_WORD + 1]; /* word i, NUL-terminated */
} tenc_tokens_t;

/* Split text[0..len) into words by the rules above (at most max_tokens,
 * 1..TENC_MAX_TOKENS, else ASSERT). Returns 0, or GB_EFORMAT when text is
 * not valid UTF-8 (the byte offset of the first bad sequence in err).
 * On failure out->n is 0. Allocates nothing. */
int tenc_tokenize(const char *text, size_t len, int max_tokens, tenc_tokens_t *out, char *err,
                  size_t errlen);

/* FNV-1a 64 of p[0..n) (the hash described above). */
uint64_t tenc_fnv1a(const void *p, size_t n);

/* ---- vocabulary building -------------------------------------------------- */

typedef struct tenc_counter tenc_counter_t;

/* A word counter for building a vocabulary from captions; max_tokens is
 * the cap the encoder will use (words past it are not counted, as the
 * encoder never sees them). Never returns NULL. */
tenc_counter_t *tenc_counter_new(int max_tokens);
void tenc_counter_free(tenc_counter_t **c);
/* Count the words of one NUL-terminated text. Returns 0, or GB_EFORMAT
 * (invalid UTF-8; nothing counted, reason in err). */
int tenc_counter_add(tenc_counter_t *c, const char *text, char *err, size_t errlen);
/* Number of distinct words counted so far. */
size_t tenc_counter_distinct(const tenc_counter_t *c);
/* The vocabulary: words counted at least min_count (>= 1) times, by count
 * descending then bytewise ascending, at most max_size (0..TENC_MAX_VOCAB)
 * of them. *vocab_out is a new array of *n_out new strings (free with
 * tenc_vocab_free; an empty vocabulary gives a non-NULL array). Depends
 * only on the multiset of texts added, not on their order. */
void tenc_counter_vocab(const tenc_counter_t *c, int min_count, int max_size, char ***vocab_out,
                        int *n_out);
void tenc_vocab_free(char **vocab, int n);

/* ---- the encoder ------------------------------------------------------------ */

typedef enum {
    TENC_ACT_LINEAR = 0, /* y = W s + b */
    TENC_ACT_TANH = 1,   /* y = tanh(W s + b) */
} tenc_act_t;

/* What an encoder is: all that a checkpoint stores besides its tensors
 * (proto TextEncoderDesc). Plain C; pointers are the owner's. */
typedef struct {
    const char *const *vocab; /* vocab_size distinct words, as the tokenizer makes them */
    int vocab_size;           /* V, 0..TENC_MAX_VOCAB */
    int hash_buckets;         /* B, 1..TENC_MAX_BUCKETS: out-of-vocabulary buckets */
    int bigram_buckets;       /* B2, 1..TENC_MAX_BUCKETS */
    int embed_dim;            /* D_e, 1..TENC_MAX_DIM */
    int out_dim;              /* D_out, 1..TENC_MAX_DIM */
    int max_tokens;           /* words kept per text, 1..TENC_MAX_TOKENS */
    tenc_act_t act;
    int tokenizer_version;    /* TENC_TOKENIZER_VERSION (others: GB_EUNSUPPORTED) */
    int pair_window;          /* P, 0..TENC_MAX_TOKENS-1: word pairs up to P apart are
                                 hashed (0 and 1: adjacent only, the first encoders') */
} tenc_desc_t;

/* Per-text facts from the last tenc_forward. */
typedef struct {
    int n_tokens;   /* words kept */
    int n_unknown;  /* of which out of the vocabulary (hashed) */
    bool truncated; /* more words than max_tokens */
    bool empty;     /* no words: s = 0 */
} tenc_info_t;

/* One checkpoint tensor of the encoder. */
typedef enum {
    TENC_T_PARAM = 0,  /* T.embed.weight, ... */
    TENC_T_ADAM_M = 1, /* OPT.T.m.embed.weight, ... */
    TENC_T_ADAM_V = 2, /* OPT.T.v.embed.weight, ... */
    TENC_T_GRAD = 3,   /* GRAD.T.*: not checkpoint state */
} tenc_tensor_kind_t;

typedef struct {
    const char *name;        /* e.g. "T.embed.weight", "OPT.T.v.proj.bias" */
    tenc_tensor_kind_t kind;
    int ndim;                /* 1 or 2 */
    int64_t shape[2];
    size_t n;                /* product of shape */
    float *data;             /* n floats inside the encoder's blocks */
} tenc_tensor_t;

#define TENC_N_PARAM_TENSORS 4 /* tensors per kind */

typedef struct tenc tenc_t;

/* Check a description: GB_EFORMAT (a field out of range, a vocabulary
 * word empty, longer than TENC_MAX_WORD, not what the tokenizer would make
 * of it, or duplicated) or GB_EUNSUPPORTED (tokenizer version), reason in
 * err; 0 when fine. */
int tenc_desc_check(const tenc_desc_t *d, char *err, size_t errlen);

/* A new encoder for d (copied), for batches of at most max_batch (>= 1)
 * texts, parameters initialised from rng_seed(seed) as above, gradients
 * and Adam moments zero, Adam lr 2e-4 beta1 0.5 beta2 0.999 eps 1e-8 t 0.
 * Returns 0 and *out, or what tenc_desc_check returns (*out NULL).
 * The only allocation: every later call allocates nothing. */
int tenc_new(const tenc_desc_t *d, int max_batch, uint64_t seed, tenc_t **out, char *err,
             size_t errlen);
/* NULL and *e == NULL are fine; sets *e to NULL. */
void tenc_free(tenc_t **e);

/* The encoder's description; pointers borrowed from e (valid until
 * tenc_free). */
void tenc_to_desc(const tenc_t *e, tenc_desc_t *out);
int tenc_max_batch(const tenc_t *e);
int tenc_out_dim(const tenc_t *e);
/* The pair window in effect: the description's, with 0 read as 1. */
int tenc_pair_window(const tenc_t *e);

/* Word id of a tokenizer-made word: its vocabulary index, or
 * V + fnv1a % B when out of the vocabulary (*known = false). */
int tenc_word_id(const tenc_t *e, const char *word, size_t len, bool *known);

/* Encode texts[0..n) (NUL-terminated UTF-8; NULL counts as "";
 * n <= max_batch) into
 * out[n * D_out], and keep what tenc_backward needs (until the next
 * tenc_forward). Returns 0; GB_ETOOBIG when n > max_batch; GB_EFORMAT when
 * a text is not valid UTF-8 (err names its index and byte offset; out is
 * then unspecified and tenc_backward must not be called). */
int tenc_forward(tenc_t *e, const char *const *texts, int n, float *out, char *err, size_t errlen);

/* Facts about text i (0 <= i < n) of the last tenc_forward. */
const tenc_info_t *tenc_info(const tenc_t *e, int i);

/* Backward of the last tenc_forward: given dout[n * D_out] = dL/dy,
 * ADD dL/dparams into the gradient block (so several losses can
 * accumulate; clear with tenc_zero_grad). A text's vector used several
 * times (in a matching and in a mismatching pair of GAN-CLS, in an
 * interpolation) needs one forward: add the dL/dy of every use into its
 * row of dout, then call this once. */
void tenc_backward(tenc_t *e, const float *dout);
void tenc_zero_grad(tenc_t *e);

/* The whole blocks (tenc_param_count floats each, layout as above). */
size_t tenc_param_count(const tenc_t *e);
float *tenc_params(tenc_t *e);
float *tenc_grads(tenc_t *e);
/* The Adam state (lr, betas, eps, t) of the encoder's optimizer. */
adam_t *tenc_adam(tenc_t *e);
/* One Adam step over every parameter (adam_begin then adam_update on the
 * whole block). */
void tenc_adam_step(tenc_t *e);

/* The tensor table: TENC_N_PARAM_TENSORS tensors per kind, kinds in enum
 * order, parameters in the order above. Entries stay valid until
 * tenc_free; writing through data (checkpoint load) is allowed. */
int tenc_tensor_count(const tenc_t *e);
const tenc_tensor_t *tenc_tensor(const tenc_t *e, int i);
const tenc_tensor_t *tenc_find(const tenc_t *e, const char *name);

/* The words of text that are out of the vocabulary, in text order, each
 * once, in out (as tenc_tokenize makes them; out->truncated as for the
 * text): what the sampler warns about. Words past max_tokens are not
 * listed (the encoder ignores them). Returns 0 or GB_EFORMAT (invalid
 * UTF-8). */
int tenc_unknown_words(const tenc_t *e, const char *text, tenc_tokens_t *out, char *err,
                       size_t errlen);

#endif
