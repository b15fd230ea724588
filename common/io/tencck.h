/* tencck.h - the glue between a text encoder (common/nn/textenc.h) and a
 * checkpoint (proto/checkpoint.proto: Checkpoint.text_encoder, a
 * TextEncoderDesc, plus the tensors T.* and OPT.T.*).
 *
 * Kept apart from modelck so that a checkpoint without text (every file
 * written before text-to-image existed) loads as before: the encoder is
 * optional, and its absence is GB_ENOTFOUND, for the caller to judge. */
#ifndef GB_TENCCK_H
#define GB_TENCCK_H

#include "ckpt.h"
#include "textenc.h"

#include <stdbool.h>
#include <stddef.h>

/* The plain description of a TextEncoderDesc message. out->vocab points
 * into md (borrowed: valid while md is). Returns 0, or GB_EFORMAT
 * (unknown activation, a number out of int range) with the reason in err.
 * Does not run tenc_desc_check (tenc_new does). */
int tencck_desc(const Gambar__TextEncoderDesc *md, tenc_desc_t *out, char *err, size_t errlen);

/* Set the builder's Checkpoint.text_encoder from e's description and add
 * e's parameter tensors (T.*); with_opt also stores its Adam state and
 * moments (OPT.T.m.*, OPT.T.v.*). e is not modified. */
void tencck_store(const tenc_t *e, bool with_opt, ckpt_builder_t *b);

/* Build the encoder stored in ck for batches of max_batch texts: its
 * description, T.* tensors and, with with_opt, its Adam state and moments
 * (then required; without with_opt they start at zero, t = 0). Every
 * shape and value is checked before anything is kept. Returns 0 and *out
 * (free with tenc_free); GB_ENOTFOUND when ck has no text encoder (err
 * says so) or lacks a tensor; GB_EMISMATCH for a tensor of the wrong
 * shape; GB_ENUMERIC for a NaN/Inf value (err names the tensor and
 * index); what tencck_desc / tenc_new return for a bad description. */
int tencck_load(const Gambar__Checkpoint *ck, int max_batch, bool with_opt, tenc_t **out, char *err,
                size_t errlen);

#endif
