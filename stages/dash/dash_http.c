/* dash_http.c - gambar-dash's read-only web server (libmicrohttpd).
 *
 * One thread per connection, because /events streams block on the
 * store's condition variable between events; the number of threads is
 * what the limits below allow:
 *   - dash_conn (the accept policy, the connection notifications and a
 *     sweeping thread): connections in all and from one non-loopback
 *     address, the oldest unfinished request shed first past either, and
 *     a deadline for each request's header, so slow-drip clients (a
 *     header byte every few seconds, never idle) cannot hold every slot
 *     even when they share the one address 127.0.0.1 with everybody;
 *   - MHD_OPTION_CONNECTION_LIMIT: twice that cap, a backstop for the
 *     shed connections that have not closed yet;
 *   - MHD_OPTION_CONNECTION_TIMEOUT: idle connections are closed;
 *   - MHD_OPTION_CONNECTION_MEMORY_LIMIT: the request line and headers
 *     must fit in it, a larger request gets 431/413.
 * Only GET and HEAD are answered (405 otherwise). The path is checked on
 * the raw URI, before libmicrohttpd decodes it: any '%', ".." or '\'
 * there gets 400, so "%2e%2e" cannot sneak a parent directory past the
 * checks; then the path must be one of a fixed set (404 otherwise). Web
 * assets come from memory (embedded at build time), never from disk.
 * Binds 127.0.0.1 unless an address is given. */
#include "dash.h"

#include "err.h"
#include "json.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <time.h>

#define SSE_WAIT_MS 5000     /* a keep-alive comment at least this often (and at
                                half the idle timeout, or the stream counts as idle) */
#define SAMPLE_MAX_N 64
#define SWEEP_MS 250         /* how often header deadlines are checked */

struct dash_http {
    struct MHD_Daemon *d;
    dash_http_opts_t o;
    dash_conn_t *conns;
    pthread_t sweeper;
    bool sweeping;           /* the sweeper thread was started */
    pthread_mutex_t mu;      /* guards stop */
    pthread_cond_t cv;
    bool stop;
};

typedef struct {
    bool bad_path;           /* the raw path had '%', ".." or '\' */
} req_t;

typedef struct {
    dash_state_t *st;
    uint64_t cursor;
    int wait_ms;             /* keep-alive period */
    char *pend;              /* bytes to send before the next events */
    size_t pend_len, pend_off;
    bool need_state;
    char buf[DASH_EVENT_BYTES * 8];
} sse_t;

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    UNUSED(cls);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    log_debug("http: %s", msg);
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c) {
    UNUSED(cls);
    UNUSED(c);
    req_t *r = xcalloc(1, sizeof *r);
    size_t plen = strcspn(uri, "?#");
    for (size_t i = 0; i < plen; i++)
        if (uri[i] == '%' || uri[i] == '\\' || (uri[i] == '.' && uri[i + 1] == '.')) r->bad_path = true;
    return r;
}

static dash_conn_entry_t *conn_entry(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
    dash_http_t *h = cls;
    UNUSED(t);
    free(*con_cls);
    *con_cls = NULL;
    dash_conn_request_done(h->conns, conn_entry(c));
}

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    dash_http_t *h = cls;
    UNUSED(addrlen);
    if (dash_conn_admit(h->conns, addr)) return MHD_YES;
    log_debug("http: connection refused: at --max-conns/--max-conns-per-ip and every request has its header");
    return MHD_NO;
}

static void conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
    dash_http_t *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!fi) return; /* never shed, never timed: the idle timeout still applies */
        const struct sockaddr *a = ai ? ai->client_addr : NULL;
        size_t alen = a && a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        *socket_context = dash_conn_add(h->conns, fi->connect_fd, a, alen);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        dash_conn_remove(h->conns, *socket_context);
        *socket_context = NULL;
    }
}

