/* bench_train.c - training throughput of the DCGAN-28 model (the default
 * job: width 32, batch 64), how close it gets to the machine's matrix-
 * multiply rate, and how much memory it needs.
 *
 * Data comes from memory: the first --subset images of the Fashion-MNIST
 * IDX file (gzip or plain, kept as bytes and scaled to [-1, 1] per batch),
 * or random pixels with --synthetic; so the figure is the model's, not the
 * data pipeline's. After --warmup steps, --steps timed model_train_step
 * calls give images/s from the median step time (robust to bursts of
 * other work on a shared machine; the mean is printed on stderr). Then, in the same process, a 2048^3 cblas_sgemm
 * (median of runs) gives the machine's rate, and
 *   gemm_fraction = 163e6 FLOP/image * images/s / sgemm rate
 * (163 MFLOP = the multiply-adds of one image's share of a training step:
 * G forward and backward, three D forwards, two D backwards with weight
 * gradients and one without). Peak RSS (VmHWM) is read before the sgemm
 * buffers are allocated. Prints `bench: NAME VALUE UNIT` lines on stdout:
 *   train_dcgan28_images_per_s, sgemm_gflops, train_dcgan28_gemm_fraction,
 *   train_dcgan28_peak_rss_mib, train_dcgan28_step_ms
 * Usage: bench_train [--width N] [--batch N] [--steps N] [--warmup N]
 *                    [--threads N] [--images PATH | --synthetic] [--subset N] */
#include "base.h"
#include "model.h"
#include "nn.h"
#include "rng.h"

#include <cblas.h>
#include <zlib.h>

#define FLOP_PER_IMAGE 163e6
#define MAX_RUNS 64

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median GFLOP/s of an n^3 sgemm (>= 5 runs, up to ~2 s). */
static double sgemm_gflops(int n) {
    size_t nn = (size_t)n * n;
    float *a = gb_xmalloc_aligned(nn * sizeof(float)), *b = gb_xmalloc_aligned(nn * sizeof(float));
    float *c = gb_xmalloc_aligned(nn * sizeof(float));
    rng_t r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < nn; i++) {
        a[i] = rng_uniform(&r) - 0.5f;
        b[i] = rng_uniform(&r) - 0.5f;
    }
    double t[MAX_RUNS];
    int k = 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double start = gb_now();
    while (k < MAX_RUNS && (k < 5 || gb_now() - start < 2.0)) {
        double t0 = gb_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[k++] = gb_now() - t0;
    }
    qsort(t, (size_t)k, sizeof *t, cmp_double);
    double med = k % 2 ? t[k / 2] : 0.5 * (t[k / 2 - 1] + t[k / 2]);
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / med / 1e9;
}

/* VmHWM of this process in MiB, or -1. */
static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atof(line + 6);
    fclose(f);
    return kb < 0 ? -1 : kb / 1024.0;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read up to *n 28x28 images from an IDX3 file (gzip or plain) into a new
 * byte array; *n becomes the number read. NULL with a message on error. */
static unsigned char *read_idx(const char *path, int *n) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_train: %s: cannot open\n", path);
        return NULL;
    }
    unsigned char h[16];
    if (gzread(f, h, 16) != 16 || be32(h) != 0x803 || be32(h + 8) != 28 || be32(h + 12) != 28) {
        fprintf(stderr, "bench_train: %s: not an IDX3 file of 28x28 images\n", path);
        gzclose(f);
        return NULL;
    }
    uint32_t count = be32(h + 4);
    if ((uint32_t)*n > count) *n = (int)count;
    size_t bytes = (size_t)*n * 784;
    unsigned char *px = xmalloc(bytes);
    if (*n < 1 || gzread(f, px, (unsigned)bytes) != (int)bytes) {
        fprintf(stderr, "bench_train: %s: truncated\n", path);
        free(px);
        gzclose(f);
        return NULL;
    }
    gzclose(f);
    return px;
}

