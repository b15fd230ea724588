/* nn.h - neural-network layers on float32 NCHW buffers (the chunked
 * convolutions and batch norm also on channel-major ones, nn_lay_t),
 * forward and backward, plus losses, Adam and EMA. The model code (model.h) strings
 * these together; nothing here allocates: callers pass every buffer,
 * including the workspace ("ws") whose size the *_ws_floats() functions
 * give, so the training step allocates nothing after set-up.
 *
 * Shape legend: N batch, C input channels, H W input height/width,
 * K output channels, KH KW kernel, S stride, P padding, OH OW output.
 *
 * Gradient convention (fixed for every layer):
 *   - parameter gradients (dw, db, dgamma, dbeta, dtable) ACCUMULATE (+=),
 *     so the caller zeroes them once per step; pass NULL to skip them;
 *   - the input gradient dx is OVERWRITTEN (=); pass NULL to skip it.
 * Gradients are of sum(y * dy), as in ../shared/golden.
 *
 * Convolutions are whole-batch GEMMs through OpenBLAS (cblas_sgemm),
 * split over the threads set by nn_set_threads() (nn_blas.c).
 */
#ifndef GB_NN_H
#define GB_NN_H

#include <stddef.h>
#include <stdint.h>

/* Use n threads (<= 0: all cores) for the layers: start the helper
 * threads (nn_par.c) that run the GEMMs (as blocks, each a single-threaded
 * OpenBLAS call; OpenBLAS itself is set to one thread) and the passes
 * around them. Call it once at set-up; before the first call the GEMMs
 * use OpenBLAS's own threads and the other passes the calling thread. */
void nn_set_threads(int n);
int nn_get_threads(void);
/* Wall seconds spent so far in the layers' GEMMs (the calls of every
 * thread but the pool's helpers, summed; nn_blas.c), for benchmarks that
 * split a step into GEMM and other time. */
double nn_gemm_seconds(void);

/* ---- convolution and transposed convolution ---------------------------- */
typedef struct {
    int N, C, H, W;   /* input */
    int K, KH, KW;    /* output channels, kernel */
    int S, P;         /* stride, padding (same for both axes) */
    int OH, OW;       /* output size, computed by conv_init/convT_init */
} conv_t;

/* Conv2d: OH = (H + 2P - KH)/S + 1. Returns 0, or -1 when the shape is
 * impossible (OH or OW < 1). */
int conv_init(conv_t *c, int N, int C, int H, int W, int K, int KH, int KW, int S, int P);
/* Transposed conv2d: OH = (H - 1)*S - 2P + KH. Returns 0 or -1. */
int convT_init(conv_t *c, int N, int C, int H, int W, int K, int KH, int KW, int S, int P);

/* Workspace floats needed by conv2d_* / convT2d_* for shape c. The
 * workspace needs no initialisation and nothing in it survives a call
 * (backward recomputes its unfolded input), so one buffer as large as the
 * largest layer's need can serve every layer. Some shapes (a kernel that
 * covers the whole unpadded input, or a transposed conv of a 1x1 input)
 * run as one dense GEMM and do not touch it. */
size_t conv2d_ws_floats(const conv_t *c);
size_t convT2d_ws_floats(const conv_t *c);

/* x (N,C,H,W), w (K,C,KH,KW), b (K) or NULL, y (N,K,OH,OW). */
void conv2d_forward(const conv_t *c, const float *x, const float *w, const float *b, float *y, float *ws);
/* dy (N,K,OH,OW) -> dx (N,C,H,W) [=], dw (K,C,KH,KW) [+=], db (K) [+=]. */
void conv2d_backward(const conv_t *c, const float *x, const float *w, const float *dy, float *dx,
                     float *dw, float *db, float *ws);

/* Transposed: x (N,C,H,W), w (C,K,KH,KW) (PyTorch layout), b (K) or NULL,
 * y (N,K,OH,OW). */
void convT2d_forward(const conv_t *c, const float *x, const float *w, const float *b, float *y, float *ws);
void convT2d_backward(const conv_t *c, const float *x, const float *w, const float *dy, float *dx,
                      float *dw, float *db, float *ws);

