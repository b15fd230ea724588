/* npy.c - NumPy .npy reader/writer (see npy.h).
 *
 * The header is a Python dict literal; we parse the tiny subset NumPy
 * writes ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), })
 * with a strict little scanner instead of pattern matching, so keys may
 * come in any order and anything else is refused with a reason. The file
 * is read with stdio; data are converted element by element when the
 * caller asks for another dtype. Only little-endian hosts are supported
 * (x86-64, aarch64), which the build targets. */
#include "afile.h"
#include "base.h"
#include "err.h"
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char NPY_MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static size_t dtype_size(npy_dtype_t t) {
    switch (t) {
    case NPY_F32: return 4;
    case NPY_F64: return 8;
    case NPY_I64: return 8;
    default: return 0;
    }
}

static const char *dtype_descr(npy_dtype_t t) {
    switch (t) {
    case NPY_F32: return "<f4";
    case NPY_F64: return "<f8";
    case NPY_I64: return "<i8";
    default: return NULL;
    }
}

static int fail(npy_t *a, const char *path, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(npy_t *a, const char *path, int rc, const char *fmt, ...) {
    char why[150];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(a->err, sizeof a->err, "%.40s%s: %s", path, strlen(path) > 40 ? "..." : "", why);
    free(a->data);
    a->data = NULL;
    return rc;
}

/* ---- header scanner --------------------------------------------------- */
typedef struct { const char *p, *end; } scan_t;

static void skip_ws(scan_t *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int eat(scan_t *s, char c) {
    skip_ws(s);
    if (s->p < s->end && *s->p == c) { s->p++; return 1; }
    return 0;
}

/* Quoted string into out (size n); 0 on success. */
static int scan_string(scan_t *s, char *out, size_t n) {
    skip_ws(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return -1;
    char q = *s->p++;
    size_t k = 0;
    while (s->p < s->end && *s->p != q) {
        if (k + 1 >= n) return -1;
        out[k++] = *s->p++;
    }
    if (s->p >= s->end) return -1;
    s->p++;
    out[k] = 0;
    return 0;
}

static int scan_word(scan_t *s, const char *w) {
    skip_ws(s);
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) { s->p += n; return 1; }
    return 0;
}

/* Tuple of non-negative integers "(a, b, )" into shape; returns ndim or -1. */
static int scan_shape(scan_t *s, int64_t *shape) {
    if (!eat(s, '(')) return -1;
    int nd = 0;
    for (;;) {
        if (eat(s, ')')) return nd;
        skip_ws(s);
        if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
        int64_t v = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return -1;
            v = v * 10 + (*s->p++ - '0');
        }
        if (s->p < s->end && *s->p == 'L') s->p++; /* Python 2 longs */
        if (nd >= NPY_MAXDIM) return -1;
        shape[nd++] = v;
        if (!eat(s, ',')) {
            if (eat(s, ')')) return nd;
            return -1;
        }
    }
}

/* ---- reading ------------------------------------------------------------ */
static int convert(npy_dtype_t from, const void *src, npy_dtype_t to, void *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double d = 0;
        int64_t iv = 0;
        int isint = 0;
        switch (from) {
        case NPY_F32: { float f; memcpy(&f, (const char *)src + 4 * i, 4); d = f; break; }
        case NPY_F64: memcpy(&d, (const char *)src + 8 * i, 8); break;
        case NPY_I64: memcpy(&iv, (const char *)src + 8 * i, 8); isint = 1; d = (double)iv; break;
        default: return -1;
        }
        switch (to) {
        case NPY_F32: ((float *)dst)[i] = (float)d; break;
        case NPY_F64: ((double *)dst)[i] = d; break;
        case NPY_I64:
            if (!isint) {
                if (!(d == floor(d)) || d < -9.2e18 || d > 9.2e18) return -1;
                iv = (int64_t)d;
            }
            ((int64_t *)dst)[i] = iv;
            break;
        default: return -1;
        }
    }
    return 0;
}

