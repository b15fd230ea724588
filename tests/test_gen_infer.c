/* test_gen_infer.c - the batch-independent generator (gen_infer.h) against
 * the model's own eval-mode forward (model_generate), for every family:
 * its plan comes from model_gen_layers, so these tests also pin that
 * view to the tensor table; the contract's bit-level promises (any batch,
 * AVX2 or portable kernels, any thread count give the same bits); and the
 * one pixel mapping, which gambar-eval inverts as it reads real images. */
#include "test.h"

#include "base.h"
#include "gen_infer.h"
#include "model.h"
#include "nn.h"
#include "rng.h"

#include <math.h>

typedef struct {
    const char *what;
    model_family_t family;
    int channels, width, classes;
} fam_t;

static const fam_t g_fams[] = {
    {"dcgan28", MODEL_DCGAN28, 1, 8, 0},
    {"dcgan28 conditional", MODEL_DCGAN28, 1, 6, 10},
    {"dcgan32 RGB conditional", MODEL_DCGAN32, 3, 6, 3},
    {"dcgan64", MODEL_DCGAN64, 1, 4, 0},
};

/* A model with non-trivial EMA weights and running statistics: one
 * training step (EMA decay 0 copies G), then re-estimated statistics. */
static model_t *make_model(const fam_t *f, uint64_t seed) {
    model_desc_t d;
    model_desc_default(&d, f->family);
    d.channels = f->channels;
    d.g_mult = d.d_mult = f->width;
    d.z_dim = 20;
    if (f->classes) {
        d.conditional = 1;
        d.num_classes = f->classes;
        d.embed_dim = model_default_embed_dim(d.z_dim);
    }
    model_t *m = model_new(&d, 4, seed);
    ASSERT(m);
    model_set_ema_decay(m, 0);
    size_t img = model_image_floats(m);
    float *real = xmalloc(4 * img * sizeof(float)), *z = xmalloc(4 * 20 * sizeof(float));
    rng_t r;
    rng_seed(&r, seed + 1);
    for (size_t i = 0; i < 4 * img; i++) real[i] = (float)(rng_uniform_d(&r) * 2 - 1);
    rng_normal_fill(&r, z, 4 * 20);
    int32_t lab[4] = {0, 1, 2, 0};
    ASSERT(model_train_step(m, real, f->classes ? lab : NULL, 4, z, f->classes ? lab : NULL, NULL) == 0);
    model_ema_restat(m, 2, seed + 2);
    free(real);
    free(z);
    return m;
}

static void latents(const model_t *m, int n, uint64_t seed, float *z, int32_t *lab) {
    const model_desc_t *d = model_desc(m);
    rng_t r;
    rng_seed(&r, seed);
    rng_normal_fill(&r, z, (size_t)n * d->z_dim);
    for (int i = 0; i < n; i++) lab[i] = d->conditional ? (int32_t)rng_below(&r, (uint64_t)d->num_classes) : -1;
}

/* model_gen_layers describes G as the tensor table names it */
static void test_layers_view(void) {
    for (size_t fi = 0; fi < ARRAY_LEN(g_fams); fi++) {
        model_t *m = make_model(&g_fams[fi], 5);
        model_gen_t mg;
        model_gen_layers(m, 1, &mg);
        const model_desc_t *d = model_desc(m);
        CHECK(mg.L == 3 + (int)d->family);
        CHECK(mg.z_dim == d->z_dim && mg.channels == d->channels && mg.height == d->height);
        CHECK(mg.embed_dim == (d->conditional ? d->embed_dim : 0));
        CHECK(mg.bn_eps == 1e-5f);
        const model_tensor_t *e = model_find(m, "EMA.G.embed.weight");
        CHECK(d->conditional ? (e && mg.embed == e->data) : (!e && !mg.embed));
        int cin = d->z_dim + mg.embed_dim, h = 1;
        for (int i = 0; i < mg.L; i++) {
            const model_gen_layer_t *l = &mg.layer[i];
            char nm[64];
            snprintf(nm, sizeof nm, "EMA.G.net_%d.weight", 3 * i);
            const model_tensor_t *w = model_find(m, nm);
            CHECKF(w && l->weight == w->data && w->shape[0] == l->Cin && w->shape[1] == l->K && w->shape[2] == l->k,
                   "%s layer %d weight", g_fams[fi].what, i);
            CHECK(l->Cin == cin && l->H == h && l->bn == (i < mg.L - 1));
            if (l->bn) {
                snprintf(nm, sizeof nm, "EMA.G.net_%d.running_var", 3 * i + 1);
                w = model_find(m, nm);
                CHECKF(w && l->var == w->data, "%s layer %d running_var", g_fams[fi].what, i);
            }
            cin = l->K;
            h = l->OH;
        }
        CHECK(cin == d->channels && h == d->height);
        model_gen_t live;
        model_gen_layers(m, 0, &live);
        CHECK(live.layer[0].weight == model_find(m, "G.net_0.weight")->data);
        model_free(m);
    }
}

