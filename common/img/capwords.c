/* capwords.c - the caption vocabulary, its reader and the threshold
 * header (capwords.h). */
#include "capwords.h"

#include "base.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const ATTR_NAME[CAPW_NATTR] = {"brightness", "width", "fill"};
/* WORD[attribute][tercile][synonym]; "" = no word */
static const char *const WORD[CAPW_NATTR][3][CAPW_NSYN] = {
    {{"dark", "dim", "deep-toned"}, {"mid-tone", "medium-toned", "grey"}, {"light", "pale", "bright"}},
    {{"narrow", "slim", "thin"}, {"medium-width", "regular-width", "average-width"}, {"wide", "broad", "loose"}},
    {{"outlined", "hollow", "open"}, {"", "", ""}, {"filled", "solid", "full"}}};
static const char *const FASHION[CAPW_FASHION_K] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
static const char *const FASHION_SYN[CAPW_FASHION_K][CAPW_NSYN] = {
    {"t-shirt", "top", "tee"},         {"pair of trousers", "pair of pants", "pair of slacks"},
    {"pullover", "sweater", "jumper"}, {"dress", "frock", "gown"},
    {"coat", "jacket", "overcoat"},    {"sandal", "open shoe", "strappy sandal"},
    {"shirt", "button-up shirt", "blouse"}, {"sneaker", "trainer", "running shoe"},
    {"bag", "handbag", "purse"},       {"ankle boot", "boot", "short boot"}};

const char *capw_attr_name(int attr) { return attr >= 0 && attr < CAPW_NATTR ? ATTR_NAME[attr] : "?"; }

const char *capw_word(int attr, int ter, int syn) {
    if (attr < 0 || attr >= CAPW_NATTR || ter < 0 || ter > 2 || syn < 0 || syn >= CAPW_NSYN) return "";
    return WORD[attr][ter][syn];
}

double capw_measure(const attr_t *a, int attr) { return attr == 0 ? a->brightness : attr == 1 ? a->width : a->fill; }

const char *capw_fashion_class(int c) { return c >= 0 && c < CAPW_FASHION_K ? FASHION[c] : ""; }

const char *capw_fashion_syn(int c, int s) {
    return c >= 0 && c < CAPW_FASHION_K && s >= 0 && s < CAPW_NSYN ? FASHION_SYN[c][s] : "";
}

/* ---- tokens ------------------------------------------------------------------ */

static bool tok_char(unsigned char ch) { return isalnum(ch) || ch == '-' || ch == '\'' || ch >= 0x80; }

typedef struct {
    size_t pos, len;
} tok_t;

/* Tokens of s (at most cap) into t; returns how many. */
static size_t tokenize(const char *s, tok_t *t, size_t cap) {
    size_t n = 0, i = 0;
    while (s[i] && n < cap) {
        while (s[i] && !tok_char((unsigned char)s[i])) i++;
        if (!s[i]) break;
        size_t b = i;
        while (s[i] && tok_char((unsigned char)s[i])) i++;
        t[n++] = (tok_t){b, i - b};
    }
    return n;
}

static bool tok_is(const char *s, const tok_t *t, const char *w) {
    size_t n = strlen(w);
    if (n != t->len) return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s[t->pos + i]) != (unsigned char)w[i]) return false;
    return true;
}

/* ---- the lexicon ---------------------------------------------------------------- */

#define PHRASE_MAX_TOK 8

typedef struct {
    char *text;                   /* lower-cased phrase; tokens at tok[] */
    tok_t tok[PHRASE_MAX_TOK];
    size_t ntok;
    int cls;
} phrase_t;

struct capw_lex {
    phrase_t *ph;
    size_t n, cap;
};

static void lex_add(capw_lex_t *lx, const char *name, int cls) {
    phrase_t p = {.cls = cls};
    p.text = xstrdup(name);
    for (char *c = p.text; *c; c++) *c = (char)tolower((unsigned char)*c);
    p.ntok = tokenize(p.text, p.tok, PHRASE_MAX_TOK);
    if (!p.ntok) {
        free(p.text);
        return;
    }
    if (lx->n == lx->cap) {
        lx->cap = lx->cap ? 2 * lx->cap : 16;
        phrase_t *np = xmalloc(lx->cap * sizeof *np);
        if (lx->n) memcpy(np, lx->ph, lx->n * sizeof *np);
        free(lx->ph);
        lx->ph = np;
    }
    lx->ph[lx->n++] = p;
}

