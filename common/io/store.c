/* store.c - the dataset store on LMDB (see store.h and proto/dataset.proto).
 *
 * One unnamed LMDB database holds "ex/%012llu" -> Example, "sha/<hex>" ->
 * 12-digit index, and "!info" -> DatasetInfo. Two kinds of handle:
 *
 *   Readers (STORE_RDONLY) open the environment MDB_RDONLY | MDB_NOTLS and
 *   keep one read transaction for their whole life, so store_get_pixels
 *   can hand out pointers straight into the memory map (no copy, no
 *   protobuf unpacking: the Example's wire bytes are scanned for fields 5
 *   and 6). The snapshot is the one current at store_open.
 *
 *   The writer stages packed Examples in one memory buffer (store_add) and
 *   writes the whole batch plus the updated DatasetInfo in a single write
 *   transaction (store_commit). Keeping the batch in memory is what lets
 *   MDB_MAP_FULL be handled by aborting, growing the map with no
 *   transaction open and replaying the batch. Any other commit failure
 *   (ENOSPC, EFBIG, EIO) drops the batch; LMDB's copy-on-write pages and
 *   meta-page switch leave every earlier commit intact.
 *
 * The committed DatasetInfo is held as a plain C struct (st_state_t); the
 * writer keeps a second copy that includes the staged batch and replaces
 * one with the other on commit or failure. Workload: ingest adds tens of
 * thousands of small examples per second in batches of a few MiB; readers
 * look up millions of examples by index.
 */
#include "store.h"

#include "base.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#define STORE_FORMAT_VERSION 1
#define STORE_DEFAULT_MAP ((size_t)64 << 20) /* bytes: first map of a writer */
#define STORE_TOUCH_MAX 64     /* writer map reads between MADV_DONTNEED */
#define STORE_COMMIT_TOUCH_MAX 64 /* puts of a commit between MADV_DONTNEED */
#define STORE_KEY_LEN 24                      /* "ex/" + up to 20 digits + NUL */

/* The DatasetInfo fields as owned C data. */
typedef struct {
    bool has_info;       /* a "!info" was committed */
    uint32_t h, w, c;    /* example shape; 0 = not fixed yet */
    char **classes;      /* nclasses owned strings */
    size_t nclasses;
    uint64_t *class_counts; /* nclasses entries */
    uint64_t count, unlabelled, optouts, dups;
    uint64_t with_captions, captions; /* Examples with a caption, captions in all */
    uint8_t digest[DIGEST_LEN];
    char **lic;          /* nlic owned license strings */
    uint64_t *lic_count; /* parallel to lic */
    size_t nlic;
    int64_t time;        /* unix seconds of the last commit */
    char *source;        /* owned, never NULL */
} st_state_t;

typedef struct {
    size_t off, len;          /* packed Example in the batch's buf */
    uint8_t sha[DIGEST_LEN];  /* its source SHA-256 */
} st_staged_t;

/* A batch of packed Examples: the one being staged, or the one a commit
 * is writing (the two are swapped when a commit starts). */
typedef struct {
    uint8_t *buf;             /* packed Examples */
    size_t len, cap;
    st_staged_t *ex;
    size_t n, cap_ex;
    uint32_t *htab;           /* sha hash: index in ex + 1, 0 = empty */
    size_t hcap;              /* power of two */
} st_batch_t;

struct store {
    char *path;
    bool rdonly;
    MDB_env *env;
    MDB_dbi dbi;
    size_t mapsize;           /* bytes */
    void *mapaddr;            /* the map, for madvise */
    unsigned touches;         /* writer: map reads since the last madvise */
    MDB_txn *rtxn;            /* reader: for life; writer: lazily renewed */
    bool rtxn_live;           /* writer: rtxn begun/renewed and not reset */
    pthread_mutex_t lock;     /* readers: store_get_pixels from many threads; writer: guards
                                 rtxn, cur, fly, the map address and the a_* fields against
                                 the commit thread */
    st_state_t cur;           /* committed */
    st_state_t work;          /* committed + in flight + staged (writer); work.count is the
                                 index of the first staged example */
    st_batch_t stage;         /* writer: examples added since the last commit started */
    st_batch_t fly;           /* writer: the batch the commit thread is writing */
    uint64_t fly_base;        /* index of fly's first example */
    st_state_t fly_state;     /* what cur becomes when fly commits */
    uint8_t *fly_info;        /* packed DatasetInfo of fly_state */
    size_t fly_ninfo;
    pthread_t a_thr;          /* the commit thread (started on the first commit) */
    pthread_cond_t a_cv;      /* a_pending changed */
    bool a_started, a_pending, a_quit;
    int a_rc;                 /* error of a failed background commit (sticky) */
    Gambar__DatasetInfo view; /* store_info's answer, points into cur */
    Gambar__LicenseCount *view_lic;
    Gambar__LicenseCount **view_licp;
    EVP_MD *md;               /* SHA-256, fetched once (the digest chain) */
    EVP_MD_CTX *mdctx;
    uint64_t *bloom;          /* writer: Bloom filter of every sha/ key (see store_bloom_build) */
    size_t bloom_bits;        /* power of two; 0 = not built */
    uint64_t bloom_items;     /* keys added */
    uint64_t expect;          /* examples the caller expects to add (store_expect) */
};

/* ---------------------------------------------------------------- state */

static void state_free(st_state_t *st) {
    for (size_t i = 0; i < st->nclasses; i++) free(st->classes[i]);
    for (size_t i = 0; i < st->nlic; i++) free(st->lic[i]);
    free(st->classes);
    free(st->class_counts);
    free(st->lic);
    free(st->lic_count);
    free(st->source);
    memset(st, 0, sizeof *st);
}

static void state_copy(st_state_t *dst, const st_state_t *src) {
    state_free(dst);
    *dst = *src;
    dst->classes = xcalloc(src->nclasses + 1, sizeof(char *));
    dst->class_counts = xcalloc(src->nclasses + 1, sizeof(uint64_t));
    for (size_t i = 0; i < src->nclasses; i++) {
        dst->classes[i] = xstrdup(src->classes[i]);
        dst->class_counts[i] = src->class_counts[i];
    }
    dst->lic = xcalloc(src->nlic + 1, sizeof(char *));
    dst->lic_count = xcalloc(src->nlic + 1, sizeof(uint64_t));
    for (size_t i = 0; i < src->nlic; i++) {
        dst->lic[i] = xstrdup(src->lic[i]);
        dst->lic_count[i] = src->lic_count[i];
    }
    dst->source = xstrdup(src->source ? src->source : "");
}

