/* dash_state.c - the dashboard's series store and its two renderings.
 *
 * A series is one (stage, run, name, labels) combination; it keeps the
 * latest value and a ring of the last `history` (step, value) points for
 * the page's curves. Series are few (tens: the trainer publishes ~8
 * figures, the evaluator ~12), so lookup is a linear scan and each series
 * is allocated once, when first seen; the number is capped so a
 * misbehaving publisher cannot make the dashboard grow without bound.
 *
 * Every metric also becomes one Server-Sent Event, kept in a fixed ring of
 * preallocated slots with increasing sequence numbers. Each SSE client
 * holds a cursor; a client further behind than the ring gets the whole
 * state again instead (never a silent gap). One mutex guards everything:
 * the writer is the receive loop, the readers are HTTP threads that
 * render under the lock (milliseconds at most).
 *
 * Strings from the wire are cut to DASH_MAX_STR bytes and made valid
 * UTF-8 (bad bytes become '?') when stored, because both JSON and the
 * Prometheus text format require UTF-8. */
#include "dash.h"

#include "err.h"
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <time.h>

typedef struct {
    char stage[DASH_MAX_STR], run[DASH_MAX_STR], name[DASH_MAX_STR];
    char prom[DASH_MAX_STR + 16]; /* gambar_<sanitised name> */
    int nl;
    char lk[DASH_MAX_LABELS][DASH_MAX_STR], lv[DASH_MAX_LABELS][DASH_MAX_STR];
    double last, wall;
    uint64_t step, count;
    uint32_t epoch;
    int head, n;       /* ring: next write position, points held */
    uint64_t *hstep;   /* [history] */
    double *hval;      /* [history] */
} series_t;

/* one sample grid of the strip */
typedef struct {
    unsigned char *png;
    size_t len;
    uint64_t version;       /* 1, 2, ... in arrival order */
    uint64_t step;          /* training step it shows */
    char source[256];
} grid_t;

struct dash_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int history;
    series_t *ser[DASH_MAX_SERIES];
    int nser;
    uint64_t series_dropped, metrics, checkpoints, received, dropped;
    /* latest checkpoint */
    char ck_path[512], ck_run[DASH_MAX_STR];
    uint64_t ck_step;
    uint32_t ck_epoch;
    bool ck_seen;
    /* SSE ring */
    char (*slot)[DASH_EVENT_BYTES];
    uint32_t *slot_len;
    uint64_t head;     /* sequence number of the next event */
    bool closing;
    /* the newest sample grids, oldest first (grid[ngrid - 1] is the latest) */
    grid_t grid[DASH_MAX_GRIDS];
    int ngrid;
    size_t grid_bytes;      /* PNG bytes held in grid[] */
    uint64_t grid_version;  /* version of the latest grid (0: none yet) */
};

/* Copy at most DASH_MAX_STR-1 bytes of src into dst as valid UTF-8:
 * invalid or control bytes become '?', a sequence cut by the limit is
 * dropped whole. */
static void copy_utf8(char *dst, const char *src) {
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    size_t o = 0;
    while (*s && o < DASH_MAX_STR - 1) {
        int len = json_utf8_len(s);
        if (!len || (len == 1 && (*s < 0x20 || *s == 0x7F))) {
            dst[o++] = '?';
            s++;
            continue;
        }
        if (o + (size_t)len > DASH_MAX_STR - 1) break;
        memcpy(dst + o, s, (size_t)len);
        o += (size_t)len;
        s += len;
    }
    dst[o] = 0;
}

/* Prometheus metric-name characters: [a-zA-Z0-9_] (':' is for rules). */
static void prom_name(char *dst, size_t cap, const char *prefix, const char *name) {
    size_t o = (size_t)snprintf(dst, cap, "%s", prefix);
    for (const char *p = name; *p && o + 1 < cap; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        dst[o++] = ok ? c : '_';
    }
    dst[o] = 0;
}

/* Names in the Prometheus exposition. The trainer's short names end or
 * start in "_d"/"_g", which Prometheus conventions read as units (days,
 * grams): those are exported under spelled-out names. Everything else is
 * gambar_<name>. The JSON, SSE, JSON-lines and TensorBoard outputs keep
 * the published names. */
