/* nn_linear.c - fully connected layer, y = x w^T + b, as single GEMMs.
 *
 * Row-major throughout: x (N,IN), w (OUT,IN) (PyTorch layout), y (N,OUT).
 *   forward: y  = x · w^T           (N×OUT, inner IN)
 *   dx       = dy · w               (N×IN,  inner OUT)   [=]
 *   dw      += dy^T · x             (OUT×IN, inner N)    [+=]
 *   db      += column sums of dy                          [+=] */
#include "base.h"
#include "nn.h"
#include "nn_par.h"

void linear_forward(int N, int IN, int OUT, const float *x, const float *w, const float *b, float *y) {
    if (b) {
        for (int n = 0; n < N; n++) memcpy(y + (size_t)n * OUT, b, (size_t)OUT * sizeof(float));
    }
    nn_sgemm(0, 1, N, OUT, IN, 1.0f, x, IN, w, IN, b ? 1.0f : 0.0f, y,
             OUT);
}

void linear_backward(int N, int IN, int OUT, const float *x, const float *w, const float *dy, float *dx,
                     float *dw, float *db) {
    if (dx) nn_sgemm(0, 0, N, IN, OUT, 1.0f, dy, OUT, w, IN, 0.0f, dx, IN);
    if (dw) nn_sgemm(1, 0, OUT, IN, N, 1.0f, dy, OUT, x, IN, 1.0f, dw, IN);
    if (db) {
        for (int n = 0; n < N; n++) {
            const float *g = dy + (size_t)n * OUT;
            for (int o = 0; o < OUT; o++) db[o] += g[o];
        }
    }
}
