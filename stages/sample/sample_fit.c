/* sample_fit.c - find the latent whose image best matches a given one
 * (--from-image).
 *
 * Gradient descent through the generator: every (start, class) pair is
 * one row of a batch, optimised together with Adam on z against the mean
 * squared error to the target, with ginfer_backward_z giving the exact
 * gradient (BN in eval mode, as generation uses). Start s of every class
 * begins at latent gambar-z1(seed + s), so the fit is deterministic. The
 * best (lowest MSE seen at any iteration, ties to the lowest row) wins.
 * The batch is starts x classes, a few dozen rows: memory is small. */
#include "sample.h"

#include "base.h"

#include <math.h>

void sfit_run(const ginfer_t *g, int num_classes, int class_fixed, const float *target, const sfit_opts_t *o,
              float *z_best, int *class_out, double *mse_out) {
    const int Z = ginfer_z_dim(g);
    const int ncl = num_classes > 0 && class_fixed < 0 ? num_classes : 1;
    const int B = o->starts * ncl;
    const size_t P = ginfer_image_floats(g);
    ginfer_ws_t *w = ginfer_ws_new(g, B, 1);
    float *z = xmalloc((size_t)B * Z * sizeof(float)), *dz = xmalloc((size_t)B * Z * sizeof(float));
    float *m = xcalloc((size_t)B * Z, sizeof(float)), *v = xcalloc((size_t)B * Z, sizeof(float));
    float *best_z = xmalloc((size_t)B * Z * sizeof(float));
    double *best = xmalloc((size_t)B * sizeof(double));
    float *out = xmalloc((size_t)B * P * sizeof(float)), *dout = xmalloc((size_t)B * P * sizeof(float));
    int32_t *lab = xmalloc((size_t)B * sizeof(int32_t));
    for (int c = 0; c < ncl; c++)
        for (int s = 0; s < o->starts; s++) {
            int b = c * o->starts + s;
            prov_latent_z1(o->seed + (uint64_t)s, Z, 0, z + (size_t)b * Z);
            lab[b] = num_classes > 0 ? (class_fixed >= 0 ? class_fixed : c) : 0;
            best[b] = INFINITY;
        }
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    for (int it = 0; it <= o->iters; it++) {
        ginfer_forward(g, w, z, num_classes > 0 ? lab : NULL, B, out);
        for (int b = 0; b < B; b++) {
            double se = 0;
            const float *ob = out + (size_t)b * P, *tb = target;
            float *db = dout + (size_t)b * P;
            for (size_t p = 0; p < P; p++) {
                float d = ob[p] - tb[p];
                se += (double)d * d;
                db[p] = 2.0f * d / (float)P;
            }
            double mse = se / (double)P;
            if (mse < best[b]) {
                best[b] = mse;
                memcpy(best_z + (size_t)b * Z, z + (size_t)b * Z, (size_t)Z * sizeof(float));
            }
        }
        if (it == o->iters) break;
        ginfer_backward_z(g, w, dout, B, dz);
        double c1 = 1.0 - pow(b1, it + 1), c2 = 1.0 - pow(b2, it + 1);
        for (size_t k = 0; k < (size_t)B * Z; k++) {
            m[k] = b1 * m[k] + (1 - b1) * dz[k];
            v[k] = b2 * v[k] + (1 - b2) * dz[k] * dz[k];
            z[k] -= (float)(o->lr * (m[k] / c1) / (sqrt(v[k] / c2) + eps));
        }
    }
    int bb = 0;
    for (int b = 1; b < B; b++)
        if (best[b] < best[bb]) bb = b;
    memcpy(z_best, best_z + (size_t)bb * Z, (size_t)Z * sizeof(float));
    *class_out = num_classes > 0 ? lab[bb] : -1;
    *mse_out = best[bb];
    ginfer_ws_free(w);
    free(z);
    free(dz);
    free(m);
    free(v);
    free(best_z);
    free(best);
    free(out);
    free(dout);
    free(lab);
}