static const struct {
    const char *name, *prom;
} PROM_RENAME[] = {
    {"loss_d", "gambar_loss_discriminator"},
    {"loss_g", "gambar_loss_generator"},
    {"d_real", "gambar_discriminator_real"},
    {"d_fake", "gambar_discriminator_fake"},
    {"grad_norm_d", "gambar_grad_norm_discriminator"},
    {"grad_norm_g", "gambar_grad_norm_generator"},
};

static void prom_series_name(char *dst, size_t cap, const char *name) {
    for (size_t i = 0; i < ARRAY_LEN(PROM_RENAME); i++)
        if (!strcmp(PROM_RENAME[i].name, name)) {
            snprintf(dst, cap, "%s", PROM_RENAME[i].prom);
            return;
        }
    prom_name(dst, cap, "gambar_", name);
}

dash_state_t *dash_state_new(int history) {
    ASSERT(history >= 2);
    dash_state_t *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->history = history;
    s->slot = xcalloc(DASH_EVENT_SLOTS, sizeof *s->slot);
    s->slot_len = xcalloc(DASH_EVENT_SLOTS, sizeof *s->slot_len);
    return s;
}

void dash_state_destroy(dash_state_t **ps) {
    dash_state_t *s = *ps;
    if (!s) return;
    for (int i = 0; i < s->nser; i++) {
        free(s->ser[i]->hstep);
        free(s->ser[i]->hval);
        free(s->ser[i]);
    }
    free(s->slot);
    free(s->slot_len);
    for (int i = 0; i < s->ngrid; i++) free(s->grid[i].png);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *ps = NULL;
}

/* Append one event (text already formatted) to the ring and wake the
 * readers. Caller holds the lock. An event over the slot size is
 * replaced by a note (cannot happen with the string caps above). */
static void push_event(dash_state_t *s, const char *kind, const char *json, size_t n) {
    char *slot = s->slot[s->head % DASH_EVENT_SLOTS];
    int len = snprintf(slot, DASH_EVENT_BYTES, "event: %s\ndata: %.*s\n\n", kind, (int)n, json);
    if (len < 0 || len >= DASH_EVENT_BYTES) len = snprintf(slot, DASH_EVENT_BYTES, "event: oversized\ndata: {}\n\n");
    s->slot_len[s->head % DASH_EVENT_SLOTS] = (uint32_t)len;
    s->head++;
    pthread_cond_broadcast(&s->cv);
}

static void series_json(FILE *f, const series_t *x, bool history, int cap) {
    fputs("{\"stage\":", f);
    json_str(f, x->stage);
    fputs(",\"run\":", f);
    json_str(f, x->run);
    fputs(",\"name\":", f);
    json_str(f, x->name);
    fputs(",\"labels\":{", f);
    for (int i = 0; i < x->nl; i++) {
        if (i) fputc(',', f);
        json_str(f, x->lk[i]);
        fputc(':', f);
        json_str(f, x->lv[i]);
    }
    fputs("},\"value\":", f);
    json_num(f, x->last);
    fprintf(f, ",\"step\":%" PRIu64 ",\"epoch\":%u,\"wall_time\":", x->step, x->epoch);
    json_num(f, x->wall);
    fprintf(f, ",\"count\":%" PRIu64, x->count);
    if (history) {
        fputs(",\"history\":[", f);
        int start = x->n < cap ? 0 : x->head;
        for (int i = 0; i < x->n; i++) {
            int k = (start + i) % cap;
            if (i) fputc(',', f);
            fprintf(f, "[%" PRIu64 ",", x->hstep[k]);
            json_num(f, x->hval[k]);
            fputc(']', f);
        }
        fputc(']', f);
    }
    fputc('}', f);
}

static int label_cmp(const void *a, const void *b) {
    const Gambar__Metric__LabelsEntry *const *x = a, *const *y = b;
    return strcmp((*x)->key ? (*x)->key : "", (*y)->key ? (*y)->key : "");
}

