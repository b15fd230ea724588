/* nn_optim.c - Adam (as torch.optim.Adam, no weight decay) and EMA.
 *
 * Adam keeps the step count in adam_t; adam_begin() increments it once per
 * optimisation step and adam_update() is then called for every parameter
 * block with that step's bias corrections, computed in double like
 * PyTorch's Python-side scalars:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps). */
#include "base.h"
#include "nn.h"

#include <math.h>

void adam_begin(adam_t *a) {
    a->t++;
}

void adam_update(const adam_t *a, size_t n, float *p, const float *g, float *m, float *v) {
    ASSERT(a->t >= 1);
    const double bc1 = 1.0 - pow((double)a->beta1, (double)a->t);
    const double bc2 = 1.0 - pow((double)a->beta2, (double)a->t);
    const float step = (float)((double)a->lr / bc1);
    const float inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
    }
}

void ema_update(size_t n, float decay, float *ema, const float *p) {
    const float c = 1.0f - decay;
    for (size_t i = 0; i < n; i++) ema[i] = decay * ema[i] + c * p[i];
}
