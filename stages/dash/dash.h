/* dash.h - gambar-dash: the live metrics dashboard's modules.
 *
 * One process, two sides. The main thread subscribes to Metric and
 * CheckpointReady on every --metrics endpoint and feeds dash_state
 * (latest value and a bounded history per series, plus an event ring for
 * Server-Sent Events), the JSON-lines file and the TensorBoard writer.
 * libmicrohttpd's threads (one per connection, bounded in number, per
 * address and in memory; dash_conn sheds slow clients) only read dash_state under its lock and render
 * /metrics, /api/state, /events and the embedded page; /sample forwards
 * to a sampler's REP socket (dash_sample), one request at a time.
 *
 * Modules: dash_state.c (series, rendering to Prometheus text and JSON),
 * dash_http.c (the HTTP server), dash_conn.c (its connections: header
 * deadline, limits, shedding), dash_sample.c (sampler client),
 * dash_tb.c (TensorBoard event files), main.c (options, receive loop). */
#ifndef GB_DASH_H
#define GB_DASH_H

#include "base.h"
#include "stream.pb-c.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>

#define DASH_MAX_SERIES 512      /* distinct (stage, run, name, labels); more are counted, not kept */
#define DASH_MAX_LABELS 8        /* labels kept per metric (others dropped) */
#define DASH_MAX_STR 128         /* stage/run/name/label bytes kept (longer is cut) */
#define DASH_EVENT_SLOTS 2048    /* SSE ring: events a slow client may lag behind */
#define DASH_EVENT_BYTES 6144    /* one event, at most: 8 labels of 127 bytes, each escaped */
#define DASH_MAX_PNG ((size_t)32 << 20) /* sample grid files and replies */
#define DASH_MAX_GRIDS 12        /* sample grids kept for the page's strip (newest) */
#define DASH_MAX_PROMPT 1024     /* bytes of /sample's prompt (the sampler's own limit) */
#define DASH_GRID_BYTES ((size_t)64 << 20) /* their PNG bytes, at most (the latest is always kept) */

/* ---- dash_state: series store ------------------------------------------- */

typedef struct dash_state dash_state_t;

/* Create an empty store keeping `history` points per series (>= 2).
 * Never fails (aborts on OOM). Destroy with dash_state_destroy. */
dash_state_t *dash_state_new(int history);
void dash_state_destroy(dash_state_t **s);

/* Record one metric (copied) and queue its SSE event. Strings longer
 * than DASH_MAX_STR are cut; a new series past DASH_MAX_SERIES is counted
 * in series_dropped and only its event is queued. Thread-safe. */
void dash_state_add_metric(dash_state_t *s, const Gambar__Metric *m);
/* Record a CheckpointReady (latest per run; queued as an SSE event). */
void dash_state_add_checkpoint(dash_state_t *s, const Gambar__CheckpointReady *c);
/* Set the receive counters shown on /metrics: messages taken and
 * garbage dropped (wire_stats_dropped over all sockets). */
void dash_state_set_counts(dash_state_t *s, uint64_t received, uint64_t dropped);
/* Add a sample grid PNG (copied; n <= DASH_MAX_PNG) showing training
 * step `step`, as the latest of the strip: it gets the next version
 * number (1, 2, ...; the state JSON lists the strip under "grids",
 * newest first, and an SSE "grid" event announces it). A grid of the same
 * step and source replaces the one held; beyond DASH_MAX_GRIDS grids or
 * DASH_GRID_BYTES bytes the oldest are dropped. Thread-safe. */
void dash_state_set_grid(dash_state_t *s, const void *png, size_t n, const char *source, uint64_t step);
/* Copy the latest grid into a malloc'd buffer (*out, *n; caller frees).
 * Returns 0, or GB_ENOTFOUND when there is none yet. */
int dash_state_get_grid(dash_state_t *s, void **out, size_t *n);
/* The same for the grid of that version (0: the latest). GB_ENOTFOUND
 * when it is not (or no longer) held. */
int dash_state_get_grid_version(dash_state_t *s, uint64_t version, void **out, size_t *n);

/* Render the Prometheus text exposition (format 0.0.4) into *out
 * (malloc'd, NUL-terminated, caller frees; *n its length). `run` is the
 * --run default for series that carry none. */
void dash_state_prometheus(dash_state_t *s, const char *run, char **out, size_t *n);
/* Render every series with its history as JSON (the /api/state body and
 * the first SSE event). Same ownership as above. */
