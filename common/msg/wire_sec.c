/* wire_sec.c - CURVE keys, the refuse rule and a ZAP handler (see
 * wire_sec.h).
 *
 * The settings are process-wide: loaded once after option parsing, read
 * only afterwards (by wire_open's threads and the ZAP threads), so they
 * need no lock. Each ZeroMQ context that has a CURVE server socket gets one
 * ZAP handler: a REP socket bound to inproc://zeromq.zap.01 in the calling
 * thread (so it exists before the server socket binds: libzmq would let
 * every client in while no handler is bound) and then served by a detached
 * thread. zmq_ctx_term makes its receive fail with ETERM; the thread then
 * closes the socket and ends, so terminating the context does not hang. */
#include "wire_sec.h"

#include "base.h"
#include "err.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define KEY_Z85 40 /* characters of a Z85 key */
#define KEY_BIN 32
#define MAX_AUTHORIZED 1024
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define LOG_EVERY_S 60.0 /* one refusal line per peer address per minute */

const char *wire_sec_opt_keys;
bool wire_sec_opt_insecure;

static struct {
    int on;                        /* keys loaded */
    char dir[512];
    char pub[KEY_Z85 + 1];         /* our public key */
    char sec[KEY_Z85 + 1];         /* our secret key */
    char server[KEY_Z85 + 1];      /* what we expect of servers */
    uint8_t (*allow)[KEY_BIN];     /* authorized client keys */
    size_t nallow;
} S;

static bool insecure_ok(void) { return wire_sec_opt_insecure; }

static void why_set(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t n, const char *fmt, ...) {
    if (!why || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

/* ---- key files ---------------------------------------------------------- */

/* Read the key in path into out (41 bytes, Z85, NUL-terminated); with
 * secret, refuse a file that group or others may read. */
static int read_key(const char *path, int secret, char *out, char *why, size_t whylen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        why_set(why, whylen, "%s: %s", path, strerror(e));
        return e;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        why_set(why, whylen, "%s: not a regular file", path);
        return EINVAL;
    }
    if (secret && (sb.st_mode & 077)) {
        close(fd);
        why_set(why, whylen, "%s: a secret key must not be readable by group or others (mode %03o; chmod 600 it)",
                path, (unsigned)(sb.st_mode & 0777));
        return EACCES;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        int e = errno;
        why_set(why, whylen, "%s: %s", path, strerror(e));
        return e;
    }
    buf[n] = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) line[--len] = 0;
        while (*line == ' ' || *line == '\t') line++, len--;
        if (!len || line[0] == '#') continue;
        uint8_t bin[KEY_BIN];
        if (len != KEY_Z85 || !zmq_z85_decode(bin, line)) {
            why_set(why, whylen, "%s: '%.50s' is not a 40-character Z85 key", path, line);
            return GB_EFORMAT;
        }
        memcpy(out, line, KEY_Z85 + 1);
        return 0;
    }
    why_set(why, whylen, "%s: no key in the file", path);
    return GB_EFORMAT;
}

static int write_key(const char *path, const char *what, const char *key, char *why, size_t whylen) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        why_set(why, whylen, "%s: %s", path, strerror(e));
        return e;
    }
    char buf[256];
    int n = snprintf(buf, sizeof buf, "# gambar CURVE %s (Z85)\n%s\n", what, key);
    int rc = write(fd, buf, (size_t)n) == n ? 0 : (errno ? errno : EIO);
    if (close(fd) != 0 && !rc) rc = errno;
    if (rc) why_set(why, whylen, "%s: %s", path, strerror(rc));
    return rc;
}

