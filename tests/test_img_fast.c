/* test_img_fast.c - img_decode_png's fast path (plain 8-bit gray/RGB)
 * against the pixels that were encoded, for every PNG row filter.
 *
 * test_img encodes through img_encode_png, which uses no filter for small
 * images and only Sub/Up for large ones; the fast path undoes all five
 * filters itself, so here libpng writes the files directly with each
 * filter forced (and with all of them, libpng choosing per row), split
 * into many small IDAT chunks, with text chunks before and after the
 * image data, and the decoded pixels must equal the source exactly, for
 * every want_channels. Damaged variants keep the error mapping of libpng:
 * a flipped IDAT byte with its CRC fixed (so only zlib can notice) is
 * GB_ECORRUPT or decodes, a bad IDAT CRC is GB_ECORRUPT naming the CRC,
 * and a stream one row longer than IHDR says decodes to the image (libpng
 * only warns about extra compressed data; the fast path leaves it to
 * libpng). */
#include "test.h"

#include "base.h"
#include "err.h"
#include "img.h"
#include "pngmem.h"

#include <png.h>
#include <setjmp.h>
#include <zlib.h>

static uint64_t g_rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    g_rs ^= g_rs << 13, g_rs ^= g_rs >> 7, g_rs ^= g_rs << 17;
    return (uint32_t)(g_rs >> 16);
}

/* Encode h rows of px (w x h, ch 1 or 3) with the given filter set;
 * extra_rows more rows of zeros are compressed than the IHDR says. */
static pngmem_t encode(const uint8_t *px, uint32_t w, uint32_t h, int ch, int filters, int extra_rows) {
    pngmem_t m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ASSERT(png && info);
    if (setjmp(png_jmpbuf(png))) ASSERT(!"libpng write failed");
    pngmem_use(png, &m);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);
    png_set_compression_buffer_size(png, 97); /* many small IDAT chunks */
    png_text t[2] = {{.compression = PNG_TEXT_COMPRESSION_NONE, .key = "Comment", .text = "before"},
                     {.compression = PNG_TEXT_COMPRESSION_zTXt, .key = "Z", .text = "after after after"}};
    png_set_text(png, info, t, 1);
    png_set_gAMA(png, info, 0.45455);
    png_set_IHDR(png, info, w, h + (uint32_t)extra_rows, 8, ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < h; y++) png_write_row(png, (png_bytep)(px + (size_t)y * w * ch));
    uint8_t *zero = xcalloc((size_t)w * ch, 1);
    for (int y = 0; y < extra_rows; y++) png_write_row(png, zero);
    free(zero);
    png_set_text(png, info, t + 1, 1);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    if (extra_rows) { /* put the real height back in IHDR and fix its CRC */
        m.buf[20] = (uint8_t)(h >> 24), m.buf[21] = (uint8_t)(h >> 16);
        m.buf[22] = (uint8_t)(h >> 8), m.buf[23] = (uint8_t)h;
        uint32_t c = (uint32_t)crc32(0, m.buf + 12, 17);
        m.buf[29] = (uint8_t)(c >> 24), m.buf[30] = (uint8_t)(c >> 16);
        m.buf[31] = (uint8_t)(c >> 8), m.buf[32] = (uint8_t)c;
    }
    return m;
}

/* Offset of the first IDAT chunk's length field, or 0. */
static size_t first_idat(const pngmem_t *m) {
    for (size_t pos = 8; pos + 12 <= m->len;) {
        uint32_t len = (uint32_t)m->buf[pos] << 24 | (uint32_t)m->buf[pos + 1] << 16 |
                       (uint32_t)m->buf[pos + 2] << 8 | m->buf[pos + 3];
        if (!memcmp(m->buf + pos + 4, "IDAT", 4)) return pos;
        pos += 12 + (size_t)len;
    }
    return 0;
}

/* Expected pixel i (of w*h) of src (ch channels) at want channels. */
static void expect(const uint8_t *src, int ch, int want, size_t i, uint8_t *o) {
    const uint8_t *s = src + i * ch;
    if (ch == want || want == 0) {
        memcpy(o, s, (size_t)ch);
    } else if (want == 3) {
        o[0] = o[1] = o[2] = s[0];
    } else {
        o[0] = (uint8_t)((299u * s[0] + 587u * s[1] + 114u * s[2] + 500) / 1000);
    }
}

