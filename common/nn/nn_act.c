/* nn_act.c - elementwise activations and the embedding lookup.
 *
 * Activations take n flat values, so one call covers a whole NCHW
 * tensor. Backward functions take the forward OUTPUT y (which is what the
 * model keeps), and every formula is written in terms of y:
 *   relu: dx = dy * [y > 0]        lrelu: dx = dy * (y > 0 ? 1 : alpha)
 *   tanh: dx = dy * (1 - y^2)      sigmoid: dx = dy * y * (1 - y)
 * (lrelu needs alpha > 0 so that sign(y) = sign(x)); dx may alias dy.
 *
 * Speed: the obvious `x > 0 ? x : alpha*x` compiles to a branch per
 * element, and on activations (half positive, half negative at random) the
 * mispredictions made relu/lrelu ~20x slower than memory speed. So the
 * selects below only choose between a value and a constant (which gcc
 * turns into compare-and-mask vector code), and -O2's "very cheap"
 * vectoriser is told to vectorise this file with run-time alias checks
 * (y may equal x). Forward passes keep NaN (x <= 0 is false for NaN).
 * Large passes are split into index ranges over the nn_par pool (the
 * other core would idle); an element's value does not depend on the split. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "base.h"
#include "nn.h"
#include "nn_par.h"

#include <math.h>

/* ---- kernels over one range (the loops the vectoriser sees) ------------ */

static void relu_fwd_k(size_t n, float alpha, const float *x, const float *unused, float *y) {
    (void)alpha, (void)unused;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v <= 0.0f ? 0.0f : v;
    }
}

static void relu_bwd_k(size_t n, float alpha, const float *y, const float *dy, float *dx) {
    (void)alpha;
    for (size_t i = 0; i < n; i++) {
        float d = dy[i];
        dx[i] = y[i] > 0.0f ? d : 0.0f;
    }
}

static void lrelu_fwd_k(size_t n, float alpha, const float *x, const float *unused, float *y) {
    (void)unused;
    /* y = pos + alpha*neg, each part a select against 0 (exact: one of
     * them is 0). */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float pos = v <= 0.0f ? 0.0f : v, neg = v <= 0.0f ? v : 0.0f;
        y[i] = pos + alpha * neg;
    }
}

static void lrelu_bwd_k(size_t n, float alpha, const float *y, const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) {
        float d = dy[i], s = y[i];
        float pos = s > 0.0f ? d : 0.0f, neg = s > 0.0f ? 0.0f : d;
        dx[i] = pos + alpha * neg;
    }
}

static void tanh_fwd_k(size_t n, float alpha, const float *x, const float *unused, float *y) {
    (void)alpha, (void)unused;
    for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

static void tanh_bwd_k(size_t n, float alpha, const float *y, const float *dy, float *dx) {
    (void)alpha;
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

static void sigmoid_fwd_k(size_t n, float alpha, const float *x, const float *unused, float *y) {
    (void)alpha, (void)unused;
    /* Both branches avoid exp overflow: exp of a non-positive number. */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (v >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            y[i] = e / (1.0f + e);
        }
    }
}

static void sigmoid_bwd_k(size_t n, float alpha, const float *y, const float *dy, float *dx) {
    (void)alpha;
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

/* ---- split over the nn_par pool -------------------------------------------- */

/* One elementwise pass: out[i] = k(a[i], b[i]) for i in [0, n). Each
 * element is computed by the same code whichever part holds it, so the
 * split changes no bit. */
typedef void (*act_kernel_fn)(size_t n, float alpha, const float *a, const float *b, float *out);
typedef struct {
    act_kernel_fn k;
    size_t n;
    float alpha;
    const float *a, *b;
    float *out;
} act_job_t;

static void act_part(void *vp, int part, int nparts) {
    const act_job_t *j = vp;
    size_t lo, hi;
    nn_par_range_z(j->n, part, nparts, &lo, &hi);
    if (lo < hi) j->k(hi - lo, j->alpha, j->a + lo, j->b ? j->b + lo : NULL, j->out + lo);
}

static void act_run(act_kernel_fn k, size_t n, float alpha, const float *a, const float *b, float *out) {
    act_job_t j = {k, n, alpha, a, b, out};
    nn_par_run_sized(b ? 3 * n : 2 * n, act_part, &j);
}

void relu_forward(size_t n, const float *x, float *y) { act_run(relu_fwd_k, n, 0.0f, x, NULL, y); }
void relu_backward(size_t n, const float *y, const float *dy, float *dx) { act_run(relu_bwd_k, n, 0.0f, y, dy, dx); }
void lrelu_forward(size_t n, float alpha, const float *x, float *y) { act_run(lrelu_fwd_k, n, alpha, x, NULL, y); }
void lrelu_backward(size_t n, float alpha, const float *y, const float *dy, float *dx) {
    act_run(lrelu_bwd_k, n, alpha, y, dy, dx);
}
void tanh_forward(size_t n, const float *x, float *y) { act_run(tanh_fwd_k, n, 0.0f, x, NULL, y); }
void tanh_backward(size_t n, const float *y, const float *dy, float *dx) { act_run(tanh_bwd_k, n, 0.0f, y, dy, dx); }
void sigmoid_forward(size_t n, const float *x, float *y) { act_run(sigmoid_fwd_k, n, 0.0f, x, NULL, y); }
void sigmoid_backward(size_t n, const float *y, const float *dy, float *dx) {
    act_run(sigmoid_bwd_k, n, 0.0f, y, dy, dx);
}

void embed_forward(int N, int D, const float *table, const int32_t *labels, float *y) {
    for (int n = 0; n < N; n++) {
        ASSERT(labels[n] >= 0);
        memcpy(y + (size_t)n * D, table + (size_t)labels[n] * D, (size_t)D * sizeof(float));
    }
}

void embed_backward(int N, int D, const int32_t *labels, const float *dy, float *dtable) {
    if (!dtable) return;
    for (int n = 0; n < N; n++) {
        ASSERT(labels[n] >= 0);
        float *row = dtable + (size_t)labels[n] * D;
        const float *g = dy + (size_t)n * D;
        for (int d = 0; d < D; d++) row[d] += g[d];
    }
}