void dash_state_add_metric(dash_state_t *s, const Gambar__Metric *m) {
    /* the key, normalised outside the lock: labels sorted by key */
    series_t key;
    key.count = 0;
    copy_utf8(key.stage, m->stage);
    copy_utf8(key.run, m->run);
    copy_utf8(key.name, m->name);
    const Gambar__Metric__LabelsEntry *lab[DASH_MAX_LABELS];
    size_t nl = GB_MIN(m->n_labels, (size_t)DASH_MAX_LABELS);
    for (size_t i = 0; i < nl; i++) lab[i] = m->labels[i];
    qsort(lab, nl, sizeof lab[0], label_cmp);
    key.nl = (int)nl;
    for (size_t i = 0; i < nl; i++) {
        copy_utf8(key.lk[i], lab[i]->key);
        copy_utf8(key.lv[i], lab[i]->value);
    }
    if (!key.name[0]) snprintf(key.name, sizeof key.name, "unnamed");

    pthread_mutex_lock(&s->mu);
    s->metrics++;
    series_t *x = NULL;
    for (int i = 0; i < s->nser && !x; i++) {
        series_t *c = s->ser[i];
        if (strcmp(c->name, key.name) || strcmp(c->stage, key.stage) || strcmp(c->run, key.run) || c->nl != key.nl)
            continue;
        bool same = true;
        for (int j = 0; j < c->nl && same; j++)
            same = !strcmp(c->lk[j], key.lk[j]) && !strcmp(c->lv[j], key.lv[j]);
        if (same) x = c;
    }
    if (!x && s->nser < DASH_MAX_SERIES) {
        x = xcalloc(1, sizeof *x);
        memcpy(x->stage, key.stage, sizeof key.stage);
        memcpy(x->run, key.run, sizeof key.run);
        memcpy(x->name, key.name, sizeof key.name);
        prom_series_name(x->prom, sizeof x->prom, x->name);
        x->nl = key.nl;
        memcpy(x->lk, key.lk, sizeof key.lk);
        memcpy(x->lv, key.lv, sizeof key.lv);
        x->hstep = xcalloc((size_t)s->history, sizeof *x->hstep);
        x->hval = xcalloc((size_t)s->history, sizeof *x->hval);
        s->ser[s->nser++] = x;
    } else if (!x) {
        s->series_dropped++;
    }
    series_t *ev = x ? x : &key;
    ev->last = m->value;
    ev->step = m->step;
    ev->epoch = m->epoch;
    ev->wall = m->wall_time;
    ev->count++;
    if (x) {
        x->hstep[x->head] = m->step;
        x->hval[x->head] = m->value;
        x->head = (x->head + 1) % s->history;
        if (x->n < s->history) x->n++;
    }
    char buf[DASH_EVENT_BYTES];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (f) {
        series_json(f, ev, false, s->history);
        long len = ftell(f);
        fclose(f);
        if (len > 0 && (size_t)len < sizeof buf) push_event(s, "metric", buf, (size_t)len);
    }
    pthread_mutex_unlock(&s->mu);
}

static void checkpoint_json(FILE *f, const dash_state_t *s) {
    fprintf(f, "{\"step\":%" PRIu64 ",\"epoch\":%u,\"run\":", s->ck_step, s->ck_epoch);
    json_str(f, s->ck_run);
    fputs(",\"path\":", f);
    json_str(f, s->ck_path);
    fputc('}', f);
}

void dash_state_add_checkpoint(dash_state_t *s, const Gambar__CheckpointReady *c) {
    pthread_mutex_lock(&s->mu);
    s->checkpoints++;
    s->ck_seen = true;
    s->ck_step = c->step;
    s->ck_epoch = c->epoch;
    copy_utf8(s->ck_run, c->run);
    /* paths may be longer than DASH_MAX_STR: keep the tail, the file name */
    const char *p = c->path ? c->path : "";
    size_t pl = strlen(p);
    copy_utf8(s->ck_path, pl >= DASH_MAX_STR ? p + pl - (DASH_MAX_STR - 1) : p);
    char buf[DASH_EVENT_BYTES];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (f) {
        checkpoint_json(f, s);
        long len = ftell(f);
        fclose(f);
        if (len > 0 && (size_t)len < sizeof buf) push_event(s, "checkpoint", buf, (size_t)len);
    }
    pthread_mutex_unlock(&s->mu);
}

void dash_state_set_counts(dash_state_t *s, uint64_t received, uint64_t dropped) {
    pthread_mutex_lock(&s->mu);
    s->received = received;
    s->dropped = dropped;
    pthread_mutex_unlock(&s->mu);
}

