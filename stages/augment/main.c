/* gambar-augment - stream shuffled, augmented batches from a dataset.
 *
 * Reads a dataset (LMDB, read-only, zero-copy pixels) and PUSHes Batch
 * messages, then one EndOfStream. Every batch is a pure function of
 * (dataset digest, seed, epoch, batch index) as common/aug.h defines, so a
 * run can be resumed with --start-batch and split across producers with
 * --shard without changing what any batch holds.
 *
 * Threads: W builder threads (--threads, default 1) fill a ring of packed
 * messages; builder w makes this producer's batches k = w, w+W, ...; the
 * main thread sends them strictly in k order, so the output order never
 * depends on timing. A builder waits while its ring slot still holds an
 * unsent batch, so memory is bounded by the ring plus ZeroMQ's send queue
 * (--hwm messages), and a slow consumer slows the builders (blocking send,
 * nothing dropped). Builders touch only the memory map (a pixel-pointer
 * table built once at start-up), never LMDB itself.
 *
 * Ending: after the last batch, or on SIGINT/SIGTERM, the main thread
 * sends EndOfStream ("done" / "interrupted") and closes with a bounded
 * linger so queued messages reach a live consumer; a socket monitor
 * counts connected peers so that a vanished consumer costs no waiting. */
#include "aug.h"
#include "base.h"
#include "cli.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "sig.h"
#include "store.h"
#include "stream.pb-c.h"
#include "wire.h"
#include "wire_sec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <zmq.h>

#define AUG_MON_ENDPOINT "inproc://gambar-augment-monitor"
#define AUG_STOP_LINGER_MS 5000 /* cap on the linger after an interrupt */

/* One packed Batch message waiting to be sent. */
typedef struct {
    uint64_t k;     /* producer-local batch number it holds */
    int ready;      /* 1: buf holds batch k, not yet sent */
    uint8_t *buf;   /* packed gambar.Batch */
    size_t len;     /* bytes used */
    size_t cap;     /* bytes allocated */
} slot_t;

typedef struct {
    /* dataset (read-only after start-up) */
    const uint8_t **px;   /* count pixel pointers into the map, HWC */
    int32_t *labels;      /* count labels */
    uint64_t count;
    int h, w, c;
    uint32_t num_classes;
    /* captions, when the dataset has any (cap_first == NULL: none):
     * example i's are cap_text[cap_first[i] .. cap_first[i+1]) */
    uint64_t *cap_first;  /* count + 1 */
    char **cap_text;      /* pointers into cap_arena */
    char *cap_arena;
    size_t cap_max;       /* longest caption, bytes (sizes the Batch) */
    uint8_t digest[DIGEST_LEN];
    uint64_t d64;
    /* stream parameters */
    uint64_t seed;
    aug_list_t ops;
    aug_plan_t plan;
    uint64_t total;       /* batches this producer sends (UINT64_MAX: forever) */
    uint32_t batch;       /* images per batch */
    int f32;              /* 1: DTYPE_F32, 0: DTYPE_U8 */
    /* ring shared by builders and sender, guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv_ready; /* a slot became ready */
    pthread_cond_t cv_free;  /* the sender released a slot */
    slot_t *slots;
    int nslots;
    uint64_t sent;        /* batches sent (= k of the next to send) */
    int stop;             /* builders must return */
    int nworkers;
} aug_ctx_t;

typedef struct {
    aug_ctx_t *ctx;
    int id;
} worker_arg_t;

/* ------------------------------------------------------------- building */

/* Per-builder working memory, allocated once. */
typedef struct {
    uint64_t *perm;       /* count: permutation of perm_epoch */
    uint64_t perm_epoch;  /* UINT64_MAX: none yet */
    float *x, *scratch;   /* c*h*w each */
    uint8_t *data;        /* batch*c*h*w*elem bytes */
    int32_t *labels;      /* batch */
    uint64_t *indices;    /* batch */
    char **captions;      /* batch, when the dataset has captions */
} builder_t;

/* Build the producer's k-th batch and pack it into slot (growing its
 * buffer if this message is larger than any before). */
