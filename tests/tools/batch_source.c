/* batch_source.c - a test tool that PUSHes gambar.Batch messages, so the
 * trainer's tests do not depend on gambar-augment.
 *
 * The stream is a pure function of (dataset digest, --seed, seq), like
 * gambar-augment's: batch seq s belongs to epoch e = s / B (B batches per
 * epoch) and takes the images perm_e[(s % B) * n ...] where perm_e is a
 * Fisher-Yates shuffle seeded by rng_derive(seed, digest, e). No
 * augmentation: the point is a deterministic, cheap stream. --start-batch K
 * starts the stream at seq K, so "source 0..K-1, then source K.." sends the
 * same batches as one "source 0..". --shard I/N sends only the batches
 * whose in-epoch index is I mod N (as gambar-augment's shards do).
 *
 * Data: Fashion-MNIST IDX files (gzipped or not) from --idx DIR, or a
 * synthetic 28x28x1 set of blobs (--synthetic, the default) that needs no
 * files. --garbage N interleaves N bad messages after every good batch, of
 * the kinds listed in BAD_KINDS (wrong frames, wrong type, undecodable
 * payload, wrong shape, wrong dtype, inconsistent sizes, another dataset
 * digest, NaN pixels, labels out of range), in rotation, so the trainer's
 * rejection paths all get exercised. Ends with one EndOfStream unless
 * --no-eos.
 *
 * Exit status: 0 all sent, 2 usage, 3 bad data file, 6 socket error, 130
 * interrupted. */
#include "base.h"
#include "cli.h"
#include "digest.h"
#include "err.h"
#include "idx.h"
#include "log.h"
#include "rng.h"
#include "sig.h"
#include "stream.pb-c.h"
#include "wire.h"
#include "wire_sec.h"

#include <errno.h>
#include <math.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    uint32_t count, h, w, c;
    uint8_t *pix;    /* count*h*w*c bytes */
    int32_t *labels; /* count */
    uint32_t num_classes;
    uint8_t digest[DIGEST_LEN];
} src_data_t;

static int load_idx(const char *dir, uint32_t limit, src_data_t *d) {
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s/train", dir);
    idx_data_t x;
    int rc = idx_read_all(prefix, limit, &x);
    if (rc) return rc; /* logged with the file name */
    if (!x.labels || x.n > UINT32_MAX) goto bad;
    for (uint64_t i = 0; i < x.n; i++)
        if (x.labels[i] >= 10) goto bad;
    d->count = (uint32_t)x.n;
    d->h = x.h;
    d->w = x.w;
    d->c = 1;
    d->pix = x.px;
    d->labels = x.labels;
    d->num_classes = 10;
    return 0;
bad:
    log_error("%s: not a Fashion-MNIST IDX pair (labels missing or over 9)", dir);
    idx_data_free(&x);
    return GB_EFORMAT;
}

/* Synthetic set: image i is a bright ellipse whose position and size
 * depend on i; label i % 10. */
static void make_synthetic(uint32_t count, src_data_t *d) {
    d->count = count;
    d->h = d->w = 28;
    d->c = 1;
    d->num_classes = 10;
    d->pix = xmalloc((size_t)count * 28 * 28);
    d->labels = xmalloc(sizeof(int32_t) * count);
    for (uint32_t i = 0; i < count; i++) {
        rng_t r;
        rng_derive(&r, 0x5717, i, 0, 0, 0);
        float cx = 8 + 12 * rng_uniform(&r), cy = 8 + 12 * rng_uniform(&r);
        float rx = 3 + 6 * rng_uniform(&r), ry = 3 + 6 * rng_uniform(&r);
        uint8_t *p = d->pix + (size_t)i * 784;
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                float u = (x - cx) / rx, v = (y - cy) / ry;
                p[y * 28 + x] = u * u + v * v <= 1.0f ? (uint8_t)(160 + 9 * (i % 10)) : 0;
            }
        d->labels[i] = (int32_t)(i % 10);
    }
}

static void data_digest(src_data_t *d) {
    digest_ctx_t *ctx = digest_new();
    uint32_t hdr[4] = {d->count, d->h, d->w, d->c};
    digest_update(ctx, hdr, sizeof hdr);
    digest_update(ctx, d->pix, (size_t)d->count * d->h * d->w * d->c);
    digest_update(ctx, d->labels, sizeof(int32_t) * d->count);
    digest_final(&ctx, d->digest);
}

