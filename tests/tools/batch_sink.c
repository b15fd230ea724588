/* batch_sink - a test consumer for the Batch stream (proto/stream.proto).
 *
 * PULLs gambar.Batch and gambar.EndOfStream messages from one endpoint
 * until it has seen --producers EndOfStream messages, verifying every
 * batch on the way (shapes, lengths, dtype, label range, value range,
 * epoch/seq consistency, per-producer order when there is one producer).
 * Prints JSON lines on stdout: one per batch with --digests (seq, epoch,
 * n and a SHA-256 over data, labels and indices; --indices adds the
 * dataset indices and the captions, if any), then one summary line. Tests compare these lines
 * across runs; the benchmark uses --count-only, which skips decoding
 * batches so the sink is never the bottleneck.
 *
 * Exit: 0 all producers ended and nothing was wrong; 1 a batch failed
 * verification or a message was malformed; 2 usage; 4 no message for
 * --timeout-ms; 130 interrupted. */
#include "base.h"
#include "cli.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "sig.h"
#include "stream.pb-c.h"
#include "wire.h"
#include "wire_sec.h"

#include <errno.h>
#include <math.h>
#include <time.h>
#include <zmq.h>

typedef struct {
    uint64_t batches, images, bytes, errors, eos, eos_sent, interrupted;
    float vmin, vmax;
    int32_t lmin, lmax;
    uint32_t n, c, h, w, bpe, num_classes;
    int dtype;
    uint64_t seed, last_seq;
    int have_seq, have_first;
    uint8_t digest[DIGEST_LEN];
    double t_first, t_last;
} sink_t;

static void bad(sink_t *s, uint64_t seq, const char *what) {
    if (s->errors < 10) fprintf(stderr, "batch_sink: batch seq %llu: %s\n", (unsigned long long)seq, what);
    s->errors++;
}

static void check_batch(sink_t *s, const Gambar__Batch *b, int one_producer) {
    uint64_t seq = b->seq;
    size_t elem = b->dtype == GAMBAR__DTYPE__DTYPE_F32 ? 4 : 1;
    if (b->dtype != GAMBAR__DTYPE__DTYPE_F32 && b->dtype != GAMBAR__DTYPE__DTYPE_U8) bad(s, seq, "unknown dtype");
    if (b->n == 0 || b->h == 0 || b->w == 0 || (b->c != 1 && b->c != 3)) bad(s, seq, "bad shape");
    if (b->data.len != (size_t)b->n * b->c * b->h * b->w * elem) bad(s, seq, "data length is not n*c*h*w*elem");
    if (b->n_labels != b->n) bad(s, seq, "labels count is not n");
    if (b->n_indices != b->n) bad(s, seq, "indices count is not n");
    if (b->n_captions && b->n_captions != b->n) bad(s, seq, "captions count is neither 0 nor n");
    if (b->dataset_digest.len != DIGEST_LEN) bad(s, seq, "dataset_digest is not 32 bytes");
    if (b->batches_per_epoch == 0) bad(s, seq, "batches_per_epoch is 0");
    else if (b->epoch != seq / b->batches_per_epoch) bad(s, seq, "epoch != seq / batches_per_epoch");
    for (size_t i = 0; i < b->n_labels; i++) {
        int32_t l = b->labels[i];
        if (l < -1 || (l >= 0 && (uint32_t)l >= b->num_classes)) bad(s, seq, "label out of range");
        if (l < s->lmin) s->lmin = l;
        if (l > s->lmax) s->lmax = l;
    }
    if (b->data.len == (size_t)b->n * b->c * b->h * b->w * elem) {
        size_t n = (size_t)b->n * b->c * b->h * b->w;
        if (elem == 4) {
            for (size_t i = 0; i < n; i++) {
                float v;
                memcpy(&v, b->data.data + i * 4, 4);
                if (!isfinite(v) || v < -1.0f || v > 1.0f) {
                    bad(s, seq, "f32 value outside [-1, 1]");
                    break;
                }
                if (v < s->vmin) s->vmin = v;
                if (v > s->vmax) s->vmax = v;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                float v = b->data.data[i];
                if (v < s->vmin) s->vmin = v;
                if (v > s->vmax) s->vmax = v;
            }
        }
    }
    /* The same stream parameters throughout. */
    if (!s->have_first) {
        s->have_first = 1;
        s->n = b->n; s->c = b->c; s->h = b->h; s->w = b->w;
        s->bpe = b->batches_per_epoch;
        s->num_classes = b->num_classes;
        s->dtype = (int)b->dtype;
        s->seed = b->seed;
        if (b->dataset_digest.len == DIGEST_LEN) memcpy(s->digest, b->dataset_digest.data, DIGEST_LEN);
    } else if (s->c != b->c || s->h != b->h || s->w != b->w || s->bpe != b->batches_per_epoch ||
               s->num_classes != b->num_classes || s->dtype != (int)b->dtype || s->seed != b->seed ||
               (b->dataset_digest.len == DIGEST_LEN && memcmp(s->digest, b->dataset_digest.data, DIGEST_LEN))) {
        bad(s, seq, "stream parameters changed between batches");
    }
    if (one_producer && s->have_seq && seq <= s->last_seq) bad(s, seq, "seq not increasing");
    s->have_seq = 1;
    s->last_seq = seq;
}

