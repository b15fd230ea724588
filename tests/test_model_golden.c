/* test_model_golden.c - one whole DCGAN-28 training step against the
 * reference computed by an independent framework
 * (../shared/golden/dcgan28_step, see its README).
 *
 * The model is built at the golden width (g = d = 8, batch 16), every
 * parameter and running statistic is overwritten with the before_* values,
 * one model_train_step runs on the golden real images and z, and then
 * fake, the D logits, both losses, the gradients each Adam step used, and
 * every after_* parameter and running statistic are compared with the
 * README's tolerances. Missing golden data is a failure, not a skip. */
#include "base.h"
#include "model.h"
#include "npy.h"
#include "test.h"

#include <math.h>

#define GB 16 /* golden batch */

static char gdir[1024];

/* Load golden file NAME.npy as float32; n = its element count. NULL (and a
 * failed CHECK) when it is missing or malformed. */
static float *load(const char *name, size_t *n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.npy", gdir, name);
    npy_t a;
    int rc = npy_read(path, NPY_F32, &a);
    CHECKF(rc == 0, "%s", a.err);
    if (rc != 0) return NULL;
    *n = a.count;
    return a.data;
}

/* "GRAD.D.net_3.bias" -> prefix + "D_net_3_bias" */
static void golden_name(char *out, size_t cap, const char *prefix, const char *tname) {
    const char *s = tname;
    if (strncmp(s, "GRAD.", 5) == 0) s += 5;
    snprintf(out, cap, "%s%s", prefix, s);
    for (char *p = out + strlen(prefix); *p; p++)
        if (*p == '.') *p = '_';
}

/* max|a-b| / max|b| (relative to the reference's scale). */
static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}

static void check_rel(const char *what, const float *a, const char *file, size_t n_expect, double tol) {
    size_t n = 0;
    float *ref = load(file, &n);
    if (!ref) return;
    CHECKF(n == n_expect, "%s: %zu values in %s, model has %zu", what, n, file, n_expect);
    if (n == n_expect) {
        double e = rel_err(a, ref, n);
        CHECKF(e <= tol, "%s: relative error %.3g > %.3g", what, e, tol);
        if (getenv("VERBOSE")) fprintf(stderr, "%-28s rel err %.3g\n", what, e);
    }
    free(ref);
}

static model_t *golden_model(void) {
    model_desc_t d;
    model_desc_default(&d, MODEL_DCGAN28);
    d.g_mult = d.d_mult = 8;
    model_t *m = model_new(&d, GB, 1);
    ASSERT(m);
    /* before_* into every parameter and buffer */
    for (int i = 0; i < model_tensor_count(m); i++) {
        const model_tensor_t *t = model_tensor(m, i);
        if (t->kind != MODEL_T_PARAM && t->kind != MODEL_T_BUFFER) continue;
        char name[128];
        golden_name(name, sizeof name, "before_", t->name);
        size_t n = 0;
        float *v = load(name, &n);
        if (!v) continue;
        CHECKF(n == t->n, "%s: %zu values, model tensor has %zu", name, n, t->n);
        if (n == t->n) memcpy(t->data, v, n * sizeof(float));
        free(v);
    }
    model_ema_reset(m);
    return m;
}