/* ginfer_forward = model_generate to float rounding; same bits in any
 * batch, with either kernel set, and over threads */
static void test_matches_model(void) {
    for (size_t fi = 0; fi < ARRAY_LEN(g_fams); fi++) {
        const fam_t *f = &g_fams[fi];
        model_t *m = make_model(f, 7 + fi);
        ginfer_t *g = NULL;
        char err[256];
        CHECK(ginfer_new(m, 1, &g, err, sizeof err) == 0);
        if (!g) {
            model_free(m);
            continue;
        }
        const model_desc_t *d = model_desc(m);
        const int n = 13, C = d->channels, HW = d->height * d->width;
        size_t P = ginfer_image_floats(g);
        CHECK(P == model_image_floats(m) && ginfer_z_dim(g) == d->z_dim);
        float *z = xmalloc((size_t)n * d->z_dim * sizeof(float));
        int32_t lab[13];
        latents(m, n, 100 + fi, z, lab);
        const int32_t *L = d->conditional ? lab : NULL;
        float *a = xmalloc(n * P * sizeof(float)), *b = xmalloc(n * P * sizeof(float));
        float *c = xmalloc(n * P * sizeof(float));
        ginfer_ws_t *w = ginfer_ws_new(g, n, 0);
        ginfer_forward(g, w, z, L, n, a);
        CHECK(model_generate(m, z, L, n, 1, b) == 0);
        double maxd = 0, maxv = 0;
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < C; ch++)
                for (int p = 0; p < HW; p++) {
                    double ref = b[(size_t)i * P + (size_t)ch * HW + p];
                    maxd = fmax(maxd, fabs(a[(size_t)i * P + (size_t)p * C + ch] - ref));
                    maxv = fmax(maxv, fabs(ref));
                }
        CHECKF(maxd <= 1e-5 && maxv > 0.01, "%s: max |ginfer - model_generate| %g (max |x| %g)", f->what, maxd, maxv);
        /* one at a time */
        ginfer_ws_t *w1 = ginfer_ws_new(g, 1, 0);
        int diff = 0;
        for (int i = 0; i < n; i++) {
            ginfer_forward(g, w1, z + (size_t)i * d->z_dim, L ? L + i : NULL, 1, c);
            diff += memcmp(c, a + (size_t)i * P, P * sizeof(float)) != 0;
        }
        CHECKF(diff == 0, "%s: %d of %d images differ alone vs in a batch", f->what, diff, n);
        /* portable kernels */
        ginfer_set_portable(g, 1);
        ginfer_forward(g, w, z, L, n, c);
        ginfer_set_portable(g, 0);
        CHECKF(memcmp(a, c, n * P * sizeof(float)) == 0, "%s: portable kernels differ", f->what);
        /* many images over threads */
        memset(c, 0, n * P * sizeof(float));
        nn_set_threads(2);
        ginfer_generate(g, z, L, n, c);
        nn_set_threads(1);
        CHECKF(memcmp(a, c, n * P * sizeof(float)) == 0, "%s: ginfer_generate differs", f->what);
        /* the live G too */
        ginfer_t *gl = NULL;
        CHECK(ginfer_new(m, 0, &gl, err, sizeof err) == 0);
        ginfer_forward(gl, w, z, L, n, a);
        CHECK(model_generate(m, z, L, n, 0, b) == 0);
        maxd = 0;
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < C; ch++)
                for (int p = 0; p < HW; p++)
                    maxd = fmax(maxd, fabs(a[(size_t)i * P + (size_t)p * C + ch] - b[(size_t)i * P + (size_t)ch * HW + p]));
        CHECKF(maxd <= 1e-5, "%s: live G: max difference %g", f->what, maxd);
        ginfer_free(gl);
        ginfer_ws_free(w);
        ginfer_ws_free(w1);
        ginfer_free(g);
        free(a), free(b), free(c), free(z);
        model_free(m);
    }
}

