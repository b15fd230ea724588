/* model.h - the GAN models: DCGAN generator/discriminator pairs for 28x28,
 * 32x32 and 64x64 images, optionally class-conditional, with the whole
 * training step (D update, G update, EMA) in one call.
 *
 * Shaped like llm.c: model_new() allocates everything up front, one block
 * per kind (parameters, gradients, Adam m, Adam v, EMA, BN running
 * statistics, activations, workspace), and carves named tensors out of
 * them. A training step allocates nothing. The model holds no random
 * state after construction: the caller passes z and the labels, so the
 * caller's RNG alone determines a run (bit-exact resume).
 *
 * ARCHITECTURES (g = g_mult, d = d_mult, Z = z_dim, C = channels; all
 * convolutions without bias; BN = BatchNorm2d eps 1e-5 momentum 0.1;
 * "lrelu" = LeakyReLU 0.2):
 *   dcgan28 (28x28; ../shared/golden/README.md, dcgan28_step):
 *     G: z(Zin x1x1) -> ConvT(Zin->4g, k7 s1 p0) -> BN -> ReLU
 *        -> ConvT(4g->2g, k4 s2 p1) -> BN -> ReLU -> ConvT(2g->C, k4 s2 p1) -> tanh
 *     D: x(Cx28x28) -> Conv(C->2d, k4 s2 p1) -> lrelu -> Conv(2d->4d, k4 s2 p1)
 *        -> BN -> lrelu -> Conv(4d->1, k7 s1 p0) -> logit
 *   dcgan32 (32x32; pytorch/examples dcgan shape):
 *     G: ConvT(Zin->4g, k4 s1 p0) 4x4 -> BN ReLU -> ConvT(4g->2g, k4 s2 p1) 8x8 -> BN ReLU
 *        -> ConvT(2g->g) 16x16 -> BN ReLU -> ConvT(g->C) 32x32 -> tanh
 *     D: Conv(C->d, k4 s2 p1) 16x16 -> lrelu -> Conv(d->2d) 8x8 -> BN lrelu
 *        -> Conv(2d->4d) 4x4 -> BN lrelu -> Conv(4d->1, k4 s1 p0) -> logit
 *   dcgan64 (64x64): as dcgan32 with one more stage: G starts at 8g
 *     (8g,4g,2g,g -> C), D goes d,2d,4d,8d -> 1.
 *   Zin = Z, or Z + E when conditional.
 *
 * CONDITIONAL MODELS (num_classes > 0, embed_dim E > 0):
 *   G: a label embedding table G.embed.weight (num_classes, E) looked up
 *      for each label and concatenated after z: the first ConvT input is
 *      [z_0..z_{Z-1}, e_0..e_{E-1}] (Z+E channels, 1x1).
 *   D: a projection discriminator (Miyato & Koyama 2018): with h(x) the
 *      last hidden feature map (the input of the final conv, F = 4d
 *      channels for dcgan28/32, 8d for dcgan64) summed over its spatial
 *      positions, logit(x, y) = final_conv(x) + <D.embed.weight[y], h(x)>,
 *      D.embed.weight (num_classes, F).
 *
 * TEXT-CONDITIONAL MODELS (text_dim T > 0, conditional 0, num_classes 0,
 * embed_dim E > 0; GAN-CLS, Reed et al. 2016, issue 10): the condition is
 * a sentence vector c (T floats, from a text encoder, textenc.h) instead of
 * a label.
 *   G: e = G.text.weight c, G.text.weight (E, T), concatenated after z as
 *      for class models (the first ConvT input is [z, e], Z+E channels).
 *   D: the projection discriminator again, with the class row replaced by a
 *      projection of the text: logit(x, c) = final_conv(x) +
 *      <D.text.weight c, h(x)>, D.text.weight (F, T). Why projection and
 *      not concatenation before the last layer: h(x) does not depend on
 *      the text, so the matching-aware loss needs no extra convolutions -
 *      the (real, mismatched text) logit reuses the (real, matching text)
 *      pass's features, and the D step costs what a class model's costs.
 *   No biases: the encoder's own linear layer has one.
 *   The matching-aware D loss (model_train_step_text) is
 *     L(D(x, c), real) + 0.5 L(D(x, c_mis), fake) + 0.5 L(D(G(z, c), c), fake)
 *   with c_mis the caption vector of another image of the batch.
 *
 * TENSOR NAMES (as proto/checkpoint.proto prescribes): layers are numbered
 * by their position in the sequence above, counting activations, like a
 * PyTorch nn.Sequential named "net": dcgan28 G is net_0 ConvT, net_1 BN,
 * net_2 ReLU, net_3 ConvT, net_4 BN, net_5 ReLU, net_6 ConvT; dcgan28 D is
 * net_0 Conv, net_1 lrelu, net_2 Conv, net_3 BN, net_4 lrelu, net_5 Conv.
 *   G.net_0.weight, G.net_1.weight (gamma), G.net_1.bias (beta),
 *   G.net_1.running_mean, G.net_1.running_var, ..., G.embed.weight
 *   (class models), G.text.weight / D.text.weight (text models),
 *   D.*, EMA.G.* (EMA copy of every G parameter and buffer),
 *   OPT.G.m.net_0.weight, OPT.G.v.net_0.weight, OPT.D.m.*, OPT.D.v.*,
 *   GRAD.G.*, GRAD.D.* (gradients; not checkpoint state).
 *
 * INITIALISATION (model_new, from rng_seed(seed), tensors in table order):
 * conv weights N(0, 0.02), BN gamma N(1, 0.02), beta 0, running mean 0,
 * running var 1, G.embed N(0, 1), D.embed N(0, 0.02), G.text
 * N(0, 1/T), D.text N(0, 0.02); EMA = G; Adam
 * moments 0, t = 0.
 *
 * Threads: the convolutions run on OpenBLAS threads (nn_set_threads()).
 * A model_t is not safe for concurrent use.
 *
 * Reproducibility: the same seed, inputs and thread count give
 * bit-identical models (tests/test_model.c). A different thread count
 * changes OpenBLAS's summation order, so results differ in the last bits
 * (measured: most weights after 3 steps at 1 vs 2 threads); a run that
 * must resume bit-exactly keeps its thread count. */