static int cmp_phrase_len(const void *a, const void *b) {
    const phrase_t *x = a, *y = b;
    if (x->ntok != y->ntok) return x->ntok > y->ntok ? -1 : 1;
    return x->cls - y->cls;
}

capw_lex_t *capw_lex_new(const char *const *names, int K) {
    capw_lex_t *lx = xcalloc(1, sizeof *lx);
    for (int k = 0; k < K; k++) {
        if (!names || !names[k] || !names[k][0]) continue;
        lex_add(lx, names[k], k);
        for (int c = 0; c < CAPW_FASHION_K; c++)
            if (strcasecmp(names[k], FASHION[c]) == 0)
                for (int s = 0; s < CAPW_NSYN; s++) lex_add(lx, FASHION_SYN[c][s], k);
    }
    /* longest phrases first: "open shoe" before "open", "ankle boot" before "boot" */
    if (lx->n) qsort(lx->ph, lx->n, sizeof *lx->ph, cmp_phrase_len);
    return lx;
}

void capw_lex_free(capw_lex_t *lx) {
    if (!lx) return;
    for (size_t i = 0; i < lx->n; i++) free(lx->ph[i].text);
    free(lx->ph);
    free(lx);
}

/* Does phrase p match the caption's tokens t[i..)? */
static bool phrase_at(const phrase_t *p, const char *s, const tok_t *t, size_t nt, size_t i) {
    if (i + p->ntok > nt) return false;
    for (size_t j = 0; j < p->ntok; j++) {
        const tok_t *pt = &p->tok[j];
        if (t[i + j].len != pt->len) return false;
        for (size_t q = 0; q < pt->len; q++)
            if (tolower((unsigned char)s[t[i + j].pos + q]) != (unsigned char)p->text[pt->pos + q]) return false;
    }
    return true;
}

void capw_parse(const capw_lex_t *lx, const char *caption, capw_parse_t *p) {
    const char *s = caption ? caption : "";
    memset(p, 0, sizeof *p);
    p->cls = -1;
    bool cls_conflict = false, conflict[CAPW_NATTR] = {false};
    for (int a = 0; a < CAPW_NATTR; a++) p->ter[a] = -1;
    size_t cap = strlen(s) / 2 + 1;
    tok_t *t = xmalloc(cap * sizeof *t);
    size_t nt = tokenize(s, t, cap);
    for (size_t i = 0; i < nt;) {
        const phrase_t *hit = NULL;
        for (size_t k = 0; k < lx->n && !hit; k++)
            if (phrase_at(&lx->ph[k], s, t, nt, i)) hit = &lx->ph[k];
        if (hit) {
            if (p->cls >= 0 && p->cls != hit->cls) cls_conflict = true;
            p->cls = hit->cls;
            i += hit->ntok;
            continue;
        }
        for (int a = 0; a < CAPW_NATTR; a++)
            for (int r = 0; r < 3; r++)
                for (int y = 0; y < CAPW_NSYN; y++) {
                    if (!WORD[a][r][y][0] || !tok_is(s, &t[i], WORD[a][r][y])) continue;
                    if (p->ter[a] >= 0 && p->ter[a] != r) conflict[a] = true;
                    if (p->ter[a] < 0) {
                        p->ter[a] = r;
                        p->syn[a] = y;
                        p->pos[a] = t[i].pos;
                        p->len[a] = t[i].len;
                    }
                }
        i++;
    }
    free(t);
    if (cls_conflict) p->cls = -1;
    for (int a = 0; a < CAPW_NATTR; a++)
        if (conflict[a]) p->ter[a] = -1;
}

int capw_swap(const char *caption, const capw_parse_t *p, int attr, int ter, char *out, size_t cap) {
    if (attr < 0 || attr >= CAPW_NATTR || p->ter[attr] < 0) return -1;
    const char *w = capw_word(attr, ter, p->syn[attr]);
    if (!w[0]) return -1;
    size_t n = strlen(caption), wl = strlen(w);
    if (p->pos[attr] + p->len[attr] > n) return -1;
    size_t total = n - p->len[attr] + wl;
    if (total + 1 > cap) return -1;
    memcpy(out, caption, p->pos[attr]);
    memcpy(out + p->pos[attr], w, wl);
    memcpy(out + p->pos[attr] + wl, caption + p->pos[attr] + p->len[attr], n - p->pos[attr] - p->len[attr]);
    out[total] = 0;
    return 0;
}