static void build_batch(const aug_ctx_t *ctx, builder_t *b, uint64_t k, slot_t *slot) {
    uint64_t g = aug_plan_global(&ctx->plan, k);
    uint64_t bpe = ctx->plan.bpe;
    uint64_t epoch = g / bpe, bi = g % bpe;
    if (b->perm_epoch != epoch) {
        aug_epoch_perm(ctx->seed, ctx->d64, epoch, b->perm, ctx->count);
        b->perm_epoch = epoch;
    }
    rng_t r;
    aug_batch_rng(&r, ctx->seed, ctx->d64, epoch, bi);
    size_t chw = (size_t)ctx->c * ctx->h * ctx->w;
    for (uint32_t i = 0; i < ctx->batch; i++) {
        uint64_t ix = b->perm[bi * ctx->batch + i];
        aug_image(&ctx->ops, &r, ctx->px[ix], ctx->h, ctx->w, ctx->c, b->x, b->scratch);
        if (ctx->f32) aug_to_f32(b->x, chw, (float *)b->data + i * chw);
        else aug_to_u8(b->x, chw, b->data + i * chw);
        b->labels[i] = ctx->labels[ix];
        b->indices[i] = ix;
        if (ctx->cap_first) {
            uint64_t first = ctx->cap_first[ix], n = ctx->cap_first[ix + 1] - first;
            b->captions[i] = n ? ctx->cap_text[first + aug_caption_pick(ctx->seed, ctx->d64, epoch, ix, (uint32_t)n)]
                               : (char *)"";
        }
    }
    Gambar__Batch m = GAMBAR__BATCH__INIT;
    m.seq = g;
    m.epoch = (uint32_t)epoch;
    m.n = ctx->batch;
    m.c = (uint32_t)ctx->c;
    m.h = (uint32_t)ctx->h;
    m.w = (uint32_t)ctx->w;
    m.dtype = ctx->f32 ? GAMBAR__DTYPE__DTYPE_F32 : GAMBAR__DTYPE__DTYPE_U8;
    m.data.data = b->data;
    m.data.len = chw * ctx->batch * (ctx->f32 ? 4 : 1);
    m.n_labels = ctx->batch;
    m.labels = b->labels;
    m.n_indices = ctx->batch;
    m.indices = b->indices;
    m.dataset_digest.data = (uint8_t *)ctx->digest;
    m.dataset_digest.len = DIGEST_LEN;
    m.seed = ctx->seed;
    m.batches_per_epoch = (uint32_t)bpe;
    m.num_classes = ctx->num_classes;
    if (ctx->cap_first) {
        m.n_captions = ctx->batch;
        m.captions = b->captions;
    }
    size_t need = gambar__batch__get_packed_size(&m);
    if (need > slot->cap) {
        /* Sizes vary only by a few varint bytes: grow with headroom so
         * this happens a handful of times per run, not per batch. */
        slot->cap = need + 256;
        slot->buf = xrealloc(slot->buf, slot->cap);
    }
    slot->len = gambar__batch__pack(&m, slot->buf);
    ASSERT(slot->len == need);
}

static void *worker_main(void *arg) {
    worker_arg_t *wa = arg;
    aug_ctx_t *ctx = wa->ctx;
    size_t chw = (size_t)ctx->c * ctx->h * ctx->w;
    builder_t b;
    b.perm = xmalloc(ctx->count * sizeof *b.perm);
    b.perm_epoch = UINT64_MAX;
    b.x = xmalloc(chw * sizeof *b.x);
    b.scratch = xmalloc(chw * sizeof *b.scratch);
    b.data = gb_xmalloc_aligned(chw * ctx->batch * (ctx->f32 ? 4 : 1));
    b.labels = xmalloc(ctx->batch * sizeof *b.labels);
    b.indices = xmalloc(ctx->batch * sizeof *b.indices);
    b.captions = xcalloc(ctx->batch, sizeof *b.captions);
    for (uint64_t k = (uint64_t)wa->id; k < ctx->total; k += (uint64_t)ctx->nworkers) {
        slot_t *slot = &ctx->slots[k % (uint64_t)ctx->nslots];
        pthread_mutex_lock(&ctx->mu);
        while (!ctx->stop && k >= ctx->sent + (uint64_t)ctx->nslots) pthread_cond_wait(&ctx->cv_free, &ctx->mu);
        int stop = ctx->stop;
        pthread_mutex_unlock(&ctx->mu);
        if (stop) break;
        /* The slot's previous batch (k - nslots) is sent: it is ours. */
        build_batch(ctx, &b, k, slot);
        pthread_mutex_lock(&ctx->mu);
        slot->k = k;
        slot->ready = 1;
        pthread_cond_broadcast(&ctx->cv_ready);
        pthread_mutex_unlock(&ctx->mu);
    }
    free(b.perm);
    free(b.x);
    free(b.scratch);
    free(b.data);
    free(b.labels);
    free(b.indices);
    free(b.captions);
    return NULL;
}

/* -------------------------------------------------------------- sending */