/* Where an activation's planes lie in memory: plane (n, c), its H*W
 * floats contiguous, starts at base + n*sn + c*sc. NCHW (N,C,H,W):
 * nn_lay_nchw(C, HW) = {C*HW, HW}. Channel-major, room for Nb samples per
 * channel (C, Nb, H, W): nn_lay_cm(Nb, HW) = {HW, Nb*HW}; there a channel's
 * images are one row of a matrix whose rows are channels (leading
 * dimension Nb*HW), which is what the convolutions' GEMMs read and write,
 * so no copy between the two layouts is needed around them (nn_conv.c). */
typedef struct { size_t sn, sc; } nn_lay_t;
static inline nn_lay_t nn_lay_nchw(int C, size_t HW) { return (nn_lay_t){(size_t)C * HW, HW}; }
static inline nn_lay_t nn_lay_cm(int Nb, size_t HW) { return (nn_lay_t){HW, (size_t)Nb * HW}; }
/* Offset of plane (n, c) under l. */
static inline size_t nn_lay_at(nn_lay_t l, int n, int c) { return (size_t)n * l.sn + (size_t)c * l.sc; }

/* The same four on a batch of c->N images in chunks of at most `chunk`
 * images, with ws sized for one chunk (*_ws_floats of a chunk-sized
 * shape): what a model with a small fixed workspace runs. x (and dx) lie
 * as xl says, y (and dy) as yl says (both NCHW: the calls above). Forward
 * and the input gradient are per image, so each thread runs a contiguous
 * range of the batch in its own slice of ws (one hand-off per layer);
 * weight gradients sum over images, chunk after chunk in order, so dw
 * gets the same bits whatever the thread count. The bits do not depend on
 * the layouts either. No bias. */
void conv2d_forward_chunks(const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w, float *y,
                           nn_lay_t yl, float *ws);
void conv2d_backward_chunks(const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w,
                            const float *dy, nn_lay_t yl, float *dx, float *dw, float *ws);
void convT2d_forward_chunks(const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w, float *y,
                            nn_lay_t yl, float *ws);
void convT2d_backward_chunks(const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w,
                             const float *dy, nn_lay_t yl, float *dx, float *dw, float *ws);

/* ---- linear ----------------------------------------------------------- */
/* x (N,IN), w (OUT,IN), b (OUT) or NULL, y (N,OUT): y = x w^T + b. */
void linear_forward(int N, int IN, int OUT, const float *x, const float *w, const float *b, float *y);
void linear_backward(int N, int IN, int OUT, const float *x, const float *w, const float *dy, float *dx,
                     float *dw, float *db);

/* ---- batch norm (over N and spatial HW, per channel C) ----------------- */
/* act: the activation that follows BN, fused into its passes (one pass
 * over the tensor less each way, and the same bits as separate relu and
 * lrelu calls): BN_ACT_NONE (0), BN_ACT_RELU, or BN_ACT_LRELU with slope
 * alpha > 0. With an activation, forward's y is the activation's output,
 * and backward (bn_backward_act) takes that output and the gradient
 * w.r.t. it. */
enum { BN_ACT_NONE, BN_ACT_RELU, BN_ACT_LRELU };
/* eps 1e-5, momentum 0.1; xl: where the planes of x and dx lie ({0, 0}:
 * NCHW), yl: those of y and dy ({0, 0}: as x's). y and x (dy and dx) must
 * not overlap when their layouts differ. */
typedef struct {
    int N, C, HW;
    float eps, momentum;
    int act;
    float alpha;
    nn_lay_t xl, yl;
} bn_t;

/* Training mode: normalise with the batch mean and biased variance; save
 * mean (C) and rstd = 1/sqrt(var+eps) (C) for backward; update running
 * statistics with momentum and the UNBIASED variance (PyTorch semantics).
 * run_mean/run_var may be NULL to skip the update. x, y (N,C,HW). */
void bn_forward_train(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                      float *mean, float *rstd, float *run_mean, float *run_var);
/* The same forward without touching the running statistics: each
 * channel's batch mean and UNBIASED variance go to bmean/bvar (C doubles
 * each), to be applied later with bn_running_update (micro-batches whose
 * statistics are gathered from several processes, model.c). */
void bn_forward_train_stats(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                            float *mean, float *rstd, double *bmean, double *bvar);
/* run = (1 - momentum) run + momentum * batch for C channels (b->momentum;
 * b's other fields unused), exactly the update bn_forward_train makes;
 * run_mean or run_var may be NULL to skip it. */
void bn_running_update(const bn_t *b, int C, const double *bmean, const double *bvar, float *run_mean,
                       float *run_var);