static void test_filters(void) {
    static const int filters[] = {PNG_FILTER_NONE, PNG_FILTER_SUB, PNG_FILTER_UP, PNG_FILTER_AVG,
                                  PNG_FILTER_PAETH, PNG_ALL_FILTERS};
    static const uint32_t sizes[][2] = {{1, 1}, {28, 28}, {3, 7}, {61, 5}, {300, 20}};
    for (size_t si = 0; si < ARRAY_LEN(sizes); si++) {
        for (int ch = 1; ch <= 3; ch += 2) {
            uint32_t w = sizes[si][0], h = sizes[si][1];
            size_t n = (size_t)w * h * ch;
            uint8_t *px = xmalloc(n);
            for (size_t i = 0; i < n; i++) px[i] = (uint8_t)(si & 1 ? rnd() : (i * 7 + (rnd() & 3)));
            for (size_t fi = 0; fi < ARRAY_LEN(filters); fi++) {
                pngmem_t m = encode(px, w, h, ch, filters[fi], 0);
                for (int want = 0; want <= 3; want += want ? 2 : 1) {
                    img_t im;
                    char why[200];
                    int rc = img_decode_png(m.buf, m.len, want, NULL, &im, why, sizeof why);
                    CHECKF(rc == 0, "%ux%u ch %d filter %d want %d: %s", w, h, ch, filters[fi], want, why);
                    if (rc) continue;
                    int oc = want ? want : ch;
                    CHECK(im.w == w && im.h == h && (int)im.c == oc);
                    int same = 1;
                    for (size_t i = 0; i < (size_t)w * h && same; i++) {
                        uint8_t e[3];
                        expect(px, ch, oc, i, e);
                        same = !memcmp(im.px + i * oc, e, (size_t)oc);
                    }
                    CHECKF(same, "%ux%u ch %d filter %d want %d: pixels differ", w, h, ch, filters[fi], want);
                    img_free(&im);
                }
                free(m.buf);
            }
            free(px);
        }
    }
}

static void test_damaged(void) {
    uint32_t w = 28, h = 28;
    uint8_t px[28 * 28];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i % 251);
    img_t im;
    char why[200];
    /* a byte of zlib data flipped, CRC made to match: zlib must notice */
    pngmem_t m = encode(px, w, h, 1, PNG_ALL_FILTERS, 0);
    size_t at = first_idat(&m);
    CHECK(at > 0);
    uint32_t len = (uint32_t)m.buf[at] << 24 | (uint32_t)m.buf[at + 1] << 16 | (uint32_t)m.buf[at + 2] << 8 |
                   m.buf[at + 3];
    CHECK(len > 4);
    int bad = 0;
    for (uint32_t k = 2; k < len; k++) { /* every byte past the zlib header in turn */
        m.buf[at + 8 + k] ^= 0x10;
        uint32_t c = (uint32_t)crc32(0, m.buf + at + 4, len + 4);
        uint8_t old[4];
        memcpy(old, m.buf + at + 8 + len, 4);
        m.buf[at + 8 + len] = (uint8_t)(c >> 24), m.buf[at + 9 + len] = (uint8_t)(c >> 16);
        m.buf[at + 10 + len] = (uint8_t)(c >> 8), m.buf[at + 11 + len] = (uint8_t)c;
        int rc = img_decode_png(m.buf, m.len, 1, NULL, &im, why, sizeof why);
        /* Either refused as corrupt or decoded. (libpng stops inflating
         * once it has every row and only warns about a bad Adler-32 after
         * that, so a few flips near the end decode to wrong pixels, as
         * they did before the fast path existed: the fast path itself
         * requires the checksum and leaves such files to libpng.) */
        if (rc == 0) img_free(&im);
        else if (rc != GB_ECORRUPT) bad++, fprintf(stderr, "flip at %u: %s: %s\n", k, err_str(rc), why);
        m.buf[at + 8 + k] ^= 0x10;
        memcpy(m.buf + at + 8 + len, old, 4);
    }
    CHECKF(bad == 0, "%d damaged variants gave another error than GB_ECORRUPT", bad);
    /* CRC mismatch in IDAT (the CRC itself damaged) */
    m.buf[at + 8 + len] ^= 1;
    CHECK(img_decode_png(m.buf, m.len, 1, NULL, &im, why, sizeof why) == GB_ECORRUPT);
    CHECKF(strstr(why, "CRC") != NULL, "reason: %s", why);
    free(m.buf);
    /* one row more compressed than IHDR says: libpng warns and decodes */
    m = encode(px, w, h, 1, PNG_FILTER_NONE, 1);
    int rc = img_decode_png(m.buf, m.len, 1, NULL, &im, why, sizeof why);
    CHECKF(rc == 0, "%s", why);
    if (!rc) {
        CHECK(im.h == h && !memcmp(im.px, px, sizeof px));
        img_free(&im);
    }
    free(m.buf);
}

int main(void) {
    RUN(test_filters);
    RUN(test_damaged);
    return test_done();
}
