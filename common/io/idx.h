/* idx.h - reader of MNIST-format IDX files: PREFIX-images-idx3-ubyte and
 * PREFIX-labels-idx1-ubyte, each gzipped (".gz" tried first) or plain, as
 * Fashion-MNIST ships them. One record = h*w bytes (one channel), labels
 * one byte each. Used by gambar-ingest (record by record, into its own
 * buffer) and by tests and tools (idx_read_all). Errors are logged with
 * the file name. */
#ifndef GB_IDX_H
#define GB_IDX_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

typedef struct {
    gzFile img;         /* PREFIX-images-idx3-ubyte[.gz], positioned at record next */
    uint8_t *labels;    /* n labels, or NULL when there is no labels file */
    uint64_t n, next;   /* records, next record to read */
    uint32_t h, w;      /* record size in pixels (1 byte each), 1..16384 */
    char *prefix_abs;   /* absolute prefix for source URIs */
    char *images_path;  /* for messages */
} idx_t;

/* Open PREFIX-images-idx3-ubyte(.gz) and, if present,
 * PREFIX-labels-idx1-ubyte(.gz) (a missing labels file is logged as info:
 * the records are unlabelled). Returns 0, an errno (ENOENT when there is
 * no images file), or GB_EFORMAT / GB_EMISMATCH (bad magic, counts
 * differ) / GB_ECORRUPT (labels cut short), logged with the file name.
 * On failure *x is zeroed; on success close it with idx_close. */
int idx_open(const char *prefix, idx_t *x);

/* Read the next record's h*w bytes into px and its label (-1 without a
 * labels file). Returns 0, GB_ENOTFOUND at the end, GB_ECORRUPT when the
 * file is cut short (logged). */
int idx_next(idx_t *x, uint8_t *px, int *label);

/* Release everything of x (x zeroed; a zeroed x is fine). */
void idx_close(idx_t *x);

/* The 10 class names when prefix looks like Fashion-MNIST, else the
 * digits "0".."9" (MNIST). Static strings; *n = 10. */
const char *const *idx_classes(const char *prefix, size_t *n);

/* A whole IDX pair in memory. */
typedef struct {
    uint64_t n;      /* records read */
    uint32_t h, w;   /* record size */
    uint8_t *px;     /* n * h * w bytes, record after record; owned */
    int32_t *labels; /* n labels, NULL without a labels file; owned */
} idx_data_t;

/* Read the first `limit` records of PREFIX (all when limit is 0 or more
 * than there are) into *d. Returns 0, or an idx_open / idx_next error
 * (then *d is empty). Free with idx_data_free. */
int idx_read_all(const char *prefix, uint64_t limit, idx_data_t *d);
void idx_data_free(idx_data_t *d);

#endif
