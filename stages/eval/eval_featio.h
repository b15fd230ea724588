/* eval_featio.h - the feature network's data and file glue, in
 * gambar-eval (its only user): read examples from the store, fit a
 * network on labelled data, and write/load it as a *.gck file. The
 * network's arithmetic is common/nn/featnet.h.
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
 * Files are written atomically (featio_write_gck). */
#ifndef GB_EVAL_FEATIO_H
#define GB_EVAL_FEATIO_H

#include "ckpt.h"
#include "featnet.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* Read n examples of s (indices idx[0..n), or 0..n-1 when idx is NULL)
 * into x (n, C, H, W) in [-1, 1] and labels (n; may be NULL). Returns 0
 * or the store_get_pixels error (logged with the index). */
int featio_read_store(store_t *s, const uint64_t *idx, size_t n, float *x, int32_t *labels);

/* Fit a new network on the labelled examples of train (every example must
 * carry a label): `epochs` passes in shuffled mini-batches of 64 (Adam,
 * lr 2e-3 decayed by cosine to 1e-4), seeded. test (may be NULL) is
 * evaluated after each epoch (logged) and at the end (*test_acc, -1 when
 * absent). Stops early with GB_EINTR when sig_stop_requested(). Returns 0
 * and *out, or GB_EFORMAT (unlabelled data; reason in err),
 * GB_EMISMATCH (test set of another shape) or a store error. */
int featio_fit(store_t *train, store_t *test, int epochs, uint64_t seed, featnet_t **out, double *train_acc,
               double *test_acc, char *err, size_t errlen);

/* Build the file contents of f (see FILE FORMAT) into a new builder:
 * the caller may add notes, then write it with featio_write_gck.
 * features_kind is "trained" or "random_cnn"; digest may be NULL.
 * The tensors are copied: f may change or go afterwards. */
ckpt_builder_t *featio_to_builder(featnet_t *f, const char *const *class_names, const uint8_t digest[32],
                                  const char *features_kind);

/* Write ck to exactly `path`, atomically: ckpt_write (header, SHA-256
 * from ckpt.c; temp file, fsync, rename and folder fsync from afile).
 * Returns 0 or an errno, logged with the path; nothing is left behind on
 * failure. */
int featio_write_gck(const char *path, const Gambar__Checkpoint *ck);

/* Load a feature network file. Returns 0 and *out, or the ckpt_load error,
 * or GB_EFORMAT when the file is not a feature network / a tensor is
 * missing or misshapen (reason in err). kind_out (may be NULL) gets
 * "trained"/"random_cnn" (static string). test_acc (may be NULL) gets the
 * "test_accuracy" note, -1 when absent. */
int featio_load(const char *path, int max_batch, featnet_t **out, const char **kind_out, double *test_acc,
                char *err, size_t errlen);

#endif
