/* ckpt.c - checkpoint files: atomic save, verified load, latest-valid
 * lookup and pruning (see ckpt.h for the file format and contracts).
 *
 * Shape of the code, and why:
 *   - A save never holds the file in memory: the trainer's tensors are
 *     borrowed by the message (ckpt_add_tensor_ref), and the message is
 *     streamed with protobuf-c's pack_to_buffer, which hands each bytes
 *     field to our ProtobufCBuffer as it stands. The header needs the
 *     payload's SHA-256, so a save packs twice: once into a hash only,
 *     once into the file (1 MiB chunks) and the file digest. The bytes
 *     are those the one-buffer pack gave (tests/test_ckpt.c compares).
 *   - The file is written through afile (temp file in the target folder,
 *     fsync, rename(2), fsync of the folder), the one atomic writer; its
 *     temp name ".ckpt-<step>.<pid>.tmp" lets pruning remove the leftovers
 *     of dead writers. Every step that can fail abandons the save: fsync
 *     is never retried, because after a failed fsync Linux may have
 *     dropped the dirty pages and a second fsync would report success for
 *     data that is gone (the PostgreSQL "fsyncgate" lesson). afile's test
 *     hook (afile_test_fail_at) makes any of its I/O calls fail.
 *   - A load reads the header first and checks it against the file size
 *     before allocating the payload, so a garbage or torn file costs one
 *     small read. The Tensor entries are parsed here, their data left
 *     in the payload (which the loaded message keeps), so a load holds
 *     the tensors once, not twice; the other fields (a few KB) are
 *     decoded by pbmsg_decode's capped allocator. test_ckpt checks on
 *     mutated payloads that this agrees with protobuf-c decoding the
 *     whole. The message is checked (tensor sizes, unique names) before
 *     anyone indexes into it.
 *   - Loaded messages are owned by pbmsg_decode's allocator, plus the
 *     payload and tensors; a small registry maps a message back to them
 *     so callers only see
 *     Gambar__Checkpoint and ckpt_free.
 * Expected load: one save every few hundred training steps, one load per
 * run (resume) or per sampler start. Nothing here is on a hot path. */
#include "ckpt.h"

#include "afile.h"
#include "base.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "pbmsg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CKPT_MAX_HEADER 4096u         /* largest header size a reader accepts */

/* ======================= Little-endian helpers ========================= */

