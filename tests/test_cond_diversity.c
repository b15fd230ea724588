/* test_cond_diversity.c - a class-conditional generator must use its
 * noise: images of one class should differ from each other.
 *
 * Why this test exists: the first 10-epoch conditional run drew one image
 * per class (recall 0.000). The cause was G's class embedding as wide as
 * z (100): G used the learned embedding and ignored z from the first few
 * hundred steps on, with or without D's projection. The default is now
 * z_dim / 10 (model_default_embed_dim). Collapse shows within a few
 * hundred steps, so a short run on real Fashion-MNIST proves the default
 * works and, with E = z_dim, that the measure would catch the old
 * failure.
 *
 * Measure: the mean over pixels of the standard deviation across 64
 * images of one class (G with fixed latents, eval-mode BN), averaged over
 * the 10 classes, divided by the same figure for 64 real training images
 * per class. */
#include "base.h"
#include "idx.h"
#include "model.h"
#include "nn.h"
#include "rng.h"
#include "test.h"

#include <math.h>

#define NIMG 12000 /* training images used (of 60,000) */
#define BATCH 64
#define STEPS 200
#define PIX 784

/* The training data (read once in main; a fixture no test changes). */
static const uint8_t *g_px;   /* NIMG x PIX bytes */
static const int32_t *g_lab;  /* NIMG labels */

/* Mean over pixels of the std across n images (n x PIX floats). */
static double spread(const float *x, int n) {
    double s = 0;
    for (int d = 0; d < PIX; d++) {
        double mu = 0, v = 0;
        for (int i = 0; i < n; i++) mu += x[(size_t)i * PIX + d];
        mu /= n;
        for (int i = 0; i < n; i++) {
            double t = x[(size_t)i * PIX + d] - mu;
            v += t * t;
        }
        s += sqrt(v / (n - 1));
    }
    return s / PIX;
}

static double real_spread(void) {
    float *x = xmalloc(sizeof(float) * BATCH * PIX);
    double tot = 0;
    for (int c = 0; c < 10; c++) {
        int k = 0;
        for (int i = 0; i < NIMG && k < BATCH; i++)
            if (g_lab[i] == c) {
                for (int d = 0; d < PIX; d++) x[(size_t)k * PIX + d] = g_px[(size_t)i * PIX + d] / 127.5f - 1.0f;
                k++;
            }
        tot += spread(x, k);
    }
    free(x);
    return tot / 10;
}

/* Within-class spread of the images of G (use_ema 0) or EMA.G (1). */
static double gen_spread(model_t *m, int use_ema) {
    int Z = model_desc(m)->z_dim;
    float *out = xmalloc(sizeof(float) * BATCH * PIX), *zt = xmalloc(sizeof(float) * BATCH * (size_t)Z);
    int32_t lab[BATCH];
    rng_t r;
    rng_seed(&r, 11);
    rng_normal_fill(&r, zt, (size_t)BATCH * (size_t)Z);
    double tot = 0;
    for (int c = 0; c < 10; c++) {
        for (int n = 0; n < BATCH; n++) lab[n] = c;
        CHECK(model_generate(m, zt, lab, BATCH, use_ema, out) == 0);
        tot += spread(out, BATCH);
    }
    free(out);
    free(zt);
    return tot / 10;
}

/* Train a conditional dcgan28 with G embedding width E for STEPS steps
 * (EMA decay 0.99, so that EMA.G means something after 200 steps). */
static model_t *train_model(int E) {
    model_desc_t d;
    model_desc_default(&d, MODEL_DCGAN28);
    d.conditional = 1;
    d.num_classes = 10;
    d.embed_dim = E;
    model_t *m = model_new(&d, BATCH, 1);
    model_set_ema_decay(m, 0.99f);
    float *real = xmalloc(sizeof(float) * BATCH * PIX);
    float *z = xmalloc(sizeof(float) * BATCH * (size_t)d.z_dim);
    int32_t lab[BATCH], flab[BATCH];
    rng_t r;
    rng_seed(&r, 12);
    for (int s = 0; s < STEPS; s++) {
        for (int n = 0; n < BATCH; n++) {
            size_t k = (size_t)rng_below(&r, NIMG);
            for (int q = 0; q < PIX; q++) real[(size_t)n * PIX + q] = g_px[k * PIX + q] / 127.5f - 1.0f;
            lab[n] = g_lab[k];
            flab[n] = (int32_t)rng_below(&r, 10);
        }
        rng_normal_fill(&r, z, (size_t)BATCH * (size_t)d.z_dim);
        CHECK(model_train_step(m, real, lab, BATCH, z, flab, NULL) == 0);
    }
    free(real);
    free(z);
    return m;
}

