/* aug.c - image augmentations and the batch stream's definition (see aug.h).
 *
 * Workload: gambar-augment calls aug_image for every image of every batch
 * (64 images of 28x28 a batch, thousands of batches a second), so the ops
 * work in place on one float CHW image with a caller-owned scratch plane
 * and never allocate. The stream functions (permutation, per-batch
 * generator, shard plan) are tiny but are the contract that makes a batch
 * reproducible from its coordinates alone; change them and every recorded
 * stream changes. */
#include "aug.h"

#include "base.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>

/* The two hot conversions use GCC/Clang vector extensions: -O2 does not
 * auto-vectorise loops, and these run over every pixel of every batch. */
typedef float aug_v4f __attribute__((vector_size(16)));
typedef uint8_t aug_v4u8 __attribute__((vector_size(4)));

/* ---------------------------------------------------------------- parsing */


/* Parse a finite number from s[0..n) into *v. Returns 0 or -1. */
static int parse_num(const char *s, size_t n, float *v) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *end = NULL;
    errno = 0;
    double d = strtod(tmp, &end);
    if (errno || end == tmp || *end || !isfinite(d)) return -1;
    *v = (float)d;
    return 0;
}

static int is_int(float v) { return v == floorf(v); }

int aug_parse(const char *spec, aug_list_t *out, char *why, size_t whylen) {
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return gb_errf(why, whylen, GB_EFORMAT, "empty ops list");
    /* Split on commas; a token that starts with a digit, '.', '+' or '-'
     * continues the previous op's parameter list (jitter:0.1,0.2). */
    const char *p = spec;
    int saw_none = 0;
    while (*p) {
        const char *tok = p;
        const char *comma = strchr(p, ',');
        size_t tl = comma ? (size_t)(comma - p) : strlen(p);
        p = comma ? comma + 1 : p + tl;
        if (comma && !*p) return gb_errf(why, whylen, GB_EFORMAT, "ops list '%s' ends with a comma", spec);
        if (tl == 0) return gb_errf(why, whylen, GB_EFORMAT, "empty item in ops list '%s'", spec);
        const char *colon = memchr(tok, ':', tl);
        size_t nl = colon ? (size_t)(colon - tok) : tl;
        char name[32];
        if (nl >= sizeof name) return gb_errf(why, whylen, GB_EFORMAT, "unknown op '%.*s'", (int)tl, tok);
        memcpy(name, tok, nl);
        name[nl] = 0;
        /* Parameters: after the colon, plus following numeric tokens. */
        float prm[2];
        int np = 0;
        if (colon) {
            const char *a = colon + 1;
            size_t al = tl - nl - 1;
            if (parse_num(a, al, &prm[0]) != 0)
                return gb_errf(why, whylen, GB_EFORMAT, "op '%s': '%.*s' is not a number", name, (int)al, a);
            np = 1;
            while (*p && (isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+')) {
                const char *c2 = strchr(p, ',');
                size_t l2 = c2 ? (size_t)(c2 - p) : strlen(p);
                if (np == 2) return gb_errf(why, whylen, GB_EFORMAT, "op '%s': too many parameters", name);
                if (parse_num(p, l2, &prm[np]) != 0)
                    return gb_errf(why, whylen, GB_EFORMAT, "op '%s': '%.*s' is not a number", name, (int)l2, p);
                np++;
                p = c2 ? c2 + 1 : p + l2;
                if (c2 && !*p) return gb_errf(why, whylen, GB_EFORMAT, "ops list '%s' ends with a comma", spec);
            }
        }
        if (strcmp(name, "none") == 0) {
            if (np) return gb_errf(why, whylen, GB_EFORMAT, "op 'none' takes no parameter");
            saw_none = 1;
            continue;
        }
        if (out->n == AUG_MAX_OPS) return gb_errf(why, whylen, GB_EFORMAT, "more than %d ops", AUG_MAX_OPS);
        aug_op_t *o = &out->op[out->n];
        if (strcmp(name, "flip") == 0) {
            o->kind = AUG_FLIP;
            o->p1 = np ? prm[0] : 0.5f;
            if (np > 1 || o->p1 < 0 || o->p1 > 1)
                return gb_errf(why, whylen, GB_EFORMAT, "op 'flip': probability must be one number in [0, 1]");
        } else if (strcmp(name, "translate") == 0) {
            o->kind = AUG_TRANSLATE;
            o->p1 = np ? prm[0] : 2;
            if (np > 1 || !is_int(o->p1) || o->p1 < 0 || o->p1 > 256)
                return gb_errf(why, whylen, GB_EFORMAT, "op 'translate': PX must be one integer in 0..256");
        } else if (strcmp(name, "crop") == 0) {
            o->kind = AUG_CROP;
            o->p1 = np ? prm[0] : 4;
            if (np > 1 || !is_int(o->p1) || o->p1 < 0 || o->p1 > 256)
                return gb_errf(why, whylen, GB_EFORMAT, "op 'crop': PAD must be one integer in 0..256");
        } else if (strcmp(name, "jitter") == 0) {
            o->kind = AUG_JITTER;
            o->p1 = np ? prm[0] : 0.2f;
            o->p2 = np > 1 ? prm[1] : (np ? o->p1 : 0.2f);
            if (o->p1 < 0 || o->p1 > 1 || o->p2 < 0 || o->p2 > 1)
                return gb_errf(why, whylen, GB_EFORMAT, "op 'jitter': B and C must be in [0, 1]");
        } else if (strcmp(name, "cutout") == 0) {
            o->kind = AUG_CUTOUT;
            o->p1 = np ? prm[0] : 8;
            if (np > 1 || !is_int(o->p1) || o->p1 < 1 || o->p1 > 4096)
                return gb_errf(why, whylen, GB_EFORMAT, "op 'cutout': SIZE must be one integer in 1..4096");
        } else {
            return gb_errf(why, whylen, GB_EFORMAT,
                            "unknown op '%s' (known: flip, translate, crop, jitter, cutout, none)", name);
        }
        out->n++;
    }
    if (saw_none && out->n)
        return gb_errf(why, whylen, GB_EFORMAT, "'none' cannot be combined with other ops");
    return 0;
}

void aug_format(const aug_list_t *ops, char *buf, size_t n) {
    static const char *names[] = {"flip", "translate", "crop", "jitter", "cutout"};
    size_t at = 0;
    if (n == 0) return;
    buf[0] = 0;
    if (ops->n == 0) {
        snprintf(buf, n, "none");
        return;
    }
    for (int i = 0; i < ops->n && at < n; i++) {
        const aug_op_t *o = &ops->op[i];
        int w;
        if (o->kind == AUG_JITTER)
            w = snprintf(buf + at, n - at, "%s%s:%g,%g", i ? "," : "", names[o->kind], o->p1, o->p2);
        else
            w = snprintf(buf + at, n - at, "%s%s:%g", i ? "," : "", names[o->kind], o->p1);
        if (w < 0) break;
        at += (size_t)w;
    }
}

int aug_check_shape(const aug_list_t *ops, int h, int w, char *why, size_t whylen) {
    for (int i = 0; i < ops->n; i++) {
        const aug_op_t *o = &ops->op[i];
        if (o->kind == AUG_CROP && (int)o->p1 >= GB_MIN(h, w)) {
            if (why && whylen)
                snprintf(why, whylen, "op 'crop:%g' needs PAD below the image size %dx%d", o->p1, h, w);
            return GB_EMISMATCH;
        }
    }
    return 0;
}

/* -------------------------------------------------------------------- ops */

/* Reflect index i into 0..n-1 (n >= 2, |overshoot| < n). */
static inline int reflect(int i, int n) {
    if (i < 0) return -i;
    if (i >= n) return 2 * n - 2 - i;
    return i;
}

static void op_flip(float *x, int h, int w, int c) {
    for (int r = 0; r < c * h; r++) {
        float *row = x + (size_t)r * w;
        for (int a = 0, b = w - 1; a < b; a++, b--) {
            float t = row[a];
            row[a] = row[b];
            row[b] = t;
        }
    }
}

/* out(y, x) = in(y - dy, x - dx); outside the image: 0, or reflected. */
static void op_shift(float *x, float *scratch, int h, int w, int c, int dy, int dx, int mirror) {
    size_t plane = (size_t)h * w;
    memcpy(scratch, x, plane * c * sizeof *x);
    for (int ch = 0; ch < c; ch++) {
        const float *src = scratch + ch * plane;
        float *dst = x + ch * plane;
        for (int y = 0; y < h; y++) {
            int sy = y - dy;
            float *drow = dst + (size_t)y * w;
            if (mirror) {
                sy = reflect(sy, h);
            } else if (sy < 0 || sy >= h) {
                memset(drow, 0, (size_t)w * sizeof *drow);
                continue;
            }
            const float *srow = src + (size_t)sy * w;
            if (mirror) {
                for (int xx = 0; xx < w; xx++) drow[xx] = srow[reflect(xx - dx, w)];
            } else {
                /* Columns xx with 0 <= xx - dx < w are copied, the rest zeroed. */
                int lo = GB_MAX(0, dx), hi = GB_MIN(w, w + dx);
                if (lo >= hi) {
                    memset(drow, 0, (size_t)w * sizeof *drow);
                    continue;
                }
                if (lo > 0) memset(drow, 0, (size_t)lo * sizeof *drow);
                memcpy(drow + lo, srow + lo - dx, (size_t)(hi - lo) * sizeof *drow);
                if (hi < w) memset(drow + hi, 0, (size_t)(w - hi) * sizeof *drow);
            }
        }
    }
}

static void op_jitter(float *x, size_t n, float bright, float contrast) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    float mean = (float)(sum / (double)n);
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - mean) * contrast + mean + bright;
        x[i] = v < 0 ? 0 : (v > 255 ? 255 : v);
    }
}