static void state_init(st_state_t *st) {
    memset(st, 0, sizeof *st);
    st->source = xstrdup("");
}

/* Fill a DatasetInfo view pointing into st (nothing copied). lic and licp
 * must hold st->nlic entries. */
static void state_view(const st_state_t *st, Gambar__DatasetInfo *v, Gambar__LicenseCount *lic,
                       Gambar__LicenseCount **licp) {
    gambar__dataset_info__init(v);
    v->format_version = STORE_FORMAT_VERSION;
    v->count = st->count;
    v->height = st->h;
    v->width = st->w;
    v->channels = st->c;
    v->n_class_names = st->nclasses;
    v->class_names = st->classes;
    v->ingest_time_unix = st->time;
    v->source = st->source;
    v->digest.data = (uint8_t *)st->digest;
    v->digest.len = DIGEST_LEN;
    v->optout_count = st->optouts;
    v->duplicate_count = st->dups;
    for (size_t i = 0; i < st->nlic; i++) {
        gambar__license_count__init(&lic[i]);
        lic[i].license = st->lic[i];
        lic[i].count = st->lic_count[i];
        licp[i] = &lic[i];
    }
    v->n_licenses = st->nlic;
    v->licenses = licp;
    v->unlabelled_count = st->unlabelled;
    v->n_class_counts = st->nclasses;
    v->class_counts = st->class_counts;
    v->examples_with_captions = st->with_captions;
    v->captions_total = st->captions;
}

static void store_refresh_view(store_t *s) {
    free(s->view_lic);
    free(s->view_licp);
    s->view_lic = xcalloc(s->cur.nlic + 1, sizeof *s->view_lic);
    s->view_licp = xcalloc(s->cur.nlic + 1, sizeof *s->view_licp);
    state_view(&s->cur, &s->view, s->view_lic, s->view_licp);
}

/* Parse a packed DatasetInfo into st. Returns 0, GB_ECORRUPT, GB_EVERSION. */
static int state_load(const char *path, const void *data, size_t n, st_state_t *st) {
    Gambar__DatasetInfo *in = gambar__dataset_info__unpack(NULL, n, data);
    if (!in) {
        log_error("store: %s: the dataset info record does not decode", path);
        return GB_ECORRUPT;
    }
    int rc = 0;
    if (in->format_version != STORE_FORMAT_VERSION) {
        log_error("store: %s: dataset format version %u, this program reads version %d", path,
                  in->format_version, STORE_FORMAT_VERSION);
        rc = GB_EVERSION;
        goto done;
    }
    if (in->digest.len != DIGEST_LEN ||
        (in->n_class_counts != in->n_class_names && in->n_class_counts != 0) ||
        (in->count && in->channels != 1 && in->channels != 3)) {
        log_error("store: %s: the dataset info record is inconsistent", path);
        rc = GB_ECORRUPT;
        goto done;
    }
    state_free(st);
    st->has_info = true;
    st->h = in->height;
    st->w = in->width;
    st->c = in->channels;
    st->nclasses = in->n_class_names;
    st->classes = xcalloc(st->nclasses + 1, sizeof(char *));
    st->class_counts = xcalloc(st->nclasses + 1, sizeof(uint64_t));
    for (size_t i = 0; i < st->nclasses; i++) {
        st->classes[i] = xstrdup(in->class_names[i]);
        st->class_counts[i] = in->n_class_counts ? in->class_counts[i] : 0;
    }
    st->count = in->count;
    st->unlabelled = in->unlabelled_count;
    st->optouts = in->optout_count;
    st->dups = in->duplicate_count;
    st->with_captions = in->examples_with_captions;
    st->captions = in->captions_total;
    memcpy(st->digest, in->digest.data, DIGEST_LEN);
    st->nlic = in->n_licenses;
    st->lic = xcalloc(st->nlic + 1, sizeof(char *));
    st->lic_count = xcalloc(st->nlic + 1, sizeof(uint64_t));
    for (size_t i = 0; i < st->nlic; i++) {
        st->lic[i] = xstrdup(in->licenses[i]->license ? in->licenses[i]->license : "");
        st->lic_count[i] = in->licenses[i]->count;
    }
    st->time = in->ingest_time_unix;
    st->source = xstrdup(in->source ? in->source : "");
done:
    gambar__dataset_info__free_unpacked(in, NULL);
    return rc;
}

/* ---------------------------------------------------------------- keys */

/* Decimal i, zero-padded to at least 12 digits, NUL-terminated, into out
 * (21 bytes); returns the length. The same text as "%012" PRIu64 without
 * snprintf's cost (two keys per stored example). */
static size_t dec12(char *out, uint64_t i) {
    char t[20];
    size_t n = 0;
    do { t[n++] = (char)('0' + i % 10); i /= 10; } while (i);
    while (n < 12) t[n++] = '0';
    for (size_t k = 0; k < n; k++) out[k] = t[n - 1 - k];
    out[n] = 0;
    return n;
}

static void key_ex(char out[STORE_KEY_LEN], uint64_t i) {
    memcpy(out, "ex/", 3);
    dec12(out + 3, i);
}

static void key_sha(char out[4 + DIGEST_HEX_LEN + 1], const uint8_t sha[DIGEST_LEN]) {
    memcpy(out, "sha/", 4);
    digest_hex(sha, DIGEST_LEN, out + 4);
}

static int db_err(const store_t *s, const char *what, int mrc) {
    log_error("store: %s: %s: %s", s->path, what, mdb_strerror(mrc));
    return mrc > 0 ? mrc : GB_EDB;
}

/* ---------------------------------------------------------------- open */

static int store_read_info(store_t *s, MDB_txn *txn) {
    MDB_val k = {5, (void *)"!info"}, v;
    int mrc = mdb_get(txn, s->dbi, &k, &v);
    if (mrc == MDB_NOTFOUND) return 0;
    if (mrc) return db_err(s, "reading the dataset info", mrc);
    return state_load(s->path, v.mv_data, v.mv_size, &s->cur);
}

/* Find the writer's map of data.mdb in /proc/self/maps by the file's
 * inode (LMDB reports the map address only for MDB_FIXEDMAP). Should a
 * reader of the same file live in this process, its map may be picked
 * instead: harmless, the madvise below is only about residency. */
