/* test_aug.c - unit tests of common/aug.c: op parsing, each op's effect
 * on a known image, value conversions, and the stream definition
 * (permutation, shard plan) that gambar-augment's reproducibility rests
 * on. Stage-level behaviour is tested by tests/t_augment.sh. */
#include "aug.h"
#include "base.h"
#include "err.h"
#include "test.h"

#include <math.h>

#define H 6
#define W 5

/* A test image with distinct values: px(y, x) = 10*y + x + 1. */
static void make_img(uint8_t *px) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) px[y * W + x] = (uint8_t)(10 * y + x + 1);
}

static void parse_ok(const char *s, int n) {
    aug_list_t l;
    char why[200];
    int rc = aug_parse(s, &l, why, sizeof why);
    CHECKF(rc == 0 && l.n == n, "'%s': rc %d n %d: %s", s, rc, l.n, why);
}

static void parse_bad(const char *s, const char *needle) {
    aug_list_t l;
    char why[200] = "";
    int rc = aug_parse(s, &l, why, sizeof why);
    CHECKF(rc == GB_EFORMAT && strstr(why, needle), "'%s': rc %d why '%s'", s, rc, why);
}

static void test_parse(void) {
    parse_ok("none", 0);
    parse_ok("flip", 1);
    parse_ok("flip,translate", 2);
    parse_ok("flip:0.3,translate:3,crop:2,jitter:0.1,0.3,cutout:4", 5);
    parse_ok("jitter", 1);
    parse_ok("jitter:0.1", 1);
    parse_bad("blur", "unknown op 'blur'");
    parse_bad("", "empty");
    parse_bad("flip,", "ends with a comma");
    parse_bad("flip,,translate", "empty item");
    parse_bad("flip:2", "flip");
    parse_bad("translate:1.5", "translate");
    parse_bad("translate:x", "not a number");
    parse_bad("none,flip", "'none'");
    parse_bad("cutout:0", "cutout");
    parse_bad("jitter:0.1,0.2,0.3", "too many");
    aug_list_t l;
    char buf[128];
    CHECK(aug_parse("flip,jitter:0.1,0.3,translate", &l, NULL, 0) == 0);
    aug_format(&l, buf, sizeof buf);
    CHECKF(strcmp(buf, "flip:0.5,jitter:0.1,0.3,translate:2") == 0, "%s", buf);
    CHECK(aug_parse("none", &l, NULL, 0) == 0);
    aug_format(&l, buf, sizeof buf);
    CHECK(strcmp(buf, "none") == 0);
    char why[200];
    CHECK(aug_parse("crop:6", &l, NULL, 0) == 0);
    CHECK(aug_check_shape(&l, 28, 28, why, sizeof why) == 0);
    CHECK(aug_check_shape(&l, 6, 28, why, sizeof why) == GB_EMISMATCH);
}

static void test_none_identity(void) {
    uint8_t px[H * W];
    make_img(px);
    aug_list_t l;
    CHECK(aug_parse("none", &l, NULL, 0) == 0);
    float x[H * W], s[H * W];
    rng_t r;
    rng_seed(&r, 1);
    aug_image(&l, &r, px, H, W, 1, x, s);
    for (int i = 0; i < H * W; i++) CHECK(x[i] == px[i]);
    uint8_t u[H * W];
    aug_to_u8(x, H * W, u);
    CHECK(memcmp(u, px, sizeof u) == 0);
    float f[H * W];
    aug_to_f32(x, H * W, f);
    for (int i = 0; i < H * W; i++) CHECK(fabsf(f[i] - (px[i] / 127.5f - 1)) < 1e-6f);
    float ends[2] = {0, 255}, fe[2];
    aug_to_f32(ends, 2, fe);
    CHECK(fe[0] == -1.0f && fe[1] == 1.0f);
}

