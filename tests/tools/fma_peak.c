/* fma_peak.c - the machine's single-precision fused multiply-add peak, the
 * roofline the sampler's generator kernels are measured against.
 *
 * Each thread runs 12 independent 8-lane AVX2 FMA chains (enough to hide
 * the FMA latency on the CPUs we run on) over registers only, so nothing
 * but the FMA units limits it. Prints
 *   bench: fma_peak_gmacs_per_core VALUE GMAC/s   (best of 5, one thread)
 *   bench: fma_peak_gmacs VALUE GMAC/s            (best of 5, --threads N)
 * One multiply-add = 2 FLOP. Without AVX2+FMA it prints nothing and
 * exits 0 (the bench then has no peak to compare with).
 * Usage: fma_peak [--threads N] (default 2) */
#include "base.h"

#include <immintrin.h>
#include <pthread.h>

#define ITERS 5000000L

static volatile float g_sink;

__attribute__((target("avx2,fma"))) static void *spin(void *arg) {
    (void)arg;
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    /* distinct starting values, hidden from the optimiser: otherwise the
     * compiler sees twelve identical chains and keeps one */
    __m256 c0 = _mm256_set1_ps(1.00f), c1 = _mm256_set1_ps(1.01f), c2 = _mm256_set1_ps(1.02f);
    __m256 c3 = _mm256_set1_ps(1.03f), c4 = _mm256_set1_ps(1.04f), c5 = _mm256_set1_ps(1.05f);
    __m256 c6 = _mm256_set1_ps(1.06f), c7 = _mm256_set1_ps(1.07f), c8 = _mm256_set1_ps(1.08f);
    __m256 c9 = _mm256_set1_ps(1.09f), c10 = _mm256_set1_ps(1.10f), c11 = _mm256_set1_ps(1.11f);
    __asm__ volatile("" : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5));
    __asm__ volatile("" : "+x"(c6), "+x"(c7), "+x"(c8), "+x"(c9), "+x"(c10), "+x"(c11), "+x"(a), "+x"(b));
    for (long i = 0; i < ITERS; i++) {
        c0 = _mm256_fmadd_ps(c0, a, b); c1 = _mm256_fmadd_ps(c1, a, b); c2 = _mm256_fmadd_ps(c2, a, b);
        c3 = _mm256_fmadd_ps(c3, a, b); c4 = _mm256_fmadd_ps(c4, a, b); c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b); c7 = _mm256_fmadd_ps(c7, a, b); c8 = _mm256_fmadd_ps(c8, a, b);
        c9 = _mm256_fmadd_ps(c9, a, b); c10 = _mm256_fmadd_ps(c10, a, b); c11 = _mm256_fmadd_ps(c11, a, b);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float o[8];
    _mm256_storeu_ps(o, s);
    g_sink = o[0];
    return NULL;
}

/* GMAC/s of one timed run on n threads. */
static double run(int n) {
    pthread_t th[64];
    double t0 = gb_now();
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, spin, NULL);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double dt = gb_now() - t0;
    return (double)n * ITERS * 12 * 8 / dt / 1e9;
}

int main(int argc, char **argv) {
    int threads = 2;
    if (argc == 3 && strcmp(argv[1], "--threads") == 0) threads = atoi(argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: fma_peak [--threads N]\n");
        return 2;
    }
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "fma_peak: --threads must be 1..64\n");
        return 2;
    }
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "fma_peak: no AVX2+FMA on this CPU; no peak measured\n");
        return 0;
    }
    double one = 0, all = 0;
    for (int r = 0; r < 5; r++) {
        double v = run(1);
        if (v > one) one = v;
        v = run(threads);
        if (v > all) all = v;
    }
    printf("bench: fma_peak_gmacs_per_core %.2f GMAC/s\n", one);
    printf("bench: fma_peak_gmacs %.2f GMAC/s\n", all);
    return 0;
}