#ifndef GB_MODEL_H
#define GB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

typedef enum {
    MODEL_DCGAN28 = 0, /* 28x28, e.g. (Fashion-)MNIST */
    MODEL_DCGAN32 = 1, /* 32x32 */
    MODEL_DCGAN64 = 2, /* 64x64 */
} model_family_t;

typedef enum {
    MODEL_LOSS_BCE = 0,   /* non-saturating BCE on logits (DCGAN) */
    MODEL_LOSS_HINGE = 1, /* D: relu(1-l_real) + relu(1+l_fake); G: -l */
} model_loss_t;

/* Which network. */
typedef enum { MODEL_G = 0, MODEL_D = 1 } model_net_t;

#define MODEL_MAX_CLASSES 1024 /* upper bound on num_classes */
#define MODEL_MAX_WIDTH 1024   /* upper bound on g_mult and d_mult */
#define MODEL_MAX_Z 4096       /* upper bound on z_dim and embed_dim */

/* Everything needed to rebuild a model's shapes; the checkpoint stores all
 * of it (proto/checkpoint.proto, ModelDesc, same field meanings). */
typedef struct {
    model_family_t family;
    int height, width;  /* image size in pixels: must be 28/32/64 per family */
    int channels;       /* 1 (grey) or 3 (RGB) */
    int g_mult, d_mult; /* base widths g and d (default 32), 1..MODEL_MAX_WIDTH */
    int z_dim;          /* Z, length of the latent vector (default 100) */
    int conditional;    /* 1: class-conditional (then num_classes >= 1 and
                           embed_dim >= 1); 0: num_classes and embed_dim are 0 */
    int num_classes;    /* number of labels, 0..MODEL_MAX_CLASSES */
    char **class_names; /* num_classes strings, or NULL (names unknown); see
                           model_desc_copy for ownership */
    int embed_dim;      /* E, G's label embedding width (default
                           model_default_embed_dim(z_dim)); for text models
                           the width of G's projection of the text */
    int text_dim;       /* T > 0: text-conditional (then conditional and
                           num_classes are 0, embed_dim >= 1), T =
                           length of the sentence vectors, 1..MODEL_MAX_Z;
                           0: not a text model */
    int aux_classes;    /* text models: A > 0 gives D an auxiliary classifier
                           over A classes (TAC-GAN; tensors D.aux.weight
                           (A, F), D.aux.bias (A); model_set_text_aux);
                           0: none (always 0 for other models) */
    model_loss_t loss;
} model_desc_t;

