/* test_attr.c - common/img/attr: the pixel measures on synthetic images
 * whose answers are known by construction. */
#include "attr.h"
#include "test.h"

#include <math.h>

#define W 28
#define H 28

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

/* A filled rectangle x in [x0, x1), y in [y0, y1) of value v. */
static void rect(uint8_t *px, int x0, int x1, int y0, int y1, uint8_t v) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) px[y * W + x] = v;
}

static void t_empty(void) {
    uint8_t px[W * H] = {0};
    attr_t a;
    attr_measure(px, W, H, 1, ATTR_INK_THR, &a);
    CHECK(a.ink == 0 && a.brightness == 0 && a.width == 0 && a.box_width == 0 && a.height == 0 && a.fill == 0);
    /* below the threshold is background */
    memset(px, ATTR_INK_THR, sizeof px);
    attr_measure(px, W, H, 1, ATTR_INK_THR, &a);
    CHECK(a.ink == 0);
}

static void t_solid_rect(void) {
    uint8_t px[W * H] = {0};
    rect(px, 4, 18, 2, 9, 200); /* 14 wide, 7 high */
    attr_t a;
    attr_measure(px, W, H, 1, ATTR_INK_THR, &a);
    CHECKF(near(a.width, 14.0 / W) && near(a.box_width, 14.0 / W), "width %g", a.width);
    CHECKF(near(a.height, 7.0 / H), "height %g", a.height);
    CHECKF(near(a.fill, 1.0), "fill %g", a.fill);
    CHECKF(near(a.brightness, 200.0 / 255), "brightness %g", a.brightness);
    CHECKF(near(a.ink, 98.0 / (W * H)), "ink %g", a.ink);
}

static void t_outline(void) {
    uint8_t px[W * H] = {0};
    /* a 10x10 square outline, 1 pixel thick: 36 ink pixels of 100 */
    rect(px, 5, 15, 5, 15, 100);
    rect(px, 6, 14, 6, 14, 0);
    attr_t a;
    attr_measure(px, W, H, 1, ATTR_INK_THR, &a);
    CHECKF(near(a.fill, 0.36), "fill %g", a.fill);
    CHECK(near(a.width, 10.0 / W) && near(a.height, 10.0 / H));
    CHECKF(near(a.brightness, 100.0 / 255), "brightness %g", a.brightness);
}

/* Brightness is the object's, not the image's: a small bright object and
 * a large one of the same value agree. */
static void t_brightness_of_object(void) {
    uint8_t p1[W * H] = {0}, p2[W * H] = {0};
    rect(p1, 0, 3, 0, 3, 250);
    rect(p2, 0, 28, 0, 28, 250);
    attr_t a, b;
    attr_measure(p1, W, H, 1, ATTR_INK_THR, &a);
    attr_measure(p2, W, H, 1, ATTR_INK_THR, &b);
    CHECK(near(a.brightness, b.brightness));
    CHECK(a.width < b.width && near(b.width, 1.0));
    /* mixed values: mean of the ink only */
    rect(p1, 10, 11, 10, 11, 50);
    attr_measure(p1, W, H, 1, ATTR_INK_THR, &a);
    CHECKF(near(a.brightness, (9 * 250.0 + 50) / 10 / 255), "brightness %g", a.brightness);
}

/* width is the mean row span: an L shape (a 2-wide shaft of 8 rows on a
 * 12-wide sole of 2 rows) is as wide as its box only at the sole. */
static void t_width_mean_span(void) {
    uint8_t px[W * H] = {0};
    rect(px, 2, 4, 2, 10, 150);  /* shaft: rows 2..9, columns 2..3 */
    rect(px, 2, 14, 10, 12, 150); /* sole: rows 10..11, columns 2..13 */
    attr_t a;
    attr_measure(px, W, H, 1, ATTR_INK_THR, &a);
    CHECKF(near(a.box_width, 12.0 / W), "box_width %g", a.box_width);
    CHECKF(near(a.width, (8 * 2 + 2 * 12) / 10.0 / W), "width %g", a.width);
    CHECKF(near(a.fill, (16 + 24) / 120.0), "fill %g", a.fill);
}

static void t_rgb(void) {
    uint8_t px[W * H * 3] = {0};
    /* one pixel (90, 90, 90) = gray 90; one (255, 0, 0) = gray 85 */
    px[0] = px[1] = px[2] = 90;
    px[3 * 5] = 255;
    attr_t a;
    attr_measure(px, W, H, 3, ATTR_INK_THR, &a);
    CHECKF(near(a.box_width, 6.0 / W) && near(a.width, 6.0 / W), "width %g", a.width);
    CHECKF(near(a.brightness, (90 + 85) / 2.0 / 255), "brightness %g", a.brightness);
    CHECKF(near(a.fill, 2.0 / 6), "fill %g", a.fill);
}

static void t_tercile_quantile(void) {
    CHECK(attr_tercile(0.1, 0.3, 0.6) == 0);
    CHECK(attr_tercile(0.3, 0.3, 0.6) == 1);
    CHECK(attr_tercile(0.59, 0.3, 0.6) == 1);
    CHECK(attr_tercile(0.6, 0.3, 0.6) == 2);
    double v[] = {5, 1, 4, 2, 3};
    CHECK(near(attr_quantile(v, 5, 0.5), 3));
    CHECK(near(attr_quantile(v, 5, 0.0), 1) && near(attr_quantile(v, 5, 1.0), 5));
    CHECK(near(attr_quantile(v, 5, 0.25), 2));
    CHECK(near(attr_quantile(v, 5, 1.0 / 3), 1 + 4.0 / 3));
    /* terciles of 0..8 split it 3/3/3 */
    double u[9];
    for (int i = 0; i < 9; i++) u[i] = i;
    double t1 = attr_quantile(u, 9, 1.0 / 3), t2 = attr_quantile(u, 9, 2.0 / 3);
    int cnt[3] = {0};
    for (int i = 0; i < 9; i++) cnt[attr_tercile(i, t1, t2)]++;
    CHECKF(cnt[0] == 3 && cnt[1] == 3 && cnt[2] == 3, "%d/%d/%d", cnt[0], cnt[1], cnt[2]);
}

int main(void) {
    RUN(t_empty);
    RUN(t_solid_rect);
    RUN(t_outline);
    RUN(t_brightness_of_object);
    RUN(t_width_mean_span);
    RUN(t_rgb);
    RUN(t_tercile_quantile);
    return test_done();
}
