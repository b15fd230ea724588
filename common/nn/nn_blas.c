/* nn_blas.c - the thread knob, the layers' matrix multiply (nn_sgemm) and
 * small reductions over float buffers shared by the layer files (nn_*.c).
 *
 * Only the nn files include <cblas.h>. Threads: nn_set_threads(n) keeps
 * OpenBLAS itself single-threaded and runs every layer GEMM as n column
 * (or row) blocks on the nn_par.c pool, one single-threaded cblas_sgemm
 * per block. Why not OpenBLAS's own threads: its workers busy-wait
 * (sched_yield, ~0.1 s) after each GEMM, and a training step is GEMMs
 * separated by memory passes (im2col, col2im, BN, activations) that run
 * on the same pool: the spinning workers took the cores those passes need
 * (on a 2-core VM about a quarter of all cycles went to sched_yield). The
 * pool's helpers sleep between jobs. The block split depends only on the
 * shape and the thread count, so a given thread count gives bit-identical
 * results run after run. */
#include "base.h"
#include "nn.h"
#include "nn_par.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>

static int nn_threads; /* 0 until nn_set_threads: OpenBLAS threads as it started */

void nn_set_threads(int n) {
    if (n <= 0) n = openblas_get_num_procs();
    if (n < 1) n = 1;
    openblas_set_num_threads(1);
    nn_par_set_threads(n);
    nn_threads = n;
}

int nn_get_threads(void) {
    return nn_threads ? nn_threads : openblas_get_num_threads();
}

/* One GEMM, split into blocks of C for the nn_par pool. */
typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc, by_cols;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_t;

#define GEMM_ALIGN 16       /* block edges on multiples of the kernels' unroll */
#define GEMM_SPLIT_MIN 65536 /* M*N*K below which one call does it all */

static void gemm_part(void *vp, int part, int nparts) {
    const gemm_t *g = vp;
    int len = g->by_cols ? g->N : g->M;
    int blocks = (len + GEMM_ALIGN - 1) / GEMM_ALIGN, b0, b1;
    nn_par_range(blocks, part, nparts, &b0, &b1);
    int lo = b0 * GEMM_ALIGN, hi = b1 * GEMM_ALIGN < len ? b1 * GEMM_ALIGN : len;
    if (lo >= hi) return;
    const CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
    if (g->by_cols) {
        const float *B = g->tb ? g->B + (size_t)lo * g->ldb : g->B + lo;
        cblas_sgemm(CblasRowMajor, ta, tb, g->M, hi - lo, g->K, g->alpha, g->A, g->lda, B, g->ldb, g->beta,
                    g->C + lo, g->ldc);
    } else {
        const float *A = g->ta ? g->A + lo : g->A + (size_t)lo * g->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, hi - lo, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta,
                    g->C + (size_t)lo * g->ldc, g->ldc);
    }
}

static pthread_mutex_t gemm_mu = PTHREAD_MUTEX_INITIALIZER;
/* Wall time inside nn_sgemm, for benchmarks; under gemm_mu. GEMMs that
 * pool helpers run inside a job (per-thread parts of a layer, nn_conv.c)
 * are not added: the calling thread runs its own part's GEMMs at the same
 * time, and those are. */
static double gemm_seconds;

void nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc) {
    gemm_t g = {ta, tb, M, N, K, lda, ldb, ldc, N >= M, alpha, beta, A, B, C};
    double t0 = gb_now();
    if (nn_threads <= 1 || (double)M * N * K < GEMM_SPLIT_MIN) gemm_part(&g, 0, 1);
    else nn_par_run(gemm_part, &g);
    double dt = gb_now() - t0;
    if (nn_par_is_helper()) return; /* its twin runs on the timed thread */
    pthread_mutex_lock(&gemm_mu);
    gemm_seconds += dt;
    pthread_mutex_unlock(&gemm_mu);
}

double nn_gemm_seconds(void) {
    pthread_mutex_lock(&gemm_mu);
    double s = gemm_seconds;
    pthread_mutex_unlock(&gemm_mu);
    return s;
}

/* Eight double lanes (element i into lane i % 8), then the lanes in
 * order: the same bits on every machine, and the lanes are independent
 * chains the compiler vectorises, where one serial double sum waited on
 * each add's latency (a serial ~1 ms per training step on the gradients
 * of DCGAN-28, while the pool idled). */
double nn_sumsq(size_t n, const float *x) {
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * x[i + j];
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

int nn_all_finite(size_t n, const float *x) {
    /* x - x is 0 for finite x and NaN for Inf/NaN; one branch at the end. */
    float acc = 0;
    for (size_t i = 0; i < n; i++) acc += x[i] - x[i];
    return acc == 0.0f;
}
