/* ingest_cap.c - captions for gambar-ingest: the sidecar NAME.txt beside
 * NAME.png, and the captions file given with --captions for IDX input.
 *
 * Both are text, one caption per line (the captions file: one line per
 * IDX record, its captions separated by '|'). Every caption is checked
 * here, once, before it reaches the store, so proto/dataset.proto can
 * promise what Example.captions hold: valid UTF-8 without control line
 * breaks, 1..ING_CAP_MAX_BYTES bytes, at most ING_CAP_MAX_N per image.
 * Invalid UTF-8 is skipped (the file and line named), an over-long caption
 * is cut at the last whole character that fits, captions beyond the
 * ING_CAP_MAX_N-th are dropped; each case is counted for the summary. */
#include "ingest.h"

#include "base.h"
#include "err.h"
#include "log.h"

#include <errno.h>

/* Length of the valid UTF-8 sequence starting at s[0..n), or 0 when it is
 * not one (overlong forms, surrogates and code points above U+10FFFF are
 * invalid, as in RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

bool ing_cap_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k || p[i] == 0) return false;
        i += k;
    }
    return true;
}

/* Add the caption s[0..n) (spaces around it trimmed) to caps, checking
 * it; shown and line name its origin in messages. */
static void cap_add(ing_caps_t *caps, ing_capstat_t *st, const char *s, size_t n, const char *shown,
                    unsigned long line) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n) return;
    if (!ing_cap_utf8_valid(s, n)) {
        st->invalid++;
        log_warn("%s:%lu: caption is not valid UTF-8 (skipped)", shown, line);
        return;
    }
    if (caps->n == ING_CAP_MAX_N) {
        st->dropped++;
        log_warn("%s:%lu: more than %d captions for one image (this one dropped)", shown, line, ING_CAP_MAX_N);
        return;
    }
    if (n > ING_CAP_MAX_BYTES) {
        size_t cut = ING_CAP_MAX_BYTES;
        while (cut && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--; /* not inside a character */
        st->truncated++;
        log_warn("%s:%lu: caption of %zu bytes cut to %zu (at most %d)", shown, line, n, cut, ING_CAP_MAX_BYTES);
        n = cut;
    }
    memcpy(caps->text[caps->n], s, n);
    caps->text[caps->n][n] = 0;
    for (char *p = caps->text[caps->n]; *p; p++)
        if (*p == '\r') *p = ' '; /* a CR inside a line: the dataset promises none */
    caps->ptr[caps->n] = caps->text[caps->n];
    caps->n++;
}

void ing_cap_parse(const char *buf, size_t n, char sep, const char *shown, unsigned long line, ing_caps_t *caps,
                   ing_capstat_t *st) {
    if (n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) buf += 3, n -= 3; /* BOM */
    size_t a = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && buf[i] != '\n' && buf[i] != sep) continue;
        size_t e = i;
        if (e > a && buf[e - 1] == '\r') e--;
        cap_add(caps, st, buf + a, e - a, shown, line);
        if (i < n && buf[i] == '\n') line++;
        a = i + 1;
    }
}

int ing_cap_sidecar(const char *png_path, ing_caps_t *caps, ing_capstat_t *st) {
    caps->n = 0;
    char path[PATH_MAX + 8];
    size_t l = strlen(png_path);
    if (l < 4 || l + 1 > sizeof path) return 0;
    memcpy(path, png_path, l - 4);
    memcpy(path + l - 4, ".txt", 5);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        st->unreadable++;
        log_warn("%s: cannot read the caption file: %s (no captions for this image)", path, strerror(errno));
        return 0;
    }
    char buf[ING_CAP_SIDECAR_MAX + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > ING_CAP_SIDECAR_MAX) {
        st->unreadable++;
        if (bad) log_warn("%s: read error (no captions for this image)", path);
        else log_warn("%s: larger than %d bytes (no captions for this image)", path, ING_CAP_SIDECAR_MAX);
        return 0;
    }
    ing_cap_parse(buf, n, '\n', path, 1, caps, st);
    return 0;
}

int ing_capfile_open(const char *path, ing_capfile_t *cf) {
    memset(cf, 0, sizeof *cf);
    cf->f = fopen(path, "rb");
    if (!cf->f) {
        int rc = errno;
        log_error("--captions %s: cannot read: %s", path, strerror(rc));
        return rc;
    }
    cf->path = path;
    return 0;
}

int ing_capfile_next(ing_capfile_t *cf, ing_caps_t *caps, ing_capstat_t *st) {
    caps->n = 0;
    for (;;) {
        ssize_t n = getline(&cf->line, &cf->cap, cf->f);
        if (n < 0) {
            if (ferror(cf->f)) {
                log_error("--captions %s: read error after line %lu", cf->path, cf->ln);
                return EIO;
            }
            if (!cf->ended) log_warn("--captions %s: ends at line %lu; the records after it get no captions",
                                     cf->path, cf->ln);
            cf->ended = true;
            return 0;
        }
        cf->ln++;
        if (cf->line[0] == '#') continue; /* comment (the header of scripts/fashion-captions.sh) */
        if (n > 0 && cf->line[n - 1] == '\n') n--;
        ing_cap_parse(cf->line, (size_t)n, '|', cf->path, cf->ln, caps, st);
        return 0;
    }
}

void ing_capfile_close(ing_capfile_t *cf) {
    if (cf->f) fclose(cf->f);
    free(cf->line);
    memset(cf, 0, sizeof *cf);
}