/* The default width E of G's label embedding for latent size Z: Z / 10,
 * at least 1. Why small: the table starts N(0, 1) like z and is learned,
 * so with E = Z the first layer sees as much class signal as noise and G
 * learns to draw one image per class and ignore z (measured on
 * Fashion-MNIST, dcgan28, 500 steps: within-class pixel spread 0.05
 * with E = 100 and the same with D's projection switched off, 0.27 with
 * E = 10, against 0.38 for real images of one class; tests/test_diversity.c). */
int model_default_embed_dim(int z_dim);

/* Fill d with the defaults for family: its image size, channels 1,
 * g = d = 32, Z = 100, unconditional, BCE. Sets class_names NULL. */
void model_desc_default(model_desc_t *d, model_family_t family);

/* Validate d (it may come from a checkpoint or a command line). Returns 0,
 * or GB_EFORMAT with a message naming the field and the reason written to
 * err (errlen bytes, may be NULL/0). */
int model_desc_check(const model_desc_t *d, char *err, size_t errlen);

/* Deep copy: dst gets its own class_names array and strings (xstrdup), to
 * be freed with model_desc_release(dst). src is unchanged. */
void model_desc_copy(model_desc_t *dst, const model_desc_t *src);
/* Free class_names allocated by model_desc_copy (or by any code that
 * built them with xmalloc/xstrdup) and set it NULL. NULL-safe. */
void model_desc_release(model_desc_t *d);

/* "dcgan28" etc.; "?" for unknown values. */
const char *model_family_name(model_family_t f);
/* Parse a family name. Returns 0 or GB_EFORMAT. */
int model_family_parse(const char *s, model_family_t *out);
/* "bce" / "hinge"; "?" for unknown values. */
const char *model_loss_name(model_loss_t l);
/* Parse a loss name. Returns 0 or GB_EFORMAT. */
int model_loss_parse(const char *s, model_loss_t *out);

typedef struct model model_t;

/* Build a model for desc with room for batches of up to max_batch images
 * (>= 1; BN training needs N >= 2 in practice), initialised from seed as
 * described above. Copies desc (model_desc_copy). Adam defaults: lr 2e-4,
 * betas (0.5, 0.999), eps 1e-8 for both nets; EMA decay 0.999.
 * Returns NULL when desc fails model_desc_check or max_batch < 1 (call
 * model_desc_check first for the reason). Free with model_free. */
model_t *model_new(const model_desc_t *desc, int max_batch, uint64_t seed);
/* Free everything; NULL-safe. */
void model_free(model_t *m);
/* Bytes model_new would allocate for desc and max_batch (parameters,
 * gradients, Adam moments, EMA, activations, workspace), so a caller can
 * refuse a model too large for the machine before model_new aborts on
 * out-of-memory. 0 when desc is invalid or max_batch < 1. */
size_t model_memory_bytes(const model_desc_t *desc, int max_batch);

/* FLOP (2 per multiply-add) of the convolutions of one image's share of
 * model_train_step (G forward and backward, three D forwards, two D
 * backwards with weight gradients, one without): the work a perfect GEMM
 * would do, for rating the step against a machine's sgemm rate. 0 when
 * desc is invalid. */
double model_step_flop(const model_desc_t *desc);

/* The model's own copy of its description (valid until model_free). */
const model_desc_t *model_desc(const model_t *m);
int model_max_batch(const model_t *m);
/* Number of trainable parameters of one network (weights, BN gamma/beta,
 * embeddings; not running statistics). */
size_t model_param_count(const model_t *m, model_net_t net);
/* Image floats per sample: channels * height * width. */
size_t model_image_floats(const model_t *m);

/* The live Adam state of one network (lr, betas, eps, t): read or set it,
 * e.g. when restoring a checkpoint (t) or changing learning rates. */
