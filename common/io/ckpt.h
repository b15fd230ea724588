/* ckpt.h - checkpoint files: save atomically, load with verification.
 *
 * A checkpoint is one gambar.Checkpoint message (proto/checkpoint.proto:
 * model description, named float32 tensors, training state, provenance)
 * behind a fixed 64-byte header. File format, version 1, little-endian:
 *
 *   offset size  field
 *   0      8     magic "GAMBARCK"
 *   8      4     u32 format version (CKPT_VERSION = 1)
 *   12     4     u32 header size (64; readers seek to it, accept 64..4096)
 *   16     8     u64 payload length
 *   24     32    SHA-256 of the payload
 *   56     8     reserved, zero
 *   64     ...   payload: the protobuf-encoded Checkpoint, then end of file
 *
 * The "checkpoint digest" (CheckpointReady.digest, image provenance,
 * Checkpoint.parent_digest) is the SHA-256 of the whole file.
 *
 * Files live in one folder as ckpt-NNNNNNNNNN.gck (the step, zero-padded
 * to 10 digits). ckpt_save writes, through afile (afile.h, the one
 * atomic writer), a temporary file in the same folder
 * (".ckpt-<step>.<pid>.tmp"), fsyncs it, renames it into place and fsyncs
 * the folder; any failure abandons the save (never retrying an fsync: after
 * a failed fsync Linux may have dropped the dirty pages) and leaves the
 * older checkpoints untouched. Readers therefore see whole files or none,
 * and ckpt_find_latest skips a torn or corrupt file with a warning and
 * falls back to the previous one.
 *
 * Building a checkpoint: protobuf-c messages are plain structs whose
 * pointers the caller must keep alive; ckpt_builder_t owns every piece of
 * memory hung off the message it builds, so the trainer only fills
 * fields:
 *
 *   ckpt_builder_t *b = ckpt_builder_new();
 *   Gambar__Checkpoint *ck = ckpt_builder_msg(b);   // model, state preset
 *   ck->model->family = ckpt_builder_strdup(b, "dcgan28");
 *   ck->state->step = step;
 *   ckpt_add_tensor(b, "G.net_0.weight", shape, 4, w);   // copies w
 *   ckpt_add_rng(b, "train", rng.s);
 *   rc = ckpt_save(dir, ck, 3, path, sizeof path, digest);
 *   ckpt_builder_destroy(&b);
 *
 * Thread safety: functions on different objects may run concurrently;
 * one builder must not be used from two threads at once. */
#ifndef GB_CKPT_H
#define GB_CKPT_H

#include "checkpoint.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_MAGIC "GAMBARCK"          /* 8 bytes, no terminator in the file */
#define CKPT_VERSION 1u                /* format version this code writes */
#define CKPT_HEADER_SIZE 64u           /* header bytes written by this code */
#define CKPT_MAX_FILE_BYTES ((uint64_t)8 << 30) /* larger files: GB_ETOOBIG */
#define CKPT_MAX_DIMS 8                /* tensors with more dims are rejected */
#define CKPT_WRITE_CHUNK ((size_t)1 << 18) /* bytes per write(2) call of a save (its staging buffer
                                               counts in the trainer's RSS) */

/* ---- building ---------------------------------------------------------- */

typedef struct ckpt_builder ckpt_builder_t;

/* A new builder holding an empty Checkpoint whose model (ModelDesc) and
 * state (TrainState, with adam_g and adam_d) sub-messages are allocated and
 * initialised to proto3 defaults. Never returns NULL. */
ckpt_builder_t *ckpt_builder_new(void);

/* Free the builder and everything it owns (the message, its tensors and
 * every string/bytes made with ckpt_builder_*). NULL and *b == NULL are
 * fine; sets *b to NULL. */
void ckpt_builder_destroy(ckpt_builder_t **b);

/* The message being built (borrowed; valid until ckpt_builder_destroy).
 * Scalar fields may be set directly. Pointer fields must point to memory
 * that outlives the builder: use the helpers below. */
Gambar__Checkpoint *ckpt_builder_msg(ckpt_builder_t *b);

/* A copy of s owned by the builder, to store in a string field
 * (model->family, model->loss, command_line, software_version, ...).
 * s NULL gives "". Never returns NULL. */
char *ckpt_builder_strdup(ckpt_builder_t *b, const char *s);