int wire_sec_keygen(const char *dir, char *why, size_t whylen) {
    char path[600], pub[KEY_Z85 + 1], sec[KEY_Z85 + 1];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        why_set(why, whylen, "%s: %s", dir, strerror(e));
        return e;
    }
    snprintf(path, sizeof path, "%s/id.secret", dir);
    if (access(path, F_OK) == 0) {
        why_set(why, whylen, "%s exists already", path);
        return EEXIST;
    }
    if (zmq_curve_keypair(pub, sec) != 0) {
        int e = zmq_errno();
        why_set(why, whylen, "zmq_curve_keypair: %s (libzmq built without CURVE?)", zmq_strerror(e));
        return e;
    }
    int rc = write_key(path, "secret key: keep private", sec, why, whylen);
    snprintf(path, sizeof path, "%s/id.public", dir);
    if (!rc) rc = write_key(path, "public key of id.secret", pub, why, whylen);
    snprintf(path, sizeof path, "%s/server.public", dir);
    if (!rc) rc = write_key(path, "public key expected of the servers this side connects to", pub, why, whylen);
    snprintf(path, sizeof path, "%s/authorized", dir);
    if (!rc && mkdir(path, 0700) != 0 && errno != EEXIST) {
        rc = errno;
        why_set(why, whylen, "%s: %s", path, strerror(rc));
    }
    snprintf(path, sizeof path, "%s/authorized/self.public", dir);
    if (!rc) rc = write_key(path, "public key of a client the binding side accepts", pub, why, whylen);
    memset(sec, 0, sizeof sec);
    return rc;
}

static int load_authorized(const char *dir, char *why, size_t whylen) {
    char path[600];
    snprintf(path, sizeof path, "%s/authorized", dir);
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return 0;
        int e = errno;
        why_set(why, whylen, "%s: %s", path, strerror(e));
        return e;
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 8 || strcmp(de->d_name + l - 7, ".public")) continue;
        if (S.nallow == MAX_AUTHORIZED) {
            why_set(why, whylen, "%s: more than %d keys", path, MAX_AUTHORIZED);
            rc = GB_ETOOBIG;
            break;
        }
        char f[900], key[KEY_Z85 + 1];
        snprintf(f, sizeof f, "%s/%s", path, de->d_name);
        rc = read_key(f, 0, key, why, whylen);
        if (!rc) zmq_z85_decode(S.allow[S.nallow++], key);
    }
    closedir(d);
    return rc;
}

int wire_sec_load(const char *dir, char *why, size_t whylen) {
    char path[600], pub[KEY_Z85 + 1];
    if (strlen(dir) >= sizeof S.dir) {
        why_set(why, whylen, "keys folder path is too long");
        return ENAMETOOLONG;
    }
    free(S.allow);
    memset(&S, 0, sizeof S);
    snprintf(S.dir, sizeof S.dir, "%s", dir);
    S.allow = xcalloc(MAX_AUTHORIZED, KEY_BIN);
    snprintf(path, sizeof path, "%s/id.secret", dir);
    int rc = read_key(path, 1, S.sec, why, whylen);
    if (!rc && zmq_curve_public(S.pub, S.sec) != 0) {
        why_set(why, whylen, "%s: cannot derive the public key", path);
        rc = GB_EFORMAT;
    }
    snprintf(path, sizeof path, "%s/id.public", dir);
    if (!rc && access(path, F_OK) == 0) {
        rc = read_key(path, 0, pub, why, whylen);
        if (!rc && strcmp(pub, S.pub)) {
            why_set(why, whylen, "%s does not belong to id.secret", path);
            rc = GB_EMISMATCH;
        }
    }
    snprintf(path, sizeof path, "%s/server.public", dir);
    if (!rc) {
        if (access(path, F_OK) == 0) rc = read_key(path, 0, S.server, why, whylen);
        else memcpy(S.server, S.pub, sizeof S.server);
    }
    if (!rc) rc = load_authorized(dir, why, whylen);
    if (rc) {
        free(S.allow);
        memset(&S, 0, sizeof S);
        return rc;
    }
    S.on = 1;
    if (!S.nallow)
        log_warn("%s/authorized has no *.public key: sockets that bind tcp:// will refuse every client", dir);
    log_debug("CURVE keys from %s: public %.8s..., server %.8s..., %zu authorized client(s)", dir, S.pub, S.server,
              S.nallow);
    return 0;
}

bool wire_sec_enabled(void) { return S.on; }

/* ---- the refuse rule ---------------------------------------------------- */

