/* train.h - internal interfaces of gambar-train, shared by its files:
 *   train_batch.c  checks an incoming Batch against what the run expects
 *                  and converts its pixels to floats;
 *                  and counts and (rate-limited) logs dropped messages;
 *   train_ckpt.c   turns a model plus the training position into a
 *                  checkpoint and back;
 *   train_db.c     reads --db: the dataset digest, class names and the
 *                  provenance notes checkpoints carry;
 *   train_mpi.c    the MPI glue when started by mpirun (data parallelism);
 *   train_text.c   text-conditional training: the text encoder, its
 *                  vocabulary and the GAN-CLS step.
 * main.c holds the options, the sockets and the loop. */
#ifndef GB_TRAIN_H
#define GB_TRAIN_H

#include "checkpoint.pb-c.h"
#include "ckpt.h"
#include "dataset.pb-c.h"
#include "digest.h"
#include "model.h"
#include "rng.h"
#include "stream.pb-c.h"
#include "textenc.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

#define TRAIN_MAX_BATCH 4096   /* images in one Batch we accept */
#define TRAIN_MAX_SIDE 4096    /* c, h, w bounds */

/* ---- dropped messages (train_batch.c) ------------------------------------ */

/* Why a message was dropped. The first five mirror wire_stats_t. */
typedef enum {
    DROP_FRAMES = 0,   /* wrong number of frames */
    DROP_TYPE,         /* not a Batch or EndOfStream */
    DROP_PAYLOAD,      /* protobuf did not decode */
    DROP_TOO_BIG,      /* over the size limit */
    DROP_SHAPE,        /* n/c/h/w impossible or not the model's */
    DROP_DTYPE,        /* unknown dtype */
    DROP_SIZE,         /* data/labels/indices lengths disagree with n*c*h*w */
    DROP_DATASET,      /* dataset digest, num_classes or batches_per_epoch differ */
    DROP_PIXELS,       /* NaN/Inf or out-of-range pixel values */
    DROP_LABELS,       /* label out of range (or missing for a conditional model) */
    DROP_STALE,        /* seq below the one expected next (already trained on) */
    DROP_AHEAD,        /* seq too far ahead of the one expected (outside the window) */
    DROP_DUPLICATE,    /* seq already held in the reorder window */
    DROP_KINDS
} drop_kind_t;

typedef struct {
    uint64_t count[DROP_KINDS];
    wire_stats_t wire; /* wire_recv's own counters */
    uint64_t wire_seen[4]; /* wire counters already folded into count[] */
} drop_stats_t;

/* snake_case name of a kind, e.g. "wrong_shape". */
const char *drop_kind_name(drop_kind_t k);
/* Count one drop of kind k; log it (warn) with the reason `why` when it is
 * one of the first 3 of its kind or its count is a power of two, so a
 * flood of garbage costs a few log lines, not one per message. */
void drop_note(drop_stats_t *d, drop_kind_t k, uint64_t seq, const char *why);
/* Fold new wire_recv counters into count[] (logging as drop_note does). */
void drop_sync_wire(drop_stats_t *d);
uint64_t drop_total(const drop_stats_t *d);
/* One info line per non-zero kind and the total. */
void drop_report(const drop_stats_t *d);

/* ---- batch checking (train_batch.c) --------------------------------------- */

/* What the run expects of every batch. Fields with have_* == 0 are not yet
 * fixed: the first accepted batch fixes them (train_expect_fix). */
typedef struct {
    int have_dataset;
    uint8_t digest[DIGEST_LEN];
    uint32_t num_classes;
    uint32_t bpe;             /* batches per epoch */
    int have_shape;
    uint32_t c, h, w;
    int conditional;          /* labels must be in [0, num_classes) */
    int aux;                  /* the same for a text model's auxiliary classifier */
    int text;                 /* every image needs a caption (valid UTF-8) */
} train_expect_t;

/* Check b's structure and contents against ex. Returns 0 when it can be
 * trained on, or the drop kind with a one-line reason in why[0..len). Does
 * not look at seq ordering (main.c does). */
