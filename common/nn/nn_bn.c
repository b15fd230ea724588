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
 *   dx = gamma*rstd/M * (M*dy - sum dy - xhat * sum dy*xhat).
 *
 * Speed: each (n, c) row of HW values is reduced with 8 float lanes (which
 * the compiler vectorises; a scalar double sum cannot be, as reordering it
 * changes the result), and only the per-row lane totals go into the double
 * channel sums: rows are short (HW <= a few thousand), so the float part
 * adds about 1e-7 relative error. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "base.h"
#include "nn.h"

/* sum p[i] over [0, n), 8 float lanes, total in double. */
static inline double row_sum(const float *p, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += p[i + j];
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < n; i++) s += p[i];
    return s;
}

/* sum (p[i] - mu)^2 over [0, n). */
static inline double row_sqdev(const float *p, int n, float mu) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float d = p[i + j] - mu;
            acc[j] += d * d;
        }
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < n; i++) {
        double d = (double)p[i] - mu;
        s += d * d;
    }
    return s;
}

/* *sg += sum g[i]; *sgx += sum g[i] * (x[i] - mu). */
static inline void row_dsums(const float *g, const float *x, int n, float mu, double *sg, double *sgx) {
    float a[8] = {0}, b[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            a[j] += g[i + j];
            b[j] += g[i + j] * (x[i + j] - mu);
        }
    double s1 = 0, s2 = 0;
    for (int j = 0; j < 8; j++) {
        s1 += a[j];
        s2 += b[j];
    }
    for (; i < n; i++) {
        s1 += g[i];
        s2 += (double)g[i] * ((double)x[i] - mu);
    }
    *sg += s1;
    *sgx += s2;
}

#include <math.h>

/* Training-mode forward (see bn_forward_train); the batch mean and
 * unbiased variance of each channel go to bmean/bvar (double, may be NULL),
 * and the running statistics are updated when run_mean/run_var are given. */
static void bn_train_core(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                          float *mean, float *rstd, float *run_mean, float *run_var, double *bmean, double *bvar) {
    const int N = b->N, C = b->C, HW = b->HW;
    const double M = (double)N * HW;
    ASSERT(M >= 1);
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int n = 0; n < N; n++) s += row_sum(x + ((size_t)n * C + c) * HW, HW);
        double mu = s / M;
        /* Two-pass variance: free of cancellation. The deviations use the
         * float mean; the (float - double) mean error e only adds e^2. */
        const float muf = (float)mu;
        double ss = 0;
        for (int n = 0; n < N; n++) ss += row_sqdev(x + ((size_t)n * C + c) * HW, HW, muf);
        double dm = mu - muf;
        ss -= M * dm * dm;
        if (ss < 0) ss = 0;
        double var = ss / M;
        double rs = 1.0 / sqrt(var + b->eps);
        mean[c] = (float)mu;
        rstd[c] = (float)rs;
        /* (x - mean) first, with the mean as float + float remainder: with
         * a large mean, x*scale + shift would cancel two big numbers. */
        const float scale = (float)(gamma[c] * rs), bc = beta[c], dmf = (float)dm;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            float *yp = y + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yp[i] = ((xp[i] - muf) - dmf) * scale + bc;
        }
        double unb = M > 1 ? ss / (M - 1) : var;
        if (bmean) bmean[c] = mu;
        if (bvar) bvar[c] = unb;
        if (run_mean || run_var) bn_running_update(b, 1, &mu, &unb, run_mean ? run_mean + c : NULL,
                                                   run_var ? run_var + c : NULL);
    }
}

void bn_forward_train(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                      float *mean, float *rstd, float *run_mean, float *run_var) {
    bn_train_core(b, x, gamma, beta, y, mean, rstd, run_mean, run_var, NULL, NULL);
}

void bn_forward_train_stats(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                            float *mean, float *rstd, double *bmean, double *bvar) {
    bn_train_core(b, x, gamma, beta, y, mean, rstd, NULL, NULL, bmean, bvar);
}

void bn_running_update(const bn_t *b, int C, const double *bmean, const double *bvar, float *run_mean,
                       float *run_var) {
    for (int c = 0; c < C; c++) {
        if (run_mean) run_mean[c] = (float)((1.0 - b->momentum) * run_mean[c] + b->momentum * bmean[c]);
        if (run_var) run_var[c] = (float)((1.0 - b->momentum) * run_var[c] + b->momentum * bvar[c]);
    }
}

void bn_forward_eval(const bn_t *b, const float *x, const float *gamma, const float *beta,
                     const float *run_mean, const float *run_var, float *y) {
    const int N = b->N, C = b->C, HW = b->HW;
    for (int c = 0; c < C; c++) {
        double rs = 1.0 / sqrt((double)run_var[c] + b->eps);
        const float scale = (float)(gamma[c] * rs), bc = beta[c], mc = run_mean[c];
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            float *yp = y + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yp[i] = (xp[i] - mc) * scale + bc;
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
        for (int n = 0; n < N; n++)
            row_dsums(dy + ((size_t)n * C + c) * HW, x + ((size_t)n * C + c) * HW, HW, mu, &sdy, &sdyx);
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
