/* prov.c - provenance records of generated images (see prov.h).
 *
 * A record is a short ordered list of strings, so writing is a loop over
 * img_text_t entries and reading keeps whatever keys the file has: a newer
 * writer's extra keys survive --inspect untouched. The XMP packet is
 * derived from the record when writing and skipped when reading (its
 * content duplicates DigitalSourceType, Software and gambar:created). */
#include "prov.h"

#include "base.h"
#include "err.h"
#include "json.h"
#include "rng.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>

void prov_init(prov_t *p) { memset(p, 0, sizeof *p); }

void prov_free(prov_t *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->key[i]);
        free(p->val[i]);
    }
    p->n = 0;
}

void prov_copy(prov_t *dst, const prov_t *src) {
    prov_init(dst);
    for (int i = 0; i < src->n; i++) {
        dst->key[i] = xstrdup(src->key[i]);
        dst->val[i] = xstrdup(src->val[i]);
    }
    dst->n = src->n;
}

static int prov_find(const prov_t *p, const char *key) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->key[i], key) == 0) return i;
    return -1;
}

/* Set key to an already formatted value (takes ownership of v). */
static int prov_put(prov_t *p, const char *key, char *v) {
    int i = prov_find(p, key);
    if (i >= 0) {
        free(p->val[i]);
        p->val[i] = v;
        return 0;
    }
    if (p->n >= PROV_MAX_KEYS) {
        free(v);
        return GB_ETOOBIG;
    }
    p->key[p->n] = xstrdup(key);
    p->val[p->n] = v;
    p->n++;
    return 0;
}

int prov_set(prov_t *p, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ASSERT(len >= 0);
    char *v = xmalloc((size_t)len + 1);
    va_start(ap, fmt);
    vsnprintf(v, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return prov_put(p, key, v);
}

const char *prov_get(const prov_t *p, const char *key) {
    int i = prov_find(p, key);
    return i >= 0 ? p->val[i] : NULL;
}

int prov_get_u64(const prov_t *p, const char *key, uint64_t *out) {
    const char *s = prov_get(p, key);
    if (!s) return GB_ENOTFOUND;
    if (!*s || *s == '-') return GB_EFORMAT;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return GB_EFORMAT;
    *out = (uint64_t)v;
    return 0;
}

int prov_get_int(const prov_t *p, const char *key, long long *out) {
    const char *s = prov_get(p, key);
    if (!s) return GB_ENOTFOUND;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return GB_EFORMAT;
    *out = v;
    return 0;
}

int prov_get_double(const prov_t *p, const char *key, double *out) {
    const char *s = prov_get(p, key);
    if (!s) return GB_ENOTFOUND;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return GB_EFORMAT;
    *out = v;
    return 0;
}

/* Append s to the XML buffer with &, <, >, " escaped. */
static size_t xml_escape(char *dst, const char *s) {
    size_t n = 0;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        default: break;
        }
        if (rep) {
            size_t l = strlen(rep);
            if (dst) memcpy(dst + n, rep, l);
            n += l;
        } else {
            if (dst) dst[n] = *s;
            n++;
        }
    }
    return n;
}

static char *make_xmp(const prov_t *p) {
    const char *sw = prov_get(p, PROV_KEY_SOFTWARE), *created = prov_get(p, "gambar:created");
    if (!sw) sw = "";
    if (!created) created = "";
    static const char head[] =
        "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
        "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
        " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
        "  <rdf:Description rdf:about=\"\"\n"
        "    xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\"\n"
        "    xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"\n"
        "    Iptc4xmpExt:DigitalSourceType=\"" PROV_DIGITAL_SOURCE_TYPE "\"\n"
        "    xmp:CreatorTool=\"";
    static const char mid[] = "\"\n    xmp:CreateDate=\"";
    static const char tail[] = "\"/>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"r\"?>";
    size_t n = sizeof head - 1 + xml_escape(NULL, sw) + sizeof mid - 1 + xml_escape(NULL, created) +
               sizeof tail - 1;
    char *x = xmalloc(n + 1), *w = x;
    memcpy(w, head, sizeof head - 1);
    w += sizeof head - 1;
    w += xml_escape(w, sw);
    memcpy(w, mid, sizeof mid - 1);
    w += sizeof mid - 1;
    w += xml_escape(w, created);
    memcpy(w, tail, sizeof tail);
    return x;
}