static void store_find_map(store_t *s) {
    s->mapaddr = NULL;
    int fd;
    struct stat st;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0) return;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return;
    char line[4352];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off, ino;
        unsigned dmaj, dmin;
        char perm[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perm, &off, &dmaj, &dmin, &ino) == 7 &&
            ino == (unsigned long)st.st_ino && off == 0 && hi - lo >= s->mapsize) {
            s->mapaddr = (void *)lo;
            break;
        }
    }
    fclose(f);
}

static void store_read_mapsize(store_t *s) {
    MDB_envinfo ei;
    if (mdb_env_info(s->env, &ei) == 0) s->mapsize = ei.me_mapsize;
    if (!s->rdonly) store_find_map(s);
}

/* The writer's memory bound. Every B-tree read maps file pages into the
 * process (plus the kernel's fault-around neighbours), and a writer that
 * looks up random sha/ keys would end up with the whole file resident and
 * counted in its RSS. The map is read-only (no MDB_WRITEMAP) and shared,
 * so dropping its page-table entries loses nothing (pages stay in the page
 * cache and fault back in); doing it every STORE_TOUCH_MAX reads keeps the
 * mapped part small whatever the dataset size. LMDB keeps no pointers
 * into the map between calls of a write transaction except through open
 * cursors, and we keep none. Readers are left alone (their zero-copy
 * pointers stay valid either way, but they want their pages warm). */
static void store_touch(store_t *s, unsigned n) {
    if (s->rdonly || !s->mapaddr) return;
    s->touches += n;
    if (s->touches < STORE_TOUCH_MAX) return;
    s->touches = 0;
    madvise(s->mapaddr, s->mapsize, MADV_DONTNEED);
}

void store_release_pages(store_t *s) {
    pthread_mutex_lock(&s->lock);
    if (s->rdonly) store_find_map(s); /* a reader's map is not looked up on open */
    if (s->mapaddr) madvise(s->mapaddr, s->mapsize, MADV_DONTNEED);
    pthread_mutex_unlock(&s->lock);
}

/* Begin a read transaction, adopting a map grown by another process. */
static int store_begin_read(store_t *s, MDB_txn **txn) {
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (mrc == MDB_MAP_RESIZED) {
        mrc = mdb_env_set_mapsize(s->env, 0);
        if (!mrc) mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
        store_read_mapsize(s);
    }
    return mrc;
}

int store_open_map(const char *path, int flags, size_t map_bytes, store_t **out) {
    *out = NULL;
    bool rdonly = (flags & STORE_RDONLY) != 0;
    char dbfile[4096];
    struct stat stt;
    int rc = 0, mrc;
    if (snprintf(dbfile, sizeof dbfile, "%s/data.mdb", path) >= (int)sizeof dbfile) {
        log_error("store: %s: path too long", path);
        return ENAMETOOLONG;
    }
    if (!rdonly && (flags & STORE_CREATE)) {
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            rc = errno;
            log_error("store: %s: cannot create the dataset folder: %s", path, strerror(rc));
            return rc;
        }
    }
    if (stat(path, &stt) != 0) {
        rc = errno;
        log_error("store: %s: no dataset here: %s", path, strerror(rc));
        return rc;
    }
    if (!S_ISDIR(stt.st_mode)) {
        log_error("store: %s: no dataset here (not a folder)", path);
        return ENOTDIR;
    }
    if (!(flags & STORE_CREATE) && stat(dbfile, &stt) != 0) {
        log_error("store: %s: no dataset here (no data.mdb)", path);
        return ENOENT;
    }

    store_t *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    s->rdonly = rdonly;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->a_cv, NULL);
    state_init(&s->cur);
    state_init(&s->work);
    state_init(&s->fly_state);
    if ((mrc = mdb_env_create(&s->env))) { rc = db_err(s, "mdb_env_create", mrc); goto fail; }
    if (!rdonly) {
        size_t want = map_bytes ? map_bytes : STORE_DEFAULT_MAP;
        if (stat(dbfile, &stt) == 0 && (size_t)stt.st_size > want) want = (size_t)stt.st_size;
        if ((mrc = mdb_env_set_mapsize(s->env, want))) { rc = db_err(s, "set map size", mrc); goto fail; }
    }
    /* The writer skips the meta-page fsync (MDB_NOMETASYNC): a system crash
     * may lose the last commit but never breaks consistency; store_close
     * syncs. One fsync per batch instead of two. */
    mrc = mdb_env_open(s->env, path, (rdonly ? MDB_RDONLY : MDB_NOMETASYNC) | MDB_NOTLS, 0644);
    if (mrc) {
        rc = db_err(s, "cannot open the dataset", mrc);
        mdb_env_close(s->env);
        s->env = NULL;
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead) log_debug("store: %s: freed %d stale reader slot(s)", path, dead);
    store_read_mapsize(s);

    MDB_txn *txn = NULL;
    if (rdonly) {
        if ((mrc = store_begin_read(s, &txn))) { rc = db_err(s, "begin read", mrc); goto fail; }
    } else if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn))) {
        rc = db_err(s, "begin write", mrc);
        goto fail;
    }
    if ((mrc = mdb_dbi_open(txn, NULL, 0, &s->dbi))) {
        mdb_txn_abort(txn);
        rc = db_err(s, "open database", mrc);
        goto fail;
    }
    if ((rc = store_read_info(s, txn))) { mdb_txn_abort(txn); goto fail; }
    if (rdonly) {
        s->rtxn = txn;
    } else {
        mdb_txn_abort(txn); /* the dbi handle of the main db stays valid */
    }
    state_copy(&s->work, &s->cur);
    store_refresh_view(s);
    *out = s;
    return 0;
fail:
    store_close(&s);
    return rc;
}

int store_open(const char *path, int flags, store_t **out) {
    return store_open_map(path, flags, 0, out);
}

static void batch_clear(st_batch_t *b) {
    b->len = 0;
    b->n = 0;
    if (b->htab) memset(b->htab, 0, b->hcap * sizeof *b->htab);
}

static void batch_free(st_batch_t *b) {
    free(b->buf);
    free(b->ex);
    free(b->htab);
    memset(b, 0, sizeof *b);
}

static void store_drop_staged(store_t *s) { batch_clear(&s->stage); }

static int store_wait(store_t *s);

