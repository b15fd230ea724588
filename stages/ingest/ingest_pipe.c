/* ingest_pipe.c - decode workers for gambar-ingest.
 *
 * Workers claim file indices in order from a shared counter, read the
 * file, hash it (SHA-256 of the bytes), check the opt-out set, decode the
 * PNG (img.h) and resize/crop it to the target shape into the item's slot
 * of a ring. The ring has a fixed number of slots, each with a
 * preallocated target-size pixel buffer, and a worker may only claim index
 * i once item i - ring has been released by the writer. So memory stays
 * bounded by (ring x target image) + (threads x one source file and its
 * decoded pixels), whatever the dataset size, and the writer receives the
 * items strictly in list order, so the dataset's index order never
 * depends on thread timing.
 *
 * SIGINT/SIGTERM are blocked in the workers so the main (writer) thread
 * sees them; the writer waits with a timeout so it notices a stop.
 */
#include "ingest.h"

#include "base.h"
#include "err.h"
#include "log.h"
#include "sig.h"

#include <errno.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *const ing_reason_names[ING_R_COUNT] = {"not_png", "corrupt", "too_large", "over_budget",
                                                   "unreadable"};

#define ING_CHUNK 16 /* indices a worker claims at once */

typedef struct {
    ing_item_t it;
    atomic_bool ready;  /* filled by a worker, not yet released */
} ing_slot_t;

/* Locking: mu guards next_claim, released and the two waiting flags; the
 * slots' ready flags are atomics so the writer can take a finished item
 * without the lock. Workers claim ING_CHUNK indices at a time and wake
 * the writer (only when it sleeps) once per chunk; the writer publishes
 * its progress every ING_CHUNK items (or at once when a worker waits).
 * That keeps lock traffic at a few operations per chunk instead of per
 * image. */
struct ing_pipe {
    ing_pipe_cfg_t cfg;
    ing_slot_t *slots;          /* cfg.ring */
    pthread_t *tids;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t can_claim;   /* released moved on */
    pthread_cond_t item_ready;  /* a chunk was filled */
    size_t next_claim;          /* next index a worker takes */
    size_t released;            /* items [0, released) were released (published) */
    size_t consumed;            /* writer's own count, published every chunk */
    bool writer_waiting, workers_waiting;
    bool stop;
    bool halted;                /* ing_pipe_halt: no new claims; claimed items still come */
};

int ing_check_dims(const uint8_t *data, size_t n, uint32_t max_dim, char *msg, size_t msglen) {
    static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    if (n < 24 || memcmp(data, sig, 8) != 0 || memcmp(data + 12, "IHDR", 4) != 0) return 0;
    uint32_t w = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
    uint32_t h = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
    if (w <= max_dim && h <= max_dim) return 0;
    snprintf(msg, msglen, "image is %u x %u pixels, over --max-dim %u", w, h, max_dim);
    return GB_ETOOBIG;
}

/* A worker's reusable state: file buffer and a SHA-256 context (one-shot
 * EVP_Digest fetches the algorithm and allocates on every call, which is
 * a visible share of the per-image cost). */
typedef struct {
    uint8_t *buf;
    size_t cap;
    EVP_MD *md;
    EVP_MD_CTX *ctx;
    int dirfd;          /* the folder of the last file, or -1 */
    char dir[4096];     /* its path relative to the root */
    size_t dirlen;
} ing_worker_t;

/* Read the file rel (relative to the folder open as dirfd) into *buf
 * (grown as needed, at most max bytes). Returns 0, an errno, or
 * GB_ETOOBIG. No fstat and no final zero-length read: for a regular file
 * a short read is the end (workers block signals, so reads are not cut
 * short by them). A directory fails with EISDIR; O_NONBLOCK keeps a FIFO
 * named *.png from blocking (it reads as empty, so "not a PNG"). */
static int read_file(int dirfd, const char *rel, size_t max, uint8_t **buf, size_t *cap, size_t *len) {
    int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return errno;
    int rc = 0;
    size_t got = 0;
    if (!*cap) {
        *cap = 1 << 16;
        *buf = xmalloc(*cap);
    }
    for (;;) {
        if (got == *cap) {
            if (got > max) { rc = GB_ETOOBIG; break; }
            *cap *= 2;
            *buf = xrealloc(*buf, *cap);
        }
        size_t want = *cap - got;
        ssize_t r = read(fd, *buf + got, want);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = errno == EAGAIN ? EIO : errno;
            break;
        }
        got += (size_t)r;
        if ((size_t)r < want) break;
    }
    if (!rc && got > max) rc = GB_ETOOBIG;
    *len = got;
    close(fd);
    return rc;
}

