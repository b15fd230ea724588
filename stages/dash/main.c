/* main.c - gambar-dash: a live dashboard of the metrics stages publish.
 *
 * Subscribes to gambar.Metric and gambar.CheckpointReady on every
 * --metrics endpoint (one SUB socket each, connecting unless '@'), keeps
 * the figures (dash_state), and serves them over HTTP (dash_http): a live
 * page, /metrics for Prometheus, /events (Server-Sent Events),
 * /api/state (JSON) and /sample (images from a sampler). Optionally every
 * metric is appended to a JSON-lines file and to TensorBoard event files,
 * together with the newest sample grid (from --samples-dir, or asked of
 * the sampler after each checkpoint).
 *
 * The main thread is the only writer: it polls the SUB sockets in slices
 * of POLL_MS so it also notices the stop signal, flushes the files and
 * looks at --samples-dir now and then. Runs until SIGINT/SIGTERM, then
 * closes the event streams, stops the server and exits 0. */
#include "dash.h"

#include "cli.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "sig.h"
#include "wire.h"
#include "wire_conn.h"
#include "wire_sec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define POLL_MS 200
#define MAX_ENDPOINTS 16
#define SCAN_EVERY_S 2.0
#define FLUSH_EVERY_S 1.0
/* messages queued per SUB socket while the main thread is busy: ZeroMQ's
 * default of 1000 lost the tail of a burst (a garbage flood of 3000 on a
 * loaded machine dropped the good metrics after it) */
#define RCV_HWM 10000

typedef struct {
    const char *metrics, *http, *sample, *jsonl, *tb, *samples_dir, *run, *grid_prompt;
    long long history, sample_timeout, max_conns, max_per_ip, timeout_s, header_timeout_s, grid_n;
} opts_t;

typedef struct {
    opts_t o;
    dash_state_t *st;
    dash_sample_t *sampler;
    dash_tb_t *tb;
    int jsonl_fd;
    uint64_t last_step;          /* newest training step seen (for images) */
    char grid_name[512];         /* newest file taken from --samples-dir */
    struct timespec grid_mtime;
    off_t grid_size;
} dash_t;

/* ---- outputs ------------------------------------------------------------- */

static void jsonl_metric(dash_t *d, const Gambar__Metric *m) {
    if (d->jsonl_fd < 0) return;
    char buf[16384];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (!f) return;
    fputs("{\"type\":\"metric\",\"stage\":", f);
    json_str(f, m->stage ? m->stage : "");
    fputs(",\"run\":", f);
    json_str(f, m->run && m->run[0] ? m->run : (d->o.run ? d->o.run : ""));
    fputs(",\"name\":", f);
    json_str(f, m->name ? m->name : "");
    fputs(",\"value\":", f);
    json_num(f, m->value);
    fprintf(f, ",\"step\":%" PRIu64 ",\"epoch\":%u,\"wall_time\":", m->step, m->epoch);
    json_num(f, m->wall_time);
    fputs(",\"labels\":{", f);
    for (size_t i = 0; i < m->n_labels && i < DASH_MAX_LABELS; i++) {
        if (i) fputc(',', f);
        json_str(f, m->labels[i]->key ? m->labels[i]->key : "");
        fputc(':', f);
        json_str(f, m->labels[i]->value ? m->labels[i]->value : "");
    }
    fputs("}}\n", f);
    long len = ftell(f);
    bool fits = !ferror(f) && len > 0 && (size_t)len < sizeof buf - 1;
    fclose(f);
    if (!fits) {
        log_warn("metric %.64s: too long for a JSON line, not written", m->name ? m->name : "");
        return;
    }
    /* one write(2) per line on an O_APPEND file: lines never interleave */
    if (write(d->jsonl_fd, buf, (size_t)len) != (ssize_t)len)
        log_warn("--jsonl %s: write failed: %s", d->o.jsonl, strerror(errno));
}

