/* test_model_text.c - the text-conditional model (GAN-CLS, model.h "TEXT-
 * CONDITIONAL MODELS"): finite-difference checks of every gradient the
 * text step produces - G's and D's parameters (G.text.weight and
 * D.text.weight included), the gradients it hands to the text encoder
 * (dtext_d, dtext_g), and the chain on into the encoder's own parameters
 * (tenc_backward) - for both losses; shapes and names; what a text model
 * refuses; and that the step is deterministic.
 *
 * The finite differences use fd_check's window-averaged secant (see
 * tests/test_model.c for why: ReLU kinks). */
#include "base.h"
#include "err.h"
#include "model.h"
#include "rng.h"
#include "test.h"
#include "textenc.h"

#include <math.h>

#define N_IMG 8
#define T_DIM 7
#define FD_K 10
#define FD_H 5e-4f

static void fill_normal(float *x, size_t n, uint64_t seed, float scale) {
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(&r);
}

static void fill_images(float *x, size_t n, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * rng_uniform(&r) - 1.0f;
}

/* ---- model snapshots (every state tensor and both Adam states) ------------ */
typedef struct {
    float **data;
    int n;
    adam_t adam[2];
} snap_t;

static void snap_take(snap_t *s, model_t *m) {
    s->n = model_tensor_count(m);
    s->data = xcalloc((size_t)s->n, sizeof(float *));
    for (int i = 0; i < s->n; i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (t->kind == MODEL_T_GRAD) continue;
        s->data[i] = xmalloc(t->n * sizeof(float));
        memcpy(s->data[i], t->data, t->n * sizeof(float));
    }
    s->adam[0] = *model_adam(m, MODEL_G);
    s->adam[1] = *model_adam(m, MODEL_D);
}

static void snap_restore(const snap_t *s, model_t *m) {
    for (int i = 0; i < s->n; i++)
        if (s->data[i]) memcpy(model_tensor(m, i)->data, s->data[i], model_tensor(m, i)->n * sizeof(float));
    *model_adam(m, MODEL_G) = s->adam[0];
    *model_adam(m, MODEL_D) = s->adam[1];
}

static void snap_free(snap_t *s) {
    for (int i = 0; i < s->n; i++) free(s->data[i]);
    free(s->data);
}

static model_desc_t text_desc(model_family_t f, model_loss_t loss, int aux) {
    model_desc_t d;
    model_desc_default(&d, f);
    d.g_mult = d.d_mult = 4;
    d.z_dim = 6;
    d.loss = loss;
    d.text_dim = T_DIM;
    d.embed_dim = 5;
    d.aux_classes = aux;
    return d;
}

/* ---- the batch and its text encoder ------------------------------------------- */

static const char *const VOCAB[] = {"dark", "light", "shirt", "boot", "wide", "narrow", "a"};
static const char *const CAPS[N_IMG] = {
    "a dark shirt",       "light wide boot", "a narrow shirt, dark", "boot",
    "a light, wide shirt", "dark boot",       "narrow light trousers", "a wide dark bag",
};

typedef struct {
    model_t *m;
    tenc_t *e;
    float *real, *z;
    float text[N_IMG * T_DIM], text_g[N_IMG * T_DIM], c0[N_IMG * T_DIM];
    float dtd[N_IMG * T_DIM], dtg[N_IMG * T_DIM];
    int32_t mis[N_IMG];
    int32_t lab[N_IMG]; /* classes of the real images, for the auxiliary classifier */
} tb_t;

static float text_loss(tb_t *b, model_net_t which) {
    model_stats_t st;
    int rc = model_train_step_text(b->m, b->real, b->lab, b->text, b->mis, N_IMG, b->z, b->text_g, b->dtd, b->dtg, &st);
    ASSERT(rc == 0);
    return which == MODEL_D ? st.loss_d : st.loss_g;
}

/* aux > 0: a model with an auxiliary classifier over aux classes, on at
 * weight 1 */