static void test_flip(void) {
    uint8_t px[H * W];
    make_img(px);
    aug_list_t l;
    CHECK(aug_parse("flip:1", &l, NULL, 0) == 0);
    float x[H * W], s[H * W];
    rng_t r;
    rng_seed(&r, 2);
    aug_image(&l, &r, px, H, W, 1, x, s);
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++) CHECK(x[y * W + xx] == px[y * W + (W - 1 - xx)]);
    /* p = 0.5 flips about half the time. */
    CHECK(aug_parse("flip", &l, NULL, 0) == 0);
    int flipped = 0;
    for (int t = 0; t < 2000; t++) {
        aug_image(&l, &r, px, H, W, 1, x, s);
        flipped += x[0] == px[W - 1];
    }
    CHECKF(flipped > 900 && flipped < 1100, "%d of 2000 flipped", flipped);
}

/* Every output of translate is either 0 or the input shifted by one
 * (dy, dx) common to the whole image, with |dy|,|dx| <= PX; all shifts occur. */
static void test_translate_crop(void) {
    uint8_t px[H * W];
    make_img(px);
    const char *specs[2] = {"translate:2", "crop:2"};
    for (int sp = 0; sp < 2; sp++) {
        aug_list_t l;
        CHECK(aug_parse(specs[sp], &l, NULL, 0) == 0);
        float x[H * W], s[H * W];
        rng_t r;
        rng_seed(&r, 3);
        int seen[5][5] = {{0}};
        for (int t = 0; t < 500; t++) {
            aug_image(&l, &r, px, H, W, 1, x, s);
            int found = 0;
            for (int dy = -2; dy <= 2 && !found; dy++)
                for (int dx = -2; dx <= 2 && !found; dx++) {
                    int match = 1;
                    for (int y = 0; y < H && match; y++)
                        for (int xx = 0; xx < W && match; xx++) {
                            int sy = y - dy, sx = xx - dx;
                            float want;
                            if (sp == 0) {
                                want = (sy < 0 || sy >= H || sx < 0 || sx >= W) ? 0 : px[sy * W + sx];
                            } else {
                                sy = sy < 0 ? -sy : (sy >= H ? 2 * H - 2 - sy : sy);
                                sx = sx < 0 ? -sx : (sx >= W ? 2 * W - 2 - sx : sx);
                                want = px[sy * W + sx];
                            }
                            match = x[y * W + xx] == want;
                        }
                    if (match) {
                        found = 1;
                        seen[dy + 2][dx + 2]++;
                    }
                }
            CHECKF(found, "%s: output is not a shift", specs[sp]);
            if (!found) break;
        }
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 5; b++) CHECKF(seen[a][b] > 0, "%s: shift (%d,%d) never seen", specs[sp], a - 2, b - 2);
    }
}

static void test_cutout_jitter(void) {
    uint8_t px[H * W];
    memset(px, 200, sizeof px);
    aug_list_t l;
    CHECK(aug_parse("cutout:2", &l, NULL, 0) == 0);
    float x[H * W], s[H * W];
    rng_t r;
    rng_seed(&r, 4);
    for (int t = 0; t < 200; t++) {
        aug_image(&l, &r, px, H, W, 1, x, s);
        int zeros = 0;
        for (int i = 0; i < H * W; i++) {
            CHECK(x[i] == 0 || x[i] == 200);
            zeros += x[i] == 0;
        }
        CHECKF(zeros >= 1 && zeros <= 4, "cutout zeroed %d pixels", zeros);
    }
    /* Jitter keeps values in range and changes a mid-grey image. */
    make_img(px);
    CHECK(aug_parse("jitter:0.5,0.5", &l, NULL, 0) == 0);
    int changed = 0;
    for (int t = 0; t < 100; t++) {
        aug_image(&l, &r, px, H, W, 1, x, s);
        for (int i = 0; i < H * W; i++) {
            CHECK(x[i] >= 0 && x[i] <= 255);
            changed += fabsf(x[i] - px[i]) > 0.5f;
        }
    }
    CHECK(changed > 100 * H * W / 2);
}

