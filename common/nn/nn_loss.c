/* nn_loss.c - GAN losses on logits: BCE-with-logits and hinge.
 *
 * Every loss is a mean over n logits, summed in double, and writes
 * d(loss)/d(logit) (already divided by n) into dlogits [=], which may be
 * NULL. BCE uses the overflow-free form
 *   l(x,t) = max(x,0) - x t + log1p(exp(-|x|)),  dl/dx = sigmoid(x) - t,
 * so logits of any size give finite values. */
#include "base.h"
#include "nn.h"

#include <math.h>

static inline double bce_term(float x, float t, float *grad, double inv_n) {
    double xd = x;
    double ax = fabs(xd);
    double e = exp(-ax);
    double l = (xd > 0 ? xd : 0.0) - xd * t + log1p(e);
    if (grad) {
        double sig = xd >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        *grad = (float)((sig - t) * inv_n);
    }
    return l;
}

float bce_logits(size_t n, const float *logits, float t, float *dlogits) {
    if (n == 0) return 0.0f;
    double inv = 1.0 / (double)n, s = 0;
    for (size_t i = 0; i < n; i++) s += bce_term(logits[i], t, dlogits ? dlogits + i : NULL, inv);
    return (float)(s * inv);
}

float bce_logits_v(size_t n, const float *logits, const float *targets, float *dlogits) {
    if (n == 0) return 0.0f;
    double inv = 1.0 / (double)n, s = 0;
    for (size_t i = 0; i < n; i++) s += bce_term(logits[i], targets[i], dlogits ? dlogits + i : NULL, inv);
    return (float)(s * inv);
}

float hinge_d_real(size_t n, const float *logits, float *dlogits) {
    if (n == 0) return 0.0f;
    double inv = 1.0 / (double)n, s = 0;
    for (size_t i = 0; i < n; i++) {
        double m = 1.0 - logits[i];
        s += m > 0 ? m : 0;
        if (dlogits) dlogits[i] = m > 0 ? (float)-inv : 0.0f;
    }
    return (float)(s * inv);
}

float hinge_d_fake(size_t n, const float *logits, float *dlogits) {
    if (n == 0) return 0.0f;
    double inv = 1.0 / (double)n, s = 0;
    for (size_t i = 0; i < n; i++) {
        double m = 1.0 + logits[i];
        s += m > 0 ? m : 0;
        if (dlogits) dlogits[i] = m > 0 ? (float)inv : 0.0f;
    }
    return (float)(s * inv);
}

float hinge_g(size_t n, const float *logits, float *dlogits) {
    if (n == 0) return 0.0f;
    double inv = 1.0 / (double)n, s = 0;
    for (size_t i = 0; i < n; i++) {
        s += logits[i];
        if (dlogits) dlogits[i] = (float)-inv;
    }
    return (float)(-s * inv);
}

/* ---- image-text contrastive loss (nn.h) ----------------------------------
 * Normalised rows an = a / |a|, bn = b / |b|; S = an bn^T / tau;
 * loss = mean_i (logsumexp_j S_ij - S_ii); G = (softmax(S) - I) / N is
 * d loss / d S; d an_i = sum_j G_ij bn_j / tau, d bn_j = sum_i G_ij an_i /
 * tau; through the normalisation d a_i = (d an_i - an_i <an_i, d an_i>) /
 * |a_i| (the same for b). */
#define CONTRAST_MIN_NORM 1e-6

size_t contrast_ws_floats(int N, int F) { return 2 * (size_t)N * F + (size_t)N * N + 2 * (size_t)N; }

/* rows of x (N, F) divided by their norms into xn; 1/norm into r */
static void contrast_norm(int N, int F, const float *x, float *xn, float *r) {
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * F;
        double s = 0;
        for (int k = 0; k < F; k++) s += (double)xi[k] * xi[k];
        double nrm = sqrt(s);
        r[i] = nrm > CONTRAST_MIN_NORM ? (float)(1.0 / nrm) : 0.0f; /* a zero row: no direction, no gradient */
        for (int k = 0; k < F; k++) xn[(size_t)i * F + k] = xi[k] * r[i];
    }
}

/* dx_i = r_i (dx_i - xn_i <xn_i, dx_i>), in place: dx holds d xn on entry */
static void contrast_unnorm(int N, int F, const float *xn, const float *r, float *dx) {
    for (int i = 0; i < N; i++) {
        float *d = dx + (size_t)i * F;
        const float *u = xn + (size_t)i * F;
        double dot = 0;
        for (int k = 0; k < F; k++) dot += (double)u[k] * d[k];
        for (int k = 0; k < F; k++) d[k] = r[i] * (float)(d[k] - u[k] * dot);
    }
}

/* out_r = sum_q S[r * sr + q * sq] y_q * scale for r < N (rows of F): the
 * gradient of one side's directions from G = d loss / d S (sr = N, sq = 1)
 * or its transpose (sr = 1, sq = N). */
static void contrast_dir(int N, int F, const float *S, int sr, int sq, const float *y, double scale, float *out) {
    for (int r = 0; r < N; r++) {
        float *o = out + (size_t)r * F;
        for (int k = 0; k < F; k++) {
            double acc = 0;
            for (int q = 0; q < N; q++) acc += (double)S[(size_t)r * sr + (size_t)q * sq] * y[(size_t)q * F + k];
            o[k] = (float)(acc * scale);
        }
    }
}

float contrast_cos(int N, int F, const float *a, const float *b, float tau, float *da, float *db, float *ws) {
    ASSERT(N >= 1 && F >= 1 && tau > 0);
    float *an = ws, *bn = an + (size_t)N * F, *S = bn + (size_t)N * F, *ra = S + (size_t)N * N, *rb = ra + N;
    contrast_norm(N, F, a, an, ra);
    contrast_norm(N, F, b, bn, rb);
    double inv_tau = 1.0 / tau, loss = 0;
    for (int i = 0; i < N; i++) {
        float *row = S + (size_t)i * N;
        double mx = -HUGE_VAL;
        for (int j = 0; j < N; j++) {
            const float *u = an + (size_t)i * F, *w = bn + (size_t)j * F;
            double d = 0;
            for (int k = 0; k < F; k++) d += (double)u[k] * w[k];
            row[j] = (float)(d * inv_tau);
            if (row[j] > mx) mx = row[j];
        }
        double se = 0;
        for (int j = 0; j < N; j++) se += exp(row[j] - mx);
        double lse = mx + log(se);
        loss += lse - row[i];
        for (int j = 0; j < N; j++) row[j] = (float)((exp(row[j] - lse) - (j == i)) / N);
    }
    if (da) {
        contrast_dir(N, F, S, N, 1, bn, inv_tau, da); /* d an_i = sum_j G_ij bn_j / tau */
        contrast_unnorm(N, F, an, ra, da);
    }
    if (db) {
        contrast_dir(N, F, S, 1, N, an, inv_tau, db); /* d bn_j = sum_i G_ij an_i / tau */
        contrast_unnorm(N, F, bn, rb, db);
    }
    return (float)(loss / N);
}