adam_t *model_adam(model_t *m, model_net_t net);
/* EMA decay of EMA.G.* (default 0.999; 0 makes EMA a copy of G after each
 * step). The EMA update after step t is ema = decay*ema + (1-decay)*G for
 * parameters; BN running statistics are copied. */
void model_set_ema_decay(model_t *m, float decay);
float model_ema_decay(const model_t *m);
/* Re-estimate the BN running statistics of EMA.G.* with the EMA weights
 * themselves: `batches` training-mode forward passes of max_batch
 * latents N(0, 1) (labels uniform for conditional models) drawn from
 * rng_seed(seed), the running mean and variance set to the average of
 * the batches' statistics. Why: during training EMA.G's statistics are
 * copies of G's, measured with G's weights, not the averaged ones; with
 * eval-mode BN that mismatch shrinks the variety of the EMA generator's
 * images (Fashion-MNIST, conditional dcgan28, step 1500: FID 95.7 ->
 * 52.9, recall 0.002 -> 0.09 after re-estimating). The trainer calls
 * this before each checkpoint; the next training step overwrites the
 * statistics again, so training itself is unchanged. Deterministic for a
 * given seed and thread count. Changes model_fake's contents.
 * Allocates (z and labels, freed before return). */
void model_ema_restat(model_t *m, int batches, uint64_t seed);

/* Set EMA.G.* to the current G (e.g. after loading weights without EMA). */
void model_ema_reset(model_t *m);

/* ---- the tensor table (checkpointing, tests) ---------------------------- */
typedef enum {
    MODEL_T_PARAM = 0,  /* G.* / D.* trainable parameters */
    MODEL_T_BUFFER = 1, /* G.* / D.* BN running_mean / running_var */
    MODEL_T_EMA = 2,    /* EMA.G.* (parameters and buffers of G) */
    MODEL_T_ADAM_M = 3, /* OPT.G.m.* / OPT.D.m.* */
    MODEL_T_ADAM_V = 4, /* OPT.G.v.* / OPT.D.v.* */
    MODEL_T_GRAD = 5,   /* GRAD.G.* / GRAD.D.*: gradients, not state */
} model_tensor_kind_t;

typedef struct {
    const char *name;          /* e.g. "G.net_0.weight", "OPT.D.v.net_3.bias" */
    model_tensor_kind_t kind;
    model_net_t net;           /* which network it belongs to (EMA: G) */
    int ndim;                  /* 1..4 */
    int64_t shape[4];          /* outermost first, e.g. ConvT (Cin,Cout,kh,kw) */
    size_t n;                  /* product of shape */
    float *data;               /* n floats inside the model's blocks */
} model_tensor_t;

/* The table: every tensor of the model in a fixed order (by kind, then G
 * before D, then layer order). Entries and their data pointers stay valid
 * until model_free; writing through data (checkpoint load) is allowed. */
int model_tensor_count(const model_t *m);
const model_tensor_t *model_tensor(const model_t *m, int i);
/* Find a tensor by exact name; NULL when absent. */
const model_tensor_t *model_find(const model_t *m, const char *name);

/* ---- training ------------------------------------------------------------ */
typedef struct {
    float loss_d;      /* D loss of the D step (BCE: bce(real,1)+bce(fake,0)) */
    float loss_g;      /* G loss of the G step, with the updated D */
    float d_real;      /* mean sigmoid(D(x)) in the D step */
    float d_fake;      /* mean sigmoid(D(G(z))) in the D step */
    float d_fake_g;    /* mean sigmoid(D(G(z))) in the G step (updated D) */
    float grad_norm_d; /* L2 norm of all D parameter gradients (D step) */
    float grad_norm_g; /* L2 norm of all G parameter gradients (G step) */
    float d_mismatch;  /* text models: mean sigmoid(D(x, mismatched text))
                          in the D step; 0 otherwise */
    float aux_real;    /* text models, auxiliary classifier on: its mean
                          cross-entropy on the real images (D step) */
    float aux_fake;    /* the same on the fakes against their captions'
                          classes (G step); both 0 when it is off */
} model_stats_t;