int train_batch_check(const Gambar__Batch *b, const train_expect_t *ex, char *why, size_t len);

/* Fix ex's unset fields from an accepted batch b. */
void train_expect_fix(train_expect_t *ex, const Gambar__Batch *b);

/* Convert b's pixels (already checked) to floats in [-1, 1]: out holds
 * n*c*h*w floats, NCHW. labels_out (n ints) gets the labels, clamped to 0
 * when absent (only used by conditional models, which require them). */
void train_batch_floats(const Gambar__Batch *b, float *out, int32_t *labels_out);

/* ---- the dataset (train_db.c) --------------------------------------------- */

#define TRAIN_DB_NOTES 6
/* The checkpoint note keys, in train_db_t.note order: dataset_source,
 * dataset_count, license_summary, attribution_count, optout_count,
 * duplicate_count. */
extern const char *const train_db_note_keys[TRAIN_DB_NOTES];

/* What the run knows about its dataset, from --db or a resumed checkpoint. */
typedef struct {
    int have;                       /* any note set */
    uint8_t digest[DIGEST_LEN];     /* DatasetInfo.digest (or the checkpoint's dataset digest) */
    char **class_names;             /* owned; n_classes of them (--db only) */
    size_t n_classes;
    char *note[TRAIN_DB_NOTES];     /* owned; NULL = not known */
} train_db_t;

/* Someone else's use of the same pass over the dataset (train_db_read):
 * begin (may be NULL) sees the DatasetInfo before the scan, example (may
 * be NULL) every Example in index order (borrowed for the call). A
 * non-zero return stops the read and is returned (log the reason). */
typedef struct {
    int (*begin)(void *arg, const Gambar__DatasetInfo *info);
    int (*example)(void *arg, uint64_t i, const Gambar__Example *ex);
    void *arg;
} train_db_visitor_t;

/* Open the dataset at path read-only and fill db (release with
 * train_db_free): digest, class names, and the notes (license_summary from
 * DatasetInfo.licenses, largest count first, "" shown as "unknown", e.g.
 * "CC-BY-4.0: 120, unknown: 40"; attribution_count counts Examples with an
 * attribution, one pass over the store, omitted above 2M examples unless
 * v has an example callback). v (may be NULL) is called in that same
 * pass. Returns 0, v's rc, or GB_EMISMATCH / an rc with the reason logged
 * naming path; on failure db is empty. */
int train_db_read(const char *path, train_db_t *db, const train_db_visitor_t *v);
/* Notes of a checkpoint (those present) and its dataset digest into db. */
void train_db_from_ckpt(const Gambar__Checkpoint *ck, train_db_t *db);
/* Set db's known notes on the checkpoint being built (nothing for NULL or
 * an empty db). */
void train_db_notes(const train_db_t *db, ckpt_builder_t *b);
void train_db_free(train_db_t *db);
/* "LICENSE: N, ..." for info (malloc'd): see train_db_read. */
char *train_license_summary(const Gambar__DatasetInfo *info);

/* ---- checkpoints (train_ckpt.c) -------------------------------------------- */

/* The training position besides the model's tensors and Adam state. */
typedef struct {
    uint64_t step;            /* optimisation steps done */
    uint32_t epoch;           /* epoch of the next batch */
    uint64_t next_seq;        /* Batch.seq expected next */
    uint64_t images_seen;
    uint64_t seed;            /* --seed */
    double wall_trained;      /* seconds spent training, over all runs */
    int threads;
    uint8_t dataset_digest[DIGEST_LEN];
    int have_dataset;
    uint32_t bpe;             /* batches per epoch of the stream */
    uint32_t num_classes;     /* of the dataset */
    uint32_t c, h, w;         /* image shape of the stream */
    int max_batch;            /* the model's batch capacity */
    int micro_batches;        /* M of --micro-batches (1 = whole batches) */
    uint8_t parent_digest[DIGEST_LEN];
    int have_parent;
    const char *command_line; /* borrowed */
    const train_db_t *db;     /* borrowed; its notes are saved (may be NULL) */
    const tenc_t *tenc;       /* borrowed; text models: the text encoder, saved with
                                 its Adam state (NULL otherwise) */
    const float *text_pool;   /* text models: sentence vectors (n_pool, T) the EMA
                                 statistics are re-estimated with (the last step's);
                                 n_pool 0: not re-estimated */
    int n_pool;
    double gan_int;           /* text models: the GAN-INT weight (note train.gan_int) */
    double contrast;          /* text models: the contrastive weight (note
                                 train.contrastive; absent = 0) */
    double mode_seek;         /* text models: the mode-seeking weight (note
                                 train.mode_seek; absent = 0) */
    double aux_class;         /* text models: the auxiliary classifier's weight
                                 (note train.aux_class; absent = 0) */
    double text_g_weight;     /* text models: --text-grad-g (note train.text_g_weight;
                                 absent = 1) */
    int text_from_g;          /* text models: G's loss trains the encoder too (note
                                 train.text_grad "dg"; "d" or, old runs, absent: 0/1) */
} train_pos_t;

