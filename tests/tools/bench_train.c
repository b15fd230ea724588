/* bench_train.c - training throughput of the DCGAN-28 model (the default
 * job: width 32, batch 64), how close it gets to the machine's matrix-
 * multiply rate, and how much memory it needs.
 *
 * Data comes from memory: the first --subset images of the Fashion-MNIST
 * IDX file (gzip or plain, kept as bytes and scaled to [-1, 1] per batch),
 * or random pixels with --synthetic; so the figure is the model's, not the
 * data pipeline's. After --warmup steps come --steps timed steps, each
 * followed by one 1536^3 cblas_sgemm probe in the same process, so both
 * see the same load on a shared machine. The probe is OpenBLAS's own
 * multi-threaded sgemm with as many threads as the trainer (the layers
 * keep OpenBLAS at one thread and split GEMMs themselves, nn_blas.c);
 * after it comes an untimed 0.2 s pause, so that OpenBLAS's workers, which
 * busy-wait ~0.1 s after a call, are asleep before the next timed step.
 *   images_per_s   = batch / median step time
 *   sgemm_gflops   = median probe rate
 *   gemm_fraction  = median over steps of
 *                    (FLOP/image * that step's images/s) / the next probe's rate
 * (FLOP/image = model_step_flop: twice the convolutions' multiply-adds of
 * one image's share of a training step, 147.5 MFLOP for the default job:
 * G forward and backward, three D forwards, two D backwards with weight
 * gradients and one without). Medians and per-step pairing keep bursts
 * of other work from skewing the ratio. Peak RSS (VmHWM) is read after
 * the warm-up steps and one checkpoint save (modelck_store + ckpt_save
 * into a temporary folder, as the trainer saves), before the probe's
 * operands are allocated. Prints
 * `bench: NAME VALUE UNIT` lines on stdout:
 *   train_dcgan28_images_per_s, train_dcgan28_step_ms, sgemm_gflops,
 *   train_dcgan28_gemm_fraction, train_dcgan28_peak_rss_mib,
 *   train_dcgan28_gemm_shapes_sgemm_fraction (the same ratio with only the
 *     time inside the layers' GEMMs, nn_gemm_seconds: the ceiling the
 *     step's own GEMM shapes allow), train_dcgan28_gemm_time_share (median
 *     GEMM time / median step time), train_dcgan28_gemm_ms and
 *     train_dcgan28_nongemm_ms (medians over steps of the time inside and
 *     outside the GEMMs: what the passes around them cost)
 * Usage: bench_train [--width N] [--batch N] [--steps N] [--warmup N]
 *                    [--threads N] [--images PATH | --synthetic] [--subset N] [--no-sgemm] */
#include "base.h"
#include "ckpt.h"
#include "idx.h"
#include "model.h"
#include "modelck.h"
#include "nn.h"
#include "rng.h"

#include <cblas.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

#define PROBE_N 1536 /* sgemm probe size: ~7 GFLOP per run */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Square sgemm operands for the machine-rate probe. */
typedef struct {
    int n;
    float *a, *b, *c;
} probe_t;

static void probe_init(probe_t *p, int n) {
    size_t nn = (size_t)n * n;
    p->n = n;
    p->a = gb_xmalloc_aligned(nn * sizeof(float));
    p->b = gb_xmalloc_aligned(nn * sizeof(float));
    p->c = gb_xmalloc_aligned(nn * sizeof(float));
    rng_t r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < nn; i++) {
        p->a[i] = rng_uniform(&r) - 0.5f;
        p->b[i] = rng_uniform(&r) - 0.5f;
    }
}

/* Seconds of one n^3 sgemm on OpenBLAS's own `threads` threads; then
 * OpenBLAS back to one thread and a pause (not counted) while its workers
 * stop spinning. */
static double probe_run(const probe_t *p, int threads) {
    int n = p->n;
    openblas_set_num_threads(threads);
    double t0 = gb_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, p->a, n, p->b, n, 0.0f, p->c, n);
    double t = gb_now() - t0;
    openblas_set_num_threads(1);
    struct timespec pause = {0, 200000000};
    nanosleep(&pause, NULL);
    return t;
}

