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
 * FILE FORMAT: the checkpoint container of ckpt.h (a *.gck file, header +
 * SHA-256 + gambar.Checkpoint payload) with
 *   model.family = "featnet", model.height/width/channels = input shape,
 *   model.num_classes and model.class_names = the classifier's classes,
 *   model.g_mult = w1, model.d_mult = w2 (0 read as 32 and 64),
 *   tensors F.conv1.weight (w1,C,5,5), F.conv1.bias (w1),
 *   F.conv2.weight (w2,w1,3,3), F.conv2.bias (w2), F.fc1.weight (128, w2*H/4*W/4),
 *   F.fc1.bias (128), F.fc2.weight (K,128), F.fc2.bias (K);
 *   dataset_digest = the digest of the data it was fitted on;
 *   notes: "kind" = "featnet", "features" = "trained" or "random_cnn",
 *   "test_accuracy", "train_accuracy", "epochs", "fit_seconds",
 *   "test_dataset_digest" (hex) when a test set was used.
 * The optimizer state is not stored (state.step = number of updates).
 * Files are written atomically (featnet_write_gck). */
#ifndef GB_FEATNET_H
#define GB_FEATNET_H

#include "ckpt.h"
#include "store.h"

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

/* Read n examples of s (indices idx[0..n), or 0..n-1 when idx is NULL)
 * into x (n, C, H, W) in [-1, 1] and labels (n; may be NULL). Returns 0
 * or the store_get_pixels error (logged with the index). */
int featnet_read_store(store_t *s, const uint64_t *idx, size_t n, float *x, int32_t *labels);

/* Fit a new network on the labelled examples of train (every example must
 * carry a label): `epochs` passes in shuffled mini-batches of 64 (Adam,
 * lr 2e-3 decayed by cosine to 1e-4), seeded. test (may be NULL) is
 * evaluated after each epoch (logged) and at the end (*test_acc, -1 when
 * absent). Stops early with GB_EINTR when sig_stop_requested(). Returns 0
 * and *out, or GB_EFORMAT (unlabelled data; reason in err),
 * GB_EMISMATCH (test set of another shape) or a store error. */
int featnet_fit(store_t *train, store_t *test, int epochs, uint64_t seed, featnet_t **out, double *train_acc,
                double *test_acc, char *err, size_t errlen);

/* Build the file contents of f (see FILE FORMAT) into a new builder:
 * the caller may add notes, then write it with featnet_write_gck.
 * features_kind is "trained" or "random_cnn"; digest may be NULL. */
ckpt_builder_t *featnet_to_builder(const featnet_t *f, const char *const *class_names,
                                   const uint8_t digest[32], const char *features_kind);

/* Write ck to exactly `path`, atomically: ckpt_save into a private
 * folder next to path (so header, SHA-256 and fsync come from ckpt.c),
 * then rename over path and fsync the folder. Returns 0 or an errno /
 * GB_* code, logged with the path; nothing is left behind on failure. */
int featnet_write_gck(const char *path, const Gambar__Checkpoint *ck);

/* Load a feature network file. Returns 0 and *out, or the ckpt_load error,
 * or GB_EFORMAT when the file is not a feature network / a tensor is
 * missing or misshapen (reason in err). kind_out (may be NULL) gets
 * "trained"/"random_cnn" (static string). Class names are read with
 * featnet_class_names from the checkpoint if needed. */
int featnet_load(const char *path, int max_batch, featnet_t **out, const char **kind_out, double *test_acc,
                 char *err, size_t errlen);

#endif
