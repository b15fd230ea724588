/* bench_train_text.c - training speed of a text-conditional model (GAN-CLS
 * step plus the text encoder's forward, backward and Adam step, as
 * gambar-train --conditional text runs it) next to the class-conditional
 * model of the same width (issue 10's goal: within 10%).
 *
 * Both models are DCGAN-28 (default width 32, batch 64, 10 classes, E = 10;
 * the text model takes 32-wide sentence vectors from an encoder built like
 * the trainer's: 32-wide embeddings, 1024 + 4096 buckets, tanh). Images
 * are random pixels and captions are drawn from a small grammar ("a dark
 * wide shirt" ...), so the figure is the step's, not the data's. The two
 * steps alternate (class, text, class, ...) after --warmup steps of each,
 * so both see the same load on a shared machine; medians of --steps each.
 * Prints `bench: NAME VALUE UNIT`:
 *   train_class_images_per_s, train_text_images_per_s,
 *   train_text_vs_class_speed (text / class; 1 = as fast).
 * --contrastive W turns on the text model's contrastive terms
 * (model_set_text_contrast), as gambar-train --contrastive W does;
 * --mode-seek W its mode-seeking term (model_set_text_modeseek);
 * --aux-class W its auxiliary classifier over the 10 classes
 * (model_set_text_aux; the labels are the captions' classes).
 * Usage: bench_train_text [--width N] [--batch N] [--steps N] [--warmup N] [--threads N]
 *                         [--contrastive W] [--mode-seek W] [--aux-class W] */
#include "base.h"
#include "model.h"
#include "nn.h"
#include "rng.h"
#include "textenc.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static const char *const SHADE[] = {"dark", "mid-tone", "light"};
static const char *const WIDTH[] = {"narrow", "wide"};
static const char *const FILL[] = {"filled", "outlined"};
static const char *const CLS[] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                  "sandal", "shirt", "sneaker", "bag", "ankle boot"};

