/* bench_gemm.c - how fast the machine multiplies matrices, and how close the
 * convolution layers of DCGAN-28 get to that.
 *
 * Prints `bench: NAME VALUE UNIT` lines (scripts/bench/nn.sh runs it):
 *   sgemm_2048_gflops       OpenBLAS sgemm, 2048^3, all threads, median of runs
 *   sgemm_1t_gflops         the same on one thread
 *   conv_LAYER_{fwd,bwd}_gflops / _ms   each DCGAN-28 conv layer at batch 64,
 *                           width 32 (g1..g3 transposed, d1..d3 conv); bwd is
 *                           dx and dw together (twice the forward's FLOPs)
 *   conv_layers_gflops      all six layers, forward + backward, total FLOPs
 *                           over total time: the ceiling a training step can
 *                           reach, to compare with sgemm_2048_gflops
 * FLOPs count only the multiply-adds of the convolution (2 per MAC), so
 * im2col/col2im and the layout copies show up as lost rate. Timings are
 * medians over repeated runs after a warm-up.
 * Usage: bench_gemm [--size N] [--batch N] [--width N] [--only NAME]
 * (--only sgemm, layers, or a layer name such as d2, runs just that part;
 * --serial-passes keeps im2col/col2im/copies on one thread, for an A/B
 * against the default helper threads of nn_par.c). */
#include "base.h"
#include "nn.h"
#include "nn_par.h"
#include "rng.h"

#include <cblas.h>

#define MAX_RUNS 64

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void fill(rng_t *r, float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(r) - 0.5f;
}

/* Median seconds of one sgemm of size n (runs at least 5 times, up to ~2 s). */
static double time_sgemm(int n, const float *a, const float *b, float *c) {
    double t[MAX_RUNS];
    int k = 0;
    double start = gb_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    while (k < MAX_RUNS && (k < 5 || gb_now() - start < 2.0)) {
        double t0 = gb_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[k++] = gb_now() - t0;
    }
    return median(t, k);
}

typedef struct {
    const char *name;
    int transposed;
    int C, H, K, KH, S, P; /* square maps and kernels */
} layer_t;