int npy_read(const char *path, npy_dtype_t want, npy_t *a) {
    memset(a, 0, sizeof *a);
    FILE *f = NULL;
    char *hdr = NULL;
    void *raw = NULL;
    int rc = 0;
    f = fopen(path, "rb");
    if (!f) {
        rc = errno;
        return fail(a, path, rc, "cannot open: %s", strerror(rc));
    }
    unsigned char pre[12];
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, NPY_MAGIC, 6) != 0) {
        rc = fail(a, path, GB_EFORMAT, "not a .npy file (bad magic)");
        goto done;
    }
    int major = pre[6];
    size_t hlen;
    if (major == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) { rc = fail(a, path, GB_EFORMAT, "truncated header"); goto done; }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 8, 1, 4, f) != 4) { rc = fail(a, path, GB_EFORMAT, "truncated header"); goto done; }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        if (hlen > (1u << 20)) { rc = fail(a, path, GB_EFORMAT, "header length %zu is implausible", hlen); goto done; }
    } else {
        rc = fail(a, path, GB_EUNSUPPORTED, "format version %d.%d not supported", major, pre[7]);
        goto done;
    }
    hdr = xmalloc(hlen + 1);
    if (fread(hdr, 1, hlen, f) != hlen) { rc = fail(a, path, GB_EFORMAT, "truncated header"); goto done; }
    hdr[hlen] = 0;

    /* Parse {'descr': ..., 'fortran_order': ..., 'shape': (...), } */
    scan_t s = {hdr, hdr + hlen};
    char descr[32] = "", key[32];
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    if (!eat(&s, '{')) { rc = fail(a, path, GB_EFORMAT, "header is not a dict"); goto done; }
    for (;;) {
        if (eat(&s, '}')) break;
        if (scan_string(&s, key, sizeof key) != 0 || !eat(&s, ':')) {
            rc = fail(a, path, GB_EFORMAT, "malformed header dict");
            goto done;
        }
        if (strcmp(key, "descr") == 0) {
            if (scan_string(&s, descr, sizeof descr) != 0) {
                rc = fail(a, path, GB_EUNSUPPORTED, "descr is not a simple dtype string (structured arrays unsupported)");
                goto done;
            }
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (scan_word(&s, "False")) fortran = 0;
            else if (scan_word(&s, "True")) fortran = 1;
            else { rc = fail(a, path, GB_EFORMAT, "fortran_order is not True/False"); goto done; }
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            int nd = scan_shape(&s, a->shape);
            if (nd < 0) { rc = fail(a, path, GB_EFORMAT, "bad shape tuple (or more than %d dims)", NPY_MAXDIM); goto done; }
            a->ndim = nd;
            have_shape = 1;
        } else {
            rc = fail(a, path, GB_EFORMAT, "unknown header key '%s'", key);
            goto done;
        }
        if (!eat(&s, ',')) {
            if (eat(&s, '}')) break;
            rc = fail(a, path, GB_EFORMAT, "malformed header dict");
            goto done;
        }
    }
    skip_ws(&s);
    if (s.p != s.end) { rc = fail(a, path, GB_EFORMAT, "junk after header dict"); goto done; }
    if (!have_descr || !have_order || !have_shape) {
        rc = fail(a, path, GB_EFORMAT, "header lacks descr, fortran_order or shape");
        goto done;
    }
    if (fortran) { rc = fail(a, path, GB_EUNSUPPORTED, "Fortran-order arrays are not supported"); goto done; }
    npy_dtype_t ft;
    if (strcmp(descr, "<f4") == 0) ft = NPY_F32;
    else if (strcmp(descr, "<f8") == 0) ft = NPY_F64;
    else if (strcmp(descr, "<i8") == 0) ft = NPY_I64;
    else { rc = fail(a, path, GB_EUNSUPPORTED, "dtype '%s' not supported (want <f4, <f8 or <i8)", descr); goto done; }

    size_t count = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] < 0 || (a->shape[i] > 0 && count > NPY_MAX_COUNT / (size_t)a->shape[i])) {
            rc = fail(a, path, GB_ETOOBIG, "array has more than %zu elements", NPY_MAX_COUNT);
            goto done;
        }
        count *= (size_t)a->shape[i];
    }
    if (count > NPY_MAX_COUNT) {
        rc = fail(a, path, GB_ETOOBIG, "array has more than %zu elements", NPY_MAX_COUNT);
        goto done;
    }
    size_t fsz = dtype_size(ft);
    /* Check the size on disk before allocating: a corrupt header must not
     * make us allocate (and abort on) gigabytes the file does not hold. */
    struct stat st;
    long pos = ftell(f);
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && pos >= 0) {
        uint64_t have = (uint64_t)st.st_size - (uint64_t)pos, need = (uint64_t)count * fsz;
        if (have < need) {
            rc = fail(a, path, GB_EFORMAT, "truncated data (want %zu elements of %zu bytes, file holds %llu bytes)",
                      count, fsz, (unsigned long long)have);
            goto done;
        }
        if (have > need) { rc = fail(a, path, GB_EFORMAT, "trailing bytes after the data"); goto done; }
    }
    raw = xmalloc(count * fsz);
    if (fread(raw, fsz, count, f) != count) {
        rc = fail(a, path, GB_EFORMAT, "truncated data (want %zu elements of %zu bytes)", count, fsz);
        goto done;
    }
    unsigned char extra;
    if (fread(&extra, 1, 1, f) != 0) { rc = fail(a, path, GB_EFORMAT, "trailing bytes after the data"); goto done; }
    if (ferror(f)) { rc = fail(a, path, EIO, "read error"); goto done; }

    a->count = count;
    if (want == NPY_ANY || want == ft) {
        a->dtype = ft;
        a->data = raw;
        raw = NULL;
    } else {
        size_t tsz = dtype_size(want);
        if (!tsz) { rc = fail(a, path, GB_EUNSUPPORTED, "bad target dtype %d", (int)want); goto done; }
        a->data = xmalloc(count * tsz);
        if (convert(ft, raw, want, a->data, count) != 0) {
            rc = fail(a, path, GB_EFORMAT, "values are not integral; cannot read as int64");
            goto done;
        }
        a->dtype = want;
    }
    rc = 0;