int main(int argc, char **argv) {
    int width = 32, batch = 64, steps = 20, warmup = 3, threads = 0;
    double contrast = 0, modeseek = 0, aux = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--width") == 0 && i + 1 < argc) width = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--contrastive") == 0 && i + 1 < argc) contrast = atof(argv[++i]);
        else if (strcmp(argv[i], "--mode-seek") == 0 && i + 1 < argc) modeseek = atof(argv[++i]);
        else if (strcmp(argv[i], "--aux-class") == 0 && i + 1 < argc) aux = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_train_text [--width N] [--batch N] [--steps N] [--warmup N] [--threads N] "
                            "[--contrastive W] [--mode-seek W] [--aux-class W]\n");
            return 2;
        }
    }
    if (width < 1 || width > MODEL_MAX_WIDTH || batch < 2 || steps < 1 || warmup < 0 ||
        !(contrast >= 0 && contrast <= 100) || !(modeseek >= 0 && modeseek <= 100) ||
        !(aux >= 0 && aux <= 100))
        return 2;
    nn_set_threads(threads);

    model_desc_t dc, dt;
    model_desc_default(&dc, MODEL_DCGAN28);
    dc.g_mult = dc.d_mult = width;
    dt = dc;
    dc.conditional = 1;
    dc.num_classes = 10;
    dc.embed_dim = model_default_embed_dim(dc.z_dim);
    dt.text_dim = 32;
    dt.embed_dim = dc.embed_dim;
    dt.aux_classes = aux > 0 ? 10 : 0;
    model_t *mc = model_new(&dc, batch, 1), *mt = model_new(&dt, batch, 1);
    ASSERT(mc && mt);
    model_set_text_contrast(mt, (float)contrast);
    model_set_text_modeseek(mt, (float)modeseek);
    model_set_text_aux(mt, (float)aux);

    /* the captions and the encoder's vocabulary */
    int ncap = 512;
    char **caps = xcalloc((size_t)ncap, sizeof(char *));
    int32_t *capcls = xcalloc((size_t)ncap, sizeof(int32_t));
    rng_t r;
    rng_seed(&r, 3);
    tenc_counter_t *cnt = tenc_counter_new(32);
    char err[256];
    for (int i = 0; i < ncap; i++) {
        char buf[128];
        capcls[i] = (int32_t)rng_below(&r, 10);
        snprintf(buf, sizeof buf, "a %s %s %s %s", SHADE[rng_below(&r, 3)], WIDTH[rng_below(&r, 2)],
                 FILL[rng_below(&r, 2)], CLS[capcls[i]]);
        caps[i] = xstrdup(buf);
        ASSERT(tenc_counter_add(cnt, buf, err, sizeof err) == 0);
    }
    char **vocab = NULL;
    int nv = 0;
    tenc_counter_vocab(cnt, 2, 20000, &vocab, &nv);
    tenc_desc_t td = {(const char *const *)vocab, nv, 1024, 4096, 32, 32, 32, TENC_ACT_TANH, TENC_TOKENIZER_VERSION, 0};
    tenc_t *enc = NULL;
    ASSERT(tenc_new(&td, batch, 4, &enc, err, sizeof err) == 0);

    size_t img = model_image_floats(mc);
    float *real = gb_xmalloc_aligned((size_t)batch * img * sizeof(float));
    float *z = gb_xmalloc_aligned((size_t)batch * dc.z_dim * sizeof(float));
    float *vec = xmalloc((size_t)batch * 32 * sizeof(float)), *dtd = xmalloc((size_t)batch * 32 * sizeof(float)),
          *dtg = xmalloc((size_t)batch * 32 * sizeof(float));
    int32_t *lab = xmalloc((size_t)batch * sizeof(int32_t)), *flab = xmalloc((size_t)batch * sizeof(int32_t)),
            *mis = xmalloc((size_t)batch * sizeof(int32_t));
    const char **bcaps = xcalloc((size_t)batch, sizeof(char *));
    double *tc = xcalloc((size_t)steps, sizeof(double)), *tt = xcalloc((size_t)steps, sizeof(double));
    model_stats_t st;
    for (int s = 0; s < warmup + steps; s++) {
        /* the same draws for both: random pixels, z, a caption per image */
        for (size_t i = 0; i < (size_t)batch * img; i++) real[i] = 2.0f * rng_uniform(&r) - 1.0f;
        rng_normal_fill(&r, z, (size_t)batch * dc.z_dim);
        for (int n = 0; n < batch; n++) {
            int c = (int)rng_below(&r, (uint64_t)ncap);
            bcaps[n] = caps[c];
            lab[n] = capcls[c];
            flab[n] = (int32_t)rng_below(&r, 10);
            mis[n] = (int32_t)((n + 1) % batch);
        }
        double t0 = gb_now();
        if (model_train_step(mc, real, lab, batch, z, flab, &st) != 0) return 5;
        double t1 = gb_now();
        /* what train_text_step does */
        if (tenc_forward(enc, bcaps, batch, vec, err, sizeof err) != 0) return 3;
        if (model_train_step_text(mt, real, lab, vec, mis, batch, z, vec, dtd, dtg, &st) != 0) return 5;
        for (int i = 0; i < batch * 32; i++) dtd[i] += dtg[i];
        tenc_zero_grad(enc);
        tenc_backward(enc, dtd);
        tenc_adam_step(enc);
        double t2 = gb_now();
        if (s >= warmup) {
            tc[s - warmup] = t1 - t0;
            tt[s - warmup] = t2 - t1;
        }
    }
    double ic = batch / median(tc, steps), it = batch / median(tt, steps);
    fprintf(stderr, "bench_train_text: %d steps each of batch %d, width %d, %d threads (alternating), contrastive %g, "
            "mode seeking %g, auxiliary classifier %g\n",
            steps, batch, width, nn_get_threads(), contrast, modeseek, aux);
    printf("bench: train_class_images_per_s %.1f images/s\n", ic);
    printf("bench: train_text_images_per_s %.1f images/s\n", it);
    printf("bench: train_text_vs_class_speed %.3f\n", it / ic);
    for (int i = 0; i < ncap; i++) free(caps[i]);
    free(caps);
    free(capcls);
    tenc_counter_free(&cnt);
    tenc_vocab_free(vocab, nv);
    tenc_free(&enc);
    model_free(mc);
    model_free(mt);
    free(real);
    free(z);
    free(vec);
    free(dtd);
    free(dtg);
    free(lab);
    free(flab);
    free(mis);
    free(bcaps);
    free(tc);
    free(tt);
    return 0;
}
