/* nn_optim.c - Adam (as torch.optim.Adam, no weight decay) and EMA.
 *
 * Adam keeps the step count in adam_t; adam_begin() increments it once per
 * optimisation step and adam_update() is then called for every parameter
 * block with that step's bias corrections, computed in double like
 * PyTorch's Python-side scalars:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps).
 * Both passes are elementwise over all parameters and run as index ranges
 * on the nn_par pool. */
#include "base.h"
#include "nn.h"
#include "nn_par.h"

#include <math.h>

void adam_begin(adam_t *a) {
    a->t++;
}

/* One adam_update or ema_update call, split into element ranges over the
 * nn_par pool: every element gets the same float operations whichever
 * part holds it, so the thread count changes no bit. */
typedef struct {
    float step, inv_bc2_sqrt, b1, b2, eps, c1, c2; /* adam: the step's scalars */
    float decay;                                  /* ema */
    size_t n;
    float *p, *m, *v, *ema;
    const float *src; /* adam: the gradient; ema: the parameters */
} optim_job_t;

static void adam_part(void *vp, int part, int nparts) {
    const optim_job_t *j = vp;
    size_t lo, hi;
    nn_par_range_z(j->n, part, nparts, &lo, &hi);
    const float step = j->step, inv_bc2_sqrt = j->inv_bc2_sqrt, b1 = j->b1, b2 = j->b2, eps = j->eps;
    const float c1 = j->c1, c2 = j->c2;
    float *restrict p = j->p, *restrict m = j->m, *restrict v = j->v;
    const float *restrict g = j->src;
    for (size_t i = lo; i < hi; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
    }
}

void adam_update(const adam_t *a, size_t n, float *p, const float *g, float *m, float *v) {
    ASSERT(a->t >= 1);
    const double bc1 = 1.0 - pow((double)a->beta1, (double)a->t);
    const double bc2 = 1.0 - pow((double)a->beta2, (double)a->t);
    optim_job_t j = {.step = (float)((double)a->lr / bc1), .inv_bc2_sqrt = (float)(1.0 / sqrt(bc2)),
                     .b1 = a->beta1, .b2 = a->beta2, .eps = a->eps, .c1 = 1.0f - a->beta1, .c2 = 1.0f - a->beta2,
                     .n = n, .p = p, .m = m, .v = v, .src = g};
    nn_par_run_sized(4 * n, adam_part, &j);
}

static void ema_part(void *vp, int part, int nparts) {
    const optim_job_t *j = vp;
    size_t lo, hi;
    nn_par_range_z(j->n, part, nparts, &lo, &hi);
    const float decay = j->decay, c = 1.0f - decay;
    for (size_t i = lo; i < hi; i++) j->ema[i] = decay * j->ema[i] + c * j->src[i];
}

void ema_update(size_t n, float decay, float *ema, const float *p) {
    optim_job_t j = {.decay = decay, .n = n, .ema = ema, .src = p};
    nn_par_run_sized(2 * n, ema_part, &j);
}