static void put_u32le(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32le(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Copy n floats between host order and the file's little-endian order
 * (the same operation both ways). */
static void floats_le_copy(void *dst, const void *src, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 4; j++) d[4 * i + j] = s[4 * i + 3 - j];
#else
    memcpy(dst, src, n * sizeof(float));
#endif
}

/* ============================= Builder ================================= */

struct ckpt_builder {
    Gambar__Checkpoint ck;   /* the message; pointer fields below */
    Gambar__ModelDesc model;
    Gambar__TrainState state;
    Gambar__AdamState adam_g, adam_d;
    void **owned;            /* strings, bytes, tensors, rngs, notes we free */
    size_t n_owned, cap_owned;
    size_t cap_tensors, cap_classes, cap_rngs, cap_notes; /* array capacities */
};

static void *b_own(ckpt_builder_t *b, void *p) {
    if (b->n_owned == b->cap_owned) {
        b->cap_owned = b->cap_owned ? 2 * b->cap_owned : 64;
        b->owned = xrealloc(b->owned, b->cap_owned * sizeof *b->owned);
    }
    b->owned[b->n_owned++] = p;
    return p;
}

/* Grow a protobuf-c pointer array (arr, n used, cap allocated) to hold one
 * more. A macro so each array keeps its own pointer type. */
#define B_GROW(arr, n, cap)                                   \
    do {                                                      \
        if ((n) == (cap)) {                                   \
            (cap) = (cap) ? 2 * (cap) : 16;                   \
            (arr) = xrealloc((arr), (cap) * sizeof *(arr));   \
        }                                                     \
    } while (0)

ckpt_builder_t *ckpt_builder_new(void) {
    ckpt_builder_t *b = xcalloc(1, sizeof *b);
    gambar__checkpoint__init(&b->ck);
    gambar__model_desc__init(&b->model);
    gambar__train_state__init(&b->state);
    gambar__adam_state__init(&b->adam_g);
    gambar__adam_state__init(&b->adam_d);
    b->state.adam_g = &b->adam_g;
    b->state.adam_d = &b->adam_d;
    b->ck.model = &b->model;
    b->ck.state = &b->state;
    return b;
}

void ckpt_builder_destroy(ckpt_builder_t **pb) {
    if (!pb || !*pb) return;
    ckpt_builder_t *b = *pb;
    for (size_t i = 0; i < b->n_owned; i++) free(b->owned[i]);
    free(b->owned);
    free(b->ck.tensors);
    free(b->ck.notes);
    free(b->model.class_names);
    free(b->state.rngs);
    free(b);
    *pb = NULL;
}

Gambar__Checkpoint *ckpt_builder_msg(ckpt_builder_t *b) {
    return &b->ck;
}

char *ckpt_builder_strdup(ckpt_builder_t *b, const char *s) {
    return b_own(b, xstrdup(s ? s : ""));
}

ProtobufCBinaryData ckpt_builder_bytes(ckpt_builder_t *b, const void *data, size_t n) {
    ProtobufCBinaryData d = {n, NULL};
    d.data = b_own(b, xmalloc(n));
    if (n) memcpy(d.data, data, n);
    return d;
}

void *ckpt_builder_alloc(ckpt_builder_t *b, size_t n) {
    return b_own(b, xcalloc(1, n ? n : 1));
}

void ckpt_add_class_name(ckpt_builder_t *b, const char *name) {
    B_GROW(b->model.class_names, b->model.n_class_names, b->cap_classes);
    b->model.class_names[b->model.n_class_names++] = ckpt_builder_strdup(b, name);
}

void ckpt_set_note(ckpt_builder_t *b, const char *key, const char *value) {
    for (size_t i = 0; i < b->ck.n_notes; i++) {
        if (strcmp(b->ck.notes[i]->key, key) == 0) {
            b->ck.notes[i]->value = ckpt_builder_strdup(b, value);
            return;
        }
    }
    Gambar__Checkpoint__NotesEntry *e = b_own(b, xmalloc(sizeof *e));
    gambar__checkpoint__notes_entry__init(e);
    e->key = ckpt_builder_strdup(b, key);
    e->value = ckpt_builder_strdup(b, value);
    B_GROW(b->ck.notes, b->ck.n_notes, b->cap_notes);
    b->ck.notes[b->ck.n_notes++] = e;
}

/* ckpt_add_tensor and ckpt_add_tensor_ref: borrow data when the host
 * order is the file's (little-endian), else store a converted copy. */
static int add_tensor(ckpt_builder_t *b, const char *name, const int64_t *shape, int ndim,
                      const float *data, bool borrow) {
    ASSERT(name && name[0]);
    ASSERT(ndim >= 0 && ndim <= CKPT_MAX_DIMS);
    if (ckpt_tensor(&b->ck, name)) {
        log_error("checkpoint: tensor %s added twice", name);
        return GB_EMISMATCH;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        ASSERT(shape[i] >= 0);
        ASSERT(shape[i] == 0 || numel <= INT64_MAX / 4 / shape[i]);
        numel *= shape[i];
    }
    ASSERT(numel == 0 || data);
    Gambar__Tensor *t = b_own(b, xmalloc(sizeof *t));
    gambar__tensor__init(t);
    t->name = ckpt_builder_strdup(b, name);
    t->n_shape = (size_t)ndim;
    t->shape = b_own(b, xmalloc(ndim * sizeof *t->shape));
    if (ndim) memcpy(t->shape, shape, ndim * sizeof *t->shape);
    t->data.len = (size_t)numel * 4;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    borrow = false;
#endif
    if (borrow && numel) {
        t->data.data = (uint8_t *)(uintptr_t)data; /* packing only reads it */
    } else {
        t->data.data = b_own(b, xmalloc(t->data.len));
        if (numel) floats_le_copy(t->data.data, data, (size_t)numel);
    }
    B_GROW(b->ck.tensors, b->ck.n_tensors, b->cap_tensors);
    b->ck.tensors[b->ck.n_tensors++] = t;
    return 0;
}

int ckpt_add_tensor(ckpt_builder_t *b, const char *name, const int64_t *shape, int ndim,
                    const float *data) {
    return add_tensor(b, name, shape, ndim, data, false);
}

int ckpt_add_tensor_ref(ckpt_builder_t *b, const char *name, const int64_t *shape, int ndim,
                        const float *data) {
    return add_tensor(b, name, shape, ndim, data, true);
}

void ckpt_add_rng(ckpt_builder_t *b, const char *name, const uint64_t s[4]) {
    Gambar__RngState *r = NULL;
    for (size_t i = 0; i < b->state.n_rngs; i++)
        if (strcmp(b->state.rngs[i]->name, name) == 0) r = b->state.rngs[i];
    if (!r) {
        r = b_own(b, xmalloc(sizeof *r));
        gambar__rng_state__init(r);
        r->name = ckpt_builder_strdup(b, name);
        r->n_s = 4;
        r->s = b_own(b, xmalloc(4 * sizeof *r->s));
        B_GROW(b->state.rngs, b->state.n_rngs, b->cap_rngs);
        b->state.rngs[b->state.n_rngs++] = r;
    }
    memcpy(r->s, s, 4 * sizeof *r->s);
}

/* ======================== Reading tensors ============================== */

const Gambar__Tensor *ckpt_tensor(const Gambar__Checkpoint *ck, const char *name) {
    for (size_t i = 0; i < ck->n_tensors; i++)
        if (ck->tensors[i]->name && strcmp(ck->tensors[i]->name, name) == 0) return ck->tensors[i];
    return NULL;
}

int64_t ckpt_tensor_numel(const Gambar__Tensor *t) {
    int64_t n = 1;
    for (size_t i = 0; i < t->n_shape; i++) n *= t->shape[i];
    return n;
}

/* "(2, 3, 4)" into buf. */
static void shape_str(const int64_t *shape, size_t ndim, char *buf, size_t len) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "(");
    for (size_t i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (o < len) snprintf(buf + o, len - o, ")");
}

