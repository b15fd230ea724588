/* attr.c - pixel measures of an object (see attr.h for the definitions). */
#include "attr.h"

#include <stdlib.h>

void attr_measure(const uint8_t *px, int w, int h, int c, uint8_t thr, attr_t *a) {
    *a = (attr_t){0};
    long n = 0, x0 = w, x1 = -1, y0 = h, y1 = -1, rows = 0, spans = 0;
    double sum = 0;
    for (int y = 0; y < h; y++) {
        long rx0 = -1, rx1 = -1;
        for (int x = 0; x < w; x++) {
            const uint8_t *p = px + ((size_t)y * w + x) * c;
            unsigned v = c == 3 ? (p[0] + p[1] + p[2] + 1) / 3 : p[0];
            if (v <= thr) continue;
            n++;
            sum += v;
            if (x < x0) x0 = x;
            if (x > x1) x1 = x;
            if (y < y0) y0 = y;
            if (y > y1) y1 = y;
            if (rx0 < 0) rx0 = x;
            rx1 = x;
        }
        if (rx0 >= 0) rows++, spans += rx1 - rx0 + 1;
    }
    if (!n) return;
    double bw = (double)(x1 - x0 + 1), bh = (double)(y1 - y0 + 1);
    a->ink = (double)n / ((double)w * h);
    a->brightness = sum / n / 255.0;
    a->width = (double)spans / rows / w;
    a->box_width = bw / w;
    a->height = bh / h;
    a->fill = (double)n / (bw * bh);
}

int attr_tercile(double v, double t1, double t2) { return v < t1 ? 0 : v >= t2 ? 2 : 1; }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double attr_quantile(double *v, size_t n, double q) {
    qsort(v, n, sizeof *v, cmp_double);
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n) return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}
