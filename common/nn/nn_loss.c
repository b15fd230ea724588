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