/* An fd for the folder dir (relative to root), cached per worker: the
 * list is sorted, so consecutive files share their folder, and openat on
 * it saves the kernel walking the whole path for every file. Returns the
 * fd and sets *name to name; when the folder cannot be opened returns
 * AT_FDCWD with *name = the full path (in full), so the open fails with
 * the real reason. */
static int worker_dirfd(ing_worker_t *wk, const char *root, const char *dir, const char *name,
                        const char **oname, char *full, size_t fullcap) {
    size_t dlen = strlen(dir);
    *oname = name;
    if (wk->dirfd >= 0 && wk->dirlen == dlen && memcmp(wk->dir, dir, dlen) == 0) return wk->dirfd;
    if (wk->dirfd >= 0) close(wk->dirfd);
    wk->dirfd = -1;
    if (dlen + 1 <= sizeof wk->dir) {
        memcpy(wk->dir, dir, dlen + 1);
        wk->dirlen = dlen;
        snprintf(full, fullcap, "%s/%s", root, dir);
        wk->dirfd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (wk->dirfd >= 0) return wk->dirfd;
    snprintf(full, fullcap, "%s/%s/%s", root, dir, name);
    *oname = full;
    return AT_FDCWD;
}

static void reject(ing_item_t *it, int reason, const char *fmt, const char *detail) {
    it->kind = ING_REJECT;
    it->reason = reason;
    snprintf(it->msg, sizeof it->msg, fmt, detail);
}

static void sha256_with(ing_worker_t *wk, const void *data, size_t n, uint8_t out[DIGEST_LEN]) {
    unsigned int len = 0;
    ASSERT(EVP_DigestInit_ex2(wk->ctx, wk->md, NULL) == 1 && EVP_DigestUpdate(wk->ctx, data, n) == 1 &&
           EVP_DigestFinal_ex(wk->ctx, out, &len) == 1 && len == DIGEST_LEN);
}

/* Turn file i into its item. */
static void process(const ing_pipe_cfg_t *c, size_t i, ing_item_t *it, ing_worker_t *wk) {
    uint8_t **buf = &wk->buf;
    size_t *cap = &wk->cap;
    char full[8192];
    const char *name;
    int dfd = worker_dirfd(wk, c->root, ing_list_dir(c->list, i), ing_list_name(c->list, i), &name, full,
                           sizeof full);
    it->kind = ING_OK;
    it->msg[0] = 0;
    size_t len = 0;
    int rc = read_file(dfd, name, c->max_file, buf, cap, &len);
    if (rc == GB_ETOOBIG) {
        char d[64];
        snprintf(d, sizeof d, "%zu", len);
        reject(it, ING_R_TOO_LARGE, "file of %s bytes is over the file size limit", d);
        return;
    }
    if (rc) { reject(it, ING_R_UNREADABLE, "cannot read: %s", strerror(rc)); return; }
    sha256_with(wk, *buf, len, it->sha);
    if (c->optout && ing_shaset_has(c->optout, it->sha)) { it->kind = ING_OPTOUT; return; }
    if (ing_check_dims(*buf, len, c->max_dim, it->msg, sizeof it->msg)) {
        it->kind = ING_REJECT;
        it->reason = ING_R_TOO_LARGE;
        return;
    }
    img_limits_t lim;
    img_limits_default(&lim);
    lim.max_width = lim.max_height = c->max_dim;
    lim.max_bytes = c->max_bytes;
    img_t im;
    char why[160];
    rc = img_decode_png(*buf, len, (int)c->c, &lim, &im, why, sizeof why);
    if (rc) {
        int r = rc == GB_EFORMAT ? ING_R_NOT_PNG : rc == GB_ETOOBIG ? ING_R_OVER_BUDGET : ING_R_CORRUPT;
        const char *what = r == ING_R_NOT_PNG ? "not a PNG: %s"
                         : r == ING_R_OVER_BUDGET ? "decoded size over the budget (decompression bomb?): %s"
                                                  : "corrupt PNG: %s";
        reject(it, r, what, why[0] ? why : err_str(rc));
        return;
    }
    ASSERT(im.c == c->c);
    if (im.w == c->w && im.h == c->h) {
        memcpy(it->px, im.px, (size_t)c->w * c->h * c->c);
    } else {
        img_t out;
        img_resize_crop(&im, c->w, c->h, &out);
        memcpy(it->px, out.px, (size_t)c->w * c->h * c->c);
        img_free(&out);
    }
    img_free(&im);
}

static void *worker(void *arg) {
    ing_pipe_t *p = arg;
    ing_worker_t wk = {0};
    wk.dirfd = -1;
    wk.md = EVP_MD_fetch(NULL, "SHA256", NULL);
    wk.ctx = EVP_MD_CTX_new();
    ASSERT(wk.md && wk.ctx);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && !p->halted && p->next_claim < p->cfg.n &&
               p->next_claim + ING_CHUNK > p->released + p->cfg.ring) {
            p->workers_waiting = true;
            pthread_cond_wait(&p->can_claim, &p->mu);
        }
        if (p->stop || p->halted || p->next_claim >= p->cfg.n) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        size_t a = p->next_claim, b = GB_MIN(a + ING_CHUNK, p->cfg.n);
        p->next_claim = b;
        pthread_mutex_unlock(&p->mu);

        for (size_t i = a; i < b; i++) {
            ing_slot_t *s = &p->slots[i % p->cfg.ring];
            process(&p->cfg, i, &s->it, &wk);
            atomic_store_explicit(&s->ready, true, memory_order_release);
        }
        pthread_mutex_lock(&p->mu);
        if (p->writer_waiting) pthread_cond_signal(&p->item_ready);
        pthread_mutex_unlock(&p->mu);
    }
    free(wk.buf);
    if (wk.dirfd >= 0) close(wk.dirfd);
    EVP_MD_CTX_free(wk.ctx);
    EVP_MD_free(wk.md);
    return NULL;
}

