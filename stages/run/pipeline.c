/* pipeline.c - pipeline files for gambar-run (see pipeline.h).
 *
 * Shaped as three passes over plain data (raw sections -> overrides ->
 * resolved stages) so that every message can point at the line and key
 * that caused it, and so the whole thing runs without starting a process
 * (the fuzz harness calls pl_parse + pl_set + pl_resolve). libinih does
 * the INI syntax; our reader feeds it one line at a time, which gives us
 * the line number of every key, refuses lines longer than libinih's
 * buffer (libinih would silently split them) and stops at the first
 * error (libinih would go on). Nothing here aborts on outside input. */
#include "pipeline.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "base.h"
#include "err.h"
#include "json.h"

/* ------------------------------------------------------------------ */
/* Built-in knowledge of the gambar stages: which option takes which
 * channel, and the message type it carries. */

typedef struct {
    const char *role;
    const char *option;
    const char *type;
    int multi; /* takes a comma list of endpoints */
} pl_role_spec_t;

typedef struct {
    const char *program;
    pl_role_spec_t roles[4];
    const char *restart_args; /* added on restart unless restart_args is set */
} pl_stage_spec_t;

static const pl_stage_spec_t pl_table[] = {
    {"gambar-ingest", {{0}}, NULL},
    {"gambar-augment", {{"out", "--out", "gambar.Batch", 0}}, NULL},
    {"gambar-train",
     {{"in", "--in", "gambar.Batch", 0}, {"metrics", "--metrics", "gambar.Metric", 0}},
     "--resume"},
    {"gambar-sample", {{"serve", "--serve", "gambar.SampleRequest", 0}}, NULL},
    {"gambar-eval",
     {{"in", "--follow", "gambar.Metric", 0}, {"metrics", "--metrics", "gambar.Metric", 0}},
     NULL},
    {"gambar-dash",
     {{"in", "--metrics", "gambar.Metric", 1}, {"sample", "--sample", "gambar.SampleRequest", 0}},
     NULL},
};
#define PL_NTABLE ((int)(sizeof pl_table / sizeof pl_table[0]))

/* Roles and their direction: producers (and servers) first. */
static const char *const pl_roles[] = {"out", "metrics", "serve", "in", "sample"};
static const int pl_role_produce[] = {1, 1, 1, 0, 0};
#define PL_NROLES 5

static const char *const pl_types[] = {"gambar.Batch",        "gambar.EndOfStream",
                                       "gambar.Metric",       "gambar.CheckpointReady",
                                       "gambar.SampleRequest", "gambar.SampleReply",
                                       "gambar.Heartbeat",    "gambar.Control"};
#define PL_NTYPES ((int)(sizeof pl_types / sizeof pl_types[0]))

static const char *const pl_stage_keys[] = {
    "command", "args",    "after",         "type",         "replicas",         "restart",
    "start_retries", "stop_signal", "stop_timeout", "environment", "host", "restart_args",
    "start_batch_from", "optional", "out", "metrics", "serve", "in", "sample",
    "ranks", "hosts", "mpirun", "mpirun_args"};
#define PL_NSTAGE_KEYS ((int)(sizeof pl_stage_keys / sizeof pl_stage_keys[0]))

/* ------------------------------------------------------------------ */
/* Small helpers. */

typedef struct {
    char *s;
    size_t n, cap;
} sb_t;

static void sb_addn(sb_t *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        b->s = xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_add(sb_t *b, const char *s) { sb_addn(b, s, strlen(s)); }
static char *sb_take(sb_t *b) {
    if (!b->s) sb_addn(b, "", 0);
    char *s = b->s;
    b->s = NULL;
    b->n = b->cap = 0;
    return s;
}

static void pl_err(pipeline_t *pl, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pl_err(pipeline_t *pl, int line, const char *fmt, ...) {
    pl->nerrs_total++;
    if (pl->nerrs >= PL_MAX_ERRORS) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char full[1400];
    if (line > 0)
        snprintf(full, sizeof full, "%s:%d: %s", pl->file, line, msg);
    else
        snprintf(full, sizeof full, "%s: %s", pl->file, msg);
    pl->errs[pl->nerrs].line = line;
    pl->errs[pl->nerrs].msg = xstrdup(full);
    pl->nerrs++;
}

int pl_edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 64 || nb > 64) return 100;
    int prev[65], cur[65];
    for (size_t j = 0; j <= nb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int c = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < c) c = prev[j] + 1;
            if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
            cur[j] = c;
        }
        memcpy(prev, cur, sizeof(int) * (nb + 1));
    }
    return prev[nb] > 100 ? 100 : prev[nb];
}

/* The closest of cands to word if it is close enough to be a likely typo,
 * else NULL. */
static const char *pl_suggest(const char *word, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 1000;
    for (int i = 0; i < n; i++) {
        if (!cands[i]) continue;
        int d = pl_edit_distance(word, cands[i]);
        if (d < bd) {
            bd = d;
            best = cands[i];
        }
    }
    int len = (int)strlen(word);
    if (best && bd > 0 && (bd <= 2 || bd * 3 <= len)) return best;
    return NULL;
}

/* " (did you mean 'x'?)" or "" into buf. */
static const char *pl_hint(char *buf, size_t n, const char *word, const char *const *cands, int nc) {
    const char *s = pl_suggest(word, cands, nc);
    if (s)
        snprintf(buf, n, " (did you mean '%s'?)", s);
    else
        buf[0] = 0;
    return buf;
}

static int pl_valid_name(const char *s) {
    if (!*s || strlen(s) > 64) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') return 0;
    return 1;
}

static char *pl_trim_dup(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    char *r = xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* Split a comma list into trimmed, non-empty items (new array of new
 * strings; *n gets the count). */
static char **pl_split_commas(const char *s, int *n) {
    char **v = NULL;
    int cnt = 0;
    const char *p = s;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char *item = pl_trim_dup(p, len);
        if (*item) {
            v = xrealloc(v, sizeof(char *) * (cnt + 1));
            v[cnt++] = item;
        } else {
            free(item);
        }
        if (!c) break;
        p = c + 1;
    }
    *n = cnt;
    return v;
}