int ckpt_get_tensor(const Gambar__Checkpoint *ck, const char *name, const int64_t *shape,
                    int ndim, float *dst) {
    const Gambar__Tensor *t = ckpt_tensor(ck, name);
    char want[256], have[256];
    shape_str(shape, (size_t)ndim, want, sizeof want);
    if (!t) {
        log_error("checkpoint has no tensor %s %s", name, want);
        return GB_ENOTFOUND;
    }
    bool same = t->n_shape == (size_t)ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        shape_str(t->shape, t->n_shape, have, sizeof have);
        log_error("checkpoint tensor %s has shape %s, expected %s", name, have, want);
        return GB_EMISMATCH;
    }
    int64_t n = ckpt_tensor_numel(t);
    ASSERT(t->data.len == (size_t)n * 4); /* checked by ckpt_load */
    if (n) floats_le_copy(dst, t->data.data, (size_t)n);
    return 0;
}

int ckpt_tensor_check(const Gambar__Tensor *st, const char *name, const char *who, const int64_t *shape, int ndim,
                      size_t n, bool finite, char *err, size_t errlen) {
    if (!st) return gb_errf(err, errlen, GB_ENOTFOUND, "checkpoint has no tensor %s", name);
    bool same = st->n_shape == (size_t)ndim && st->data.len == n * sizeof(float);
    for (int i = 0; same && i < ndim; i++) same = st->shape[i] == shape[i];
    if (!same) {
        char want[256], have[256];
        shape_str(shape, (size_t)ndim, want, sizeof want);
        shape_str(st->shape, st->n_shape, have, sizeof have);
        return gb_errf(err, errlen, GB_EMISMATCH, "tensor %s: %s needs shape %s, the checkpoint has %s (%zu bytes)",
                       name, who, want, have, st->data.len);
    }
    if (!finite) return 0;
    const uint8_t *p = st->data.data;
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, p + i * sizeof v, sizeof v); /* the payload need not be aligned */
        if (!isfinite(v))
            return gb_errf(err, errlen, GB_ENUMERIC, "tensor %s holds a non-finite value (%s) at index %zu of %zu",
                           name, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", i, n);
    }
    return 0;
}

int ckpt_get_rng(const Gambar__Checkpoint *ck, const char *name, uint64_t s[4]) {
    if (!ck->state) return GB_ENOTFOUND;
    for (size_t i = 0; i < ck->state->n_rngs; i++) {
        const Gambar__RngState *r = ck->state->rngs[i];
        if (r->name && strcmp(r->name, name) == 0 && r->n_s == 4) {
            memcpy(s, r->s, 4 * sizeof *s);
            return 0;
        }
    }
    return GB_ENOTFOUND;
}

const char *ckpt_note(const Gambar__Checkpoint *ck, const char *key) {
    for (size_t i = 0; i < ck->n_notes; i++)
        if (ck->notes[i]->key && strcmp(ck->notes[i]->key, key) == 0) return ck->notes[i]->value;
    return NULL;
}

/* ===================== Registry of loaded messages ===================== */

/* What a loaded message owns besides pbmsg's allocations: the payload,
 * which the tensors' data point into, and the tensors themselves (parsed
 * by split_tensors, attached to the message after protobuf-c decoded the
 * rest). */
typedef struct {
    uint8_t *payload;
    Gambar__Tensor **t;
    size_t nt, cap;
    size_t bytes; /* allocated for tensors: names, shapes, structs */
} tensors_t;

/* Detach the tensors from w's message, then free w, the tensors and the
 * payload. */
static void release(pbmsg_t **w, tensors_t *ts) {
    if (*w && (*w)->msg) {
        Gambar__Checkpoint *ck = (Gambar__Checkpoint *)(*w)->msg;
        ck->n_tensors = 0;
        ck->tensors = NULL;
    }
    pbmsg_destroy(w);
    for (size_t i = 0; i < ts->nt; i++) {
        free(ts->t[i]->name);
        free(ts->t[i]->shape);
        free(ts->t[i]);
    }
    free(ts->t);
    free(ts->payload);
    memset(ts, 0, sizeof *ts);
}

typedef struct loaded {
    Gambar__Checkpoint *ck;
    pbmsg_t *w;
    tensors_t ts;
    struct loaded *next;
} loaded_t;

static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static loaded_t *g_reg;

static Gambar__Checkpoint *reg_add(pbmsg_t *w, const tensors_t *ts) {
    loaded_t *l = xmalloc(sizeof *l);
    l->ck = (Gambar__Checkpoint *)w->msg;
    l->w = w;
    l->ts = *ts;
    pthread_mutex_lock(&g_reg_lock);
    l->next = g_reg;
    g_reg = l;
    pthread_mutex_unlock(&g_reg_lock);
    return l->ck;
}