int store_close(store_t **sp) {
    if (!sp || !*sp) return 0;
    store_t *s = *sp;
    int rc = 0;
    if (s->a_started) {
        store_wait(s);
        pthread_mutex_lock(&s->lock);
        s->a_quit = true;
        pthread_cond_broadcast(&s->a_cv);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->a_thr, NULL);
    }
    if (s->rtxn) mdb_txn_abort(s->rtxn);
    if (s->env && !s->rdonly) {
        int mrc = mdb_env_sync(s->env, 1);
        if (mrc) {
            log_error("store: %s: final sync: %s", s->path, mdb_strerror(mrc));
            rc = mrc > 0 ? mrc : GB_EDB;
        }
    }
    if (s->env) mdb_env_close(s->env);
    state_free(&s->cur);
    state_free(&s->work);
    batch_free(&s->stage);
    batch_free(&s->fly);
    state_free(&s->fly_state);
    free(s->fly_info);
    free(s->view_lic);
    free(s->view_licp);
    EVP_MD_CTX_free(s->mdctx);
    EVP_MD_free(s->md);
    free(s->bloom);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->a_cv);
    free(s->path);
    free(s);
    *sp = NULL;
    return rc;
}

uint64_t store_count(const store_t *s) {
    pthread_mutex_t *mu = (pthread_mutex_t *)&s->lock;
    pthread_mutex_lock(mu);
    uint64_t n = s->cur.count;
    pthread_mutex_unlock(mu);
    return n;
}
uint64_t store_staged(const store_t *s) { return s->stage.n; }
size_t store_staged_bytes(const store_t *s) { return s->stage.len + s->stage.n * sizeof(st_staged_t); }
size_t store_map_size(const store_t *s) { return s->mapsize; }

const Gambar__DatasetInfo *store_info(const store_t *s) {
    return s->cur.has_info ? &s->view : NULL;
}

/* ---------------------------------------------------------------- reads */

/* The read transaction for committed data: the reader's long-lived one,
 * or the writer's, renewed after each commit. */
static int store_rtxn(store_t *s, MDB_txn **txn) {
    int mrc = 0;
    if (!s->rdonly && !s->rtxn_live) {
        if (s->rtxn) mrc = mdb_txn_renew(s->rtxn);
        else mrc = store_begin_read(s, &s->rtxn);
        if (mrc) return db_err(s, "begin read", mrc);
        s->rtxn_live = true;
    }
    *txn = s->rtxn;
    return 0;
}

static int store_lookup(store_t *s, uint64_t i, MDB_val *v) {
    char key[STORE_KEY_LEN];
    MDB_txn *txn;
    int rc = store_rtxn(s, &txn);
    if (rc) return rc;
    if (i >= s->cur.count) return GB_ENOTFOUND;
    key_ex(key, i);
    MDB_val k = {strlen(key), key};
    store_touch(s, 1);
    int mrc = mdb_get(txn, s->dbi, &k, v);
    if (mrc == MDB_NOTFOUND) {
        log_error("store: %s: example %" PRIu64 " is missing (count %" PRIu64 ")", s->path, i,
                  s->cur.count);
        return GB_ECORRUPT;
    }
    if (mrc) return db_err(s, "read example", mrc);
    return 0;
}

int store_get(store_t *s, uint64_t i, Gambar__Example **out) {
    *out = NULL;
    MDB_val v;
    pthread_mutex_lock(&s->lock);
    int rc = store_lookup(s, i, &v);
    if (!rc) {
        *out = gambar__example__unpack(NULL, v.mv_size, v.mv_data);
        if (!*out) {
            log_error("store: %s: example %" PRIu64 " does not decode", s->path, i);
            rc = GB_ECORRUPT;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Read a base-128 varint at *p (< end). Returns false when truncated. */
static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *out = v; return true; }
    }
    return false;
}

/* Scan an Example's wire bytes for pixels (field 5) and label (field 6)
 * without unpacking. Returns 0 or GB_ECORRUPT. */
static int pb_scan_pixels(const uint8_t *p, size_t n, const uint8_t **px, size_t *npx,
                          int32_t *label) {
    const uint8_t *end = p + n;
    *px = NULL;
    *npx = 0;
    *label = 0;
    while (p < end) {
        uint64_t tag, v;
        if (!pb_varint(&p, end, &tag)) return GB_ECORRUPT;
        switch (tag & 7) {
        case 0:
            if (!pb_varint(&p, end, &v)) return GB_ECORRUPT;
            if ((tag >> 3) == 6) *label = (int32_t)((uint32_t)(v >> 1) ^ -(uint32_t)(v & 1));
            break;
        case 1: if (end - p < 8) return GB_ECORRUPT; p += 8; break;
        case 5: if (end - p < 4) return GB_ECORRUPT; p += 4; break;
        case 2:
            if (!pb_varint(&p, end, &v) || v > (uint64_t)(end - p)) return GB_ECORRUPT;
            if ((tag >> 3) == 5) { *px = p; *npx = (size_t)v; }
            p += v;
            break;
        default: return GB_ECORRUPT;
        }
    }
    return 0;
}

int store_get_pixels(store_t *s, uint64_t i, const uint8_t **px, size_t *npx, int32_t *label) {
    if (!s->rdonly) return EINVAL;
    MDB_val v;
    pthread_mutex_lock(&s->lock);
    int rc = store_lookup(s, i, &v);
    pthread_mutex_unlock(&s->lock);
    if (rc) return rc;
    rc = pb_scan_pixels(v.mv_data, v.mv_size, px, npx, label);
    if (!rc && *npx != (size_t)s->cur.h * s->cur.w * s->cur.c) rc = GB_ECORRUPT;
    if (rc) log_error("store: %s: example %" PRIu64 " is malformed", s->path, i);
    return rc;
}

static uint32_t *htab_slot(const st_batch_t *b, const uint8_t sha[DIGEST_LEN], bool *found) {
    uint64_t h;
    memcpy(&h, sha, sizeof h);
    size_t mask = b->hcap - 1;
    for (size_t j = (size_t)h & mask;; j = (j + 1) & mask) {
        uint32_t e = b->htab[j];
        if (!e) { *found = false; return &b->htab[j]; }
        if (memcmp(b->ex[e - 1].sha, sha, DIGEST_LEN) == 0) { *found = true; return &b->htab[j]; }
    }
}

/* The writer's Bloom filter over every source SHA-256 in the dataset (and
 * the staged batch). Ingest asks store_find_sha about every file, and on a
 * new dataset nearly all answers are "not found"; without the filter each
 * question is a B-tree descent to a random leaf through the memory map
 * (page faults, and the writer is the serial part of ingest). About 12
 * bits and 5 probes per key (~1% false positives, which just fall through
 * to LMDB); the probes come from the digest's own bytes. Built lazily by
 * scanning the sha/ keys once, sized for the committed count plus
 * store_expect, and rebuilt after a commit when it holds more than twice
 * what it was sized for. */