void prov_to_texts(const prov_t *p, img_text_t **texts, int *ntexts, char **xmp) {
    img_text_t *t = xcalloc((size_t)p->n + 2, sizeof *t);
    int k = 0;
    *xmp = make_xmp(p);
    t[k++] = (img_text_t){PROV_KEY_DST, PROV_DIGITAL_SOURCE_TYPE};
    t[k++] = (img_text_t){PROV_KEY_XMP, *xmp};
    for (int i = 0; i < p->n; i++) {
        if (strcmp(p->key[i], PROV_KEY_DST) == 0 || strcmp(p->key[i], PROV_KEY_XMP) == 0) continue;
        t[k++] = (img_text_t){p->key[i], p->val[i]};
    }
    *texts = t;
    *ntexts = k;
}

int prov_from_png(const void *data, size_t n, prov_t *out) {
    prov_init(out);
    img_text_t *t = NULL;
    int nt = 0;
    int rc = img_read_texts(data, n, &t, &nt);
    if (rc) return rc;
    for (int i = 0; i < nt; i++) {
        if (strcmp(t[i].key, PROV_KEY_XMP) == 0) continue;
        if (prov_put(out, t[i].key, xstrdup(t[i].text ? t[i].text : "")) != 0) break;
    }
    img_texts_free(t, nt);
    return prov_get(out, "gambar:provenance_version") ? 0 : GB_ENOTFOUND;
}

int prov_read_file(const char *path, prov_t *out) {
    prov_init(out);
    FILE *f = fopen(path, "rb");
    if (!f) return errno;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = xmalloc(cap);
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= ((size_t)256 << 20)) { rc = GB_ETOOBIG; break; }
            buf = xrealloc(buf, cap *= 2);
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) rc = EIO;
            break;
        }
    }
    fclose(f);
    if (!rc) rc = prov_from_png(buf, len, out);
    free(buf);
    return rc;
}

void prov_print(FILE *f, const prov_t *p, int json) {
    if (json) {
        fputs("{", f);
        for (int i = 0; i < p->n; i++) {
            fputs(i ? ",\n  " : "\n  ", f);
            json_str(f, p->key[i]);
            fputs(": ", f);
            json_str(f, p->val[i]);
        }
        fputs("\n}\n", f);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        size_t l = strlen(p->val[i]);
        if (l > 72 && !strchr(p->val[i], ' '))
            fprintf(f, "%s: %.40s... (%zu characters)\n", p->key[i], p->val[i], l);
        else
            fprintf(f, "%s: %s\n", p->key[i], p->val[i]);
    }
}

void prov_latent_z1(uint64_t seed, int Z, double truncation, float *z) {
    rng_t r;
    rng_seed(&r, seed);
    rng_normal_fill(&r, z, (size_t)Z);
    if (truncation <= 0) return;
    ASSERT(truncation >= PROV_MIN_TRUNCATION);
    float t = (float)truncation;
    for (int i = 0; i < Z; i++)
        while (fabsf(z[i]) > t) z[i] = rng_normal(&r);
}

void prov_z_to_hex(const float *z, int n, char *hex) {
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &z[i], 4);
        for (int k = 0; k < 8; k++) hex[8 * i + k] = d[(u >> (28 - 4 * k)) & 15];
    }
    hex[8 * n] = 0;
}

int prov_z_from_hex(const char *hex, int n, float *z) {
    if (strlen(hex) != (size_t)n * 8) return GB_EFORMAT;
    for (int i = 0; i < n; i++) {
        uint32_t u = 0;
        for (int k = 0; k < 8; k++) {
            char c = hex[8 * i + k];
            int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (v < 0) return GB_EFORMAT;
            u = (u << 4) | (uint32_t)v;
        }
        memcpy(&z[i], &u, 4);
        if (!isfinite(z[i])) return GB_EFORMAT;
    }
    return 0;
}

void prov_now_iso8601(char *buf, size_t len) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
