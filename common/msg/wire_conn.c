/* wire_conn.c - a connecting socket replaced when a peer broke the
 * protocol (see wire_conn.h).
 *
 * State per peer (the address in the monitor's events) says what the last
 * connection did: handshake succeeded or failed how, and since when it is
 * disconnected without a reconnect attempt. Everything needed to make the
 * socket again is kept in wire_conn_t, so a replacement is the same code
 * path as the first open. */
#include "wire_conn.h"

#include "base.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_PEERS 32   /* distinct peer addresses tracked per socket */
#define MAX_LOGGED 64  /* distinct (endpoint, peer, reason) lines logged at warn */
#define PEER_LEN 256

#define MON_EVENTS                                                                                                 \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |        \
     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |        \
     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

typedef struct {
    int opt;
    void *val;
    size_t len;
} copt_t;

typedef struct {
    char addr[PEER_LEN];
    int hs_ok;           /* the last connection finished its handshake */
    unsigned hs_fail;    /* ZMQ_EVENT_HANDSHAKE_FAILED_* seen, or 0 */
    uint32_t hs_val;     /* its value (protocol error code, status, errno) */
    double dead_since;   /* gb_now() of a DISCONNECTED not yet followed by a retry, or 0 */
} cpeer_t;

struct wire_conn {
    void *ctx;
    int type;
    size_t max_frame;
    int hwm;
    char *label;
    int bind;   /* eps[0] is bound: no monitor */
    char **eps; /* endpoints, without the '@' or '>' */
    int neps;
    copt_t *opts;
    int nopts;
    void *sock, *mon;
    void *newmon; /* set by attach() while a socket is being made */
    cpeer_t peers[MAX_PEERS];
    int npeers;
    char *logged[MAX_LOGGED];
    unsigned logged_n[MAX_LOGGED];
    int nlogged;
    uint64_t renewals;
};

/* ---- the monitor -------------------------------------------------------- */

/* wire_open_hooked's hook: monitor the new socket before it connects. */
static int attach(void *sock, void *arg) {
    wire_conn_t *c = arg;
    static unsigned long serial;
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://gambar-wire-conn-%ld-%lu", (long)getpid(),
             __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED));
    if (zmq_socket_monitor(sock, ep, MON_EVENTS) != 0) {
        int e = zmq_errno();
        log_error("%s: cannot monitor the socket: %s", c->label, zmq_strerror(e));
        return e;
    }
    void *m = zmq_socket(c->ctx, ZMQ_PAIR);
    int linger = 0;
    if (!m || zmq_setsockopt(m, ZMQ_LINGER, &linger, sizeof linger) != 0 || zmq_connect(m, ep) != 0) {
        int e = zmq_errno();
        log_error("%s: cannot read the socket's monitor: %s", c->label, zmq_strerror(e));
        if (m) zmq_close(m);
        zmq_socket_monitor(sock, NULL, 0);
        return e;
    }
    c->newmon = m;
    return 0;
}

static cpeer_t *peer_get(wire_conn_t *c, const char *addr) {
    for (int i = 0; i < c->npeers; i++)
        if (!strcmp(c->peers[i].addr, addr)) return &c->peers[i];
    if (c->npeers == MAX_PEERS) return NULL;
    cpeer_t *p = &c->peers[c->npeers++];
    memset(p, 0, sizeof *p);
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    return p;
}

static void on_event(wire_conn_t *c, unsigned ev, uint32_t val, const char *addr) {
    cpeer_t *p = peer_get(c, addr);
    if (!p) return;
    switch (ev) {
    case ZMQ_EVENT_CONNECTED:
        p->hs_ok = 0;
        p->hs_fail = 0;
        p->dead_since = 0;
        break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: p->hs_ok = 1; break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        p->hs_fail = ev;
        p->hs_val = val;
        break;
    case ZMQ_EVENT_DISCONNECTED: p->dead_since = gb_now(); break;
    case ZMQ_EVENT_CONNECT_DELAYED:
    case ZMQ_EVENT_CONNECT_RETRIED: p->dead_since = 0; break;
    default: break;
    }
}

/* Read every event that is there. */
static void read_events(wire_conn_t *c) {
    for (;;) {
        zmq_msg_t a, b;
        zmq_msg_init(&a);
        if (zmq_msg_recv(&a, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&a);
            return;
        }
        unsigned ev = 0;
        uint32_t val = 0;
        if (zmq_msg_size(&a) >= 6) {
            const uint8_t *d = zmq_msg_data(&a);
            uint16_t e16;
            memcpy(&e16, d, 2);
            memcpy(&val, d + 2, 4);
            ev = e16;
        }
        int more = zmq_msg_more(&a);
        zmq_msg_close(&a);
        if (!more) continue;
        zmq_msg_init(&b);
        if (zmq_msg_recv(&b, c->mon, 0) < 0) {
            zmq_msg_close(&b);
            return;
        }
        char addr[PEER_LEN];
        size_t n = zmq_msg_size(&b) < sizeof addr - 1 ? zmq_msg_size(&b) : sizeof addr - 1;
        memcpy(addr, zmq_msg_data(&b), n);
        addr[n] = 0;
        zmq_msg_close(&b);
        on_event(c, ev, val, addr);
    }
}