/* Save model m and position p to dir (keeping `keep` checkpoints), after
 * checking every tensor is finite (GB_ENUMERIC, nothing written, when not).
 * path_out/digest_out as ckpt_save. Returns 0, GB_ENUMERIC or an errno. */
int train_ckpt_save(const char *dir, int keep, model_t *m, const train_pos_t *p, char *path_out,
                    size_t path_len, uint8_t digest_out[DIGEST_LEN]);

/* Read the position (everything but tensors) from ck into p (command_line
 * left NULL). Returns 0 or GB_EFORMAT (logged). */
int train_ckpt_pos(const Gambar__Checkpoint *ck, train_pos_t *p);

/* Copy every non-gradient tensor, both Adam states and the EMA decay from
 * src into dst (same description, any max_batch): used to grow the batch
 * capacity. */
void train_model_copy(model_t *dst, model_t *src);

/* Non-zero when every parameter, buffer and EMA tensor of m is finite;
 * otherwise *bad (may be NULL) names the first bad tensor. */
int train_model_finite(const model_t *m, const char **bad);

/* ---- text (train_text.c) ----------------------------------------------------- */

#define TRAIN_TEXT_DIM 32 /* T: length of the sentence vectors of a new text run */
#define TRAIN_TEXT_LR 2e-3 /* the text encoder's default learning rate (--lr-text; train_text.c) */
#define TRAIN_TEXT_GAIN 5.656854249492380 /* sqrt(TRAIN_TEXT_DIM): G's text projection starts N(0, 1) (--text-gain) */

/* The text encoder of a text run and its per-batch buffers (cap texts). */
typedef struct {
    tenc_t *enc;
    int cap;
    float *vec, *dtd, *dtg; /* (cap, T): the step's sentence vectors and their two gradients */
    int32_t *mis;           /* (cap): the step's mismatched caption of each image */
    const char **caps;      /* (cap): the batch's captions, borrowed */
    int n_last;             /* rows of vec from the last step (0: none yet) */
    int from_g;             /* 1: G's loss trains the encoder too (--text-grad dg), 0: D's only */
    double g_weight;        /* from_g: G's gradient enters the encoder's step times this
                               (--text-grad-g; 1 = as is) */
} train_text_t;

/* The vocabulary of the captions of a dataset (every caption of every
 * Example, words seen at least twice, at most 20000), built during
 * train_db_read's pass over it (the dataset is read once): init sets
 * *vis (pass it to train_db_read, which then fails with GB_EMISMATCH,
 * logged naming path, when the dataset has no captions or a caption is
 * not valid UTF-8); after a successful read, finish gives *vocab (free
 * with tenc_vocab_free) of *n words and *n_captions (may be NULL) and
 * logs the counts; free always. */