enum {
    BAD_ONE_FRAME, BAD_THREE_FRAMES, BAD_TYPE, BAD_PAYLOAD, BAD_SHAPE, BAD_DTYPE, BAD_SIZE,
    BAD_DIGEST, BAD_NAN, BAD_LABEL, BAD_KINDS
};
static const char *const bad_names[BAD_KINDS] = {
    "one-frame", "three-frames", "wrong-type", "undecodable", "wrong-shape", "wrong-dtype",
    "inconsistent-size", "other-digest", "nan-pixels", "label-out-of-range"};

typedef struct {
    src_data_t *d;
    uint64_t seed;
    uint32_t n; /* batch size */
    uint32_t bpe;
    int f32;
    uint64_t *perm; /* current epoch's permutation */
    int64_t perm_epoch;
    /* buffers for one batch */
    uint8_t *data;
    int32_t *labels;
    uint64_t *indices;
} gen_t;

/* Fill b with batch seq (pointing into g's buffers). */
static void gen_batch(gen_t *g, uint64_t seq, Gambar__Batch *b) {
    uint64_t e = seq / g->bpe, j = seq % g->bpe;
    if ((int64_t)e != g->perm_epoch) {
        for (uint64_t i = 0; i < g->d->count; i++) g->perm[i] = i;
        rng_t r;
        rng_derive(&r, g->seed, digest_u64(g->d->digest), e, 0, 0);
        rng_shuffle_u64(&r, g->perm, g->d->count);
        g->perm_epoch = (int64_t)e;
    }
    uint64_t lo = j * g->n, hi = GB_MIN(lo + g->n, (uint64_t)g->d->count);
    uint32_t n = (uint32_t)(hi - lo);
    size_t img = (size_t)g->d->h * g->d->w * g->d->c;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t k = g->perm[lo + i];
        const uint8_t *src = g->d->pix + k * img;
        if (g->f32) {
            float *dst = (float *)g->data + i * img;
            for (size_t p = 0; p < img; p++) dst[p] = (float)src[p] / 127.5f - 1.0f;
        } else {
            memcpy(g->data + i * img, src, img);
        }
        g->labels[i] = g->d->labels[k];
        g->indices[i] = k;
    }
    gambar__batch__init(b);
    b->seq = seq;
    b->epoch = (uint32_t)e;
    b->n = n;
    b->c = g->d->c;
    b->h = g->d->h;
    b->w = g->d->w;
    b->dtype = g->f32 ? GAMBAR__DTYPE__DTYPE_F32 : GAMBAR__DTYPE__DTYPE_U8;
    b->data.data = g->data;
    b->data.len = n * img * (g->f32 ? 4 : 1);
    b->n_labels = n;
    b->labels = g->labels;
    b->n_indices = n;
    b->indices = g->indices;
    b->dataset_digest.data = g->d->digest;
    b->dataset_digest.len = DIGEST_LEN;
    b->seed = g->seed;
    b->batches_per_epoch = g->bpe;
    b->num_classes = g->d->num_classes;
}

static int send_bad(void *sock, gen_t *g, int kind, uint64_t seq) {
    static const char junk[] = "\xff\xff\xff\xff garbage that is not protobuf \x08\x96";
    switch (kind) {
    case BAD_ONE_FRAME:
        return zmq_send(sock, "gambar.Batch", 12, 0) < 0 ? zmq_errno() : 0;
    case BAD_THREE_FRAMES:
        if (zmq_send(sock, "gambar.Batch", 12, ZMQ_SNDMORE) < 0) return zmq_errno();
        if (zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0) return zmq_errno();
        return zmq_send(sock, junk, sizeof junk - 1, 0) < 0 ? zmq_errno() : 0;
    case BAD_TYPE: {
        Gambar__Heartbeat hb = GAMBAR__HEARTBEAT__INIT;
        hb.stage = "batch_source";
        return wire_send(sock, &hb.base, 0);
    }
    case BAD_PAYLOAD:
        return wire_send_raw(sock, "gambar.Batch", junk, sizeof junk - 1, 0);
    default: break;
    }
    /* Semantically bad batches: build a good one (with this seq, so only
     * the defect can be the reason to drop it), then damage it. */
    Gambar__Batch b;
    gen_batch(g, seq, &b);
    uint8_t other[DIGEST_LEN];
    switch (kind) {
    case BAD_SHAPE: b.h = b.h / 2; b.w = b.w * 2; break; /* same byte count */
    case BAD_DTYPE: b.dtype = (Gambar__DType)7; break;
    case BAD_SIZE: b.data.len -= 1; break;
    case BAD_DIGEST:
        memcpy(other, g->d->digest, DIGEST_LEN);
        other[0] ^= 0x55;
        b.dataset_digest.data = other;
        break;
    case BAD_NAN:
        if (b.dtype == GAMBAR__DTYPE__DTYPE_F32) {
            ((float *)b.data.data)[3] = NAN;
        } else { /* u8 cannot hold NaN: send one f32 image with a NaN */
            static float fbuf[4 * 1024 * 1024];
            size_t cnt = (size_t)b.c * b.h * b.w;
            if (cnt > ARRAY_LEN(fbuf)) cnt = ARRAY_LEN(fbuf);
            for (size_t i = 0; i < cnt; i++) fbuf[i] = 0.0f;
            fbuf[cnt / 2] = NAN;
            b.n = 1;
            b.dtype = GAMBAR__DTYPE__DTYPE_F32;
            b.data.data = (uint8_t *)fbuf;
            b.data.len = cnt * 4;
            b.n_labels = b.n_indices = 1;
        }
        break;
    case BAD_LABEL: b.labels[0] = 99; break;
    }
    int rc = wire_send(sock, &b.base, 0);
    if (kind == BAD_LABEL) g->labels[0] = 0;
    return rc;
}

