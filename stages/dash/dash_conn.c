/* dash_conn.c - gambar-dash's table of open HTTP connections and the
 * policy that keeps slow clients from locking everyone out (see dash.h).
 *
 * libmicrohttpd closes only idle connections, and a client that sends a
 * header byte every few seconds is never idle; its fixed per-address limit
 * is a global limit when the server binds 127.0.0.1, where every client
 * (browser, SSH tunnel, reverse proxy) has the same address. So every
 * connection is recorded here with the time its current request began
 * (the accept, or the end of the previous request on a kept-alive
 * connection) and whether that request's header is complete:
 *   - a header not complete header_s after its request began is cut off
 *     (dash_conn_sweep);
 *   - past `cap` connections, a new one sheds the connection whose
 *     unfinished request is the oldest; connections whose header is done
 *     (an answer being sent, an /events stream) are never shed; when
 *     there is nothing to shed the new connection is refused;
 *   - past `per_ip` from one address, the same, among that address's
 *     connections; loopback addresses are exempt (not one hostile peer).
 * Shedding is shutdown(2) of the socket under the table's lock: the
 * connection's thread then sees EOF and libmicrohttpd closes it, and
 * reports that (dash_conn_remove) before it closes the descriptor, so a
 * descriptor is never shut down after it has been reused. A few hundred
 * entries at most, so the scans are linear. */
#include "dash.h"

#include <netinet/in.h>
#include <sys/socket.h>

struct dash_conn_entry {
    struct dash_conn_entry *prev, *next;
    int fd;
    struct sockaddr_storage addr;
    double began;            /* gb_now() when the current request began */
    bool header_done;        /* its header is complete (never shed) */
    bool shed;               /* shut down, waiting for dash_conn_remove */
};

struct dash_conn {
    pthread_mutex_t mu;
    dash_conn_entry_t *head;
    int cap, per_ip;
    double header_s;
    dash_conn_stats_t st;
};

dash_conn_t *dash_conn_new(int cap, int per_ip, double header_s) {
    dash_conn_t *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->cap = cap;
    t->per_ip = per_ip;
    t->header_s = header_s;
    return t;
}

void dash_conn_destroy(dash_conn_t **pt) {
    dash_conn_t *t = *pt;
    if (!t) return;
    while (t->head) {
        dash_conn_entry_t *e = t->head;
        t->head = e->next;
        free(e);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
    *pt = NULL;
}

bool dash_conn_is_loopback(const struct sockaddr *a) {
    if (a->sa_family == AF_INET) {
        const unsigned char *b = (const unsigned char *)&((const struct sockaddr_in *)a)->sin_addr;
        return b[0] == 127;
    }
    if (a->sa_family == AF_INET6) {
        const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(x) || (IN6_IS_ADDR_V4MAPPED(x) && x->s6_addr[12] == 127);
    }
    return false;
}

static bool same_host(const struct sockaddr_storage *x, const struct sockaddr *y) {
    if (x->ss_family != y->sa_family) return false;
    if (y->sa_family == AF_INET)
        return ((const struct sockaddr_in *)x)->sin_addr.s_addr == ((const struct sockaddr_in *)y)->sin_addr.s_addr;
    if (y->sa_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr, &((const struct sockaddr_in6 *)y)->sin6_addr,
                       sizeof(struct in6_addr));
    return false;
}

static void shed(dash_conn_entry_t *e) {
    e->shed = true;
    shutdown(e->fd, SHUT_RDWR);
}

/* The live (not shed) entries, those from addr when addr is not NULL,
 * into *n; the oldest unfinished among them is returned (NULL: none). */
static dash_conn_entry_t *scan(dash_conn_t *t, const struct sockaddr *addr, int *n) {
    dash_conn_entry_t *old = NULL;
    *n = 0;
    for (dash_conn_entry_t *e = t->head; e; e = e->next) {
        if (e->shed || (addr && !same_host(&e->addr, addr))) continue;
        ++*n;
        if (!e->header_done && (!old || e->began < old->began)) old = e;
    }
    return old;
}

bool dash_conn_admit(dash_conn_t *t, const struct sockaddr *addr) {
    bool ok = true;
    int n;
    pthread_mutex_lock(&t->mu);
    if (!dash_conn_is_loopback(addr)) {
        dash_conn_entry_t *old = scan(t, addr, &n);
        if (n >= t->per_ip) {
            if (old) {
                shed(old);
                t->st.shed_per_ip++;
            } else {
                ok = false;
            }
        }
    }
    if (ok) {
        dash_conn_entry_t *old = scan(t, NULL, &n);
        if (n >= t->cap) {
            if (old) {
                shed(old);
                t->st.shed_cap++;
            } else {
                ok = false;
            }
        }
    }
    if (!ok) t->st.refused++;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

dash_conn_entry_t *dash_conn_add(dash_conn_t *t, int fd, const struct sockaddr *addr, size_t addrlen) {
    dash_conn_entry_t *e = xcalloc(1, sizeof *e);
    e->fd = fd;
    if (addr) memcpy(&e->addr, addr, GB_MIN(addrlen, sizeof e->addr));
    e->began = gb_now();
    pthread_mutex_lock(&t->mu);
    e->next = t->head;
    if (t->head) t->head->prev = e;
    t->head = e;
    t->st.open++;
    pthread_mutex_unlock(&t->mu);
    return e;
}

void dash_conn_remove(dash_conn_t *t, dash_conn_entry_t *e) {
    if (!e) return;
    pthread_mutex_lock(&t->mu);
    if (e->prev) e->prev->next = e->next;
    else t->head = e->next;
    if (e->next) e->next->prev = e->prev;
    t->st.open--;
    pthread_mutex_unlock(&t->mu);
    free(e);
}

void dash_conn_header_done(dash_conn_t *t, dash_conn_entry_t *e) {
    if (!e) return;
    pthread_mutex_lock(&t->mu);
    e->header_done = true;
    pthread_mutex_unlock(&t->mu);
}

void dash_conn_request_done(dash_conn_t *t, dash_conn_entry_t *e) {
    if (!e) return;
    pthread_mutex_lock(&t->mu);
    e->header_done = false;
    e->began = gb_now();
    pthread_mutex_unlock(&t->mu);
}

int dash_conn_sweep(dash_conn_t *t) {
    int k = 0;
    double now = gb_now();
    pthread_mutex_lock(&t->mu);
    for (dash_conn_entry_t *e = t->head; e; e = e->next) {
        if (e->shed || e->header_done || now - e->began < t->header_s) continue;
        shed(e);
        k++;
    }
    t->st.shed_deadline += (uint64_t)k;
    pthread_mutex_unlock(&t->mu);
    return k;
}

void dash_conn_stats(dash_conn_t *t, dash_conn_stats_t *out) {
    pthread_mutex_lock(&t->mu);
    *out = t->st;
    pthread_mutex_unlock(&t->mu);
}