static void jsonl_checkpoint(dash_t *d, const Gambar__CheckpointReady *c) {
    if (d->jsonl_fd < 0) return;
    char buf[8192];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (!f) return;
    fprintf(f, "{\"type\":\"checkpoint\",\"step\":%" PRIu64 ",\"epoch\":%u,\"run\":", c->step, c->epoch);
    json_str(f, c->run ? c->run : "");
    fputs(",\"path\":", f);
    json_str(f, c->path ? c->path : "");
    fputs("}\n", f);
    long len = ftell(f);
    bool fits = !ferror(f) && len > 0 && (size_t)len < sizeof buf - 1;
    fclose(f);
    if (fits && write(d->jsonl_fd, buf, (size_t)len) != (ssize_t)len)
        log_warn("--jsonl %s: write failed: %s", d->o.jsonl, strerror(errno));
}

static void tb_metric(dash_t *d, const Gambar__Metric *m) {
    if (!d->tb) return;
    char tag[1024];
    int n = snprintf(tag, sizeof tag, "%s/%s", m->stage && *m->stage ? m->stage : "metrics",
                     m->name && *m->name ? m->name : "unnamed");
    for (size_t i = 0; i < m->n_labels && n > 0 && (size_t)n < sizeof tag; i++)
        n += snprintf(tag + n, sizeof tag - (size_t)n, "/%s=%s", m->labels[i]->key ? m->labels[i]->key : "",
                      m->labels[i]->value ? m->labels[i]->value : "");
    if (dash_tb_scalar(d->tb, tag, (int64_t)m->step, m->wall_time > 0 ? m->wall_time : gb_wall(), (float)m->value))
        dash_tb_close(&d->tb); /* reported; stop writing rather than repeat it */
}

static void new_grid(dash_t *d, const void *png, size_t n, const char *source, uint64_t step) {
    int w, h, ch;
    if (dash_png_size(png, n, &w, &h, &ch)) {
        log_warn("sample grid from %s is not a PNG; ignored", source);
        return;
    }
    dash_state_set_grid(d->st, png, n, source, step);
    if (d->tb && dash_tb_image(d->tb, "samples/grid", (int64_t)step, gb_wall(), png, n, w, h, ch))
        dash_tb_close(&d->tb);
    log_debug("sample grid %dx%d from %s", w, h, source);
}

/* Take the newest *.png in --samples-dir when it changed. */
static void scan_samples_dir(dash_t *d) {
    DIR *dir = opendir(d->o.samples_dir);
    if (!dir) {
        log_debug("--samples-dir %s: %s", d->o.samples_dir, strerror(errno));
        return;
    }
    char best[512] = "";
    struct stat bst;
    memset(&bst, 0, sizeof bst);
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || l >= sizeof best || e->d_name[0] == '.' || strcmp(e->d_name + l - 4, ".png")) continue;
        struct stat st;
        if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) continue;
        if (st.st_size <= 0 || (size_t)st.st_size > DASH_MAX_PNG) continue;
        bool newer = !best[0] || st.st_mtim.tv_sec > bst.st_mtim.tv_sec ||
                     (st.st_mtim.tv_sec == bst.st_mtim.tv_sec &&
                      (st.st_mtim.tv_nsec > bst.st_mtim.tv_nsec ||
                       (st.st_mtim.tv_nsec == bst.st_mtim.tv_nsec && strcmp(e->d_name, best) > 0)));
        if (newer) {
            memcpy(best, e->d_name, l + 1);
            bst = st;
        }
    }
    if (best[0] && (strcmp(best, d->grid_name) || bst.st_mtim.tv_sec != d->grid_mtime.tv_sec ||
                    bst.st_mtim.tv_nsec != d->grid_mtime.tv_nsec || bst.st_size != d->grid_size)) {
        int fd = openat(dirfd(dir), best, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            size_t n = (size_t)bst.st_size;
            unsigned char *buf = xmalloc(n);
            ssize_t got = read(fd, buf, n);
            close(fd);
            if (got == (ssize_t)n) {
                char src[1024];
                snprintf(src, sizeof src, "%s/%s", d->o.samples_dir, best);
                new_grid(d, buf, n, src, d->last_step);
            }
            free(buf);
        }
        snprintf(d->grid_name, sizeof d->grid_name, "%s", best);
        d->grid_mtime = bst.st_mtim;
        d->grid_size = bst.st_size;
    }
    closedir(dir);
}