void dash_state_json(dash_state_t *s, char **out, size_t *n);

/* SSE cursor: the sequence number of the next event a client needs.
 * dash_state_events copies the events from *cursor on (at most max bytes,
 * whole events only, each as "event: ...\ndata: ...\n\n") into buf and
 * advances *cursor. When none is ready it waits up to wait_ms. Returns
 * the bytes written (0 on timeout), or -1 when the client fell behind
 * the ring (it should be sent the whole state again) or the store is
 * closing (see dash_state_closing). */
long dash_state_events(dash_state_t *s, uint64_t *cursor, char *buf, size_t max, int wait_ms);
/* The sequence number the next event will get (a new client's cursor). */
uint64_t dash_state_event_head(dash_state_t *s);
/* Wake every waiting SSE reader and make them end (shutdown). */
void dash_state_close(dash_state_t *s);
bool dash_state_closing(dash_state_t *s);


/* Offset of the first byte of s[0..n) that does not start a valid UTF-8
 * sequence, or n when all of it is valid (s NUL-terminated at n). */
size_t dash_utf8_bad_at(const char *s, size_t n);

/* ---- dash_sample: sampler client ----------------------------------------- */

typedef struct dash_sample dash_sample_t;

/* A REQ client for gambar-sample --serve at endpoint (connects unless
 * '@'), answering within timeout_ms. NULL endpoint: no sampler (every
 * request gets 503). Never fails at creation: a connect error is
 * reported by each request. */
dash_sample_t *dash_sample_new(void *zctx, const char *endpoint, int timeout_ms);
void dash_sample_destroy(dash_sample_t **d);

/* Ask for n images (grid when grid) of class_name ("" any) and seed.
 * On success *png is the first PNG of the reply (malloc'd, caller frees)
 * and returns 0. Otherwise returns GB_ENOTFOUND (no sampler configured),
 * EAGAIN (no answer in time; the socket is recreated), GB_EFORMAT (the
 * sampler refused: err says why) or another rc, with err filled.
 * Thread-safe (requests are serialised). */
int dash_sample_get(dash_sample_t *d, const char *class_name, uint64_t seed, unsigned n, bool grid,
                    void **png, size_t *pnglen, char *err, size_t errlen);
/* The same, also giving the training step of the checkpoint that made
 * the images (SampleReply.step) in *step (may be NULL). */
int dash_sample_get_step(dash_sample_t *d, const char *class_name, uint64_t seed, unsigned n, bool grid,
                         void **png, size_t *pnglen, uint64_t *step, char *err, size_t errlen);

/* A request with every SampleRequest field the page can set. */
typedef struct {
    const char *class_name;  /* NULL or "": any class */
    const char *prompt;      /* NULL or "": none (SampleRequest.prompt; the
                                caller checked it: UTF-8, <= DASH_MAX_PROMPT) */
    uint64_t seed;
    unsigned n;
    bool grid;
} dash_sample_req_t;

/* What came back: the first PNG (malloc'd, caller frees), the step of the
 * checkpoint that made it, and the sampler's warning ("" none; cut to
 * fit), e.g. the prompt's words a text model never saw. */
typedef struct {
    void *png;
    size_t len;
    uint64_t step;
    char warning[1024];
} dash_sample_rep_t;

/* As dash_sample_get, for rq; fills *rep on success (returns 0). */
int dash_sample_ask(dash_sample_t *d, const dash_sample_req_t *rq, dash_sample_rep_t *rep, char *err,
                    size_t errlen);

/* ---- dash_tb: TensorBoard event files ------------------------------------ */

typedef struct dash_tb dash_tb_t;

/* Open DIR/events.out.tfevents.<time>.<host>.<pid> (DIR is created) and
 * write the file_version record. Returns 0 and *out, or an errno (logged
 * naming the path). */
int dash_tb_open(const char *dir, dash_tb_t **out);
/* Close (flush, fsync) the file. NULL is fine. */
void dash_tb_close(dash_tb_t **t);
/* Append a scalar summary: tag, step, wall time. Returns 0 or an errno. */
int dash_tb_scalar(dash_tb_t *t, const char *tag, int64_t step, double wall, float value);
/* Append an image summary holding the PNG png[0..n) of w x h pixels with
 * `channels` colour channels (1 grey, 3 RGB, 4 RGBA). */