/* ---- making the socket -------------------------------------------------- */

static void drop_socket(void **sock, void **mon) {
    if (*sock) zmq_socket_monitor(*sock, NULL, 0);
    wire_close(sock);
    if (*mon) zmq_close(*mon);
    *mon = NULL;
}

/* A new socket with every parameter, option and endpoint; *sock and *mon
 * on success. Returns 0 or an errno (logged). */
static int make_socket(wire_conn_t *c, void **sock, void **mon) {
    char ep[4200];
    snprintf(ep, sizeof ep, "%c%s", c->bind ? '@' : '>', c->eps[0]);
    c->newmon = NULL;
    void *s = NULL;
    int rc = wire_open_hooked(c->ctx, c->type, ep, 0, c->max_frame, c->hwm, c->bind ? NULL : attach, c, &s);
    if (rc) {
        if (c->newmon) zmq_close(c->newmon);
        c->newmon = NULL;
        return rc;
    }
    void *m = c->newmon;
    c->newmon = NULL;
    for (int i = 0; i < c->nopts; i++) {
        if (zmq_setsockopt(s, c->opts[i].opt, c->opts[i].val, c->opts[i].len) != 0) {
            rc = zmq_errno();
            log_error("%s: socket option %d: %s", c->label, c->opts[i].opt, zmq_strerror(rc));
            drop_socket(&s, &m);
            return rc;
        }
    }
    for (int i = 1; i < c->neps; i++) {
        if (zmq_connect(s, c->eps[i]) != 0) {
            rc = zmq_errno();
            log_error("%s: cannot connect to %s: %s", c->label, c->eps[i], zmq_strerror(rc));
            drop_socket(&s, &m);
            return rc;
        }
    }
    *sock = s;
    *mon = m;
    return 0;
}

int wire_conn_open(void *ctx, int type, const char *endpoint, int default_bind, size_t max_frame_bytes, int hwm,
                   const char *label, wire_conn_t **out) {
    *out = NULL;
    wire_conn_t *c = xcalloc(1, sizeof *c);
    c->bind = default_bind;
    if (endpoint[0] == '@' || endpoint[0] == '>') c->bind = *endpoint++ == '@';
    c->ctx = ctx;
    c->type = type;
    c->max_frame = max_frame_bytes;
    c->hwm = hwm;
    c->label = xstrdup(label);
    c->eps = xcalloc(1, sizeof *c->eps);
    c->eps[c->neps++] = xstrdup(endpoint);
    int rc = make_socket(c, &c->sock, &c->mon);
    if (rc) {
        wire_conn_close(&c);
        return rc;
    }
    *out = c;
    return 0;
}

int wire_conn_connect(wire_conn_t *c, const char *endpoint) {
    if (endpoint[0] == '>') endpoint++;
    if (zmq_connect(c->sock, endpoint) != 0) {
        int e = zmq_errno();
        log_error("%s: cannot connect to %s: %s", c->label, endpoint, zmq_strerror(e));
        return e;
    }
    c->eps = xrealloc(c->eps, (size_t)(c->neps + 1) * sizeof *c->eps);
    c->eps[c->neps++] = xstrdup(endpoint);
    return 0;
}

int wire_conn_setopt(wire_conn_t *c, int option, const void *val, size_t len) {
    if (zmq_setsockopt(c->sock, option, val, len) != 0) return zmq_errno();
    c->opts = xrealloc(c->opts, (size_t)(c->nopts + 1) * sizeof *c->opts);
    copt_t *o = &c->opts[c->nopts++];
    o->opt = option;
    o->len = len;
    o->val = xmalloc(len ? len : 1);
    if (len) memcpy(o->val, val, len);
    return 0;
}

int wire_conn_subscribe(wire_conn_t *c, const char *prefix) {
    return wire_conn_setopt(c, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
}

void *wire_conn_socket(const wire_conn_t *c) { return c->sock; }

uint64_t wire_conn_renewals(const wire_conn_t *c) { return c->renewals; }

/* ---- noticing and replacing --------------------------------------------- */

static void describe(const wire_conn_t *c, const cpeer_t *p, char *buf, size_t n) {
    switch (p->hs_fail) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        snprintf(buf, n, "the handshake broke the ZeroMQ protocol (error 0x%x)", (unsigned)p->hs_val);
        return;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        snprintf(buf, n, "authentication failed (status %u)", (unsigned)p->hs_val);
        return;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        snprintf(buf, n, "the handshake failed (%s)", zmq_strerror((int)p->hs_val));
        return;
    default: break;
    }
    if (p->hs_ok)
        snprintf(buf, n, "it broke the protocol (a frame over the %zu-byte limit, or a malformed frame)", c->max_frame);
    else
        snprintf(buf, n, "the handshake failed (not a ZeroMQ peer, or a socket type that does not match)");
}