/* Every SWEEP_MS, cut off the requests whose header is late. */
static void *sweep_main(void *arg) {
    dash_http_t *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        if (h->stop) break;
        pthread_mutex_unlock(&h->mu);
        int k = dash_conn_sweep(h->conns);
        if (k) log_debug("http: %d connection(s) closed: header not complete within %d s", k, h->o.header_timeout_s);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Append the connection counters to a /metrics body (*buf, *n). */
static void http_prometheus(dash_http_t *h, char **buf, size_t *n) {
    dash_conn_stats_t st;
    dash_conn_stats(h->conns, &st);
    char *more = NULL;
    int k = asprintf(&more,
                     "# HELP gambar_dash_http_connections HTTP connections open (shed ones until closed).\n"
                     "# TYPE gambar_dash_http_connections gauge\n"
                     "gambar_dash_http_connections %" PRIu64 "\n"
                     "# HELP gambar_dash_http_shed_total HTTP connections closed before their request's header was "
                     "complete.\n"
                     "# TYPE gambar_dash_http_shed_total counter\n"
                     "gambar_dash_http_shed_total{reason=\"header_timeout\"} %" PRIu64 "\n"
                     "gambar_dash_http_shed_total{reason=\"max_conns\"} %" PRIu64 "\n"
                     "gambar_dash_http_shed_total{reason=\"max_conns_per_ip\"} %" PRIu64 "\n"
                     "# HELP gambar_dash_http_refused_total HTTP connections refused: at a limit with nothing to "
                     "shed.\n"
                     "# TYPE gambar_dash_http_refused_total counter\n"
                     "gambar_dash_http_refused_total %" PRIu64 "\n",
                     st.open, st.shed_deadline, st.shed_cap, st.shed_per_ip, st.refused);
    if (k < 0) return;
    *buf = xrealloc(*buf, *n + (size_t)k + 1);
    memcpy(*buf + *n, more, (size_t)k + 1);
    *n += (size_t)k;
    free(more);
}

static void common_headers(struct MHD_Response *r, const char *type) {
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

/* Queue buf[0..n) (malloc'd: ownership passes to libmicrohttpd). */
static enum MHD_Result send_owned(struct MHD_Connection *c, unsigned status, const char *type, char *buf,
                                  size_t n) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return MHD_NO;
    }
    common_headers(r, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char *buf = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&buf, fmt, ap);
    va_end(ap);
    if (n < 0) return MHD_NO;
    return send_owned(c, status, "text/plain; charset=utf-8", buf, (size_t)n);
}

/* ---- /events --------------------------------------------------------------- */

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max) {
    UNUSED(pos);
    sse_t *s = cls;
    for (;;) {
        if (s->pend_off < s->pend_len) {
            size_t k = GB_MIN(max, s->pend_len - s->pend_off);
            memcpy(out, s->pend + s->pend_off, k);
            s->pend_off += k;
            return (ssize_t)k;
        }
        free(s->pend);
        s->pend = NULL;
        s->pend_len = s->pend_off = 0;
        if (s->need_state) {
            /* the whole state, then every event after it */
            s->cursor = dash_state_event_head(s->st);
            char *js = NULL;
            size_t jn = 0;
            dash_state_json(s->st, &js, &jn);
            s->pend_len = (size_t)asprintf(&s->pend, "retry: 2000\nevent: state\ndata: %s\n\n", js);
            free(js);
            s->need_state = false;
            continue;
        }
        long n = dash_state_events(s->st, &s->cursor, s->buf, sizeof s->buf, s->wait_ms);
        if (n < 0) {
            if (dash_state_closing(s->st)) return MHD_CONTENT_READER_END_OF_STREAM;
            s->need_state = true; /* fell behind the ring */
            continue;
        }
        if (n == 0) {
            static const char ka[] = ": keep-alive\n\n";
            size_t k = GB_MIN(max, sizeof ka - 1);
            memcpy(out, ka, k);
            return (ssize_t)k;
        }
        s->pend = xmalloc((size_t)n);
        memcpy(s->pend, s->buf, (size_t)n);
        s->pend_len = (size_t)n;
    }
}

static void sse_free(void *cls) {
    sse_t *s = cls;
    free(s->pend);
    free(s);
}