static void print_batch(const Gambar__Batch *b, int with_indices) {
    digest_ctx_t *d = digest_new();
    digest_update(d, b->data.data, b->data.len);
    for (size_t i = 0; i < b->n_labels; i++) {
        uint8_t le[4];
        uint32_t v = (uint32_t)b->labels[i];
        for (int j = 0; j < 4; j++) le[j] = (uint8_t)(v >> (8 * j));
        digest_update(d, le, 4);
    }
    for (size_t i = 0; i < b->n_indices; i++) {
        uint8_t le[8];
        for (int j = 0; j < 8; j++) le[j] = (uint8_t)(b->indices[i] >> (8 * j));
        digest_update(d, le, 8);
    }
    uint8_t out[DIGEST_LEN];
    digest_final(&d, out);
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(out, DIGEST_LEN, hex);
    printf("{\"seq\":%llu,\"epoch\":%u,\"n\":%u,\"digest\":\"%s\"", (unsigned long long)b->seq, b->epoch, b->n, hex);
    if (with_indices) {
        printf(",\"indices\":[");
        for (size_t i = 0; i < b->n_indices; i++) printf("%s%llu", i ? "," : "", (unsigned long long)b->indices[i]);
        printf("]");
        if (b->n_captions) {
            printf(",\"captions\":[");
            for (size_t i = 0; i < b->n_captions; i++) {
                printf("%s\"", i ? "," : "");
                for (const unsigned char *p = (const unsigned char *)b->captions[i]; *p; p++) {
                    if (*p == '"' || *p == '\\') printf("\\%c", *p);
                    else if (*p < 0x20) printf("\\u%04x", *p);
                    else putchar(*p);
                }
                printf("\"");
            }
            printf("]");
        }
    }
    printf("}\n");
}

/* Count-only receive: look at the type frame, decode only EndOfStream.
 * Returns 1 batch, 2 end of stream (*eos filled), 0 other/garbage,
 * EAGAIN timeout, GB_EINTR, or an errno. */
static int recv_count(void *sock, int timeout_ms, size_t *bytes, wire_msg_t **eos) {
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    int r = zmq_poll(&it, 1, timeout_ms);
    if (r < 0) return zmq_errno() == EINTR ? GB_EINTR : zmq_errno();
    if (r == 0) return EAGAIN;
    zmq_msg_t f0, f1;
    zmq_msg_init(&f0);
    if (zmq_msg_recv(&f0, sock, 0) < 0) {
        zmq_msg_close(&f0);
        return zmq_errno() == EINTR ? GB_EINTR : zmq_errno();
    }
    int more = zmq_msg_more(&f0);
    char type[64] = {0};
    if (zmq_msg_size(&f0) < sizeof type) memcpy(type, zmq_msg_data(&f0), zmq_msg_size(&f0));
    zmq_msg_close(&f0);
    if (!more) return 0;
    zmq_msg_init(&f1);
    if (zmq_msg_recv(&f1, sock, 0) < 0) {
        zmq_msg_close(&f1);
        return zmq_errno() == EINTR ? GB_EINTR : zmq_errno();
    }
    int ret = 0;
    if (zmq_msg_more(&f1)) {
        ret = 0; /* garbage; the rest drains on later calls as 1-frame messages */
    } else if (strcmp(type, "gambar.Batch") == 0) {
        *bytes = zmq_msg_size(&f1);
        ret = 1;
    } else if (strcmp(type, "gambar.EndOfStream") == 0) {
        ret = pbmsg_decode(&gambar__end_of_stream__descriptor, zmq_msg_data(&f1), zmq_msg_size(&f1),
                          WIRE_MAX_SMALL_BYTES, eos) == 0 ? 2 : 0;
    }
    zmq_msg_close(&f1);
    return ret;
}