static void tb_init(tb_t *b, model_family_t f, model_loss_t loss, int aux) {
    memset(b, 0, sizeof *b);
    model_desc_t d = text_desc(f, loss, aux);
    b->m = model_new(&d, N_IMG, 7);
    ASSERT(b->m);
    tenc_desc_t td = {VOCAB, (int)ARRAY_LEN(VOCAB), 8, 16, 6, T_DIM, 16, TENC_ACT_TANH, TENC_TOKENIZER_VERSION, 0};
    char err[256];
    ASSERT(tenc_new(&td, N_IMG, 5, &b->e, err, sizeof err) == 0);
    size_t img = model_image_floats(b->m);
    b->real = xmalloc(N_IMG * img * sizeof(float));
    b->z = xmalloc((size_t)N_IMG * d.z_dim * sizeof(float));
    fill_images(b->real, N_IMG * img, 1);
    fill_normal(b->z, (size_t)N_IMG * d.z_dim, 2, 1.0f);
    ASSERT(model_encode_texts(b->e, CAPS, N_IMG, b->c0, err, sizeof err) == 0);
    memcpy(b->text, b->c0, sizeof b->c0);
    memcpy(b->text_g, b->c0, sizeof b->c0);
    for (int i = 0; i < N_IMG; i++) b->mis[i] = (int32_t)((i + 3) % N_IMG);
    for (int i = 0; i < N_IMG; i++) b->lab[i] = aux ? (int32_t)((i * 5 + 1) % aux) : -1;
    if (aux) model_set_text_aux(b->m, 1.0f);
    /* a few ordinary steps first, so the check is not only at init */
    for (int i = 0; i < 2; i++) text_loss(b, MODEL_D);
    /* larger D text projection: make the projection term matter */
    const model_tensor_t *dt = model_find(b->m, "D.text.weight");
    ASSERT(dt);
    fill_normal(dt->data, dt->n, 3, 0.1f);
}

static void tb_free(tb_t *b) {
    model_free(b->m);
    tenc_free(&b->e);
    free(b->real);
    free(b->z);
}

/* Compare an analytic gradient (mean over FD_K midpoints of the window)
 * with the window's secant; counts into *bad / *strict_bad. */
static void fd_judge(const char *what, size_t j, double an, double fd, double gmax, int *checked, int *bad,
                     int *strict_bad) {
    double scale = fmax(fabs(fd), fabs(an));
    (*checked)++;
    if (fabs(fd - an) > 3e-2 * scale + 3e-3 * gmax + 1e-3) (*strict_bad)++;
    if (fabs(fd - an) > 1e-1 * scale + 1e-2 * gmax + 2e-3) {
        (*bad)++;
        fprintf(stderr, "%s[%zu]: analytic %.6g, numeric %.6g\n", what, j, an, fd);
    }
    if (getenv("FD_VERBOSE")) fprintf(stderr, "%s[%zu]: analytic %.6g, numeric %.6g\n", what, j, an, fd);
}

static void fd_verdict(const char *what, int checked, int bad, int strict_bad) {
    CHECKF(bad == 0, "%s: %d of %d sampled gradients disagree with finite differences", what, bad, checked);
    CHECKF(strict_bad * 10 <= checked, "%s: %d of %d sampled gradients outside the strict tolerance", what,
           strict_bad, checked);
}

/* G's or D's parameters (as test_model.c's fd_check; loss_g with D frozen
 * by lr 0). */