typedef struct {
    const char *path;        /* borrowed, for messages */
    tenc_counter_t *c;       /* owned */
    uint64_t caps;
} train_vocab_t;
void train_vocab_init(train_vocab_t *v, const char *path, train_db_visitor_t *vis);
void train_vocab_finish(train_vocab_t *v, char ***vocab, int *n, uint64_t *n_captions);
void train_vocab_free(train_vocab_t *v);
/* A new encoder for vocab (copied), out_dim TRAIN_TEXT_DIM, initialised
 * from seed; buffers for cap texts; from_g and g_weight as train_text_t; word pairs up
 * to pair_window apart (textenc.h; 1 = adjacent only). Returns 0 or
 * tenc_new's rc (logged). */
int train_text_new(train_text_t *tt, char *const *vocab, int n, int cap, uint64_t seed, int from_g,
                   double g_weight, int pair_window);
/* The encoder stored in ck with its Adam state (a resumed run), checked to
 * make text_dim vectors; from_g and g_weight as train_text_t. Returns 0 or an rc
 * (logged). */
int train_text_load(train_text_t *tt, const Gambar__Checkpoint *ck, int cap, int text_dim, int from_g,
                    double g_weight);
/* Grow to cap texts (weights and Adam state kept); no-op when not larger. */
void train_text_grow(train_text_t *tt, int cap);
void train_text_free(train_text_t *tt);
/* mis[0..N) = a random N-cycle from r (mis[i] != i), N >= 2. */
void train_text_mismatch(rng_t *r, int N, int32_t *mis);
/* One GAN-CLS step on batch b (checked; captions present), with real (its
 * pixels as floats), z, and tt->mis already drawn: encode, model step,
 * encoder backward and Adam step. Returns 0, GB_ENUMERIC or an rc. */
int train_text_step(train_text_t *tt, model_t *m, const Gambar__Batch *b, const float *real, const float *z,
                    model_stats_t *s);
/* Non-zero when every state tensor of e is finite (else *bad names one). */
int train_text_finite(const tenc_t *e, const char **bad);

/* ---- MPI (train_mpi.c) ------------------------------------------------------ */

/* Commands rank 0 broadcasts before each piece of work (see train_mpi.c). */
enum { TMPI_MODEL = 1, TMPI_STEP = 2, TMPI_STOP = 3 };
typedef struct {
    int32_t cmd;
    int32_t n;       /* STEP: images in the batch */
    int32_t status;  /* STOP: rank 0's exit status */
    int32_t pad;
    uint64_t step;   /* STEP: steps done before this one */
} tmpi_hdr_t;

/* MPI_Init when started by mpirun (OMPI_COMM_WORLD_SIZE set), else
 * nothing (size 1, rank 0). Returns 0 or GB_EPEER (logged). */
int tmpi_init(int *argc, char ***argv);
/* Non-zero when running on more than one rank. */
int tmpi_active(void);
int tmpi_rank(void);
int tmpi_size(void);
/* Seconds spent in MPI calls so far (this rank). */
double tmpi_comm_seconds(void);
void tmpi_finalize(void);
/* MPI_Bcast from rank 0 of bytes at buf; no-op on one rank. A failure
 * logs "rank R: MPI_Bcast (what) failed: ...; a peer rank died?" and
 * exits 6. */
void tmpi_bcast(void *buf, size_t bytes, const char *what);
/* model_split_t.gather: MPI_Allgather in place, M/size records per rank
 * (rank r owns micro-batches [r*M/size, (r+1)*M/size)). Exits 6 on
 * failure; returns 0. */
int tmpi_gather(void *ctx, void *recs, size_t rec_bytes, int M);
/* model_split_t.recv_prefix: MPI_Recv of the gradient sum from rank - 1.
 * model_split_t.share_sum: MPI_Send of acc to rank + 1 (all but the last
 * rank), then MPI_Bcast from the last rank. Both exit 6 on failure and
 * return 0. */
int tmpi_recv_prefix(void *ctx, float *acc, size_t n);
int tmpi_share_sum(void *ctx, float *acc, size_t n);
/* Rank 0: broadcast m's description, capacity, every state tensor, Adam
 * and EMA settings, the run's seed and M. The others: receive them into a
 * new model (exit on failure). */
void tmpi_send_model(model_t *m, uint64_t seed, int micro);
model_t *tmpi_recv_model(uint64_t *seed, int *micro);

#endif