/* One training step on a batch of N (1..max_batch) images, in the golden
 * order (../shared/golden/README.md, dcgan28_step):
 *   1. fake = G(z, fake_labels), G in training mode (batch statistics,
 *      running statistics updated);
 *   2. D step: D(real, labels) and D(fake, fake_labels) as two separate
 *      training-mode passes (each updates D's running statistics); loss_d;
 *      gradients to D only; Adam step on D;
 *   3. G step: a third D pass on fake with the updated D; loss_g
 *      (BCE: bce(D(fake), 1); hinge: -mean D(fake)); gradients flow through
 *      D into G (D's parameter gradients are left as the D step made them);
 *      Adam step on G;
 *   4. EMA update of G.
 * real: (N, C, H, W) in [-1, 1]; z: (N, Z); labels, fake_labels: N ints in
 * [0, num_classes) for conditional models, ignored (may be NULL) otherwise.
 * Inputs are borrowed for the call only. stats may be NULL.
 * Returns 0; GB_EFORMAT (nothing done) when a label is missing or out of
 * range, or m is a text model (model_train_step_text); GB_ENUMERIC when
 * a loss or gradient is NaN/Inf: then
 * nothing is updated by the failing optimizer step (the D step may already
 * have been applied when the G step fails) and the caller should stop or
 * restore a checkpoint.
 * After the call the GRAD.* tensors hold the gradients the two Adam steps
 * used, and model_fake / model_logits give the step's intermediate
 * outputs (for tests). Same as model_train_step_split with M = 1. */
int model_train_step(model_t *m, const float *real, const int32_t *labels, int N, const float *z,
                     const int32_t *fake_labels, model_stats_t *stats);

/* ---- micro-batches and data parallelism ----------------------------------
 * model_train_step_split runs the same step with the batch of N split into
 * M micro-batches of b = N/M samples (micro-batch j = samples [j*b,
 * (j+1)*b)), each a pure function of its inputs and the weights:
 *   - BN in training mode uses the micro-batch's own statistics ("ghost
 *     batch norm"); the running statistics take the M updates in
 *     micro-batch order (G: 0..M-1; D: real_0, fake_0, real_1, fake_1, ...
 *     then the G step's passes 0..M-1);
 *   - each micro-batch's D gradient (real then fake pass) and G gradient
 *     start from zero; the step's gradient is g_0 + g_1 + ... + g_{M-1}
 *     summed in that order in float, then times 1/M (the loss is the mean
 *     of the micro-batch losses, each a mean over b samples);
 *   - losses and D(x) means are summed over micro-batches in order in
 *     double.
 * So the result does not depend on which process computed which
 * micro-batch: a process computes micro-batches [lo, hi); gather() brings
 * the others' records (losses and BN statistics, opaque bytes) into its
 * record buffer, and the gradient sum is a chain in micro-batch order:
 * the process owning micro-batch 0 adds its own as it goes, every other
 * process receives the sum of the micro-batches before lo
 * (recv_prefix) and adds its own in order, and the process owning
 * micro-batch M-1 shares the total (share_sum); processes with the same
 * thread count then hold identical weights. No process holds M
 * gradients: one spare on the first process, hi - lo on the others. M =
 * 1 with no gather is exactly model_train_step. Micro-batch j always uses
 * the activation buffers at sample j*b and the same gradient buffer
 * alignment, so the arithmetic (and OpenBLAS's memory alignment) is the
 * same in every process. Why not an all-reduce: MPI's reduction order is
 * not fixed, and float sums are not associative. */
typedef struct {
    int M;      /* micro-batches in the batch: 1..N, N % M == 0 */
    int lo, hi; /* this caller computes micro-batches [lo, hi), 0 <= lo < hi <= M */
    /* Collective: called twice per step by every process, with recs = M
     * records of rec_bytes each, this caller's [lo, hi) filled. Must fill
     * the other records with the bytes their owners computed (e.g. an
     * MPI_Allgather in place when every process owns M/P consecutive
     * records) and return 0, or an rc the step returns at once (the model
     * is then partly updated: stop or reload). NULL: lo = 0, hi = M, and
     * the two calls below are not made. */
    int (*gather)(void *ctx, void *recs, size_t rec_bytes, int M);
    /* Called twice per step (after gather) when lo > 0: fill acc[0..n)
     * with what the owner of micro-batch lo-1 passed to its share_sum.
     * Returns 0 or an rc as gather. */
    int (*recv_prefix)(void *ctx, float *acc, size_t n);
    /* Collective, called twice per step (after recv_prefix, if any) by
     * every process: when hi < M, pass acc[0..n) to the owner of
     * micro-batch hi (its recv_prefix); then set every process's acc to
     * the acc of the owner of micro-batch M-1 (a broadcast). Returns 0 or
     * an rc as gather. Required with gather. */
    int (*share_sum)(void *ctx, float *acc, size_t n);
    void *ctx;
} model_split_t;