/* RGB: HWC in, CHW out, and flip acts on every channel. */
static void test_rgb(void) {
    uint8_t px[H * W * 3];
    for (int i = 0; i < H * W; i++)
        for (int c = 0; c < 3; c++) px[i * 3 + c] = (uint8_t)(i + 50 * c);
    aug_list_t l;
    CHECK(aug_parse("flip:1", &l, NULL, 0) == 0);
    float x[H * W * 3], s[H * W * 3];
    rng_t r;
    rng_seed(&r, 5);
    aug_image(&l, &r, px, H, W, 3, x, s);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
                CHECK(x[(c * H + y) * W + xx] == px[(y * W + (W - 1 - xx)) * 3 + c]);
}

static void test_perm(void) {
    enum { N = 1000 };
    uint64_t *a = xmalloc(N * 8), *b = xmalloc(N * 8), *c = xmalloc(N * 8);
    aug_epoch_perm(7, 99, 0, a, N);
    aug_epoch_perm(7, 99, 0, b, N);
    aug_epoch_perm(7, 99, 1, c, N);
    CHECK(memcmp(a, b, N * 8) == 0);
    CHECK(memcmp(a, c, N * 8) != 0);
    int *seen = xcalloc(N, sizeof *seen);
    for (int i = 0; i < N; i++) {
        CHECK(a[i] < N);
        if (a[i] < N) seen[a[i]]++;
    }
    for (int i = 0; i < N; i++) CHECK(seen[i] == 1);
    aug_epoch_perm(8, 99, 0, b, N);
    CHECK(memcmp(a, b, N * 8) != 0);
    aug_epoch_perm(7, 98, 0, b, N);
    CHECK(memcmp(a, b, N * 8) != 0);
    rng_t r1, r2;
    aug_batch_rng(&r1, 7, 99, 0, 3);
    aug_batch_rng(&r2, 7, 99, 0, 3);
    CHECK(rng_u64(&r1) == rng_u64(&r2));
    aug_batch_rng(&r2, 7, 99, 0, 4);
    CHECK(rng_u64(&r1) != rng_u64(&r2));
    free(a);
    free(b);
    free(c);
    free(seen);
}

/* The closed-form plan against brute-force enumeration, for many shapes. */
static void test_plan(void) {
    for (uint64_t bpe = 1; bpe <= 9; bpe++)
        for (uint64_t sn = 1; sn <= 4; sn++)
            for (uint64_t si = 0; si < sn && si < bpe; si++)
                for (uint64_t epochs = 1; epochs <= 3; epochs++)
                    for (uint64_t start = 0; start <= bpe * epochs + 1; start++) {
                        aug_plan_t p = {bpe, si, sn, start, epochs};
                        uint64_t want[64], nw = 0;
                        for (uint64_t g = start; g < bpe * epochs; g++)
                            if ((g % bpe) % sn == si) want[nw++] = g;
                        uint64_t tot = aug_plan_total(&p);
                        CHECKF(tot == nw, "bpe %llu shard %llu/%llu start %llu: total %llu want %llu",
                               (unsigned long long)bpe, (unsigned long long)si, (unsigned long long)sn,
                               (unsigned long long)start, (unsigned long long)tot, (unsigned long long)nw);
                        for (uint64_t k = 0; k < nw && k < tot; k++) CHECK(aug_plan_global(&p, k) == want[k]);
                    }
    aug_plan_t f = {10, 1, 3, 25, 0};
    CHECK(aug_plan_total(&f) == UINT64_MAX);
    CHECK(aug_plan_global(&f, 0) == 27);
    CHECK(aug_plan_global(&f, 1) == 31);
    CHECK(aug_plan_global(&f, 2) == 34);
}

int main(void) {
    RUN(test_parse);
    RUN(test_none_identity);
    RUN(test_flip);
    RUN(test_translate_crop);
    RUN(test_cutout_jitter);
    RUN(test_rgb);
    RUN(test_perm);
    RUN(test_plan);
    return test_done();
}
