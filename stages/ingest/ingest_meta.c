/* ingest_meta.c - the side inputs of gambar-ingest: the opt-out list (a
 * set of SHA-256 digests) and the license manifest (CSV keyed by path).
 *
 * Both are loaded once before ingest starts and then only read, from the
 * writer and from decode workers at once, so lookups take no locks. Both
 * are small next to the dataset; simple open-addressing tables suffice. */
#include "ingest.h"

#include "base.h"
#include "err.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>

/* ---- SHA set ---- */

static uint64_t sha_hash(const uint8_t sha[DIGEST_LEN]) {
    uint64_t h;
    memcpy(&h, sha, sizeof h);
    return h;
}

static void shaset_place(ing_shaset_t *s, size_t idx) {
    size_t mask = s->tcap - 1;
    for (size_t j = (size_t)sha_hash(s->sha[idx]) & mask;; j = (j + 1) & mask)
        if (!s->tab[j]) { s->tab[j] = (uint32_t)(idx + 1); return; }
}

void ing_shaset_add(ing_shaset_t *s, const uint8_t sha[DIGEST_LEN]) {
    if (ing_shaset_has(s, sha)) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->sha = xrealloc(s->sha, s->cap * sizeof *s->sha);
    }
    memcpy(s->sha[s->n], sha, DIGEST_LEN);
    s->n++;
    if (s->n * 2 > s->tcap) {
        free(s->tab);
        s->tcap = s->tcap ? s->tcap * 2 : 128;
        while (s->n * 2 > s->tcap) s->tcap *= 2;
        s->tab = xcalloc(s->tcap, sizeof *s->tab);
        for (size_t i = 0; i < s->n; i++) shaset_place(s, i);
    } else {
        shaset_place(s, s->n - 1);
    }
}

bool ing_shaset_has(const ing_shaset_t *s, const uint8_t sha[DIGEST_LEN]) {
    if (!s || !s->n) return false;
    size_t mask = s->tcap - 1;
    for (size_t j = (size_t)sha_hash(sha) & mask;; j = (j + 1) & mask) {
        uint32_t e = s->tab[j];
        if (!e) return false;
        if (memcmp(s->sha[e - 1], sha, DIGEST_LEN) == 0) return true;
    }
}

void ing_shaset_free(ing_shaset_t *s) {
    free(s->sha);
    free(s->tab);
    memset(s, 0, sizeof *s);
}

int ing_optout_load(const char *path, ing_shaset_t *s) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f) {
        int rc = errno;
        log_error("--optout %s: cannot read: %s", path, strerror(rc));
        return rc;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    for (unsigned long ln = 1; (len = getline(&line, &cap, f)) >= 0; ln++) {
        char *p = line, *hash = strchr(line, '#');
        if (hash) *hash = 0;
        while (isspace((unsigned char)*p)) p++;
        char *e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1])) *--e = 0;
        if (!*p) continue;
        uint8_t sha[DIGEST_LEN];
        if (e - p != DIGEST_HEX_LEN || digest_unhex(p, sha, DIGEST_LEN) != 0) {
            log_error("--optout %s:%lu: '%.80s' is not a SHA-256 (64 hex digits)", path, ln, p);
            rc = GB_EFORMAT;
            break;
        }
        ing_shaset_add(s, sha);
    }
    free(line);
    fclose(f);
    if (rc) ing_shaset_free(s);
    return rc;
}

/* ---- manifest ---- */

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static ing_manent_t *man_lookup(const ing_manifest_t *m, const char *path, uint32_t **slot) {
    if (!m->tcap) { if (slot) *slot = NULL; return NULL; }
    size_t mask = m->tcap - 1;
    for (size_t j = (size_t)str_hash(path) & mask;; j = (j + 1) & mask) {
        uint32_t e = m->tab[j];
        if (!e) { if (slot) *slot = &m->tab[j]; return NULL; }
        if (strcmp(m->e[e - 1].path, path) == 0) { if (slot) *slot = &m->tab[j]; return &m->e[e - 1]; }
    }
}

static void man_rehash(ing_manifest_t *m) {
    free(m->tab);
    m->tcap = m->tcap ? m->tcap * 2 : 256;
    while (m->n * 2 >= m->tcap) m->tcap *= 2;
    m->tab = xcalloc(m->tcap, sizeof *m->tab);
    for (size_t i = 0; i < m->n; i++) {
        uint32_t *slot;
        man_lookup(m, m->e[i].path, &slot);
        *slot = (uint32_t)(i + 1);
    }
}

#define MAN_FIELDS 4 /* path, license, attribution, caption */

/* Read one CSV record of up to MAN_FIELDS fields from f. Returns the number of
 * fields (0 at EOF), or -1 for a malformed record (unclosed quote, text
 * after a closing quote, too many fields). *ln counts physical lines. */