#define STORE_BLOOM_K 5

static void bloom_add(store_t *s, const uint8_t sha[DIGEST_LEN]) {
    uint64_t h1, h2;
    memcpy(&h1, sha, 8);
    memcpy(&h2, sha + 8, 8);
    h2 |= 1;
    for (int i = 0; i < STORE_BLOOM_K; i++) {
        uint64_t b = (h1 + (uint64_t)i * h2) & (s->bloom_bits - 1);
        s->bloom[b >> 6] |= (uint64_t)1 << (b & 63);
    }
    s->bloom_items++;
}

static bool bloom_maybe(const store_t *s, const uint8_t sha[DIGEST_LEN]) {
    uint64_t h1, h2;
    memcpy(&h1, sha, 8);
    memcpy(&h2, sha + 8, 8);
    h2 |= 1;
    for (int i = 0; i < STORE_BLOOM_K; i++) {
        uint64_t b = (h1 + (uint64_t)i * h2) & (s->bloom_bits - 1);
        if (!(s->bloom[b >> 6] & ((uint64_t)1 << (b & 63)))) return false;
    }
    return true;
}

/* (Re)build from the committed sha/ keys and the staged batch. Returns 0
 * or an LMDB/read error (the filter is then left unbuilt). */
static int store_bloom_build(store_t *s) {
    free(s->bloom);
    s->bloom = NULL;
    s->bloom_bits = 0;
    s->bloom_items = 0;
    uint64_t plan = s->cur.count + s->stage.n + s->expect;
    size_t bits = 1 << 16;
    while (bits < plan * 12) bits <<= 1;
    MDB_txn *txn;
    int rc = store_rtxn(s, &txn);
    if (rc) return rc;
    s->bloom = xcalloc(bits / 64, sizeof(uint64_t));
    s->bloom_bits = bits;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi, &cur);
    if (mrc) goto fail;
    MDB_val k = {4, (void *)"sha/"}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t sha[DIGEST_LEN];
        if (k.mv_size != 4 + DIGEST_HEX_LEN || memcmp(k.mv_data, "sha/", 4) != 0) break;
        if (digest_unhex((const char *)k.mv_data + 4, sha, DIGEST_LEN) == 0) bloom_add(s, sha);
        if ((s->bloom_items & 15) == 0) store_touch(s, 1); /* the scan maps pages too */
    }
    mdb_cursor_close(cur);
    if (mrc != MDB_NOTFOUND && mrc != 0) goto fail;
    for (size_t i = 0; i < s->stage.n; i++) bloom_add(s, s->stage.ex[i].sha);
    for (size_t i = 0; i < s->fly.n; i++) bloom_add(s, s->fly.ex[i].sha); /* in flight (lock held) */
    return 0;
fail:
    free(s->bloom);
    s->bloom = NULL;
    s->bloom_bits = 0;
    return db_err(s, "scan the sha index", mrc);
}

void store_expect(store_t *s, uint64_t n) { s->expect = n; }

