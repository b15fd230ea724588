/* nn_act.c - elementwise activations and the embedding lookup.
 *
 * Activations take n flat values, so one call covers a whole NCHW
 * tensor. Backward functions take the forward OUTPUT y (which is what the
 * model keeps), and every formula is written in terms of y:
 *   relu: dx = dy * [y > 0]        lrelu: dx = dy * (y > 0 ? 1 : alpha)
 *   tanh: dx = dy * (1 - y^2)      sigmoid: dx = dy * y * (1 - y)
 * (lrelu needs alpha > 0 so that sign(y) = sign(x)). Loops are plain so
 * gcc vectorises them; dx may alias dy. */
#include "base.h"
#include "nn.h"

#include <math.h>

void relu_forward(size_t n, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(size_t n, const float *y, const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void lrelu_forward(size_t n, float alpha, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
}

void lrelu_backward(size_t n, float alpha, const float *y, const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : alpha * dy[i];
}

void tanh_forward(size_t n, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

void tanh_backward(size_t n, const float *y, const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

void sigmoid_forward(size_t n, const float *x, float *y) {
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

void sigmoid_backward(size_t n, const float *y, const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
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
