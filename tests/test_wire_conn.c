/* test_wire_conn.c - wire_conn: a connecting socket whose peer sent a frame
 * over its limit is replaced (once, logged), keeps its subscriptions, and
 * serves the next good producer on the same endpoint; an ordinary peer
 * restart does not replace it (no queued message lost). Loopback TCP with
 * ports the kernel picks. */
#include "test.h"

#include "base.h"
#include "err.h"
#include "stream.pb-c.h"
#include "wire.h"
#include "wire_conn.h"

#include <zmq.h>

#define CAP 1024

/* Bind a socket of type on a kernel-chosen loopback port; the endpoint in ep. */
static void *bind_any(void *ctx, int type, char *ep, size_t n) {
    void *s = zmq_socket(ctx, type);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s, ep[0] ? ep : "tcp://127.0.0.1:*") != 0) {
        zmq_close(s);
        return NULL;
    }
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &n);
    return s;
}

/* Receive until a Metric arrives or ms pass; its step, or -1. */
static long recv_metric(wire_conn_t *c, int ms) {
    const ProtobufCMessageDescriptor *acc[] = {&gambar__metric__descriptor};
    wire_stats_t st = {0};
    double end = gb_now() + ms / 1000.0;
    while (gb_now() < end) {
        wire_msg_t *m = NULL;
        int rc = wire_conn_recv(c, acc, 1, CAP, 100, &m, &st);
        if (rc == 0) {
            long step = (long)((Gambar__Metric *)m->msg)->step;
            wire_msg_destroy(&m);
            return step;
        }
        if (rc != EAGAIN && rc != GB_EPEER && rc != GB_EINTR) return -1;
    }
    return -1;
}

/* Send a Metric of step on s (a PUB: again every 100 ms until c has it). */
static long send_until(void *s, wire_conn_t *c, long step, int pub) {
    Gambar__Metric mt = GAMBAR__METRIC__INIT;
    mt.name = "loss_d";
    mt.step = (uint64_t)step;
    int tmo = 5000; /* PUSH: wait for the consumer to (re)connect */
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    for (int i = 0; i < 100; i++) {
        wire_send(s, &mt.base, pub ? ZMQ_DONTWAIT : 0);
        long got = recv_metric(c, pub ? 100 : 5000);
        if (got >= 0 || !pub) return got;
    }
    return -1;
}

/* A hostile peer, then a good one on the same endpoint. */
static void recover(int type) {
    int pub = type == ZMQ_SUB;
    void *ctx = zmq_ctx_new();
    char ep[256] = "";
    void *bad = bind_any(ctx, pub ? ZMQ_XPUB : ZMQ_PUSH, ep, sizeof ep);
    CHECK(bad != NULL);
    wire_conn_t *c = NULL;
    CHECK(wire_conn_open(ctx, type, ep, 0, CAP, 0, "test", &c) == 0);
    if (pub) CHECK(wire_conn_subscribe(c, "gambar.Metric") == 0);
    if (pub) { /* wait for the subscription, as a publisher would */
        char b[64];
        int tmo = 5000;
        zmq_setsockopt(bad, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
        CHECK(zmq_recv(bad, b, sizeof b, 0) > 0);
    }
    char big[CAP + 1];
    memset(big, 0, sizeof big);
    memcpy(big, "gambar.Metric", 13);
    CHECK(zmq_send(bad, big, sizeof big, 0) == (int)sizeof big);
    double t0 = gb_now();
    while (wire_conn_renewals(c) == 0 && gb_now() - t0 < 10) recv_metric(c, 100);
    double took = gb_now() - t0;
    CHECKF(wire_conn_renewals(c) == 1, "renewals %llu", (unsigned long long)wire_conn_renewals(c));
    CHECKF(took >= WIRE_CONN_GRACE_MS / 1000.0 * 0.9 && took < WIRE_CONN_GRACE_MS / 1000.0 + 5, "took %.3f s",
           took);
    fprintf(stderr, "replaced %.3f s after the oversized frame\n", took);
    zmq_close(bad);
    /* the good producer on the same endpoint is served */
    void *good = NULL;
    for (int i = 0; i < 50 && !good; i++) {
        good = bind_any(ctx, pub ? ZMQ_PUB : ZMQ_PUSH, ep, sizeof ep);
        if (!good) usleep(100000);
    }
    CHECK(good != NULL);
    if (good) CHECK(send_until(good, c, 7, pub) == 7);
    /* an ordinary restart of the producer: no replacement */
    if (good) zmq_close(good);
    good = NULL;
    for (int i = 0; i < 50 && !good; i++) {
        good = bind_any(ctx, pub ? ZMQ_PUB : ZMQ_PUSH, ep, sizeof ep);
        if (!good) usleep(100000);
    }
    CHECK(good != NULL);
    if (good) CHECK(send_until(good, c, 8, pub) == 8);
    recv_metric(c, WIRE_CONN_GRACE_MS + 500); /* a wrong verdict would come by now */
    CHECK(wire_conn_renewals(c) == 1);
    if (good) zmq_close(good);
    wire_conn_close(&c);
    CHECK(c == NULL);
    zmq_ctx_term(ctx);
}

static void pull_recovers(void) { recover(ZMQ_PULL); }
static void sub_recovers_with_subscription(void) { recover(ZMQ_SUB); }

/* A bound wire_conn is a plain wire_open socket. */
static void bound_is_plain(void) {
    void *ctx = zmq_ctx_new();
    wire_conn_t *c = NULL;
    CHECK(wire_conn_open(ctx, ZMQ_PULL, "@inproc://wc", 0, CAP, 0, "test", &c) == 0);
    void *push = NULL;
    CHECK(wire_open(ctx, ZMQ_PUSH, "inproc://wc", 0, CAP, 0, &push) == 0);
    CHECK(send_until(push, c, 3, 0) == 3);
    CHECK(wire_conn_check(c) == 0);
    wire_close(&push);
    wire_conn_close(&c);
    zmq_ctx_term(ctx);
}

int main(void) {
    RUN(pull_recovers);
    RUN(sub_recovers_with_subscription);
    RUN(bound_is_plain);
    return test_done();
}