void ckpt_free(Gambar__Checkpoint **ck) {
    if (!ck || !*ck) return;
    loaded_t *found = NULL;
    pthread_mutex_lock(&g_reg_lock);
    for (loaded_t **pp = &g_reg; *pp; pp = &(*pp)->next) {
        if ((*pp)->ck == *ck) {
            found = *pp;
            *pp = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_reg_lock);
    ASSERT(found); /* not from ckpt_load, or freed twice */
    release(&found->w, &found->ts);
    free(found);
    *ck = NULL;
}

/* ====================== Tensors without a copy ========================= */

/* Read a varint at p[*off..n). Returns 0, or -1 when truncated or longer
 * than 10 bytes. */
static int rd_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10 && *off < n; i++) {
        uint8_t b = p[(*off)++];
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Skip the value of a field of wire type wt. Returns 0 or -1. For a
 * length-delimited value, *start and *len (may be NULL) get its bytes. */
static int skip_value(const uint8_t *p, size_t n, size_t *off, unsigned wt, size_t *start, size_t *len) {
    uint64_t v;
    switch (wt) {
    case 0: return rd_varint(p, n, off, &v);
    case 1: if (n - *off < 8) return -1; *off += 8; return 0;
    case 5: if (n - *off < 4) return -1; *off += 4; return 0;
    case 2:
        if (rd_varint(p, n, off, &v) != 0 || v > n - *off) return -1;
        if (start) *start = *off;
        if (len) *len = (size_t)v;
        *off += (size_t)v;
        return 0;
    default: return -1; /* groups (3, 4) and 6, 7: protobuf-c refuses them too */
    }
}

/* Parse one Tensor message p[0..n) into a new struct whose data points
 * into p. Returns 0 or -1 (malformed; nothing allocated). */
static int parse_tensor(const uint8_t *p, size_t n, tensors_t *ts, size_t budget) {
    Gambar__Tensor *t = xmalloc(sizeof *t);
    gambar__tensor__init(t);
    t->name = NULL; /* init points it at protobuf-c's static "" */
    size_t cap_shape = 0, off = 0;
    ts->bytes += sizeof *t;
    while (off < n) {
        uint64_t tag;
        if (rd_varint(p, n, &off, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX >> 3) goto bad;
        unsigned fn = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
        size_t start = 0, len = 0;
        if (fn == 2 && wt == 0) { /* one unpacked shape entry */
            uint64_t v;
            if (rd_varint(p, n, &off, &v) != 0) goto bad;
            B_GROW(t->shape, t->n_shape, cap_shape);
            t->shape[t->n_shape++] = (int64_t)v;
            ts->bytes += sizeof *t->shape;
            continue;
        }
        if ((fn == 1 || fn == 2 || fn == 3) && wt != 2) goto bad;
        if (skip_value(p, n, &off, wt, &start, &len) != 0) goto bad;
        if (fn == 1) {
            free(t->name);
            t->name = xmalloc(len + 1);
            memcpy(t->name, p + start, len);
            t->name[len] = 0;
            ts->bytes += len + 1;
        } else if (fn == 2) { /* packed shape */
            size_t o = start, end = start + len;
            while (o < end) {
                uint64_t v;
                if (rd_varint(p, end, &o, &v) != 0) goto bad;
                B_GROW(t->shape, t->n_shape, cap_shape);
                t->shape[t->n_shape++] = (int64_t)v;
                ts->bytes += sizeof *t->shape;
                if (ts->bytes > budget) goto bad;
            }
        } else if (fn == 3) {
            t->data.len = len;
            t->data.data = len ? (uint8_t *)(uintptr_t)(p + start) : NULL;
        }
        if (ts->bytes > budget) goto bad;
    }
    if (!t->name) t->name = xstrdup(""); /* as protobuf-c gives a missing string */
    B_GROW(ts->t, ts->nt, ts->cap);
    ts->t[ts->nt++] = t;
    return 0;
bad:
    free(t->name);
    free(t->shape);
    free(t);
    return -1;
}

/* Split a Checkpoint payload: every Checkpoint.tensors entry (field 2) is
 * parsed into ts with its data left in place, so a load holds the
 * payload once instead of the payload plus a decoded copy (issue 11);
 * the other fields, a few KB, are copied to *rest for protobuf-c.
 * Returns 0, or -1 for a malformed payload or one whose tensors would
 * take more than budget bytes of structs, names and shapes. */
static int split_tensors(const uint8_t *p, size_t n, size_t budget, tensors_t *ts, uint8_t **rest,
                         size_t *rest_len) {
    *rest = xmalloc(n ? n : 1);
    *rest_len = 0;
    size_t off = 0;
    while (off < n) {
        size_t at = off, start = 0, len = 0;
        uint64_t tag;
        if (rd_varint(p, n, &off, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX >> 3) return -1;
        unsigned wt = (unsigned)(tag & 7);
        if (skip_value(p, n, &off, wt, &start, &len) != 0) return -1;
        if ((tag >> 3) == 2) {
            if (wt != 2 || parse_tensor(p + start, len, ts, budget) != 0) return -1;
            continue;
        }
        memcpy(*rest + *rest_len, p + at, off - at);
        *rest_len += off - at;
    }
    *rest = xrealloc(*rest, *rest_len ? *rest_len : 1);
    return 0;
}

/* ============================== Loading ================================ */

/* Read exactly n bytes at offset off. Returns 0, GB_ECORRUPT when the file
 * ends first (it shrank under us), or an errno. */
static int read_full(int fd, void *buf, size_t n, uint64_t off) {
    uint8_t *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return GB_ECORRUPT;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Check a decoded message's content. Returns 0 or GB_EFORMAT with *why set. */
static int validate(const Gambar__Checkpoint *ck, char *why, size_t len) {
    if (!ck->model) return snprintf(why, len, "no model description"), GB_EFORMAT;
    if (!ck->state) return snprintf(why, len, "no training state"), GB_EFORMAT;
    if (!ck->state->adam_g || !ck->state->adam_d)
        return snprintf(why, len, "no optimizer state"), GB_EFORMAT;
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const Gambar__Tensor *t = ck->tensors[i];
        if (!t->name[0]) return snprintf(why, len, "tensor %zu has no name", i), GB_EFORMAT;
        if (t->n_shape > CKPT_MAX_DIMS)
            return snprintf(why, len, "tensor %.100s has %zu dims (max %d)", t->name, t->n_shape,
                            CKPT_MAX_DIMS),
                   GB_EFORMAT;
        uint64_t numel = 1;
        for (size_t d = 0; d < t->n_shape; d++) {
            int64_t s = t->shape[d];
            if (s < 0 || __builtin_mul_overflow(numel, (uint64_t)s, &numel))
                return snprintf(why, len, "tensor %.100s has a bad shape", t->name), GB_EFORMAT;
        }
        if (numel > SIZE_MAX / 4 || t->data.len != numel * 4)
            return snprintf(why, len, "tensor %.100s holds %zu bytes, its shape needs %" PRIu64,
                            t->name, t->data.len, numel * 4),
                   GB_EFORMAT;
    }
    for (size_t i = 0; i < ck->state->n_rngs; i++)
        if (ck->state->rngs[i]->n_s != 4)
            return snprintf(why, len, "random generator %.100s has %zu state words, not 4",
                            ck->state->rngs[i]->name, ck->state->rngs[i]->n_s),
                   GB_EFORMAT;
    if (ck->n_tensors > 1) {
        const char **names = xmalloc(ck->n_tensors * sizeof *names);
        for (size_t i = 0; i < ck->n_tensors; i++) names[i] = ck->tensors[i]->name;
        qsort(names, ck->n_tensors, sizeof *names, cmp_str_ptr);
        int rc = 0;
        for (size_t i = 1; i < ck->n_tensors && !rc; i++)
            if (strcmp(names[i - 1], names[i]) == 0) {
                snprintf(why, len, "tensor %.100s appears twice", names[i]);
                rc = GB_EFORMAT;
            }
        free(names);
        if (rc) return rc;
    }
    return 0;
}

/* Check a header (hdr has min(size, 64) valid bytes) against the file
 * size. Returns 0 with *hsize and *plen set, or a GB_E* code with *why set. */
static int check_header(const uint8_t *hdr, uint64_t size, uint32_t *hsize, uint64_t *plen,
                        char *why, size_t len) {
    if (size < CKPT_HEADER_SIZE) {
        size_t m = size < 8 ? (size_t)size : 8;
        if (memcmp(hdr, CKPT_MAGIC, m) != 0)
            return snprintf(why, len, "not a gambar checkpoint (bad magic)"), GB_EFORMAT;
        return snprintf(why, len, "truncated: %" PRIu64 " bytes, shorter than the header", size),
               GB_ECORRUPT;
    }
    if (memcmp(hdr, CKPT_MAGIC, 8) != 0)
        return snprintf(why, len, "not a gambar checkpoint (bad magic)"), GB_EFORMAT;
    uint32_t version = get_u32le(hdr + 8);
    if (version != CKPT_VERSION)
        return snprintf(why, len, "format version %" PRIu32 ", this build reads version %u",
                        version, CKPT_VERSION),
               GB_EVERSION;
    *hsize = get_u32le(hdr + 12);
    if (*hsize < CKPT_HEADER_SIZE || *hsize > CKPT_MAX_HEADER)
        return snprintf(why, len, "bad header size %" PRIu32, *hsize), GB_EFORMAT;
    *plen = get_u64le(hdr + 16);
    if (size < *hsize || *plen > size - *hsize)
        return snprintf(why, len,
                        "truncated: %" PRIu64 " bytes, header says %" PRIu32 " + %" PRIu64, size,
                        *hsize, *plen),
               GB_ECORRUPT;
    if (*plen < size - *hsize)
        return snprintf(why, len, "%" PRIu64 " unexpected bytes after the payload",
                        size - *hsize - *plen),
               GB_ECORRUPT;
    return 0;
}

/* ckpt_load_quiet, with a missing file (ENOENT) logged at debug level
 * when quiet_enoent. */
static int load(const char *path, int level, bool quiet_enoent, Gambar__Checkpoint **out,
                uint8_t digest_out[32]) {
    char why[512] = "";
    uint8_t hdr[CKPT_MAX_HEADER];
    uint8_t *payload = NULL;
    pbmsg_t *w = NULL;
    tensors_t ts = {0};
    uint32_t hsize = 0;
    uint64_t plen = 0;
    int rc = 0;
    if (out) *out = NULL;
    /* O_NONBLOCK: a FIFO named like a checkpoint must not hang us (it is
     * refused as not a regular file below; no effect on regular files). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = errno;
        snprintf(why, sizeof why, "cannot open: %s", strerror(rc));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = errno;
        snprintf(why, sizeof why, "cannot stat: %s", strerror(rc));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = GB_EFORMAT;
        snprintf(why, sizeof why, "not a regular file");
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size > CKPT_MAX_FILE_BYTES) {
        rc = GB_ETOOBIG;
        snprintf(why, sizeof why, "%" PRIu64 " bytes, over the %" PRIu64 "-byte limit", size,
                 CKPT_MAX_FILE_BYTES);
        goto fail;
    }
    size_t first = size < CKPT_HEADER_SIZE ? (size_t)size : CKPT_HEADER_SIZE;
    memset(hdr, 0, sizeof hdr);
    if ((rc = read_full(fd, hdr, first, 0)) != 0) goto read_fail;
    if ((rc = check_header(hdr, size, &hsize, &plen, why, sizeof why)) != 0) goto fail;
    if (hsize > CKPT_HEADER_SIZE &&
        (rc = read_full(fd, hdr + CKPT_HEADER_SIZE, hsize - CKPT_HEADER_SIZE, CKPT_HEADER_SIZE)))
        goto read_fail;
    payload = xmalloc((size_t)plen);
    if ((rc = read_full(fd, payload, (size_t)plen, hsize)) != 0) goto read_fail;
    uint8_t sum[DIGEST_LEN];
    digest_sha256(payload, (size_t)plen, sum);
    if (memcmp(sum, hdr + 24, DIGEST_LEN) != 0) {
        rc = GB_ECORRUPT;
        snprintf(why, sizeof why, "payload SHA-256 mismatch (damaged file)");
        goto fail;
    }
    if (digest_out) {
        digest_ctx_t *d = digest_new();
        digest_update(d, hdr, hsize);
        digest_update(d, payload, (size_t)plen);
        digest_final(&d, digest_out);
    }
    /* Decoded size is about the payload size plus per-tensor structs;
     * twice the payload plus 1 MiB is generous for real files and still
     * bounds a crafted one. The tensors are parsed here (their data stay
     * in the payload), the rest by protobuf-c. */
    size_t budget = (size_t)plen * 2 + ((size_t)1 << 20);
    ts.payload = payload;
    payload = NULL;
    uint8_t *rest = NULL;
    size_t rest_len = 0;
    rc = split_tensors(ts.payload, (size_t)plen, budget, &ts, &rest, &rest_len) == 0 ? 0 : GB_EFORMAT;
    if (rc == 0) rc = pbmsg_decode(&gambar__checkpoint__descriptor, rest, rest_len, budget, &w);
    free(rest);
    if (rc != 0) {
        snprintf(why, sizeof why, "payload is not a valid Checkpoint message (%s)",
                 rc == GB_ETOOBIG ? "over the size limit" : "protobuf decoding failed or outgrew the memory cap");
        rc = GB_EFORMAT;
        goto fail;
    }
    Gambar__Checkpoint *ck = (Gambar__Checkpoint *)w->msg;
    ck->n_tensors = ts.nt;
    ck->tensors = ts.t;
    if ((rc = validate(ck, why, sizeof why)) != 0) goto fail;
    close(fd);
    if (out)
        *out = reg_add(w, &ts);
    else
        release(&w, &ts);
    return 0;

read_fail:
    if (rc == GB_ECORRUPT)
        snprintf(why, sizeof why, "file shrank while being read");
    else
        snprintf(why, sizeof why, "read error: %s", strerror(rc));
fail:
    log_msg(rc == ENOENT && quiet_enoent ? LOG_DEBUG : (log_level_t)level, "checkpoint %s: %s", path,
            why);
    release(&w, &ts);
    free(payload);
    if (fd >= 0) close(fd);
    return rc;
}

int ckpt_load_quiet(const char *path, int level, Gambar__Checkpoint **out,
                    uint8_t digest_out[32]) {
    return load(path, level, false, out, digest_out);
}

int ckpt_load(const char *path, Gambar__Checkpoint **out, uint8_t digest_out[32]) {
    return load(path, LOG_ERROR, false, out, digest_out);
}

int ckpt_file_digest(const char *path, uint8_t out[32]) {
    return digest_file(path, out);
}

/* ========================= Listing a folder ============================ */

typedef struct {
    uint64_t step;
    char *name; /* file name within the folder */
} entry_t;

/* Parse "ckpt-<1..20 digits>.gck" into *step. */
static bool parse_ckpt_name(const char *name, uint64_t *step) {
    if (strncmp(name, "ckpt-", 5) != 0) return false;
    const char *p = name + 5;
    size_t nd = 0;
    uint64_t v = 0;
    while (p[nd] >= '0' && p[nd] <= '9') {
        unsigned dgt = (unsigned)(p[nd] - '0');
        if (v > (UINT64_MAX - dgt) / 10) return false;
        v = v * 10 + dgt;
        nd++;
    }
    if (nd == 0 || strcmp(p + nd, ".gck") != 0) return false;
    *step = v;
    return true;
}

static int cmp_entry_desc(const void *a, const void *b) {
    const entry_t *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? 1 : -1;
    return -strcmp(x->name, y->name);
}

/* Checkpoint files in dir, newest step first. Returns 0, GB_ENOTFOUND when
 * dir does not exist, or an errno. *n may be 0. */
static int list_ckpts(const char *dir, entry_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? GB_ENOTFOUND : errno;
    size_t cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t step;
        if (!parse_ckpt_name(de->d_name, &step)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        (*out)[*n].step = step;
        (*out)[(*n)++].name = xstrdup(de->d_name);
    }
    closedir(d);
    if (*n) qsort(*out, *n, sizeof **out, cmp_entry_desc);
    return 0;
}

static void free_entries(entry_t *e, size_t n) {
    for (size_t i = 0; i < n; i++) free(e[i].name);
    free(e);
}

/* dir + "/" + name into buf. Returns 0 or ENAMETOOLONG. */
static int join_path(char *buf, size_t len, const char *dir, const char *name) {
    int k = snprintf(buf, len, "%s/%s", dir, name);
    return k < 0 || (size_t)k >= len ? ENAMETOOLONG : 0;
}

int ckpt_find_latest(const char *dir, char *path_out, size_t len, Gambar__Checkpoint **out,
                     uint8_t digest_out[32]) {
    if (out) *out = NULL;
    /* A concurrent writer may prune files between our listing and our
     * reads; when that is why nothing was found, list again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        entry_t *e;
        size_t n;
        int rc = list_ckpts(dir, &e, &n);
        if (rc == GB_ENOTFOUND) {
            log_debug("checkpoint folder %s does not exist", dir);
            return GB_ENOTFOUND;
        }
        if (rc != 0) {
            log_error("cannot list checkpoint folder %s: %s", dir, strerror(rc));
            return rc;
        }
        rc = GB_ENOTFOUND;
        bool vanished = false;
        char path[PATH_MAX];
        for (size_t i = 0; i < n; i++) {
            if (join_path(path, sizeof path, dir, e[i].name) != 0) continue;
            int lrc = load(path, LOG_WARN, true, out, digest_out);
            if (lrc == 0) {
                rc = 0;
                if (path_out && join_path(path_out, len, dir, e[i].name) != 0) {
                    if (out) ckpt_free(out);
                    rc = ENAMETOOLONG;
                }
                break;
            }
            if (lrc == ENOENT)
                vanished = true;
            else
                log_warn("skipping checkpoint %s (%s); trying older ones", path, err_str(lrc));
        }
        free_entries(e, n);
        if (rc != GB_ENOTFOUND || !vanished) return rc;
    }
    return GB_ENOTFOUND;
}

/* ============================== Saving ================================= */

/* Cheap validity test used by pruning: header consistent with the size. */
static bool header_looks_valid(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return false;
    struct stat st;
    uint8_t hdr[CKPT_HEADER_SIZE];
    bool ok = false;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= (off_t)CKPT_HEADER_SIZE &&
        read_full(fd, hdr, sizeof hdr, 0) == 0) {
        uint32_t hs;
        uint64_t pl;
        char why[256];
        ok = check_header(hdr, (uint64_t)st.st_size, &hs, &pl, why, sizeof why) == 0;
    }
    close(fd);
    return ok;
}

/* Remove temp files ".ckpt-<step>.<pid>.tmp" whose writer is gone. */
static void prune_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[PATH_MAX];
    while ((de = readdir(d)) != NULL) {
        unsigned long long step;
        long pid;
        int used = 0;
        if (sscanf(de->d_name, ".ckpt-%llu.%ld.tmp%n", &step, &pid, &used) != 2 ||
            de->d_name[used] != '\0' || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* writer may be alive */
        if (join_path(path, sizeof path, dir, de->d_name) == 0 && unlink(path) == 0)
            log_info("removed stale checkpoint temp file %s", path);
    }
    closedir(d);
}

/* Keep the newest `keep` valid checkpoints (and `just_written`). */
static void prune(const char *dir, int keep, const char *just_written) {
    prune_stale_temps(dir);
    if (keep <= 0) return;
    entry_t *e;
    size_t n;
    if (list_ckpts(dir, &e, &n) != 0) return;
    int valid = 0;
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        if (join_path(path, sizeof path, dir, e[i].name) != 0) continue;
        if (valid < keep) {
            if (strcmp(e[i].name, just_written) == 0 || header_looks_valid(path)) valid++;
            continue;
        }
        if (strcmp(e[i].name, just_written) == 0) continue;
        if (unlink(path) == 0)
            log_debug("pruned old checkpoint %s", path);
        else if (errno != ENOENT)
            log_warn("cannot remove old checkpoint %s: %s", path, strerror(errno));
    }
    free_entries(e, n);
}

/* Create dir (one level) when missing. Returns 0 or an errno. */
static int ensure_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (errno != ENOENT) return errno;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return errno;
    return 0;
}

/* A ProtobufCBuffer that counts what protobuf-c appends and either
 * hashes it (a == NULL) or stages it in CKPT_WRITE_CHUNK-byte chunks that
 * go to the afile and, when d is set, into the digest. */
typedef struct {
    ProtobufCBuffer base;
    digest_ctx_t *d; /* NULL: no hash wanted */
    afile_t *a;      /* NULL: hash only */
    uint8_t *chunk;  /* CKPT_WRITE_CHUNK bytes when a is set */
    size_t used;     /* bytes staged in chunk */
    uint64_t total;  /* bytes appended */
    int err;         /* first afile_write error */
} sink_t;

static void sink_flush(sink_t *s) {
    if (s->used && !s->err) {
        if (s->d) digest_update(s->d, s->chunk, s->used);
        s->err = afile_write(s->a, s->chunk, s->used);
    }
    s->used = 0;
}

static void sink_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data) {
    sink_t *s = (sink_t *)buf;
    s->total += len;
    if (!s->a) {
        digest_update(s->d, data, len);
        return;
    }
    while (len > 0 && !s->err) {
        size_t k = GB_MIN(len, CKPT_WRITE_CHUNK - s->used);
        memcpy(s->chunk + s->used, data, k);
        s->used += k;
        data += k;
        len -= k;
        if (s->used == CKPT_WRITE_CHUNK) sink_flush(s);
    }
}