static void test_dcgan28_step(void) {
    snprintf(gdir, sizeof gdir, "%s/dcgan28_step", test_golden_dir());
    model_t *m = golden_model();
    size_t nr = 0, nz = 0;
    float *real = load("real", &nr), *z = load("z", &nz);
    if (!real || !z) goto done;
    CHECK(nr == (size_t)GB * 28 * 28);
    CHECK(nz == (size_t)GB * 100);
    if (nr != (size_t)GB * 28 * 28 || nz != (size_t)GB * 100) goto done;

    /* the EMA must start equal to G and move by (1 - decay) of the step */
    float decay = 0.9f;
    model_set_ema_decay(m, decay);
    const model_tensor_t *w0 = model_find(m, "G.net_0.weight");
    const model_tensor_t *e0 = model_find(m, "EMA.G.net_0.weight");
    CHECK(w0 && e0 && w0->n == e0->n);
    float *w0_before = xmalloc(w0->n * sizeof(float));
    memcpy(w0_before, w0->data, w0->n * sizeof(float));

    model_stats_t st;
    int rc = model_train_step(m, real, NULL, GB, z, NULL, &st);
    CHECKF(rc == 0, "model_train_step rc %d", rc);

    check_rel("fake", model_fake(m), "fake", (size_t)GB * 28 * 28, 1e-4);
    check_rel("d_real", model_logits(m, 0), "d_real", GB, 1e-4);
    check_rel("d_fake", model_logits(m, 1), "d_fake", GB, 1e-4);
    check_rel("loss_d", &st.loss_d, "loss_d", 1, 1e-4);
    check_rel("loss_g", &st.loss_g, "loss_g", 1, 1e-4);

    int ngrad = 0, nparam = 0, nbuf = 0;
    for (int i = 0; i < model_tensor_count(m); i++) {
        const model_tensor_t *t = model_tensor(m, i);
        char name[128];
        if (t->kind == MODEL_T_GRAD) {
            golden_name(name, sizeof name, "grad_", t->name);
            check_rel(t->name, t->data, name, t->n, 1e-4);
            ngrad++;
        } else if (t->kind == MODEL_T_BUFFER) {
            golden_name(name, sizeof name, "after_", t->name);
            check_rel(t->name, t->data, name, t->n, 1e-4);
            nbuf++;
        } else if (t->kind == MODEL_T_PARAM) {
            /* after Adam: 5e-4 absolute everywhere, and 1e-5 wherever the
             * reference gradient is not negligible (README skip rule) */
            char gname[128];
            golden_name(name, sizeof name, "after_", t->name);
            golden_name(gname, sizeof gname, "grad_", t->name);
            size_t n = 0, ng = 0;
            float *ref = load(name, &n), *gref = load(gname, &ng);
            if (ref && gref && n == t->n && ng == t->n) {
                double gmax = 0, e_all = 0, e_kept = 0;
                for (size_t j = 0; j < n; j++) gmax = fmax(gmax, fabs(gref[j]));
                for (size_t j = 0; j < n; j++) {
                    double d = fabs((double)t->data[j] - ref[j]);
                    if (isnan(d)) d = INFINITY;
                    e_all = fmax(e_all, d);
                    if (fabs(gref[j]) >= 1e-6 * gmax) e_kept = fmax(e_kept, d);
                }
                CHECKF(e_all <= 5e-4, "%s: max abs error %.3g > 5e-4", t->name, e_all);
                CHECKF(e_kept <= 1e-5, "%s: max abs error %.3g > 1e-5 (non-negligible gradients)", t->name,
                       e_kept);
                if (getenv("VERBOSE"))
                    fprintf(stderr, "%-28s abs err %.3g (kept %.3g)\n", t->name, e_all, e_kept);
            } else {
                CHECKF(ref && gref && n == t->n && ng == t->n, "%s: reference missing or wrong size", t->name);
            }
            free(ref);
            free(gref);
            nparam++;
        }
    }
    CHECKF(ngrad == 12 && nparam == 12 && nbuf == 6, "tensor counts: %d grads, %d params, %d buffers", ngrad,
           nparam, nbuf);

    /* EMA after one step: decay*before + (1-decay)*after */
    double e = 0;
    for (size_t j = 0; j < w0->n; j++) {
        double want = decay * (double)w0_before[j] + (1.0 - decay) * w0->data[j];
        e = fmax(e, fabs(want - e0->data[j]));
    }
    CHECKF(e < 1e-6, "EMA.G.net_0.weight off by %.3g", e);
    /* the G step's D pass and the stats */
    CHECK(isfinite(st.grad_norm_d) && st.grad_norm_d > 0);
    CHECK(isfinite(st.grad_norm_g) && st.grad_norm_g > 0);
    CHECK(st.d_real > 0 && st.d_real < 1 && st.d_fake > 0 && st.d_fake < 1);
    CHECK(model_adam(m, MODEL_G)->t == 1 && model_adam(m, MODEL_D)->t == 1);
    free(w0_before);
done:
    free(real);
    free(z);
    model_free(m);
}

/* The golden comparison must be able to fail: perturb one D weight before
 * the step and check that the logits no longer match. */
static void test_golden_detects_error(void) {
    snprintf(gdir, sizeof gdir, "%s/dcgan28_step", test_golden_dir());
    model_t *m = golden_model();
    size_t nr = 0, nz = 0, nd = 0;
    float *real = load("real", &nr), *z = load("z", &nz), *dref = load("d_real", &nd);
    if (real && z && dref && nr == (size_t)GB * 784 && nz == (size_t)GB * 100 && nd == GB) {
        model_find(m, "D.net_5.weight")->data[3] += 0.05f;
        CHECK(model_train_step(m, real, NULL, GB, z, NULL, NULL) == 0);
        CHECK(rel_err(model_logits(m, 0), dref, GB) > 1e-3);
    }
    free(real);
    free(z);
    free(dref);
    model_free(m);
}

int main(void) {
    RUN(test_dcgan28_step);
    RUN(test_golden_detects_error);
    return test_done();
}