/* Connected consumers, from the socket monitor. A bound socket counts
 * ACCEPTED/DISCONNECTED from the start. A connecting socket has one
 * connection at most, and its first CONNECTED may come before the monitor
 * is attached, so its count is unknown until the first event and then
 * simply follows the last one (CONNECTED 1, DISCONNECTED 0). */
typedef struct {
    void *mon;     /* PAIR socket receiving monitor events, or NULL */
    int connect;   /* 1: the socket connects, 0: it binds */
    int known;     /* peers is meaningful */
    int peers;     /* connected consumers */
} peers_t;

/* True when the monitor says no consumer is connected. */
static int peers_none(const peers_t *p) { return p->mon && p->known && p->peers == 0; }

static void peers_update(peers_t *p) {
    if (!p->mon) return;
    for (;;) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, p->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            return;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&f) >= 2) memcpy(&ev, zmq_msg_data(&f), 2);
        int more = zmq_msg_more(&f);
        zmq_msg_close(&f);
        while (more) { /* the address frame */
            zmq_msg_init(&f);
            if (zmq_msg_recv(&f, p->mon, 0) < 0) more = 0;
            else more = zmq_msg_more(&f);
            zmq_msg_close(&f);
        }
        if (p->connect) {
            if (ev == ZMQ_EVENT_CONNECTED) p->peers = 1, p->known = 1;
            else if (ev == ZMQ_EVENT_DISCONNECTED) p->peers = 0, p->known = 1;
        } else if (ev == ZMQ_EVENT_ACCEPTED) {
            p->peers++;
        } else if (ev == ZMQ_EVENT_DISCONNECTED && p->peers > 0) {
            p->peers--;
        }
    }
}

/* Send [type][buf] without ever blocking for long: wait for room in
 * 100 ms polls. final: this is the EndOfStream, so give up at once
 * (ENOTCONN) when the monitor knows no consumer is connected, and do not
 * stop on a signal; otherwise give up with GB_EINTR on a stop request.
 * Gives up with EAGAIN once gb_now() passes deadline (< 0: no deadline).
 * Returns 0 or an errno from ZeroMQ. */
static int send_polled(void *sock, peers_t *pe, const char *type, const void *buf, size_t n, double deadline,
                       int final) {
    for (;;) {
        peers_update(pe);
        if (!final && sig_stop_requested()) return GB_EINTR;
        if (final && peers_none(pe)) return ENOTCONN;
        int rc = wire_send_raw(sock, type, buf, n, ZMQ_DONTWAIT);
        if (rc == 0) return 0;
        if (rc != EAGAIN && rc != GB_EINTR) return rc;
        if (deadline >= 0 && gb_now() >= deadline) return EAGAIN;
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLOUT, 0};
        if (zmq_poll(&it, 1, 100) < 0 && zmq_errno() != EINTR) return zmq_errno();
    }
}

/* Wait for batch k to be ready; returns its slot, or NULL on a stop
 * request. */
static slot_t *wait_ready(aug_ctx_t *ctx, uint64_t k) {
    slot_t *slot = &ctx->slots[k % (uint64_t)ctx->nslots];
    pthread_mutex_lock(&ctx->mu);
    while (!(slot->ready && slot->k == k) && !sig_stop_requested()) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&ctx->cv_ready, &ctx->mu, &ts);
    }
    int ok = slot->ready && slot->k == k;
    pthread_mutex_unlock(&ctx->mu);
    return ok ? slot : NULL;
}

static void release_slot(aug_ctx_t *ctx, slot_t *slot) {
    pthread_mutex_lock(&ctx->mu);
    slot->ready = 0;
    ctx->sent++;
    pthread_cond_broadcast(&ctx->cv_free);
    pthread_mutex_unlock(&ctx->mu);
}

/* Send EndOfStream (reason "done" for exit_code 0, else "interrupted")
 * and set the socket's linger: a live consumer gets every queued message
 * within linger_ms (at most AUG_STOP_LINGER_MS after an interrupt); a
 * vanished one costs no waiting. Returns the exit code to use: exit_code,
 * or GB_EXIT_PEER when a finished stream's EndOfStream could not be sent,
 * or GB_EXIT_INTERRUPTED when a signal came while waiting. */