/* The endpoint the caller gave for peer address addr: the same string, or
 * the only endpoint, or all of them. */
static void which_endpoint(const wire_conn_t *c, const char *addr, char *buf, size_t n) {
    for (int i = 0; i < c->neps; i++)
        if (!strcmp(c->eps[i], addr)) {
            snprintf(buf, n, "%s", c->eps[i]);
            return;
        }
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < c->neps && k + 1 < n; i++) {
        int w = snprintf(buf + k, n - k, "%s%s", i ? "," : "", c->eps[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

/* Log once per (endpoint, peer, reason); later ones at debug level. */
static void report(wire_conn_t *c, const cpeer_t *p) {
    char reason[160], ep[1024], key[1600];
    describe(c, p, reason, sizeof reason);
    which_endpoint(c, p->addr, ep, sizeof ep);
    snprintf(key, sizeof key, "%s\n%s\n%s", ep, p->addr, reason);
    for (int i = 0; i < c->nlogged; i++)
        if (!strcmp(c->logged[i], key)) {
            c->logged_n[i]++;
            log_debug("%s %s: peer %s: %s again (%u times); new socket", c->label, ep, p->addr, reason,
                      c->logged_n[i]);
            return;
        }
    if (c->nlogged < MAX_LOGGED) {
        c->logged_n[c->nlogged] = 1;
        c->logged[c->nlogged++] = xstrdup(key);
    } else {
        log_debug("%s %s: peer %s: %s; new socket", c->label, ep, p->addr, reason);
        return;
    }
    log_warn("%s %s: peer %s dropped for good: %s; ZeroMQ would not reconnect, so a new socket connects "
             "(messages still queued are lost)",
             c->label, ep, p->addr, reason);
}

int wire_conn_check(wire_conn_t *c) {
    if (!c->mon) return 0;
    read_events(c);
    double now = gb_now();
    cpeer_t *dead = NULL;
    for (int i = 0; i < c->npeers && !dead; i++)
        if (c->peers[i].dead_since > 0 && (now - c->peers[i].dead_since) * 1000 >= WIRE_CONN_GRACE_MS)
            dead = &c->peers[i];
    if (!dead) return 0;
    report(c, dead);
    void *s = NULL, *m = NULL;
    if (make_socket(c, &s, &m) != 0) {
        dead->dead_since = now; /* try again after another grace period */
        return 0;
    }
    drop_socket(&c->sock, &c->mon);
    c->sock = s;
    c->mon = m;
    c->npeers = 0;
    c->renewals++;
    return 1;
}

/* ms until the earliest dead_since reaches the grace period, or -1. */
static long next_due_ms(const wire_conn_t *c, double now) {
    long best = -1;
    for (int i = 0; i < c->npeers; i++) {
        if (c->peers[i].dead_since <= 0) continue;
        double ms = (c->peers[i].dead_since - now) * 1000 + WIRE_CONN_GRACE_MS;
        long w = ms <= 0 ? 0 : (long)ms + 1;
        if (best < 0 || w < best) best = w;
    }
    return best;
}

int wire_conn_recv(wire_conn_t *c, const ProtobufCMessageDescriptor *const *accepted, size_t naccepted,
                   size_t max_bytes, int timeout_ms, wire_msg_t **out, wire_stats_t *st) {
    *out = NULL;
    double deadline = timeout_ms >= 0 ? gb_now() + timeout_ms / 1000.0 : 0;
    for (;;) {
        wire_conn_check(c);
        double now = gb_now();
        long wait = -1;
        if (timeout_ms >= 0) wait = now >= deadline ? 0 : (long)((deadline - now) * 1000) + 1;
        long due = next_due_ms(c, now);
        if (due >= 0 && (wait < 0 || due < wait)) wait = due;
        zmq_pollitem_t it[2] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
        int r = zmq_poll(it, c->mon ? 2 : 1, wait);
        if (r < 0) {
            int e = zmq_errno();
            return e == EINTR ? GB_EINTR : e;
        }
        if (it[0].revents & ZMQ_POLLIN) return wire_recv(c->sock, accepted, naccepted, max_bytes, 0, out, st);
        if (timeout_ms >= 0 && gb_now() >= deadline) {
            wire_conn_check(c);
            return EAGAIN;
        }
    }
}

void wire_conn_close(wire_conn_t **cp) {
    wire_conn_t *c = cp ? *cp : NULL;
    if (!c) return;
    drop_socket(&c->sock, &c->mon);
    for (int i = 0; i < c->neps; i++) free(c->eps[i]);
    free(c->eps);
    for (int i = 0; i < c->nopts; i++) free(c->opts[i].val);
    free(c->opts);
    for (int i = 0; i < c->nlogged; i++) free(c->logged[i]);
    free(c->label);
    free(c);
    *cp = NULL;
}