/* ---- thresholds -------------------------------------------------------------- */

void capw_thresholds(const attr_t *a, const int32_t *labels, size_t n, int K, capw_thr_t *th) {
    double *v = xmalloc((n ? n : 1) * sizeof *v);
    for (int k = 0; k < K; k++) {
        memset(&th[k], 0, sizeof th[k]);
        for (int at = 0; at < CAPW_NATTR; at++) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (labels[i] == k) v[m++] = capw_measure(&a[i], at);
            th[k].n = m;
            if (!m) continue;
            th[k].t[at][0] = attr_quantile(v, m, 1.0 / 3);
            th[k].t[at][1] = attr_quantile(v, m, 2.0 / 3);
        }
    }
    free(v);
}

int capw_tercile(const capw_thr_t *th, int attr, double v) { return attr_tercile(v, th->t[attr][0], th->t[attr][1]); }

#define THR_HEAD "# thresholds: class | brightness t1 t2 | width t1 t2 | fill t1 t2"

int capw_thresholds_write(FILE *f, const char *const *names, int K, const capw_thr_t *th) {
    fprintf(f, THR_HEAD "\n");
    for (int k = 0; k < K; k++)
        fprintf(f, "# %-11s | %.17g %.17g | %.17g %.17g | %.17g %.17g\n", names[k], th[k].t[0][0], th[k].t[0][1],
                th[k].t[1][0], th[k].t[1][1], th[k].t[2][0], th[k].t[2][1]);
    return ferror(f);
}

/* s trimmed of blanks on both ends, in place */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

int capw_thresholds_read(const char *path, const char *const *names, int K, capw_thr_t *th, char *err,
                         size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        gb_errf(err, errlen, e, "%s: cannot open: %s", path, strerror(e));
        return e;
    }
    bool *seen = xcalloc((size_t)(K > 0 ? K : 1), sizeof *seen), in_block = false, head = false;
    char line[1024];
    int rc = 0;
    size_t lineno = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] != '#') break;
        if (strncmp(line, THR_HEAD, strlen(THR_HEAD)) == 0) {
            in_block = head = true;
            continue;
        }
        if (!in_block || !strchr(line, '|')) continue;
        char *fld[4], *save = NULL, *body = line + 1;
        int nf = 0;
        for (char *tk = strtok_r(body, "|", &save); tk && nf < 4; tk = strtok_r(NULL, "|", &save)) fld[nf++] = tk;
        if (nf != 4) {
            rc = gb_errf(err, errlen, GB_EFORMAT, "%s line %zu: a threshold line needs a class and 3 pairs", path,
                         lineno);
            break;
        }
        const char *nm = trim(fld[0]);
        int k = 0;
        while (k < K && !(names[k] && strcasecmp(names[k], nm) == 0)) k++;
        if (k == K) continue; /* a class the dataset does not have */
        for (int a = 0; a < CAPW_NATTR && rc == 0; a++) {
            char *e1 = NULL, *e2 = NULL;
            double x = strtod(fld[a + 1], &e1), y = e1 ? strtod(e1, &e2) : 0;
            if (e1 == fld[a + 1] || e2 == e1 || *trim(e2) || !(x <= y))
                rc = gb_errf(err, errlen, GB_EFORMAT, "%s line %zu: class \"%s\": %s cut points are not two "
                             "increasing numbers", path, lineno, nm, ATTR_NAME[a]);
            th[k].t[a][0] = x;
            th[k].t[a][1] = y;
        }
        th[k].n = 0;
        seen[k] = true;
    }
    fclose(f);
    if (rc == 0 && !head)
        rc = gb_errf(err, errlen, GB_EFORMAT, "%s: no \"# thresholds:\" header (not a captions file of "
                     "scripts/fashion-captions.sh)", path);
    for (int k = 0; rc == 0 && k < K; k++)
        if (!seen[k])
            rc = gb_errf(err, errlen, GB_EFORMAT, "%s: no threshold line for class \"%s\"", path,
                         names[k] ? names[k] : "?");
    free(seen);
    return rc;
}