static void pl_free_strv(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* ------------------------------------------------------------------ */
/* Pass 1: parse. */

typedef struct {
    pipeline_t *pl;
    const char *p, *end;
    int lineno;
    int cont;      /* the current line continues the previous value */
    int sec_line;  /* line of the latest section header */
    int failed;
} pl_reader_t;

static pl_sec_t *pl_find_sec(pipeline_t *pl, const char *name) {
    for (int i = 0; i < pl->nsecs; i++)
        if (!strcmp(pl->secs[i].name, name)) return &pl->secs[i];
    return NULL;
}

static pl_kv_t *pl_find_kv(pl_sec_t *s, const char *key) {
    for (int i = 0; i < s->nkv; i++)
        if (!strcmp(s->kv[i].key, key)) return &s->kv[i];
    return NULL;
}

static pl_sec_t *pl_add_sec(pipeline_t *pl, const char *name, int line) {
    pl->secs = xrealloc(pl->secs, sizeof(pl_sec_t) * (pl->nsecs + 1));
    pl_sec_t *s = &pl->secs[pl->nsecs++];
    memset(s, 0, sizeof *s);
    s->name = xstrdup(name);
    s->line = line;
    return s;
}

static void pl_add_kv(pl_sec_t *s, const char *key, const char *val, int line) {
    s->kv = xrealloc(s->kv, sizeof(pl_kv_t) * (s->nkv + 1));
    s->kv[s->nkv].key = xstrdup(key);
    s->kv[s->nkv].val = xstrdup(val);
    s->kv[s->nkv].line = line;
    s->nkv++;
}

static char *pl_read_line(char *str, int num, void *stream) {
    pl_reader_t *r = stream;
    if (r->failed || r->p >= r->end) return NULL;
    const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    size_t len = nl ? (size_t)(nl - r->p) + 1 : (size_t)(r->end - r->p);
    r->lineno++;
    /* libinih needs room for the text, CR, LF and NUL. */
    size_t text = len;
    if (text && r->p[text - 1] == '\n') text--;
    if (text && r->p[text - 1] == '\r') text--;
    if (num < 4 || text + 3 > (size_t)num) {
        pl_err(r->pl, r->lineno, "line too long (%zu bytes, at most %d): split 'args' over indented "
               "continuation lines or use opt.NAME keys", text, num - 3);
        r->failed = 1;
        return NULL;
    }
    if (memchr(r->p, 0, len)) {
        pl_err(r->pl, r->lineno, "NUL byte in the file (not a text file?)");
        r->failed = 1;
        return NULL;
    }
    memcpy(str, r->p, len);
    str[len] = 0;
    r->p += len;
    const char *q = str;
    while (*q == ' ' || *q == '\t') q++;
    r->cont = q > str && *q && *q != '\n' && *q != '\r' && *q != ';' && *q != '#';
    if (*q == '[') {
        const char *e = strchr(q, ']');
        if (e) {
            char *name = pl_trim_dup(q + 1, (size_t)(e - q - 1));
            pl_sec_t *s = pl_find_sec(r->pl, name);
            if (s) {
                pl_err(r->pl, r->lineno, "section [%s] appears twice (first at line %d)", name, s->line);
                r->failed = 1;
                free(name);
                return NULL;
            }
            if (r->pl->nsecs >= PL_MAX_SECTIONS) {
                pl_err(r->pl, r->lineno, "too many sections (at most %d)", PL_MAX_SECTIONS);
                r->failed = 1;
                free(name);
                return NULL;
            }
            if (!*name) {
                pl_err(r->pl, r->lineno, "empty section name");
                r->failed = 1;
                free(name);
                return NULL;
            }
            pl_add_sec(r->pl, name, r->lineno);
            free(name);
        }
        r->sec_line = r->lineno;
    }
    return str;
}

static int pl_on_kv(void *user, const char *section, const char *name, const char *value) {
    pl_reader_t *r = user;
    pipeline_t *pl = r->pl;
    if (r->failed) return 0;
    int line = r->lineno;
    if (!*section) {
        pl_err(pl, line, "'%s' is outside any [section]", name);
        goto fail;
    }
    pl_sec_t *s = pl_find_sec(pl, section);
    if (!s) s = pl_add_sec(pl, section, r->sec_line); /* header not seen by us: cannot happen */
    pl_kv_t *kv = pl_find_kv(s, name);
    if (r->cont && kv) {
        if (strcmp(name, "args") && strcmp(name, "environment") && strcmp(name, "after") &&
            strcmp(name, "restart_args")) {
            pl_err(pl, line, "[%s] %s: indented line continues '%s', but only args, restart_args, "
                   "environment and after may span lines (do not indent keys)", section, name, name);
            goto fail;
        }
        /* libinih strips " ;" comments from first lines only */
        char *cv = xstrdup(value);
        for (char *q = cv; *q; q++)
            if (*q == ';' && q > cv && isspace((unsigned char)q[-1])) {
                *q = 0;
                break;
            }
        for (size_t l = strlen(cv); l && isspace((unsigned char)cv[l - 1]);) cv[--l] = 0;
        value = cv;
        size_t ol = strlen(kv->val), nl = strlen(value);
        if (ol + nl + 2 > PL_MAX_VALUE) {
            pl_err(pl, line, "[%s] %s: value too long (over %d bytes)", section, name, PL_MAX_VALUE);
            free(cv);
            goto fail;
        }
        char *v = xmalloc(ol + nl + 2);
        memcpy(v, kv->val, ol);
        v[ol] = strcmp(name, "args") && strcmp(name, "restart_args") ? ',' : ' ';
        memcpy(v + ol + 1, value, nl + 1);
        free(cv);
        free(kv->val);
        kv->val = v;
        return 1;
    }
    if (kv) {
        pl_err(pl, line, "[%s] %s: given twice (first at line %d)", section, name, kv->line);
        goto fail;
    }
    if (!*name) {
        pl_err(pl, line, "[%s]: empty key", section);
        goto fail;
    }
    if (s->nkv >= PL_MAX_KEYS) {
        pl_err(pl, line, "[%s]: too many keys (at most %d)", section, PL_MAX_KEYS);
        goto fail;
    }
    pl_add_kv(s, name, value, line);
    return 1;
fail:
    r->failed = 1;
    return 0;
}

int pl_parse(const char *text, size_t n, const char *file, pipeline_t **out) {
    pipeline_t *pl = xcalloc(1, sizeof *pl);
    pl->file = xstrdup(file ? file : "<pipeline>");
    *out = pl;
    if (n > PL_MAX_FILE) {
        pl_err(pl, 0, "file too big (%zu bytes, at most %u)", n, PL_MAX_FILE);
        return GB_ETOOBIG;
    }
    pl_reader_t r = {.pl = pl, .p = text, .end = text + n};
    int rc = ini_parse_stream(pl_read_line, &r, pl_on_kv, &r);
    if (rc > 0 && (!r.failed || (pl->nerrs && pl->errs[0].line > rc))) {
        /* a syntax error libinih found itself, before any of ours */
        for (int i = 0; i < pl->nerrs; i++) free(pl->errs[i].msg);
        pl->nerrs = pl->nerrs_total = 0;
        pl_err(pl, rc, "syntax error: expected '[section]', 'key = value' or a ';' comment");
        return GB_EFORMAT;
    }
    if (rc < 0) {
        pl_err(pl, 0, "cannot parse (libinih error %d)", rc);
        return GB_EFORMAT;
    }
    return pl->nerrs ? GB_EFORMAT : 0;
}

int pl_load(const char *path, pipeline_t **out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        pipeline_t *pl = xcalloc(1, sizeof *pl);
        pl->file = xstrdup(path);
        pl_err(pl, 0, "cannot open: %s", strerror(e));
        *out = pl;
        return e;
    }
    sb_t b = {0};
    char buf[65536];
    size_t got;
    int too_big = 0;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        if (b.n + got > PL_MAX_FILE) {
            too_big = 1;
            break;
        }
        sb_addn(&b, buf, got);
    }
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (too_big || e) {
        free(b.s);
        pipeline_t *pl = xcalloc(1, sizeof *pl);
        pl->file = xstrdup(path);
        if (too_big)
            pl_err(pl, 0, "file too big (over %u bytes)", PL_MAX_FILE);
        else
            pl_err(pl, 0, "read error: %s", strerror(e));
        *out = pl;
        return too_big ? GB_ETOOBIG : (e ? e : EIO);
    }
    int rc = pl_parse(b.s ? b.s : "", b.n, path, out);
    free(b.s);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Pass 2: overrides. */

static int pl_is_stage_key(const char *k) {
    for (int i = 0; i < PL_NSTAGE_KEYS; i++)
        if (!strcmp(k, pl_stage_keys[i])) return 1;
    return !strncmp(k, "opt.", 4) || strchr(k, '.') != NULL;
}

