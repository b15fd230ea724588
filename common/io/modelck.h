/* modelck.h - the glue between a model_t and a checkpoint.
 *
 * The trainer saves with modelck_store; the trainer's --resume, the
 * sampler and the evaluator rebuild the model with modelck_load, so the
 * mapping between the model's tensor table (model.h) and the
 * checkpoint's named tensors (proto/checkpoint.proto) lives in one place.
 * Gradients (GRAD.*) are never stored. */
#ifndef GB_MODELCK_H
#define GB_MODELCK_H

#include "ckpt.h"
#include "model.h"

#include <stddef.h>

/* Convert a checkpoint's ModelDesc into out (class names copied: release
 * with model_desc_release). Returns 0, or GB_EFORMAT with the reason in
 * err (unknown family or loss, or a description model_desc_check
 * rejects). */
int modelck_desc(const Gambar__ModelDesc *md, model_desc_t *out, char *err, size_t errlen);

/* Fill the builder's ModelDesc from m's description, its TrainState's
 * adam_g / adam_d / ema_decay from m, and add every parameter, buffer,
 * EMA and Adam moment tensor of m, borrowed (ckpt_add_tensor_ref: no
 * copy; m must not change or be freed until the builder is destroyed).
 * Other TrainState fields (step, rng, data position) are the caller's. */
void modelck_store(const model_t *m, ckpt_builder_t *b);

/* Build a model (max_batch images per step) from ck: shapes from its
 * ModelDesc, every state tensor, Adam state and EMA decay. Missing Adam
 * moments or EMA tensors are an error (a checkpoint for training must be
 * whole). Returns 0 and *out (free with model_free), or GB_EFORMAT /
 * GB_EMISMATCH / GB_ENOTFOUND with the reason in err, or GB_ENUMERIC
 * when a loaded tensor holds NaN/Inf (err names the tensor and the index
 * of its first bad value; exit status 5). */
int modelck_load(const Gambar__Checkpoint *ck, int max_batch, model_t **out, char *err, size_t errlen);

/* Copy ck's weights (G.*, D.* parameters and buffers, and EMA.G.* when
 * present, else EMA = G) into the existing model m, leaving its optimizer
 * state alone: fine-tuning with --init-from. The descriptions must give
 * the same tensor shapes: otherwise GB_EMISMATCH naming the first tensor
 * that differs, GB_ENUMERIC naming the first tensor holding NaN/Inf (and
 * the index), and m is unchanged. */
int modelck_load_weights(model_t *m, const Gambar__Checkpoint *ck, char *err, size_t errlen);

#endif
