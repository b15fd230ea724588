/* test_prov.c - the provenance module: records, PNG round trip (iTXt and
 * the XMP packet), JSON output, the gambar-z1 latent contract and the
 * explicit-latent hex form. */
#include "base.h"
#include "err.h"
#include "img.h"
#include "prov.h"
#include "rng.h"
#include "test.h"

#include <errno.h>
#include <math.h>

static void t_set_get(void) {
    prov_t p;
    prov_init(&p);
    CHECK(prov_set(&p, "a", "%d", 5) == 0);
    CHECK(prov_set(&p, "b", "x%sy", "&") == 0);
    CHECK(prov_set(&p, "a", "%s", "18446744073709551615") == 0); /* replaces */
    CHECK(p.n == 2);
    uint64_t u = 0;
    CHECK(prov_get_u64(&p, "a", &u) == 0 && u == UINT64_MAX);
    CHECK(prov_get_u64(&p, "b", &u) == GB_EFORMAT);
    CHECK(prov_get_u64(&p, "zz", &u) == GB_ENOTFOUND);
    long long v;
    prov_set(&p, "neg", "-3");
    CHECK(prov_get_int(&p, "neg", &v) == 0 && v == -3);
    CHECK(prov_get_u64(&p, "neg", &u) == GB_EFORMAT);
    double d;
    prov_set(&p, "d", "0.5");
    CHECK(prov_get_double(&p, "d", &d) == 0 && d == 0.5);
    prov_set(&p, "d", "nan");
    CHECK(prov_get_double(&p, "d", &d) == GB_EFORMAT);
    CHECK(strcmp(prov_get(&p, "b"), "x&y") == 0);
    prov_t q;
    prov_copy(&q, &p);
    prov_free(&p);
    CHECK(q.n == 4 && strcmp(prov_get(&q, "b"), "x&y") == 0);
    prov_free(&q);
    /* capacity */
    prov_init(&p);
    char k[16];
    for (int i = 0; i < PROV_MAX_KEYS; i++) {
        snprintf(k, sizeof k, "k%d", i);
        CHECK(prov_set(&p, k, "v") == 0);
    }
    CHECK(prov_set(&p, "one-more", "v") == GB_ETOOBIG);
    CHECK(prov_set(&p, "k3", "replaced") == 0);
    prov_free(&p);
}

static void make_png(const prov_t *p, uint8_t **buf, size_t *len) {
    uint8_t px[4 * 3 * 1];
    for (int i = 0; i < 12; i++) px[i] = (uint8_t)(i * 20);
    img_t im = {4, 3, 1, px};
    img_text_t *t;
    int nt;
    char *xmp;
    prov_to_texts(p, &t, &nt, &xmp);
    CHECK(nt == p->n + 2);
    CHECK(strcmp(t[0].key, "DigitalSourceType") == 0 && strcmp(t[0].text, PROV_DIGITAL_SOURCE_TYPE) == 0);
    CHECK(strcmp(t[1].key, "XML:com.adobe.xmp") == 0);
    CHECK(strstr(xmp, "Iptc4xmpExt:DigitalSourceType=\"" PROV_DIGITAL_SOURCE_TYPE "\"") != NULL);
    CHECK(img_encode_png(&im, t, nt, 6, buf, len) == 0);
    free(t);
    free(xmp);
}

static void t_png_roundtrip(void) {
    prov_t p;
    prov_init(&p);
    prov_set(&p, PROV_KEY_SOFTWARE, "gambar-sample <test> & co");
    prov_set(&p, "gambar:provenance_version", PROV_VERSION);
    prov_set(&p, "gambar:created", "2026-01-02T03:04:05Z");
    prov_set(&p, "gambar:class_name", "T-shirt/top \"quoted\" ünïcode");
    prov_set(&p, "gambar:prompt", "%s", "");
    uint8_t *buf;
    size_t len;
    make_png(&p, &buf, &len);
    /* the XMP packet is escaped XML inside the file */
    CHECK(memmem(buf, len, "xmp:CreatorTool=\"gambar-sample &lt;test&gt; &amp; co\"", 50) != NULL);
    CHECK(memmem(buf, len, "xmp:CreateDate=\"2026-01-02T03:04:05Z\"", 37) != NULL);
    prov_t q;
    CHECK(prov_from_png(buf, len, &q) == 0);
    CHECK(q.n == p.n + 1); /* + DigitalSourceType; the XMP packet is not a key */
    CHECK(prov_get(&q, PROV_KEY_XMP) == NULL);
    CHECK(strcmp(prov_get(&q, PROV_KEY_DST), PROV_DIGITAL_SOURCE_TYPE) == 0);
    for (int i = 0; i < p.n; i++) {
        const char *v = prov_get(&q, p.key[i]);
        CHECKF(v && strcmp(v, p.val[i]) == 0, "key %s", p.key[i]);
    }
    /* the pixels are still there */
    img_t im;
    CHECK(img_decode_png(buf, len, 0, NULL, &im, NULL, 0) == 0 && im.w == 4 && im.h == 3 && im.px[11] == 220);
    img_free(&im);
    /* to a file and back */
    char path[600];
    snprintf(path, sizeof path, "%s/p.png", test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(buf, 1, len, f) == len);
    if (f) fclose(f);
    prov_t r;
    CHECK(prov_read_file(path, &r) == 0 && r.n == q.n);
    prov_free(&r);
    snprintf(path, sizeof path, "%s/missing.png", test_tmpdir());
    CHECK(prov_read_file(path, &r) == ENOENT);
    prov_free(&r);
    /* JSON output escapes quotes and is one object */
    char *js = NULL;
    size_t jl = 0;
    FILE *m = open_memstream(&js, &jl);
    prov_print(m, &q, 1);
    fclose(m);
    CHECK(js[0] == '{' && strstr(js, "\\\"quoted\\\"") && strstr(js, "\"gambar:prompt\": \"\""));
    free(js);
    prov_free(&q);
    free(buf);
    prov_free(&p);
}