static enum MHD_Result serve_events(struct MHD_Connection *c, dash_state_t *st, int timeout_s) {
    sse_t *s = xcalloc(1, sizeof *s);
    s->st = st;
    s->wait_ms = GB_MIN(SSE_WAIT_MS, timeout_s * 500);
    s->need_state = true;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
    if (!r) {
        sse_free(s);
        return MHD_NO;
    }
    common_headers(r, "text/event-stream; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- /sample ---------------------------------------------------------------- */

size_t dash_utf8_bad_at(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int k = json_utf8_len((const unsigned char *)s + i);
        if (!k || i + (size_t)k > n) return i;
        i += (size_t)k;
    }
    return n;
}

/* s percent-encoded (all but A-Z a-z 0-9 - _ . ! ~ * ' ( ), as
 * JavaScript's encodeURIComponent leaves them) into out, cut to fit. */
static void pct_encode(const char *s, char *out, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 <= len; p++) {
        if (isalnum(*p) || strchr("-_.!~*'()", *p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
}

static enum MHD_Result serve_sample(struct MHD_Connection *c, dash_http_t *h) {
    const char *cls = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "class");
    const char *seed_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "seed");
    const char *n_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "n");
    const char *prompt = NULL;
    size_t plen = 0;
    if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "prompt", 6, &prompt, &plen) != MHD_YES)
        prompt = NULL;
    uint64_t seed = 0;
    unsigned long n = 1;
    if (cls && strlen(cls) > 256) return send_text(c, 400, "class: longer than 256 bytes\n");
    if (prompt) {
        /* checked here so the person reads why at once, whatever the sampler */
        if (plen > DASH_MAX_PROMPT)
            return send_text(c, 400, "prompt: %zu bytes long, at most %d bytes (UTF-8)\n", plen, DASH_MAX_PROMPT);
        const char *nul = memchr(prompt, 0, plen);
        if (nul) return send_text(c, 400, "prompt: a NUL byte (%%00) at byte %zu is not allowed\n", (size_t)(nul - prompt));
        size_t bad = dash_utf8_bad_at(prompt, plen);
        if (bad < plen)
            return send_text(c, 400, "prompt: not valid UTF-8 (byte 0x%02X at byte %zu)\n", (unsigned char)prompt[bad],
                             bad);
        if (*prompt && cls && *cls) return send_text(c, 400, "give class or prompt, not both\n");
    }
    if (seed_s) {
        char *end;
        errno = 0;
        seed = strtoull(seed_s, &end, 10);
        if (!*seed_s || *end || errno || *seed_s == '-')
            return send_text(c, 400, "seed: '%.64s' is not a number 0..18446744073709551615\n", seed_s);
    }
    if (n_s) {
        char *end;
        errno = 0;
        n = strtoul(n_s, &end, 10);
        if (!*n_s || *end || errno || n < 1 || n > SAMPLE_MAX_N)
            return send_text(c, 400, "n: '%.64s' is not a number 1..%d\n", n_s, SAMPLE_MAX_N);
    }
    dash_sample_req_t rq = {cls, prompt, seed, (unsigned)n, n > 1};
    dash_sample_rep_t rep;
    char err[512] = "";
    int rc = dash_sample_ask(h->o.sample, &rq, &rep, err, sizeof err);
    if (rc == 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(rep.len, rep.png, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(rep.png);
            return MHD_NO;
        }
        common_headers(r, "image/png");
        if (*rep.warning) { /* e.g. words a text model never saw; percent-encoded: a header is ASCII */
            char enc[sizeof rep.warning * 3 + 1];
            pct_encode(rep.warning, enc, sizeof enc);
            MHD_add_response_header(r, "X-Gambar-Warning", enc);
        }
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (rc == GB_ENOTFOUND || rc == EAGAIN) return send_text(c, 503, "%s\n", err);
    if (rc == GB_EFORMAT) return send_text(c, 400, "%s\n", err);
    return send_text(c, 502, "%s\n", err);
}