static int host_loopback(const char *h, size_t n) {
    char host[256];
    if (n == 0 || n >= sizeof host) return 0;
    memcpy(host, h, n);
    host[n] = 0;
    if (host[0] == '[' && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = 0;
    }
    if (strcmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return 1;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return 0; /* "*", an interface or a host name: cannot tell, so not */
}

/* "host:port" or "[v6]:port" (or just a host, for a source part). */
static int addr_loopback(const char *a, size_t n) {
    size_t hl = n;
    if (n && a[0] == '[') {
        const char *e = memchr(a, ']', n);
        if (!e) return 0;
        hl = (size_t)(e - a) + 1;
    } else {
        for (size_t i = n; i-- > 0;)
            if (a[i] == ':') { hl = i; break; }
    }
    return host_loopback(a, hl);
}

int wire_sec_loopback(const char *endpoint) {
    if (endpoint[0] == '@' || endpoint[0] == '>') endpoint++;
    if (strncmp(endpoint, "tcp://", 6)) return -1;
    const char *a = endpoint + 6;
    /* tcp://SOURCE;DEST: both ends must be loopback */
    const char *semi = strchr(a, ';');
    if (semi) return addr_loopback(a, (size_t)(semi - a)) && addr_loopback(semi + 1, strlen(semi + 1));
    return addr_loopback(a, strlen(a));
}

void wire_sec_init(const cli_spec_t *spec, const char *const *endpoints, int n) {
    const char *dir = wire_sec_opt_keys;
    const char *from = "--curve-keys";
    if (!dir) {
        dir = getenv(WIRE_SEC_ENV);
        from = "$" WIRE_SEC_ENV;
    }
    if (dir && *dir) {
        char why[700];
        if (wire_sec_load(dir, why, sizeof why) != 0) cli_usage_error(spec, "%s: %s", from, why);
    }
    for (int i = 0; i < n; i++) {
        if (!endpoints[i] || S.on || insecure_ok()) continue;
        char *list = xstrdup(endpoints[i]), *save = NULL;
        for (char *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save))
            if (wire_sec_loopback(ep) == 0)
                cli_usage_error(spec,
                                "endpoint %s is not a loopback address: give --curve-keys DIR (CURVE encryption "
                                "and authentication; see SECURITY in the man page) or, to accept anyone who can "
                                "reach it, --insecure",
                                ep);
        free(list);
    }
}

/* ---- the ZAP handler ---------------------------------------------------- */

static pthread_mutex_t zap_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long zap_refused;

static struct {
    char addr[64];
    double last;
    unsigned long quiet; /* refusals not logged since last */
} seen[64];

unsigned long wire_sec_refused(void) {
    pthread_mutex_lock(&zap_mu);
    unsigned long n = zap_refused;
    pthread_mutex_unlock(&zap_mu);
    return n;
}

/* Log a refusal of addr, at most once a minute per address and kind of
 * refusal (a short tag, so that an attacker cycling keys does not get a
 * line each). */
static void log_refusal(const char *addr, const char *kind, const char *reason) {
    char id[64];
    snprintf(id, sizeof id, "%s %s", addr, kind);
    double now = gb_now();
    pthread_mutex_lock(&zap_mu);
    zap_refused++;
    int slot = -1, oldest = 0;
    for (int i = 0; i < (int)ARRAY_LEN(seen); i++) {
        if (strcmp(seen[i].addr, id) == 0) { slot = i; break; }
        if (seen[i].last < seen[oldest].last) oldest = i;
    }
    unsigned long quiet = 0;
    int say = 1;
    if (slot >= 0 && now - seen[slot].last < LOG_EVERY_S) {
        seen[slot].quiet++;
        say = 0;
    } else {
        if (slot < 0) {
            slot = oldest;
            snprintf(seen[slot].addr, sizeof seen[slot].addr, "%s", id);
            seen[slot].quiet = 0;
        }
        quiet = seen[slot].quiet;
        seen[slot].quiet = 0;
        seen[slot].last = now;
    }
    pthread_mutex_unlock(&zap_mu);
    if (say)
        log_warn("refused a connection from %s: %s%s", addr, reason,
                 quiet ? " (and more like it from this address in the last minute)" : "");
}

static int frame_str(zmq_msg_t *f, char *out, size_t n) {
    size_t l = zmq_msg_size(f);
    if (l >= n) return -1;
    memcpy(out, zmq_msg_data(f), l);
    out[l] = 0;
    return 0;
}