int main(int argc, char **argv) {
    int width = 32, batch = 64, steps = 30, warmup = 5, threads = 0, subset = 2048, synthetic = 0, no_sgemm = 0;
    const char *images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--width") == 0 && i + 1 < argc) width = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--subset") == 0 && i + 1 < argc) subset = atoi(argv[++i]);
        else if (strcmp(argv[i], "--images") == 0 && i + 1 < argc) images = argv[++i];
        else if (strcmp(argv[i], "--synthetic") == 0) synthetic = 1;
        else if (strcmp(argv[i], "--no-sgemm") == 0) no_sgemm = 1;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench_train [--width N] [--batch N] [--steps N] [--warmup N] [--threads N]\n"
                   "                   [--images IDX(.gz) | --synthetic] [--subset N] [--no-sgemm]\n");
            return 0;
        } else {
            fprintf(stderr, "bench_train: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (width < 1 || width > MODEL_MAX_WIDTH || batch < 2 || steps < 1 || warmup < 0 || subset < 1) {
        fprintf(stderr, "bench_train: need width 1..%d, batch >= 2, steps >= 1, warmup >= 0, subset >= 1\n",
                MODEL_MAX_WIDTH);
        return 2;
    }
    nn_set_threads(threads);

    int nimg = subset;
    unsigned char *px;
    if (synthetic) {
        px = xmalloc((size_t)nimg * 784);
        rng_t r;
        rng_seed(&r, 5);
        for (size_t i = 0; i < (size_t)nimg * 784; i++) px[i] = (unsigned char)rng_below(&r, 256);
    } else {
        px = read_idx(images, &nimg);
        if (!px) return 4;
    }

    model_desc_t d;
    model_desc_default(&d, MODEL_DCGAN28);
    d.g_mult = d.d_mult = width;
    model_t *m = model_new(&d, batch, 1);
    ASSERT(m);
    float *real = gb_xmalloc_aligned((size_t)batch * 784 * sizeof(float));
    float *z = gb_xmalloc_aligned((size_t)batch * d.z_dim * sizeof(float));
    rng_t r;
    rng_seed(&r, 2);
    int next = 0;
    double t0 = 0, *step_s = xcalloc((size_t)steps, sizeof(double));
    model_stats_t st;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = gb_now();
        double ts = gb_now();
        for (int n = 0; n < batch; n++) {
            const unsigned char *src = px + (size_t)next * 784;
            for (int i = 0; i < 784; i++) real[(size_t)n * 784 + i] = src[i] * (2.0f / 255.0f) - 1.0f;
            next = (next + 1) % nimg;
        }
        rng_normal_fill(&r, z, (size_t)batch * d.z_dim);
        int rc = model_train_step(m, real, NULL, batch, z, NULL, &st);
        if (rc != 0) {
            fprintf(stderr, "bench_train: step %d: non-finite loss or gradient\n", s);
            return 5;
        }
        if (s >= warmup) step_s[s - warmup] = gb_now() - ts;
    }
    double el = gb_now() - t0;
    /* the median step, not the mean: robust to other processes'
     * bursts on a shared machine, like the sgemm median below */
    qsort(step_s, (size_t)steps, sizeof *step_s, cmp_double);
    double med = steps % 2 ? step_s[steps / 2] : 0.5 * (step_s[steps / 2 - 1] + step_s[steps / 2]);
    double ips = batch / med;
    double rss = peak_rss_mib();
    fprintf(stderr,
            "bench_train: %d steps of batch %d, width %d, %d threads: %.3f s (mean %.1f images/s); "
            "loss_d %.3f loss_g %.3f; model blocks %.1f MiB\n",
            steps, batch, width, nn_get_threads(), el, steps * batch / el, st.loss_d, st.loss_g,
            model_memory_bytes(&d, batch) / 1048576.0);
    printf("bench: train_dcgan28_images_per_s %.1f images/s\n", ips);
    printf("bench: train_dcgan28_step_ms %.2f ms\n", 1e3 * med);
    if (!no_sgemm) {
        double gf = sgemm_gflops(2048);
        printf("bench: sgemm_gflops %.1f GFLOP/s\n", gf);
        printf("bench: train_dcgan28_gemm_fraction %.3f\n", FLOP_PER_IMAGE * ips / (gf * 1e9));
    }
    printf("bench: train_dcgan28_peak_rss_mib %.1f MiB\n", rss);
    free(step_s);
    model_free(m);
    free(real);
    free(z);
    free(px);
    return 0;
}
