/* test_base.c - rng, digest, err, wire basics. */
#include "base.h"
#include "digest.h"
#include "err.h"
#include "rng.h"
#include "stream.pb-c.h"
#include "test.h"
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <zmq.h>

static void rng_reproducible(void) {
    rng_t a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) CHECK(rng_u64(&a) == rng_u64(&b));
    rng_derive(&a, 1, 2, 3, 4, 5);
    rng_derive(&b, 1, 2, 3, 4, 6);
    CHECK(rng_u64(&a) != rng_u64(&b));
}

static void rng_normal_moments(void) {
    rng_t r;
    rng_seed(&r, 7);
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        s += x;
        s2 += x * x;
    }
    CHECK(fabs(s / n) < 0.01);
    CHECK(fabs(s2 / n - 1.0) < 0.02);
    uint64_t cnt[10] = {0};
    for (int i = 0; i < 100000; i++) cnt[rng_below(&r, 10)]++;
    for (int i = 0; i < 10; i++) CHECK(cnt[i] > 9500 && cnt[i] < 10500);
}

static void sha256_known(void) {
    uint8_t d[32];
    char hex[65];
    digest_sha256("abc", 3, d);
    digest_hex(d, 32, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    uint8_t back[32];
    CHECK(digest_unhex(hex, back, 32) == 0 && memcmp(back, d, 32) == 0);
    CHECK(digest_unhex("zz", back, 1) == GB_EFORMAT);
}

static void wire_roundtrip_and_garbage(void) {
    void *ctx = zmq_ctx_new();
    void *pull = NULL, *push = NULL;
    CHECK(wire_open(ctx, ZMQ_PULL, "inproc://t", 1, 1 << 20, 10, &pull) == 0);
    CHECK(wire_open(ctx, ZMQ_PUSH, "inproc://t", 0, 1 << 20, 10, &push) == 0);
    Gambar__EndOfStream eos = GAMBAR__END_OF_STREAM__INIT;
    eos.producer = "test";
    eos.batches_sent = 12;
    const ProtobufCMessageDescriptor *acc[] = {&gambar__end_of_stream__descriptor};
    wire_stats_t st = {0};
    /* garbage: one frame, wrong type, undecodable payload, three frames */
    zmq_send(push, "x", 1, 0);
    wire_send_raw(push, "gambar.Nope", "", 0, 0);
    wire_send_raw(push, "gambar.EndOfStream", "\xff\xff\xff", 3, 0);
    zmq_send(push, "a", 1, ZMQ_SNDMORE);
    zmq_send(push, "b", 1, ZMQ_SNDMORE);
    zmq_send(push, "c", 1, 0);
    CHECK(wire_send(push, &eos.base, 0) == 0);
    wire_msg_t *m = NULL;
    int got = 0, bad = 0;
    for (int i = 0; i < 10 && !got; i++) {
        int rc = wire_recv(pull, acc, 1, 1024, 1000, &m, &st);
        if (rc == GB_EPEER) bad++;
        else if (rc == 0) got = 1;
        else break;
    }
    CHECK(got);
    CHECK(bad == 4);
    CHECK(wire_stats_dropped(&st) == 4);
    CHECK(st.bad_frames == 2 && st.bad_type == 1 && st.bad_payload == 1);
    if (m) {
        Gambar__EndOfStream *e = (Gambar__EndOfStream *)m->msg;
        CHECK(strcmp(e->producer, "test") == 0 && e->batches_sent == 12);
    }
    wire_msg_destroy(&m);
    CHECK(m == NULL);
    CHECK(wire_recv(pull, acc, 1, 1024, 10, &m, &st) == EAGAIN);
    wire_close(&push);
    wire_close(&pull);
    zmq_ctx_term(ctx);
}

static void pbmsg_decode_cap(void) {
    /* a Batch claiming a huge bytes field must be refused by the allocator cap */
    Gambar__Batch b = GAMBAR__BATCH__INIT;
    static uint8_t data[100000];
    b.data.data = data;
    b.data.len = sizeof data;
    size_t n = protobuf_c_message_get_packed_size(&b.base);
    uint8_t *buf = malloc(n);
    protobuf_c_message_pack(&b.base, buf);
    wire_msg_t *m = NULL;
    CHECK(pbmsg_decode(&gambar__batch__descriptor, buf, n, 1000, &m) == GB_ETOOBIG);
    CHECK(pbmsg_decode(&gambar__batch__descriptor, buf, n, 1 << 20, &m) == 0);
    wire_msg_destroy(&m);
    free(buf);
}

int main(void) {
    RUN(rng_reproducible);
    RUN(rng_normal_moments);
    RUN(sha256_known);
    RUN(wire_roundtrip_and_garbage);
    RUN(pbmsg_decode_cap);
    return test_done();
}