static void zap_reply(void *s, zmq_msg_t *reqid, const char *code, const char *text) {
    zmq_send(s, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(s, zmq_msg_data(reqid), zmq_msg_size(reqid), ZMQ_SNDMORE);
    zmq_send(s, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(s, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(s, "", 0, ZMQ_SNDMORE); /* user id */
    zmq_send(s, "", 0, 0);           /* metadata */
}

/* Handle one request (RFC 27): version, request id, domain, address,
 * identity, mechanism, credentials... */
static int zap_serve_one(void *s) {
    enum { NF = 8 };
    zmq_msg_t f[NF];
    int nf = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&m);
            for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
            return e == EINTR ? 0 : e;
        }
        more = zmq_msg_more(&m);
        if (nf < NF) f[nf++] = m;
        else zmq_msg_close(&m);
    }
    char ver[8], addr[64], mech[16];
    if (nf < 6 || frame_str(&f[0], ver, sizeof ver) || strcmp(ver, "1.0") || frame_str(&f[3], addr, sizeof addr) ||
        frame_str(&f[5], mech, sizeof mech)) {
        if (nf >= 2) zap_reply(s, &f[1], "500", "malformed ZAP request");
        else zmq_send(s, "", 0, 0);
        for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
        return 0;
    }
    const char *code = "400", *text = "not allowed";
    char reason[700];
    if (strcmp(mech, "CURVE") == 0 && nf >= 7 && zmq_msg_size(&f[6]) == KEY_BIN) {
        const uint8_t *key = zmq_msg_data(&f[6]);
        int ok = 0;
        for (size_t i = 0; !ok && i < S.nallow; i++) ok = memcmp(S.allow[i], key, KEY_BIN) == 0;
        char z85[KEY_Z85 + 1];
        zmq_z85_encode(z85, key, KEY_BIN);
        if (ok) {
            code = "200";
            text = "OK";
            log_debug("accepted a connection from %s (client key %s)", addr, z85);
        } else {
            snprintf(reason, sizeof reason, "client key %s is not in %s/authorized", z85, S.dir);
            text = "client key not authorized";
        }
    } else {
        snprintf(reason, sizeof reason, "mechanism %s is not CURVE", mech);
        text = "CURVE required";
    }
    zap_reply(s, &f[1], code, text);
    if (strcmp(code, "200")) log_refusal(addr, "zap", reason);
    for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
    return 0;
}

static void *zap_main(void *arg) {
    void *s = arg;
    while (zap_serve_one(s) == 0) {
    }
    zmq_close(s);
    return NULL;
}

/* Bind the ZAP handler of ctx unless it has one; start its thread. */
static int zap_start(void *ctx) {
    void *s = zmq_socket(ctx, ZMQ_REP);
    if (!s) return zmq_errno();
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s, ZAP_ENDPOINT) != 0) {
        int e = zmq_errno();
        zmq_close(s);
        return e == EADDRINUSE ? 0 : e; /* this context has its handler */
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    int rc = pthread_create(&tid, &at, zap_main, s);
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        zmq_close(s);
        return rc;
    }
    return 0;
}

/* ---- handshake failures ------------------------------------------------ */

/* A client that does not speak CURVE, or that has another server key,
 * fails before ZAP is asked, so only the socket's monitor sees it. Each
 * server socket gets a monitor thread that notes the peer address of each
 * accepted connection (by fd), remembers a handshake failure, and logs it
 * with that address when the connection's disconnect event follows (libzmq
 * reports the two in that order). Best effort: a program that installs its
 * own monitor on the socket (gambar-augment) replaces this one. */
typedef struct {
    void *pair;
    char ep[200];
} mon_arg_t;