/* model_train_step with micro-batches (see above). The first call with a
 * larger M (or a larger share) than before allocates the records (M times
 * a few KiB) and the spare gradients (see above); no other allocation.
 * Only the caller's micro-batches of model_fake and model_logits are
 * filled. Returns as model_train_step, or a callback's rc. */
int model_train_step_split(model_t *m, const float *real, const int32_t *labels, int N, const float *z,
                           const int32_t *fake_labels, const model_split_t *sp, model_stats_t *stats);

/* The last training step's G(z): (N, C, H, W) of that step's N; valid
 * until the next model_train_step or model_generate call. */
const float *model_fake(const model_t *m);
/* The last training step's D logits (N of them): which = 0 real pass,
 * 1 fake pass of the D step, 2 fake pass of the G step, 3 (text models)
 * real images with the mismatched texts in the D step. */
const float *model_logits(const model_t *m, int which);

/* ---- text-conditional training (text_dim > 0) ----------------------------
 * One GAN-CLS step on N (2..max_batch) real images, M = 1 (no
 * micro-batches yet: the trainer refuses --micro-batches > 1 for text):
 *   1. fake = G(z, text_g), G in training mode;
 *   2. D step: one training-mode D pass on real gives the logits of
 *      (real, text) and of (real, text[mismatch[i]]) (same features, two
 *      projections); one pass on fake with text. loss_d =
 *      L(real,text; real) + 0.5 L(real,mis; fake) + 0.5 L(fake,text; fake)
 *      (L = BCE or hinge as for class models); Adam step on D;
 *   3. G step: loss_g = L_G(D(fake, text)) with the updated D, gradients
 *      through D into G; Adam step on G; 4. EMA.
 * text (N, T): the sentence vector of each real image's caption (what D
 * pairs with real image i and fake i); text_g (N, T): G's condition for
 * fake i (the trainer passes text again; GAN-INT would interpolate);
 * mismatch: N indices in [0, N) with mismatch[i] != i. labels: the
 * real images' classes, read only by the auxiliary classifier
 * (model_set_text_aux; may be NULL otherwise).
 * Gradients for the text encoder (who owns which path: D's loss trains
 * the encoder through D's projection, G's loss through G's input):
 *   dtext_d (N, T) = d loss_d / d text, the fake held fixed (it is
 *     detached in the D step, as for D's weights); mismatched rows are
 *     added back to the row they came from;
 *   dtext_g (N, T) = d loss_g / d text_g, through G only (D's projection
 *     of text in the G step is D's, not G's to move).
 * Both are overwritten; the caller adds them for tenc_backward. Inputs are
 * borrowed for the call. stats may be NULL.
 * Returns 0; GB_EFORMAT (nothing done) when m is not a text model, N < 2
 * or a mismatch index is out of range or equal to its own, or, with the
 * auxiliary classifier on, labels is NULL or one is outside [0, A); GB_ENUMERIC as
 * model_train_step. Allocates nothing. */
int model_train_step_text(model_t *m, const float *real, const int32_t *labels, const float *text,
                          const int32_t *mismatch, int N, const float *z, const float *text_g, float *dtext_d,
                          float *dtext_g, model_stats_t *stats);

/* GAN-INT (Reed et al. 2016, section 4.3), off (0) by default: with
 * weight w > 0, step 3 of model_train_step_text also makes
 * fake_int = G(z, (text_g[i] + text_g[mismatch[i]]) / 2) (the same z; one
 * more training-mode G pass, so G's running statistics take one more
 * update, and D's one more) and adds
 * w * L_G(D(fake_int, (text[i] + text[mismatch[i]]) / 2)) to loss_g; D
 * does not train on these pairs. dtext_g then includes that term's
 * gradient through G (half to each of the two rows). Costs one more G
 * forward and backward and one D forward and backward per step. A setting,
 * not model state: a caller that resumes must set it again. w >= 0 and
 * finite; text models only (ASSERT). */