/* A copy of data[0..n) owned by the builder, for a bytes field
 * (dataset_digest, parent_digest). */
ProtobufCBinaryData ckpt_builder_bytes(ckpt_builder_t *b, const void *data, size_t n);

/* n zeroed bytes owned by the builder (freed by ckpt_builder_destroy),
 * for sub-messages and pointer arrays hung off the message (e.g. the
 * TextEncoderDesc, common/io/tencck.c). Never returns NULL. */
void *ckpt_builder_alloc(ckpt_builder_t *b, size_t n);

/* Append a class name to model->class_names (copied). Does not touch
 * model->num_classes. */
void ckpt_add_class_name(ckpt_builder_t *b, const char *name);

/* Set notes[key] = value (both copied; replaces an existing key). */
void ckpt_set_note(ckpt_builder_t *b, const char *key, const char *value);

/* Append a tensor: name (copied), shape[0..ndim) (ndim 0..CKPT_MAX_DIMS,
 * every dimension >= 0), data = product(shape) floats, copied and stored
 * little-endian. Returns 0, or GB_EMISMATCH (logged) when a tensor of
 * that name is already present. Bad ndim/shape is a caller bug (ASSERT). */
int ckpt_add_tensor(ckpt_builder_t *b, const char *name, const int64_t *shape, int ndim,
                    const float *data);

/* Like ckpt_add_tensor, but data is borrowed, not copied (on a
 * little-endian host; elsewhere it is copied): the floats must stay
 * alive and unchanged until the builder is destroyed, in particular
 * during ckpt_save, which streams them to the file without a copy. What
 * lets the trainer save without doubling its memory. */
int ckpt_add_tensor_ref(ckpt_builder_t *b, const char *name, const int64_t *shape, int ndim,
                        const float *data);

/* Append (or replace) the named random generator state s[4]. */
void ckpt_add_rng(ckpt_builder_t *b, const char *name, const uint64_t s[4]);

/* ---- saving and loading ------------------------------------------------ */

/* Write ck as dir/ckpt-%010llu.gck (step = ck->state->step; ck->model and
 * ck->state must be set) atomically: temp file in dir, write, fsync,
 * rename, fsync dir, through afile (temp file ".ckpt-<step>.<pid>.tmp";
 * the file is streamed, never held in memory: see ckpt.c; tensors must
 * not change during the call). dir is created (one level, mode 0755) if
 * missing.
 * An existing file of the same step is replaced atomically.
 * Then prunes: files of older steps than the keep-th newest valid
 * checkpoint (by step; validity checked from the header and file size)
 * are removed, and so are leftover temp files of dead processes; the file
 * just written is never removed. keep <= 0 keeps everything. Prune
 * failures are logged warnings, not errors.
 * path_out (may be NULL) receives the file path, digest_out (may be NULL)
 * the SHA-256 of the whole file.
 * Returns 0, or an errno (EIO, ENOSPC, ...) with the file and the failing
 * operation logged. On failure the temp file is removed, no file named
 * ckpt-*.gck was added or changed, and the save must be considered lost
 * (call again to retry from scratch); afile logs the failing operation
 * with the path, and a second line says the step was not saved. One
 * exception: when the final folder fsync fails, the renamed file is withdrawn (unlinked), so a file
 * of the same step that it had replaced is gone too. ENAMETOOLONG when
 * the path does not fit path_len.
 * Not for concurrent saves of the same step into one folder from one
 * process (they share the temp name). */
int ckpt_save(const char *dir, const Gambar__Checkpoint *ck, int keep, char *path_out,
              size_t path_len, uint8_t digest_out[32]);

/* Write ck as the file path (any name; no pruning) atomically through
 * afile, in the same format and with the same guarantees as ckpt_save:
 * for checkpoint-format files outside a checkpoint folder (gambar-eval's
 * feature network). digest_out (may be NULL) receives the file digest.
 * Returns 0 or an errno, logged with the path. */
int ckpt_write(const char *path, const Gambar__Checkpoint *ck, uint8_t digest_out[32]);