done:
    free(raw);
    free(hdr);
    if (f) fclose(f);
    return rc;
}

void npy_free(npy_t *a) {
    if (!a) return;
    free(a->data);
    a->data = NULL;
    a->count = 0;
}

/* ---- writing ------------------------------------------------------------ */
int npy_write(const char *path, npy_dtype_t dtype, const void *data, int ndim, const int64_t *shape) {
    const char *descr = dtype_descr(dtype);
    if (!descr || ndim < 0 || ndim > NPY_MAXDIM) return GB_EUNSUPPORTED;
    size_t count = 1;
    char dict[400];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return GB_EUNSUPPORTED;
        count *= (size_t)shape[i];
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld%s", (long long)shape[i],
                        ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    }
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* Pad with spaces so magic+len+header is a multiple of 64, end with \n. */
    size_t total = 10 + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)len + pad + 1;
    unsigned char pre[10];
    memcpy(pre, NPY_MAGIC, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    char hdr[512];
    memcpy(hdr, dict, (size_t)len);
    memset(hdr + len, ' ', pad);
    hdr[hlen - 1] = '\n';

    afile_t *a;
    int rc = afile_open(path, &a);
    if (rc) return rc;
    afile_write(a, pre, sizeof pre);
    afile_write(a, hdr, hlen);
    afile_write(a, data, count * dtype_size(dtype));
    return afile_commit(&a);
}

int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape) {
    return npy_write(path, NPY_F32, data, ndim, shape);
}
