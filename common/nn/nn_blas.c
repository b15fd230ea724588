/* nn_blas.c - the thread knob for OpenBLAS and small reductions over
 * float buffers shared by the layer files (nn_*.c).
 *
 * Only the nn files include <cblas.h>; everything that multiplies
 * matrices goes through cblas_sgemm there, with the thread count set once
 * here (OpenBLAS keeps it process-wide), together with the helper
 * threads of nn_par.c that run the passes around the GEMMs. */
#include "base.h"
#include "nn.h"
#include "nn_par.h"

#include <cblas.h>
#include <math.h>

void nn_set_threads(int n) {
    if (n <= 0) n = openblas_get_num_procs();
    if (n < 1) n = 1;
    openblas_set_num_threads(n);
    nn_par_set_threads(n);
}

int nn_get_threads(void) {
    return openblas_get_num_threads();
}

double nn_sumsq(size_t n, const float *x) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

int nn_all_finite(size_t n, const float *x) {
    /* x - x is 0 for finite x and NaN for Inf/NaN; one branch at the end. */
    float acc = 0;
    for (size_t i = 0; i < n; i++) acc += x[i] - x[i];
    return acc == 0.0f;
}