/* Read and verify the checkpoint file at path. Checks, in order: size
 * (GB_ECORRUPT when shorter than a header but starting like one, or when
 * shorter/longer than header + payload length; GB_ETOOBIG over
 * CKPT_MAX_FILE_BYTES), magic (GB_EFORMAT), version (GB_EVERSION), header
 * size (GB_EFORMAT), payload SHA-256 (GB_ECORRUPT), protobuf decoding with
 * a memory cap (GB_EFORMAT), content (GB_EFORMAT: model, state,
 * state.adam_g or state.adam_d missing, a tensor without a name or whose
 * data length is not 4 * product(shape), negative or more than
 * CKPT_MAX_DIMS dims, duplicate tensor names, a random generator without
 * exactly 4 words). Each failure logs an error naming path and the
 * reason. Open/read errors return the errno (ENOENT, EACCES, ELOOP...);
 * something other than a regular file is GB_EFORMAT.
 * So a caller may index every tensor by its shape without more checks.
 * On success *out is the message (caller frees it with ckpt_free; do not
 * free it any other way) and digest_out (may be NULL) is the file digest.
 * out may be NULL to only verify. On failure *out is NULL. */
int ckpt_load(const char *path, Gambar__Checkpoint **out, uint8_t digest_out[32]);

/* Like ckpt_load but failures are logged at level `level` (log_level_t)
 * instead of error; used by ckpt_find_latest (warnings) and by callers
 * probing files. */
int ckpt_load_quiet(const char *path, int level, Gambar__Checkpoint **out,
                    uint8_t digest_out[32]);

/* Free a message returned by ckpt_load/ckpt_find_latest. NULL and
 * *ck == NULL are fine; sets *ck to NULL. Never pass a builder's message. */
void ckpt_free(Gambar__Checkpoint **ck);

/* Find the newest (highest step) valid checkpoint in dir. Files named
 * ckpt-<digits>.gck are tried from the highest step down; one that fails
 * ckpt_load is skipped with a warning naming it and the reason.
 * On success path_out gets its path (may be NULL), *out the loaded
 * message (may be NULL to not keep it; free with ckpt_free) and
 * digest_out its file digest (may be NULL).
 * Returns 0, GB_ENOTFOUND when dir is missing or holds no valid
 * checkpoint, ENAMETOOLONG, or an errno from reading the folder. */
int ckpt_find_latest(const char *dir, char *path_out, size_t len, Gambar__Checkpoint **out,
                     uint8_t digest_out[32]);

/* SHA-256 of the whole file at path (the checkpoint digest). Returns 0 or
 * an errno. */
int ckpt_file_digest(const char *path, uint8_t out[32]);

/* ---- reading tensors --------------------------------------------------- */

/* The tensor called name in ck, or NULL. Borrowed from ck. Linear search. */
const Gambar__Tensor *ckpt_tensor(const Gambar__Checkpoint *ck, const char *name);

/* Copy the tensor called name into dst (product(shape) floats) after
 * checking its shape equals shape[0..ndim). Returns 0, GB_ENOTFOUND or
 * GB_EMISMATCH (both logged with the name, the expected and the stored
 * shape). */
int ckpt_get_tensor(const Gambar__Checkpoint *ck, const char *name, const int64_t *shape,
                    int ndim, float *dst);

/* Check a stored tensor against what its user (`who`, e.g. "the model")
 * needs: present (GB_ENOTFOUND), shape[0..ndim) and n floats
 * (GB_EMISMATCH, both shapes named), and, when finite, every value finite
 * (GB_ENUMERIC, naming NaN/+Inf/-Inf and the first bad index). st may be
 * NULL. The message names the tensor `name`; err gets it. Allocates
 * nothing. */
int ckpt_tensor_check(const Gambar__Tensor *st, const char *name, const char *who, const int64_t *shape, int ndim,
                      size_t n, bool finite, char *err, size_t errlen);

/* Number of float32 elements of t (product of its shape). */
int64_t ckpt_tensor_numel(const Gambar__Tensor *t);

/* Copy the named generator state into s[4]. Returns 0 or GB_ENOTFOUND
 * (not logged: callers decide whether a missing generator matters). */
int ckpt_get_rng(const Gambar__Checkpoint *ck, const char *name, uint64_t s[4]);

/* The value of notes[key], or NULL. Borrowed from ck. */
const char *ckpt_note(const Gambar__Checkpoint *ck, const char *key);

/* Fault injection for ckpt_save / ckpt_write: afile_test_fail_at and
 * afile_test_short_writes (afile.h); a save's I/O calls are afile's
 * (create, one write per MiB, fsync, close, rename, open and fsync of
 * the folder). */

#endif