/* Drop grid[k] (lock held). */
static void grid_drop(dash_state_t *s, int k) {
    s->grid_bytes -= s->grid[k].len;
    free(s->grid[k].png);
    memmove(&s->grid[k], &s->grid[k + 1], (size_t)(s->ngrid - k - 1) * sizeof s->grid[0]);
    s->ngrid--;
}

static void grid_json(FILE *f, const grid_t *g) {
    fprintf(f, "{\"version\":%" PRIu64 ",\"step\":%" PRIu64 ",\"source\":", g->version, g->step);
    char src[DASH_MAX_STR];
    copy_utf8(src, g->source);
    json_str(f, src);
    fputc('}', f);
}

void dash_state_set_grid(dash_state_t *s, const void *png, size_t n, const char *source, uint64_t step) {
    ASSERT(n <= DASH_MAX_PNG);
    unsigned char *copy = xmalloc(n);
    memcpy(copy, png, n);
    pthread_mutex_lock(&s->mu);
    source = source ? source : "";
    /* a second grid of the same step from the same source replaces it */
    for (int k = 0; k < s->ngrid; k++)
        if (s->grid[k].step == step && !strncmp(s->grid[k].source, source, sizeof s->grid[k].source - 1)) {
            grid_drop(s, k);
            break;
        }
    while (s->ngrid && (s->ngrid == DASH_MAX_GRIDS || s->grid_bytes + n > DASH_GRID_BYTES)) grid_drop(s, 0);
    grid_t *g = &s->grid[s->ngrid++];
    g->png = copy;
    g->len = n;
    g->version = ++s->grid_version;
    g->step = step;
    snprintf(g->source, sizeof g->source, "%s", source);
    s->grid_bytes += n;
    char buf[512];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (f) {
        grid_json(f, g);
        long len = ftell(f);
        fclose(f);
        if (len > 0 && (size_t)len < sizeof buf) push_event(s, "grid", buf, (size_t)len);
    }
    pthread_mutex_unlock(&s->mu);
}

int dash_state_get_grid_version(dash_state_t *s, uint64_t version, void **out, size_t *n) {
    int rc = GB_ENOTFOUND;
    pthread_mutex_lock(&s->mu);
    for (int k = s->ngrid - 1; k >= 0; k--) {
        const grid_t *g = &s->grid[k];
        if (version && g->version != version) continue;
        *out = xmalloc(g->len);
        memcpy(*out, g->png, g->len);
        *n = g->len;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int dash_state_get_grid(dash_state_t *s, void **out, size_t *n) { return dash_state_get_grid_version(s, 0, out, n); }

/* ---- Prometheus text format ------------------------------------------------ */

static const struct {
    const char *name, *help;
} HELP[] = {
    {"loss_d", "Discriminator loss at the last logged training step (published as loss_d)."},
    {"loss_g", "Generator loss at the last logged training step (published as loss_g)."},
    {"d_real", "Mean discriminator output on real images, D(x), a probability (published as d_real)."},
    {"d_fake", "Mean discriminator output on generated images, D(G(z)), a probability (published as d_fake)."},
    {"grad_norm_d", "L2 norm of the discriminator's gradient (published as grad_norm_d)."},
    {"grad_norm_g", "L2 norm of the generator's gradient (published as grad_norm_g)."},
    {"images_per_second", "Training throughput in images per second."},
    {"dropped_messages_total", "Messages the publishing stage dropped as malformed."},
    {"fid", "Frechet Inception-style distance between generated and training features."},
    {"kid", "Kernel inception-style distance (unbiased MMD squared)."},
    {"kid_std", "Standard deviation of KID over subsets."},
    {"precision", "Fraction of generated images inside the training manifold (ratio)."},
    {"recall", "Fraction of training images inside the generated manifold (ratio)."},
    {"class_kl", "KL divergence of the generated class balance from the training one, in nats."},
    {"eval_seconds", "Seconds one evaluation took."},
};

static void prom_escape(FILE *f, const char *x, bool quote_too) {
    for (const char *p = x; *p; p++) {
        if (*p == '\\') fputs("\\\\", f);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '"' && quote_too) fputs("\\\"", f);
        else fputc(*p, f);
    }
}

static void prom_value(FILE *f, double v) {
    if (isnan(v)) fputs("NaN", f);
    else if (isinf(v)) fputs(v > 0 ? "+Inf" : "-Inf", f);
    else fprintf(f, "%.17g", v);
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* A label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved),
 * and not one of ours (stage, run): those get a "label_" prefix. */
static void prom_label_name(char *dst, size_t cap, const char *k) {
    char tmp[DASH_MAX_STR + 8];
    prom_name(tmp, sizeof tmp, "", k);
    if (!tmp[0] || (tmp[0] >= '0' && tmp[0] <= '9') || !strncmp(tmp, "__", 2) || !strcmp(tmp, "stage") ||
        !strcmp(tmp, "run"))
        snprintf(dst, cap, "label_%s", tmp);
    else
        snprintf(dst, cap, "%s", tmp);
}

static void prom_labels(FILE *f, const char *stage, const char *run, const series_t *x) {
    fputs("{stage=\"", f);
    prom_escape(f, stage, true);
    fputs("\",run=\"", f);
    prom_escape(f, run, true);
    fputc('"', f);
    char k[DASH_MAX_LABELS][DASH_MAX_STR + 16];
    for (int i = 0; x && i < x->nl; i++) {
        prom_label_name(k[i], sizeof k[i], x->lk[i]);
        /* "a-b" and "a_b" both become a_b: a label name may appear once */
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) dup = !strcmp(k[j], k[i]);
        if (dup) continue;
        fprintf(f, ",%s=\"", k[i]);
        prom_escape(f, x->lv[i], true);
        fputc('"', f);
    }
    fputc('}', f);
}

