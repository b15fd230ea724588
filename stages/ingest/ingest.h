/* ingest.h - the parts of gambar-ingest: the source listing (ImageFolder
 * walk; IDX files are read by common/io/idx.h), the opt-out set and license manifest, and the
 * decode pipeline (worker threads feeding the single LMDB writer in file
 * order). main.c ties them together. */
#ifndef GB_INGEST_H
#define GB_INGEST_H

#include "digest.h"
#include "idx.h"
#include "img.h"

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

/* ---- folder listing (ingest_src.c) ---- */

/* The image files of an ImageFolder tree, in deterministic order: each
 * folder's entries sorted bytewise, walked depth-first. The list is the
 * only thing that grows with the dataset, so it is compact: per file a
 * 4-byte offset and its bare file name in one arena; folders are stored
 * once, and runs of consecutive files in the same folder ("segments")
 * map file indices to folders (and so to labels). */
typedef struct {
    uint32_t first;     /* index of the segment's first file */
    uint32_t dir;       /* index into dirs */
} ing_seg_t;

typedef struct {
    char *names;        /* NUL-terminated file names (last path component) */
    size_t nlen, ncap;
    uint32_t *off;      /* n offsets into names */
    size_t n, cap;
    ing_seg_t *seg;     /* nseg segments, first ascending */
    size_t nseg, segcap;
    char **dirs;        /* ndirs folder paths relative to the root ("" = root) */
    int32_t *dir_label; /* label of each folder: class index, -1 for the root */
    size_t ndirs, dircap;
    char **classes;     /* nclasses sorted top-level folder names */
    size_t nclasses;
    uint64_t other;     /* files skipped: not .png and not a caption sidecar */
    uint64_t txt;       /* NAME.txt beside NAME.png: caption sidecars (ingest_cap.c) */
} ing_list_t;

/* List root. Returns 0, or an errno with the reason logged (root missing
 * or unreadable; unreadable subfolders are logged and skipped). */
int ing_list_folder(const char *root, ing_list_t *l);
/* File i's folder (relative to the root, "" for the root itself), name and
 * label. Borrowed from l. */
const char *ing_list_dir(const ing_list_t *l, size_t i);
static inline const char *ing_list_name(const ing_list_t *l, size_t i) { return l->names + l->off[i]; }
int32_t ing_list_label(const ing_list_t *l, size_t i);
/* File i's path relative to the root into buf; returns buf. */
char *ing_list_rel(const ing_list_t *l, size_t i, char *buf, size_t cap);
void ing_list_free(ing_list_t *l);

/* ---- default shape (ingest_shape.c) ---- */

/* Decide the stored shape from the PNG headers of l's first n files
 * (root is the folder their paths are relative to; read by up to
 * `threads` threads): *w and *h when *w is 0, *c when it is 0. The most common size; grey (1) unless a file is
 * colour (3). When the files disagree, one log line says what was chosen,
 * with the counts. No readable header at all: 64x64 RGB, said in a
 * warning (the decoder then rejects those files). Always returns 0. */
int ing_shape_from_files(const char *root, const ing_list_t *l, size_t n, int threads, uint32_t *w, uint32_t *h,
                         uint32_t *c);

/* ---- opt-out set and manifest (ingest_meta.c) ---- */

typedef struct {
    uint8_t (*sha)[DIGEST_LEN];
    size_t n, cap;
    uint32_t *tab;      /* open addressing: entry index + 1, 0 = empty */
    size_t tcap;        /* power of two */
} ing_shaset_t;

/* Load an opt-out file: one SHA-256 hex per line, blank lines and '#'
 * comments (whole-line or trailing) allowed. Returns 0, an errno, or
 * GB_EFORMAT naming FILE:LINE. */
int ing_optout_load(const char *path, ing_shaset_t *s);
void ing_shaset_add(ing_shaset_t *s, const uint8_t sha[DIGEST_LEN]);
bool ing_shaset_has(const ing_shaset_t *s, const uint8_t sha[DIGEST_LEN]);
void ing_shaset_free(ing_shaset_t *s);

typedef struct {
    char *path;         /* relative to the source root, or "*" (default) */
    char *license, *attribution;
    char *caption;      /* the caption cell, raw: captions separated by '|' ("" = none) */
    unsigned long line; /* where the record starts, for messages */
    bool used;
} ing_manent_t;

typedef struct {
    ing_manent_t *e;
    size_t n, cap;
    uint32_t *tab;      /* hash of path -> entry index + 1 */
    size_t tcap;
    ing_manent_t *dflt; /* the "*" entry, or NULL */
} ing_manifest_t;

/* Parse a manifest CSV "path,license,attribution[,caption]" (RFC 4180 quoting:
 * fields in double quotes may hold commas, newlines and "" for a quote;
 * an optional header line starting with "path," is skipped). Absolute
 * paths under root_abs are made relative to it. Returns 0, an errno or
 * GB_EFORMAT naming FILE:LINE. */
int ing_manifest_load(const char *path, const char *root_abs, ing_manifest_t *m);
/* The entry for relpath, else the "*" entry, else NULL. Marks it used. */
const ing_manent_t *ing_manifest_find(ing_manifest_t *m, const char *relpath);
void ing_manifest_free(ing_manifest_t *m);

/* ---- captions (ingest_cap.c) ---- */

#define ING_CAP_MAX_BYTES 256     /* longest caption stored, bytes of UTF-8 */
#define ING_CAP_MAX_N 16          /* captions stored per image */
#define ING_CAP_SIDECAR_MAX 16384 /* a larger NAME.txt is not read */