static void on_checkpoint(dash_t *d, const Gambar__CheckpointReady *c) {
    dash_state_add_checkpoint(d->st, c);
    jsonl_checkpoint(d, c);
    if (c->step > d->last_step) d->last_step = c->step;
    if (!d->o.sample) return;
    /* the same seeds every time (0 .. grid_n-1), so the strip shows the
     * same latents as training goes on; the sampler (gambar-sample --serve
     * --follow) has the checkpoint before it is announced, and its reply
     * says which step it used */
    char err[512];
    dash_sample_req_t rq = {"", d->o.grid_prompt, 0, (unsigned)d->o.grid_n, true};
    dash_sample_rep_t rep;
    if (dash_sample_ask(d->sampler, &rq, &rep, err, sizeof err)) {
        log_info("no sample grid for step %" PRIu64 ": %s", c->step, err);
        return;
    }
    char src[600];
    if (d->o.grid_prompt)
        snprintf(src, sizeof src, "sampler, seeds 0..%lld, \"%.400s\"", d->o.grid_n - 1, d->o.grid_prompt);
    else
        snprintf(src, sizeof src, "sampler, seeds 0..%lld", d->o.grid_n - 1);
    new_grid(d, rep.png, rep.len, src, rep.step);
    free(rep.png);
}

/* ---- main ------------------------------------------------------------------- */