/* Eval mode with the running statistics. */
void bn_forward_eval(const bn_t *b, const float *x, const float *gamma, const float *beta,
                     const float *run_mean, const float *run_var, float *y);
/* Backward of the training mode (b->act must be BN_ACT_NONE). */
void bn_backward(const bn_t *b, const float *x, const float *gamma, const float *mean, const float *rstd,
                 const float *dy, float *dx, float *dgamma, float *dbeta);
/* The same through b->act: y is the activation's output, dy the gradient
 * w.r.t. it. */
void bn_backward_act(const bn_t *b, const float *x, const float *y, const float *gamma, const float *mean,
                     const float *rstd, const float *dy, float *dx, float *dgamma, float *dbeta);

/* ---- activations (elementwise over n values; in-place y == x allowed
 *      for forward; backward takes the forward OUTPUT y, and dx may alias
 *      dy; lrelu needs alpha > 0 so that sign(y) == sign(x)) ------------- */
void relu_forward(size_t n, const float *x, float *y);
void relu_backward(size_t n, const float *y, const float *dy, float *dx);
void lrelu_forward(size_t n, float alpha, const float *x, float *y);
void lrelu_backward(size_t n, float alpha, const float *y, const float *dy, float *dx);
void tanh_forward(size_t n, const float *x, float *y);
void tanh_backward(size_t n, const float *y, const float *dy, float *dx);
void sigmoid_forward(size_t n, const float *x, float *y);
void sigmoid_backward(size_t n, const float *y, const float *dy, float *dx);

/* ---- embedding --------------------------------------------------------- */
/* table (NCLASS,D), labels (N) in [0,NCLASS), y (N,D). */
void embed_forward(int N, int D, const float *table, const int32_t *labels, float *y);
/* dtable (NCLASS,D) [+=] */
void embed_backward(int N, int D, const int32_t *labels, const float *dy, float *dtable);

/* ---- losses: return the mean loss; dlogits [=] is d(loss)/d(logits) ---- */
/* Mean BCE-with-logits against a constant target t (0 or 1). */
float bce_logits(size_t n, const float *logits, float t, float *dlogits);
/* Mean BCE-with-logits against per-element targets. */
float bce_logits_v(size_t n, const float *logits, const float *targets, float *dlogits);
/* Hinge: real side mean(relu(1 - l)), fake side mean(relu(1 + l)). */
float hinge_d_real(size_t n, const float *logits, float *dlogits);
float hinge_d_fake(size_t n, const float *logits, float *dlogits);
/* Generator's hinge loss: -mean(l). */
float hinge_g(size_t n, const float *logits, float *dlogits);

/* Image-text contrastive loss (XMC-GAN's sentence term, Zhang et al.
 * 2021): with cos_ij the cosine similarity of a_i (N, F, image features)
 * and b_j (N, F, text features), the mean over i of the cross-entropy of
 * softmax_j(cos_ij / tau) against j = i, i.e. each image must pick its
 * own text out of the N. N >= 1, F >= 1, tau > 0; ws holds
 * contrast_ws_floats(N, F) floats. da, db [=] the gradients w.r.t. a and
 * b (either may be NULL). A row of norm below 1e-6 counts as zero: cosine
 * 0 with everything, gradient 0. Deterministic: fixed loops, sums in
 * double. */
size_t contrast_ws_floats(int N, int F);
float contrast_cos(int N, int F, const float *a, const float *b, float tau, float *da, float *db, float *ws);

/* ---- optimisation ------------------------------------------------------ */
typedef struct {
    float lr, beta1, beta2, eps; /* 2e-4, 0.5, 0.999, 1e-8 */
    uint64_t t;                  /* steps taken; adam_step increments it first */
} adam_t;
/* One bias-corrected Adam step over n parameters, exactly as PyTorch's
 * torch.optim.Adam (no weight decay): m = b1 m + (1-b1) g; v = b2 v +
 * (1-b2) g^2; p -= (lr / (1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 * Call adam_begin once per step (increments t), then adam_update for each
 * parameter block. */
void adam_begin(adam_t *a);
void adam_update(const adam_t *a, size_t n, float *p, const float *g, float *m, float *v);
/* ema = decay*ema + (1-decay)*p */
void ema_update(size_t n, float decay, float *ema, const float *p);

/* Sum of squares of x[0..n) in double (for gradient norms). */
double nn_sumsq(size_t n, const float *x);
/* Non-zero when every x[i] is finite. */
int nn_all_finite(size_t n, const float *x);

#endif