void model_set_text_interp(model_t *m, float weight);

/* Multiply G's text projection (G.text.weight, initialised N(0, 1/T)) by
 * gain > 0, in the live G and its EMA copy: for a new run, before its
 * first step (the weights then carry it, so a resumed run needs nothing).
 * Why: the sentence vectors are small (rms about 0.2, their class part
 * about 0.05), so W c enters G's first layer about ten times weaker than
 * a class model's N(0, 1) embedding next to z's N(0, 1); a gain of
 * sqrt(T) (N(0, 1) weights) brings it to z's scale. Text models only
 * (ASSERT). */
void model_scale_text_init(model_t *m, float gain);
float model_text_interp(const model_t *m);

/* Text models: the image-text contrastive terms (XMC-GAN, Zhang et al.
 * 2021) with weight w >= 0 (0, the default, = off). With D's pooled last
 * hidden features h(x) and D's projection of the text W c (the two
 * vectors of the projection logit), contrast_cos (nn.h, tau
 * MODEL_CONTRAST_TAU) asks each image to pick its own caption out of the
 * batch's by cosine similarity: in the D step on the real images (its
 * gradient trains D, D's projection and the text), in the G step on the
 * fakes (trains G only). loss_d and loss_g each add w times their term.
 * It also sharpens what D's projection must tell apart: all N - 1 other
 * captions at once rather than one mismatched caption. */
#define MODEL_CONTRAST_TAU 0.1f
void model_set_text_contrast(model_t *m, float weight);
float model_text_contrast(const model_t *m);

/* Text models: the mode-seeking term (MSGAN, Mao et al. 2019) with weight
 * w >= 0 (0, the default, = off). With h = N / 2, fake h + i is drawn
 * from the caption of fake i (rows h + i of text_g, and of text where D
 * scores the fakes, are replaced by rows i; the captions of rows h..2h-1
 * are then not drawn, and their gradients dtext_* come back to rows i) with
 * its own z, and loss_g adds w / (lz + MODEL_MODESEEK_EPS), where
 *   lz = mean_{i<h,k} |fake[h+i,k] - fake[i,k]| / mean_{i<h,j} |z[h+i,j] - z[i,j]|:
 * two draws of one caption must differ as their noise does. Why: when G's
 * loss also trains the encoder (--text-grad dg) G learns to make each
 * caption one image whatever z says (recall 0.04 measured); this prices
 * that in, at no extra pass. The D step's real pairs keep every caption. */
#define MODEL_MODESEEK_EPS 1e-5
void model_set_text_modeseek(model_t *m, float weight);
float model_text_modeseek(const model_t *m);

/* Text models with desc.aux_classes = A > 0: the auxiliary classifier
 * terms (TAC-GAN, Dash et al. 2017) with weight w >= 0 (0, the default,
 * = off; w > 0 needs A > 0, ASSERT). A linear classifier on D's pooled
 * last hidden features (the h(x) of the projection logit),
 * logits = h Wa^T + ba (D.aux.weight, D.aux.bias), scored by mean softmax
 * cross-entropy: in the D step against the real images' labels (trains D
 * and the classifier: loss_d adds w times it), in the G step against the
 * label of each fake's caption (the label of the real image the caption
 * came with; trains G only: loss_g adds w times it). The classifier is
 * trained on real images only, so G cannot teach it its own mistakes.
 * Why: the matching-aware loss tells D the class only through one
 * mismatched caption per image, and the class is what the text model
 * lost most against a class model (T-shirts with extreme attribute words
 * drawn as dresses: README, Text-image agreement). A setting, not model
 * state, like the other weights. */
void model_set_text_aux(model_t *m, float weight);
float model_text_aux(const model_t *m);

/* ---- inference ----------------------------------------------------------- */
/* Generate N >= 1 images (any N: processed in chunks of max_batch) into
 * out (N, C, H, W) in [-1, 1], with BN in eval mode (running statistics;
 * nothing in the model changes). use_ema: 1 = EMA.G weights, 0 = G.
 * z (N, Z); labels N ints in [0, num_classes) when conditional, else
 * ignored. Returns 0, or GB_EFORMAT when a label is out of range or m is
 * a text model (model_generate_text). */