/* Write ck to path through afile (temp file tmp, or afile's own name when
 * NULL); *bytes gets the file size. Returns 0 or an errno (logged by
 * afile with the path and the failing operation). */
static int write_file(const char *path, const char *tmp, const Gambar__Checkpoint *ck,
                      uint8_t digest_out[32], uint64_t *bytes) {
    size_t plen = protobuf_c_message_get_packed_size(&ck->base);
    uint8_t hdr[CKPT_HEADER_SIZE];
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, CKPT_MAGIC, 8);
    put_u32le(hdr + 8, CKPT_VERSION);
    put_u32le(hdr + 12, CKPT_HEADER_SIZE);
    put_u64le(hdr + 16, (uint64_t)plen);

    /* Pass 1: the payload's SHA-256, which the header carries. */
    sink_t h = {.base = {.append = sink_append}, .d = digest_new()};
    protobuf_c_message_pack_to_buffer(&ck->base, &h.base);
    ASSERT(h.total == plen);
    digest_final(&h.d, hdr + 24);

    /* Pass 2: header and payload into the file (and the file digest). */
    afile_t *a;
    int rc = tmp ? afile_open_tmp(path, tmp, &a) : afile_open(path, &a);
    if (rc) return rc;
    sink_t w = {.base = {.append = sink_append}, .a = a, .chunk = xmalloc(CKPT_WRITE_CHUNK),
                .d = digest_out ? digest_new() : NULL};
    sink_append(&w.base, sizeof hdr, hdr);
    protobuf_c_message_pack_to_buffer(&ck->base, &w.base);
    sink_flush(&w);
    ASSERT(w.err || w.total == CKPT_HEADER_SIZE + plen);
    free(w.chunk);
    if (w.d) digest_final(&w.d, digest_out);
    *bytes = w.total;
    return afile_commit(&a); /* reports (and logs) a write error too */
}

