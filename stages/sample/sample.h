/* sample.h - the pieces of gambar-sample shared between its files:
 * latent fitting for --from-image (sample_fit.c), and jobs and rendering
 * images with provenance (sample_job.c), around the generator of
 * gen_infer.h (common/nn), used by the command line (main.c) and by
 * serve mode (sample_serve.c). */
#ifndef GB_SAMPLE_H
#define GB_SAMPLE_H

#include "ckpt.h"
#include "gen_infer.h"
#include "img.h"
#include "model.h"
#include "prov.h"
#include "textenc.h"

#include <stddef.h>
#include <stdint.h>

#define SAMPLE_SOFTWARE "gambar-sample 0.1.0"
#define SAMPLE_MAX_N 1000000           /* images per command */
#define SAMPLE_SERVE_MAX_N 256         /* images per SampleRequest */
#define SAMPLE_SERVE_MAX_PROMPT 1024   /* bytes of SampleRequest.prompt (and of
                                          class_name taken as a prompt) */
#define SAMPLE_BORDER 2                /* grid border in pixels */

/* ---- fitting a latent to an image (sample_fit.c) ----------------------- */

typedef struct {
    int starts;        /* seeded starting points per class */
    int iters;         /* Adam iterations per start */
    float lr;          /* Adam learning rate on z */
    uint64_t seed;     /* start s uses latent gambar-z1(seed + s) */
} sfit_opts_t;

/* Find z (and the class, when conditional and class < 0: every class is
 * tried) minimising the mean squared error between G(z, class) and target
 * (H, W, C in [-1, 1]). Writes the best z (Z floats), *class_out (-1 when
 * unconditional) and its MSE. Deterministic for given inputs. */
void sfit_run(const ginfer_t *g, int num_classes, int class_fixed, const float *target, const sfit_opts_t *o,
              float *z_best, int *class_out, double *mse_out);

/* ---- what to generate (sample_job.c) ------------------------------------ */

/* The loaded checkpoint and everything provenance quotes from it. */
typedef struct {
    const char *path;            /* the --ckpt argument (borrowed) */
    Gambar__Checkpoint *ck;
    uint8_t digest[32];          /* SHA-256 of the whole file */
    char digest_hex[65];
    uint64_t step;
    model_t *model;              /* rebuilt with modelck_load */
    ginfer_t *gen;
    const model_desc_t *desc;
    int Z, C, H, W, ncls;        /* ncls 0 = unconditional (or text) */
    int T;                       /* text models: sentence vector length; else 0 */
    tenc_t *tenc;                /* text models: the checkpoint's text encoder */
    char dataset_digest[65];     /* hex, or "unknown" */
    const char *license;         /* notes["license_summary"] or "unknown" */
    const char *source;          /* notes["dataset_source"] or "unknown" */
} sctx_t;

/* Load and verify the checkpoint at path and build the generator.
 * Returns 0, an errno (cannot read: exit 4) or a GB_E* code (bad file:
 * exit 3), with the reason in err. */
int sctx_open(sctx_t *c, const char *path, char *err, size_t errlen);
void sctx_close(sctx_t *c);

/* Text models: the sentence vector of text (T floats) from the
 * checkpoint's encoder (deterministic: the same text, the same bits).
 * Not thread-safe (the encoder keeps its last forward). Returns 0, or
 * GB_EFORMAT (not valid UTF-8) with the reason in err. */
int sctx_encode(sctx_t *c, const char *text, float *out, char *err, size_t errlen);

/* The class named by name (an index, or a name: case-insensitive, letters
 * and digits only, any '/'-separated part of a class name matches) or by
 * prompt (the longest class name, or part, whose letters and digits equal
 * one or more consecutive words of the prompt; ties: lowest index).
 * Returns 0 and *idx, or GB_ENOTFOUND / GB_EUNSUPPORTED (unconditional
 * model) with a message in err listing the known names. */
int sample_resolve_class(const sctx_t *c, const char *name, const char *prompt, int *idx, char *err,
                         size_t errlen);

/* Text models: the warnings about a prompt's words, one line each, as
 * both the command line (log lines) and serve mode (SampleReply.warning)
 * give them: the words the encoder never saw (they share hashed buckets
 * with rare words, so their effect is a guess), a prompt with no words,
 * a prompt cut at the encoder's word limit. Other models, or text that
 * is not valid UTF-8: none (w->n = 0). Lines longer than the buffer are
 * cut. */
