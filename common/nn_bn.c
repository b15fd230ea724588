/* nn_bn.c - 2-d batch normalisation (per channel over N and HW).
 *
 * PyTorch semantics, which the golden values pin down: training mode
 * normalises with the batch mean and the BIASED variance (divide by
 * M = N*HW), then updates the running statistics with momentum m and the
 * UNBIASED variance (divide by M-1):
 *   run_mean = (1-m) run_mean + m mean;  run_var = (1-m) run_var + m var*M/(M-1).
 * Eval mode uses the running statistics. Channel sums are accumulated in
 * double (a channel of a 64x128x7x7 layer has 3136 values; float sums
 * would lose digits). Backward, with xhat = (x-mean)*rstd:
 *   dbeta += sum dy;  dgamma += sum dy*xhat;
 *   dx = gamma*rstd/M * (M*dy - sum dy - xhat * sum dy*xhat). */
#include "base.h"
#include "nn.h"

#include <math.h>

void bn_forward_train(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                      float *mean, float *rstd, float *run_mean, float *run_var) {
    const int N = b->N, C = b->C, HW = b->HW;
    const double M = (double)N * HW;
    ASSERT(M >= 1);
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) s += xp[i];
        }
        double mu = s / M;
        /* Two-pass variance: exact enough and free of cancellation. */
        double ss = 0;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                double d = xp[i] - mu;
                ss += d * d;
            }
        }
        double var = ss / M;
        double rs = 1.0 / sqrt(var + b->eps);
        mean[c] = (float)mu;
        rstd[c] = (float)rs;
        float scale = (float)(gamma[c] * rs);
        float shift = (float)(beta[c] - mu * gamma[c] * rs);
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            float *yp = y + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yp[i] = xp[i] * scale + shift;
        }
        if (run_mean) run_mean[c] = (float)((1.0 - b->momentum) * run_mean[c] + b->momentum * mu);
        if (run_var) {
            double unb = M > 1 ? ss / (M - 1) : var;
            run_var[c] = (float)((1.0 - b->momentum) * run_var[c] + b->momentum * unb);
        }
    }
}

void bn_forward_eval(const bn_t *b, const float *x, const float *gamma, const float *beta,
                     const float *run_mean, const float *run_var, float *y) {
    const int N = b->N, C = b->C, HW = b->HW;
    for (int c = 0; c < C; c++) {
        double rs = 1.0 / sqrt((double)run_var[c] + b->eps);
        float scale = (float)(gamma[c] * rs);
        float shift = (float)(beta[c] - run_mean[c] * (double)gamma[c] * rs);
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            float *yp = y + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yp[i] = xp[i] * scale + shift;
        }
    }
}

void bn_backward(const bn_t *b, const float *x, const float *gamma, const float *mean, const float *rstd,
                 const float *dy, float *dx, float *dgamma, float *dbeta) {
    const int N = b->N, C = b->C, HW = b->HW;
    const double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        const float mu = mean[c], rs = rstd[c];
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            const float *gp = dy + ((size_t)n * C + c) * HW;
            float a = 0, bsum = 0; /* per-row float partials, folded into double */
            for (int i = 0; i < HW; i++) {
                a += gp[i];
                bsum += gp[i] * (xp[i] - mu);
            }
            sdy += a;
            sdyx += bsum;
        }
        sdyx *= rs; /* sum dy * xhat */
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
        if (!dx) continue;
        /* dx = k * (dy - sdy/M - xhat * sdyx/M), k = gamma*rstd */
        const float k = gamma[c] * rs;
        const float m1 = (float)(sdy / M);
        const float m2 = (float)(sdyx / M) * rs;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            const float *gp = dy + ((size_t)n * C + c) * HW;
            float *dp = dx + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) dp[i] = k * (gp[i] - m1 - (xp[i] - mu) * m2);
        }
    }
}