int pl_set(pipeline_t *pl, const char *a) {
    const char *dot = strchr(a, '.');
    const char *eq = strchr(a, '=');
    if (!dot || !eq || dot > eq || dot == a || eq == dot + 1) {
        pl_err(pl, 0, "--set %s: expected SECTION.KEY=VALUE, e.g. train.steps=500 or vars.epochs=3", a);
        return GB_EFORMAT;
    }
    char *sec = pl_trim_dup(a, (size_t)(dot - a));
    char *key = pl_trim_dup(dot + 1, (size_t)(eq - dot - 1));
    char *val = pl_trim_dup(eq + 1, strlen(eq + 1));
    int rc = 0;
    pl_sec_t *s = pl_find_sec(pl, sec);
    if (!s && strcmp(sec, "vars") && strcmp(sec, "pipeline") && strcmp(sec, "channels")) {
        const char *names[PL_MAX_SECTIONS];
        for (int i = 0; i < pl->nsecs; i++) names[i] = pl->secs[i].name;
        char h[128];
        pl_err(pl, 0, "--set %s: no section [%s] in the file%s", a, sec,
               pl_hint(h, sizeof h, sec, names, pl->nsecs));
        rc = GB_EFORMAT;
        goto done;
    }
    if (!s) s = pl_add_sec(pl, sec, 0);
    int is_stage = strcmp(sec, "vars") && strcmp(sec, "pipeline") && strcmp(sec, "channels") &&
                   strncmp(sec, "channel ", 8);
    char *k = key;
    char optkey[256];
    if (is_stage && !pl_is_stage_key(key)) {
        snprintf(optkey, sizeof optkey, "opt.%s", key);
        k = optkey;
    }
    pl_kv_t *kv = pl_find_kv(s, k);
    if (kv) {
        free(kv->val);
        kv->val = xstrdup(val);
        kv->line = 0;
    } else {
        pl_add_kv(s, k, val, 0);
    }
done:
    free(sec);
    free(key);
    free(val);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Pass 3: resolve. */

typedef struct {
    pipeline_t *pl;
    const pl_opts_t *o;
    pl_sec_t *vars;
    const char *stage;   /* ${name} */
    int replica, replicas;
    char file_dir[PATH_MAX];
    int quiet;           /* do not report (replicas after the first) */
} pl_ctx_t;

static int pl_expand_into(pl_ctx_t *c, const char *s, int line, const char *key, sb_t *b, int depth);
static int pl_stage_index(const pipeline_t *pl, const char *name);
static void pl_unknown_stage(pipeline_t *pl, int line, const char *what, const char *name);

static int pl_lookup_var(pl_ctx_t *c, const char *name, int line, const char *key, sb_t *b, int depth) {
    char num[32];
    if (!strcmp(name, "run_dir")) {
        sb_add(b, c->o->run_dir);
        return 0;
    }
    if (!strcmp(name, "file_dir")) {
        sb_add(b, c->file_dir);
        return 0;
    }
    if (!strcmp(name, "name") && c->stage) {
        sb_add(b, c->stage);
        return 0;
    }
    if (!strcmp(name, "replica") && c->stage) {
        snprintf(num, sizeof num, "%d", c->replica);
        sb_add(b, num);
        return 0;
    }
    if (!strcmp(name, "replicas") && c->stage) {
        snprintf(num, sizeof num, "%d", c->replicas);
        sb_add(b, num);
        return 0;
    }
    if (!strncmp(name, "latest:", 7)) {
        /* resolved by gambar-run when the stage starts: the newest valid
         * checkpoint in that stage's --ckpt-dir */
        if (pl_stage_index(c->pl, name + 7) < 0) {
            if (!c->quiet) {
                char what[200];
                snprintf(what, sizeof what, "%s: ${%s}", key, name);
                pl_unknown_stage(c->pl, line, what, name + 7);
            }
            return GB_EFORMAT;
        }
        sb_add(b, "${");
        sb_add(b, name);
        sb_add(b, "}");
        return 0;
    }
    const char *vn = !strncmp(name, "vars.", 5) ? name + 5 : name;
    if (c->vars) {
        pl_kv_t *kv = pl_find_kv(c->vars, vn);
        if (kv) {
            if (depth >= 8) {
                if (!c->quiet) pl_err(c->pl, line, "%s: variables nest too deep (a cycle through ${%s}?)", key, vn);
                return GB_EFORMAT;
            }
            return pl_expand_into(c, kv->val, line, key, b, depth + 1);
        }
    }
    if (!c->quiet) {
        const char *cands[PL_MAX_KEYS + 5] = {"run_dir", "file_dir", "name", "replica", "replicas"};
        int nc = 5;
        if (c->vars)
            for (int i = 0; i < c->vars->nkv && nc < PL_MAX_KEYS + 5; i++) cands[nc++] = c->vars->kv[i].key;
        char h[128];
        pl_err(c->pl, line, "%s: unknown variable ${%s}%s", key, name, pl_hint(h, sizeof h, name, cands, nc));
    }
    return GB_EFORMAT;
}

static int pl_expand_into(pl_ctx_t *c, const char *s, int line, const char *key, sb_t *b, int depth) {
    const char *p = s;
    while (*p) {
        if (p[0] == '$' && p[1] == '$') {
            sb_addn(b, "$", 1);
            p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *e = strchr(p + 2, '}');
            if (!e) {
                if (!c->quiet) pl_err(c->pl, line, "%s: '${' without a closing '}'", key);
                return GB_EFORMAT;
            }
            char name[128];
            size_t n = (size_t)(e - p - 2);
            if (n == 0 || n >= sizeof name) {
                if (!c->quiet) pl_err(c->pl, line, "%s: bad variable reference", key);
                return GB_EFORMAT;
            }
            memcpy(name, p + 2, n);
            name[n] = 0;
            int rc = pl_lookup_var(c, name, line, key, b, depth);
            if (rc) return rc;
            if (b->n > PL_MAX_VALUE) {
                if (!c->quiet) pl_err(c->pl, line, "%s: value too long after expansion", key);
                return GB_EFORMAT;
            }
            p = e + 1;
        } else {
            const char *q = p + 1;
            while (*q && *q != '$') q++;
            sb_addn(b, p, (size_t)(q - p));
            p = q;
        }
    }
    return 0;
}

/* Expand variables in s; NULL on error (reported). */
static char *pl_expand(pl_ctx_t *c, const char *s, int line, const char *key) {
    sb_t b = {0};
    if (pl_expand_into(c, s, line, key, &b, 0)) {
        free(b.s);
        return NULL;
    }
    return sb_take(&b);
}

/* Split s into words: whitespace separates, '...' and "..." quote,
 * backslash escapes outside single quotes. Returns 0 or -1 (unbalanced). */
static int pl_split_words(const char *s, char ***out, int *n) {
    char **v = NULL;
    int cnt = 0;
    const char *p = s;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        sb_t w = {0};
        sb_addn(&w, "", 0);
        while (*p && !isspace((unsigned char)*p)) {
            if (*p == '\'') {
                const char *e = strchr(p + 1, '\'');
                if (!e) goto bad;
                sb_addn(&w, p + 1, (size_t)(e - p - 1));
                p = e + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
                    sb_addn(&w, p, 1);
                    p++;
                }
                if (*p != '"') goto bad;
                p++;
            } else if (*p == '\\' && p[1]) {
                sb_addn(&w, p + 1, 1);
                p += 2;
            } else {
                sb_addn(&w, p, 1);
                p++;
            }
            continue;
        bad:
            free(w.s);
            pl_free_strv(v, cnt);
            return -1;
        }
        v = xrealloc(v, sizeof(char *) * (cnt + 1));
        v[cnt++] = sb_take(&w);
    }
    *out = v;
    *n = cnt;
    return 0;
}

static int pl_parse_int(const char *s, long lo, long hi, long *out) {
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int pl_parse_signal(const char *s) {
    static const struct {
        const char *n;
        int sig;
    } t[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"KILL", SIGKILL}, {"HUP", SIGHUP},
             {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
    if (!strncmp(s, "SIG", 3)) s += 3;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].n)) return t[i].sig;
    return -1;
}

static const char *pl_signal_name(int sig) {
    switch (sig) {
    case SIGTERM: return "TERM";
    case SIGINT: return "INT";
    case SIGKILL: return "KILL";
    case SIGHUP: return "HUP";
    case SIGQUIT: return "QUIT";
    case SIGUSR1: return "USR1";
    case SIGUSR2: return "USR2";
    default: return "?";
    }
}

static int pl_stage_index(const pipeline_t *pl, const char *name) {
    for (int i = 0; i < pl->nstages; i++)
        if (!strcmp(pl->stages[i].name, name)) return i;
    return -1;
}

static int pl_chan_index(const pipeline_t *pl, const char *name) {
    for (int i = 0; i < pl->nchans; i++)
        if (!strcmp(pl->chans[i].name, name)) return i;
    return -1;
}

static void pl_unknown_stage(pipeline_t *pl, int line, const char *what, const char *name) {
    const char *cands[PL_MAX_SECTIONS];
    for (int i = 0; i < pl->nstages; i++) cands[i] = pl->stages[i].name;
    char h[128];
    pl_err(pl, line, "%s: unknown stage '%s'%s", what, name, pl_hint(h, sizeof h, name, cands, pl->nstages));
}

/* Find program for command: a path is checked as is; a bare name is
 * looked up in bin_dir, then PATH. Returns a new string or NULL with
 * *why set. */
static char *pl_find_program(const char *cmd, const char *bin_dir, const char **why) {
    struct stat st;
    if (strchr(cmd, '/')) {
        if (stat(cmd, &st) != 0) {
            *why = "no such file";
            return NULL;
        }
        if (!S_ISREG(st.st_mode) || access(cmd, X_OK) != 0) {
            *why = "not an executable file";
            return NULL;
        }
        return xstrdup(cmd);
    }
    char path[PATH_MAX];
    int seen_noexec = 0;
    if (bin_dir && *bin_dir) {
        snprintf(path, sizeof path, "%s/%s", bin_dir, cmd);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(path, X_OK) == 0) return xstrdup(path);
            seen_noexec = 1;
        }
    }
    const char *env = getenv("PATH");
    if (!env) env = "/usr/local/bin:/usr/bin:/bin";
    const char *p = env;
    for (;;) {
        const char *c = strchr(p, ':');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == 0) {
            snprintf(path, sizeof path, "./%s", cmd);
        } else if (len < sizeof path - 2) {
            snprintf(path, sizeof path, "%.*s/%s", (int)len, p, cmd);
        } else {
            path[0] = 0;
        }
        if (path[0] && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(path, X_OK) == 0) return xstrdup(path);
            seen_noexec = 1;
        }
        if (!c) break;
        p = c + 1;
    }
    *why = seen_noexec ? "found but not executable" : "not found in the gambar bin folder nor on PATH";
    return NULL;
}

static int pl_table_index(const char *cmd) {
    const char *base = strrchr(cmd, '/');
    base = base ? base + 1 : cmd;
    for (int i = 0; i < PL_NTABLE; i++)
        if (!strcmp(base, pl_table[i].program)) return i;
    return -1;
}

static const pl_role_spec_t *pl_role_spec(int t, const char *role) {
    if (t < 0) return NULL;
    for (int i = 0; i < 4 && pl_table[t].roles[i].role; i++)
        if (!strcmp(pl_table[t].roles[i].role, role)) return &pl_table[t].roles[i];
    return NULL;
}

static int pl_role_index(const char *k) {
    for (int i = 0; i < PL_NROLES; i++)
        if (!strcmp(k, pl_roles[i])) return i;
    return -1;
}