static void *mon_main(void *arg) {
    mon_arg_t *m = arg;
    struct {
        int fd;
        char addr[64];
    } peers[32];
    memset(peers, 0, sizeof peers);
    for (size_t i = 0; i < ARRAY_LEN(peers); i++) peers[i].fd = -1;
    const char *pending = NULL, *kind = NULL;
    char why[160];
    for (;;) {
        zmq_msg_t ev, ad;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, m->pair, 0) < 0) {
            zmq_msg_close(&ev);
            if (zmq_errno() == EINTR) continue;
            break;
        }
        zmq_msg_init(&ad);
        int more = zmq_msg_more(&ev);
        if (more && zmq_msg_recv(&ad, m->pair, 0) < 0) more = -1;
        uint16_t id = 0;
        uint32_t val = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&id, zmq_msg_data(&ev), 2);
            memcpy(&val, (char *)zmq_msg_data(&ev) + 2, 4);
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&ad);
        if (more < 0 || id == ZMQ_EVENT_MONITOR_STOPPED) break;
        if (id == ZMQ_EVENT_ACCEPTED) {
            size_t k = 0;
            while (k < ARRAY_LEN(peers) - 1 && peers[k].fd >= 0) k++;
            peers[k].fd = (int)val;
            struct sockaddr_storage sa;
            socklen_t sl = sizeof sa;
            char host[64] = "an address gone before it could be read";
            if (getpeername((int)val, (struct sockaddr *)&sa, &sl) == 0) {
                if (sa.ss_family == AF_INET)
                    inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof host);
                else if (sa.ss_family == AF_INET6)
                    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, sizeof host);
            }
            snprintf(peers[k].addr, sizeof peers[k].addr, "%s", host);
        } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            kind = "handshake";
            if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
                pending = "the client hung up during the handshake (no keys, another server key, or not ZeroMQ)";
            } else if (val == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
                pending = "the client does not speak CURVE (started without keys?)";
                kind = "mechanism";
            } else if (val == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) {
                pending = "CURVE handshake failed (the client expects another server key)";
            } else {
                snprintf(why, sizeof why, "ZMTP protocol error 0x%08x in the handshake", (unsigned)val);
                pending = why;
            }
        } else if (id == ZMQ_EVENT_DISCONNECTED) {
            const char *addr = "an address gone before it could be read";
            for (size_t k = 0; k < ARRAY_LEN(peers); k++)
                if (peers[k].fd == (int)val) {
                    peers[k].fd = -1;
                    addr = peers[k].addr;
                }
            if (pending) {
                char r[400];
                snprintf(r, sizeof r, "%s (on %s)", pending, m->ep);
                log_refusal(addr, kind, r);
            }
            pending = NULL;
        }
    }
    zmq_close(m->pair);
    free(m);
    return NULL;
}

static void mon_start(void *ctx, void *sock, const char *endpoint) {
    static unsigned long nmon;
    char me[80];
    pthread_mutex_lock(&zap_mu);
    snprintf(me, sizeof me, "inproc://gambar.sec.monitor.%lu", ++nmon);
    pthread_mutex_unlock(&zap_mu);
    int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_MONITOR_STOPPED;
    if (zmq_socket_monitor(sock, me, events) != 0) {
        log_debug("no handshake monitor on %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return;
    }
    mon_arg_t *m = xcalloc(1, sizeof *m);
    snprintf(m->ep, sizeof m->ep, "%s", endpoint);
    m->pair = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0;
    if (m->pair) zmq_setsockopt(m->pair, ZMQ_LINGER, &linger, sizeof linger);
    if (!m->pair || zmq_connect(m->pair, me) != 0) {
        if (m->pair) zmq_close(m->pair);
        zmq_socket_monitor(sock, NULL, 0);
        free(m);
        return;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    if (pthread_create(&tid, &at, mon_main, m) != 0) {
        zmq_socket_monitor(sock, NULL, 0);
        zmq_close(m->pair);
        free(m);
    }
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- sockets ------------------------------------------------------------ */

int wire_sec_apply(void *ctx, void *sock, int bind, const char *endpoint) {
    int lb = wire_sec_loopback(endpoint);
    if (lb < 0) return 0; /* ipc://, inproc://: local, no CURVE */
    if (!S.on) {
        if (lb == 0 && !insecure_ok()) {
            log_error("refusing to %s %s: not a loopback address and no CURVE keys (--curve-keys DIR, or --insecure)",
                      bind ? "bind" : "connect to", endpoint);
            return EACCES;
        }
        return 0;
    }
    int one = 1, rc = 0;
    if (bind) {
        pthread_mutex_lock(&zap_mu);
        rc = zap_start(ctx);
        pthread_mutex_unlock(&zap_mu);
        if (rc) {
            log_error("cannot start the ZAP handler for %s: %s", endpoint, zmq_strerror(rc));
            return rc;
        }
        if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, WIRE_SEC_ZAP_DOMAIN, strlen(WIRE_SEC_ZAP_DOMAIN)) ||
            zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
            zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, S.sec, KEY_Z85))
            rc = zmq_errno();
        if (!rc) mon_start(ctx, sock, endpoint);
    } else {
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, S.server, KEY_Z85) ||
            zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, S.pub, KEY_Z85) ||
            zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, S.sec, KEY_Z85))
            rc = zmq_errno();
    }
    if (rc) log_error("cannot set CURVE options for %s: %s", endpoint, zmq_strerror(rc));
    return rc;
}