/* the plan is a copy: changing the model afterwards does not change it */
static void test_snapshot(void) {
    model_t *m = make_model(&g_fams[0], 11);
    ginfer_t *g = NULL;
    char err[256];
    CHECK(ginfer_new(m, 1, &g, err, sizeof err) == 0);
    size_t P = ginfer_image_floats(g);
    float z[20], *a = xmalloc(P * sizeof(float)), *b = xmalloc(P * sizeof(float));
    int32_t lab[1];
    latents(m, 1, 3, z, lab);
    ginfer_ws_t *w = ginfer_ws_new(g, 1, 0);
    ginfer_forward(g, w, z, NULL, 1, a);
    const model_tensor_t *t = model_find(m, "EMA.G.net_0.weight");
    for (size_t i = 0; i < t->n; i++) t->data[i] *= 2;
    ginfer_forward(g, w, z, NULL, 1, b);
    CHECK(memcmp(a, b, P * sizeof(float)) == 0);
    ginfer_ws_free(w);
    ginfer_free(g);
    free(a), free(b);
    model_free(m);
}

/* round((x + 1) * 127.5), clamped; and every 8-bit value
 * survives the trip through gambar-eval's float reading */
static void test_to_u8(void) {
    float x[] = {-1.0f, 1.0f, 0.0f, -2.0f, 3.0f, 2.0f / 255.0f - 1.0f, 0.5f};
    uint8_t px[7];
    ginfer_to_u8(x, 7, px);
    CHECK(px[0] == 0 && px[1] == 255 && px[2] == 128 && px[3] == 0 && px[4] == 255);
    CHECK(px[5] == 1 && px[6] == 191); /* 191.25 */
    int bad = 0;
    for (int v = 0; v < 256; v++) {
        uint8_t out;
        float f = (float)v * (2.0f / 255.0f) - 1.0f; /* featnet_px_to_float's mapping */
        ginfer_to_u8(&f, 1, &out);
        bad += out != v;
    }
    CHECKF(bad == 0, "%d of 256 values change on u8 -> float -> u8", bad);
}

/* text models (GAN-CLS): the condition is a sentence vector c, G's input
 * [z, G.text.weight c]; ginfer_forward_text = model_generate_text to float
 * rounding, each image a function of its own z and c only */