static int send_end(void *sock, peers_t *pe, const char *out, uint64_t shard_i, uint64_t shard_n, uint64_t nsent,
                    int exit_code, long long linger_ms) {
    char producer[64];
    snprintf(producer, sizeof producer, "gambar-augment[%llu/%llu]", (unsigned long long)shard_i,
             (unsigned long long)shard_n);
    Gambar__EndOfStream eos = GAMBAR__END_OF_STREAM__INIT;
    eos.producer = producer;
    eos.batches_sent = nsent;
    eos.reason = exit_code == GB_EXIT_OK ? "done" : "interrupted";
    uint8_t ebuf[256];
    size_t elen = gambar__end_of_stream__pack(&eos, ebuf);
    ASSERT(elen < sizeof ebuf);
    long long lg = exit_code == GB_EXIT_OK ? linger_ms : GB_MIN(linger_ms, AUG_STOP_LINGER_MS);
    int erc;
    if (nsent == 0 && exit_code == GB_EXIT_OK) {
        /* An empty stream (--start-batch at the end): EndOfStream is its
         * whole content, so wait for a consumer as for a batch. */
        erc = send_polled(sock, pe, "gambar.EndOfStream", ebuf, elen, -1, 0);
        if (erc == GB_EINTR) exit_code = GB_EXIT_INTERRUPTED;
    } else {
        erc = send_polled(sock, pe, "gambar.EndOfStream", ebuf, elen, gb_now() + (double)lg / 1000.0, 1);
    }
    if (erc == GB_EINTR) {
        lg = 0;
    } else if (erc != 0) {
        if (erc == ENOTCONN) log_warn("EndOfStream not sent: no consumer is connected to %s", out);
        else log_warn("EndOfStream not delivered to %s within %lld ms (consumer stalled)", out, lg);
        if (exit_code == GB_EXIT_OK) exit_code = GB_EXIT_PEER;
        lg = 0;
    }
    peers_update(pe);
    if (peers_none(pe)) lg = 0;
    int lgi = (int)lg;
    zmq_setsockopt(sock, ZMQ_LINGER, &lgi, sizeof lgi);
    return exit_code;
}

/* --------------------------------------------------------------- set-up */

static int parse_shard(const char *s, uint64_t *i, uint64_t *n) {
    char *end = NULL;
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    unsigned long long a = strtoull(s, &end, 10);
    if (errno || end == s || *end != '/' || end[1] == '-' || end[1] == '+') return -1;
    const char *t = end + 1;
    unsigned long long b = strtoull(t, &end, 10);
    if (errno || end == t || *end || b < 1 || b > 65536 || a >= b) return -1;
    *i = a;
    *n = b;
    return 0;
}

/* Copy every example's captions into ctx (one arena; total is
 * DatasetInfo.captions_total, checked against what is found). Returns 0
 * or an rc (logged). */
static int load_captions(const char *path, store_t *st, aug_ctx_t *ctx, uint64_t total) {
    ctx->cap_first = xmalloc((ctx->count + 1) * sizeof *ctx->cap_first);
    ctx->cap_text = xmalloc(total * sizeof *ctx->cap_text);
    size_t len = 0, cap = 1 << 16;
    char *arena = xmalloc(cap);
    uint64_t k = 0;
    size_t *offs = xmalloc(total * sizeof *offs);
    int rc = 0;
    for (uint64_t i = 0; i < ctx->count && !rc; i++) {
        ctx->cap_first[i] = k;
        Gambar__Example *ex = NULL;
        rc = store_get(st, i, &ex);
        if (rc) {
            log_error("dataset %s: example %llu: %s", path, (unsigned long long)i, err_str(rc));
            break;
        }
        if (ex->n_captions > total - k) {
            log_error("dataset %s: more captions than DatasetInfo.captions_total (%llu) says", path,
                      (unsigned long long)total);
            rc = GB_ECORRUPT;
        }
        for (size_t j = 0; !rc && j < ex->n_captions; j++) {
            size_t n = strlen(ex->captions[j]) + 1;
            if (n - 1 > ctx->cap_max) ctx->cap_max = n - 1;
            if (len + n > cap) {
                while (len + n > cap) cap *= 2;
                arena = xrealloc(arena, cap);
            }
            memcpy(arena + len, ex->captions[j], n);
            offs[k++] = len;
            len += n;
        }
        gambar__example__free_unpacked(ex, NULL);
    }
    ctx->cap_first[ctx->count] = k;
    if (!rc && k != total) {
        log_error("dataset %s: %llu captions found, DatasetInfo.captions_total says %llu", path,
                  (unsigned long long)k, (unsigned long long)total);
        rc = GB_ECORRUPT;
    }
    for (uint64_t j = 0; j < k; j++) ctx->cap_text[j] = arena + offs[j];
    free(offs);
    ctx->cap_arena = arena;
    return rc == GB_ENOTFOUND ? GB_ECORRUPT : rc;
}

