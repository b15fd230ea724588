/* nn_par.h - the nn layer files' private parallel-for (not for other
 * modules). The memory-bound passes around the GEMMs (im2col, col2im,
 * layout swaps) would otherwise run on one core while the others idle;
 * nn_par_run() splits such a pass into nparts ranges, runs part 0 on the
 * calling thread and the rest on helper threads started once by
 * nn_set_threads() (threads - 1 of them). */
#ifndef GB_NN_PAR_H
#define GB_NN_PAR_H

/* One slice of a pass: handle part `part` of `nparts` (0 <= part < nparts). */
typedef void (*nn_par_fn)(void *ctx, int part, int nparts);

/* Run fn(ctx, p, nparts) for p = 0..nparts-1, in parallel when helper
 * threads exist, and return when all parts are done. nparts is always the
 * thread count of nn_par_set_threads (1 before it), so results depend on
 * that count only: when another thread is already inside nn_par_run (or a
 * helper could not be started), the calling thread runs the parts that
 * have no helper itself, one after another. Allocates nothing. fn must
 * only write disjoint data per part. */
void nn_par_run(nn_par_fn fn, void *ctx);

/* Start/stop helpers so that `threads` threads take part (1 = none);
 * called by nn_set_threads(). */
void nn_par_set_threads(int threads);

/* Row-major C (M x N) = alpha op(A) op(B) + beta C, op = transpose when
 * ta/tb: cblas_sgemm's contract, split into column (or row) blocks over
 * the threads of nn_set_threads() (see nn_blas.c). Allocates nothing. */
void nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc);

/* [lo, hi) of the part-th of nparts nearly equal slices of [0, n). */
static inline void nn_par_range(int n, int part, int nparts, int *lo, int *hi) {
    *lo = (int)((long long)n * part / nparts);
    *hi = (int)((long long)n * (part + 1) / nparts);
}

#endif