static void test_text_model(void) {
    model_desc_t d;
    model_desc_default(&d, MODEL_DCGAN28);
    d.g_mult = d.d_mult = 6;
    d.z_dim = 20;
    d.text_dim = 12;
    d.embed_dim = 5;
    const int T = 12, Z = 20;
    model_t *m = model_new(&d, 4, 31);
    ASSERT(m);
    model_set_ema_decay(m, 0);
    size_t img = model_image_floats(m);
    float *real = xmalloc(4 * img * sizeof(float)), z4[4 * 20], t4[4 * 12], dtd[4 * 12], dtg[4 * 12];
    rng_t r;
    rng_seed(&r, 32);
    for (size_t i = 0; i < 4 * img; i++) real[i] = (float)(rng_uniform_d(&r) * 2 - 1);
    rng_normal_fill(&r, z4, 4 * 20);
    rng_normal_fill(&r, t4, 4 * 12);
    int32_t mis[4] = {1, 2, 3, 0};
    CHECK(model_train_step_text(m, real, NULL, t4, mis, 4, z4, t4, dtd, dtg, NULL) == 0);
    model_ema_restat_text(m, 2, 33, t4, 4);
    ginfer_t *g = NULL;
    char err[256] = "";
    CHECKF(ginfer_new(m, 1, &g, err, sizeof err) == 0, "ginfer_new on a text model: %s", err);
    if (!g) {
        model_free(m);
        free(real);
        return;
    }
    CHECK(ginfer_text_dim(g) == T && ginfer_z_dim(g) == Z);
    const int n = 9;
    size_t P = ginfer_image_floats(g);
    float *z = xmalloc((size_t)n * Z * sizeof(float)), *c = xmalloc((size_t)n * T * sizeof(float));
    rng_seed(&r, 34);
    rng_normal_fill(&r, z, (size_t)n * Z);
    rng_normal_fill(&r, c, (size_t)n * T);
    float *a = xmalloc(n * P * sizeof(float)), *b = xmalloc(n * P * sizeof(float)), *o = xmalloc(n * P * sizeof(float));
    ginfer_ws_t *w = ginfer_ws_new(g, n, 0);
    ginfer_forward_text(g, w, z, c, n, a);
    CHECK(model_generate_text(m, z, c, n, 1, b) == 0);
    const int HW = d.height * d.width;
    double maxd = 0, maxv = 0;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < HW; p++) {
            double ref = b[(size_t)i * P + p];
            maxd = fmax(maxd, fabs(a[(size_t)i * P + p] - ref));
            maxv = fmax(maxv, fabs(ref));
        }
    CHECKF(maxd <= 1e-5 && maxv > 0.01, "text: max |ginfer - model_generate_text| %g (max |x| %g)", maxd, maxv);
    /* the text matters: another c, another image */
    ginfer_ws_t *w1 = ginfer_ws_new(g, 1, 0);
    ginfer_forward_text(g, w1, z, c + T, 1, o);
    CHECK(memcmp(o, a, P * sizeof(float)) != 0);
    /* alone = in the batch; portable kernels; threads */
    int diff = 0;
    for (int i = 0; i < n; i++) {
        ginfer_forward_text(g, w1, z + (size_t)i * Z, c + (size_t)i * T, 1, o);
        diff += memcmp(o, a + (size_t)i * P, P * sizeof(float)) != 0;
    }
    CHECKF(diff == 0, "text: %d of %d images differ alone vs in a batch", diff, n);
    ginfer_set_portable(g, 1);
    ginfer_forward_text(g, w, z, c, n, o);
    ginfer_set_portable(g, 0);
    CHECK(memcmp(a, o, n * P * sizeof(float)) == 0);
    memset(o, 0, n * P * sizeof(float));
    nn_set_threads(2);
    ginfer_generate_text(g, z, c, n, o);
    nn_set_threads(1);
    CHECK(memcmp(a, o, n * P * sizeof(float)) == 0);
    /* the live G */
    ginfer_t *gl = NULL;
    CHECK(ginfer_new(m, 0, &gl, err, sizeof err) == 0);
    ginfer_forward_text(gl, w, z, c, n, a);
    CHECK(model_generate_text(m, z, c, n, 0, b) == 0);
    maxd = 0;
    for (size_t k = 0; k < n * P; k++) maxd = fmax(maxd, fabs(a[k] - b[k]));
    CHECKF(maxd <= 1e-5, "text, live G: max difference %g", maxd);
    ginfer_free(gl);
    ginfer_ws_free(w);
    ginfer_ws_free(w1);
    ginfer_free(g);
    free(a), free(b), free(o), free(z), free(c), free(real);
    model_free(m);
}

int main(void) {
    nn_set_threads(1);
    RUN(test_layers_view);
    RUN(test_matches_model);
    RUN(test_snapshot);
    RUN(test_text_model);
    RUN(test_to_u8);
    return test_done();
}