static void probe_free(probe_t *p) {
    free(p->a);
    free(p->b);
    free(p->c);
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

/* Save m as the trainer does into a temporary folder, then remove it:
 * the peak RSS must include a save (issue 11). Returns 0 or an errno. */
static int save_checkpoint(model_t *m) {
    char dir[512];
    const char *base = getenv("BENCH_TMP");
    snprintf(dir, sizeof dir, "%s/bench-train-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) return errno;
    ckpt_builder_t *b = ckpt_builder_new();
    modelck_store(m, b);
    ckpt_builder_msg(b)->state->step = 1;
    char path[1024];
    int rc = ckpt_save(dir, ckpt_builder_msg(b), 0, path, sizeof path, NULL);
    ckpt_builder_destroy(&b);
    if (rc == 0) unlink(path);
    rmdir(dir);
    return rc;
}

/* Read up to *n 28x28 images from an IDX3 file (gzip or plain; path
 * ends in -images-idx3-ubyte[.gz]) into a new byte array; *n becomes the
 * number read. NULL with a message on error. */
static unsigned char *read_idx(const char *path, int *n) {
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s", path);
    char *cut = strstr(prefix, "-images-idx3-ubyte");
    if (!cut) {
        fprintf(stderr, "bench_train: %s: not named PREFIX-images-idx3-ubyte[.gz]\n", path);
        return NULL;
    }
    *cut = 0;
    idx_data_t d;
    int rc = idx_read_all(prefix, (uint64_t)*n, &d);
    if (rc == 0 && (d.h != 28 || d.w != 28 || d.n < 1)) {
        fprintf(stderr, "bench_train: %s: not an IDX3 file of 28x28 images\n", path);
        idx_data_free(&d);
        return NULL;
    }
    if (rc) return NULL; /* logged by idx_read_all */
    *n = (int)d.n;
    free(d.labels);
    return d.px;
}

int main(int argc, char **argv) {
    int width = 32, batch = 64, steps = 20, warmup = 3, threads = 0, subset = 2048, synthetic = 0, no_sgemm = 0;
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
    double *step_s = xcalloc((size_t)steps, sizeof(double)), *gemm_s = xcalloc((size_t)steps, sizeof(double));
    double *gemm_only = xcalloc((size_t)steps, sizeof(double)), *gratio = xcalloc((size_t)steps, sizeof(double));
    double *ratio = xcalloc((size_t)steps, sizeof(double)), rss = -1, t_train = 0;
    double *other = xcalloc((size_t)steps, sizeof(double));
    const double flop_per_image = model_step_flop(&d);
    const double probe_flop = 2.0 * PROBE_N * PROBE_N * (double)PROBE_N;
    probe_t pr = {0};
    model_stats_t st;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            /* steady state reached: every model buffer has been touched.
             * Save a checkpoint, then read the peak before the probe's
             * operands exist. */
            if (save_checkpoint(m) != 0) return 4;
            rss = peak_rss_mib();
            if (!no_sgemm) {
                probe_init(&pr, PROBE_N);
                probe_run(&pr, nn_get_threads()); /* warm-up */
            }
        }
        double ts = gb_now(), gs = nn_gemm_seconds();
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
        if (s < warmup) continue;
        int k = s - warmup;
        step_s[k] = gb_now() - ts;
        gemm_only[k] = nn_gemm_seconds() - gs;
        other[k] = step_s[k] - gemm_only[k];
        t_train += step_s[k];
        if (!no_sgemm) {
            gemm_s[k] = probe_run(&pr, nn_get_threads());
            ratio[k] = (flop_per_image * batch / step_s[k]) / (probe_flop / gemm_s[k]);
            gratio[k] = (flop_per_image * batch / gemm_only[k]) / (probe_flop / gemm_s[k]);
        }
    }
    if (rss < 0) rss = peak_rss_mib();
    double med = median(step_s, steps);
    double ips = batch / med;
    fprintf(stderr,
            "bench_train: %d steps of batch %d, width %d, %d threads: mean %.1f images/s; "
            "loss_d %.3f loss_g %.3f; model blocks %.1f MiB; %.1f MFLOP/image\n",
            steps, batch, width, nn_get_threads(), steps * batch / t_train, st.loss_d, st.loss_g,
            model_memory_bytes(&d, batch) / 1048576.0, flop_per_image / 1e6);
    printf("bench: train_dcgan28_images_per_s %.1f images/s\n", ips);
    printf("bench: train_dcgan28_step_ms %.2f ms\n", 1e3 * med);
    if (!no_sgemm) {
        printf("bench: sgemm_gflops %.1f GFLOP/s\n", probe_flop / median(gemm_s, steps) / 1e9);
        printf("bench: train_dcgan28_gemm_fraction %.3f\n", median(ratio, steps));
        printf("bench: train_dcgan28_gemm_shapes_sgemm_fraction %.3f\n", median(gratio, steps));
        probe_free(&pr);
    }
    printf("bench: train_dcgan28_gemm_time_share %.3f\n", median(gemm_only, steps) / med);
    printf("bench: train_dcgan28_gemm_ms %.2f ms\n", 1e3 * median(gemm_only, steps));
    printf("bench: train_dcgan28_nongemm_ms %.2f ms\n", 1e3 * median(other, steps));
    printf("bench: train_dcgan28_peak_rss_mib %.1f MiB\n", rss);
    free(gemm_s);
    free(other);
    free(gemm_only);
    free(gratio);
    free(ratio);
    free(step_s);
    model_free(m);
    free(real);
    free(z);
    free(px);
    return 0;
}