#define SAMPLE_WARN_LINES 3
typedef struct {
    int n;
    char line[SAMPLE_WARN_LINES][4608];
} sample_warn_t;
void sample_prompt_warnings(sctx_t *c, const char *text, sample_warn_t *w);

/* TEXT_INTERP (text models): one latent, gambar-z1(seed), and image i's
 * sentence vector (1 - t) c(prompt) + t c(prompt_b), t = i / (n - 1),
 * computed in double and rounded to float (so image 0 is exactly the
 * --prompt image of seed, and image n-1 that of prompt_b). */
typedef enum { JOB_SEED = 0, JOB_INTERP = 1, JOB_EXPLICIT = 2, JOB_TEXT_INTERP = 3 } job_mode_t;

typedef struct {
    job_mode_t mode;
    int n;                   /* images */
    uint64_t seed;           /* SEED: image i uses seed + i; EXPLICIT: the fit's seed */
    int class_index;         /* >= 0: every image; -1: seed % classes (conditional) or none */
    const char *prompt;      /* recorded when given (may be NULL); text models: the text */
    const char *prompt_b;    /* TEXT_INTERP: the other end's text */
    const float *text;       /* text models: (2, T) the sentence vectors of prompt
                                and prompt_b (job_encode) */
    double truncation;       /* 0 = none */
    uint64_t ia, ib;         /* INTERP: seeds of the ends */
    const float *z;          /* EXPLICIT: (n, Z) latents */
    const int32_t *labels;   /* EXPLICIT: n labels (conditional) */
    const char *const *kinds;/* EXPLICIT: per image "from-image" / "variation" */
    const prov_t *extra;     /* keys added to every record (may be NULL) */
    int rows, cols;          /* grid shape; 0 = no grid */
} job_t;

/* Text models: encode j->prompt (and j->prompt_b) into a new buffer
 * *tbuf (free it) and point j->text at it; other models: *tbuf = NULL.
 * Returns 0 or GB_EFORMAT (a text is not valid UTF-8; err says which). */
int job_encode(sctx_t *c, job_t *j, float **tbuf, char *err, size_t errlen);
/* Text models: image i's sentence vector (T floats). */
void job_text(const sctx_t *c, const job_t *j, int i, float *t);
/* Latent and label of image i (label -1 when unconditional). */
void job_latent(const sctx_t *c, const job_t *j, int i, float *z, int32_t *label);
/* The provenance record of image i, or of the grid (i = -1). */
void job_prov(const sctx_t *c, const job_t *j, int i, const char *created, prov_t *p);
/* Rebuild the job an image was made by from its record: *index gets the
 * image's index (-1 for a grid file). Allocates j->z/labels for explicit
 * latents in *zbuf and *lbuf (free them). Returns 0 or GB_EFORMAT /
 * GB_EMISMATCH with the reason in err. */
int job_from_prov(const sctx_t *c, const prov_t *p, job_t *j, int *index, float **zbuf, int32_t **lbuf,
                  char *err, size_t errlen);
/* Generate images [i0, i1) of j (i1 - i0 <= ws nmax) into out (HWC floats). */
void job_generate(const sctx_t *c, const job_t *j, ginfer_ws_t *w, int i0, int i1, float *out);
/* Compose the grid of j from all n images (HWC floats): rows x cols cells
 * with SAMPLE_BORDER black pixels around and between them. */
void job_grid(const sctx_t *c, const job_t *j, const float *imgs, img_t *out);
/* Encode im as PNG with record p. Returns 0 or as img_encode_png. */
int sample_encode(const prov_t *p, const img_t *im, int compression, uint8_t **buf, size_t *len);

/* ---- serve mode (sample_serve.c) ---------------------------------------- */

/* Answer SampleRequests on a REP socket at endpoint (bind by default)
 * until SIGINT/SIGTERM, from the model in c (opened with sctx_open, or
 * zeroed when follow_dir is set and no --ckpt was given). With
 * follow_dir, the newest ckpt-STEP.gck there replaces c's model as it
 * appears (c is then closed by sample_serve; the caller still calls
 * sctx_close, harmless on a closed one). Returns 0 when stopped by a
 * signal, or an errno / GB_E* when the socket fails. */
int sample_serve(sctx_t *c, const char *endpoint, const char *follow_dir);

#endif