static void t_no_provenance(void) {
    prov_t p;
    prov_init(&p);
    prov_set(&p, "Comment", "just a comment");
    uint8_t *buf;
    size_t len;
    make_png(&p, &buf, &len);
    prov_t q;
    CHECK(prov_from_png(buf, len, &q) == GB_ENOTFOUND);
    CHECK(prov_get(&q, "Comment") != NULL); /* filled even then */
    prov_free(&q);
    CHECK(prov_from_png("not a png at all", 16, &q) == GB_EFORMAT);
    prov_free(&q);
    CHECK(prov_from_png(buf, len / 2, &q) != 0); /* truncated */
    prov_free(&q);
    free(buf);
    prov_free(&p);
}

static void t_latent(void) {
    enum { Z = 100 };
    float a[Z], b[Z], c[Z], ref[Z];
    prov_latent_z1(7, Z, 0, a);
    prov_latent_z1(7, Z, 0, b);
    prov_latent_z1(8, Z, 0, c);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    rng_t r;
    rng_seed(&r, 7);
    rng_normal_fill(&r, ref, Z);
    CHECK(memcmp(a, ref, sizeof a) == 0); /* the documented contract */
    float t[Z];
    prov_latent_z1(7, Z, 0.5, t);
    int kept = 0, redrawn = 0;
    for (int i = 0; i < Z; i++) {
        CHECK(fabsf(t[i]) <= 0.5f);
        if (fabsf(a[i]) <= 0.5f) { CHECK(t[i] == a[i]); kept++; }
        else redrawn++;
    }
    CHECK(kept > 10 && redrawn > 10);
    /* the redraws continue the same stream, in component order */
    rng_seed(&r, 7);
    rng_normal_fill(&r, ref, Z);
    for (int i = 0; i < Z; i++)
        while (fabsf(ref[i]) > 0.5f) ref[i] = rng_normal(&r);
    CHECK(memcmp(t, ref, sizeof t) == 0);
}

static void t_hex(void) {
    float z[6] = {0.0f, -0.0f, 1.5f, -3.25e-30f, 1e-45f, 123456.789f}, y[6];
    char hex[6 * 8 + 1];
    prov_z_to_hex(z, 6, hex);
    CHECK(strlen(hex) == 48);
    CHECK(strncmp(hex, "0000000080000000", 16) == 0);
    CHECK(prov_z_from_hex(hex, 6, y) == 0 && memcmp(z, y, sizeof z) == 0);
    CHECK(prov_z_from_hex(hex, 5, y) == GB_EFORMAT);
    hex[3] = 'g';
    CHECK(prov_z_from_hex(hex, 6, y) == GB_EFORMAT);
    CHECK(prov_z_from_hex("7f800000", 1, y) == GB_EFORMAT); /* inf */
    CHECK(prov_z_from_hex("3F800000", 1, y) == 0 && y[0] == 1.0f);
}

static void t_time(void) {
    char b[32];
    prov_now_iso8601(b, sizeof b);
    CHECK(strlen(b) == 20 && b[4] == '-' && b[10] == 'T' && b[19] == 'Z');
}

int main(void) {
    RUN(t_set_get);
    RUN(t_png_roundtrip);
    RUN(t_no_provenance);
    RUN(t_latent);
    RUN(t_hex);
    RUN(t_time);
    return test_done();
}