static void op_cutout(float *x, int h, int w, int c, int size, int cy, int cx) {
    int y0 = GB_MAX(0, cy - size / 2), y1 = GB_MIN(h, cy - size / 2 + size);
    int x0 = GB_MAX(0, cx - size / 2), x1 = GB_MIN(w, cx - size / 2 + size);
    if (y0 >= y1 || x0 >= x1) return;
    for (int ch = 0; ch < c; ch++)
        for (int y = y0; y < y1; y++)
            memset(x + ((size_t)ch * h + y) * w + x0, 0, (size_t)(x1 - x0) * sizeof *x);
}

/* Uniform integer in [-m, m]. */
static inline int sym_int(rng_t *r, int m) { return (int)rng_below(r, (uint64_t)(2 * m + 1)) - m; }

void aug_image(const aug_list_t *ops, rng_t *r, const uint8_t *px, int h, int w, int c, float *x,
               float *scratch) {
    size_t plane = (size_t)h * w;
    if (c == 1) {
        size_t i = 0;
        for (; i + 4 <= plane; i += 4) {
            aug_v4u8 b;
            memcpy(&b, px + i, sizeof b);
            aug_v4f v = __builtin_convertvector(b, aug_v4f);
            memcpy(x + i, &v, sizeof v);
        }
        for (; i < plane; i++) x[i] = px[i];
    } else {
        for (size_t i = 0; i < plane; i++)
            for (int ch = 0; ch < c; ch++) x[ch * plane + i] = px[i * c + ch];
    }
    for (int i = 0; i < ops->n; i++) {
        const aug_op_t *o = &ops->op[i];
        switch (o->kind) {
        case AUG_FLIP:
            if (rng_uniform(r) < o->p1) op_flip(x, h, w, c);
            break;
        case AUG_TRANSLATE:
        case AUG_CROP: {
            int m = (int)o->p1;
            int dy = sym_int(r, m), dx = sym_int(r, m);
            if (dy || dx) op_shift(x, scratch, h, w, c, dy, dx, o->kind == AUG_CROP);
            break;
        }
        case AUG_JITTER: {
            float b = (2 * rng_uniform(r) - 1) * o->p1 * 255.0f;
            float k = 1 + (2 * rng_uniform(r) - 1) * o->p2;
            op_jitter(x, plane * c, b, k);
            break;
        }
        case AUG_CUTOUT: {
            int cy = (int)rng_below(r, (uint64_t)h), cx = (int)rng_below(r, (uint64_t)w);
            op_cutout(x, h, w, c, (int)o->p1, cy, cx);
            break;
        }
        }
    }
}