int ckpt_write(const char *path, const Gambar__Checkpoint *ck, uint8_t digest_out[32]) {
    ASSERT(ck && ck->model && ck->state);
    uint64_t bytes = 0;
    int rc = write_file(path, NULL, ck, digest_out, &bytes);
    if (rc == 0) log_debug("wrote checkpoint %s (%" PRIu64 " bytes)", path, bytes);
    return rc;
}

int ckpt_save(const char *dir, const Gambar__Checkpoint *ck, int keep, char *path_out,
              size_t path_len, uint8_t digest_out[32]) {
    ASSERT(ck && ck->model && ck->state);
    char name[64], tmpname[96], final[PATH_MAX], tmp[PATH_MAX];
    int rc = 0;
    unsigned long long step = (unsigned long long)ck->state->step;
    snprintf(name, sizeof name, "ckpt-%010llu.gck", step);
    snprintf(tmpname, sizeof tmpname, ".ckpt-%010llu.%ld.tmp", step, (long)getpid());
    if (join_path(final, sizeof final, dir, name) || join_path(tmp, sizeof tmp, dir, tmpname) ||
        (path_out && strlen(final) >= path_len)) {
        log_error("checkpoint path %s/%s is too long", dir, name);
        return ENAMETOOLONG;
    }
    if ((rc = ensure_dir(dir)) != 0) {
        char why[4200];
        log_error("cannot create checkpoint folder %s: %s", dir, err_io_str(rc, dir, why, sizeof why));
        return rc;
    }
    uint64_t bytes = 0;
    if ((rc = write_file(final, tmp, ck, digest_out, &bytes)) != 0) {
        log_error("checkpoint step %llu not saved in %s", step, dir);
        return rc;
    }
    if (path_out) snprintf(path_out, path_len, "%s", final);
    log_debug("saved checkpoint %s (%" PRIu64 " bytes)", final, bytes);
    prune(dir, keep, name);
    return 0;
}