static void pl_read_channels(pipeline_t *pl, pl_ctx_t *c) {
    for (int i = 0; i < pl->nsecs; i++) {
        pl_sec_t *s = &pl->secs[i];
        if (!strcmp(s->name, "channels")) {
            for (int k = 0; k < s->nkv; k++) {
                if (!pl_valid_name(s->kv[k].key)) {
                    pl_err(pl, s->kv[k].line, "[channels] '%s': a channel name is letters, digits, '_' and '-'",
                           s->kv[k].key);
                    continue;
                }
                if (pl_chan_index(pl, s->kv[k].key) >= 0) {
                    pl_err(pl, s->kv[k].line, "[channels] %s: channel declared twice", s->kv[k].key);
                    continue;
                }
                pl->chans = xrealloc(pl->chans, sizeof(pl_chan_t) * (pl->nchans + 1));
                pl_chan_t *ch = &pl->chans[pl->nchans++];
                memset(ch, 0, sizeof *ch);
                ch->name = xstrdup(s->kv[k].key);
                ch->type = xstrdup(s->kv[k].val);
                ch->line = s->kv[k].line;
            }
        } else if (!strncmp(s->name, "channel ", 8)) {
            char *name = pl_trim_dup(s->name + 8, strlen(s->name + 8));
            if (!pl_valid_name(name)) {
                pl_err(pl, s->line, "[%s]: a channel name is letters, digits, '_' and '-'", s->name);
                free(name);
                continue;
            }
            if (pl_chan_index(pl, name) >= 0) {
                pl_err(pl, s->line, "[%s]: channel declared twice", s->name);
                free(name);
                continue;
            }
            pl->chans = xrealloc(pl->chans, sizeof(pl_chan_t) * (pl->nchans + 1));
            pl_chan_t *ch = &pl->chans[pl->nchans++];
            memset(ch, 0, sizeof *ch);
            ch->name = name;
            ch->line = s->line;
            for (int k = 0; k < s->nkv; k++) {
                pl_kv_t *kv = &s->kv[k];
                if (!strcmp(kv->key, "type")) {
                    ch->type = xstrdup(kv->val);
                } else if (!strcmp(kv->key, "endpoint")) {
                    c->stage = NULL;
                    ch->endpoint = pl_expand(c, kv->val, kv->line, "endpoint");
                } else {
                    static const char *const keys[] = {"type", "endpoint"};
                    char h[128];
                    pl_err(pl, kv->line, "[%s] %s: unknown key%s (a channel has type and endpoint)", s->name,
                           kv->key, pl_hint(h, sizeof h, kv->key, keys, 2));
                }
            }
            if (!ch->type) pl_err(pl, s->line, "[%s]: missing 'type' (e.g. type = gambar.Batch)", s->name);
        }
    }
    for (int i = 0; i < pl->nchans; i++) {
        pl_chan_t *ch = &pl->chans[i];
        if (ch->type) {
            int ok = 0;
            for (int t = 0; t < PL_NTYPES; t++) ok |= !strcmp(ch->type, pl_types[t]);
            if (!ok) {
                char h[128];
                pl_err(pl, ch->line, "channel '%s': unknown message type '%s'%s", ch->name, ch->type,
                       pl_hint(h, sizeof h, ch->type, pl_types, PL_NTYPES));
            }
        }
        if (ch->endpoint) {
            const char *e = ch->endpoint;
            if (*e == '@' || *e == '>') {
                pl_err(pl, ch->line, "channel '%s': endpoint '%s' must not have a '@'/'>' prefix (gambar-run "
                       "decides which side binds)", ch->name, e);
            } else if (strncmp(e, "tcp://", 6) && strncmp(e, "ipc://", 6)) {
                pl_err(pl, ch->line, "channel '%s': endpoint '%s' must be tcp:// or ipc:// (stages are "
                       "separate processes)", ch->name, e);
            }
        } else {
            sb_t b = {0};
            sb_add(&b, "ipc://");
            sb_add(&b, c->o->run_dir);
            sb_add(&b, "/");
            sb_add(&b, ch->name);
            sb_add(&b, ".sock");
            ch->endpoint = sb_take(&b);
        }
        if (ch->endpoint && !strncmp(ch->endpoint, "ipc://", 6) && strlen(ch->endpoint + 6) > 100)
            pl_err(pl, ch->line, "channel '%s': ipc path '%s' is longer than a socket path may be (100); use "
                   "a shorter --run-dir or endpoint = tcp://127.0.0.1:PORT", ch->name, ch->endpoint + 6);
    }
}

/* Append an argument to an instance. */
static void pl_inst_arg(pl_inst_t *in, const char *a) {
    in->argv = xrealloc(in->argv, sizeof(char *) * (in->argc + 2));
    in->argv[in->argc++] = xstrdup(a);
    in->argv[in->argc] = NULL;
}

static void pl_inst_env(pl_inst_t *in, const char *k, const char *v) {
    in->env = xrealloc(in->env, sizeof(char *) * (in->nenv + 2));
    size_t n = strlen(k) + strlen(v) + 2;
    in->env[in->nenv] = xmalloc(n);
    snprintf(in->env[in->nenv], n, "%s=%s", k, v);
    in->nenv++;
    in->env[in->nenv] = NULL;
}

char *pl_endpoint_arg(const pipeline_t *pl, const pl_use_t *u) {
    sb_t b = {0};
    for (int i = 0; i < u->nchans; i++) {
        const pl_chan_t *ch = &pl->chans[u->chans[i]];
        int bind = ch->bind_producer ? u->produce : !u->produce;
        if (i) sb_add(&b, ",");
        sb_add(&b, bind ? "@" : ">");
        sb_add(&b, ch->endpoint ? ch->endpoint : "");
    }
    return sb_take(&b);
}

/* Role index of a "ROLE.option" key, else -1. */
static int pl_role_option_key(const char *key) {
    const char *dot = strchr(key, '.');
    if (!dot || strcmp(dot, ".option")) return -1;
    for (int i = 0; i < PL_NROLES; i++)
        if (strlen(pl_roles[i]) == (size_t)(dot - key) && !strncmp(key, pl_roles[i], (size_t)(dot - key)))
            return i;
    return -1;
}

/* First pass over a stage section: everything but argv. */
static void pl_read_stage(pipeline_t *pl, pl_ctx_t *c, pl_sec_t *s, pl_stage_t *st) {
    st->replicas = 1;
    st->start_retries = 7;
    st->stop_signal = SIGTERM;
    st->stop_timeout = 30;
    st->start_batch_from = -1;
    st->gambar = -1;
    st->kind = PL_SERVICE;
    int restart_set = 0;
    c->stage = st->name;
    c->replica = 0;
    c->replicas = 1;
    for (int k = 0; k < s->nkv; k++) {
        pl_kv_t *kv = &s->kv[k];
        const char *key = kv->key, *v = kv->val;
        int line = kv->line;
        long n;
        if (!strcmp(key, "command")) {
            st->command = pl_expand(c, v, line, "command");
            if (st->command && !*st->command) pl_err(pl, line, "[%s] command: empty", s->name);
        } else if (!strcmp(key, "type")) {
            if (!strcmp(v, "job"))
                st->kind = PL_JOB;
            else if (!strcmp(v, "service"))
                st->kind = PL_SERVICE;
            else
                pl_err(pl, line, "[%s] type: '%s' is not job or service", s->name, v);
        } else if (!strcmp(key, "replicas")) {
            if (pl_parse_int(v, 1, PL_MAX_REPLICAS, &n))
                pl_err(pl, line, "[%s] replicas: '%s' is not a number from 1 to %d", s->name, v, PL_MAX_REPLICAS);
            else
                st->replicas = (int)n;
        } else if (!strcmp(key, "restart")) {
            restart_set = 1;
            if (!strcmp(v, "no"))
                st->restart = PL_RESTART_NO;
            else if (!strcmp(v, "on-failure"))
                st->restart = PL_RESTART_ON_FAILURE;
            else if (!strcmp(v, "always"))
                st->restart = PL_RESTART_ALWAYS;
            else
                pl_err(pl, line, "[%s] restart: '%s' is not no, on-failure or always", s->name, v);
        } else if (!strcmp(key, "start_retries")) {
            if (pl_parse_int(v, 0, 100, &n))
                pl_err(pl, line, "[%s] start_retries: '%s' is not a number from 0 to 100", s->name, v);
            else
                st->start_retries = (int)n;
        } else if (!strcmp(key, "stop_signal")) {
            int sig = pl_parse_signal(v);
            if (sig < 0)
                pl_err(pl, line, "[%s] stop_signal: '%s' is not one of TERM INT HUP QUIT USR1 USR2 KILL", s->name, v);
            else
                st->stop_signal = sig;
        } else if (!strcmp(key, "stop_timeout")) {
            char *e;
            double d = strtod(v, &e);
            if (e == v || *e || !(d > 0 && d <= 3600))
                pl_err(pl, line, "[%s] stop_timeout: '%s' is not a number of seconds in (0, 3600]", s->name, v);
            else
                st->stop_timeout = d;
        } else if (!strcmp(key, "optional")) {
            if (!strcmp(v, "yes") || !strcmp(v, "true"))
                st->optional = 1;
            else if (!strcmp(v, "no") || !strcmp(v, "false"))
                st->optional = 0;
            else
                pl_err(pl, line, "[%s] optional: '%s' is not yes or no", s->name, v);
        } else if (!strcmp(key, "host")) {
            st->host = pl_expand(c, v, line, "host");
        } else if (!strcmp(key, "after") || !strcmp(key, "start_batch_from")) {
            /* resolved once every stage is known */
        } else if (!strcmp(key, "ranks")) {
            if (pl_parse_int(v, 1, PL_MAX_RANKS, &n))
                pl_err(pl, line, "[%s] ranks: '%s' is not a number from 1 to %d", s->name, v, PL_MAX_RANKS);
            else
                st->ranks = (int)n;
        } else if (!strcmp(key, "hosts") || !strcmp(key, "mpirun") || !strcmp(key, "mpirun_args")) {
            /* checked with the program, in pl_link_mpi */
        } else if (!strcmp(key, "args") || !strcmp(key, "environment") || !strcmp(key, "restart_args")) {
            /* per replica, below */
        } else if (!strncmp(key, "opt.", 4)) {
            const char *o = key + 4;
            int ok = *o && isalnum((unsigned char)*o);
            for (const char *p = o; *p; p++) ok &= isalnum((unsigned char)*p) || *p == '-' || *p == '_';
            if (!ok) pl_err(pl, line, "[%s] %s: option name must be letters, digits and '-'", s->name, key);
        } else if (pl_role_index(key) >= 0) {
            /* channels: below */
        } else if (pl_role_option_key(key) >= 0) {
            /* ROLE.option: below */
        } else {
            char h[128];
            pl_err(pl, line, "[%s] %s: unknown key%s", s->name, key,
                   pl_hint(h, sizeof h, key, pl_stage_keys, PL_NSTAGE_KEYS));
        }
    }
    if (!restart_set) st->restart = st->kind == PL_SERVICE ? PL_RESTART_ON_FAILURE : PL_RESTART_NO;
    if (!pl_find_kv(s, "command")) pl_err(pl, s->line, "[%s]: missing 'command' (a gambar stage name or a program path)", s->name);
}