/* Open the dataset and build the pixel-pointer table. Returns 0 or an rc
 * (logged). */
static int load_dataset(const char *path, store_t **st, aug_ctx_t *ctx) {
    int rc = store_open(path, STORE_RDONLY, st);
    if (rc != 0) {
        log_error("cannot open dataset %s: %s", path, err_str(rc));
        return rc;
    }
    const Gambar__DatasetInfo *info = store_info(*st);
    if (!info || info->count == 0) {
        log_error("dataset %s is empty", path);
        return GB_EFORMAT;
    }
    if (info->height == 0 || info->width == 0 || info->height > 65536 || info->width > 65536 ||
        (info->channels != 1 && info->channels != 3)) {
        log_error("dataset %s: unsupported image shape %ux%ux%u", path, info->height, info->width, info->channels);
        return GB_EFORMAT;
    }
    if (info->digest.len != DIGEST_LEN) {
        log_error("dataset %s: DatasetInfo.digest has %zu bytes, want %d", path, info->digest.len, DIGEST_LEN);
        return GB_ECORRUPT;
    }
    ctx->count = info->count;
    ctx->h = (int)info->height;
    ctx->w = (int)info->width;
    ctx->c = (int)info->channels;
    ctx->num_classes = (uint32_t)info->n_class_names;
    memcpy(ctx->digest, info->digest.data, DIGEST_LEN);
    ctx->d64 = digest_u64(ctx->digest);
    size_t npx_want = (size_t)ctx->h * ctx->w * ctx->c;
    ctx->px = xmalloc(ctx->count * sizeof *ctx->px);
    ctx->labels = xmalloc(ctx->count * sizeof *ctx->labels);
    for (uint64_t i = 0; i < ctx->count; i++) {
        size_t npx = 0;
        rc = store_get_pixels(*st, i, &ctx->px[i], &npx, &ctx->labels[i]);
        if (rc != 0) {
            log_error("dataset %s: example %llu: %s", path, (unsigned long long)i, err_str(rc));
            return rc == GB_ENOTFOUND ? GB_ECORRUPT : rc;
        }
        if (npx != npx_want) {
            log_error("dataset %s: example %llu has %zu pixel bytes, want %zu", path, (unsigned long long)i, npx,
                      npx_want);
            return GB_ECORRUPT;
        }
        int32_t l = ctx->labels[i];
        if (l < -1 || (l >= 0 && (uint32_t)l >= ctx->num_classes)) {
            log_error("dataset %s: example %llu has label %d outside -1..%u", path, (unsigned long long)i, l,
                      ctx->num_classes ? ctx->num_classes - 1 : 0);
            return GB_ECORRUPT;
        }
        if ((i & 4095) == 0 && sig_stop_requested()) return GB_EINTR;
    }
    if (info->captions_total) return load_captions(path, *st, ctx, info->captions_total);
    return 0;
}

static void block_stop_signals(sigset_t *old) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

/* ---------------------------------------------------- the run, by steps */

/* The command line, checked. */
typedef struct {
    const char *db, *out, *ops_spec, *shard, *dtype;
    long long batch, epochs, hwm, threads, linger_ms;
    uint64_t seed, start;
    uint64_t shard_i, shard_n;    /* --shard I/N */
    bool forever;
    int f32;                      /* --dtype f32 */
} aug_opts_t;

/* Usage errors found after parsing (against the dataset) name the
 * program only, as cli_usage_error does. */
static const cli_spec_t aug_prog = {.prog = "gambar-augment"};

/* Parse and check the options, and --ops into ctx->ops; exits with
 * status 2 on a usage error. */