int store_find_sha(store_t *s, const uint8_t sha[DIGEST_LEN], uint64_t *index) {
    bool found;
    if (!s->rdonly && s->stage.n) {
        uint32_t *e = htab_slot(&s->stage, sha, &found);
        if (found) { *index = s->work.count + *e - 1; return 0; }
    }
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (!s->rdonly && s->fly.n) {
        uint32_t *e = htab_slot(&s->fly, sha, &found);
        if (found) {
            *index = s->fly_base + *e - 1;
            goto done;
        }
    }
    if (!s->rdonly) {
        if (!s->bloom_bits) store_bloom_build(s); /* on failure: plain lookups */
        if (s->bloom_bits && !bloom_maybe(s, sha)) { rc = GB_ENOTFOUND; goto done; }
    }
    char key[4 + DIGEST_HEX_LEN + 1];
    key_sha(key, sha);
    MDB_txn *txn;
    rc = store_rtxn(s, &txn);
    MDB_val k = {sizeof key - 1, key}, v;
    if (!rc) {
        store_touch(s, 1);
        int mrc = mdb_get(txn, s->dbi, &k, &v);
        if (mrc == MDB_NOTFOUND) rc = GB_ENOTFOUND;
        else if (mrc) rc = db_err(s, "read sha index", mrc);
        else {
            char num[24];
            size_t n = GB_MIN(v.mv_size, sizeof num - 1);
            memcpy(num, v.mv_data, n);
            num[n] = 0;
            char *endp;
            unsigned long long x = strtoull(num, &endp, 10);
            if (n == 0 || *endp) {
                log_error("store: %s: bad index under %s", s->path, key);
                rc = GB_ECORRUPT;
            } else {
                *index = x;
            }
        }
    }
done:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---------------------------------------------------------------- writes */

int store_set_classes(store_t *s, const char *const *names, size_t n) {
    if (s->rdonly) return EINVAL;
    st_state_t *w = &s->work;
    if (w->nclasses) {
        bool same = w->nclasses == n;
        for (size_t i = 0; same && i < n; i++) same = strcmp(w->classes[i], names[i]) == 0;
        if (!same) {
            log_error("store: %s: the dataset has other class names (%zu stored, %zu given)", s->path,
                      w->nclasses, n);
            return GB_EMISMATCH;
        }
        return 0;
    }
    if (w->count || s->stage.n) {
        log_error("store: %s: class names cannot be added to a dataset holding unlabelled examples",
                  s->path);
        return GB_EMISMATCH;
    }
    w->classes = xrealloc(w->classes, (n + 1) * sizeof(char *));
    free(w->class_counts);
    w->class_counts = xcalloc(n + 1, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) w->classes[i] = xstrdup(names[i]);
    w->nclasses = n;
    return 0;
}

/* SHA-256 with the store's cached context (digest_sha256 would fetch the
 * algorithm and allocate per call; this runs twice per example). */
static void store_sha256(store_t *s, const void *data, size_t n, uint8_t out[DIGEST_LEN]) {
    unsigned int len = 0;
    if (!s->md) {
        s->md = EVP_MD_fetch(NULL, "SHA256", NULL);
        s->mdctx = EVP_MD_CTX_new();
        ASSERT_ALLOC(s->md && s->mdctx);
    }
    ASSERT_ALLOC(EVP_DigestInit_ex2(s->mdctx, s->md, NULL) == 1 && EVP_DigestUpdate(s->mdctx, data, n) == 1 &&
           EVP_DigestFinal_ex(s->mdctx, out, &len) == 1 && len == DIGEST_LEN);
}

/* Advance the digest chain by one Example (proto/dataset.proto). */
static void chain_step(store_t *s, uint8_t d[DIGEST_LEN], const uint8_t sha[DIGEST_LEN], const uint8_t *px,
                       size_t npx, int32_t label) {
    uint8_t buf[3 * DIGEST_LEN + 4];
    memcpy(buf, d, DIGEST_LEN);
    memcpy(buf + DIGEST_LEN, sha, DIGEST_LEN);
    store_sha256(s, px, npx, buf + 2 * DIGEST_LEN);
    uint32_t l = (uint32_t)label;
    for (int b = 0; b < 4; b++) buf[3 * DIGEST_LEN + b] = (uint8_t)(l >> (8 * b));
    store_sha256(s, buf, sizeof buf, d);
}

static void htab_insert(store_t *s, size_t idx) {
    if ((s->stage.n + 1) * 2 > s->stage.hcap) {
        size_t ncap = s->stage.hcap ? s->stage.hcap * 2 : 1024;
        while ((s->stage.n + 1) * 2 > ncap) ncap *= 2;
        free(s->stage.htab);
        s->stage.htab = xcalloc(ncap, sizeof *s->stage.htab);
        s->stage.hcap = ncap;
        for (size_t j = 0; j < idx; j++) {
            bool f;
            *htab_slot(&s->stage, s->stage.ex[j].sha, &f) = (uint32_t)(j + 1);
        }
    }
    bool f;
    uint32_t *e = htab_slot(&s->stage, s->stage.ex[idx].sha, &f);
    if (!f) *e = (uint32_t)(idx + 1);
}

int store_add(store_t *s, Gambar__Example *ex) {
    if (s->rdonly) return EINVAL;
    st_state_t *w = &s->work;
    if (ex->channels != 1 && ex->channels != 3) {
        log_error("store: %s: %u channels (want 1 or 3)", s->path, ex->channels);
        return GB_EMISMATCH;
    }
    if (!ex->height || !ex->width ||
        ex->pixels.len != (size_t)ex->height * ex->width * ex->channels) {
        log_error("store: %s: pixel buffer of %zu bytes does not fit %ux%ux%u", s->path,
                  ex->pixels.len, ex->width, ex->height, ex->channels);
        return GB_EMISMATCH;
    }
    if (w->h && (w->h != ex->height || w->w != ex->width || w->c != ex->channels)) {
        log_error("store: %s: example is %ux%ux%u, the dataset holds %ux%ux%u", s->path, ex->width,
                  ex->height, ex->channels, w->w, w->h, w->c);
        return GB_EMISMATCH;
    }
    if (ex->label < -1 || (ex->label >= 0 && (size_t)ex->label >= w->nclasses)) {
        log_error("store: %s: label %d outside the %zu classes", s->path, ex->label, w->nclasses);
        return GB_EMISMATCH;
    }
    if (ex->source_sha256.len != DIGEST_LEN) {
        log_error("store: %s: source_sha256 has %zu bytes (want 32)", s->path, ex->source_sha256.len);
        return GB_EFORMAT;
    }
    if (s->stage.n >= UINT32_MAX - 1) return GB_ETOOBIG;

    Gambar__Example t = *ex;
    t.index = w->count + s->stage.n;
    t.label_name = ex->label >= 0 ? w->classes[ex->label] : (char *)"";
    if (!t.source_uri) t.source_uri = (char *)"";
    if (!t.license) t.license = (char *)"";
    if (!t.attribution) t.attribution = (char *)"";
    size_t need = gambar__example__get_packed_size(&t);
    if (s->stage.len + need > s->stage.cap) {
        size_t ncap = s->stage.cap ? s->stage.cap * 2 : (1 << 20);
        while (s->stage.len + need > ncap) ncap *= 2;
        s->stage.buf = xrealloc(s->stage.buf, ncap);
        s->stage.cap = ncap;
    }
    if (s->stage.n == s->stage.cap_ex) {
        s->stage.cap_ex = s->stage.cap_ex ? s->stage.cap_ex * 2 : 1024;
        s->stage.ex = xrealloc(s->stage.ex, s->stage.cap_ex * sizeof *s->stage.ex);
    }
    size_t got = gambar__example__pack(&t, s->stage.buf + s->stage.len);
    ASSERT(got == need);
    st_staged_t *e = &s->stage.ex[s->stage.n];
    e->off = s->stage.len;
    e->len = need;
    memcpy(e->sha, ex->source_sha256.data, DIGEST_LEN);
    s->stage.len += need;
    htab_insert(s, s->stage.n);
    if (s->bloom_bits) bloom_add(s, e->sha);
    s->stage.n++;
    ex->index = t.index;

    if (!w->h) { w->h = ex->height; w->w = ex->width; w->c = ex->channels; }
    if (ex->n_captions) w->with_captions++;
    w->captions += ex->n_captions;
    if (ex->label >= 0) w->class_counts[ex->label]++;
    else w->unlabelled++;
    size_t li = 0;
    while (li < w->nlic && strcmp(w->lic[li], t.license) != 0) li++;
    if (li == w->nlic) {
        w->lic = xrealloc(w->lic, (w->nlic + 1) * sizeof(char *));
        w->lic_count = xrealloc(w->lic_count, (w->nlic + 1) * sizeof(uint64_t));
        w->lic[li] = xstrdup(t.license);
        w->lic_count[li] = 0;
        w->nlic++;
    }
    w->lic_count[li]++;
    chain_step(s, w->digest, e->sha, ex->pixels.data, ex->pixels.len, ex->label);
    return 0;
}

/* ---------------------------------------------------------------- commits
 *
 * store_commit_async hands the staged batch to a commit thread (the
 * batches swap: staging goes on into an empty one) and returns; the
 * thread writes it in one write transaction and commits (the commit's
 * fsync is the slow part, and overlapping it with staging is the point).
 * At most one batch is in flight: the next store_commit_async, or
 * store_commit / store_flush / store_close, first waits for it. A failed
 * background commit is reported by that next call, which also drops what
 * was staged meanwhile (it was chained onto the failed batch); the error
 * sticks. The writer's read transaction and the map address are shared
 * with the thread under s->lock: the thread resets the read transaction
 * after each commit (so lookups see it) and before resizing the map. */

/* Staged examples by digest, then by position (so that of two equal
 * digests the first is inserted first and kept). */
static int cmp_staged_sha(const void *a, const void *b, void *arg) {
    const st_batch_t *bt = arg;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    int c = memcmp(bt->ex[i].sha, bt->ex[j].sha, DIGEST_LEN);
    return c ? c : (i > j) - (i < j);
}

/* In the commit thread, before each put: drop the map's pages every
 * STORE_COMMIT_TOUCH_MAX puts (see store_touch). */
static void store_commit_touch(store_t *s, unsigned *touches) {
    if (++*touches < STORE_COMMIT_TOUCH_MAX) return;
    *touches = 0;
    pthread_mutex_lock(&s->lock);
    if (s->mapaddr) madvise(s->mapaddr, s->mapsize, MADV_DONTNEED);
    pthread_mutex_unlock(&s->lock);
}

/* In the commit thread: write fly and its info. Returns 0, an MDB code
 * (MDB_MAP_FULL for the caller to grow and retry) or an errno. *what names
 * the failing step. *touches counts map reads for the periodic drop. */
static int store_write_batch(store_t *s, unsigned *touches, const char **what) {
    const st_batch_t *b = &s->fly;
    MDB_txn *txn = NULL;
    *what = "begin write";
    int mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (mrc) return mrc;
    /* Refuse to interleave with another writer process. */
    MDB_val ik = {5, (void *)"!info"}, iv;
    *what = "read info";
    mrc = mdb_get(txn, s->dbi, &ik, &iv);
    if (mrc == 0 || mrc == MDB_NOTFOUND) {
        uint64_t on_disk = 0;
        if (mrc == 0) {
            Gambar__DatasetInfo *d = gambar__dataset_info__unpack(NULL, iv.mv_size, iv.mv_data);
            on_disk = d ? d->count : UINT64_MAX;
            if (d) gambar__dataset_info__free_unpacked(d, NULL);
        }
        mrc = on_disk == s->fly_base ? 0 : MDB_BAD_TXN;
        if (mrc) *what = "the dataset was changed by another writer";
    }
    /* The examples first (their keys follow each other at the end of the
     * ex/ range, so LMDB stays on the same few pages), then the sha/
     * index in key order (sha/ + lowercase hex sorts as the raw digest):
     * consecutive inserts then share their path down the tree, which
     * keeps the map pages read between MADV_DONTNEED drops, and the page
     * faults after each drop, few. The content written is the same in
     * any order. */
    for (size_t i = 0; !mrc && i < b->n; i++) {
        const st_staged_t *e = &b->ex[i];
        char key[STORE_KEY_LEN];
        key_ex(key, s->fly_base + i);
        MDB_val k = {strlen(key), key}, v = {e->len, b->buf + e->off};
        *what = "write example";
        store_commit_touch(s, touches);
        mrc = mdb_put(txn, s->dbi, &k, &v, 0);
    }
    uint32_t *order = NULL;
    if (!mrc && b->n) {
        order = xmalloc(b->n * sizeof *order);
        for (size_t i = 0; i < b->n; i++) order[i] = (uint32_t)i;
        qsort_r(order, b->n, sizeof *order, cmp_staged_sha, (void *)b);
    }
    for (size_t j = 0; !mrc && j < b->n; j++) {
        size_t i = order[j];
        const st_staged_t *e = &b->ex[i];
        char skey[4 + DIGEST_HEX_LEN + 1], num[24];
        key_sha(skey, e->sha);
        dec12(num, s->fly_base + i);
        MDB_val sk = {sizeof skey - 1, skey}, sv = {strlen(num), num};
        *what = "write sha index";
        store_commit_touch(s, touches);
        mrc = mdb_put(txn, s->dbi, &sk, &sv, MDB_NOOVERWRITE);
        if (mrc == MDB_KEYEXIST) mrc = 0; /* an exact duplicate: the first one stays */
    }
    free(order);
    if (!mrc) {
        MDB_val v = {s->fly_ninfo, s->fly_info};
        *what = "write info";
        mrc = mdb_put(txn, s->dbi, &ik, &v, 0);
    }
    if (mrc) {
        mdb_txn_abort(txn);
        return mrc;
    }
    *what = "commit";
    return mdb_txn_commit(txn);
}

/* Bytes free for an unprivileged writer on the file system holding path,
 * or -1 when statvfs fails. */
static long long store_free_bytes(const char *path) {
    struct statvfs v;
    if (statvfs(path, &v) != 0) return -1;
    return (long long)v.f_bavail * (long long)v.f_frsize;
}

/* Whether a failed commit (mrc) was the disk filling up: ENOSPC/EDQUOT
 * say so, but LMDB turns a short write (what a full file system gives a
 * large write before ENOSPC) into EIO, so an EIO with less room left
 * than the batch needs (its bytes twice, for copy-on-write pages and the
 * index, plus 1 MiB) is named disk full too. *free_out gets the free
 * bytes (-1 unknown). */
static bool store_disk_full(const store_t *s, int mrc, long long *free_out) {
    *free_out = store_free_bytes(s->path);
    if (mrc == ENOSPC || mrc == EDQUOT) return true;
    if (mrc != EIO || *free_out < 0) return false;
    long long need = 2 * (long long)(s->fly.len + s->fly_ninfo) + (1ll << 20);
    return *free_out < need;
}

/* In the commit thread: commit fly, growing the map as needed. Returns 0
 * or the error to report (logged here): ENOSPC whenever the disk is full
 * (store_disk_full), also when LMDB reported it as EIO. */
static int store_commit_fly(store_t *s) {
    int rc = 0, mrc;
    unsigned touches = 0;
    const char *what = "";
    for (int attempt = 0;; attempt++) {
        mrc = store_write_batch(s, &touches, &what);
        if (mrc != MDB_MAP_FULL || attempt >= 40) break;
        /* No transaction of this process may be open while the map is
         * resized: ours was aborted; the writer's reads wait on the lock. */
        pthread_mutex_lock(&s->lock);
        if (s->rtxn_live) { mdb_txn_reset(s->rtxn); s->rtxn_live = false; }
        size_t grow = GB_MAX(s->mapsize, 4 * (s->fly.len + s->fly_ninfo) + ((size_t)1 << 20));
        size_t nsize = s->mapsize + grow;
        log_debug("store: %s: map full at %zu bytes, growing to %zu", s->path, s->mapsize, nsize);
        int e = mdb_env_set_mapsize(s->env, nsize);
        if (!e) store_read_mapsize(s);
        pthread_mutex_unlock(&s->lock);
        if (e) { mrc = e; what = "grow the map"; break; }
    }
    if (!mrc) return 0;
    size_t n = s->fly.n;
    if (mrc == MDB_BAD_TXN && strstr(what, "another writer")) {
        log_error("store: %s: %s; batch of %zu examples not written", s->path, what, n);
        rc = GB_EMISMATCH;
        return rc;
    }
    long long nfree;
    if (store_disk_full(s, mrc, &nfree)) {
        log_error("store: %s: %s failed: disk full: %s has %lld bytes free (%s); the batch of %zu examples "
                  "was not written, earlier commits are intact", s->path, what, s->path, nfree,
                  mdb_strerror(mrc), n);
        rc = ENOSPC;
    } else if (mrc == EFBIG) {
        log_error("store: %s: %s failed: %s (disk full?); the batch of %zu examples was not written, "
                  "earlier commits are intact", s->path, what, mdb_strerror(mrc), n);
        rc = mrc;
    } else {
        log_error("store: %s: %s failed: %s; the batch of %zu examples was not written", s->path, what,
                  mdb_strerror(mrc), n);
        rc = mrc > 0 ? mrc : GB_EDB;
    }
    return rc;
}

static void *store_committer(void *arg) {
    store_t *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->a_pending && !s->a_quit) pthread_cond_wait(&s->a_cv, &s->lock);
        if (!s->a_pending) break;
        pthread_mutex_unlock(&s->lock);
        int rc = store_commit_fly(s);
        pthread_mutex_lock(&s->lock);
        if (!rc) {
            state_copy(&s->cur, &s->fly_state);
            store_refresh_view(s);
        } else {
            s->a_rc = rc;
        }
        /* Lookups must now see the commit (fly is emptied next). */
        if (s->rtxn_live) { mdb_txn_reset(s->rtxn); s->rtxn_live = false; }
        if (s->mapaddr) madvise(s->mapaddr, s->mapsize, MADV_DONTNEED);
        batch_clear(&s->fly);
        s->a_pending = false;
        pthread_cond_broadcast(&s->a_cv);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Wait until no commit is in flight. Returns 0 or the sticky error of a
 * failed background commit; on error what was staged since is dropped. */
static int store_wait(store_t *s) {
    pthread_mutex_lock(&s->lock);
    while (s->a_pending) pthread_cond_wait(&s->a_cv, &s->lock);
    int rc = s->a_rc;
    if (rc) {
        state_copy(&s->work, &s->cur);
        store_drop_staged(s);
    }
    pthread_mutex_unlock(&s->lock);
    if (!rc && s->bloom_bits && s->bloom_items * 12 > s->bloom_bits * 2) {
        free(s->bloom); /* overfull: rebuilt, bigger, at the next lookup */
        s->bloom = NULL;
        s->bloom_bits = 0;
    }
    return rc;
}

int store_flush(store_t *s) {
    if (s->rdonly) return 0;
    return store_wait(s);
}

int store_commit_async(store_t *s, const char *source_desc, uint64_t optouts, uint64_t duplicates) {
    if (s->rdonly) return EINVAL;
    int rc = store_wait(s);
    if (rc) return rc;
    st_state_t *w = &s->work;
    uint64_t base = w->count;
    w->count += s->stage.n;
    w->optouts += optouts;
    w->dups += duplicates;
    w->time = (int64_t)gb_wall();
    if (source_desc && *source_desc && !strstr(w->source, source_desc)) {
        size_t n = strlen(w->source), m = strlen(source_desc);
        char *ns = xmalloc(n + m + 3);
        memcpy(ns, w->source, n);
        size_t o = n;
        if (n) { memcpy(ns + o, "; ", 2); o += 2; }
        memcpy(ns + o, source_desc, m + 1);
        free(w->source);
        w->source = ns;
    }
    w->has_info = true;

    Gambar__DatasetInfo v;
    Gambar__LicenseCount *lic = xcalloc(w->nlic + 1, sizeof *lic);
    Gambar__LicenseCount **licp = xcalloc(w->nlic + 1, sizeof *licp);
    state_view(w, &v, lic, licp);
    size_t ninfo = gambar__dataset_info__get_packed_size(&v);
    uint8_t *info = xmalloc(ninfo);
    gambar__dataset_info__pack(&v, info);
    free(lic);
    free(licp);

    pthread_mutex_lock(&s->lock);
    st_batch_t t = s->fly; /* empty: its buffers are reused for staging */
    s->fly = s->stage;
    s->stage = t;
    batch_clear(&s->stage);
    s->fly_base = base;
    state_copy(&s->fly_state, w);
    free(s->fly_info);
    s->fly_info = info;
    s->fly_ninfo = ninfo;
    s->a_pending = true;
    if (!s->a_started) {
        if (pthread_create(&s->a_thr, NULL, store_committer, s) != 0) {
            pthread_mutex_unlock(&s->lock);
            log_error("store: %s: cannot start the commit thread", s->path);
            ASSERT(!"pthread_create failed");
        }
        s->a_started = true;
    }
    pthread_cond_broadcast(&s->a_cv);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int store_commit(store_t *s, const char *source_desc, uint64_t optouts, uint64_t duplicates) {
    int rc = store_commit_async(s, source_desc, optouts, duplicates);
    if (rc) return rc;
    return store_wait(s);
}

/* ---------------------------------------------------------------- verify */

int store_verify(store_t *s) {
    uint8_t d[DIGEST_LEN] = {0};
    int rc = s->rdonly ? 0 : store_wait(s);
    if (rc) return rc;
    pthread_mutex_lock(&s->lock);
    for (uint64_t i = 0; i < s->cur.count && !rc; i++) {
        MDB_val v;
        rc = store_lookup(s, i, &v);
        if (rc) break;
        Gambar__Example *ex = gambar__example__unpack(NULL, v.mv_size, v.mv_data);
        if (!ex || ex->index != i || ex->source_sha256.len != DIGEST_LEN || ex->height != s->cur.h ||
            ex->width != s->cur.w || ex->channels != s->cur.c ||
            ex->pixels.len != (size_t)s->cur.h * s->cur.w * s->cur.c) {
            log_error("store: %s: example %" PRIu64 " is malformed", s->path, i);
            rc = GB_ECORRUPT;
        } else {
            chain_step(s, d, ex->source_sha256.data, ex->pixels.data, ex->pixels.len, ex->label);
        }
        if (ex) gambar__example__free_unpacked(ex, NULL);
    }
    if (!rc && memcmp(d, s->cur.digest, DIGEST_LEN) != 0) {
        log_error("store: %s: digest mismatch: the examples do not match the dataset info", s->path);
        rc = GB_ECORRUPT;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}
