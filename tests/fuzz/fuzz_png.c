/* fuzz_png.c - libFuzzer harness for the PNG decoder and text reader.
 *
 * Arbitrary bytes go through img_decode_png with each want_channels value
 * under small limits (512 x 512 and 1 MiB down to 64 x 64 and 4 KiB), and
 * through img_read_texts. What
 * must hold: no crash, leak or sanitizer report; an error is one of the
 * documented codes with a reason and no pixels; a decoded image has the
 * promised shape, survives an encode/decode round trip unchanged and
 * resizes. Every input is tried twice: as it is, and with each chunk's
 * CRC recomputed, so that mutations reach the chunk parsers instead of
 * dying at the CRC check (libpng is not instrumented, so the fuzzer
 * cannot find its way past the CRC by coverage). Built by `make fuzz`; tests/test_fuzz_replay.c also compiles
 * this file (renaming the entry point) to replay seeds and regressions in
 * the normal build. */
#include "base.h"
#include "err.h"
#include "img.h"

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned fp_sink;

static void fp_check_image(const img_t *im, int want, const img_limits_t *lim) {
    ASSERT(im->px != NULL);
    ASSERT(im->w >= 1 && im->h >= 1 && im->w <= lim->max_width && im->h <= lim->max_height);
    ASSERT(want ? im->c == (uint32_t)want : (im->c == 1 || im->c == 3));
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)im->w * im->h * im->c; i++) sum += im->px[i];
    fp_sink = sum;
    if ((size_t)im->w * im->h > 128 * 128) return; /* keep the fuzzer fast */
    /* what we decode, we can write and read back exactly */
    uint8_t *buf;
    size_t len;
    img_text_t t = {"fuzz", "round trip"};
    ASSERT(img_encode_png(im, &t, 1, 1, &buf, &len) == 0);
    img_t back;
    char why[160];
    int rc = img_decode_png(buf, len, 0, NULL, &back, why, sizeof why);
    ASSERT(rc == 0);
    ASSERT(back.w == im->w && back.h == im->h && back.c == im->c);
    ASSERT(memcmp(back.px, im->px, (size_t)im->w * im->h * im->c) == 0);
    img_free(&back);
    free(buf);
    static const uint32_t sizes[][2] = {{7, 5}, {2, 3}}; /* mostly enlarge, mostly shrink */
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        img_t r;
        img_resize_crop(im, sizes[k][0], sizes[k][1], &r);
        ASSERT(r.w == sizes[k][0] && r.h == sizes[k][1] && r.c == im->c);
        img_free(&r);
    }
}

/* A copy of data with the CRC of every complete chunk recomputed. */
static uint8_t *fp_fix_crcs(const uint8_t *data, size_t size) {
    uint8_t *p = xmalloc(size);
    memcpy(p, data, size);
    size_t pos = 8;
    while (size >= 8 && pos <= size && size - pos >= 12) {
        uint32_t len = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 | (uint32_t)p[pos + 2] << 8 | p[pos + 3];
        if (len > size - pos - 12) break;
        uint32_t c = (uint32_t)crc32(0, p + pos + 4, len + 4);
        uint8_t *q = p + pos + 8 + len;
        q[0] = (uint8_t)(c >> 24), q[1] = (uint8_t)(c >> 16), q[2] = (uint8_t)(c >> 8), q[3] = (uint8_t)c;
        pos += 12 + (size_t)len;
    }
    return p;
}

static void fp_one(const uint8_t *data, size_t size) {
    /* one want_channels per limit set; the last is small enough that
     * images over ~35 x 35 hit the pixel budget */
    static const int wants[] = {0, 1, 3};
    static const img_limits_t lims[] = {{512, 512, (size_t)1 << 20}, {256, 256, 64 << 10}, {64, 64, 4096}};
    for (size_t k = 0; k < ARRAY_LEN(wants); k++) {
        img_t im;
        char why[160];
        int rc = img_decode_png(data, size, wants[k], &lims[k], &im, why, sizeof why);
        if (rc == 0) {
            fp_check_image(&im, wants[k], &lims[k]);
            img_free(&im);
        } else {
            ASSERT(rc == GB_EFORMAT || rc == GB_ECORRUPT || rc == GB_ETOOBIG);
            ASSERT(im.px == NULL && why[0] != '\0');
        }
    }
    img_text_t *texts;
    int n;
    int rc = img_read_texts(data, size, &texts, &n);
    if (rc == 0) {
        ASSERT(n >= 0 && n <= 128 && (n == 0 || texts));
        size_t total = 0;
        for (int i = 0; i < n; i++) total += strlen(texts[i].key) + strlen(texts[i].text);
        fp_sink = (unsigned)total;
        img_texts_free(texts, n);
    } else {
        ASSERT(rc == GB_EFORMAT || rc == GB_ECORRUPT || rc == GB_ETOOBIG);
        ASSERT(texts == NULL && n == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fp_one(data, size);
    if (size >= 8) {
        uint8_t *fixed = fp_fix_crcs(data, size);
        if (memcmp(fixed, data, size) != 0) fp_one(fixed, size);
        free(fixed);
    }
    return 0;
}