int main(int argc, char **argv) {
    const char *out = NULL, *idx = NULL, *dtype = "f32", *digest_arg = NULL;
    long long batch = 32, limit = 0, epochs = 1, garbage = 0, synth = 1024, linger_ms = 30000;
    uint64_t seed = 1, start = 0, nbatches = 0;
    bool no_eos = false, synthetic = false, print_digest = false;
    bool nbatches_seen = false;
    const char *shard = NULL;
    const cli_opt_t opts[] = {
        {"out", 'o', CLI_STR, &out, "ENDPOINT", "PUSH endpoint (binds by default; '>' connects)", NULL},
        {"idx", 0, CLI_STR, &idx, "DIR", "Fashion-MNIST folder (train-*-idx*-ubyte[.gz])", NULL},
        {"synthetic", 0, CLI_FLAG, &synthetic, NULL, "use N synthetic 28x28 images (default)", NULL},
        {"synthetic-count", 0, CLI_INT, &synth, "N", "images in the synthetic set (default 1024)", NULL},
        {"limit", 0, CLI_INT, &limit, "N", "use only the first N IDX images", NULL},
        {"batch", 'b', CLI_INT, &batch, "N", "images per batch (default 32)", NULL},
        {"seed", 's', CLI_U64, &seed, "S", "shuffle seed (default 1)", NULL},
        {"epochs", 0, CLI_INT, &epochs, "E", "epochs to send (default 1)", NULL},
        {"start-batch", 0, CLI_U64, &start, "K", "first seq to send (default 0)", NULL},
        {"batches", 0, CLI_U64, &nbatches, "M", "send M batches (default: up to the end of --epochs)",
         &nbatches_seen},
        {"shard", 0, CLI_STR, &shard, "I/N", "send only batches whose in-epoch index is I mod N", NULL},
        {"dtype", 0, CLI_STR, &dtype, "u8|f32", "pixel type (default f32)", NULL},
        {"garbage", 0, CLI_INT, &garbage, "N", "bad messages after each good batch (default 0)", NULL},
        {"digest", 0, CLI_STR, &digest_arg, "HEX", "claim this dataset digest instead", NULL},
        {"no-eos", 0, CLI_FLAG, &no_eos, NULL, "do not send EndOfStream at the end", NULL},
        {"linger-ms", 0, CLI_INT, &linger_ms, "MS", "wait this long for queued batches at exit", NULL},
        {"print-digest", 0, CLI_FLAG, &print_digest, NULL, "print the dataset digest and exit", NULL},
        WIRE_SEC_CLI_OPTS,
    };
    const cli_spec_t spec = {"batch_source", "--out ENDPOINT [options]",
                             "PUSH a deterministic stream of gambar.Batch messages (test tool).", opts,
                             (int)ARRAY_LEN(opts), NULL};
    cli_parse(&spec, argc, argv);
    if (!out && !print_digest) cli_usage_error(&spec, "--out is required");
    wire_sec_init(&spec, (const char *const[]){out}, 1);
    if (batch < 1 || batch > 4096) cli_usage_error(&spec, "--batch must be 1..4096");
    if (epochs < 1) cli_usage_error(&spec, "--epochs must be >= 1");
    if (garbage < 0) cli_usage_error(&spec, "--garbage must be >= 0");
    if (synth < 1 || synth > 1000000) cli_usage_error(&spec, "--synthetic-count must be 1..1000000");
    if (limit < 0) cli_usage_error(&spec, "--limit must be >= 0");
    unsigned shard_i = 0, shard_n = 1;
    if (shard && (sscanf(shard, "%u/%u", &shard_i, &shard_n) != 2 || shard_n == 0 || shard_i >= shard_n))
        cli_usage_error(&spec, "--shard must be I/N with I < N");
    int f32 = strcmp(dtype, "f32") == 0;
    if (!f32 && strcmp(dtype, "u8") != 0) cli_usage_error(&spec, "--dtype must be u8 or f32");
    if (synthetic && idx) cli_usage_error(&spec, "--synthetic and --idx exclude each other");
    sig_install();

    src_data_t d;
    memset(&d, 0, sizeof d);
    if (idx) {
        int rc = load_idx(idx, (uint32_t)limit, &d);
        if (rc) return GB_EXIT_DATA;
    } else {
        make_synthetic((uint32_t)synth, &d);
    }
    data_digest(&d);
    if (digest_arg && digest_unhex(digest_arg, d.digest, DIGEST_LEN))
        cli_usage_error(&spec, "--digest: need 64 hex digits");
    if (print_digest) {
        char hex[DIGEST_HEX_LEN + 1];
        digest_hex(d.digest, DIGEST_LEN, hex);
        printf("%s\n", hex);
        return 0;
    }

    gen_t g = {.d = &d, .seed = seed, .n = (uint32_t)batch, .f32 = f32, .perm_epoch = -1};
    g.bpe = (uint32_t)((d.count + g.n - 1) / g.n);
    g.perm = xmalloc(sizeof(uint64_t) * d.count);
    g.data = xmalloc((size_t)g.n * d.h * d.w * d.c * 4);
    g.labels = xmalloc(sizeof(int32_t) * g.n);
    g.indices = xmalloc(sizeof(uint64_t) * g.n);
    uint64_t end = (uint64_t)epochs * g.bpe;
    if (nbatches_seen) end = start + nbatches;

    void *ctx = zmq_ctx_new();
    void *sock = NULL;
    int rc = wire_open(ctx, ZMQ_PUSH, out, 1, WIRE_MAX_BATCH_BYTES, 4, &sock);
    if (rc) return GB_EXIT_PEER;
    int linger = (int)linger_ms;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    int sndtimeo = 200;
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    log_info("sending seq %llu..%llu (%u batches/epoch, %u images, batch %u, %s)",
             (unsigned long long)start, (unsigned long long)end, g.bpe, d.count, g.n, dtype);

    uint64_t sent = 0, bad_sent = 0;
    int status = 0;
    for (uint64_t s = start; s < end && !status; s++) {
        if ((s % g.bpe) % shard_n != shard_i) continue;
        Gambar__Batch b;
        gen_batch(&g, s, &b);
        for (;;) { /* SNDTIMEO makes a blocked send notice a stop request */
            rc = sig_stop_requested() ? GB_EINTR : wire_send(sock, &b.base, 0);
            if ((rc == GB_EINTR || rc == EAGAIN) && !sig_stop_requested()) continue;
            break;
        }
        if (rc) { status = rc; break; }
        sent++;
        for (long long k = 0; k < garbage; k++) {
            int kind = (int)(bad_sent % BAD_KINDS);
            do rc = send_bad(sock, &g, kind, s);
            while ((rc == EAGAIN || rc == GB_EINTR) && !sig_stop_requested());
            if (rc) { status = rc; break; }
            log_debug("sent a bad message: %s", bad_names[kind]);
            bad_sent++;
        }
        if (sig_stop_requested()) status = GB_EINTR;
    }
    if (!status && !no_eos) {
        Gambar__EndOfStream eos = GAMBAR__END_OF_STREAM__INIT;
        eos.producer = "batch_source";
        eos.batches_sent = sent;
        eos.reason = "done";
        do status = wire_send(sock, &eos.base, 0);
        while ((status == EAGAIN || status == GB_EINTR) && !sig_stop_requested());
    }
    log_info("sent %llu batches and %llu bad messages%s", (unsigned long long)sent,
             (unsigned long long)bad_sent, status ? " (stopped early)" : "");
    if (status == EAGAIN) status = GB_EINTR;
    if (status == GB_EINTR) { linger = 0; zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger); }
    wire_close(&sock);
    zmq_ctx_term(ctx);
    free(g.perm);
    free(g.data);
    free(g.labels);
    free(g.indices);
    free(d.pix);
    free(d.labels);
    if (status == GB_EINTR) return GB_EXIT_INTERRUPTED;
    if (status) {
        log_error("send: %s", err_str(status));
        return GB_EXIT_PEER;
    }
    return 0;
}
