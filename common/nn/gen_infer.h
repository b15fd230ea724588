/* gen_infer.h - the generator's deterministic inference path: G(z) whose
 * pixels depend only on the image's own latent and label, never on the
 * batch or the thread, under the arithmetic contract GINFER_METHOD
 * ("gambar-g1", described in gen_infer.c and recorded in every sampled
 * PNG's provenance).
 *
 * Why a second forward beside model_generate: model_generate runs each
 * layer as one OpenBLAS GEMM over the batch, and OpenBLAS picks kernels
 * by matrix shape and thread count, so an image can change in the last
 * bit with the batch it was made in. gambar-sample promises bit-exact
 * --reproduce, and gambar-eval must measure the pixels the sampler
 * writes, so both generate through this module. The plan is built from
 * the model's own layer list (model_gen_layers), so model.c alone
 * defines the architecture; this module only chooses the arithmetic.
 *
 * Ownership: a ginfer_t is a snapshot of the weights at ginfer_new (read
 * only afterwards: share it between threads); each thread brings its own
 * ginfer_ws_t scratch. */
#ifndef GB_GEN_INFER_H
#define GB_GEN_INFER_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

#define GINFER_METHOD "gambar-g1" /* the arithmetic contract, see gen_infer.c */

typedef struct ginfer ginfer_t;       /* read-only after ginfer_new: share between threads */
typedef struct ginfer_ws ginfer_ws_t; /* one thread's scratch */

/* Build the inference plan of m's generator: the EMA weights (use_ema = 1,
 * as gambar-sample and gambar-eval use) or the live G (0), BN folded into
 * per-channel scale and shift from the running statistics (eval mode, as
 * model_generate). Copies the weights: later changes to m do not reach
 * the plan. Returns 0, or GB_EFORMAT with the reason in err when the
 * layer shapes are not ones the kernels handle (a first layer on a 1x1
 * input, then kernel-4 stride-2 padding-1 layers). A text-conditional
 * model (model.h, text_dim > 0) is accepted: its plan generates with
 * ginfer_forward_text / ginfer_generate_text only (ginfer_text_dim > 0);
 * ginfer_forward / ginfer_generate are for the others (ASSERT). */
int ginfer_new(const model_t *m, int use_ema, ginfer_t **out, char *err, size_t errlen);
void ginfer_free(ginfer_t *g); /* NULL-safe */
int ginfer_z_dim(const ginfer_t *g);
/* T, the sentence vector length of a text model's plan; 0 otherwise. */
int ginfer_text_dim(const ginfer_t *g);
/* Image floats per sample: H * W * C. */
size_t ginfer_image_floats(const ginfer_t *g);
/* Use the portable kernels (1) or the AVX2 ones when the CPU has them
 * (0, the default). Both compute the same bits; for tests. Not
 * thread-safe with a concurrent ginfer_forward. */
void ginfer_set_portable(ginfer_t *g, int portable);

/* Scratch for batches of up to nmax (>= 1) images; backward = 1 adds the
 * buffers ginfer_backward_z needs. Free with ginfer_ws_free (NULL-safe). */
ginfer_ws_t *ginfer_ws_new(const ginfer_t *g, int nmax, int backward);
void ginfer_ws_free(ginfer_ws_t *w);

/* G(z) for n (1..nmax) images: z (n, Z), labels n ints in
 * [0, num_classes) when the model is conditional (else NULL), out
 * (n, H, W, C) in [-1, 1] (HWC, ready for a PNG). Each image's result
 * depends only on its own z and label: the same whatever the batch it is
 * computed in and whichever kernels (AVX2 or portable) run it. */
void ginfer_forward(const ginfer_t *g, ginfer_ws_t *w, const float *z, const int32_t *labels, int n, float *out);

/* Text models: ginfer_forward with text (n, T), image i's sentence vector
 * (e.g. from model_encode_texts), instead of labels. The same promise:
 * each image depends only on its own z and c. */
void ginfer_forward_text(const ginfer_t *g, ginfer_ws_t *w, const float *z, const float *text, int n, float *out);

/* G(z) for any n >= 1 images, split over the nn threads (nn_set_threads):
 * the same bits as ginfer_forward, whatever the thread count. Allocates
 * its scratch. */
void ginfer_generate(const ginfer_t *g, const float *z, const int32_t *labels, int n, float *out);
/* Text models: ginfer_generate with text (n, T) instead of labels. */
void ginfer_generate_text(const ginfer_t *g, const float *z, const float *text, int n, float *out);

/* After ginfer_forward(z, labels, n) (or ginfer_forward_text) with the same w (made with
 * backward = 1): the gradient of sum(out * dout) with respect to z, dz
 * (n, Z), dout (n, H, W, C). Deterministic for a given batch, not batch
 * independent (it goes through cblas_sgemm). */
void ginfer_backward_z(const ginfer_t *g, ginfer_ws_t *w, const float *dout, int n, float *dz);

/* Float [-1, 1] -> 8-bit pixel: v = round((x + 1) * 127.5) (ties to even,
 * lrintf) clamped to 0..255. The pixel mapping of the
 * gambar-g1 contract: every generated image that is written, shown or
 * measured goes through this one function. */
void ginfer_to_u8(const float *x, size_t n, uint8_t *px);

#endif
