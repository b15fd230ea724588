/* attr.h - attributes of an object you can check in its pixels: how
 * bright it is, how wide, and whether it is filled or outlined.
 *
 * Made for the synthetic Fashion-MNIST captions (scripts/fashion-captions.sh
 * writes "a dark, wide ankle boot" from these measures) and for the
 * text-to-image evaluation, which measures generated images the same way
 * and checks them against the caption they were asked for. Both must use
 * exactly these functions, so a caption and its check cannot drift apart.
 *
 * Definitions, on an image of w x h pixels (gray, or RGB taken as the
 * mean of its three channels), with "ink" = a pixel whose value is above
 * the threshold thr (ATTR_INK_THR by default; Fashion-MNIST has a black
 * background, so the object is the ink):
 *   ink       ink pixels / (w*h)
 *   brightness mean value of the ink pixels / 255, in [0, 1]
 *              (0 when there is no ink): how light the object is, not
 *              the background
 *   width     mean over the rows holding ink of the row's span (first to
 *              last ink pixel, inclusive) / w, in [0, 1]: how wide the
 *              object is on average; unlike the box it tells a shoe's
 *              narrow shaft from its wide sole
 *   box_width bounding-box width of the ink / w, in [0, 1] (the box spans
 *              the first to the last column holding ink)
 *   height    bounding-box height of the ink / h
 *   fill      ink pixels / bounding-box area, in [0, 1]: near 1 for a
 *              solid shape, low for an outline or an open pattern
 * All are pure functions of the pixels; no allocation. */
#ifndef GB_ATTR_H
#define GB_ATTR_H

#include <stddef.h>
#include <stdint.h>

#define ATTR_INK_THR 32 /* default ink threshold: above the background's noise */

typedef struct {
    double ink;        /* ink fraction of the image */
    double brightness; /* mean ink value / 255 */
    double width;      /* mean span of the ink rows / image width */
    double box_width;  /* ink bounding-box width / image width */
    double height;     /* ink bounding-box height / image height */
    double fill;       /* ink pixels / bounding-box pixels */
} attr_t;

/* Measure px (h*w*c bytes, row-major HWC, c = 1 or 3) into *a. An image
 * without ink gives all zeros. */
void attr_measure(const uint8_t *px, int w, int h, int c, uint8_t thr, attr_t *a);

/* Tercile of v given the cut points t1 <= t2: 0 when v < t1, 2 when v >= t2,
 * else 1. */
int attr_tercile(double v, double t1, double t2);

/* The q-quantile (0..1) of v[0..n) by linear interpolation between order
 * statistics; sorts v in place. n must be > 0. */
double attr_quantile(double *v, size_t n, double q);

#endif