static int csv_record(FILE *f, char **fld, size_t *flen, size_t *fcap, unsigned long *ln) {
    int c = getc(f);
    if (c == EOF) return 0;
    int nf = 0;
    for (int i = 0; i < MAN_FIELDS; i++) flen[i] = 0;
    for (;;) {
        if (nf == MAN_FIELDS) return -1;
        bool quoted = false;
        size_t *L = &flen[nf];
        if (c == '"') { quoted = true; c = getc(f); }
        for (;;) {
            if (quoted) {
                if (c == EOF) return -1;
                if (c == '"') {
                    c = getc(f);
                    if (c != '"') break; /* closing quote */
                } else if (c == '\n') {
                    (*ln)++;
                }
            } else if (c == ',' || c == '\n' || c == EOF) {
                break;
            }
            if (*L + 2 > fcap[nf]) {
                fcap[nf] = fcap[nf] ? fcap[nf] * 2 : 128;
                fld[nf] = xrealloc(fld[nf], fcap[nf]);
            }
            fld[nf][(*L)++] = (char)c;
            c = getc(f);
        }
        if (!fcap[nf]) { fcap[nf] = 128; fld[nf] = xmalloc(128); }
        if (*L && !quoted && fld[nf][*L - 1] == '\r') (*L)--;
        fld[nf][*L] = 0;
        nf++;
        if (c == '\r') c = getc(f);
        if (c == ',') { c = getc(f); continue; }
        if (c == '\n' || c == EOF) { (*ln)++; return nf; }
        return -1; /* text after a closing quote */
    }
}

int ing_manifest_load(const char *path, const char *root_abs, ing_manifest_t *m) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f) {
        int rc = errno;
        log_error("--manifest %s: cannot read: %s", path, strerror(rc));
        return rc;
    }
    char *fld[MAN_FIELDS] = {0};
    size_t flen[MAN_FIELDS], fcap[MAN_FIELDS] = {0};
    unsigned long ln = 1;
    int rc = 0, nf;
    size_t rlen = root_abs ? strlen(root_abs) : 0;
    for (bool first = true;; first = false) {
        unsigned long at = ln;
        nf = csv_record(f, fld, flen, fcap, &ln);
        if (nf == 0) break;
        if (nf < 0) {
            log_error("--manifest %s:%lu: malformed CSV record (unclosed quote, text after a quote "
                      "or more than 4 fields)", path, at);
            rc = GB_EFORMAT;
            break;
        }
        if (nf == 1 && flen[0] == 0) continue; /* blank line */
        if (first && strcmp(fld[0], "path") == 0) continue;
        if (flen[0] == 0) {
            log_error("--manifest %s:%lu: empty path", path, at);
            rc = GB_EFORMAT;
            break;
        }
        const char *p = fld[0];
        if (p[0] == '/' && rlen && strncmp(p, root_abs, rlen) == 0 && p[rlen] == '/') p += rlen + 1;
        while (p[0] == '.' && p[1] == '/') p += 2;
        if (man_lookup(m, p, NULL)) {
            log_error("--manifest %s:%lu: '%s' is listed twice", path, at, p);
            rc = GB_EFORMAT;
            break;
        }
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 64;
            m->e = xrealloc(m->e, m->cap * sizeof *m->e);
        }
        ing_manent_t *e = &m->e[m->n++];
        e->path = xstrdup(p);
        e->license = xstrdup(nf > 1 ? fld[1] : "");
        e->attribution = xstrdup(nf > 2 ? fld[2] : "");
        e->caption = xstrdup(nf > 3 ? fld[3] : "");
        e->line = at;
        e->used = false;
        if ((m->n) * 2 >= m->tcap) man_rehash(m);
        else {
            uint32_t *slot;
            man_lookup(m, e->path, &slot);
            *slot = (uint32_t)m->n;
        }
    }
    for (int i = 0; i < MAN_FIELDS; i++) free(fld[i]);
    fclose(f);
    if (rc) {
        ing_manifest_free(m);
        return rc;
    }
    m->dflt = man_lookup(m, "*", NULL);
    return 0;
}

const ing_manent_t *ing_manifest_find(ing_manifest_t *m, const char *relpath) {
    ing_manent_t *e = man_lookup(m, relpath, NULL);
    if (!e) e = m->dflt;
    if (e) e->used = true;
    return e;
}

void ing_manifest_free(ing_manifest_t *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].path);
        free(m->e[i].license);
        free(m->e[i].attribution);
        free(m->e[i].caption);
    }
    free(m->e);
    free(m->tab);
    memset(m, 0, sizeof *m);
}
