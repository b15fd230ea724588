/* featnet.h - the evaluator's feature network: a small CNN classifier
 * trained by gambar itself on the (labelled) training data, whose
 * penultimate layer (FEATNET_DIM values after ReLU) is the feature space
 * for FID, KID, precision/recall and the memorisation audit, and whose
 * arg-max labels generated images for the bias audit.
 *
 * ARCHITECTURE (input C x H x W in [-1, 1], H and W divisible by 4;
 * widths w1 = FEATNET_W1, w2 = FEATNET_W2 for new networks, stored in the
 * file so other widths load too):
 *   conv1 C->w1  k5 s2 p2 (+bias) -> ReLU     (H/2 x W/2)
 *   conv2 w1->w2 k3 s2 p1 (+bias) -> ReLU     (H/4 x W/4)
 *   fc1   w2*(H/4)*(W/4) -> 128 (+bias) -> ReLU   = the features
 *   fc2   128 -> K classes (+bias)                = logits
 * Initialisation N(0, sqrt(2 / fan_in)), biases 0. Trained with Adam and
 * softmax cross-entropy (nn_extra.h), mini-batches of 64.
 *
 * A network that was never fitted (featnet_new with fit skipped) is the
 * documented fallback for unlabelled data: a fixed random CNN (seeded, so
 * reproducible) whose ReLU features still separate image statistics,
 * though with no semantic meaning.
 *
 * This module is the network's arithmetic only (layer nn): reading the
 * training data from the store, fitting, and the *.gck file format live
 * with their one user, gambar-eval (stages/eval/eval_featio.h), which
 * reaches the parameters through featnet_tensors. */
#ifndef GB_FEATNET_H
#define GB_FEATNET_H

#include <stddef.h>
#include <stdint.h>

#define FEATNET_DIM 128
#define FEATNET_W1 16 /* conv1 channels of new networks */
#define FEATNET_W2 32 /* conv2 channels of new networks */

typedef struct featnet featnet_t;

/* A network for C x H x W inputs (H, W multiples of 4, 8..256; C 1 or 3)
 * and K >= 1 classes, processing up to max_batch images per call,
 * initialised from seed. Returns NULL (with the reason in err) when the
 * shape is unsupported. Free with featnet_free. */
featnet_t *featnet_new(int C, int H, int W, int K, int max_batch, uint64_t seed, char *err, size_t errlen);
void featnet_free(featnet_t *f);

/* Shape accessors. */
int featnet_channels(const featnet_t *f);
int featnet_height(const featnet_t *f);
int featnet_width(const featnet_t *f);
int featnet_classes(const featnet_t *f);

/* Forward N >= 1 images x (N, C, H, W) (any N: chunks of max_batch):
 * features (N x FEATNET_DIM) and/or logits (N x K); either may be NULL. */
void featnet_forward(featnet_t *f, const float *x, size_t N, float *feat, float *logits);

/* One Adam step (lr given) on N (1..max_batch) labelled images. Returns
 * the mean cross-entropy; *correct (may be NULL) gets the number of right
 * arg-max predictions of this batch (before the update). */
float featnet_train_step(featnet_t *f, const float *x, const int32_t *labels, int N, float lr, int *correct);

/* Fraction of the N images classified as their label (labels < 0 are
 * skipped; returns 0 when none is labelled). */
double featnet_accuracy(featnet_t *f, const float *x, const int32_t *labels, size_t N);

/* Pixels of one stored image (HWC bytes) to CHW floats in [-1, 1]. */
void featnet_px_to_float(const uint8_t *px, int C, int H, int W, float *out);

/* The same as featnet_new with conv widths w1, w2 (1..1024) instead of
 * FEATNET_W1/W2: the loader builds the network a file describes. */
featnet_t *featnet_new_widths(int C, int H, int W, int K, int w1, int w2, int max_batch, uint64_t seed, char *err,
                              size_t errlen);

/* conv1 and conv2 output channels (w1, w2). */
int featnet_width1(const featnet_t *f);
int featnet_width2(const featnet_t *f);

/* Adam updates taken so far (featnet_train_step calls). */
uint64_t featnet_steps(const featnet_t *f);

/* One parameter tensor of the network, for whoever stores or loads it. */
typedef struct {
    const char *name; /* "F.conv1.weight" .. (see FILE FORMAT in eval_featio.h); static */
    int ndim;         /* 1, 2 or 4 */
    int64_t shape[4]; /* the first ndim are used */
    size_t len;       /* number of floats (product of the shape) */
    float *data;      /* borrowed: points into f, valid until featnet_free(f) */
} featnet_tensor_t;

#define FEATNET_NTENSORS 8

/* Fill t[0..FEATNET_NTENSORS) with every parameter tensor of f, in a fixed
 * order (conv1 weight, bias, conv2 weight, bias, fc1 ..., fc2 ...). Writing
 * through t[i].data changes the network. Returns FEATNET_NTENSORS. */
int featnet_tensors(featnet_t *f, featnet_tensor_t t[FEATNET_NTENSORS]);

#endif