int main(int argc, char **argv) {
    int size = 2048, batch = 64, width = 32;
    const char *only = NULL;
    int serial_passes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) size = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--width") == 0 && i + 1 < argc) width = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--serial-passes") == 0) serial_passes = 1;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench_gemm [--size N] [--batch N] [--width N] [--only sgemm|layers|g1|g2|g3|d1|d2|d3]\n"
                   "                  [--serial-passes]\n");
            return 0;
        } else {
            fprintf(stderr, "bench_gemm: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (size < 16 || batch < 1 || width < 1) {
        fprintf(stderr, "bench_gemm: size must be >= 16, batch and width >= 1\n");
        return 2;
    }
    rng_t r;
    rng_seed(&r, 1);
    nn_set_threads(0);
    int threads = nn_get_threads();

    double flops = 2.0 * size * size * size, t_all = 0;
    if (!only || strcmp(only, "sgemm") == 0) {
    size_t nn2 = (size_t)size * size;
    float *a = gb_xmalloc_aligned(nn2 * sizeof(float)), *b = gb_xmalloc_aligned(nn2 * sizeof(float));
    float *c = gb_xmalloc_aligned(nn2 * sizeof(float));
    fill(&r, a, nn2);
    fill(&r, b, nn2);
    t_all = time_sgemm(size, a, b, c);
    printf("bench: sgemm_2048_gflops %.1f GFLOP/s\n", flops / t_all * 1e-9);
    fflush(stdout);
    nn_set_threads(1);
    double t_one = time_sgemm(size, a, b, c);
    printf("bench: sgemm_1t_gflops %.1f GFLOP/s\n", flops / t_one * 1e-9);
    fflush(stdout);
    nn_set_threads(0);
    free(a);
    free(b);
    free(c);
    fprintf(stderr, "bench_gemm: %d threads, sgemm %d^3\n", threads, size);
    }

    if (serial_passes) nn_par_set_threads(1);
    const int g = width, d = width;
    const layer_t layers[] = {
        {"g1", 1, 100, 1, 4 * g, 7, 1, 0},   {"g2", 1, 4 * g, 7, 2 * g, 4, 2, 1}, {"g3", 1, 2 * g, 14, 1, 4, 2, 1},
        {"d1", 0, 1, 28, 2 * d, 4, 2, 1},    {"d2", 0, 2 * d, 14, 4 * d, 4, 2, 1}, {"d3", 0, 4 * d, 7, 1, 7, 1, 0},
    };
    double tot_flops = 0, tot_time = 0;
    for (size_t li = 0; li < ARRAY_LEN(layers); li++) {
        const layer_t *L = &layers[li];
        if (only && strcmp(only, L->name) != 0 && strcmp(only, "layers") != 0) continue;
        conv_t cv;
        int rc = L->transposed ? convT_init(&cv, batch, L->C, L->H, L->H, L->K, L->KH, L->KH, L->S, L->P)
                               : conv_init(&cv, batch, L->C, L->H, L->H, L->K, L->KH, L->KH, L->S, L->P);
        ASSERT(rc == 0);
        size_t nx = (size_t)batch * L->C * L->H * L->H, nw = (size_t)L->K * L->C * L->KH * L->KH;
        size_t ny = (size_t)batch * L->K * cv.OH * cv.OW;
        size_t nws = L->transposed ? convT2d_ws_floats(&cv) : conv2d_ws_floats(&cv);
        float *x = gb_xmalloc_aligned(nx * 4), *w = gb_xmalloc_aligned(nw * 4), *y = gb_xmalloc_aligned(ny * 4);
        float *dy = gb_xmalloc_aligned(ny * 4), *dx = gb_xmalloc_aligned(nx * 4), *dw = gb_xmalloc_aligned(nw * 4);
        float *ws = gb_xmalloc_aligned(nws * 4);
        fill(&r, x, nx);
        fill(&r, w, nw);
        fill(&r, dy, ny);
        memset(dw, 0, nw * 4);
        /* MACs: every (input pixel or output pixel) x kernel x channel pair. */
        double macs = L->transposed ? (double)batch * L->H * L->H * L->C * L->K * L->KH * L->KH
                                    : (double)batch * cv.OH * cv.OW * L->K * L->C * L->KH * L->KH;
        double fl = 2 * macs;
        double tf[MAX_RUNS], tb[MAX_RUNS];
        int k = 0;
        double start = gb_now();
        for (int it = -2; k < MAX_RUNS && (k < 7 || gb_now() - start < 1.0); it++) {
            double t0 = gb_now();
            if (L->transposed) convT2d_forward(&cv, x, w, NULL, y, ws);
            else conv2d_forward(&cv, x, w, NULL, y, ws);
            double t1 = gb_now();
            if (L->transposed) convT2d_backward(&cv, x, w, dy, dx, dw, NULL, ws);
            else conv2d_backward(&cv, x, w, dy, dx, dw, NULL, ws);
            double t2 = gb_now();
            if (it >= 0) { /* two warm-up rounds */
                tf[k] = t1 - t0;
                tb[k] = t2 - t1;
                k++;
            }
        }
        double mf = median(tf, k), mb = median(tb, k);
        printf("bench: conv_%s_fwd_gflops %.1f GFLOP/s\n", L->name, fl / mf * 1e-9);
        printf("bench: conv_%s_bwd_gflops %.1f GFLOP/s\n", L->name, 2 * fl / mb * 1e-9);
        printf("bench: conv_%s_fwd_ms %.3f ms\n", L->name, mf * 1e3);
        printf("bench: conv_%s_bwd_ms %.3f ms\n", L->name, mb * 1e3);
        fflush(stdout);
        tot_flops += 3 * fl;
        tot_time += mf + mb;
        free(x); free(w); free(y); free(dy); free(dx); free(dw); free(ws);
    }
    if (only) return 0;
    printf("bench: conv_layers_gflops %.1f GFLOP/s\n", tot_flops / tot_time * 1e-9);
    printf("bench: conv_layers_ms %.3f ms\n", tot_time * 1e3);
    printf("bench: conv_layers_vs_sgemm %.3f ratio\n", (tot_flops / tot_time) / (flops / t_all));
    return 0;
}