int dash_tb_image(dash_tb_t *t, const char *tag, int64_t step, double wall, const void *png, size_t n, int w,
                  int h, int channels);
/* Flush buffered records to the file (and fsync when sync). */
int dash_tb_flush(dash_tb_t *t, bool sync);
/* CRC-32C (Castagnoli) of p[0..n), and TFRecord's masked form of it. */
uint32_t dash_crc32c(const void *p, size_t n);
uint32_t dash_crc_mask(uint32_t crc);

/* Width, height and channel count from a PNG's IHDR. Returns 0, or
 * GB_EFORMAT when p[0..n) does not start like a PNG. */
int dash_png_size(const void *p, size_t n, int *w, int *h, int *channels);

/* ---- dash_conn: open HTTP connections, header deadline, shedding --------- */

typedef struct dash_conn dash_conn_t;
typedef struct dash_conn_entry dash_conn_entry_t;

typedef struct {
    uint64_t open;           /* connections recorded now (shed ones too, until closed) */
    uint64_t shed_deadline;  /* cut off: header not complete in time */
    uint64_t shed_cap;       /* shed for a newer connection past the cap */
    uint64_t shed_per_ip;    /* shed for a newer one from the same address */
    uint64_t refused;        /* refused: at a limit and nothing unfinished to shed */
} dash_conn_stats_t;

/* A table allowing `cap` connections in all, `per_ip` from one
 * non-loopback address, and header_s seconds for a request's header.
 * Never fails (aborts on OOM). Destroy (after the server is stopped)
 * with dash_conn_destroy. All functions below are thread-safe. */
dash_conn_t *dash_conn_new(int cap, int per_ip, double header_s);
void dash_conn_destroy(dash_conn_t **t);
/* Whether a new connection from addr may be served. At a limit, the
 * connection with the oldest unfinished request (from addr, for the
 * per-address limit) is shut down to make room; false (refuse) when
 * there is none. */
bool dash_conn_admit(dash_conn_t *t, const struct sockaddr *addr);
/* Record an accepted connection (socket fd, peer addr[0..addrlen) or
 * NULL); its first request begins now. The entry (owned by the table)
 * lives until dash_conn_remove, which the caller must call before it
 * closes fd. */
dash_conn_entry_t *dash_conn_add(dash_conn_t *t, int fd, const struct sockaddr *addr, size_t addrlen);
void dash_conn_remove(dash_conn_t *t, dash_conn_entry_t *e);
/* The current request's header is complete: e is never shed until
 * dash_conn_request_done (an /events stream never is). NULL is fine. */
void dash_conn_header_done(dash_conn_t *t, dash_conn_entry_t *e);
/* The current request ended; the next one on the connection begins now. */
void dash_conn_request_done(dash_conn_t *t, dash_conn_entry_t *e);
/* Shut down every connection whose request began header_s ago or more
 * and whose header is not complete. Returns how many. */
int dash_conn_sweep(dash_conn_t *t);
void dash_conn_stats(dash_conn_t *t, dash_conn_stats_t *out);
/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
bool dash_conn_is_loopback(const struct sockaddr *a);

/* ---- dash_http: the web server ------------------------------------------- */

typedef struct dash_http dash_http_t;

typedef struct {
    const char *listen;      /* "[ADDR:]PORT"; ADDR defaults to 127.0.0.1 */
    const char *run;         /* default run label */
    dash_state_t *state;
    dash_sample_t *sample;
    int per_ip_limit;        /* connections from one non-loopback address */
    int conn_limit;          /* connections in all (see dash_conn) */
    int timeout_s;           /* idle connection timeout */
    int header_timeout_s;    /* a request's header must be complete within this */
} dash_http_opts_t;

/* Start serving. Returns 0 and *out, GB_EFORMAT for a bad --http value
 * (logged), or GB_EPEER when the port cannot be bound (logged). */
int dash_http_start(const dash_http_opts_t *o, dash_http_t **out);
/* Stop the server (ends SSE streams first). NULL is fine. */
void dash_http_stop(dash_http_t **h);

/* The embedded web assets (generated at build time from stages/dash/web
 * and Debian's Chart.js; see the Makefile). */
struct dash_asset {
    const char *path;        /* "/app.js" */
    const char *type;        /* MIME type */
    const unsigned char *data;
    unsigned long len;
};
extern const struct dash_asset dash_assets[];
extern const unsigned long dash_nassets;

#endif