/* The mpirun keys of a stage (ranks, hosts, mpirun, mpirun_args): on a
 * gambar-train stage only, ranks required with the others, not with
 * replicas; mpirun found and the hostfile readable when programs are
 * checked. Sets st->ranks (0 when not under mpirun), mpirun, hostfile. */
static void pl_link_mpi(pipeline_t *pl, pl_ctx_t *c, pl_sec_t *s, pl_stage_t *st) {
    pl_kv_t *first = NULL;
    for (int k = 0; k < s->nkv && !first; k++)
        if (!strcmp(s->kv[k].key, "ranks") || !strcmp(s->kv[k].key, "hosts") || !strcmp(s->kv[k].key, "mpirun") ||
            !strcmp(s->kv[k].key, "mpirun_args"))
            first = &s->kv[k];
    if (!first) return;
    c->stage = st->name;
    c->replica = 0;
    c->replicas = st->replicas;
    pl_kv_t *rk = pl_find_kv(s, "ranks");
    if (!st->command) {
        st->ranks = 0;
        return; /* missing command: reported */
    }
    if (st->gambar < 0 || strcmp(pl_table[st->gambar].program, "gambar-train")) {
        pl_err(pl, first->line, "[%s] %s: only a gambar-train stage can run under mpirun (this stage runs '%s')",
               s->name, first->key, st->command);
        st->ranks = 0;
        return;
    }
    if (!rk) {
        pl_err(pl, first->line, "[%s] %s: needs 'ranks = N' (how many processes mpirun starts)", s->name, first->key);
        return;
    }
    if (!st->ranks) return; /* bad value: reported */
    if (st->replicas > 1)
        pl_err(pl, rk->line, "[%s] ranks: cannot be combined with replicas = %d (mpirun starts the ranks)", s->name,
               st->replicas);
    pl_kv_t *kv = pl_find_kv(s, "mpirun");
    char *cmd = kv ? pl_expand(c, kv->val, kv->line, "mpirun") : xstrdup("mpirun");
    if (!cmd) return;
    if (!*cmd) pl_err(pl, kv->line, "[%s] mpirun: empty", s->name);
    if (*cmd && c->o->check_programs) {
        const char *why = "";
        st->mpirun = pl_find_program(cmd, NULL, &why);
        if (!st->mpirun)
            pl_err(pl, kv ? kv->line : rk->line, "[%s] %s: mpirun '%s' %s (install Open MPI's openmpi-bin, or "
                   "give its path as mpirun = PATH)", s->name, kv ? "mpirun" : "ranks", cmd,
                   strcmp(why, "not found in the gambar bin folder nor on PATH") ? why : "not found on PATH");
    }
    if (!st->mpirun) st->mpirun = xstrdup(cmd);
    free(cmd);
    kv = pl_find_kv(s, "hosts");
    if (kv) {
        char *h = pl_expand(c, kv->val, kv->line, "hosts");
        if (h && !*h) pl_err(pl, kv->line, "[%s] hosts: empty (an Open MPI hostfile)", s->name);
        if (h && *h) {
            if (h[0] != '/') {
                size_t n = strlen(c->file_dir) + strlen(h) + 2;
                st->hostfile = xmalloc(n);
                snprintf(st->hostfile, n, "%s/%s", c->file_dir, h);
            } else {
                st->hostfile = xstrdup(h);
            }
            struct stat sb;
            const char *why = NULL;
            if (!c->o->check_programs)
                why = NULL;
            else if (access(st->hostfile, R_OK) != 0 || stat(st->hostfile, &sb) != 0)
                why = strerror(errno);
            else if (!S_ISREG(sb.st_mode))
                why = "not a regular file";
            if (why) pl_err(pl, kv->line, "[%s] hosts: hostfile '%s' cannot be read: %s", s->name, st->hostfile, why);
        }
        free(h);
    }
}

/* Second pass over a stage: dependencies, channels, program, argv. */
static void pl_link_stage(pipeline_t *pl, pl_ctx_t *c, pl_sec_t *s, pl_stage_t *st) {
    pl_kv_t *kv = pl_find_kv(s, "after");
    if (kv) {
        int n;
        char **names = pl_split_commas(kv->val, &n);
        for (int i = 0; i < n; i++) {
            int d = pl_stage_index(pl, names[i]);
            if (d < 0) {
                char what[160];
                snprintf(what, sizeof what, "[%s] after", s->name);
                pl_unknown_stage(pl, kv->line, what, names[i]);
            } else if (d == (int)(st - pl->stages)) {
                pl_err(pl, kv->line, "[%s] after: a stage cannot wait for itself", s->name);
            } else {
                st->after = xrealloc(st->after, sizeof(int) * (st->nafter + 1));
                st->after[st->nafter++] = d;
            }
        }
        pl_free_strv(names, n);
    }
    kv = pl_find_kv(s, "start_batch_from");
    if (kv) {
        int d = pl_stage_index(pl, kv->val);
        if (d < 0) {
            char what[160];
            snprintf(what, sizeof what, "[%s] start_batch_from", s->name);
            pl_unknown_stage(pl, kv->line, what, kv->val);
        } else if (d == (int)(st - pl->stages)) {
            pl_err(pl, kv->line, "[%s] start_batch_from: names the stage itself", s->name);
        } else {
            st->start_batch_from = d;
        }
    }
    if (st->command) {
        st->gambar = pl_table_index(st->command);
        if (c->o->check_programs) {
            const char *why = "";
            st->program = pl_find_program(st->command, c->o->bin_dir, &why);
            if (!st->program) {
                const char *cands[PL_NTABLE];
                for (int i = 0; i < PL_NTABLE; i++) cands[i] = pl_table[i].program;
                char h[128];
                kv = pl_find_kv(s, "command");
                pl_err(pl, kv ? kv->line : s->line, "[%s] command: program '%s' %s%s", s->name, st->command, why,
                       pl_hint(h, sizeof h, st->command, cands, PL_NTABLE));
            }
        }
        if (!st->program) st->program = xstrdup(st->command);
    }
    /* channel uses */
    for (int k = 0; k < s->nkv; k++) {
        kv = &s->kv[k];
        int r = pl_role_index(kv->key);
        if (r < 0) continue;
        pl_use_t u = {.role = xstrdup(kv->key), .produce = pl_role_produce[r], .line = kv->line};
        const pl_role_spec_t *rs = pl_role_spec(st->gambar, kv->key);
        char okey[64];
        snprintf(okey, sizeof okey, "%s.option", kv->key);
        pl_kv_t *ov = pl_find_kv(s, okey);
        if (ov) {
            u.option = ov->val;
        } else if (rs) {
            u.option = rs->option;
            u.type = rs->type;
        } else if (st->gambar >= 0) {
            char roles[128] = "";
            for (int i = 0; i < 4 && pl_table[st->gambar].roles[i].role; i++) {
                strcat(roles, i ? ", " : "");
                strcat(roles, pl_table[st->gambar].roles[i].role);
            }
            pl_err(pl, kv->line, "[%s] %s: %s has no '%s' channel (its channels: %s)", s->name, kv->key,
                   pl_table[st->gambar].program, kv->key, *roles ? roles : "none");
        }
        if (rs) u.type = rs->type;
        int n;
        char **names = pl_split_commas(kv->val, &n);
        if (n == 0) pl_err(pl, kv->line, "[%s] %s: no channel named", s->name, kv->key);
        if (n > 1 && rs && !rs->multi)
            pl_err(pl, kv->line, "[%s] %s: %s takes one channel here, not %d", s->name, kv->key,
                   pl_table[st->gambar].program, n);
        for (int i = 0; i < n; i++) {
            int ci = pl_chan_index(pl, names[i]);
            if (ci < 0) {
                const char *cands[PL_MAX_SECTIONS * 4];
                int nc = 0;
                for (int j = 0; j < pl->nchans && nc < PL_MAX_SECTIONS * 4; j++) cands[nc++] = pl->chans[j].name;
                char h[128];
                pl_err(pl, kv->line, "[%s] %s: unknown channel '%s'%s (declare it in [channels] or [channel %s])",
                       s->name, kv->key, names[i], pl_hint(h, sizeof h, names[i], cands, nc), names[i]);
                continue;
            }
            pl_chan_t *ch = &pl->chans[ci];
            if (u.type && ch->type && strcmp(u.type, ch->type))
                pl_err(pl, kv->line, "[%s] %s: channel '%s' carries %s but the '%s' channel of %s takes %s",
                       s->name, kv->key, ch->name, ch->type, kv->key, pl_table[st->gambar].program, u.type);
            if (u.produce)
                ch->producers += st->replicas;
            else
                ch->consumers += st->replicas;
            u.chans = xrealloc(u.chans, sizeof(int) * (u.nchans + 1));
            u.chans[u.nchans++] = ci;
        }
        pl_free_strv(names, n);
        st->uses = xrealloc(st->uses, sizeof(pl_use_t) * (st->nuses + 1));
        st->uses[st->nuses++] = u;
    }
    for (int k = 0; k < s->nkv; k++) {
        int r = pl_role_option_key(s->kv[k].key);
        if (r >= 0 && !pl_find_kv(s, pl_roles[r]))
            pl_err(pl, s->kv[k].line, "[%s] %s: no '%s' key to go with it", s->name, s->kv[k].key, pl_roles[r]);
    }
    pl_link_mpi(pl, c, s, st);
}