int main(int argc, char **argv) {
    const char *in = NULL;
    long long producers = 1, delay_ms = 0, timeout_ms = 30000, hwm = 0, max_batches = -1;
    bool digests = false, indices = false, count_only = false;
    const cli_opt_t opts[] = {
        {"in", 'i', CLI_STR, &in, "ENDPOINT", "where to PULL from ('@' bind, '>' connect; default connect)", NULL},
        {"producers", 'p', CLI_INT, &producers, "N", "EndOfStream messages to wait for (default 1)", NULL},
        {"delay-ms", 0, CLI_INT, &delay_ms, "MS", "sleep after every batch (a slow consumer)", NULL},
        {"timeout-ms", 0, CLI_INT, &timeout_ms, "MS", "give up after this long without a message (default 30000)",
         NULL},
        {"hwm", 0, CLI_INT, &hwm, "N", "receive high-water mark (default ZeroMQ's)", NULL},
        {"max-batches", 0, CLI_INT, &max_batches, "N", "stop after N batches (exit 0 without EndOfStream)", NULL},
        {"digests", 'd', CLI_FLAG, &digests, NULL, "print a JSON line per batch", NULL},
        {"indices", 0, CLI_FLAG, &indices, NULL, "with --digests: include the dataset indices", NULL},
        {"count-only", 0, CLI_FLAG, &count_only, NULL, "only count batches (no decoding or checks)", NULL},
        WIRE_SEC_CLI_OPTS,
    };
    const cli_spec_t spec = {
        .prog = "batch_sink",
        .usage = "--in ENDPOINT [options]",
        .summary = "Receive and verify a gambar.Batch stream; print JSON lines.",
        .opts = opts,
        .nopts = (int)ARRAY_LEN(opts),
        .epilog = NULL,
    };
    cli_parse(&spec, argc, argv);
    wire_sec_init(&spec, (const char *const[]){in}, 1);
    if (!in) cli_usage_error(&spec, "--in is required");
    if (producers < 1 || delay_ms < 0 || timeout_ms < 1 || hwm < 0) cli_usage_error(&spec, "bad numeric option");
    if (indices) digests = true;
    sig_install();

    void *zctx = zmq_ctx_new();
    void *sock = NULL;
    int rc = wire_open(zctx, ZMQ_PULL, in, 0, WIRE_MAX_BATCH_BYTES, (int)hwm, &sock);
    if (rc != 0) {
        zmq_ctx_term(zctx);
        return GB_EXIT_PEER;
    }
    sink_t s;
    memset(&s, 0, sizeof s);
    s.vmin = INFINITY;
    s.vmax = -INFINITY;
    s.lmin = INT32_MAX;
    s.lmax = INT32_MIN;
    wire_stats_t st;
    memset(&st, 0, sizeof st);
    const ProtobufCMessageDescriptor *acc[] = {&gambar__batch__descriptor, &gambar__end_of_stream__descriptor};
    int exit_code = 0;
    while (s.eos < (uint64_t)producers) {
        if (sig_stop_requested()) { exit_code = GB_EXIT_INTERRUPTED; break; }
        if (max_batches >= 0 && s.batches >= (uint64_t)max_batches) break;
        wire_msg_t *m = NULL;
        int is_batch = 0;
        if (count_only) {
            size_t nb = 0;
            rc = recv_count(sock, (int)timeout_ms, &nb, &m);
            if (rc == 1) { is_batch = 1; s.bytes += nb; rc = 0; }
            else if (rc == 2) rc = 0;
            else if (rc == 0) { s.errors++; continue; }
        } else {
            rc = wire_recv(sock, acc, 2, WIRE_MAX_BATCH_BYTES, (int)timeout_ms, &m, &st);
            if (rc == GB_EPEER) { s.errors++; continue; }
            if (rc == 0) is_batch = m->desc == &gambar__batch__descriptor;
        }
        if (rc == GB_EINTR) continue;
        if (rc == EAGAIN) {
            fprintf(stderr, "batch_sink: no message for %lld ms\n", timeout_ms);
            exit_code = GB_EXIT_IO;
            break;
        }
        if (rc != 0) {
            fprintf(stderr, "batch_sink: receive: %s\n", zmq_strerror(rc));
            exit_code = GB_EXIT_PEER;
            break;
        }
        double now = gb_now();
        if (is_batch) {
            if (!s.batches) s.t_first = now;
            s.t_last = now;
            s.batches++;
            if (m) {
                const Gambar__Batch *b = (const Gambar__Batch *)m->msg;
                s.images += b->n;
                s.bytes += b->data.len;
                check_batch(&s, b, producers == 1);
                if (digests) print_batch(b, indices);
            }
        } else if (m) {
            const Gambar__EndOfStream *e = (const Gambar__EndOfStream *)m->msg;
            s.eos++;
            s.eos_sent += e->batches_sent;
            if (e->reason && strcmp(e->reason, "interrupted") == 0) s.interrupted++;
            printf("{\"eos\":true,\"producer\":\"%s\",\"batches_sent\":%llu,\"reason\":\"%s\"}\n",
                   e->producer ? e->producer : "", (unsigned long long)e->batches_sent, e->reason ? e->reason : "");
            s.t_last = now;
        }
        wire_msg_destroy(&m);
        if (is_batch && delay_ms > 0) {
            struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    s.errors += wire_stats_dropped(&st);
    if (s.eos && s.eos_sent != s.batches) {
        fprintf(stderr, "batch_sink: received %llu batches, producers say they sent %llu\n",
                (unsigned long long)s.batches, (unsigned long long)s.eos_sent);
    }
    double secs = s.batches > 1 ? s.t_last - s.t_first : 0;
    char dhex[DIGEST_HEX_LEN + 1];
    digest_hex(s.digest, DIGEST_LEN, dhex);
    printf("{\"summary\":true,\"batches\":%llu,\"images\":%llu,\"bytes\":%llu,\"eos\":%llu,\"eos_batches_sent\":%llu,"
           "\"interrupted\":%llu,\"errors\":%llu,\"seconds\":%.6f,\"batches_per_s\":%.1f",
           (unsigned long long)s.batches, (unsigned long long)s.images, (unsigned long long)s.bytes,
           (unsigned long long)s.eos, (unsigned long long)s.eos_sent, (unsigned long long)s.interrupted,
           (unsigned long long)s.errors, secs, secs > 0 ? (double)(s.batches - 1) / secs : 0.0);
    if (s.have_first)
        printf(",\"n\":%u,\"c\":%u,\"h\":%u,\"w\":%u,\"dtype\":\"%s\",\"min\":%g,\"max\":%g,\"label_min\":%d,"
               "\"label_max\":%d,\"batches_per_epoch\":%u,\"num_classes\":%u,\"seed\":%llu,\"dataset_digest\":\"%s\"",
               s.n, s.c, s.h, s.w, s.dtype == GAMBAR__DTYPE__DTYPE_F32 ? "f32" : "u8", (double)s.vmin,
               (double)s.vmax, s.lmin, s.lmax, s.bpe, s.num_classes, (unsigned long long)s.seed, dhex);
    printf("}\n");
    fflush(stdout);
    if (exit_code == 0 && s.errors) exit_code = 1;
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    wire_close(&sock);
    zmq_ctx_term(zctx);
    return exit_code;
}