/* ---- dispatch --------------------------------------------------------------- */

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls) {
    UNUSED(version);
    UNUSED(upload_data);
    UNUSED(upload_data_size);
    dash_http_t *h = cls;
    req_t *r = *con_cls;
    dash_conn_header_done(h->conns, conn_entry(c));
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method %.16s not allowed: this server is read-only\n",
                         method);
    if (!r || r->bad_path) return send_text(c, 400, "bad path: '%%', '..' and '\\' are not allowed\n");
    if (!strcmp(url, "/metrics")) {
        char *buf = NULL;
        size_t n = 0;
        dash_state_prometheus(h->o.state, h->o.run, &buf, &n);
        http_prometheus(h, &buf, &n);
        return send_owned(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf, n);
    }
    if (!strcmp(url, "/api/state")) {
        char *buf = NULL;
        size_t n = 0;
        dash_state_json(h->o.state, &buf, &n);
        return send_owned(c, 200, "application/json", buf, n);
    }
    if (!strcmp(url, "/events")) return serve_events(c, h->o.state, h->o.timeout_s);
    if (!strcmp(url, "/sample")) return serve_sample(c, h);
    if (!strcmp(url, "/samples/latest.png")) {
        void *png = NULL;
        size_t n = 0;
        if (dash_state_get_grid(h->o.state, &png, &n)) return send_text(c, 404, "no sample grid yet\n");
        return send_owned(c, 200, "image/png", png, n);
    }
    if (!strcmp(url, "/samples/grid.png")) { /* ?v=VERSION: one grid of the strip */
        const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "v");
        char *end = NULL;
        unsigned long long ver = v ? strtoull(v, &end, 10) : 0;
        if (!v || !*v || *end || !ver) return send_text(c, 400, "want /samples/grid.png?v=VERSION (1, 2, ...)\n");
        void *png = NULL;
        size_t n = 0;
        if (dash_state_get_grid_version(h->o.state, ver, &png, &n))
            return send_text(c, 404, "no sample grid of version %llu (only the newest %d are kept)\n", ver,
                             DASH_MAX_GRIDS);
        return send_owned(c, 200, "image/png", png, n);
    }
    if (!strcmp(url, "/healthz")) return send_text(c, 200, "ok\n");
    const char *want = strcmp(url, "/") ? url : "/index.html";
    for (unsigned long i = 0; i < dash_nassets; i++) {
        if (strcmp(dash_assets[i].path, want)) continue;
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            dash_assets[i].len, (void *)dash_assets[i].data, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        common_headers(resp, dash_assets[i].type);
        if (!strcmp(want, "/index.html"))
            MHD_add_response_header(resp, "Content-Security-Policy",
                                    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    return send_text(c, 404, "not found\n");
}

/* Parse "[ADDR:]PORT", "[V6ADDR]:PORT" into *ss. Returns 0 or GB_EFORMAT. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, bool *v6) {
    char host[128] = "127.0.0.1";
    const char *port_s = s;
    memset(ss, 0, sizeof *ss);
    *v6 = false;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (!e || e[1] != ':' || (size_t)(e - s - 1) >= sizeof host) return GB_EFORMAT;
        memcpy(host, s + 1, (size_t)(e - s - 1));
        host[e - s - 1] = 0;
        port_s = e + 2;
        *v6 = true;
    } else if (strchr(s, ':')) {
        const char *e = strrchr(s, ':');
        if ((size_t)(e - s) >= sizeof host || e == s) return GB_EFORMAT;
        memcpy(host, s, (size_t)(e - s));
        host[e - s] = 0;
        port_s = e + 1;
    }
    char *end;
    errno = 0;
    long port = strtol(port_s, &end, 10);
    if (!*port_s || *end || errno || port < 0 || port > 65535) return GB_EFORMAT;
    if (*v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return GB_EFORMAT;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return GB_EFORMAT;
    }
    return 0;
}

static void http_free(dash_http_t *h) {
    dash_conn_destroy(&h->conns);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int dash_http_start(const dash_http_opts_t *o, dash_http_t **out) {
    struct sockaddr_storage ss;
    bool v6;
    if (parse_listen(o->listen, &ss, &v6)) {
        log_error("--http '%s': expected [ADDR:]PORT with an IPv4 address or [IPv6]:PORT, port 0..65535",
                  o->listen);
        return GB_EFORMAT;
    }
    dash_http_t *h = xcalloc(1, sizeof *h);
    h->o = *o;
    h->conns = dash_conn_new(o->conn_limit, o->per_ip_limit, o->header_timeout_s);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, 0, accept_policy, h, handler, h,                               //
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,                          //
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_s,                 //
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->conn_limit * 2,              //
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),               //
                            MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),                    //
                            MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL,                            //
                            MHD_OPTION_NOTIFY_COMPLETED, completed, h,                             //
                            MHD_OPTION_NOTIFY_CONNECTION, conn_notify, h,                          //
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,                             //
                            MHD_OPTION_END);
    if (!h->d) {
        log_error("--http %s: cannot listen there (port in use, or address not on this machine)", o->listen);
        http_free(h);
        return GB_EPEER;
    }
    int e = pthread_create(&h->sweeper, NULL, sweep_main, h);
    if (e) {
        log_error("http: cannot start a thread: %s", strerror(e));
        MHD_stop_daemon(h->d);
        http_free(h);
        return e;
    }
    h->sweeping = true;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET6_ADDRSTRLEN] = "";
    if (v6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
    else inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
    log_info("serving http://%s%s%s:%u/", v6 ? "[" : "", host, v6 ? "]" : "", di ? di->port : 0);
    *out = h;
    return 0;
}

void dash_http_stop(dash_http_t **ph) {
    dash_http_t *h = *ph;
    if (!h) return;
    dash_state_close(h->o.state);
    if (h->sweeping) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->sweeper, NULL);
    }
    MHD_stop_daemon(h->d);
    http_free(h);
    *ph = NULL;
}