static void fd_params(tb_t *b, model_net_t net) {
    model_t *m = b->m;
    snap_t s;
    snap_take(&s, m);
    text_loss(b, net);
    int checked = 0, bad = 0, strict_bad = 0, tensors = 0, text_seen = 0;
    rng_t r;
    rng_seed(&r, 99);
    for (int i = 0; i < model_tensor_count(m); i++) {
        const model_tensor_t *gt = model_tensor(m, i);
        if (gt->kind != MODEL_T_GRAD || gt->net != net) continue;
        const model_tensor_t *pt = model_find(m, gt->name + 5); /* strip "GRAD." */
        CHECKF(pt != NULL, "no parameter %s", gt->name + 5);
        if (!pt) continue;
        tensors++;
        if (strstr(pt->name, "text.weight")) text_seen = 1;
        size_t idx[4], best = 0;
        for (size_t j = 1; j < gt->n; j++)
            if (fabsf(gt->data[j]) > fabsf(gt->data[best])) best = j;
        float gmax = fabsf(gt->data[best]);
        CHECKF(gmax > 0, "%s: gradient is all zero", gt->name);
        idx[0] = best;
        for (int k = 1; k < 4; k++) idx[k] = rng_below(&r, gt->n);
        for (int k = 0; k < 4; k++) {
            size_t j = idx[k];
            snap_restore(&s, m);
            float p0 = pt->data[j];
            double an = 0;
            for (int q = 0; q < FD_K; q++) {
                snap_restore(&s, m);
                pt->data[j] = p0 - FD_H + (q + 0.5f) * (2 * FD_H / FD_K);
                text_loss(b, net);
                an += gt->data[j];
            }
            an /= FD_K;
            snap_restore(&s, m);
            pt->data[j] = p0 + FD_H;
            float lp = text_loss(b, net);
            snap_restore(&s, m);
            pt->data[j] = p0 - FD_H;
            float lm = text_loss(b, net);
            fd_judge(pt->name, j, an, ((double)lp - lm) / (2.0 * FD_H), gmax, &checked, &bad, &strict_bad);
        }
    }
    snap_restore(&s, m);
    fd_verdict(net == MODEL_D ? "D params" : "G params", checked, bad, strict_bad);
    CHECK(tensors >= 5);
    CHECK(text_seen);
    snap_free(&s);
}

/* The text gradients: net D checks dtext_d against loss_d moving text
 * (text_g fixed), net G checks dtext_g against loss_g moving text_g (text
 * and D fixed). through_encoder: move the encoder's parameters instead
 * (the moved side re-encoded from CAPS, the other side fixed at c0) and
 * compare with tenc_backward of that gradient. */
static void fd_text(tb_t *b, model_net_t net, int through_encoder) {
    model_t *m = b->m;
    snap_t s;
    snap_take(&s, m);
    float *moved = net == MODEL_D ? b->text : b->text_g;
    float *dmoved = net == MODEL_D ? b->dtd : b->dtg;
    char err[256];
    memcpy(b->text, b->c0, sizeof b->c0);
    memcpy(b->text_g, b->c0, sizeof b->c0);
    int checked = 0, bad = 0, strict_bad = 0;
    rng_t r;
    rng_seed(&r, 123);
    /* the elements to move: pointers with their gradient source */
    int ntens = through_encoder ? TENC_N_PARAM_TENSORS : 1;
    for (int ti = 0; ti < ntens; ti++) {
        float *par = moved, *grad = dmoved;
        size_t n = N_IMG * T_DIM;
        const char *name = net == MODEL_D ? "dtext_d" : "dtext_g";
        if (through_encoder) {
            const tenc_tensor_t *pt = tenc_tensor(b->e, ti);
            par = pt->data;
            n = pt->n;
            name = pt->name;
            grad = tenc_grads(b->e) + (pt->data - tenc_params(b->e));
            if (tenc_forward(b->e, CAPS, N_IMG, moved, err, sizeof err) != 0) ASSERT(0);
        }
        snap_restore(&s, m);
        text_loss(b, net);
        if (through_encoder) {
            tenc_zero_grad(b->e);
            tenc_backward(b->e, dmoved);
        }
        size_t idx[5], best = 0;
        for (size_t j = 1; j < n; j++)
            if (fabsf(grad[j]) > fabsf(grad[best])) best = j;
        double gmax = fabsf(grad[best]);
        CHECKF(gmax > 0, "%s: gradient is all zero", name);
        idx[0] = best;
        for (int k = 1; k < 5; k++) idx[k] = rng_below(&r, n);
        for (int k = 0; k < 5; k++) {
            size_t j = idx[k];
            float p0 = par[j];
            double an = 0, l[2];
            for (int q = 0; q < FD_K + 2; q++) {
                float x = q < FD_K ? p0 - FD_H + (q + 0.5f) * (2 * FD_H / FD_K) : q == FD_K ? p0 + FD_H : p0 - FD_H;
                par[j] = x;
                if (through_encoder && tenc_forward(b->e, CAPS, N_IMG, moved, err, sizeof err) != 0) ASSERT(0);
                snap_restore(&s, m);
                float loss = text_loss(b, net);
                if (q >= FD_K) {
                    l[q - FD_K] = loss;
                    continue;
                }
                if (through_encoder) {
                    tenc_zero_grad(b->e);
                    tenc_backward(b->e, dmoved);
                }
                an += grad[j];
            }
            an /= FD_K;
            par[j] = p0;
            fd_judge(name, j, an, (l[0] - l[1]) / (2.0 * FD_H), gmax, &checked, &bad, &strict_bad);
        }
        if (through_encoder && tenc_forward(b->e, CAPS, N_IMG, moved, err, sizeof err) != 0) ASSERT(0);
    }
    snap_restore(&s, m);
    memcpy(b->text, b->c0, sizeof b->c0);
    memcpy(b->text_g, b->c0, sizeof b->c0);
    fd_verdict(through_encoder ? "encoder" : "texts", checked, bad, strict_bad);
    snap_free(&s);
}

