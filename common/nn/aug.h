/* aug.h - the augmented batch stream: which examples go in which batch,
 * and the image augmentations applied to them.
 *
 * The stream gambar-augment produces is a pure function of (dataset
 * digest, seed, epoch, batch index), so anyone holding this module (the
 * augmenter, a trainer that augments in-process, a test) can recompute any
 * batch without replaying the ones before it:
 *
 *   d64  = digest_u64(DatasetInfo.digest)
 *   bpe  = floor(count / N)      batches per epoch (drop_last: the last
 *                                count % N examples of each epoch's
 *                                permutation are not used that epoch)
 *   perm = Fisher-Yates of 0..count-1 with rng_derive(seed, d64, epoch,
 *          0, AUG_STREAM_PERM)
 *   batch b of epoch e (0 <= b < bpe) holds perm[b*N .. b*N+N), global
 *          index g = e*bpe + b (Batch.seq), augmented image by image in
 *          that order with one generator rng_derive(seed, d64, e, b,
 *          AUG_STREAM_BATCH); the ops run in the order given, each drawing
 *          its random numbers unconditionally.
 *   caption: when the dataset has captions, the image of dataset index
 *          ix in epoch e carries Example.captions[k] with k =
 *          aug_caption_pick(seed, d64, e, ix, n_captions): its own stream,
 *          rng_derive(seed, d64, e, ix, AUG_STREAM_CAPTION), so the choice
 *          depends neither on the batch nor on the augmentations.
 *   shard I of N takes the batches with b % N == I; every shard computes
 *          the same permutation, so together the shards cover an epoch
 *          exactly once.
 *
 * Images are augmented in float, CHW, pixel units 0..255, then stored as
 * u8 (rounded, clamped) or f32 (x/127.5 - 1, in [-1, 1]). No allocation
 * happens per image: the caller passes the working buffers. */
#ifndef GB_AUG_H
#define GB_AUG_H

#include "rng.h"

#include <stddef.h>
#include <stdint.h>

#define AUG_MAX_OPS 16         /* ops in one --ops list */
#define AUG_STREAM_PERM 1      /* rng_derive's last coordinate for permutations */
#define AUG_STREAM_BATCH 2     /* ... and for a batch's augmentation draws */
#define AUG_STREAM_CAPTION 3   /* ... and for an image's caption choice */

typedef enum {
    AUG_FLIP,      /* horizontal flip with probability p1 (default 0.5) */
    AUG_TRANSLATE, /* shift by dx, dy uniform in [-p1, p1] px, zero fill (default 2) */
    AUG_CROP,      /* reflect-pad by p1 px, random crop back to H x W (default 4) */
    AUG_JITTER,    /* brightness +-p1 of full scale, contrast *[1-p2, 1+p2] (default 0.2, 0.2) */
    AUG_CUTOUT,    /* zero a p1 x p1 square at a uniform random centre (default 8) */
} aug_kind_t;

typedef struct {
    aug_kind_t kind;
    float p1, p2; /* parameters, see aug_kind_t */
} aug_op_t;

/* An ordered list of ops; n == 0 means "none". Plain value, no cleanup. */
typedef struct {
    int n;
    aug_op_t op[AUG_MAX_OPS];
} aug_list_t;

/* Parse a comma list such as "flip,translate:3,jitter:0.1,0.2" (a
 * parameter list after ':' ends at the next name). Names: flip[:P],
 * translate[:PX], crop[:PAD], jitter[:B[,C]], cutout[:SIZE], none (alone).
 * Returns 0 and *out, or GB_EFORMAT with a one-line reason in why[0..whylen)
 * naming the offending item. */
int aug_parse(const char *spec, aug_list_t *out, char *why, size_t whylen);

/* Canonical text of ops ("flip:0.5,translate:2"; "none" when empty) into
 * buf[0..n), always NUL-terminated. */
void aug_format(const aug_list_t *ops, char *buf, size_t n);

/* Check that ops fit images of h x w (crop needs PAD < min(h, w)).
 * Returns 0 or GB_EMISMATCH with the reason in why. */
int aug_check_shape(const aug_list_t *ops, int h, int w, char *why, size_t whylen);

/* Augment one image. px: h*w*c bytes, HWC (as stored). x: out, c*h*w
 * floats, CHW, pixel units 0..255. scratch: c*h*w floats of working space.
 * Draws from r; the number of draws depends only on ops, not on pixels. */
void aug_image(const aug_list_t *ops, rng_t *r, const uint8_t *px, int h, int w, int c, float *x,
               float *scratch);

/* Convert n pixel-unit floats (within 0..255, as aug_image leaves them) to
 * the wire encodings of proto DType. */
void aug_to_f32(const float *x, size_t n, float *out);   /* x/127.5 - 1: 0..255 -> exactly [-1, 1] */
void aug_to_u8(const float *x, size_t n, uint8_t *out);  /* rounded, clamped to 0..255 */

/* The epoch permutation: perm[0..count) = a shuffle of 0..count-1. */
void aug_epoch_perm(uint64_t seed, uint64_t d64, uint64_t epoch, uint64_t *perm, uint64_t count);

/* Which of an example's n captions it carries in epoch: 0..n-1, or 0
 * when n is 0. A pure function of its arguments. */
uint32_t aug_caption_pick(uint64_t seed, uint64_t d64, uint64_t epoch, uint64_t index, uint32_t n);

/* The generator for batch b (index within the epoch) of epoch. */
void aug_batch_rng(rng_t *r, uint64_t seed, uint64_t d64, uint64_t epoch, uint64_t b);

/* Which global batches one producer sends. bpe = count / batch (must be
 * > 0); shard_i < shard_n; epochs == 0 means forever. The producer's k-th
 * batch (k = 0, 1, ...) is the k-th global index g >= start whose
 * in-epoch index g % bpe is = shard_i mod shard_n, and g < epochs*bpe. */
typedef struct {
    uint64_t bpe;      /* batches per epoch (all shards) */
    uint64_t shard_i;  /* this producer's shard, 0-based */
    uint64_t shard_n;  /* number of shards, >= 1 */
    uint64_t start;    /* first global batch index considered */
    uint64_t epochs;   /* epochs in the whole stream; 0 = forever */
} aug_plan_t;

/* Batches of the shard with a global index below g. */
uint64_t aug_plan_below(const aug_plan_t *p, uint64_t g);
/* Batches this producer sends in total (UINT64_MAX when forever). */
uint64_t aug_plan_total(const aug_plan_t *p);
/* Global batch index of the producer's k-th batch (k < aug_plan_total). */
uint64_t aug_plan_global(const aug_plan_t *p, uint64_t k);

#endif
