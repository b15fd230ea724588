/* eval.h - the pieces of gambar-eval shared between its files.
 *
 * main.c parses options and runs one of three modes (fit the feature
 * network; evaluate one checkpoint or sample set; follow a trainer's
 * CheckpointReady announcements). eval_feat.c finds, fits or caches the
 * feature network and the real-data statistics; eval_run.c computes every
 * metric and the audits for one set of generated images; eval_out.c
 * writes the JSON report, the side-by-side PNGs and the model card, and
 * publishes Metric messages. */
#ifndef GB_EVAL_H
#define GB_EVAL_H

#include "ckpt.h"
#include "eval_featio.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROG "gambar-eval"

typedef struct {
    const char *ckpt, *db, *features, *metrics, *json, *test_db, *follow, *out, *samples_db, *worst_dir, *run;
    const char *cache_dir, *captions_db, *caption_thresholds;
    long long n, threads, epochs, mem_n, worst_n, follow_count, kid_subsets, text_pairs;
    uint64_t seed;
    bool card, fit_features, no_cache;
} eval_opts_t;

/* What the real (training) data looks like in feature space, cached per
 * (dataset digest, feature network digest). */
typedef struct {
    size_t n;             /* training examples */
    float *feat;          /* n x FEATNET_DIM features of every training example */
    int32_t *labels;      /* n true labels (-1 = none) */
    double *mean, *cov;   /* FEATNET_DIM and FEATNET_DIM^2 */
    double pix_thresh;    /* near-copy threshold, pixel L2 (see eval_feat.c) */
    double feat_thresh;   /* the same in feature space */
    char path[4096];      /* the cache file ("" when not cached) */
} eval_real_t;

/* Everything that stays fixed across evaluations of one dataset. */
typedef struct {
    const eval_opts_t *o;
    store_t *db;
    const Gambar__DatasetInfo *info;
    int C, H, W, K;             /* image shape, classes (0 = unlabelled) */
    uint8_t db_digest[32];
    featnet_t *fn;
    const char *features_kind;  /* "trained" or "random_cnn" */
    char features_path[4096];
    double fn_test_acc;         /* from the feature file, -1 unknown */
    int fn_classes;             /* classes the feature net predicts (0 for random_cnn) */
    eval_real_t real;
    double classifier_accuracy; /* on --test-db, -1 when not given */
    store_t *test_db;
    void *zctx, *pub;           /* metrics PUB socket (NULL = none) */
    struct eval_textdata *text; /* text models' captions and cut points (eval_text.c), loaded once; owned */
} eval_ctx_t;

/* One named scalar result, published and written to JSON. */
typedef struct {
    const char *name;
    double value;
} eval_metric_t;

/* The result of evaluating one checkpoint or sample set. */
typedef struct {
    char source[4096];      /* checkpoint path or samples db path */
    uint64_t step;
    uint32_t epoch;
    size_t n;               /* generated images evaluated */
    eval_metric_t m[48];
    int nm;
    char *json_body;        /* the detail objects (bias, memorisation), JSON text; owned */
    int nclass;             /* classes of the bias audit (0 = none) */
    double *class_share;    /* nclass shares of generated images per classifier label; owned */
    double *class_share_train; /* nclass shares of the training set; owned */
    Gambar__Checkpoint *ck; /* the evaluated checkpoint (NULL for --samples-db); owned */
    uint8_t ck_digest[32];
    char worst_dir[4096];   /* where the closest pairs went ("" = not written) */
    bool pairs_failed;      /* a closest-pair PNG asked for could not be written (logged) */
    double seconds;
    bool text;              /* a text-conditional checkpoint: the text_* metrics are set */
    char text_captions[4096];   /* text: the captions dataset of the prompts */
    char text_thresholds[4200]; /* text: where the attribute cut points come from */
} eval_result_t;

/* eval_feat.c */
/* Open the datasets, find or fit the feature network, load or compute
 * the real statistics. Returns 0, or an exit status (2/3/4/...) after
 * logging the reason. */
int eval_ctx_open(eval_ctx_t *e, const eval_opts_t *o);
void eval_ctx_close(eval_ctx_t *e);
/* --fit-features: fit on --db (and report on --test-db), write --out.
 * Returns an exit status. */
int eval_fit_features_cmd(const eval_opts_t *o);

/* eval_run.c */
/* Evaluate the checkpoint at path (ck loaded already, may be NULL to load)
 * or, when samples_db is set, that dataset's images. Returns 0 and fills
 * *r (release with eval_result_free), or an exit status after logging. */
int eval_run(eval_ctx_t *e, const char *ckpt_path, const char *samples_db, eval_result_t *r);
void eval_result_free(eval_result_t *r);
/* Append a metric (name must be a literal or live as long as r). */
void eval_add(eval_result_t *r, const char *name, double v);

/* eval_text.c: text-conditional checkpoints (prompts from held-out
 * captions, the text-image agreement audit; definitions in the file's
 * header and the man page). */
typedef struct eval_text eval_text_t;
struct ginfer;
/* Prompts for the n images of a text model whose generator is gen (taken:
 * freed by eval_text_free, also on failure) and whose latents are z (n x
 * Z, copied): captions from the captions dataset, their sentence vectors
 * (ck's text encoder). Returns 0 and *out, or an exit status after
 * logging (no captions, an encoder that cannot be loaded, ...). */
int eval_text_prepare(eval_ctx_t *e, const char *ckpt_path, const Gambar__Checkpoint *ck, struct ginfer *gen,
                      size_t n, const float *z, eval_text_t **out);
/* The n x T sentence vectors of the prompts, and the generator. */
const float *eval_text_vectors(const eval_text_t *t);
const struct ginfer *eval_text_generator(const eval_text_t *t);
/* Keep the 8-bit pixels of the generated images (hwc: n x img floats). */
void eval_text_keep_pixels(eval_text_t *t, const float *hwc, size_t img);
/* Prompt i and the class it names (-1: none or several). */
const char *eval_text_prompt(const eval_text_t *t, size_t i);
int eval_text_class(const eval_text_t *t, size_t i);
/* The audit: metrics into r, the "text" JSON member into f. logits:
 * the feature classifier's on the generated images. Returns 0 or an exit
 * status (logged). */
int eval_text_audit(eval_ctx_t *e, const eval_text_t *t, eval_result_t *r, const float *logits, FILE *f);
void eval_text_free(eval_text_t *t); /* NULL-safe */
void eval_text_ctx_free(eval_ctx_t *e);

/* eval_out.c */
/* Write the JSON report to path atomically. Returns 0 or an errno. */
int eval_write_json(const eval_ctx_t *e, const eval_result_t *r, const char *path);
/* Write <ckpt>.card.md atomically. Returns 0 or an errno/GB_* code. */
int eval_write_card(const eval_ctx_t *e, const eval_result_t *r, const char *ckpt_path);
/* Publish every metric of r on e->pub (no-op without a socket). */
void eval_publish(const eval_ctx_t *e, const eval_result_t *r);
/* Write data[0..n) to path atomically (temp, fsync, rename, fsync dir).
 * Returns 0 or an errno, logged with the path. */
int eval_write_file(const char *path, const void *data, size_t n);

#endif