static int run(dash_t *d) {
    int rc = 0;
    void *zctx = zmq_ctx_new();
    wire_conn_t *socks[MAX_ENDPOINTS] = {0};
    wire_stats_t stats[MAX_ENDPOINTS];
    memset(stats, 0, sizeof stats);
    int nsock = 0;
    dash_http_t *http = NULL;
    char *eps = xstrdup(d->o.metrics), *save = NULL;
    for (char *ep = strtok_r(eps, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        if (nsock == MAX_ENDPOINTS) {
            log_error("--metrics: more than %d endpoints", MAX_ENDPOINTS);
            rc = GB_EFORMAT;
            goto done;
        }
        rc = wire_conn_open(zctx, ZMQ_SUB, ep, 0, WIRE_MAX_SMALL_BYTES, RCV_HWM, "--metrics", &socks[nsock]);
        if (rc) {
            rc = GB_EPEER; /* wire_conn_open logged the endpoint and the reason */
            goto done;
        }
        wire_conn_subscribe(socks[nsock], "gambar.Metric");
        wire_conn_subscribe(socks[nsock], "gambar.CheckpointReady");
        nsock++;
    }
    if (!nsock) {
        log_error("--metrics: no endpoint given");
        rc = GB_EFORMAT;
        goto done;
    }
    d->sampler = dash_sample_new(zctx, d->o.sample, (int)d->o.sample_timeout);
    dash_http_opts_t ho = {d->o.http, d->o.run, d->st, d->sampler, (int)d->o.max_per_ip, (int)d->o.max_conns,
                           (int)d->o.timeout_s, (int)d->o.header_timeout_s};
    rc = dash_http_start(&ho, &http);
    if (rc) goto done;
    log_info("listening for metrics on %s", d->o.metrics);

    static const ProtobufCMessageDescriptor *const acc[] = {&gambar__metric__descriptor,
                                                            &gambar__checkpoint_ready__descriptor};
    zmq_pollitem_t items[MAX_ENDPOINTS];
    uint64_t received = 0;
    double next_scan = 0, next_flush = gb_now() + FLUSH_EVERY_S;
    while (!sig_stop_requested()) {
        if (d->o.samples_dir && gb_now() >= next_scan) {
            scan_samples_dir(d);
            next_scan = gb_now() + SCAN_EVERY_S;
        }
        if (gb_now() >= next_flush) {
            dash_tb_flush(d->tb, false);
            next_flush = gb_now() + FLUSH_EVERY_S;
        }
        /* a socket whose producer broke the protocol is replaced here */
        for (int i = 0; i < nsock; i++) {
            wire_conn_check(socks[i]);
            items[i] = (zmq_pollitem_t){wire_conn_socket(socks[i]), 0, ZMQ_POLLIN, 0};
        }
        int n = zmq_poll(items, nsock, POLL_MS);
        if (n < 0) {
            if (zmq_errno() == EINTR) continue;
            log_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
            rc = GB_EPEER;
            break;
        }
        for (int i = 0; i < nsock; i++) {
            if (!(items[i].revents & ZMQ_POLLIN)) continue;
            /* drain what is there, a bounded number per round */
            for (int k = 0; k < 1000; k++) {
                wire_msg_t *m = NULL;
                int r = wire_recv(wire_conn_socket(socks[i]), acc, 2, WIRE_MAX_SMALL_BYTES, 0, &m, &stats[i]);
                if (r == GB_EPEER) continue;
                if (r) break;
                received++;
                if (m->desc == &gambar__metric__descriptor) {
                    /* a shallow copy carrying --run when the metric names no
                     * run, so every output keys the series the same way */
                    Gambar__Metric mc = *(const Gambar__Metric *)m->msg;
                    if ((!mc.run || !mc.run[0]) && d->o.run) mc.run = (char *)d->o.run;
                    const Gambar__Metric *x = &mc;
                    if (x->step > d->last_step && !strcmp(x->stage ? x->stage : "", "train")) d->last_step = x->step;
                    dash_state_add_metric(d->st, x);
                    jsonl_metric(d, x);
                    tb_metric(d, x);
                } else {
                    on_checkpoint(d, (const Gambar__CheckpointReady *)m->msg);
                }
                wire_msg_destroy(&m);
            }
        }
        uint64_t dropped = 0;
        for (int i = 0; i < nsock; i++) dropped += wire_stats_dropped(&stats[i]);
        dash_state_set_counts(d->st, received, dropped);
    }
    if (sig_stop_requested()) log_info("stopping: %" PRIu64 " messages received", received);
done:
    dash_http_stop(&http);
    dash_sample_destroy(&d->sampler);
    for (int i = 0; i < nsock; i++) wire_conn_close(&socks[i]);
    zmq_ctx_term(zctx);
    free(eps);
    return rc;
}

int main(int argc, char **argv) {
    dash_t d;
    memset(&d, 0, sizeof d);
    d.jsonl_fd = -1;
    opts_t *o = &d.o;
    o->history = 2000;
    o->sample_timeout = 3000;
    o->max_conns = 256;
    o->max_per_ip = 16;
    o->timeout_s = 15;
    o->header_timeout_s = 10;
    o->grid_n = 16;
    const cli_opt_t opts[] = {
        {"metrics", 'm', CLI_STR, &o->metrics, "ENDPOINT[,...]", "SUB to Metric/CheckpointReady here (connects; '@' binds)",
         NULL},
        {"http", 0, CLI_STR, &o->http, "[ADDR:]PORT", "serve HTTP here (ADDR defaults to 127.0.0.1; PORT 0 picks one)",
         NULL},
        {"sample", 0, CLI_STR, &o->sample, "ENDPOINT", "gambar-sample --serve endpoint for /sample and grids", NULL},
        {"sample-timeout-ms", 0, CLI_INT, &o->sample_timeout, "MS", "wait this long for the sampler (default 3000)",
         NULL},
        {"jsonl", 0, CLI_STR, &o->jsonl, "FILE", "append every metric to FILE as JSON lines", NULL},
        {"tensorboard", 0, CLI_STR, &o->tb, "DIR", "write TensorBoard event files into DIR", NULL},
        {"samples-dir", 0, CLI_STR, &o->samples_dir, "DIR", "show the newest PNG grid in DIR", NULL},
        {"run", 0, CLI_STR, &o->run, "NAME", "run label for metrics that carry none", NULL},
        {"history", 0, CLI_INT, &o->history, "N", "points kept per series for the page (default 2000)", NULL},
        {"grid-n", 0, CLI_INT, &o->grid_n, "N", "images in the grid asked of the sampler per checkpoint (default 16)",
         NULL},
        {"grid-prompt", 0, CLI_STR, &o->grid_prompt, "TEXT",
         "ask the per-checkpoint grid with this prompt (SampleRequest.prompt; text models need one)", NULL},
        {"max-conns", 0, CLI_INT, &o->max_conns, "N",
         "HTTP connections in all; past it the oldest unfinished request is shed (default 256)", NULL},
        {"max-conns-per-ip", 0, CLI_INT, &o->max_per_ip, "N",
         "HTTP connections from one non-loopback address (default 16)", NULL},
        {"http-timeout", 0, CLI_INT, &o->timeout_s, "S", "close idle HTTP connections after S seconds (default 15)",
         NULL},
        {"http-header-timeout", 0, CLI_INT, &o->header_timeout_s, "S",
         "close a connection whose request header is not complete S seconds after it began (default 10)", NULL},
        WIRE_SEC_CLI_OPTS,
    };
    const cli_spec_t spec = {
        "gambar-dash", "--metrics ENDPOINT[,ENDPOINT...] --http [ADDR:]PORT [options]",
        "Live dashboard of the metrics gambar stages publish: a web page with loss curves, D(x)/D(G(z)), "
        "throughput, FID/KID/precision/recall, class balance and the latest sample grid; /metrics for "
        "Prometheus, /events (Server-Sent Events), /api/state (JSON), /sample (PNG from a sampler). "
        "Optionally JSON lines and TensorBoard event files. Runs until SIGINT/SIGTERM.",
        opts, (int)ARRAY_LEN(opts),
        "Exit status: 0 stopped by SIGINT/SIGTERM, 2 usage error, 4 an output file cannot be written, "
        "6 a socket or the HTTP port cannot be opened."};
    cli_parse(&spec, argc, argv);
    if (!o->metrics) cli_usage_error(&spec, "--metrics is required");
    if (!o->http) cli_usage_error(&spec, "--http is required");
    wire_sec_init(&spec, (const char *const[]){o->metrics, o->sample}, 2);
    if (o->history < 2 || o->history > 1000000) cli_usage_error(&spec, "--history %lld: out of range 2..1000000", o->history);
    if (o->sample_timeout < 1 || o->sample_timeout > 600000)
        cli_usage_error(&spec, "--sample-timeout-ms %lld: out of range 1..600000", o->sample_timeout);
    if (o->grid_n < 1 || o->grid_n > 64) cli_usage_error(&spec, "--grid-n %lld: out of range 1..64", o->grid_n);
    if (o->grid_prompt) {
        size_t len = strlen(o->grid_prompt), bad = dash_utf8_bad_at(o->grid_prompt, len);
        if (len > DASH_MAX_PROMPT)
            cli_usage_error(&spec, "--grid-prompt: %zu bytes long, at most %d bytes", len, DASH_MAX_PROMPT);
        if (bad < len)
            cli_usage_error(&spec, "--grid-prompt: not valid UTF-8 (byte 0x%02X at byte %zu)",
                            (unsigned char)o->grid_prompt[bad], bad);
    }
    if (o->max_conns < 2 || o->max_conns > 10000) cli_usage_error(&spec, "--max-conns %lld: out of range 2..10000", o->max_conns);
    if (o->max_per_ip < 1 || o->max_per_ip > o->max_conns)
        cli_usage_error(&spec, "--max-conns-per-ip %lld: out of range 1..--max-conns", o->max_per_ip);
    if (o->timeout_s < 1 || o->timeout_s > 3600) cli_usage_error(&spec, "--http-timeout %lld: out of range 1..3600", o->timeout_s);
    if (o->header_timeout_s < 1 || o->header_timeout_s > 3600)
        cli_usage_error(&spec, "--http-header-timeout %lld: out of range 1..3600", o->header_timeout_s);
    sig_install();
    int rc = 0;
    if (o->jsonl) {
        d.jsonl_fd = open(o->jsonl, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (d.jsonl_fd < 0) {
            log_error("--jsonl %s: cannot open: %s", o->jsonl, strerror(errno));
            return GB_EXIT_IO;
        }
    }
    if (o->tb && (rc = dash_tb_open(o->tb, &d.tb))) {
        if (d.jsonl_fd >= 0) close(d.jsonl_fd);
        return GB_EXIT_IO;
    }
    d.st = dash_state_new((int)o->history);
    rc = run(&d);
    dash_tb_close(&d.tb);
    if (d.jsonl_fd >= 0) {
        if (fsync(d.jsonl_fd) && errno != EINVAL) log_warn("--jsonl %s: fsync: %s", o->jsonl, strerror(errno));
        close(d.jsonl_fd);
    }
    dash_state_destroy(&d.st);
    /* every failure in run() was logged where it happened, naming the
     * endpoint or address */
    if (rc) return rc == GB_EFORMAT ? GB_EXIT_USAGE : err_exit_code(rc);
    return GB_EXIT_OK;
}