/* Put the mpirun command before an instance's argv: "MPIRUN [--hostfile
 * F] [mpirun_args] --mca odls_base_sigkill_timeout T -np N -x NAME ...".
 * -x NAME for each variable of the stage's environment (mpirun forwards
 * only those to ranks on other hosts; gambar-run adds its own GAMBAR_*
 * ones when it starts the stage); T = stop_timeout, so that ranks given
 * SIGTERM by mpirun (it forwards gambar-run's stop signal) have as long to
 * write their checkpoint as any stage (Open MPI's default is 1 s). */
static void pl_inst_launcher(pipeline_t *pl, pl_ctx_t *c, pl_sec_t *s, pl_stage_t *st, pl_inst_t *in) {
    pl_inst_t pre = {0};
    pl_inst_arg(&pre, st->mpirun ? st->mpirun : "mpirun");
    if (st->hostfile) {
        pl_inst_arg(&pre, "--hostfile");
        pl_inst_arg(&pre, st->hostfile);
    }
    pl_kv_t *kv = pl_find_kv(s, "mpirun_args");
    if (kv) {
        char **w;
        int n;
        if (pl_split_words(kv->val, &w, &n)) {
            if (!c->quiet) pl_err(pl, kv->line, "[%s] mpirun_args: unbalanced quotes", s->name);
        } else {
            for (int i = 0; i < n; i++) {
                char *e = pl_expand(c, w[i], kv->line, "mpirun_args");
                if (e) pl_inst_arg(&pre, e);
                free(e);
            }
            pl_free_strv(w, n);
        }
    }
    char num[32];
    snprintf(num, sizeof num, "%.0f", st->stop_timeout < 1 ? 1.0 : st->stop_timeout + 0.499);
    pl_inst_arg(&pre, "--mca");
    pl_inst_arg(&pre, "odls_base_sigkill_timeout");
    pl_inst_arg(&pre, num);
    snprintf(num, sizeof num, "%d", st->ranks);
    pl_inst_arg(&pre, "-np");
    pl_inst_arg(&pre, num);
    for (int i = 0; i < in->nenv; i++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(in->env[i], "="), in->env[i]);
        pl_inst_arg(&pre, "-x");
        pl_inst_arg(&pre, name);
    }
    st->launch_argc = pre.argc;
    for (int i = 0; i < in->argc; i++) pl_inst_arg(&pre, in->argv[i]);
    pl_free_strv(in->argv, in->argc);
    in->argv = pre.argv;
    in->argc = pre.argc;
}

/* Third pass: argv and environment of each replica (channels bound). */
static void pl_build_instances(pipeline_t *pl, pl_ctx_t *c, pl_sec_t *s, pl_stage_t *st) {
    st->inst = xcalloc((size_t)st->replicas, sizeof(pl_inst_t));
    c->stage = st->name;
    c->replicas = st->replicas;
    for (int r = 0; r < st->replicas; r++) {
        pl_inst_t *in = &st->inst[r];
        c->replica = r;
        c->quiet = r > 0;
        pl_inst_arg(in, st->program ? st->program : "");
        pl_kv_t *kv = pl_find_kv(s, "args");
        if (kv) {
            char **w;
            int n;
            if (pl_split_words(kv->val, &w, &n)) {
                if (!c->quiet) pl_err(pl, kv->line, "[%s] args: unbalanced quotes", s->name);
            } else {
                for (int i = 0; i < n; i++) {
                    char *e = pl_expand(c, w[i], kv->line, "args");
                    if (e) pl_inst_arg(in, e);
                    free(e);
                }
                pl_free_strv(w, n);
            }
        }
        for (int k = 0; k < s->nkv; k++) {
            kv = &s->kv[k];
            if (strncmp(kv->key, "opt.", 4)) continue;
            char o[300];
            snprintf(o, sizeof o, "--%s", kv->key + 4);
            pl_inst_arg(in, o);
            if (*kv->val) {
                char *e = pl_expand(c, kv->val, kv->line, kv->key);
                if (e) pl_inst_arg(in, e);
                free(e);
            }
        }
        for (int u = 0; u < st->nuses; u++) {
            char *ep = pl_endpoint_arg(pl, &st->uses[u]);
            if (st->uses[u].option) {
                pl_inst_arg(in, st->uses[u].option);
                pl_inst_arg(in, ep);
            }
            char envname[64];
            snprintf(envname, sizeof envname, "GAMBAR_%s", st->uses[u].role);
            for (char *p = envname; *p; p++) *p = (char)toupper((unsigned char)*p);
            pl_inst_env(in, envname, ep);
            free(ep);
        }
        char num[32];
        pl_inst_env(in, "GAMBAR_STAGE", st->name);
        snprintf(num, sizeof num, "%d", r);
        pl_inst_env(in, "GAMBAR_REPLICA", num);
        snprintf(num, sizeof num, "%d", st->replicas);
        pl_inst_env(in, "GAMBAR_REPLICAS", num);
        pl_inst_env(in, "GAMBAR_RUN_DIR", c->o->run_dir);
        kv = pl_find_kv(s, "environment");
        if (kv) {
            int n;
            char **items = pl_split_commas(kv->val, &n);
            for (int i = 0; i < n; i++) {
                char *eq = strchr(items[i], '=');
                int ok = eq && eq > items[i];
                for (char *p = items[i]; ok && p < eq; p++) ok = isalnum((unsigned char)*p) || *p == '_';
                if (!ok) {
                    if (!c->quiet)
                        pl_err(pl, kv->line, "[%s] environment: '%s' is not NAME=VALUE", s->name, items[i]);
                    continue;
                }
                *eq = 0;
                char *e = pl_expand(c, eq + 1, kv->line, "environment");
                if (e) pl_inst_env(in, items[i], e);
                free(e);
            }
            pl_free_strv(items, n);
        }
        if (r == 0) {
            for (int i = 1; i + 1 < in->argc; i++)
                if (!strcmp(in->argv[i], "--ckpt-dir")) {
                    free(st->ckpt_dir);
                    st->ckpt_dir = xstrdup(in->argv[i + 1]);
                }
            for (int i = 1; i < in->argc && !st->ckpt_dir; i++)
                if (!strncmp(in->argv[i], "--ckpt-dir=", 11)) st->ckpt_dir = xstrdup(in->argv[i] + 11);
            kv = pl_find_kv(s, "restart_args");
            if (kv) {
                if (pl_split_words(kv->val, &st->restart_args, &st->nrestart_args))
                    pl_err(pl, kv->line, "[%s] restart_args: unbalanced quotes", s->name);
                for (int i = 0; i < st->nrestart_args; i++) {
                    char *e = pl_expand(c, st->restart_args[i], kv->line, "restart_args");
                    free(st->restart_args[i]);
                    st->restart_args[i] = e ? e : xstrdup("");
                }
            } else if (st->gambar >= 0 && pl_table[st->gambar].restart_args) {
                pl_split_words(pl_table[st->gambar].restart_args, &st->restart_args, &st->nrestart_args);
            }
        }
        if (st->ranks) pl_inst_launcher(pl, c, s, st, in);
    }
    c->quiet = 0;
}