ing_pipe_t *ing_pipe_start(const ing_pipe_cfg_t *cfg) {
    ing_pipe_t *p = xcalloc(1, sizeof *p);
    p->cfg = *cfg;
    if (p->cfg.threads < 1) p->cfg.threads = 1;
    size_t min_ring = (size_t)p->cfg.threads * ING_CHUNK * 2;
    if (p->cfg.ring < min_ring) p->cfg.ring = min_ring;
    p->slots = xcalloc(p->cfg.ring, sizeof *p->slots);
    size_t npx = (size_t)cfg->w * cfg->h * cfg->c;
    for (size_t i = 0; i < p->cfg.ring; i++) {
        p->slots[i].it.px = xmalloc(npx);
        atomic_init(&p->slots[i].ready, false);
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->can_claim, NULL);
    pthread_cond_init(&p->item_ready, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    p->tids = xcalloc((size_t)p->cfg.threads, sizeof *p->tids);
    for (int t = 0; t < p->cfg.threads; t++) {
        if (pthread_create(&p->tids[t], NULL, worker, p) != 0) {
            log_warn("could not start decode thread %d; continuing with %d", t + 1, t);
            break;
        }
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ASSERT(p->nthreads > 0);
    return p;
}

const ing_item_t *ing_pipe_next(ing_pipe_t *p, size_t i) {
    ASSERT(i == p->consumed && i < p->cfg.n);
    ing_slot_t *s = &p->slots[i % p->cfg.ring];
    if (atomic_load_explicit(&s->ready, memory_order_acquire)) return &s->it;
    pthread_mutex_lock(&p->mu);
    /* Publish progress first: the workers may be waiting for room. */
    p->released = p->consumed;
    if (p->workers_waiting) {
        p->workers_waiting = false;
        pthread_cond_broadcast(&p->can_claim);
    }
    p->writer_waiting = true;
    while (!atomic_load_explicit(&s->ready, memory_order_acquire)) {
        if (sig_stop_requested() && !p->halted) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&p->item_ready, &p->mu, &ts);
    }
    p->writer_waiting = false;
    pthread_mutex_unlock(&p->mu);
    return atomic_load_explicit(&s->ready, memory_order_acquire) ? &s->it : NULL;
}

void ing_pipe_release(ing_pipe_t *p, size_t i) {
    ing_slot_t *s = &p->slots[i % p->cfg.ring];
    ASSERT(i == p->consumed && atomic_load_explicit(&s->ready, memory_order_relaxed));
    atomic_store_explicit(&s->ready, false, memory_order_relaxed);
    p->consumed++;
    if (p->consumed % ING_CHUNK == 0 || p->consumed == p->cfg.n) {
        pthread_mutex_lock(&p->mu);
        p->released = p->consumed;
        if (p->workers_waiting) {
            p->workers_waiting = false;
            pthread_cond_broadcast(&p->can_claim);
        }
        pthread_mutex_unlock(&p->mu);
    }
}

size_t ing_pipe_halt(ing_pipe_t *p) {
    pthread_mutex_lock(&p->mu);
    p->halted = true;
    pthread_cond_broadcast(&p->can_claim);
    size_t end = p->next_claim;
    pthread_mutex_unlock(&p->mu);
    return end;
}

void ing_pipe_stop(ing_pipe_t **pp) {
    ing_pipe_t *p = *pp;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->can_claim);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->nthreads; t++) pthread_join(p->tids[t], NULL);
    for (size_t i = 0; i < p->cfg.ring; i++) free(p->slots[i].it.px);
    free(p->slots);
    free(p->tids);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->can_claim);
    pthread_cond_destroy(&p->item_ready);
    free(p);
    *pp = NULL;
}