/* One image's captions: n checked, NUL-terminated texts; ptr[i] points
 * to text[i] (the form Example.captions wants). */
typedef struct {
    size_t n;
    char text[ING_CAP_MAX_N][ING_CAP_MAX_BYTES + 1];
    char *ptr[ING_CAP_MAX_N];
} ing_caps_t;

/* What the checks refused or changed, for the summary. */
typedef struct {
    uint64_t invalid;    /* captions skipped: not valid UTF-8 */
    uint64_t truncated;  /* captions cut to ING_CAP_MAX_BYTES */
    uint64_t dropped;    /* captions beyond ING_CAP_MAX_N for one image */
    uint64_t unreadable; /* sidecar files that could not be read (or too large) */
} ing_capstat_t;

/* True when s[0..n) is valid UTF-8 (RFC 3629) without NUL bytes. */
bool ing_cap_utf8_valid(const char *s, size_t n);

/* Append the captions of buf[0..n) to caps: separated by newlines and by
 * sep (pass '\n' for none); a leading BOM is skipped, CR before LF,
 * spaces and tabs around each caption are dropped (a CR inside one becomes
 * a space), empty ones ignored.
 * Invalid UTF-8 is skipped, an over-long caption cut at a character
 * boundary, captions beyond ING_CAP_MAX_N dropped: each logged as
 * "shown:LINE: ..." (line = the first line's number) and counted in st. */
void ing_cap_parse(const char *buf, size_t n, char sep, const char *shown, unsigned long line, ing_caps_t *caps,
                   ing_capstat_t *st);

/* The captions of png_path's sidecar (same path, ".png" replaced by
 * ".txt"): caps->n = 0 when there is none. An unreadable or too large
 * sidecar is logged, counted in st and gives no captions. Returns 0. */
int ing_cap_sidecar(const char *png_path, ing_caps_t *caps, ing_capstat_t *st);

/* The --captions file of an IDX source: line i (not counting lines that
 * start with '#') holds the captions of record i, separated by '|'. */
typedef struct {
    FILE *f;
    const char *path;  /* borrowed */
    char *line;        /* getline buffer */
    size_t cap;
    unsigned long ln;  /* lines read */
    bool ended;        /* the file ended (said once) */
} ing_capfile_t;

/* Open path. Returns 0 or an errno (logged). */
int ing_capfile_open(const char *path, ing_capfile_t *cf);
/* The next record's captions into caps (none once the file has ended,
 * said in one warning). Returns 0 or EIO (logged). */
int ing_capfile_next(ing_capfile_t *cf, ing_caps_t *caps, ing_capstat_t *st);
void ing_capfile_close(ing_capfile_t *cf);

/* ---- decode pipeline (ingest_pipe.c) ---- */

enum { ING_OK = 0, ING_OPTOUT = 1, ING_REJECT = 2 };

/* Rejection reasons, counted separately in the summary. */
enum { ING_R_NOT_PNG, ING_R_CORRUPT, ING_R_TOO_LARGE, ING_R_OVER_BUDGET, ING_R_UNREADABLE, ING_R_COUNT };
extern const char *const ing_reason_names[ING_R_COUNT];

/* One decoded file, handed from a worker to the writer. */
typedef struct {
    int kind;           /* ING_OK / ING_OPTOUT / ING_REJECT */
    int reason;         /* ING_R_* when rejected */
    char msg[200];      /* human reason when rejected */
    uint8_t sha[DIGEST_LEN];
    uint8_t *px;        /* h*w*c target pixels (owned by the pipeline) */
} ing_item_t;

typedef struct ing_pipe ing_pipe_t;

typedef struct {
    const char *root;           /* folder the list's paths are relative to */
    const ing_list_t *list;
    size_t n;                   /* items to process: list->n or --limit */
    const ing_shaset_t *optout; /* may be NULL */
    uint32_t w, h, c;           /* target shape */
    uint32_t max_dim;           /* reject wider/taller files before decoding */
    size_t max_bytes;           /* decoded-size budget per image */
    size_t max_file;            /* file-size limit in bytes */
    int threads;                /* decode workers, >= 1 */
    size_t ring;                /* items in flight, >= threads */
} ing_pipe_cfg_t;

/* Start the workers. Items come out of ing_pipe_next strictly in list
 * order whatever the thread timing. */
ing_pipe_t *ing_pipe_start(const ing_pipe_cfg_t *cfg);
/* Wait for item i (the next in order) and return it; it stays valid
 * until ing_pipe_release. Returns NULL when a stop was requested through
 * sig.h while waiting (unless the pipe was halted, see ing_pipe_halt). */
const ing_item_t *ing_pipe_next(ing_pipe_t *p, size_t i);
void ing_pipe_release(ing_pipe_t *p, size_t i);
/* Stop claiming new items (after SIGINT): returns the end of what was
 * already claimed; those items still come out of ing_pipe_next (which
 * then waits for them despite the stop request), so everything decoded or
 * being decoded can be stored. */
size_t ing_pipe_halt(ing_pipe_t *p);
/* Stop the workers (unfinished items are dropped) and free everything. */
void ing_pipe_stop(ing_pipe_t **p);

/* Classify a source file before decoding: when data starts like a PNG
 * whose IHDR is wider or taller than max_dim, fill msg and return
 * GB_ETOOBIG; otherwise 0. */
int ing_check_dims(const uint8_t *data, size_t n, uint32_t max_dim, char *msg, size_t msglen);

#endif