/* Depth-first search for a cycle through `after`; reports the first. */
static int pl_find_cycle(pipeline_t *pl, int v, int *state, int *stack, int depth) {
    state[v] = 1;
    stack[depth] = v;
    pl_stage_t *st = &pl->stages[v];
    for (int i = 0; i < st->nafter; i++) {
        int w = st->after[i];
        if (state[w] == 1) {
            sb_t b = {0};
            int from = 0;
            while (stack[from] != w) from++;
            for (int k = from; k <= depth; k++) {
                sb_add(&b, pl->stages[stack[k]].name);
                sb_add(&b, " -> ");
            }
            sb_add(&b, pl->stages[w].name);
            pl_err(pl, pl->stages[w].line, "dependency cycle through 'after': %s (each waits for the next)", b.s);
            free(b.s);
            return 1;
        }
        if (state[w] == 0 && pl_find_cycle(pl, w, state, stack, depth + 1)) return 1;
    }
    state[v] = 2;
    return 0;
}

int pl_resolve(pipeline_t *pl, const pl_opts_t *o) {
    pl_ctx_t c = {.pl = pl, .o = o};
    const char *slash = strrchr(pl->file, '/');
    if (slash)
        snprintf(c.file_dir, sizeof c.file_dir, "%.*s", (int)(slash - pl->file), pl->file);
    else
        snprintf(c.file_dir, sizeof c.file_dir, ".");
    c.vars = pl_find_sec(pl, "vars");
    if (c.vars)
        for (int k = 0; k < c.vars->nkv; k++)
            if (!pl_valid_name(c.vars->kv[k].key))
                pl_err(pl, c.vars->kv[k].line, "[vars] '%s': a variable name is letters, digits, '_' and '-'",
                       c.vars->kv[k].key);
    pl_sec_t *ps = pl_find_sec(pl, "pipeline");
    if (ps) {
        for (int k = 0; k < ps->nkv; k++) {
            pl_kv_t *kv = &ps->kv[k];
            if (!strcmp(kv->key, "description")) {
                free(pl->description);
                pl->description = xstrdup(kv->val);
            } else if (!strcmp(kv->key, "exit_when")) {
                if (!strcmp(kv->val, "all"))
                    pl->exit_all = 1;
                else if (!strcmp(kv->val, "jobs"))
                    pl->exit_all = 0;
                else
                    pl_err(pl, kv->line, "[pipeline] exit_when: '%s' is not jobs or all", kv->val);
            } else {
                static const char *const keys[] = {"description", "exit_when"};
                char h[128];
                pl_err(pl, kv->line, "[pipeline] %s: unknown key%s", kv->key, pl_hint(h, sizeof h, kv->key, keys, 2));
            }
        }
    }
    pl_read_channels(pl, &c);
    /* stages */
    pl_sec_t **ssec = xcalloc((size_t)pl->nsecs + 1, sizeof(pl_sec_t *));
    for (int i = 0; i < pl->nsecs; i++) {
        pl_sec_t *s = &pl->secs[i];
        if (!strcmp(s->name, "vars") || !strcmp(s->name, "pipeline") || !strcmp(s->name, "channels") ||
            !strncmp(s->name, "channel ", 8))
            continue;
        if (strchr(s->name, ' ') || strchr(s->name, '\t')) {
            static const char *const kinds[] = {"channel"};
            char first[64];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(s->name, " \t"), s->name);
            char h[128];
            pl_err(pl, s->line, "[%s]: unknown kind of section '%s'%s", s->name, first,
                   pl_hint(h, sizeof h, first, kinds, 1));
            continue;
        }
        if (!pl_valid_name(s->name)) {
            pl_err(pl, s->line, "[%s]: a stage name is letters, digits, '_' and '-'", s->name);
            continue;
        }
        pl->stages = xrealloc(pl->stages, sizeof(pl_stage_t) * (pl->nstages + 1));
        pl_stage_t *st = &pl->stages[pl->nstages];
        memset(st, 0, sizeof *st);
        st->name = xstrdup(s->name);
        st->line = s->line;
        ssec[pl->nstages++] = s;
    }
    if (pl->nstages == 0 && pl->nerrs == 0) pl_err(pl, 0, "no stages: add a [NAME] section with a command");
    for (int i = 0; i < pl->nstages; i++) pl_read_stage(pl, &c, ssec[i], &pl->stages[i]);
    for (int i = 0; i < pl->nstages; i++) pl_link_stage(pl, &c, ssec[i], &pl->stages[i]);
    /* channel ends */
    for (int i = 0; i < pl->nchans; i++) {
        pl_chan_t *ch = &pl->chans[i];
        if (ch->producers == 0 && ch->consumers == 0) {
            pl_err(pl, ch->line, "channel '%s' is declared but no stage uses it", ch->name);
        } else if (ch->producers == 0) {
            pl_err(pl, ch->line, "channel '%s' has no producer (no stage has out, metrics or serve = %s)", ch->name,
                   ch->name);
        } else if (ch->consumers == 0 && ch->type && !strcmp(ch->type, "gambar.Metric") && ch->producers == 1) {
            ch->bind_producer = 1; /* gambar-run's status line subscribes */
        } else if (ch->consumers == 0) {
            pl_err(pl, ch->line, "channel '%s' has no consumer (no stage has in or sample = %s)", ch->name, ch->name);
        } else if (ch->producers == 1) {
            ch->bind_producer = 1;
        } else if (ch->consumers == 1) {
            ch->bind_producer = 0;
        } else {
            pl_err(pl, ch->line, "channel '%s' has %d producing and %d consuming processes: one side must be a "
                   "single process (it binds)", ch->name, ch->producers, ch->consumers);
        }
    }
    for (int i = 0; i < pl->nstages; i++) {
        pl_stage_t *st = &pl->stages[i];
        if (st->start_batch_from >= 0) {
            pl_stage_t *src = &pl->stages[st->start_batch_from];
            pl_kv_t *kv = pl_find_kv(ssec[i], "start_batch_from");
            if (src->gambar < 0 || strcmp(pl_table[src->gambar].program, "gambar-train"))
                pl_err(pl, kv->line, "[%s] start_batch_from: '%s' is not a gambar-train stage", st->name, src->name);
        }
    }
    for (int i = 0; i < pl->nstages; i++) pl_build_instances(pl, &c, ssec[i], &pl->stages[i]);
    for (int i = 0; i < pl->nstages; i++) {
        pl_stage_t *st = &pl->stages[i];
        if (st->start_batch_from >= 0 && !pl->stages[st->start_batch_from].ckpt_dir) {
            pl_kv_t *kv = pl_find_kv(ssec[i], "start_batch_from");
            pl_err(pl, kv->line, "[%s] start_batch_from: stage '%s' has no --ckpt-dir", st->name,
                   pl->stages[st->start_batch_from].name);
        }
    }
    /* cycles, then the start order (Kahn, file order among equals) */
    int n = pl->nstages;
    int *state = xcalloc((size_t)n + 1, sizeof(int));
    int *stack = xcalloc((size_t)n + 1, sizeof(int));
    int cyc = 0;
    for (int i = 0; i < n && !cyc; i++)
        if (state[i] == 0) cyc = pl_find_cycle(pl, i, state, stack, 0);
    pl->order = xcalloc((size_t)n + 1, sizeof(int));
    if (!cyc) {
        int *done = state;
        memset(done, 0, sizeof(int) * ((size_t)n + 1));
        for (int k = 0; k < n; k++) {
            for (int i = 0; i < n; i++) {
                if (done[i]) continue;
                int ready = 1;
                for (int d = 0; d < pl->stages[i].nafter; d++) ready &= done[pl->stages[i].after[d]];
                if (ready) {
                    done[i] = 1;
                    pl->order[k] = i;
                    break;
                }
            }
        }
    }
    free(state);
    free(stack);
    free(ssec);
    return pl->nerrs ? GB_EFORMAT : 0;
}

/* ------------------------------------------------------------------ */
/* Output. */

void pl_print_errors(const pipeline_t *pl, FILE *f) {
    for (int i = 0; i < pl->nerrs; i++) fprintf(f, "%s\n", pl->errs[i].msg);
    if (pl->nerrs_total > pl->nerrs) fprintf(f, "%s: %d errors in all\n", pl->file, pl->nerrs_total);
}

char *pl_shell_quote(const char *s) {
    int plain = *s != 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("@%+=:,./_-", *p)) plain = 0;
    if (plain) return xstrdup(s);
    sb_t b = {0};
    sb_add(&b, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            sb_add(&b, "'\\''");
        else
            sb_addn(&b, p, 1);
    }
    sb_add(&b, "'");
    return sb_take(&b);
}

static const char *pl_restart_name(pl_restart_t r) {
    return r == PL_RESTART_NO ? "no" : r == PL_RESTART_ON_FAILURE ? "on-failure" : "always";
}