static void parse_options(int argc, char **argv, aug_opts_t *o, aug_ctx_t *ctx) {
    *o = (aug_opts_t){.ops_spec = "flip,translate", .shard = "0/1", .dtype = "f32", .epochs = 1, .hwm = 8,
                      .threads = 1, .linger_ms = 30000};
    bool epochs_seen = false;
    const cli_opt_t opts[] = {
        {"db", 0, CLI_STR, &o->db, "PATH", "dataset folder (LMDB, from gambar-ingest)", NULL},
        {"out", 'o', CLI_STR, &o->out, "ENDPOINT", "where to PUSH batches ('@' bind, '>' connect; default bind)",
         NULL},
        {"batch", 'b', CLI_INT, &o->batch, "N", "images per batch (1..65536)", NULL},
        {"ops", 0, CLI_STR, &o->ops_spec, "LIST",
         "augmentations in order: flip[:P] translate[:PX] crop[:PAD] jitter[:B,C] cutout[:SIZE] none "
         "(default flip,translate)", NULL},
        {"epochs", 'e', CLI_INT, &o->epochs, "N", "epochs in the whole stream (default 1)", &epochs_seen},
        {"forever", 0, CLI_FLAG, &o->forever, NULL, "never stop (until SIGINT/SIGTERM)", NULL},
        {"seed", 's', CLI_U64, &o->seed, "S", "seed of shuffles and augmentations (default 0)", NULL},
        {"shard", 0, CLI_STR, &o->shard, "I/N",
         "send only the batches b of each epoch with b % N == I (default 0/1)", NULL},
        {"start-batch", 0, CLI_U64, &o->start, "K", "start at global batch index K (resume)", NULL},
        {"dtype", 0, CLI_STR, &o->dtype, "u8|f32", "pixel type on the wire (default f32, scaled to [-1,1])", NULL},
        {"hwm", 0, CLI_INT, &o->hwm, "N", "send high-water mark in messages (default 8)", NULL},
        {"threads", 'j', CLI_INT, &o->threads, "N", "batch-building threads (1..16, default 1)", NULL},
        {"linger", 0, CLI_INT, &o->linger_ms, "MS",
         "how long to wait at the end for a live consumer to take queued messages (default 30000)", NULL},
        WIRE_SEC_CLI_OPTS,
    };
    const cli_spec_t spec = {
        .prog = "gambar-augment",
        .usage = "--db PATH --out ENDPOINT --batch N [options]",
        .summary = "Stream shuffled, augmented batches (proto gambar.Batch) from a dataset over ZeroMQ PUSH,\n"
                   "then one gambar.EndOfStream. Each batch is a pure function of (dataset digest, seed,\n"
                   "epoch, batch index); a partial last batch of an epoch is dropped.",
        .opts = opts,
        .nopts = (int)ARRAY_LEN(opts),
        .epilog = "Example: gambar-augment --db data/fashion --out ipc:///tmp/batches --batch 64 --epochs 5",
    };
    int pos = cli_parse(&spec, argc, argv);
    if (pos < argc) cli_usage_error(&spec, "unexpected argument '%s'", argv[pos]);
    if (!o->db) cli_usage_error(&spec, "--db PATH is required");
    if (!o->out) cli_usage_error(&spec, "--out ENDPOINT is required");
    wire_sec_init(&spec, (const char *const[]){o->out}, 1);
    if (o->batch < 1 || o->batch > 65536) cli_usage_error(&spec, "--batch must be 1..65536 (got %lld)", o->batch);
    if (o->forever && epochs_seen) cli_usage_error(&spec, "--epochs and --forever exclude each other");
    if (!o->forever && (o->epochs < 1 || o->epochs > UINT32_MAX))
        cli_usage_error(&spec, "--epochs must be 1..%u (got %lld)", UINT32_MAX, o->epochs);
    if (o->hwm < 1 || o->hwm > 100000) cli_usage_error(&spec, "--hwm must be 1..100000 (got %lld)", o->hwm);
    if (o->threads < 1 || o->threads > 16)
        cli_usage_error(&spec, "--threads must be 1..16 (got %lld)", o->threads);
    if (o->linger_ms < 0 || o->linger_ms > 3600000) cli_usage_error(&spec, "--linger must be 0..3600000 ms");
    if (strcmp(o->dtype, "f32") == 0) o->f32 = 1;
    else if (strcmp(o->dtype, "u8") == 0) o->f32 = 0;
    else cli_usage_error(&spec, "--dtype must be u8 or f32 (got '%s')", o->dtype);
    if (parse_shard(o->shard, &o->shard_i, &o->shard_n) != 0)
        cli_usage_error(&spec, "--shard '%s' is not I/N with 0 <= I < N <= 65536", o->shard);
    char why[256];
    if (aug_parse(o->ops_spec, &ctx->ops, why, sizeof why) != 0) cli_usage_error(&spec, "--ops: %s", why);
}

/* Check the options against the loaded dataset and fill in the stream
 * plan (ctx->batch, plan, total, ...); exits with status 2 on a usage
 * error. Logs the plan. */