void aug_to_f32(const float *x, size_t n, float *out) {
    /* Division, not a multiply by 1/127.5: 0 and 255 map to exactly -1
     * and 1, and the ops keep x within 0..255, so no clamp is needed (and
     * the loop vectorises). */
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        aug_v4f v;
        memcpy(&v, x + i, sizeof v);
        v = v / 127.5f - 1.0f;
        memcpy(out + i, &v, sizeof v);
    }
    for (; i < n; i++) out[i] = x[i] / 127.5f - 1.0f;
}

void aug_to_u8(const float *x, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i] + 0.5f;
        out[i] = v <= 0 ? 0 : (v >= 255 ? 255 : (uint8_t)v);
    }
}

/* ----------------------------------------------------------------- stream */

void aug_epoch_perm(uint64_t seed, uint64_t d64, uint64_t epoch, uint64_t *perm, uint64_t count) {
    rng_t r;
    rng_derive(&r, seed, d64, epoch, 0, AUG_STREAM_PERM);
    for (uint64_t i = 0; i < count; i++) perm[i] = i;
    rng_shuffle_u64(&r, perm, count);
}

void aug_batch_rng(rng_t *r, uint64_t seed, uint64_t d64, uint64_t epoch, uint64_t b) {
    rng_derive(r, seed, d64, epoch, b, AUG_STREAM_BATCH);
}

