/* idx.c - the one reader of MNIST-format IDX files (Fashion-MNIST's
 * PREFIX-images-idx3-ubyte and PREFIX-labels-idx1-ubyte, gzipped or not),
 * see idx.h. Records stream through zlib straight into the caller's
 * buffer (gambar-ingest's hot path: no copy per image); the labels, one
 * byte each, are read whole at open. */
#include "idx.h"

#include "base.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Find PREFIX-KIND-idxN-ubyte.gz or the same without .gz. */
static char *idx_file(const char *prefix, const char *kind) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s-%s.gz", prefix, kind);
    if (access(path, F_OK) == 0) return xstrdup(path);
    snprintf(path, sizeof path, "%s-%s", prefix, kind);
    if (access(path, F_OK) == 0) return xstrdup(path);
    return NULL;
}

/* Read exactly n bytes; false on a short read or error. */
static bool gz_full(gzFile f, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

int idx_open(const char *prefix, idx_t *x) {
    memset(x, 0, sizeof *x);
    int rc = 0;
    char *lpath = NULL;
    gzFile lf = NULL;
    x->images_path = idx_file(prefix, "images-idx3-ubyte");
    if (!x->images_path) {
        log_error("idx:%s: no %s-images-idx3-ubyte(.gz) file", prefix, prefix);
        return ENOENT;
    }
    char abs[PATH_MAX];
    if (!realpath(x->images_path, abs)) snprintf(abs, sizeof abs, "%s", x->images_path);
    char *cut = strstr(abs, "-images-idx3-ubyte");
    if (cut) *cut = 0;
    x->prefix_abs = xstrdup(abs);
    x->img = gzopen(x->images_path, "rb");
    if (!x->img) {
        rc = errno ? errno : EIO;
        log_error("%s: cannot open: %s", x->images_path, strerror(rc));
        goto fail;
    }
    gzbuffer(x->img, 1 << 17);
    uint8_t hdr[16];
    if (!gz_full(x->img, hdr, 16) || be32(hdr) != 0x00000803) {
        log_error("%s: not an IDX image file (want magic 0x00000803 and 3 dimensions)", x->images_path);
        rc = GB_EFORMAT;
        goto fail;
    }
    x->n = be32(hdr + 4);
    x->h = be32(hdr + 8);
    x->w = be32(hdr + 12);
    if (!x->h || !x->w || x->h > 16384 || x->w > 16384) {
        log_error("%s: record size %ux%u is not usable", x->images_path, x->w, x->h);
        rc = GB_EFORMAT;
        goto fail;
    }
    lpath = idx_file(prefix, "labels-idx1-ubyte");
    if (!lpath) {
        log_info("idx:%s: no labels file; examples are unlabelled", prefix);
        return 0;
    }
    lf = gzopen(lpath, "rb");
    uint8_t lh[8];
    if (!lf || !gz_full(lf, lh, 8) || be32(lh) != 0x00000801) {
        log_error("%s: not an IDX label file (want magic 0x00000801)", lpath);
        rc = GB_EFORMAT;
        goto fail;
    }
    if (be32(lh + 4) != x->n) {
        log_error("%s: %u labels for %llu images", lpath, be32(lh + 4), (unsigned long long)x->n);
        rc = GB_EMISMATCH;
        goto fail;
    }
    x->labels = xmalloc(x->n ? x->n : 1);
    if (!gz_full(lf, x->labels, x->n)) {
        log_error("%s: cut short (fewer than %llu labels)", lpath, (unsigned long long)x->n);
        rc = GB_ECORRUPT;
        goto fail;
    }
    gzclose(lf);
    free(lpath);
    return 0;
fail:
    if (lf) gzclose(lf);
    free(lpath);
    idx_close(x);
    return rc;
}

int idx_next(idx_t *x, uint8_t *px, int *label) {
    if (x->next >= x->n) return GB_ENOTFOUND;
    if (!gz_full(x->img, px, (size_t)x->h * x->w)) {
        int zerr = 0;
        const char *m = gzerror(x->img, &zerr);
        log_error("%s: record %llu: file cut short or damaged (%s)", x->images_path,
                  (unsigned long long)x->next, zerr ? m : "end of file");
        return GB_ECORRUPT;
    }
    *label = x->labels ? x->labels[x->next] : -1;
    x->next++;
    return 0;
}

void idx_close(idx_t *x) {
    if (x->img) gzclose(x->img);
    free(x->labels);
    free(x->prefix_abs);
    free(x->images_path);
    memset(x, 0, sizeof *x);
}

static const char *const FASHION[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
static const char *const DIGITS[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

const char *const *idx_classes(const char *prefix, size_t *n) {
    *n = 10;
    return strcasestr(prefix, "fashion") ? FASHION : DIGITS;
}

int idx_read_all(const char *prefix, uint64_t limit, idx_data_t *d) {
    memset(d, 0, sizeof *d);
    idx_t x;
    int rc = idx_open(prefix, &x);
    if (rc) return rc;
    uint64_t n = limit && limit < x.n ? limit : x.n;
    size_t rec = (size_t)x.h * x.w;
    d->h = x.h, d->w = x.w;
    d->px = xmalloc(n ? n * rec : 1);
    if (x.labels) d->labels = xmalloc(n ? n * sizeof(int32_t) : 1);
    for (uint64_t i = 0; i < n; i++) {
        int label;
        if ((rc = idx_next(&x, d->px + i * rec, &label)) != 0) {
            idx_data_free(d);
            break;
        }
        if (d->labels) d->labels[i] = label;
    }
    if (rc == 0) d->n = n;
    idx_close(&x);
    return rc;
}

void idx_data_free(idx_data_t *d) {
    free(d->px);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