static int series_prom_cmp(const void *a, const void *b) {
    const series_t *const *x = a, *const *y = b;
    int c = strcmp((*x)->prom, (*y)->prom);
    if (!c) c = strcmp((*x)->stage, (*y)->stage);
    if (!c) c = strcmp((*x)->run, (*y)->run);
    return c;
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s ", name);
    prom_escape(f, help, false);
    fprintf(f, "\n# TYPE %s %s\n", name, type);
}

void dash_state_prometheus(dash_state_t *s, const char *run, char **out, size_t *n) {
    FILE *f = open_memstream(out, n);
    ASSERT(f);
    pthread_mutex_lock(&s->mu);
    series_t *sorted[DASH_MAX_SERIES];
    memcpy(sorted, s->ser, (size_t)s->nser * sizeof sorted[0]);
    qsort(sorted, (size_t)s->nser, sizeof sorted[0], series_prom_cmp);
    const char *defrun = run ? run : "";
    for (int i = 0; i < s->nser; i++) {
        series_t *x = sorted[i];
        /* the dashboard's own families below use the gambar_dash_ prefix
         * and gambar_step/gambar_checkpoint_step; a stage metric with one
         * of those names would make a second family of the same name */
        if (!strncmp(x->prom, "gambar_dash_", 12) || !strcmp(x->prom, "gambar_step") ||
            !strcmp(x->prom, "gambar_checkpoint_step"))
            continue;
        if (i == 0 || strcmp(sorted[i - 1]->prom, x->prom)) {
            const char *help = NULL;
            for (size_t h = 0; h < ARRAY_LEN(HELP); h++)
                if (!strcmp(HELP[h].name, x->name)) help = HELP[h].help;
            char gen[DASH_MAX_STR + 64];
            if (!help) {
                snprintf(gen, sizeof gen, "Metric %s as published by gambar stages.", x->name);
                help = gen;
            }
            family(f, x->prom, ends_with(x->prom, "_total") ? "counter" : "gauge", help);
        }
        fputs(x->prom, f);
        prom_labels(f, x->stage, x->run[0] ? x->run : defrun, x);
        fputc(' ', f);
        prom_value(f, x->last);
        fputc('\n', f);
    }
    /* latest step per (stage, run) */
    bool any = false;
    for (int i = 0; i < s->nser; i++) {
        series_t *x = sorted[i];
        bool first = true;
        for (int j = 0; j < i && first; j++)
            if (!strcmp(sorted[j]->stage, x->stage) && !strcmp(sorted[j]->run, x->run)) first = false;
        if (!first) continue;
        uint64_t step = 0;
        for (int j = i; j < s->nser; j++)
            if (!strcmp(sorted[j]->stage, x->stage) && !strcmp(sorted[j]->run, x->run))
                step = GB_MAX(step, sorted[j]->step);
        if (!any) family(f, "gambar_step", "gauge", "Latest training step a stage reported a metric for.");
        any = true;
        fputs("gambar_step", f);
        prom_labels(f, x->stage, x->run[0] ? x->run : defrun, NULL);
        fprintf(f, " %" PRIu64 "\n", step);
    }
    if (s->ck_seen) {
        family(f, "gambar_checkpoint_step", "gauge", "Training step of the newest checkpoint announced.");
        fputs("gambar_checkpoint_step", f);
        prom_labels(f, "train", s->ck_run[0] ? s->ck_run : defrun, NULL);
        fprintf(f, " %" PRIu64 "\n", s->ck_step);
    }
    family(f, "gambar_dash_messages_received_total", "counter", "Well-formed messages the dashboard received.");
    fprintf(f, "gambar_dash_messages_received_total %" PRIu64 "\n", s->received);
    family(f, "gambar_dash_dropped_messages_total", "counter",
           "Malformed messages the dashboard dropped (bad frames, type, payload or size).");
    fprintf(f, "gambar_dash_dropped_messages_total %" PRIu64 "\n", s->dropped);
    family(f, "gambar_dash_series", "gauge", "Series the dashboard keeps.");
    fprintf(f, "gambar_dash_series %d\n", s->nser);
    family(f, "gambar_dash_series_dropped_total", "counter",
           "Metrics not kept because the series limit was reached.");
    fprintf(f, "gambar_dash_series_dropped_total %" PRIu64 "\n", s->series_dropped);
    pthread_mutex_unlock(&s->mu);
    fclose(f);
}