uint32_t aug_caption_pick(uint64_t seed, uint64_t d64, uint64_t epoch, uint64_t index, uint32_t n) {
    if (n < 2) return 0;
    rng_t r;
    rng_derive(&r, seed, d64, epoch, index, AUG_STREAM_CAPTION);
    return (uint32_t)rng_below(&r, n);
}

/* Shard batches per full epoch. */
static uint64_t plan_per_epoch(const aug_plan_t *p) {
    return p->bpe > p->shard_i ? (p->bpe - p->shard_i + p->shard_n - 1) / p->shard_n : 0;
}

uint64_t aug_plan_below(const aug_plan_t *p, uint64_t g) {
    uint64_t r = g % p->bpe;
    uint64_t part = r > p->shard_i ? (r - p->shard_i + p->shard_n - 1) / p->shard_n : 0;
    return (g / p->bpe) * plan_per_epoch(p) + part;
}

uint64_t aug_plan_total(const aug_plan_t *p) {
    if (plan_per_epoch(p) == 0) return 0;
    if (p->epochs == 0) return UINT64_MAX;
    uint64_t end = aug_plan_below(p, p->epochs * p->bpe), beg = aug_plan_below(p, p->start);
    return end > beg ? end - beg : 0;
}

uint64_t aug_plan_global(const aug_plan_t *p, uint64_t k) {
    uint64_t m = plan_per_epoch(p);
    ASSERT(m > 0);
    uint64_t kk = k + aug_plan_below(p, p->start);
    return (kk / m) * p->bpe + p->shard_i + (kk % m) * p->shard_n;
}
