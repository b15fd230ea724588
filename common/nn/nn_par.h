/* nn_par.h - the nn layer files' private parallel-for (not for other
 * modules). The memory-bound passes around the GEMMs (im2col, col2im,
 * layout swaps) would otherwise run on one core while the others idle;
 * nn_par_run() splits such a pass into nparts ranges, runs part 0 on the
 * calling thread and the rest on helper threads started once by
 * nn_set_threads() (threads - 1 of them), which spin briefly between
 * jobs and then sleep (nn_par.c says why). */
#ifndef GB_NN_PAR_H
#define GB_NN_PAR_H

#include <stddef.h>

/* One slice of a pass: handle part `part` of `nparts` (0 <= part < nparts). */
typedef void (*nn_par_fn)(void *ctx, int part, int nparts);

/* Run fn(ctx, p, nparts) for p = 0..nparts-1, in parallel when helper
 * threads exist, and return when all parts are done. nparts is always the
 * thread count of nn_par_set_threads (1 before it), so results depend on
 * that count only: when another thread is already inside nn_par_run (or a
 * helper could not be started), the calling thread runs the parts that
 * have no helper itself, one after another. Called from inside a part
 * (a job whose parts run whole layers on their own images, nn_conv.c),
 * it runs fn(ctx, 0, 1) on the calling thread: that thread is the part.
 * Allocates nothing. fn must only write disjoint data per part. */
void nn_par_run(nn_par_fn fn, void *ctx);

/* The part count of the next nn_par_run job (the thread count), 1 inside
 * a part; whether the calling thread is one of the pool's helper threads
 * (nn_sgemm times the other threads only). */
int nn_par_parts(void);
int nn_par_is_helper(void);

/* Start/stop helpers so that `threads` threads take part (1 = none);
 * called by nn_set_threads(). */
void nn_par_set_threads(int threads);

/* Row-major C (M x N) = alpha op(A) op(B) + beta C, op = transpose when
 * ta/tb: cblas_sgemm's contract, split into column (or row) blocks over
 * the threads of nn_set_threads() (see nn_blas.c). Allocates nothing. */
void nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc);

/* Test hook: 1 makes im2col/col2im use the row loops everywhere instead
 * of the table path (nn_conv.c), the reference the tests compare
 * that path with, bit for bit; 0 (the default) restores it. */
void nn_conv_use_rows(int on);

/* Passes touching fewer floats than this run on the calling thread: a
 * dispatch costs tens of microseconds, about what one core needs to
 * stream this many floats through a simple elementwise pass. */
#define NN_PAR_MIN_WORK 32768

/* nn_par_run when the pass touches at least NN_PAR_MIN_WORK floats, else
 * fn(ctx, 0, 1) inline. The choice depends only on the shape, and callers
 * split work so that each output is computed by the same arithmetic
 * whatever the split (elementwise ranges, or whole channels): results do
 * not depend on the thread count. */
void nn_par_run_sized(size_t work, nn_par_fn fn, void *ctx);

/* [lo, hi) of the part-th of nparts nearly equal slices of [0, n). */
static inline void nn_par_range(int n, int part, int nparts, int *lo, int *hi) {
    *lo = (int)((long long)n * part / nparts);
    *hi = (int)((long long)n * (part + 1) / nparts);
}

/* The same for a flat pass over n floats, with slice edges on multiples
 * of 16 floats (whole 64-byte lines: parts never share a cache line). */
static inline void nn_par_range_z(size_t n, int part, int nparts, size_t *lo, size_t *hi) {
    size_t blocks = (n + 15) / 16;
    size_t b0 = blocks * (size_t)part / (size_t)nparts, b1 = blocks * (size_t)(part + 1) / (size_t)nparts;
    *lo = b0 * 16 < n ? b0 * 16 : n;
    *hi = b1 * 16 < n ? b1 * 16 : n;
}

#endif