int model_generate(model_t *m, const float *z, const int32_t *labels, int N, int use_ema, float *out);

/* Text models: model_generate with sentence vectors text (N, T) instead
 * of labels (e.g. from model_encode_texts). Same contract otherwise;
 * GB_EFORMAT when m is not a text model. */
int model_generate_text(model_t *m, const float *z, const float *text, int N, int use_ema, float *out);

/* Text models: D logits for N images x paired with sentence vectors text
 * (N, T), BN in eval mode; nothing changes. GB_EFORMAT when m is not a
 * text model. */
int model_discriminate_text(model_t *m, const float *x, const float *text, int N, float *logits);

/* Text models: model_ema_restat with the condition of each latent drawn
 * uniformly from the n_pool >= 1 sentence vectors pool (n_pool, T) (the
 * trainer passes its last batch's). Same contract as model_ema_restat,
 * which a text model refuses (ASSERT). */
void model_ema_restat_text(model_t *m, int batches, uint64_t seed, const float *pool, int n_pool);

/* The generator's layer list as model.c lays it out, for inference code
 * that computes G in its own arithmetic (gen_infer.h): shapes and
 * pointers into the model's weight blocks, so no other module has to
 * rebuild the architecture from tensor names. Layer i is the stage
 * ConvTranspose2d(Cin -> K, kernel k, stride, pad) on an H x W input,
 * giving OH x OW, then (bn) eval-mode BN with eps bn_eps and ReLU, or,
 * for the last layer, tanh. The first layer's input is the 1x1 map
 * [z, embed[label]] of z_dim + embed_dim channels. */
#define MODEL_GEN_MAX_LAYERS 6
typedef struct {
    int Cin, K;          /* input and output channels */
    int H, W, OH, OW;    /* input and output size (per image) */
    int k, stride, pad;  /* square kernel, stride and padding */
    const float *weight; /* (Cin, K, k, k), PyTorch ConvTranspose2d layout */
    int bn;              /* 1: BN + ReLU after the convolution; 0: tanh (last layer) */
    const float *gamma, *beta, *mean, *var; /* (K) each when bn, else NULL */
} model_gen_layer_t;

typedef struct {
    int L;                                   /* layers, 3..MODEL_GEN_MAX_LAYERS */
    model_gen_layer_t layer[MODEL_GEN_MAX_LAYERS];
    int z_dim, embed_dim, num_classes;       /* embed_dim 0: unconditional */
    const float *embed;                      /* (num_classes, embed_dim), or NULL */
    int text_dim;                            /* T of a text model, else 0 */
    const float *text_weight;                /* text models: (embed_dim, T), the
                                                first layer's input is [z, W c] */
    float bn_eps;                            /* BN's epsilon */
    int channels, height, width;             /* the image */
} model_gen_t;

/* Fill *out with G's layers: the EMA weights and running statistics
 * (use_ema = 1, what model_generate(.., use_ema = 1, ..) computes with) or
 * the live G's (0). The pointers stay valid until model_free; the values
 * change with training steps, checkpoint loads and model_ema_restat, so a
 * consumer that copies them must copy again after those. */
void model_gen_layers(const model_t *m, int use_ema, model_gen_t *out);

/* D logits for N >= 1 images x (N, C, H, W) with BN in eval mode; nothing
 * in the model changes. labels as for model_generate. Returns 0 or
 * GB_EFORMAT (label out of range; a text model: model_discriminate_text). */
int model_discriminate(model_t *m, const float *x, const int32_t *labels, int N, float *logits);

/* ---- texts ------------------------------------------------------------------ */
struct tenc; /* textenc.h */
/* Sentence vectors of n >= 0 texts (NUL-terminated UTF-8; NULL = "") with
 * encoder e, in chunks of its max_batch, into out (n, tenc_out_dim(e)):
 * what model_generate_text / model_discriminate_text take. Changes the
 * encoder's saved forward state (as tenc_forward does), nothing else.
 * Returns 0, or GB_EFORMAT (invalid UTF-8: err names the text's index). */
int model_encode_texts(struct tenc *e, const char *const *texts, int n, float *out, char *err, size_t errlen);

#endif