/* Every gradient of a step: D's parameters, dtext_d and the encoder
 * through it; then, D frozen (lr 0, so the G checks see the same D), G's
 * parameters, dtext_g and the encoder through it. */
static void fd_all(tb_t *b) {
    fd_params(b, MODEL_D);
    fd_text(b, MODEL_D, 0);
    fd_text(b, MODEL_D, 1);
    model_adam(b->m, MODEL_D)->lr = 0.0f;
    fd_params(b, MODEL_G);
    fd_text(b, MODEL_G, 0);
    fd_text(b, MODEL_G, 1);
}

static void fd_case(model_family_t f, model_loss_t loss) {
    tb_t b;
    tb_init(&b, f, loss, 0);
    int threads = nn_get_threads();
    nn_set_threads(1);
    fd_all(&b);
    nn_set_threads(threads);
    tb_free(&b);
}

/* GAN-INT on: G's loss has the interpolation term; G's parameters, dtext_g
 * and the encoder through dtext_g still match finite differences, and the
 * term changes loss_g. */
static void test_fd_text_gan_int(void) {
    tb_t b;
    tb_init(&b, MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    int threads = nn_get_threads();
    nn_set_threads(1);
    model_adam(b.m, MODEL_D)->lr = 0.0f;
    snap_t s;
    snap_take(&s, b.m);
    float off = text_loss(&b, MODEL_G);
    snap_restore(&s, b.m);
    model_set_text_interp(b.m, 1.0f);
    CHECK(model_text_interp(b.m) == 1.0f);
    float on = text_loss(&b, MODEL_G);
    snap_restore(&s, b.m);
    CHECKF(fabsf(on - off) > 1e-3f, "GAN-INT does not change loss_g (%g vs %g)", (double)on, (double)off);
    snap_free(&s);
    fd_params(&b, MODEL_G);
    fd_text(&b, MODEL_G, 0);
    fd_text(&b, MODEL_G, 1);
    nn_set_threads(threads);
    tb_free(&b);
}

/* Contrastive terms on (model_set_text_contrast): both losses change,
 * and every gradient (D's and G's parameters, both texts, the encoder
 * through both) still matches finite differences, so the terms' paths
 * into D's features, D's projection, the texts and G are all right. */
static void test_fd_text_contrastive(void) {
    tb_t b;
    tb_init(&b, MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    int threads = nn_get_threads();
    nn_set_threads(1);
    snap_t s;
    snap_take(&s, b.m);
    model_stats_t off, on;
    CHECK(model_train_step_text(b.m, b.real, NULL, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &off) == 0);
    snap_restore(&s, b.m);
    model_set_text_contrast(b.m, 1.0f);
    CHECK(model_text_contrast(b.m) == 1.0f);
    CHECK(model_train_step_text(b.m, b.real, NULL, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &on) == 0);
    snap_restore(&s, b.m);
    CHECKF(on.loss_d - off.loss_d > 0.1f && on.loss_g - off.loss_g > 0.1f,
           "the contrastive terms do not add to the losses (D %g vs %g, G %g vs %g)", (double)on.loss_d,
           (double)off.loss_d, (double)on.loss_g, (double)off.loss_g);
    CHECK(on.d_real == off.d_real && on.d_fake == off.d_fake); /* same logits: the terms only add */
    snap_free(&s);
    fd_all(&b);
    nn_set_threads(threads);
    tb_free(&b);
}

/* Mode seeking on (model_set_text_modeseek): the term is the one model.h
 * gives (loss_g at weight 2 minus loss_g at weight 1, the same fakes,
 * against 1 / (lz + eps) computed here in double from model_fake and z),
 * G's fakes h + i are drawn from caption i (dtext_g of rows h..2h-1 is
 * zero) and every gradient - D's and G's parameters, both texts, the
 * encoder through both (the paired rows' gradients folded back) - matches
 * finite differences. */
static void test_fd_text_modeseek(void) {
    tb_t b;
    tb_init(&b, MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    int threads = nn_get_threads();
    nn_set_threads(1);
    const int h = N_IMG / 2, Z = model_desc(b.m)->z_dim;
    const size_t img = model_image_floats(b.m);
    snap_t s;
    snap_take(&s, b.m);
    model_stats_t off, w1, w2;
    CHECK(model_train_step_text(b.m, b.real, NULL, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &off) == 0);
    snap_restore(&s, b.m);
    model_set_text_modeseek(b.m, 1.0f);
    CHECK(model_text_modeseek(b.m) == 1.0f);
    CHECK(model_train_step_text(b.m, b.real, NULL, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &w1) == 0);
    const float *fake = model_fake(b.m);
    double sf = 0, sz = 0;
    for (int i = 0; i < h; i++) {
        for (size_t k = 0; k < img; k++) sf += fabs((double)fake[(h + i) * img + k] - fake[i * img + k]);
        for (int j = 0; j < Z; j++) sz += fabs((double)b.z[(h + i) * Z + j] - b.z[i * Z + j]);
    }
    double want = 1.0 / ((sf / (h * (double)img)) / (sz / (h * (double)Z)) + MODEL_MODESEEK_EPS);
    int zero_rows = 1;
    for (size_t j = (size_t)h * T_DIM; j < (size_t)2 * h * T_DIM; j++) zero_rows &= b.dtg[j] == 0.0f;
    CHECKF(zero_rows, "dtext_g has gradient in the rows the paired fakes do not draw from");
    snap_restore(&s, b.m);
    model_set_text_modeseek(b.m, 2.0f);
    CHECK(model_train_step_text(b.m, b.real, NULL, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &w2) == 0);
    snap_restore(&s, b.m);
    double got = (double)w2.loss_g - w1.loss_g;
    CHECKF(fabs(got - want) <= 1e-4 * want + 1e-5, "mode-seeking term %.7g, want 1/(lz+eps) = %.7g", got, want);
    CHECKF(w1.loss_d != off.loss_d, "the D step still scores the fakes with their own captions (%g)",
           (double)off.loss_d);
    CHECK(w1.loss_d == w2.loss_d && w1.d_real == off.d_real); /* the weight is G's; the real pairs unchanged */
    snap_free(&s);
    model_set_text_modeseek(b.m, 1.0f);
    fd_all(&b);
    nn_set_threads(threads);
    tb_free(&b);
}

/* The auxiliary classifier (model_set_text_aux): its tensors are D's
 * (D.aux.weight (A, F), D.aux.bias (A); G has none), it adds to both
 * losses and nothing else (the same logits), a step refuses missing or
 * out-of-range labels, and every gradient - D's parameters with the
 * classifier's, G's, both texts, the encoder - matches finite
 * differences; again for G with mode seeking on (the paired fakes take
 * their caption's label). */
static void test_fd_text_aux(void) {
    tb_t b;
    tb_init(&b, MODEL_DCGAN28, MODEL_LOSS_BCE, 3);
    int threads = nn_get_threads();
    nn_set_threads(1);
    const model_tensor_t *aw = model_find(b.m, "D.aux.weight"), *ab = model_find(b.m, "D.aux.bias");
    CHECK(aw && aw->ndim == 2 && aw->shape[0] == 3 && ab && ab->ndim == 1 && ab->shape[0] == 3);
    CHECK(model_find(b.m, "GRAD.D.aux.weight") != NULL && model_find(b.m, "G.aux.weight") == NULL);
    CHECK(model_text_aux(b.m) == 1.0f);
    snap_t s;
    snap_take(&s, b.m);
    model_stats_t off, on;
    model_set_text_aux(b.m, 0.0f);
    CHECK(model_train_step_text(b.m, b.real, NULL, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &off) == 0);
    snap_restore(&s, b.m);
    model_set_text_aux(b.m, 1.0f);
    CHECK(model_train_step_text(b.m, b.real, NULL, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &on) ==
          GB_EFORMAT);
    int32_t bad[N_IMG];
    memcpy(bad, b.lab, sizeof bad);
    bad[5] = 3;
    CHECK(model_train_step_text(b.m, b.real, bad, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &on) ==
          GB_EFORMAT);
    bad[5] = -1;
    CHECK(model_train_step_text(b.m, b.real, bad, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &on) ==
          GB_EFORMAT);
    CHECK(model_train_step_text(b.m, b.real, b.lab, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &on) == 0);
    snap_restore(&s, b.m);
    /* a 3-class cross-entropy near chance is about log 3 = 1.1 */
    CHECKF(on.loss_d - off.loss_d > 0.3f && on.loss_g - off.loss_g > 0.3f,
           "the classifier terms do not add to the losses (D %g vs %g, G %g vs %g)", (double)on.loss_d,
           (double)off.loss_d, (double)on.loss_g, (double)off.loss_g);
    CHECK(on.d_real == off.d_real && on.d_fake == off.d_fake && on.d_mismatch == off.d_mismatch);
    snap_free(&s);
    fd_params(&b, MODEL_D);
    fd_text(&b, MODEL_D, 0);
    fd_text(&b, MODEL_D, 1);
    model_adam(b.m, MODEL_D)->lr = 0.0f;
    fd_params(&b, MODEL_G);
    fd_text(&b, MODEL_G, 0);
    model_set_text_modeseek(b.m, 1.0f);
    /* with D frozen, loss_g sees the labels only through the fakes: fake
     * h + i takes the label of caption i, so the label of real h + i
     * must not matter and that of real i must */
    int32_t lab0[N_IMG];
    memcpy(lab0, b.lab, sizeof lab0);
    snap_take(&s, b.m);
    float g0 = text_loss(&b, MODEL_G);
    snap_restore(&s, b.m);
    b.lab[N_IMG / 2] = (b.lab[N_IMG / 2] + 1) % 3;
    float g1 = text_loss(&b, MODEL_G);
    snap_restore(&s, b.m);
    b.lab[0] = (b.lab[0] + 1) % 3;
    float g2 = text_loss(&b, MODEL_G);
    snap_restore(&s, b.m);
    memcpy(b.lab, lab0, sizeof lab0);
    snap_free(&s);
    CHECKF(g1 == g0, "mode seeking: fake h takes the label of real h (%g vs %g), not of its caption's", (double)g1,
           (double)g0);
    CHECKF(g2 != g0, "mode seeking: the label of caption 0 does not reach fakes 0 and h (%g)", (double)g0);
    fd_params(&b, MODEL_G);
    fd_text(&b, MODEL_G, 1);
    nn_set_threads(threads);
    tb_free(&b);
}

static void test_fd_text_dcgan28_bce(void) { fd_case(MODEL_DCGAN28, MODEL_LOSS_BCE); }
static void test_fd_text_dcgan32_hinge(void) { fd_case(MODEL_DCGAN32, MODEL_LOSS_HINGE); }

/* ---- the matching-aware loss itself ------------------------------------------ */

/* loss_d is L(real, text) + 0.5 L(real, mismatched) + 0.5 L(fake, text),
 * from the step's own logits; the mismatched logits are the real pass's
 * features with the other texts (model_discriminate_text agrees in eval
 * mode up to BN statistics, so compare the step's logits instead). */
static void test_loss_weights(void) {
    tb_t b;
    tb_init(&b, MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    model_stats_t st;
    CHECK(model_train_step_text(b.m, b.real, NULL, b.text, b.mis, N_IMG, b.z, b.text_g, b.dtd, b.dtg, &st) == 0);
    const float *l0 = model_logits(b.m, 0), *l1 = model_logits(b.m, 1), *l3 = model_logits(b.m, 3);
    double lr = 0, lm = 0, lf = 0, sm = 0;
    for (int i = 0; i < N_IMG; i++) {
        lr += log1p(exp(-(double)l0[i]));
        lm += log1p(exp((double)l3[i]));
        lf += log1p(exp((double)l1[i]));
        sm += 1.0 / (1.0 + exp(-(double)l3[i]));
    }
    double want = lr / N_IMG + 0.5 * (lm / N_IMG + lf / N_IMG);
    CHECKF(fabs(want - st.loss_d) < 1e-4 * (1 + want), "loss_d %g, from the logits %g", (double)st.loss_d, want);
    CHECK(fabs(sm / N_IMG - st.d_mismatch) < 1e-5);
    /* the mismatched logits differ from the matching ones (the projection
     * is used) but only by the projection: same features */
    int differ = 0;
    for (int i = 0; i < N_IMG; i++) differ += l0[i] != l3[i];
    CHECK(differ == N_IMG);
    tb_free(&b);
}

/* ---- shapes, refusals, determinism ------------------------------------------------ */

static void test_text_shapes_and_refusals(void) {
    model_desc_t d = text_desc(MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    char err[256];
    CHECK(model_desc_check(&d, err, sizeof err) == 0);
    model_t *m = model_new(&d, 4, 1);
    ASSERT(m);
    const model_tensor_t *g = model_find(m, "G.text.weight"), *dd = model_find(m, "D.text.weight");
    CHECK(g && g->ndim == 2 && g->shape[0] == 5 && g->shape[1] == T_DIM);
    CHECK(dd && dd->ndim == 2 && dd->shape[0] == 16 && dd->shape[1] == T_DIM);
    CHECK(model_find(m, "EMA.G.text.weight") && model_find(m, "OPT.D.v.text.weight"));
    CHECK(model_find(m, "G.embed.weight") == NULL && model_find(m, "D.embed.weight") == NULL);
    CHECK(model_find(m, "G.net_0.weight")->shape[0] == d.z_dim + 5);
    /* a text model takes texts, not labels */
    size_t img = model_image_floats(m);
    float *x = xcalloc(4 * img, sizeof(float)), z[4 * 6] = {0}, text[4 * T_DIM] = {0}, lg[4];
    float dtd[4 * T_DIM], dtg[4 * T_DIM];
    int32_t lab[4] = {0, 0, 0, 0}, mis[4] = {1, 2, 3, 0};
    CHECK(model_train_step(m, x, lab, 4, z, lab, NULL) == GB_EFORMAT);
    CHECK(model_generate(m, z, lab, 4, 1, x) == GB_EFORMAT);
    CHECK(model_discriminate(m, x, lab, 4, lg) == GB_EFORMAT);
    int32_t self[4] = {1, 1, 3, 0}, out[4] = {1, 2, 3, 4};
    CHECK(model_train_step_text(m, x, NULL, text, self, 4, z, text, dtd, dtg, NULL) == GB_EFORMAT);
    CHECK(model_train_step_text(m, x, NULL, text, out, 4, z, text, dtd, dtg, NULL) == GB_EFORMAT);
    CHECK(model_train_step_text(m, x, NULL, text, mis, 1, z, text, dtd, dtg, NULL) == GB_EFORMAT);
    CHECK(model_adam(m, MODEL_D)->t == 0); /* nothing done */
    CHECK(model_train_step_text(m, x, NULL, text, mis, 4, z, text, dtd, dtg, NULL) == 0);
    CHECK(model_generate_text(m, z, text, 4, 1, x) == 0);
    CHECK(model_discriminate_text(m, x, text, 4, lg) == 0);
    model_gen_t mg;
    model_gen_layers(m, 1, &mg);
    CHECK(mg.text_dim == T_DIM && mg.embed_dim == 5 && mg.num_classes == 0 &&
          mg.text_weight == model_find(m, "EMA.G.text.weight")->data);
    model_free(m);
    /* a class model refuses the text calls */
    model_desc_t c;
    model_desc_default(&c, MODEL_DCGAN28);
    c.g_mult = c.d_mult = 4;
    c.z_dim = 6;
    c.conditional = 1;
    c.num_classes = 3;
    c.embed_dim = 2;
    m = model_new(&c, 4, 1);
    CHECK(model_train_step_text(m, x, NULL, text, mis, 4, z, text, dtd, dtg, NULL) == GB_EFORMAT);
    CHECK(model_generate_text(m, z, text, 4, 1, x) == GB_EFORMAT);
    model_free(m);
    free(x);
    /* bad descriptions */
    d.conditional = 1;
    d.num_classes = 3;
    CHECK(model_desc_check(&d, err, sizeof err) == GB_EFORMAT && strstr(err, "conditional"));
    d = text_desc(MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    d.embed_dim = 0;
    CHECK(model_desc_check(&d, err, sizeof err) == GB_EFORMAT && strstr(err, "embed_dim"));
    d = text_desc(MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    d.text_dim = MODEL_MAX_Z + 1;
    CHECK(model_desc_check(&d, err, sizeof err) == GB_EFORMAT && strstr(err, "text_dim"));
    d = text_desc(MODEL_DCGAN28, MODEL_LOSS_BCE, MODEL_MAX_CLASSES + 1);
    CHECK(model_desc_check(&d, err, sizeof err) == GB_EFORMAT && strstr(err, "aux_classes"));
    model_desc_default(&d, MODEL_DCGAN28); /* only text models have the classifier */
    d.aux_classes = 3;
    CHECK(model_desc_check(&d, err, sizeof err) == GB_EFORMAT && strstr(err, "only text models"));
}

static void test_text_determinism(void) {
    tb_t a, b;
    tb_init(&a, MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    tb_init(&b, MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    for (int s = 0; s < 3; s++) {
        text_loss(&a, MODEL_D);
        text_loss(&b, MODEL_D);
    }
    int same = 1;
    for (int i = 0; i < model_tensor_count(a.m); i++) {
        const model_tensor_t *ta = model_tensor(a.m, i), *tb = model_tensor(b.m, i);
        if (memcmp(ta->data, tb->data, ta->n * sizeof(float)) != 0) same = 0;
    }
    CHECK(same);
    CHECK(memcmp(a.dtd, b.dtd, sizeof a.dtd) == 0 && memcmp(a.dtg, b.dtg, sizeof a.dtg) == 0);
    tb_free(&a);
    tb_free(&b);
}

/* model_scale_text_init: G.text.weight (live and EMA) times the gain,
 * every other tensor as it was; the model then trains on. */
static void test_text_init_gain(void) {
    model_desc_t d = text_desc(MODEL_DCGAN28, MODEL_LOSS_BCE, 0);
    model_t *a = model_new(&d, N_IMG, 7), *b = model_new(&d, N_IMG, 7);
    ASSERT(a && b);
    model_scale_text_init(b, 3.0f);
    int others_same = 1, scaled = 0;
    for (int i = 0; i < model_tensor_count(a); i++) {
        const model_tensor_t *ta = model_tensor(a, i), *tb = model_tensor(b, i);
        if (strcmp(ta->name, "G.text.weight") == 0 || strcmp(ta->name, "EMA.G.text.weight") == 0) {
            int ok = ta->n > 0;
            for (size_t j = 0; j < ta->n; j++) ok &= tb->data[j] == 3.0f * ta->data[j] && ta->data[j] != 0;
            scaled += ok;
        } else if (memcmp(ta->data, tb->data, ta->n * sizeof(float)) != 0) {
            fprintf(stderr, "    %s differs\n", ta->name);
            others_same = 0;
        }
    }
    CHECKF(scaled == 2, "G.text.weight and its EMA copy scaled (%d of 2)", scaled);
    CHECK(others_same);
    model_gen_t ga, gb;
    model_gen_layers(a, 1, &ga);
    model_gen_layers(b, 1, &gb);
    int ema = 1;
    for (int j = 0; j < ga.embed_dim * ga.text_dim; j++) ema &= gb.text_weight[j] == 3.0f * ga.text_weight[j];
    CHECKF(ema, "the EMA copy of G.text.weight is scaled too");
    model_free(a);
    model_free(b);
}

int main(void) {
    nn_set_threads(0);
    RUN(test_text_init_gain);
    RUN(test_text_shapes_and_refusals);
    RUN(test_loss_weights);
    RUN(test_text_determinism);
    RUN(test_fd_text_dcgan28_bce);
    RUN(test_fd_text_dcgan32_hinge);
    RUN(test_fd_text_gan_int);
    RUN(test_fd_text_contrastive);
    RUN(test_fd_text_modeseek);
    RUN(test_fd_text_aux);
    return test_done();
}