/* The within-class spread of the real images, and of G trained with the
 * default embedding width: computed by the first test that needs them,
 * whichever runs first (each test gets its numbers through these, so
 * none depends on another having run; TEST_ONLY can pick either). */
static double real_spread_once(void) {
    static double v = -1;
    if (v < 0) v = real_spread();
    return v;
}

/* The default-width model, trained here when the caller has none yet
 * (m_out NULL: the model is freed after measuring). */
static double default_spread_once(model_t **m_out) {
    static double v = -1;
    if (v >= 0 && !m_out) return v;
    model_t *m = train_model(model_default_embed_dim(100));
    v = gen_spread(m, 0);
    if (m_out) *m_out = m;
    else model_free(m);
    return v;
}

static void test_default_embedding_keeps_within_class_variety(void) {
    double g_real = real_spread_once();
    int E = model_default_embed_dim(100);
    CHECK(E == 10);
    model_t *m = NULL;
    double g_default = default_spread_once(&m);
    fprintf(stderr, "real within-class spread %.4f; G (E=%d) after %d steps %.4f (ratio %.2f)\n", g_real, E,
            STEPS, g_default, g_default / g_real);
    CHECKF(g_default / g_real > 0.45, "generated/real spread %.3f: the generator draws near-identical images per class",
           g_default / g_real);

    /* EMA.G with its BN statistics re-estimated from its own weights
     * (what the trainer stores in checkpoints) varies more than with the
     * statistics copied from G; the re-estimate is deterministic. */
    double before = gen_spread(m, 1);
    model_ema_restat(m, 16, 5);
    double after = gen_spread(m, 1);
    const model_tensor_t *rv = model_find(m, "EMA.G.net_1.running_var");
    CHECK(rv != NULL);
    float *copy = xmalloc(rv->n * sizeof(float));
    memcpy(copy, rv->data, rv->n * sizeof(float));
    model_ema_restat(m, 16, 5);
    CHECK(memcmp(copy, rv->data, rv->n * sizeof(float)) == 0);
    free(copy);
    fprintf(stderr, "EMA.G spread: G's statistics %.4f, re-estimated %.4f\n", before, after);
    CHECKF(after > 1.05 * before, "re-estimated statistics: spread %.4f, copied %.4f", after, before);
    model_free(m);
}

static void test_embedding_as_wide_as_z_collapses(void) {
    /* The measure catches the old default: E = z_dim. */
    double g_real = real_spread_once(), g_default = default_spread_once(NULL);
    model_t *m = train_model(100);
    double wide = gen_spread(m, 0);
    model_free(m);
    fprintf(stderr, "G (E=100) after %d steps %.4f (ratio %.2f)\n", STEPS, wide, wide / g_real);
    CHECKF(wide < 0.6 * g_default, "E=100 spread %.4f vs default %.4f", wide, g_default);
}

int main(void) {
    const char *prefix = "/usr/share/datasets/fashion-mnist/train";
    idx_data_t d;
    if (idx_read_all(prefix, NIMG, &d) != 0 || d.n != NIMG || !d.labels || d.h * d.w != PIX) {
        fprintf(stderr, "test_cond_diversity: cannot read %d Fashion-MNIST images from %s (package "
                        "dataset-fashion-mnist)\n", NIMG, prefix);
        printf("not ok read_fashion_mnist\n");
        return 1;
    }
    g_px = d.px;
    g_lab = d.labels;
    nn_set_threads(0);
    RUN(test_default_embedding_keeps_within_class_variety);
    RUN(test_embedding_as_wide_as_z_collapses);
    idx_data_free(&d);
    return test_done();
}