static void plan_stream(const aug_opts_t *o, aug_ctx_t *ctx) {
    char why[256];
    if (aug_check_shape(&ctx->ops, ctx->h, ctx->w, why, sizeof why) != 0)
        cli_usage_error(&aug_prog, "--ops: %s", why);
    if ((uint64_t)o->batch > ctx->count)
        cli_usage_error(&aug_prog, "--batch %lld is larger than the dataset (%llu examples)", o->batch,
                        (unsigned long long)ctx->count);
    size_t elem = o->f32 ? 4 : 1;
    /* pixels, plus per image the longest caption and its field header */
    uint64_t per_image = (uint64_t)ctx->c * ctx->h * ctx->w * elem + (ctx->cap_first ? ctx->cap_max + 3 : 0);
    if ((uint64_t)o->batch * per_image > WIRE_MAX_BATCH_BYTES - 65536)
        cli_usage_error(&aug_prog, "--batch %lld: a batch would exceed the %zu MiB message limit", o->batch,
                        WIRE_MAX_BATCH_BYTES >> 20);
    ctx->batch = (uint32_t)o->batch;
    ctx->f32 = o->f32;
    ctx->seed = o->seed;
    ctx->plan.bpe = ctx->count / (uint64_t)o->batch;
    if (ctx->plan.bpe > UINT32_MAX)
        cli_usage_error(&aug_prog, "--batch %lld gives too many batches per epoch", o->batch);
    ctx->plan.shard_i = o->shard_i;
    ctx->plan.shard_n = o->shard_n;
    ctx->plan.start = o->start;
    ctx->plan.epochs = o->forever ? 0 : (uint64_t)o->epochs;
    if (o->shard_i >= ctx->plan.bpe)
        cli_usage_error(&aug_prog, "--shard %s gets no batches: an epoch has only %llu", o->shard,
                        (unsigned long long)ctx->plan.bpe);
    if (!o->forever && (uint64_t)o->epochs > UINT64_MAX / ctx->plan.bpe)
        cli_usage_error(&aug_prog, "--epochs %lld is too large", o->epochs);
    ctx->total = aug_plan_total(&ctx->plan);
    char opsbuf[512];
    aug_format(&ctx->ops, opsbuf, sizeof opsbuf);
    char dhex[DIGEST_HEX_LEN + 1];
    digest_hex(ctx->digest, DIGEST_LEN, dhex);
    log_info("dataset %s: %llu examples %dx%dx%d, digest %.16s; batch %u, %llu batches/epoch (drop_last), "
             "shard %llu/%llu, seed %llu, ops %s, dtype %s; sending %s%llu batches from global index %llu",
             o->db, (unsigned long long)ctx->count, ctx->h, ctx->w, ctx->c, dhex, ctx->batch,
             (unsigned long long)ctx->plan.bpe, (unsigned long long)o->shard_i, (unsigned long long)o->shard_n,
             (unsigned long long)o->seed, opsbuf, o->dtype, o->forever ? "forever, " : "",
             o->forever ? 0ULL : (unsigned long long)ctx->total, (unsigned long long)o->start);
}

/* Everything a run holds, released by run_teardown. */
typedef struct {
    aug_ctx_t ctx;
    store_t *st;
    void *zctx, *sock;
    peers_t pe;
    pthread_t tid[16];
    worker_arg_t wargs[16];
    int nstarted, mu_init;
    uint64_t nsent;       /* batches sent */
} aug_run_t;

/* Create the ZeroMQ context and the ring, and start the builders.
 * ZeroMQ's I/O threads and the builders must not take SIGINT/SIGTERM:
 * the main thread's polls notice the flag within 100 ms. Returns 0 or an
 * rc (logged). */
static int start_builders(aug_run_t *r, int threads) {
    aug_ctx_t *ctx = &r->ctx;
    sigset_t oldmask;
    block_stop_signals(&oldmask);
    r->zctx = zmq_ctx_new();
    ASSERT(r->zctx);
    ctx->nworkers = threads;
    ctx->nslots = 2 * threads + 2;
    ctx->slots = xcalloc((size_t)ctx->nslots, sizeof *ctx->slots);
    pthread_mutex_init(&ctx->mu, NULL);
    pthread_cond_init(&ctx->cv_ready, NULL);
    pthread_cond_init(&ctx->cv_free, NULL);
    r->mu_init = 1;
    int rc = 0;
    for (int i = 0; i < ctx->nworkers; i++) {
        r->wargs[i].ctx = ctx;
        r->wargs[i].id = i;
        if (pthread_create(&r->tid[i], NULL, worker_main, &r->wargs[i]) != 0) {
            log_error("cannot start a builder thread");
            rc = EAGAIN;
            break;
        }
        r->nstarted++;
    }
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    return rc;
}

/* Open the PUSH socket on out and its connection monitor. Returns 0 or
 * an rc (logged by wire_open). */