void dash_state_json(dash_state_t *s, char **out, size_t *n) {
    FILE *f = open_memstream(out, n);
    ASSERT(f);
    pthread_mutex_lock(&s->mu);
    fprintf(f,
            "{\"metrics\":%" PRIu64 ",\"received\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"series_dropped\":%" PRIu64
            ",\"checkpoints\":%" PRIu64 ",\"grid_version\":%" PRIu64 ",\"checkpoint\":",
            s->metrics, s->received, s->dropped, s->series_dropped, s->checkpoints, s->grid_version);
    if (s->ck_seen) checkpoint_json(f, s);
    else fputs("null", f);
    fputs(",\"grids\":[", f); /* newest first */
    for (int k = s->ngrid - 1; k >= 0; k--) {
        if (k != s->ngrid - 1) fputc(',', f);
        grid_json(f, &s->grid[k]);
    }
    fputs("],\"series\":[", f);
    for (int i = 0; i < s->nser; i++) {
        if (i) fputc(',', f);
        series_json(f, s->ser[i], true, s->history);
    }
    fputs("]}", f);
    pthread_mutex_unlock(&s->mu);
    fclose(f);
}

/* ---- SSE ------------------------------------------------------------------ */

uint64_t dash_state_event_head(dash_state_t *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t h = s->head;
    pthread_mutex_unlock(&s->mu);
    return h;
}

long dash_state_events(dash_state_t *s, uint64_t *cursor, char *buf, size_t max, int wait_ms) {
    pthread_mutex_lock(&s->mu);
    if (*cursor == s->head && !s->closing && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (*cursor == s->head && !s->closing)
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) break;
    }
    long out = 0;
    if (s->closing || s->head - *cursor > DASH_EVENT_SLOTS) {
        out = -1;
    } else {
        while (*cursor < s->head) {
            uint32_t len = s->slot_len[*cursor % DASH_EVENT_SLOTS];
            if ((size_t)out + len > max) break;
            memcpy(buf + out, s->slot[*cursor % DASH_EVENT_SLOTS], len);
            out += len;
            (*cursor)++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

void dash_state_close(dash_state_t *s) {
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool dash_state_closing(dash_state_t *s) {
    pthread_mutex_lock(&s->mu);
    bool c = s->closing;
    pthread_mutex_unlock(&s->mu);
    return c;
}