void pl_print_plan(const pipeline_t *pl, FILE *f) {
    fprintf(f, "pipeline %s\n", pl->file);
    if (pl->description) fprintf(f, "  %s\n", pl->description);
    fprintf(f, "start order:\n");
    for (int k = 0; k < pl->nstages; k++) {
        const pl_stage_t *st = &pl->stages[pl->order[k]];
        fprintf(f, "%2d. %s (%s", k + 1, st->name, st->kind == PL_JOB ? "job" : "service");
        if (st->replicas > 1) fprintf(f, " x%d", st->replicas);
        fprintf(f, ", restart %s", pl_restart_name(st->restart));
        if (st->nafter) {
            fprintf(f, ", after ");
            for (int i = 0; i < st->nafter; i++) fprintf(f, "%s%s", i ? "," : "", pl->stages[st->after[i]].name);
        }
        if (st->start_batch_from >= 0) fprintf(f, ", start batch from %s", pl->stages[st->start_batch_from].name);
        if (st->optional) fprintf(f, ", optional");
        if (st->host) fprintf(f, ", host %s", st->host);
        if (st->ranks) fprintf(f, ", %d ranks under mpirun", st->ranks);
        fprintf(f, ")\n");
        for (int r = 0; r < st->replicas; r++) {
            fprintf(f, "    %s", st->replicas > 1 ? "" : "");
            if (st->replicas > 1) fprintf(f, "[%d] ", r);
            for (int i = 0; i < st->inst[r].argc; i++) {
                char *q = pl_shell_quote(st->inst[r].argv[i]);
                fprintf(f, "%s%s", i ? " " : "", q);
                free(q);
            }
            fprintf(f, "\n");
        }
        if (st->nrestart_args) {
            fprintf(f, "    on restart add:");
            for (int i = 0; i < st->nrestart_args; i++) fprintf(f, " %s", st->restart_args[i]);
            fprintf(f, "\n");
        }
    }
    fprintf(f, "channels:\n");
    for (int i = 0; i < pl->nchans; i++) {
        const pl_chan_t *ch = &pl->chans[i];
        fprintf(f, "  %s (%s) %s:", ch->name, ch->type ? ch->type : "?", ch->endpoint ? ch->endpoint : "?");
        for (int side = 1; side >= 0; side--) {
            if (side == 0) fprintf(f, " ->");
            for (int s = 0; s < pl->nstages; s++)
                for (int u = 0; u < pl->stages[s].nuses; u++) {
                    const pl_use_t *us = &pl->stages[s].uses[u];
                    if (us->produce != side) continue;
                    for (int c = 0; c < us->nchans; c++)
                        if (us->chans[c] == i)
                            fprintf(f, " %s.%s%s", pl->stages[s].name, us->role,
                                    (ch->bind_producer ? side : !side) ? "(bind)" : "");
                }
        }
        fprintf(f, "\n");
    }
}

void pl_print_plan_json(const pipeline_t *pl, FILE *f) {
    fprintf(f, "{\"file\":");
    json_str(f, pl->file);
    fprintf(f, ",\"stages\":[");
    for (int k = 0; k < pl->nstages; k++) {
        const pl_stage_t *st = &pl->stages[pl->order[k]];
        char num[32];
        fprintf(f, "%s\n{\"name\":", k ? "," : "");
        json_str(f, st->name);
        fprintf(f, ",\"type\":\"%s\",\"restart\":\"%s\",\"replicas\":%d,\"start_retries\":%d,"
                   "\"stop_signal\":\"%s\",\"stop_timeout\":%s,\"optional\":%s,\"ranks\":%d,\"after\":[",
                st->kind == PL_JOB ? "job" : "service", pl_restart_name(st->restart), st->replicas,
                st->start_retries, pl_signal_name(st->stop_signal), json_num_fmt(st->stop_timeout, num),
                st->optional ? "true" : "false", st->ranks);
        for (int i = 0; i < st->nafter; i++) {
            if (i) fputc(',', f);
            json_str(f, pl->stages[st->after[i]].name);
        }
        fprintf(f, "],\"instances\":[");
        for (int r = 0; r < st->replicas; r++) {
            fprintf(f, "%s{\"argv\":[", r ? "," : "");
            for (int i = 0; i < st->inst[r].argc; i++) {
                if (i) fputc(',', f);
                json_str(f, st->inst[r].argv[i]);
            }
            fprintf(f, "],\"env\":[");
            for (int i = 0; i < st->inst[r].nenv; i++) {
                if (i) fputc(',', f);
                json_str(f, st->inst[r].env[i]);
            }
            fprintf(f, "]}");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "],\n\"channels\":[");
    for (int i = 0; i < pl->nchans; i++) {
        const pl_chan_t *ch = &pl->chans[i];
        fprintf(f, "%s\n{\"name\":", i ? "," : "");
        json_str(f, ch->name);
        fprintf(f, ",\"type\":");
        json_str(f, ch->type ? ch->type : "");
        fprintf(f, ",\"endpoint\":");
        json_str(f, ch->endpoint ? ch->endpoint : "");
        fprintf(f, ",\"binds\":\"%s\"}", ch->bind_producer ? "producer" : "consumer");
    }
    fprintf(f, "]}\n");
}

static void pl_dot_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

void pl_print_dot(const pipeline_t *pl, FILE *f) {
    fprintf(f, "digraph gambar {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans\"];\n");
    for (int s = 0; s < pl->nstages; s++) {
        const pl_stage_t *st = &pl->stages[s];
        fprintf(f, "  ");
        pl_dot_str(f, st->name);
        char label[256];
        snprintf(label, sizeof label, "%s\\n%s%s", st->name, st->kind == PL_JOB ? "job" : "service",
                 st->replicas > 1 ? " (replicas)" : "");
        fprintf(f, " [label=\"%s\"%s];\n", label, st->kind == PL_JOB ? ", style=rounded" : "");
    }
    for (int i = 0; i < pl->nchans; i++) {
        const pl_chan_t *ch = &pl->chans[i];
        for (int a = 0; a < pl->nstages; a++)
            for (int ua = 0; ua < pl->stages[a].nuses; ua++) {
                const pl_use_t *pu = &pl->stages[a].uses[ua];
                if (!pu->produce) continue;
                for (int ca = 0; ca < pu->nchans; ca++) {
                    if (pu->chans[ca] != i) continue;
                    for (int b = 0; b < pl->nstages; b++)
                        for (int ub = 0; ub < pl->stages[b].nuses; ub++) {
                            const pl_use_t *cu = &pl->stages[b].uses[ub];
                            if (cu->produce) continue;
                            for (int cb = 0; cb < cu->nchans; cb++) {
                                if (cu->chans[cb] != i) continue;
                                fprintf(f, "  ");
                                pl_dot_str(f, pl->stages[a].name);
                                fprintf(f, " -> ");
                                pl_dot_str(f, pl->stages[b].name);
                                fprintf(f, " [label=");
                                char lab[300];
                                snprintf(lab, sizeof lab, "%s (%s)", ch->name, ch->type ? ch->type : "?");
                                pl_dot_str(f, lab);
                                fprintf(f, "];\n");
                            }
                        }
                }
            }
    }
    for (int s = 0; s < pl->nstages; s++)
        for (int d = 0; d < pl->stages[s].nafter; d++) {
            fprintf(f, "  ");
            pl_dot_str(f, pl->stages[pl->stages[s].after[d]].name);
            fprintf(f, " -> ");
            pl_dot_str(f, pl->stages[s].name);
            fprintf(f, " [style=dashed, label=\"after\"];\n");
        }
    fprintf(f, "}\n");
}

void pl_free(pipeline_t *pl) {
    if (!pl) return;
    for (int i = 0; i < pl->nsecs; i++) {
        for (int k = 0; k < pl->secs[i].nkv; k++) {
            free(pl->secs[i].kv[k].key);
            free(pl->secs[i].kv[k].val);
        }
        free(pl->secs[i].kv);
        free(pl->secs[i].name);
    }
    free(pl->secs);
    for (int i = 0; i < pl->nstages; i++) {
        pl_stage_t *st = &pl->stages[i];
        free(st->name);
        free(st->command);
        free(st->program);
        free(st->host);
        free(st->after);
        free(st->ckpt_dir);
        free(st->mpirun);
        free(st->hostfile);
        for (int u = 0; u < st->nuses; u++) {
            free(st->uses[u].role);
            free(st->uses[u].chans);
        }
        free(st->uses);
        pl_free_strv(st->restart_args, st->nrestart_args);
        if (st->inst) {
            for (int r = 0; r < st->replicas; r++) {
                pl_free_strv(st->inst[r].argv, st->inst[r].argc);
                pl_free_strv(st->inst[r].env, st->inst[r].nenv);
            }
            free(st->inst);
        }
    }
    free(pl->stages);
    for (int i = 0; i < pl->nchans; i++) {
        free(pl->chans[i].name);
        free(pl->chans[i].type);
        free(pl->chans[i].endpoint);
    }
    free(pl->chans);
    free(pl->order);
    free(pl->description);
    for (int i = 0; i < pl->nerrs; i++) free(pl->errs[i].msg);
    free(pl->file);
    free(pl);
}