static int open_output(aug_run_t *r, const char *out, int hwm) {
    int rc = wire_open(r->zctx, ZMQ_PUSH, out, 1, WIRE_MAX_BATCH_BYTES, hwm, &r->sock);
    if (rc != 0) return rc;
    /* inproc has no connection events: its peers stay unknown. */
    const char *ep = out[0] == '@' || out[0] == '>' ? out + 1 : out;
    r->pe.connect = out[0] == '>';
    r->pe.known = !r->pe.connect;
    if (strncmp(ep, "inproc://", 9) != 0 &&
        zmq_socket_monitor(r->sock, AUG_MON_ENDPOINT,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) == 0) {
        r->pe.mon = zmq_socket(r->zctx, ZMQ_PAIR);
        if (r->pe.mon && zmq_connect(r->pe.mon, AUG_MON_ENDPOINT) != 0) {
            zmq_close(r->pe.mon);
            r->pe.mon = NULL;
        }
    }
    return 0;
}

/* Send the batches in k order until the last or a stop request, and log
 * how it went. Returns 0 (*exit_code set to GB_EXIT_INTERRUPTED after a
 * signal) or a send error (logged). */
static int send_batches(aug_run_t *r, const char *out, int *exit_code) {
    double t0 = gb_now();
    for (uint64_t k = 0; k < r->ctx.total; k++) {
        slot_t *slot = wait_ready(&r->ctx, k);
        if (!slot) break;
        int rc = send_polled(r->sock, &r->pe, "gambar.Batch", slot->buf, slot->len, -1, 0);
        if (rc == GB_EINTR) break;
        if (rc != 0) {
            log_error("sending batch to %s: %s", out, zmq_strerror(rc));
            return rc;
        }
        release_slot(&r->ctx, slot);
        r->nsent++;
    }
    double dt = gb_now() - t0;
    if (sig_stop_requested()) {
        *exit_code = GB_EXIT_INTERRUPTED;
        log_info("interrupted by signal %d after %llu batches", sig_stop_requested(), (unsigned long long)r->nsent);
    } else {
        log_info("sent %llu batches in %.2f s (%.0f batches/s)", (unsigned long long)r->nsent, dt,
                 dt > 0 ? (double)r->nsent / dt : 0.0);
    }
    return 0;
}

/* Stop and join the builders, close the sockets and the dataset. */
static void run_teardown(aug_run_t *r) {
    aug_ctx_t *ctx = &r->ctx;
    if (r->mu_init) {
        pthread_mutex_lock(&ctx->mu);
        ctx->stop = 1;
        pthread_cond_broadcast(&ctx->cv_free);
        pthread_mutex_unlock(&ctx->mu);
    }
    for (int i = 0; i < r->nstarted; i++) pthread_join(r->tid[i], NULL);
    if (r->pe.mon) {
        zmq_socket_monitor(r->sock, NULL, 0);
        zmq_close(r->pe.mon);
    }
    wire_close(&r->sock);
    if (r->zctx) zmq_ctx_term(r->zctx);
    if (ctx->slots)
        for (int i = 0; i < ctx->nslots; i++) free(ctx->slots[i].buf);
    free(ctx->slots);
    if (r->mu_init) {
        pthread_mutex_destroy(&ctx->mu);
        pthread_cond_destroy(&ctx->cv_ready);
        pthread_cond_destroy(&ctx->cv_free);
    }
    free(ctx->px);
    free(ctx->labels);
    free(ctx->cap_first);
    free(ctx->cap_text);
    free(ctx->cap_arena);
    store_close(&r->st);
}

int main(int argc, char **argv) {
    aug_opts_t o;
    aug_run_t r;
    memset(&r, 0, sizeof r);
    parse_options(argc, argv, &o, &r.ctx);
    sig_install();
    int exit_code = GB_EXIT_OK;
    int rc = load_dataset(o.db, &r.st, &r.ctx);
    if (rc == 0) {
        plan_stream(&o, &r.ctx);
        rc = start_builders(&r, (int)o.threads);
    }
    if (rc == 0 && (rc = open_output(&r, o.out, (int)o.hwm)) != 0) exit_code = GB_EXIT_PEER;
    if (rc == 0 && (rc = send_batches(&r, o.out, &exit_code)) != 0) exit_code = GB_EXIT_PEER;
    if (rc == 0) exit_code = send_end(r.sock, &r.pe, o.out, o.shard_i, o.shard_n, r.nsent, exit_code, o.linger_ms);
    if (rc != 0 && exit_code == GB_EXIT_OK) exit_code = err_exit_code(rc);
    run_teardown(&r);
    return exit_code;
}
