/* test_nn.c - the layer library (nn.h) against PyTorch golden values,
 * naive double-precision reference layers and finite differences; and the
 * .npy reader/writer (npy.h).
 *
 * Three kinds of evidence:
 *   1. golden: every case in ../shared/golden except dcgan28_step (the
 *      model tests own that), compared with max|a-b| / max(1, max|b|)
 *      <= 1e-4 as the golden README prescribes; the errors are printed as
 *      "# golden CASE FIELD ERR" lines. A missing golden folder FAILS.
 *   2. reference: naive loop implementations in double (conv, transposed
 *      conv, linear, batch norm, embedding, losses), forward and backward,
 *      against the GEMM code on many shapes (odd sizes, stride 1/2/3,
 *      padding 0/1/2, with and without bias, N = 1).
 *   3. finite differences: central differences of sum(ref_forward * r) in
 *      double on a sample of elements, against our float backward, which
 *      checks the reference backward's maths independently.
 * Output buffers and workspaces are filled with NaN first, so an element
 * the code forgets to write (or a workspace it wrongly expects zeroed)
 * shows up as a failure; exact-size heap buffers let ASan catch overruns. */
#include "base.h"
#include "err.h"
#include "nn.h"
#include "nn_par.h"
#include "npy.h"
#include "rng.h"
#include "test.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define GOLDEN_TOL 1e-4

/* ---- helpers -------------------------------------------------------------- */

static float *fnew(size_t n) {
    float *p = xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static float *fzero(size_t n) {
    return xcalloc(n ? n : 1, sizeof(float));
}

static double *dnew(size_t n) {
    return xcalloc(n ? n : 1, sizeof(double));
}

static void frand(rng_t *r, float *p, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) p[i] = (rng_uniform(r) * 2.0f - 1.0f) * scale;
}

static void f2d(const float *f, double *d, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = f[i];
}

/* max|a-b| / max(1, max|b|) (NaN in a counts as infinite error). */
static double relerr(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (isnan(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > 1 ? mb : 1);
}

/* Same, float vs double reference, scale max(1e-3, max|b|) (references
 * here are O(1), and an all-zero reference must match exactly-ish). */
static double relerr_d(const float *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (isnan(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > 1e-3 ? mb : 1e-3);
}

static char g_path[1024];

static const char *gpath(const char *cs, const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s/%s.npy", test_golden_dir(), cs, name);
    return g_path;
}

/* Load golden float array; NULL (and a failed CHECK) when it cannot be read.
 * shape (may be NULL) receives up to 4 dims, ndim via *nd. */
static float *gload(const char *cs, const char *name, size_t *count, int64_t *shape, int *nd) {
    npy_t a;
    int rc = npy_read(gpath(cs, name), NPY_F32, &a);
    CHECKF(rc == 0, "golden %s/%s: %s (%s)", cs, name, a.err, err_str(rc));
    if (rc != 0) return NULL;
    if (count) *count = a.count;
    if (shape)
        for (int i = 0; i < a.ndim && i < 4; i++) shape[i] = a.shape[i];
    if (nd) *nd = a.ndim;
    return a.data;
}

static long gload_int(const char *cs, const char *name) {
    npy_t a;
    int rc = npy_read(gpath(cs, name), NPY_I64, &a);
    CHECKF(rc == 0 && a.count == 1, "golden %s/%s: %s", cs, name, a.err);
    if (rc != 0 || a.count != 1) {
        npy_free(&a);
        return -1;
    }
    long v = (long)((int64_t *)a.data)[0];
    npy_free(&a);
    return v;
}

static void golden_report(const char *cs, const char *field, double err, double tol) {
    printf("# golden %-20s %-14s maxrel %.3g\n", cs, field, err);
    CHECKF(err <= tol, "golden %s %s: error %.3g > %.3g", cs, field, err, tol);
}

/* ---- naive double references ---------------------------------------------- */

/* conv: x (N,C,H,W), w (K,C,KH,KW), b (K) or NULL -> y (N,K,OH,OW). */
static void ref_conv(const conv_t *c, const double *x, const double *w, const double *b, double *y) {
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++)
            for (int oh = 0; oh < c->OH; oh++)
                for (int ow = 0; ow < c->OW; ow++) {
                    double s = b ? b[k] : 0;
                    for (int ch = 0; ch < c->C; ch++)
                        for (int kh = 0; kh < c->KH; kh++)
                            for (int kw = 0; kw < c->KW; kw++) {
                                int ih = oh * c->S - c->P + kh, iw = ow * c->S - c->P + kw;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                s += x[((size_t)(n * c->C + ch) * c->H + ih) * c->W + iw] *
                                     w[((size_t)(k * c->C + ch) * c->KH + kh) * c->KW + kw];
                            }
                    y[((size_t)(n * c->K + k) * c->OH + oh) * c->OW + ow] = s;
                }
}

static void ref_conv_back(const conv_t *c, const double *x, const double *w, const double *dy, double *dx,
                          double *dw, double *db) {
    memset(dx, 0, sizeof(double) * c->N * c->C * c->H * c->W);
    memset(dw, 0, sizeof(double) * c->K * c->C * c->KH * c->KW);
    memset(db, 0, sizeof(double) * c->K);
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++)
            for (int oh = 0; oh < c->OH; oh++)
                for (int ow = 0; ow < c->OW; ow++) {
                    double g = dy[((size_t)(n * c->K + k) * c->OH + oh) * c->OW + ow];
                    db[k] += g;
                    for (int ch = 0; ch < c->C; ch++)
                        for (int kh = 0; kh < c->KH; kh++)
                            for (int kw = 0; kw < c->KW; kw++) {
                                int ih = oh * c->S - c->P + kh, iw = ow * c->S - c->P + kw;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                size_t xi = ((size_t)(n * c->C + ch) * c->H + ih) * c->W + iw;
                                size_t wi = ((size_t)(k * c->C + ch) * c->KH + kh) * c->KW + kw;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                }
}

/* transposed: x (N,C,H,W), w (C,K,KH,KW) -> y (N,K,OH,OW), scatter form:
 * y[n,k,h*S-P+kh, w*S-P+kw] += x[n,c,h,w] * w[c,k,kh,kw]. */
static void ref_convT(const conv_t *c, const double *x, const double *w, const double *b, double *y) {
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++)
            for (int i = 0; i < c->OH * c->OW; i++) y[(size_t)(n * c->K + k) * c->OH * c->OW + i] = b ? b[k] : 0;
    for (int n = 0; n < c->N; n++)
        for (int ch = 0; ch < c->C; ch++)
            for (int h = 0; h < c->H; h++)
                for (int ww = 0; ww < c->W; ww++) {
                    double xv = x[((size_t)(n * c->C + ch) * c->H + h) * c->W + ww];
                    for (int k = 0; k < c->K; k++)
                        for (int kh = 0; kh < c->KH; kh++)
                            for (int kw = 0; kw < c->KW; kw++) {
                                int oh = h * c->S - c->P + kh, ow = ww * c->S - c->P + kw;
                                if (oh < 0 || oh >= c->OH || ow < 0 || ow >= c->OW) continue;
                                y[((size_t)(n * c->K + k) * c->OH + oh) * c->OW + ow] +=
                                    xv * w[((size_t)(ch * c->K + k) * c->KH + kh) * c->KW + kw];
                            }
                }
}

static void ref_convT_back(const conv_t *c, const double *x, const double *w, const double *dy, double *dx,
                           double *dw, double *db) {
    memset(dx, 0, sizeof(double) * c->N * c->C * c->H * c->W);
    memset(dw, 0, sizeof(double) * c->C * c->K * c->KH * c->KW);
    memset(db, 0, sizeof(double) * c->K);
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->K; k++)
            for (int i = 0; i < c->OH * c->OW; i++) db[k] += dy[(size_t)(n * c->K + k) * c->OH * c->OW + i];
    for (int n = 0; n < c->N; n++)
        for (int ch = 0; ch < c->C; ch++)
            for (int h = 0; h < c->H; h++)
                for (int ww = 0; ww < c->W; ww++) {
                    size_t xi = ((size_t)(n * c->C + ch) * c->H + h) * c->W + ww;
                    for (int k = 0; k < c->K; k++)
                        for (int kh = 0; kh < c->KH; kh++)
                            for (int kw = 0; kw < c->KW; kw++) {
                                int oh = h * c->S - c->P + kh, ow = ww * c->S - c->P + kw;
                                if (oh < 0 || oh >= c->OH || ow < 0 || ow >= c->OW) continue;
                                double g = dy[((size_t)(n * c->K + k) * c->OH + oh) * c->OW + ow];
                                size_t wi = ((size_t)(ch * c->K + k) * c->KH + kh) * c->KW + kw;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                }
}

static void ref_bn_train(int N, int C, int HW, double eps, const double *x, const double *g, const double *b,
                         double *y) {
    double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) s += x[((size_t)n * C + c) * HW + i];
        double mu = s / M;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                double d = x[((size_t)n * C + c) * HW + i] - mu;
                ss += d * d;
            }
        double rs = 1.0 / sqrt(ss / M + eps);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                size_t j = ((size_t)n * C + c) * HW + i;
                y[j] = (x[j] - mu) * rs * g[c] + b[c];
            }
    }
}

/* ---- finite differences ----------------------------------------------------- */

/* f(ctx) = a scalar computed in double from parameters the caller perturbs. */
typedef double (*fd_fn)(void *ctx);

/* Central differences of f w.r.t. param[i] for up to max_samples indices
 * (all when n <= max_samples), compared with analytic[i]. Returns
 * max|analytic - fd| / max(1e-3, max|fd|) over the sample. */
static double fd_check(fd_fn f, void *ctx, double *param, size_t n, const float *analytic, size_t max_samples,
                       double h, rng_t *r) {
    size_t m = n < max_samples ? n : max_samples;
    double md = 0, mref = 0;
    for (size_t s = 0; s < m; s++) {
        size_t i = n <= max_samples ? s : (size_t)rng_below(r, n);
        double keep = param[i];
        param[i] = keep + h;
        double fp = f(ctx);
        param[i] = keep - h;
        double fm = f(ctx);
        param[i] = keep;
        double num = (fp - fm) / (2 * h);
        double d = fabs(num - analytic[i]);
        if (isnan(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs(num) > mref) mref = fabs(num);
    }
    return md / (mref > 1e-3 ? mref : 1e-3);
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- golden: convolutions ------------------------------------------------- */

static void golden_conv_case(const char *cs, int transposed) {
    int64_t xs[4] = {0}, ws4[4] = {0}, ys[4] = {0};
    int xnd = 0, wnd = 0, ynd = 0;
    size_t nx, nw, nb, ny, ndy, ndx, ndw, ndb;
    float *x = gload(cs, "x", &nx, xs, &xnd), *w = gload(cs, "w", &nw, ws4, &wnd), *b = gload(cs, "b", &nb, NULL, NULL);
    float *y = gload(cs, "y", &ny, ys, &ynd), *dy = gload(cs, "dy", &ndy, NULL, NULL);
    float *dx = gload(cs, "dx", &ndx, NULL, NULL), *dw = gload(cs, "dw", &ndw, NULL, NULL);
    float *db = gload(cs, "db", &ndb, NULL, NULL);
    long S = gload_int(cs, "stride"), P = gload_int(cs, "pad");
    float *oy = NULL, *odx = NULL, *odw = NULL, *odb = NULL, *ws = NULL;
    if (!x || !w || !b || !y || !dy || !dx || !dw || !db || S < 1 || P < 0) goto done;
    CHECK(xnd == 4 && wnd == 4 && ynd == 4);
    conv_t c;
    int K = (int)(transposed ? ws4[1] : ws4[0]);
    int rc = transposed ? convT_init(&c, (int)xs[0], (int)xs[1], (int)xs[2], (int)xs[3], K, (int)ws4[2], (int)ws4[3],
                                     (int)S, (int)P)
                        : conv_init(&c, (int)xs[0], (int)xs[1], (int)xs[2], (int)xs[3], K, (int)ws4[2], (int)ws4[3],
                                    (int)S, (int)P);
    CHECK(rc == 0);
    if (rc != 0) goto done;
    CHECKF(ys[0] == c.N && ys[1] == c.K && ys[2] == c.OH && ys[3] == c.OW, "%s: output shape", cs);
    CHECK(nb == (size_t)c.K && ndy == ny && ndx == nx && ndw == nw && ndb == nb);
    size_t nws = transposed ? convT2d_ws_floats(&c) : conv2d_ws_floats(&c);
    ws = fnew(nws);
    oy = fnew(ny);
    odx = fnew(nx);
    odw = fzero(nw);
    odb = fzero(nb);
    if (transposed) {
        convT2d_forward(&c, x, w, b, oy, ws);
        convT2d_backward(&c, x, w, dy, odx, odw, odb, ws);
    } else {
        conv2d_forward(&c, x, w, b, oy, ws);
        conv2d_backward(&c, x, w, dy, odx, odw, odb, ws);
    }
    golden_report(cs, "y", relerr(oy, y, ny), GOLDEN_TOL);
    golden_report(cs, "dx", relerr(odx, dx, nx), GOLDEN_TOL);
    golden_report(cs, "dw", relerr(odw, dw, nw), GOLDEN_TOL);
    golden_report(cs, "db", relerr(odb, db, nb), GOLDEN_TOL);
    /* Second backward: parameter gradients accumulate, dx is overwritten. */
    for (size_t i = 0; i < nx; i++) odx[i] = NAN;
    if (transposed) convT2d_backward(&c, x, w, dy, odx, odw, odb, ws);
    else conv2d_backward(&c, x, w, dy, odx, odw, odb, ws);
    for (size_t i = 0; i < nw; i++) odw[i] *= 0.5f;
    for (size_t i = 0; i < nb; i++) odb[i] *= 0.5f;
    CHECK(relerr(odx, dx, nx) <= GOLDEN_TOL);
    CHECK(relerr(odw, dw, nw) <= GOLDEN_TOL);
    CHECK(relerr(odb, db, nb) <= GOLDEN_TOL);
done:
    free(x); free(w); free(b); free(y); free(dy); free(dx); free(dw); free(db);
    free(oy); free(odx); free(odw); free(odb); free(ws);
}

static void golden_present(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/INDEX.json", test_golden_dir());
    struct stat st;
    int ok = stat(p, &st) == 0;
    if (!ok) fprintf(stderr, "GOLDEN DATA MISSING: %s not found (set GAMBAR_GOLDEN)\n", p);
    CHECKF(ok, "golden folder %s is missing", test_golden_dir());
}

static void golden_conv2d_k4s2p1(void) { golden_conv_case("conv2d_k4s2p1", 0); }
static void golden_conv2d_k3s1p1(void) { golden_conv_case("conv2d_k3s1p1", 0); }
static void golden_conv2d_k7s1p0(void) { golden_conv_case("conv2d_k7s1p0", 0); }
static void golden_convT2d_k4s2p1(void) { golden_conv_case("convT2d_k4s2p1", 1); }
static void golden_convT2d_k7s1p0(void) { golden_conv_case("convT2d_k7s1p0", 1); }

/* ---- golden: batch norm, linear, activations, BCE, Adam ------------------- */

static void golden_bn_train(void) {
    const char *cs = "batchnorm2d_train";
    int64_t xs[4] = {0};
    int nd = 0;
    size_t nx = 0, nc = 0;
    float *x = gload(cs, "x", &nx, xs, &nd), *g = gload(cs, "gamma", &nc, NULL, NULL);
    float *be = gload(cs, "beta", NULL, NULL, NULL), *y = gload(cs, "y", NULL, NULL, NULL);
    float *dy = gload(cs, "dy", NULL, NULL, NULL), *dx = gload(cs, "dx", NULL, NULL, NULL);
    float *dg = gload(cs, "dgamma", NULL, NULL, NULL), *dbe = gload(cs, "dbeta", NULL, NULL, NULL);
    float *rm = gload(cs, "running_mean", NULL, NULL, NULL), *rv = gload(cs, "running_var", NULL, NULL, NULL);
    float *oy = NULL, *odx = NULL, *odg = NULL, *odb = NULL, *mean = NULL, *rstd = NULL, *orm = NULL, *orv = NULL;
    if (!x || !g || !be || !y || !dy || !dx || !dg || !dbe || !rm || !rv || nd != 4) goto done;
    bn_t b = {(int)xs[0], (int)xs[1], (int)(xs[2] * xs[3]), 1e-5f, 0.1f, BN_ACT_NONE, 0.0f, {0, 0}, {0, 0}};
    CHECK(nc == (size_t)b.C);
    oy = fnew(nx); odx = fnew(nx); odg = fzero(nc); odb = fzero(nc);
    mean = fnew(nc); rstd = fnew(nc); orm = fzero(nc); orv = fnew(nc);
    for (size_t c = 0; c < nc; c++) orv[c] = 1.0f;
    bn_forward_train(&b, x, g, be, oy, mean, rstd, orm, orv);
    bn_backward(&b, x, g, mean, rstd, dy, odx, odg, odb);
    golden_report(cs, "y", relerr(oy, y, nx), GOLDEN_TOL);
    golden_report(cs, "dx", relerr(odx, dx, nx), GOLDEN_TOL);
    golden_report(cs, "dgamma", relerr(odg, dg, nc), GOLDEN_TOL);
    golden_report(cs, "dbeta", relerr(odb, dbe, nc), GOLDEN_TOL);
    golden_report(cs, "running_mean", relerr(orm, rm, nc), GOLDEN_TOL);
    golden_report(cs, "running_var", relerr(orv, rv, nc), GOLDEN_TOL);
    /* NULL running stats skip the update but give the same output. */
    float *oy2 = fnew(nx);
    bn_forward_train(&b, x, g, be, oy2, mean, rstd, NULL, NULL);
    CHECK(memcmp(oy, oy2, nx * sizeof(float)) == 0);
    free(oy2);
done:
    free(x); free(g); free(be); free(y); free(dy); free(dx); free(dg); free(dbe); free(rm); free(rv);
    free(oy); free(odx); free(odg); free(odb); free(mean); free(rstd); free(orm); free(orv);
}

static void golden_bn_eval(void) {
    const char *cs = "batchnorm2d_eval";
    int64_t xs[4] = {0};
    int nd = 0;
    size_t nx = 0, nc = 0;
    float *x = gload(cs, "x", &nx, xs, &nd), *g = gload(cs, "gamma", &nc, NULL, NULL);
    float *be = gload(cs, "beta", NULL, NULL, NULL), *y = gload(cs, "y", NULL, NULL, NULL);
    float *rm = gload(cs, "running_mean", NULL, NULL, NULL), *rv = gload(cs, "running_var", NULL, NULL, NULL);
    float *oy = NULL;
    if (!x || !g || !be || !y || !rm || !rv || nd != 4) goto done;
    bn_t b = {(int)xs[0], (int)xs[1], (int)(xs[2] * xs[3]), 1e-5f, 0.1f, BN_ACT_NONE, 0.0f, {0, 0}, {0, 0}};
    oy = fnew(nx);
    bn_forward_eval(&b, x, g, be, rm, rv, oy);
    golden_report(cs, "y", relerr(oy, y, nx), GOLDEN_TOL);
done:
    free(x); free(g); free(be); free(y); free(rm); free(rv); free(oy);
}

static void golden_linear(void) {
    const char *cs = "linear";
    int64_t xs[4] = {0}, wsh[4] = {0};
    int nd = 0, wnd = 0;
    size_t nx = 0, nw = 0, nb = 0, ny = 0;
    float *x = gload(cs, "x", &nx, xs, &nd), *w = gload(cs, "w", &nw, wsh, &wnd), *b = gload(cs, "b", &nb, NULL, NULL);
    float *y = gload(cs, "y", &ny, NULL, NULL), *dy = gload(cs, "dy", NULL, NULL, NULL);
    float *dx = gload(cs, "dx", NULL, NULL, NULL), *dw = gload(cs, "dw", NULL, NULL, NULL);
    float *db = gload(cs, "db", NULL, NULL, NULL);
    float *oy = NULL, *odx = NULL, *odw = NULL, *odb = NULL;
    if (!x || !w || !b || !y || !dy || !dx || !dw || !db || nd != 2 || wnd != 2) goto done;
    int N = (int)xs[0], IN = (int)xs[1], OUT = (int)wsh[0];
    CHECK(wsh[1] == IN && ny == (size_t)N * OUT);
    oy = fnew(ny); odx = fnew(nx); odw = fzero(nw); odb = fzero(nb);
    linear_forward(N, IN, OUT, x, w, b, oy);
    linear_backward(N, IN, OUT, x, w, dy, odx, odw, odb);
    golden_report(cs, "y", relerr(oy, y, ny), GOLDEN_TOL);
    golden_report(cs, "dx", relerr(odx, dx, nx), GOLDEN_TOL);
    golden_report(cs, "dw", relerr(odw, dw, nw), GOLDEN_TOL);
    golden_report(cs, "db", relerr(odb, db, nb), GOLDEN_TOL);
done:
    free(x); free(w); free(b); free(y); free(dy); free(dx); free(dw); free(db);
    free(oy); free(odx); free(odw); free(odb);
}

static void golden_act_case(const char *cs, int kind) {
    size_t n = 0;
    float *x = gload(cs, "x", &n, NULL, NULL), *y = gload(cs, "y", NULL, NULL, NULL);
    float *dy = gload(cs, "dy", NULL, NULL, NULL), *dx = gload(cs, "dx", NULL, NULL, NULL);
    float *oy = NULL, *odx = NULL;
    if (!x || !y || !dy || !dx) goto done;
    oy = fnew(n);
    odx = fnew(n);
    switch (kind) {
    case 0: relu_forward(n, x, oy); relu_backward(n, oy, dy, odx); break;
    case 1: lrelu_forward(n, 0.2f, x, oy); lrelu_backward(n, 0.2f, oy, dy, odx); break;
    case 2: tanh_forward(n, x, oy); tanh_backward(n, oy, dy, odx); break;
    default: sigmoid_forward(n, x, oy); sigmoid_backward(n, oy, dy, odx); break;
    }
    golden_report(cs, "y", relerr(oy, y, n), GOLDEN_TOL);
    golden_report(cs, "dx", relerr(odx, dx, n), GOLDEN_TOL);
    /* In place forward (y == x) gives the same values. */
    float *ip = fnew(n);
    memcpy(ip, x, n * sizeof(float));
    switch (kind) {
    case 0: relu_forward(n, ip, ip); break;
    case 1: lrelu_forward(n, 0.2f, ip, ip); break;
    case 2: tanh_forward(n, ip, ip); break;
    default: sigmoid_forward(n, ip, ip); break;
    }
    CHECK(memcmp(ip, oy, n * sizeof(float)) == 0);
    free(ip);
done:
    free(x); free(y); free(dy); free(dx); free(oy); free(odx);
}

static void golden_act_relu(void) { golden_act_case("act_relu", 0); }
static void golden_act_lrelu(void) { golden_act_case("act_leaky_relu_0.2", 1); }
static void golden_act_tanh(void) { golden_act_case("act_tanh", 2); }
static void golden_act_sigmoid(void) { golden_act_case("act_sigmoid", 3); }

static void golden_bce(void) {
    const char *cs = "bce_with_logits";
    size_t n = 0, nl = 0;
    float *l = gload(cs, "logits", &n, NULL, NULL), *t = gload(cs, "target", NULL, NULL, NULL);
    float *loss = gload(cs, "loss", &nl, NULL, NULL), *dl = gload(cs, "dlogits", NULL, NULL, NULL);
    float *odl = NULL;
    if (!l || !t || !loss || !dl || nl != 1) goto done;
    odl = fnew(n);
    float ol = bce_logits_v(n, l, t, odl);
    golden_report(cs, "loss", relerr(&ol, loss, 1), GOLDEN_TOL);
    golden_report(cs, "dlogits", relerr(odl, dl, n), GOLDEN_TOL);
    CHECK(bce_logits_v(n, l, t, NULL) == ol);
done:
    free(l); free(t); free(loss); free(dl); free(odl);
}

static void golden_adam(void) {
    const char *cs = "adam_3steps";
    size_t np = 0, ng = 0, na = 0, nb = 0;
    float *p0 = gload(cs, "p0", &np, NULL, NULL), *g = gload(cs, "grads", &ng, NULL, NULL);
    float *pa = gload(cs, "p_after", &na, NULL, NULL), *lr = gload(cs, "lr", NULL, NULL, NULL);
    float *betas = gload(cs, "betas", &nb, NULL, NULL), *eps = gload(cs, "eps", NULL, NULL, NULL);
    float *p = NULL, *m = NULL, *v = NULL;
    if (!p0 || !g || !pa || !lr || !betas || !eps || nb != 2 || ng != 3 * np || na != 3 * np) goto done;
    p = fnew(np);
    memcpy(p, p0, np * sizeof(float));
    m = fzero(np);
    v = fzero(np);
    adam_t a = {lr[0], betas[0], betas[1], eps[0], 0};
    for (int s = 0; s < 3; s++) {
        adam_begin(&a);
        CHECK(a.t == (uint64_t)s + 1);
        adam_update(&a, np, p, g + (size_t)s * np, m, v);
        /* README: absolute 5e-4 is the safe bound; with no near-zero
         * gradients here we also hold every element to 1e-5 absolute. */
        double md = 0;
        for (size_t i = 0; i < np; i++) md = fmax(md, fabs((double)p[i] - pa[(size_t)s * np + i]));
        char f[32];
        snprintf(f, sizeof f, "p_after[%d]", s);
        golden_report(cs, f, md, 1e-5);
    }
done:
    free(p0); free(g); free(pa); free(lr); free(betas); free(eps); free(p); free(m); free(v);
}

/* ---- reference and finite-difference checks: convolution -------------------- */

typedef struct {
    conv_t c;
    int transposed;
    double *x, *w, *b, *r, *y; /* b NULL = no bias; r = upstream dy */
} conv_ctx;

static double conv_obj(void *vp) {
    conv_ctx *q = vp;
    if (q->transposed) ref_convT(&q->c, q->x, q->w, q->b, q->y);
    else ref_conv(&q->c, q->x, q->w, q->b, q->y);
    return dot(q->y, q->r, (size_t)q->c.N * q->c.K * q->c.OH * q->c.OW);
}

/* Forward and backward of one shape vs the naive reference, FD on a sample
 * when fd; the worst errors seen are folded into *worst_ref / *worst_fd. */
static void conv_shape_check(int transposed, int N, int C, int H, int W, int K, int KH, int KW, int S, int P,
                             int bias, rng_t *rg, int fd, double *worst_ref, double *worst_fd) {
    conv_t c;
    int rc = transposed ? convT_init(&c, N, C, H, W, K, KH, KW, S, P) : conv_init(&c, N, C, H, W, K, KH, KW, S, P);
    CHECKF(rc == 0, "init %s N%d C%d H%d W%d K%d k%dx%d s%d p%d", transposed ? "convT" : "conv", N, C, H, W, K, KH,
           KW, S, P);
    if (rc) return;
    size_t nx = (size_t)N * C * H * W, nw = (size_t)K * C * KH * KW, ny = (size_t)N * K * c.OH * c.OW;
    size_t nws = transposed ? convT2d_ws_floats(&c) : conv2d_ws_floats(&c);
    float *x = fnew(nx), *w = fnew(nw), *b = fnew((size_t)K), *dy = fnew(ny), *y = fnew(ny), *ws = fnew(nws);
    float *dx = fnew(nx), *dw = fzero(nw), *db = fzero((size_t)K);
    double *xd = dnew(nx), *wd = dnew(nw), *bd = dnew((size_t)K), *rd = dnew(ny), *yd = dnew(ny);
    double *dxd = dnew(nx), *dwd = dnew(nw), *dbd = dnew((size_t)K);
    frand(rg, x, nx, 1.0f);
    frand(rg, w, nw, 0.5f);
    frand(rg, b, (size_t)K, 0.5f);
    frand(rg, dy, ny, 1.0f);
    f2d(x, xd, nx); f2d(w, wd, nw); f2d(b, bd, (size_t)K); f2d(dy, rd, ny);
    conv_ctx q = {c, transposed, xd, wd, bias ? bd : NULL, rd, yd};
    if (transposed) {
        convT2d_forward(&c, x, w, bias ? b : NULL, y, ws);
        convT2d_backward(&c, x, w, dy, dx, dw, bias ? db : NULL, ws);
        ref_convT(&c, xd, wd, bias ? bd : NULL, yd);
        ref_convT_back(&c, xd, wd, rd, dxd, dwd, dbd);
    } else {
        conv2d_forward(&c, x, w, bias ? b : NULL, y, ws);
        conv2d_backward(&c, x, w, dy, dx, dw, bias ? db : NULL, ws);
        ref_conv(&c, xd, wd, bias ? bd : NULL, yd);
        ref_conv_back(&c, xd, wd, rd, dxd, dwd, dbd);
    }
    double e[4] = {relerr_d(y, yd, ny), relerr_d(dx, dxd, nx), relerr_d(dw, dwd, nw),
                   bias ? relerr_d(db, dbd, (size_t)K) : 0};
    double emax = fmax(fmax(e[0], e[1]), fmax(e[2], e[3]));
    if (emax > *worst_ref) *worst_ref = emax;
    CHECKF(emax <= 1e-5, "%s N%d C%d H%d W%d K%d k%dx%d s%d p%d b%d: ref errors y %.2g dx %.2g dw %.2g db %.2g",
           transposed ? "convT" : "conv", N, C, H, W, K, KH, KW, S, P, bias, e[0], e[1], e[2], e[3]);
    if (!bias) {
        for (int k = 0; k < K; k++) CHECK(db[k] == 0.0f); /* untouched */
    }
    if (fd) {
        double f1 = fd_check(conv_obj, &q, xd, nx, dx, 40, 1e-3, rg);
        double f2 = fd_check(conv_obj, &q, wd, nw, dw, 40, 1e-3, rg);
        double f3 = bias ? fd_check(conv_obj, &q, bd, (size_t)K, db, 40, 1e-3, rg) : 0;
        double fm = fmax(f1, fmax(f2, f3));
        if (fm > *worst_fd) *worst_fd = fm;
        CHECKF(fm <= 1e-4, "%s N%d C%d H%d W%d K%d k%dx%d s%d p%d: FD errors dx %.2g dw %.2g db %.2g",
               transposed ? "convT" : "conv", N, C, H, W, K, KH, KW, S, P, f1, f2, f3);
    }
    /* NULL skips: dx only, then dw only, give the same values. */
    float *dx2 = fnew(nx), *dw2 = fzero(nw);
    if (transposed) {
        convT2d_backward(&c, x, w, dy, dx2, NULL, NULL, ws);
        convT2d_backward(&c, x, w, dy, NULL, dw2, NULL, ws);
    } else {
        conv2d_backward(&c, x, w, dy, dx2, NULL, NULL, ws);
        conv2d_backward(&c, x, w, dy, NULL, dw2, NULL, ws);
    }
    CHECK(memcmp(dx, dx2, nx * sizeof(float)) == 0);
    CHECK(memcmp(dw, dw2, nw * sizeof(float)) == 0);
    free(dx2); free(dw2);
    free(x); free(w); free(b); free(dy); free(y); free(ws); free(dx); free(dw); free(db);
    free(xd); free(wd); free(bd); free(rd); free(yd); free(dxd); free(dwd); free(dbd);
}

static void conv_fd_shapes(void) {
    /* N C H W K KH KW S P bias */
    static const int sh[][10] = {
        {2, 3, 7, 6, 4, 3, 3, 1, 1, 1}, {2, 2, 9, 9, 3, 4, 4, 2, 1, 1}, {3, 2, 5, 7, 2, 3, 3, 2, 0, 0},
        {1, 3, 6, 6, 2, 5, 5, 1, 2, 1}, {2, 1, 8, 8, 3, 4, 4, 2, 2, 1}, {2, 3, 7, 7, 1, 7, 7, 1, 0, 0},
        {1, 2, 3, 4, 3, 1, 1, 1, 0, 1}, {2, 2, 6, 5, 3, 3, 3, 2, 2, 1}, {2, 2, 7, 8, 2, 2, 3, 3, 1, 1},
        {2, 2, 2, 3, 2, 4, 4, 1, 2, 0}, {3, 2, 4, 5, 3, 4, 5, 2, 0, 1}, {1, 3, 3, 3, 2, 3, 3, 1, 0, 1},
    };
    rng_t r;
    rng_seed(&r, 11);
    double wr = 0, wf = 0;
    for (size_t i = 0; i < ARRAY_LEN(sh); i++) {
        const int *s = sh[i];
        conv_shape_check(0, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], &r, 1, &wr, &wf);
    }
    printf("# conv2d: %zu shapes, worst ref err %.3g, worst FD err %.3g\n", ARRAY_LEN(sh), wr, wf);
}

static void convT_fd_shapes(void) {
    static const int sh[][10] = {
        {2, 3, 4, 4, 2, 4, 4, 2, 1, 1}, {2, 4, 1, 1, 3, 7, 7, 1, 0, 0}, {1, 2, 3, 5, 3, 3, 3, 1, 1, 1},
        {2, 2, 5, 3, 2, 3, 3, 2, 0, 1}, {3, 2, 4, 4, 2, 4, 4, 2, 2, 0}, {2, 3, 3, 3, 2, 5, 5, 3, 1, 1},
        {1, 1, 2, 2, 1, 2, 3, 2, 0, 1}, {2, 2, 7, 7, 1, 4, 4, 2, 1, 0}, {3, 3, 1, 1, 2, 3, 2, 2, 0, 1},
        {1, 3, 1, 1, 2, 4, 4, 1, 0, 1}, {2, 3, 1, 1, 2, 5, 5, 1, 1, 1},
    };
    rng_t r;
    rng_seed(&r, 12);
    double wr = 0, wf = 0;
    for (size_t i = 0; i < ARRAY_LEN(sh); i++) {
        const int *s = sh[i];
        conv_shape_check(1, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], &r, 1, &wr, &wf);
    }
    printf("# convT2d: %zu shapes, worst ref err %.3g, worst FD err %.3g\n", ARRAY_LEN(sh), wr, wf);
}

/* Random shapes: GEMM conv and convT vs the naive loops (no FD: fast). */
static void conv_random_vs_naive(void) {
    rng_t r;
    rng_seed(&r, 13);
    double wr = 0, wf = 0;
    int done = 0;
    for (int it = 0; it < 60; it++) {
        int tr = it & 1;
        int N = 1 + (int)rng_below(&r, 3), C = 1 + (int)rng_below(&r, 4), K = 1 + (int)rng_below(&r, 4);
        int H = 1 + (int)rng_below(&r, 9), W = 1 + (int)rng_below(&r, 9);
        int KH = 1 + (int)rng_below(&r, 5), KW = 1 + (int)rng_below(&r, 5);
        int S = 1 + (int)rng_below(&r, 3), P = (int)rng_below(&r, 3);
        conv_t c;
        int ok = tr ? convT_init(&c, N, C, H, W, K, KH, KW, S, P) : conv_init(&c, N, C, H, W, K, KH, KW, S, P);
        if (ok != 0) continue; /* impossible shape: init must say so */
        conv_shape_check(tr, N, C, H, W, K, KH, KW, S, P, (int)rng_below(&r, 2), &r, 0, &wr, &wf);
        done++;
    }
    CHECK(done >= 30);
    printf("# random shapes: %d checked vs naive loops, worst err %.3g\n", done, wr);
}

static void conv_init_rejects(void) {
    conv_t c;
    CHECK(conv_init(&c, 1, 1, 3, 3, 1, 5, 5, 1, 0) == -1); /* kernel larger than padded input */
    CHECK(conv_init(&c, 1, 1, 3, 3, 1, 5, 5, 1, 1) == 0 && c.OH == 1 && c.OW == 1);
    CHECK(conv_init(&c, 0, 1, 3, 3, 1, 1, 1, 1, 0) == -1);
    CHECK(conv_init(&c, 1, 1, 3, 3, 1, 1, 1, 0, 0) == -1);
    CHECK(convT_init(&c, 1, 1, 1, 1, 1, 2, 2, 1, 1) == -1); /* OH = 0 */
    CHECK(convT_init(&c, 64, 100, 1, 1, 128, 7, 7, 1, 0) == 0 && c.OH == 7 && c.OW == 7);
    CHECK(convT_init(&c, 64, 128, 7, 7, 64, 4, 4, 2, 1) == 0 && c.OH == 14);
    CHECK(conv_init(&c, 64, 64, 14, 14, 128, 4, 4, 2, 1) == 0 && c.OH == 7);
}

/* Threads must not change results beyond rounding; GEMM is deterministic
 * per thread count in OpenBLAS, so compare 1 thread vs all. */
static void threads_knob(void) {
    nn_set_threads(1);
    CHECK(nn_get_threads() == 1);
    conv_t c;
    conv_init(&c, 8, 16, 14, 14, 32, 4, 4, 2, 1);
    size_t nx = (size_t)8 * 16 * 14 * 14, nw = (size_t)32 * 16 * 16, ny = (size_t)8 * 32 * 7 * 7;
    float *x = fnew(nx), *w = fnew(nw), *y1 = fnew(ny), *y2 = fnew(ny), *ws = fnew(conv2d_ws_floats(&c));
    rng_t r;
    rng_seed(&r, 5);
    frand(&r, x, nx, 1);
    frand(&r, w, nw, 1);
    float *dy = fnew(ny), *dx1 = fnew(nx), *dx2 = fnew(nx), *dw1 = fzero(nw), *dw2 = fzero(nw);
    frand(&r, dy, ny, 1);
    conv2d_forward(&c, x, w, NULL, y1, ws);
    conv2d_backward(&c, x, w, dy, dx1, dw1, NULL, ws);
    nn_set_threads(0);
    CHECK(nn_get_threads() >= 1);
    conv2d_forward(&c, x, w, NULL, y2, ws);
    conv2d_backward(&c, x, w, dy, dx2, dw2, NULL, ws);
    CHECK(relerr(y1, y2, ny) < 1e-5);
    CHECK(relerr(dx1, dx2, nx) < 1e-5);
    CHECK(relerr(dw1, dw2, nw) < 1e-5);
    free(dy); free(dx1); free(dx2); free(dw1); free(dw2);
    free(x); free(w); free(y1); free(y2); free(ws);
}

/* One conv or convT shape run forward (with bias) and backward (dx, dw)
 * into out, which gets y | dx | dw in that order. */
static void conv_run_all(int tr, const conv_t *c, const float *x, const float *w, const float *b, const float *dy,
                         float *out, float *ws) {
    size_t nx = (size_t)c->N * c->C * c->H * c->W, ny = (size_t)c->N * c->K * c->OH * c->OW;
    size_t nw = (size_t)c->K * c->C * c->KH * c->KW;
    float *y = out, *dx = out + ny, *dw = out + ny + nx;
    memset(dw, 0, nw * sizeof(float));
    if (tr) {
        convT2d_forward(c, x, w, b, y, ws);
        convT2d_backward(c, x, w, dy, dx, dw, NULL, ws);
    } else {
        conv2d_forward(c, x, w, b, y, ws);
        conv2d_backward(c, x, w, dy, dx, dw, NULL, ws);
    }
}

/* A random convolution geometry: N in 1..maxN, H and W in 1..maxHW, C and
 * K in 1..5, kernels 1..5, stride 1..3, padding 0..2 (maybe impossible:
 * geom_init says). */
typedef struct { int N, C, K, H, W, KH, KW, S, P; } geom_t;

static geom_t rand_geom(rng_t *r, int maxN, int maxHW) {
    geom_t g;
    g.N = 1 + (int)rng_below(r, (uint32_t)maxN), g.C = 1 + (int)rng_below(r, 5), g.K = 1 + (int)rng_below(r, 5);
    g.H = 1 + (int)rng_below(r, (uint32_t)maxHW), g.W = 1 + (int)rng_below(r, (uint32_t)maxHW);
    g.KH = 1 + (int)rng_below(r, 5), g.KW = 1 + (int)rng_below(r, 5);
    g.S = 1 + (int)rng_below(r, 3), g.P = (int)rng_below(r, 3);
    return g;
}

/* conv_init or convT_init (tr) of g into c: 0, or -1 for an impossible shape. */
static int geom_init(int tr, const geom_t *g, conv_t *c) {
    return tr ? convT_init(c, g->N, g->C, g->H, g->W, g->K, g->KH, g->KW, g->S, g->P)
              : conv_init(c, g->N, g->C, g->H, g->W, g->K, g->KH, g->KW, g->S, g->P);
}

/* The table-driven im2col/col2im (nn_conv.c) give the same bits as the row
 * loops for random shapes (strides, paddings, kernels larger than the
 * input, 1x1 outputs), convolutions and transposed ones, with and without
 * bias, and at 1 and 2 threads: switching to it changed no result. */
static void unfold_paths_bitwise(void) {
    rng_t r;
    rng_seed(&r, 21);
    int done = 0, same = 0;
    for (int it = 0; it < 80; it++) {
        int tr = it & 1, threads = 1 + ((it >> 1) & 1);
        geom_t g = rand_geom(&r, 4, 15);
        const int N = g.N, C = g.C, K = g.K, H = g.H, W = g.W, KH = g.KH, KW = g.KW, S = g.S, P = g.P;
        conv_t c;
        if (geom_init(tr, &g, &c) != 0) continue;
        size_t nx = (size_t)N * C * H * W, ny = (size_t)N * K * c.OH * c.OW, nw = (size_t)K * C * KH * KW;
        size_t nws = tr ? convT2d_ws_floats(&c) : conv2d_ws_floats(&c), nout = ny + nx + nw;
        float *x = fnew(nx), *w = fnew(nw), *b = fnew((size_t)K), *dy = fnew(ny), *ws = fnew(nws + 1);
        float *o1 = fnew(nout), *o2 = fnew(nout);
        frand(&r, x, nx, 1);
        frand(&r, w, nw, 1);
        frand(&r, b, (size_t)K, 1);
        frand(&r, dy, ny, 1);
        const float *bias = rng_below(&r, 2) ? b : NULL;
        nn_set_threads(threads);
        nn_conv_use_rows(1);
        conv_run_all(tr, &c, x, w, bias, dy, o1, ws);
        nn_conv_use_rows(0);
        conv_run_all(tr, &c, x, w, bias, dy, o2, ws);
        int eq = memcmp(o1, o2, nout * sizeof(float)) == 0;
        CHECKF(eq, "%s N%d C%d %dx%d K%d k%dx%d s%d p%d: table path differs", tr ? "convT" : "conv", N, C, H, W, K,
               KH, KW, S, P);
        same += eq;
        done++;
        free(x); free(w); free(b); free(dy); free(ws); free(o1); free(o2);
    }
    nn_set_threads(0);
    CHECK(done >= 40 && same == done);
}

/* Random batch-norm operands from seed: x, dy (n floats), gamma, beta (C). */
static void bn_operands(uint64_t seed, size_t n, int C, float **x, float **dy, float **g, float **be) {
    rng_t r;
    rng_seed(&r, seed);
    *x = fnew(n), *dy = fnew(n), *g = fnew((size_t)C), *be = fnew((size_t)C);
    frand(&r, *x, n, 2);
    frand(&r, *dy, n, 1);
    frand(&r, *g, (size_t)C, 1);
    frand(&r, *be, (size_t)C, 1);
}

/* Copy the planes (L floats) of an (N, C, L) tensor between layouts. */
static void lay_copy(const float *src, nn_lay_t ls, float *dst, nn_lay_t ld, int N, int C, size_t L) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            memcpy(dst + nn_lay_at(ld, n, c), src + nn_lay_at(ls, n, c), L * sizeof(float));
}

/* Forward into y, then backward into dx and dw (+=), of the chunked
 * conv (tr: transposed) with the given layouts. */
static void chunks_run(int tr, const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w,
                       const float *dy, nn_lay_t yl, float *y, float *dx, float *dw, float *ws) {
    if (tr) {
        convT2d_forward_chunks(c, chunk, x, xl, w, y, yl, ws);
        convT2d_backward_chunks(c, chunk, x, xl, w, dy, yl, dx, dw, ws);
    } else {
        conv2d_forward_chunks(c, chunk, x, xl, w, y, yl, ws);
        conv2d_backward_chunks(c, chunk, x, xl, w, dy, yl, dx, dw, ws);
    }
}

/* The chunked calls (what the model runs) give the same bits whether x
 * and y lie NCHW or channel-major (room for more samples than the batch,
 * the rest NaN, as a view of a larger buffer), for random shapes including
 * both dense cases, chunk sizes and 1 or 2 threads; and they agree with
 * the whole-batch calls to a rounding (OpenBLAS may pick other kernels
 * for other GEMM widths; dw also sums in chunks). */
static void chunks_layouts_bitwise(void) {
    rng_t r;
    rng_seed(&r, 77);
    int done = 0, dense = 0, bad = 0;
    for (int it = 0; it < 120; it++) {
        int tr = it & 1, threads = 1 + ((it >> 1) & 1);
        geom_t g = rand_geom(&r, 7, 9);
        if (it % 5 == 2) { /* dense: whole-input kernel, or a 1x1 input of a convT */
            if (tr) g.H = g.W = 1, g.P = 0;
            else g.KH = g.H, g.KW = g.W, g.P = 0;
        }
        const int N = g.N, C = g.C, K = g.K, H = g.H, W = g.W, KH = g.KH, KW = g.KW, S = g.S, P = g.P;
        conv_t c;
        if (geom_init(tr, &g, &c) != 0) continue;
        int chunk = 1 + (int)rng_below(&r, (uint32_t)N);
        const size_t HW = (size_t)H * W, L = (size_t)c.OH * c.OW;
        const size_t nx = (size_t)N * C * HW, ny = (size_t)N * K * L, nw = (size_t)K * C * KH * KW;
        const int Nb = N + 1 + (int)rng_below(&r, 3); /* channel-major room */
        const size_t nxb = (size_t)Nb * C * HW, nyb = (size_t)Nb * K * L;
        conv_t one = c;
        one.N = chunk;
        size_t nws = tr ? convT2d_ws_floats(&one) : conv2d_ws_floats(&one);
        float *x = fnew(nx), *w = fnew(nw), *dy = fnew(ny), *ws = fnew(nws * 2 + 1);
        frand(&r, x, nx, 1);
        frand(&r, w, nw, 1);
        frand(&r, dy, ny, 1);
        nn_lay_t xn = nn_lay_nchw(C, HW), yn = nn_lay_nchw(K, L);
        nn_lay_t xm = nn_lay_cm(Nb, HW), ym = nn_lay_cm(Nb, L);
        /* channel-major copies, at sample offset 1 of the room (a view) */
        float *xb = fnew(nxb), *dyb = fnew(nyb), *yb = fnew(nyb), *dxb = fnew(nxb);
        lay_copy(x, xn, xb + HW, xm, N, C, HW);
        lay_copy(dy, yn, dyb + L, ym, N, K, L);
        float *y1 = fnew(ny), *dx1 = fnew(nx), *dw1 = fzero(nw), *y2 = fnew(ny), *dx2 = fnew(nx), *dw2 = fzero(nw);
        float *o0 = fnew(ny + nx + nw), *wsb = fnew(tr ? convT2d_ws_floats(&c) : conv2d_ws_floats(&c));
        const float *y0 = o0, *dx0 = o0 + ny, *dw0 = o0 + ny + nx;
        nn_set_threads(threads);
        chunks_run(tr, &c, chunk, x, xn, w, dy, yn, y1, dx1, dw1, ws);
        chunks_run(tr, &c, chunk, xb + HW, xm, w, dyb + L, ym, yb + L, dxb + HW, dw2, ws);
        conv_run_all(tr, &c, x, w, NULL, dy, o0, wsb);
        lay_copy(yb + L, ym, y2, yn, N, K, L);
        lay_copy(dxb + HW, xm, dx2, xn, N, C, HW);
        int same = !memcmp(y1, y2, ny * sizeof(float)) && !memcmp(dx1, dx2, nx * sizeof(float)) &&
                   !memcmp(dw1, dw2, nw * sizeof(float));
        double e = 0, ey = 0;
        for (size_t i = 0; i < nw; i++) e = fmax(e, fabs((double)dw1[i] - dw0[i]) / (1.0 + fabs((double)dw0[i])));
        for (size_t i = 0; i < ny; i++) ey = fmax(ey, fabs((double)y1[i] - y0[i]) / (1.0 + fabs((double)y0[i])));
        for (size_t i = 0; i < nx; i++) ey = fmax(ey, fabs((double)dx1[i] - dx0[i]) / (1.0 + fabs((double)dx0[i])));
        int whole = ey < 1e-5;
        /* the room's unused samples stay untouched (NaN) */
        int room = isnan(yb[0]) && isnan(dxb[0]) && (Nb == N + 1 || isnan(yb[(size_t)(N + 1) * L]));
        int ok = same && whole && e < 1e-5 && room;
        CHECKF(ok, "%s N%d C%d %dx%d K%d k%dx%d s%d p%d chunk %d threads %d: layouts %s, whole-batch %s, dw %.2g, room %s",
               tr ? "convT" : "conv", N, C, H, W, K, KH, KW, S, P, chunk, threads, same ? "same" : "DIFFER",
               whole ? "same" : "DIFFER", e, room ? "kept" : "WRITTEN");
        bad += !ok;
        done++;
        dense += tr ? (H == 1 && W == 1 && P == 0) : (KH == H && KW == W && P == 0);
        free(x); free(w); free(dy); free(ws); free(xb); free(dyb); free(yb); free(dxb);
        free(y1); free(dx1); free(dw1); free(y2); free(dx2); free(dw2); free(o0); free(wsb);
    }
    nn_set_threads(0);
    CHECKF(done >= 60 && dense >= 10 && bad == 0, "%d shapes, %d dense, %d bad", done, dense, bad);
}

/* Batch norm with channel-major planes (bn_t xl), or with x and y in
 * different layouts (yl), gives the same bits as NCHW, forward (with
 * each activation) and backward. */
static void bn_layout_bitwise(void) {
    const int N = 5, C = 7, HW = 13, Nb = 8;
    const size_t n = (size_t)N * C * HW, nb = (size_t)Nb * C * HW;
    float *x, *dy, *g, *be;
    bn_operands(41, n, C, &x, &dy, &g, &be);
    nn_lay_t ln = nn_lay_nchw(C, HW), lm = nn_lay_cm(Nb, HW);
    float *xb = fnew(nb), *dyb = fnew(nb), *yb = fnew(nb), *dxb = fnew(nb);
    lay_copy(x, ln, xb + HW, lm, N, C, HW);
    lay_copy(dy, ln, dyb + HW, lm, N, C, HW);
    for (int act = BN_ACT_NONE; act <= BN_ACT_LRELU; act++) {
        bn_t a = {N, C, HW, 1e-5f, 0.1f, act, 0.2f, {0, 0}, {0, 0}}, b = a;
        b.xl = lm;
        float *y1 = fnew(n), *dx1 = fnew(n), *y2 = fnew(n), *dx2 = fnew(n);
        float m1[7], s1[7], m2[7], s2[7], rm1[7] = {0}, rv1[7] = {1, 1, 1, 1, 1, 1, 1}, rm2[7] = {0},
              rv2[7] = {1, 1, 1, 1, 1, 1, 1}, dg1[7] = {0}, db1[7] = {0}, dg2[7] = {0}, db2[7] = {0};
        bn_forward_train(&a, x, g, be, y1, m1, s1, rm1, rv1);
        bn_backward_act(&a, x, y1, g, m1, s1, dy, dx1, dg1, db1);
        bn_forward_train(&b, xb + HW, g, be, yb + HW, m2, s2, rm2, rv2);
        bn_backward_act(&b, xb + HW, yb + HW, g, m2, s2, dyb + HW, dxb + HW, dg2, db2);
        lay_copy(yb + HW, lm, y2, ln, N, C, HW);
        lay_copy(dxb + HW, lm, dx2, ln, N, C, HW);
        CHECKF(!memcmp(y1, y2, n * sizeof(float)) && !memcmp(dx1, dx2, n * sizeof(float)) &&
                   !memcmp(m1, m2, sizeof m1) && !memcmp(s1, s2, sizeof s1) && !memcmp(rm1, rm2, sizeof rm1) &&
                   !memcmp(rv1, rv2, sizeof rv1) && !memcmp(dg1, dg2, sizeof dg1) && !memcmp(db1, db2, sizeof db1),
               "act %d: channel-major batch norm differs", act);
        CHECK(isnan(yb[0]) && isnan(dxb[0]) && isnan(yb[(size_t)(N + 1) * HW]));
        /* x and dx NCHW, y and dy channel-major: the layer changes layout */
        bn_t c = a;
        c.yl = lm;
        float m3[7], s3[7], rm3[7] = {0}, rv3[7] = {1, 1, 1, 1, 1, 1, 1}, dg3[7] = {0}, db3[7] = {0};
        float *dx3 = fnew(n);
        bn_forward_train(&c, x, g, be, yb + HW, m3, s3, rm3, rv3);
        bn_backward_act(&c, x, yb + HW, g, m3, s3, dyb + HW, dx3, dg3, db3);
        lay_copy(yb + HW, lm, y2, ln, N, C, HW);
        CHECKF(!memcmp(y1, y2, n * sizeof(float)) && !memcmp(dx1, dx3, n * sizeof(float)) &&
                   !memcmp(m1, m3, sizeof m1) && !memcmp(dg1, dg3, sizeof dg1) && !memcmp(db1, db3, sizeof db1),
               "act %d: batch norm from NCHW to channel-major differs", act);
        free(y1); free(dx1); free(y2); free(dx2); free(dx3);
    }
    free(x); free(dy); free(g); free(be); free(xb); free(dyb); free(yb); free(dxb);
}

/* The passes split over the pool (batch norm by channels; activations,
 * Adam and EMA by index ranges) give the same bits at 1, 2 and 3
 * threads, on shapes large enough to be split. */
static void layers_thread_bits(void) {
    const int N = 6, C = 13, HW = 29 * 31;
    const size_t n = (size_t)N * C * HW;
    float *x, *dy, *g, *be;
    bn_operands(31, n, C, &x, &dy, &g, &be);
    /* per run: y, dx, act fwd/bwd (4 kinds), adam p/m/v, ema | mean, rstd, rm, rv, dgamma, dbeta */
    const size_t big = 10 * n, small = 6 * (size_t)C;
    float *ref = fnew(big + small), *got = fnew(big + small);
    for (int t = 1; t <= 3; t++) {
        float *o = t == 1 ? ref : got;
        memset(o, 0, (big + small) * sizeof(float));
        float *y = o, *dx = o + n, *a = o + 2 * n, *p = o + 6 * n, *m = o + 7 * n, *v = o + 8 * n, *e = o + 9 * n;
        float *mean = o + big, *rstd = mean + C, *rm = rstd + C, *rv = rm + C, *dg = rv + C, *db = dg + C;
        nn_set_threads(t);
        bn_t bn = {N, C, HW, 1e-5f, 0.1f, BN_ACT_NONE, 0.0f, {0, 0}, {0, 0}};
        for (int c = 0; c < C; c++) rv[c] = 1.0f;
        bn_forward_train(&bn, x, g, be, y, mean, rstd, rm, rv);
        bn_backward(&bn, x, g, mean, rstd, dy, dx, dg, db);
        lrelu_forward(n, 0.2f, y, a);
        lrelu_backward(n, 0.2f, a, dy, a + n);
        tanh_forward(n, x, a + 2 * n);
        sigmoid_backward(n, a + 2 * n, dy, a + 3 * n);
        memcpy(p, x, n * sizeof(float));
        adam_t ad = {2e-4f, 0.5f, 0.999f, 1e-8f, 0};
        for (int s = 0; s < 2; s++) {
            adam_begin(&ad);
            adam_update(&ad, n, p, dy, m, v);
        }
        ema_update(n, 0.9f, e, p);
        if (t > 1) CHECKF(memcmp(ref, got, (big + small) * sizeof(float)) == 0, "%d threads differ from 1", t);
    }
    nn_set_threads(0);
    free(x); free(dy); free(g); free(be); free(ref); free(got);
}

/* nn_sgemm: with 2 threads OpenBLAS stays single-threaded (its spinning
 * workers would compete with the pool) and the split GEMM equals one
 * cblas_sgemm call for every transpose combination, split by columns
 * (N >= M) and by rows (M > N), with beta 0 and 1. */
static void sgemm_split(void) {
    nn_set_threads(2);
    CHECK(nn_get_threads() == 2);
    CHECK(openblas_get_num_threads() == 1);
    rng_t r;
    rng_seed(&r, 9);
    const int shapes[2][3] = {{37, 91, 41}, {93, 35, 47}};
    for (int sh = 0; sh < 2; sh++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta = 0; beta < 2; beta++) {
                    int M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
                    float *A = fnew((size_t)M * K), *B = fnew((size_t)K * N);
                    float *C1 = fnew((size_t)M * N), *C2 = fnew((size_t)M * N);
                    frand(&r, A, (size_t)M * K, 1);
                    frand(&r, B, (size_t)K * N, 1);
                    frand(&r, C1, (size_t)M * N, 1);
                    memcpy(C2, C1, (size_t)M * N * sizeof(float));
                    int lda = ta ? M : K, ldb = tb ? K : N;
                    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                                K, 1.0f, A, lda, B, ldb, (float)beta, C1, N);
                    nn_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C2, N);
                    CHECK(relerr(C1, C2, (size_t)M * N) < 1e-6);
                    free(A); free(B); free(C1); free(C2);
                }
    nn_set_threads(0);
}

/* After fork() the child has no helper threads; convolutions must still
 * run (on the calling thread) instead of waiting for helpers forever. */
static void par_after_fork(void) {
    nn_set_threads(0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        conv_t c;
        conv_init(&c, 4, 3, 9, 9, 5, 4, 4, 2, 1);
        size_t nx = 4 * 3 * 81, nw = 5 * 3 * 16, ny = 4 * 5 * 16;
        float *x = fzero(nx), *w = fzero(nw), *y = fnew(ny), *ws = fnew(conv2d_ws_floats(&c));
        alarm(20);
        conv2d_forward(&c, x, w, NULL, y, ws);
        int ok = y[0] == 0.0f;
        free(x); free(w); free(y); free(ws);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}

/* ---- the pool under stress (nn_par.c) ------------------------------------- */

#define PS_SLOTS 8

/* One part's record, on its own cache line: parts write only their slot. */
typedef struct {
    _Alignas(64) long runs; /* times this part ran in the round */
    long last;              /* the job number it last ran for */
    int nparts;             /* the part count it was given */
    int helper;             /* it ran on a pool helper (nn_par_is_helper) */
    pthread_t who;          /* the thread that ran it */
} ps_slot;

typedef struct {
    ps_slot s[PS_SLOTS];
    long job;          /* number of the job being run (set by the caller) */
    int busy_part;     /* part that busy-waits busy_ns first, -1 none */
    long busy_ns;
    atomic_int *entered, *release; /* contention case: part 0 hands over */
} ps_ctx;

static void ps_busy(long ns) {
    double t0 = gb_now();
    while (gb_now() - t0 < ns * 1e-9) {
    }
}

static void ps_sleep_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static void ps_part(void *vp, int part, int nparts) {
    ps_ctx *q = vp;
    if (q->entered && part == 0) { /* hold the pool until the other thread's job is done */
        atomic_store(q->entered, 1);
        double t0 = gb_now();
        while (!atomic_load(q->release) && gb_now() - t0 < 5.0) ps_sleep_us(50);
    }
    if (part == q->busy_part) ps_busy(q->busy_ns);
    if (part < 0 || part >= PS_SLOTS) return; /* the caller's checks see the missing slot */
    ps_slot *s = &q->s[part];
    s->nparts = nparts;
    s->helper = nn_par_is_helper();
    s->who = pthread_self();
    s->last = q->job;
    s->runs++;
}

/* Run job number `job` (the round's jobs are numbered 1, 2, ...) at
 * `threads` threads; 0 when every part 0..threads-1 ran exactly once for
 * it with nparts == threads and no other slot ran, else 1 (the first bad
 * job of a round is printed by the caller's CHECKF). */
static int ps_job(ps_ctx *q, long job, int threads, int busy_part, long busy_ns) {
    q->job = job;
    q->busy_part = busy_part;
    q->busy_ns = busy_ns;
    nn_par_run(ps_part, q);
    int bad = 0;
    for (int p = 0; p < PS_SLOTS; p++) {
        const ps_slot *s = &q->s[p];
        if (p < threads) bad |= s->runs != job || s->last != job || s->nparts != threads;
        else bad |= s->runs != 0;
    }
    return bad;
}

typedef struct {
    ps_ctx q;
    int threads, jobs, bad;
    atomic_int *entered, *release; /* contention case: wait for entered, set release */
    int all_here;                  /* contention case: every part ran on this thread */
} ps_thread_arg;

static void *ps_thread(void *vp) {
    ps_thread_arg *a = vp;
    if (a->entered) {
        while (!atomic_load(a->entered)) ps_sleep_us(20);
        a->bad |= ps_job(&a->q, 1, a->threads, -1, 0);
        a->all_here = 1;
        for (int p = 0; p < a->threads; p++)
            a->all_here &= pthread_equal(a->q.s[p].who, pthread_self()) && !a->q.s[p].helper;
        atomic_store(a->release, 1);
        return NULL;
    }
    for (long j = 1; j <= a->jobs; j++) a->bad |= ps_job(&a->q, j, a->threads, j % 7 == 3 ? 1 : -1, 20000);
    return NULL;
}

/* Many thousands of nn_par_run jobs, each part writing only its own slot,
 * every job checked for each part having run exactly once with the right
 * part count: immediate jobs back to back (helpers and caller spinning),
 * jobs after a 200 us sleep (longer than PAR_SPIN_NS, so helpers go to
 * sleep on par_go and must be woken), jobs whose part 1 busy-waits 100 us
 * (the caller ends its spin and sleeps on par_done) or part 0 does (the
 * helpers finish first), at 2, 3, 1, 4, 2 and 4 threads again (helpers left
 * out of jobs, then taken back). Then two threads calling nn_par_run at
 * once: while one holds the pool, the other runs all parts itself; and
 * both free-running. A lost wake-up hangs: alarm() kills the program. */
static void par_stress(void) {
    alarm(60);
    static ps_ctx q;
    const int rounds[] = {2, 3, 1, 4, 2, 4};
    rng_t r;
    rng_seed(&r, 77);
    long total = 0;
    for (size_t ri = 0; ri < sizeof rounds / sizeof rounds[0]; ri++) {
        int t = rounds[ri];
        nn_set_threads(t);
        CHECK(nn_par_parts() == t);
        memset(&q, 0, sizeof q);
        long bad_job = 0, nbad = 0;
        double t0 = gb_now();
        const long jobs = 1500;
        for (long j = 1; j <= jobs; j++) {
            /* kinds: 0 sleep, then immediate; 1, 2 part 1 / part 0 busy
             * 100 us; 3 a random part busy 5 us; 4 sleep, then two
             * immediate jobs; 5 sleep, then part 1 busy 100 us (a woken
             * helper and a sleeping caller); 6..15 immediate */
            int kind = (int)rng_below(&r, 16), busy = -1;
            long ns = 0;
            if (kind == 0 || kind == 4 || kind == 5) ps_sleep_us(200);
            if (kind == 1 || kind == 5) busy = 1, ns = 100000;
            else if (kind == 2) busy = 0, ns = 100000;
            else if (kind == 3) busy = (int)rng_below(&r, (uint64_t)t), ns = 5000;
            if (ps_job(&q, j, t, busy, ns)) nbad++, bad_job = bad_job ? bad_job : j;
            if (kind == 4 && ps_job(&q, ++j, t, -1, 0)) nbad++, bad_job = bad_job ? bad_job : j;
        }
        CHECKF(nbad == 0, "%d threads: %ld of %ld jobs wrong, first job %ld", t, nbad, jobs, bad_job);
        printf("# par_stress %d threads: %ld jobs %.2f s\n", t, jobs, gb_now() - t0);
        fflush(stdout);
        total += jobs;
    }

    /* One thread holds the pool (its part 0 waits) while another calls
     * nn_par_run: the second must run every part itself, the first's
     * helpers meanwhile finish their parts of the first job. */
    nn_set_threads(3);
    atomic_int entered = 0, release = 0;
    static ps_thread_arg a;
    memset(&a, 0, sizeof a);
    a.threads = 3;
    a.entered = &entered;
    a.release = &release;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, ps_thread, &a) == 0);
    memset(&q, 0, sizeof q);
    q.entered = &entered;
    q.release = &release;
    CHECK(ps_job(&q, 1, 3, -1, 0) == 0);
    q.entered = q.release = NULL;
    pthread_join(th, NULL);
    CHECK(a.bad == 0);
    CHECKF(a.all_here, "the second caller's parts ran on helpers");
    int helped = 0;
    for (int p = 1; p < 3; p++) helped += q.s[p].helper;
    CHECKF(helped == 2, "the pool holder's parts 1, 2 ran on %d helpers", helped);

    /* Both free-running: whichever finds the pool busy runs alone. */
    for (int t = 2; t <= 3; t++) {
        nn_set_threads(t);
        memset(&a, 0, sizeof a);
        memset(&q, 0, sizeof q);
        a.threads = t;
        a.jobs = 2000;
        CHECK(pthread_create(&th, NULL, ps_thread, &a) == 0);
        int bad = 0;
        double t0 = gb_now();
        for (long j = 1; j <= 2000; j++) bad |= ps_job(&q, j, t, j % 5 == 1 ? 1 : -1, 20000);
        pthread_join(th, NULL);
        CHECKF(bad == 0 && a.bad == 0, "%d threads, two callers: jobs wrong (main %d, other %d)", t, bad, a.bad);
        printf("# par_stress %d threads, two callers: 2 x 2000 jobs %.2f s\n", t, gb_now() - t0);
        total += 4000;
    }
    alarm(0);
    nn_set_threads(0);
    printf("# par_stress %ld jobs\n", total);
}

/* ---- linear, batch norm, embedding, losses: reference + FD ------------------ */

typedef struct { int N, IN, OUT; double *x, *w, *b, *r, *y; } lin_ctx;

static double lin_obj(void *vp) {
    lin_ctx *q = vp;
    double s = 0;
    for (int n = 0; n < q->N; n++)
        for (int o = 0; o < q->OUT; o++) {
            double v = q->b[o];
            for (int i = 0; i < q->IN; i++) v += q->x[n * q->IN + i] * q->w[o * q->IN + i];
            s += v * q->r[n * q->OUT + o];
        }
    return s;
}

static void linear_fd(void) {
    rng_t r;
    rng_seed(&r, 21);
    const int N = 5, IN = 7, OUT = 3;
    float *x = fnew(N * IN), *w = fnew(OUT * IN), *b = fnew(OUT), *dy = fnew(N * OUT), *y = fnew(N * OUT);
    float *dx = fnew(N * IN), *dw = fzero(OUT * IN), *db = fzero(OUT);
    double *xd = dnew(N * IN), *wd = dnew(OUT * IN), *bd = dnew(OUT), *rd = dnew(N * OUT);
    frand(&r, x, N * IN, 1); frand(&r, w, OUT * IN, 1); frand(&r, b, OUT, 1); frand(&r, dy, N * OUT, 1);
    f2d(x, xd, N * IN); f2d(w, wd, OUT * IN); f2d(b, bd, OUT); f2d(dy, rd, N * OUT);
    linear_forward(N, IN, OUT, x, w, b, y);
    linear_backward(N, IN, OUT, x, w, dy, dx, dw, db);
    lin_ctx q = {N, IN, OUT, xd, wd, bd, rd, NULL};
    /* Forward vs reference: sum(y * r) equals the objective. */
    double sy = 0;
    for (int i = 0; i < N * OUT; i++) sy += (double)y[i] * rd[i];
    CHECK(fabs(sy - lin_obj(&q)) < 1e-5 * fmax(1, fabs(sy)));
    double e1 = fd_check(lin_obj, &q, xd, N * IN, dx, 100, 1e-3, &r);
    double e2 = fd_check(lin_obj, &q, wd, OUT * IN, dw, 100, 1e-3, &r);
    double e3 = fd_check(lin_obj, &q, bd, OUT, db, 100, 1e-3, &r);
    printf("# FD linear: dx %.3g dw %.3g db %.3g\n", e1, e2, e3);
    CHECK(e1 < 1e-4 && e2 < 1e-4 && e3 < 1e-4);
    /* No bias: y = x w^T exactly like bias 0. */
    float *y2 = fnew(N * OUT), *zb = fzero(OUT);
    linear_forward(N, IN, OUT, x, w, NULL, y2);
    linear_forward(N, IN, OUT, x, w, zb, y);
    CHECK(relerr(y2, y, N * OUT) < 1e-6);
    free(y2); free(zb);
    free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db);
    free(xd); free(wd); free(bd); free(rd);
}

typedef struct { int N, C, HW; double *x, *g, *b, *r, *y; } bn_ctx;

static double bn_obj(void *vp) {
    bn_ctx *q = vp;
    ref_bn_train(q->N, q->C, q->HW, 1e-5, q->x, q->g, q->b, q->y);
    return dot(q->y, q->r, (size_t)q->N * q->C * q->HW);
}

static void bn_fd(void) {
    rng_t r;
    rng_seed(&r, 22);
    static const int shapes[][3] = {{4, 3, 5}, {2, 2, 1}, {3, 4, 9}, {16, 2, 49}};
    for (size_t s = 0; s < ARRAY_LEN(shapes); s++) {
        int N = shapes[s][0], C = shapes[s][1], HW = shapes[s][2];
        size_t n = (size_t)N * C * HW;
        bn_t b = {N, C, HW, 1e-5f, 0.1f, BN_ACT_NONE, 0.0f, {0, 0}, {0, 0}};
        float *x = fnew(n), *g = fnew(C), *be = fnew(C), *dy = fnew(n), *y = fnew(n), *dx = fnew(n);
        float *dg = fzero(C), *db = fzero(C), *mean = fnew(C), *rstd = fnew(C);
        double *xd = dnew(n), *gd = dnew(C), *bd = dnew(C), *rd = dnew(n), *yd = dnew(n);
        frand(&r, x, n, 2);
        for (size_t i = 0; i < n; i++) x[i] += 0.5f; /* non-zero mean */
        frand(&r, g, C, 1); frand(&r, be, C, 1); frand(&r, dy, n, 1);
        f2d(x, xd, n); f2d(g, gd, C); f2d(be, bd, C); f2d(dy, rd, n);
        bn_forward_train(&b, x, g, be, y, mean, rstd, NULL, NULL);
        bn_backward(&b, x, g, mean, rstd, dy, dx, dg, db);
        bn_ctx q = {N, C, HW, xd, gd, bd, rd, yd};
        bn_obj(&q);
        double ey = relerr_d(y, yd, n);
        double e1 = fd_check(bn_obj, &q, xd, n, dx, 60, 1e-4, &r);
        double e2 = fd_check(bn_obj, &q, gd, C, dg, 60, 1e-4, &r);
        double e3 = fd_check(bn_obj, &q, bd, C, db, 60, 1e-4, &r);
        printf("# FD batchnorm N%d C%d HW%d: y %.3g dx %.3g dgamma %.3g dbeta %.3g\n", N, C, HW, ey, e1, e2, e3);
        CHECK(ey < 1e-5);
        /* N*HW = 2 makes dx tiny and ill-conditioned; float rounding dominates. */
        CHECK(e1 < 2e-3 && e2 < 1e-3 && e3 < 1e-3);
        /* dgamma/dbeta accumulate; dx is overwritten. */
        float *dx2 = fnew(n);
        bn_backward(&b, x, g, mean, rstd, dy, dx2, dg, db);
        CHECK(memcmp(dx, dx2, n * sizeof(float)) == 0);
        float *dg1 = fzero(C), *db1 = fzero(C);
        bn_backward(&b, x, g, mean, rstd, dy, NULL, dg1, db1);
        for (int c = 0; c < C; c++) CHECK(fabsf(dg[c] - 2 * dg1[c]) <= 1e-5f * (1 + fabsf(dg[c])));
        for (int c = 0; c < C; c++) CHECK(fabsf(db[c] - 2 * db1[c]) <= 1e-5f * (1 + fabsf(db[c])));
        free(dx2); free(dg1); free(db1);
        free(x); free(g); free(be); free(dy); free(y); free(dx); free(dg); free(db); free(mean); free(rstd);
        free(xd); free(gd); free(bd); free(rd); free(yd);
    }
}

/* Mean far from zero, odd row length (vector lanes + remainder): the
 * statistics must stay accurate (variance without cancellation). */
static void bn_offset_mean(void) {
    enum { N = 5, C = 3, HW = 37 };
    size_t n = (size_t)N * C * HW;
    rng_t r;
    rng_seed(&r, 43);
    float *x = fnew(n), *y = fnew(n), g[C] = {1, 0.5f, 2}, b[C] = {0, 1, -1}, mean[C], rstd[C], rm[C] = {0}, rv[C] = {1, 1, 1};
    double *xd = dnew(n), *yd = dnew(n), gd[C], bd[C];
    frand(&r, x, n, 1);
    for (size_t i = 0; i < n; i++) x[i] += 300.0f;
    f2d(x, xd, n);
    f2d(g, gd, C);
    f2d(b, bd, C);
    bn_t bn = {N, C, HW, 1e-5f, 0.1f, BN_ACT_NONE, 0.0f, {0, 0}, {0, 0}};
    bn_forward_train(&bn, x, g, b, y, mean, rstd, rm, rv);
    ref_bn_train(N, C, HW, 1e-5, xd, gd, bd, yd);
    double e = relerr_d(y, yd, n);
    printf("# batchnorm mean 300: y err %.3g\n", e);
    CHECK(e < 1e-5);
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int k = 0; k < N; k++)
            for (int i = 0; i < HW; i++) s += xd[((size_t)k * C + c) * HW + i];
        double mu = s / (N * HW);
        for (int k = 0; k < N; k++)
            for (int i = 0; i < HW; i++) ss += pow(xd[((size_t)k * C + c) * HW + i] - mu, 2);
        double unb = ss / (N * HW - 1);
        CHECKF(fabs(rv[c] - (0.9 + 0.1 * unb)) < 1e-5, "running_var[%d] %g want %g", c, rv[c], 0.9 + 0.1 * unb);
        CHECK(fabs(rm[c] - 0.1 * mu) < 1e-4);
    }
    free(x); free(y); free(xd); free(yd);
}

static void bn_running_unbiased(void) {
    /* 2 values per channel {1, 3}: mean 2, biased var 1, unbiased var 2. */
    bn_t b = {2, 1, 1, 1e-5f, 0.1f, BN_ACT_NONE, 0.0f, {0, 0}, {0, 0}};
    float x[2] = {1, 3}, g = 1, be = 0, y[2], mean, rstd, rm = 0, rv = 1;
    bn_forward_train(&b, x, &g, &be, y, &mean, &rstd, &rm, &rv);
    CHECK(fabsf(mean - 2) < 1e-6f);
    CHECK(fabsf(rstd - 1 / sqrtf(1 + 1e-5f)) < 1e-6f);
    CHECK(fabsf(rm - 0.2f) < 1e-6f);
    CHECK(fabsf(rv - (0.9f + 0.1f * 2)) < 1e-6f);
    CHECK(fabsf(y[0] + 1) < 1e-4f && fabsf(y[1] - 1) < 1e-4f);
}

/* BN with a fused activation (bn_t.act) gives the bits of BN followed by
 * the separate relu/lrelu passes, forward (train, train with recorded
 * statistics, eval) and backward, at 1 and 2 threads; rows of odd length
 * cover the vector lanes and the remainder. */
static void bn_act_fused_bitwise(void) {
    enum { N = 3, C = 5, HW = 45 };
    const size_t n = (size_t)N * C * HW;
    rng_t r;
    rng_seed(&r, 47);
    float *x = fnew(n), *dy = fnew(n), *g = fnew(C), *be = fnew(C), *rv = fnew(C), *rm = fnew(C);
    float *y1 = fnew(n), *y2 = fnew(n), *t = fnew(n), *dx1 = fnew(n), *dx2 = fnew(n);
    float m1[C], s1[C], m2[C], s2[C], dg1[C], db1[C], dg2[C], db2[C];
    double bm1[C], bv1[C], bm2[C], bv2[C];
    frand(&r, x, n, 2);
    frand(&r, dy, n, 1);
    frand(&r, g, C, 1);
    frand(&r, be, C, 1);
    frand(&r, rm, C, 1);
    for (int c = 0; c < C; c++) rv[c] = 0.5f + (float)c;
    for (int threads = 1; threads <= 2; threads++) {
        nn_set_threads(threads);
        for (int act = BN_ACT_RELU; act <= BN_ACT_LRELU; act++) {
            const float alpha = act == BN_ACT_LRELU ? 0.2f : 0.0f;
            bn_t plain = {N, C, HW, 1e-5f, 0.1f, BN_ACT_NONE, 0.0f, {0, 0}, {0, 0}},
                 fused = {N, C, HW, 1e-5f, 0.1f, act, alpha, {0, 0}, {0, 0}};
            for (int mode = 0; mode < 3; mode++) {
                if (mode == 0) {
                    bn_forward_train_stats(&plain, x, g, be, y1, m1, s1, bm1, bv1);
                    bn_forward_train_stats(&fused, x, g, be, y2, m2, s2, bm2, bv2);
                    CHECK(memcmp(bm1, bm2, sizeof bm1) == 0 && memcmp(bv1, bv2, sizeof bv1) == 0);
                } else if (mode == 1) {
                    bn_forward_train(&plain, x, g, be, y1, m1, s1, NULL, NULL);
                    bn_forward_train(&fused, x, g, be, y2, m2, s2, NULL, NULL);
                } else {
                    bn_forward_eval(&plain, x, g, be, rm, rv, y1);
                    bn_forward_eval(&fused, x, g, be, rm, rv, y2);
                }
                if (act == BN_ACT_RELU) relu_forward(n, y1, y1);
                else lrelu_forward(n, alpha, y1, y1);
                CHECKF(memcmp(y1, y2, n * sizeof(float)) == 0, "act %d mode %d threads %d: forward", act, mode,
                       threads);
            }
            /* y1 == y2: the activation's output from the training forward
             * (mode 1 left m1/s1 == m2/s2) */
            bn_forward_train(&plain, x, g, be, y1, m1, s1, NULL, NULL);
            if (act == BN_ACT_RELU) relu_forward(n, y1, y1);
            else lrelu_forward(n, alpha, y1, y1);
            memset(dg1, 0, sizeof dg1); memset(db1, 0, sizeof db1);
            memset(dg2, 0, sizeof dg2); memset(db2, 0, sizeof db2);
            if (act == BN_ACT_RELU) relu_backward(n, y1, dy, t);
            else lrelu_backward(n, alpha, y1, dy, t);
            bn_backward(&plain, x, g, m1, s1, t, dx1, dg1, db1);
            bn_backward_act(&fused, x, y1, g, m1, s1, dy, dx2, dg2, db2);
            CHECKF(memcmp(dx1, dx2, n * sizeof(float)) == 0, "act %d threads %d: dx", act, threads);
            CHECK(memcmp(dg1, dg2, sizeof dg1) == 0 && memcmp(db1, db2, sizeof db1) == 0);
            memcpy(dx2, dy, n * sizeof(float)); /* in place: dx == dy */
            bn_backward_act(&fused, x, y1, g, m1, s1, dx2, dx2, dg2, db2);
            CHECK(memcmp(dx1, dx2, n * sizeof(float)) == 0);
        }
    }
    nn_set_threads(0);
    free(x); free(dy); free(g); free(be); free(rv); free(rm); free(y1); free(y2); free(t); free(dx1); free(dx2);
}

typedef struct { int N, D; const int32_t *lab; double *t, *r; } emb_ctx;

static double emb_obj(void *vp) {
    emb_ctx *q = vp;
    double s = 0;
    for (int n = 0; n < q->N; n++)
        for (int d = 0; d < q->D; d++) s += q->t[q->lab[n] * q->D + d] * q->r[n * q->D + d];
    return s;
}

static void embed_fd(void) {
    rng_t r;
    rng_seed(&r, 23);
    enum { NC = 5, N = 9, D = 6 };
    int32_t lab[N] = {0, 3, 3, 1, 4, 3, 0, 2, 4};
    float *t = fnew(NC * D), *y = fnew(N * D), *dy = fnew(N * D), *dt = fzero(NC * D);
    double *td = dnew(NC * D), *rd = dnew(N * D);
    frand(&r, t, NC * D, 1);
    frand(&r, dy, N * D, 1);
    f2d(t, td, NC * D);
    f2d(dy, rd, N * D);
    embed_forward(N, D, t, lab, y);
    for (int n = 0; n < N; n++) CHECK(memcmp(y + n * D, t + lab[n] * D, D * sizeof(float)) == 0);
    embed_backward(N, D, lab, dy, dt);
    emb_ctx q = {N, D, lab, td, rd};
    double e = fd_check(emb_obj, &q, td, NC * D, dt, 100, 1e-3, &r);
    printf("# FD embedding: dtable %.3g\n", e);
    CHECK(e < 1e-5);
    embed_backward(N, D, lab, dy, dt); /* accumulates */
    float *dt1 = fzero(NC * D);
    embed_backward(N, D, lab, dy, dt1);
    for (int i = 0; i < NC * D; i++) CHECK(fabsf(dt[i] - 2 * dt1[i]) <= 1e-6f);
    embed_backward(N, D, lab, dy, NULL); /* NULL skips */
    free(dt1);
    free(t); free(y); free(dy); free(dt); free(td); free(rd);
}

typedef struct { size_t n; int kind; double *l; const float *t; } loss_ctx;

static double loss_obj(void *vp) {
    loss_ctx *q = vp;
    double s = 0;
    for (size_t i = 0; i < q->n; i++) {
        double x = q->l[i];
        switch (q->kind) {
        case 0: s += fmax(x, 0) - x * q->t[i] + log1p(exp(-fabs(x))); break; /* bce_v */
        case 1: s += fmax(1 - x, 0); break;                                  /* hinge real */
        case 2: s += fmax(1 + x, 0); break;                                  /* hinge fake */
        case 3: s -= x; break;                                               /* hinge g */
        default: s += fmax(x, 0) - x * 1.0 + log1p(exp(-fabs(x))); break;    /* bce const t=1 */
        }
    }
    return s / (double)q->n;
}

static void losses_fd(void) {
    rng_t r;
    rng_seed(&r, 24);
    enum { n = 37 };
    float l[n], t[n], dl[n];
    double ld[n];
    for (int i = 0; i < n; i++) {
        do l[i] = (rng_uniform(&r) * 2 - 1) * 4; /* keep away from the hinge kinks at +-1 */
        while (fabsf(fabsf(l[i]) - 1) < 0.05f);
        t[i] = rng_uniform(&r);
    }
    f2d(l, ld, n);
    static const char *names[] = {"bce_logits_v", "hinge_d_real", "hinge_d_fake", "hinge_g", "bce_logits"};
    for (int kind = 0; kind < 5; kind++) {
        for (int i = 0; i < n; i++) dl[i] = NAN;
        float v;
        switch (kind) {
        case 0: v = bce_logits_v(n, l, t, dl); break;
        case 1: v = hinge_d_real(n, l, dl); break;
        case 2: v = hinge_d_fake(n, l, dl); break;
        case 3: v = hinge_g(n, l, dl); break;
        default: v = bce_logits(n, l, 1.0f, dl); break;
        }
        loss_ctx q = {n, kind, ld, t};
        double ref = loss_obj(&q);
        double e = fd_check(loss_obj, &q, ld, n, dl, n, 1e-4, &r);
        printf("# FD %s: loss err %.3g grad %.3g\n", names[kind], fabs(v - ref), e);
        CHECK(fabs(v - ref) < 1e-6 * fmax(1, fabs(ref)));
        CHECK(e < 1e-4);
    }
    /* Extreme logits stay finite and exact. */
    float big[4] = {100, -100, 1e4f, -1e4f}, dbig[4];
    float lv = bce_logits(4, big, 1.0f, dbig);
    CHECK(isfinite(lv) && fabsf(lv - (0 + 100 + 0 + 1e4f) / 4) < 1e-2f);
    CHECK(fabsf(dbig[0]) < 1e-30f && fabsf(dbig[1] + 0.25f) < 1e-6f);
    float t0 = bce_logits(4, big, 0.0f, dbig);
    CHECK(isfinite(t0) && fabsf(t0 - (100 + 1e4f) / 4) < 1e-2f);
    /* bce_logits(t) == bce_logits_v with all-t targets. */
    float tt[n], d1[n], d2[n];
    for (int i = 0; i < n; i++) tt[i] = 0.0f;
    CHECK(bce_logits(n, l, 0.0f, d1) == bce_logits_v(n, l, tt, d2));
    CHECK(memcmp(d1, d2, sizeof d1) == 0);
}

/* contrast_cos against an independent double-precision formula and its
 * finite differences, w.r.t. a and b; with a zero row and N = 1. */
typedef struct { int N, F; double *a, *b; double tau; } ctr_ctx;

static double ctr_obj(void *vp) {
    ctr_ctx *q = vp;
    double loss = 0;
    for (int i = 0; i < q->N; i++) {
        double na = 0, s[64];
        for (int k = 0; k < q->F; k++) na += q->a[i * q->F + k] * q->a[i * q->F + k];
        na = sqrt(na);
        double mx = -INFINITY, se = 0;
        for (int j = 0; j < q->N; j++) {
            double nb = 0, d = 0;
            for (int k = 0; k < q->F; k++) {
                nb += q->b[j * q->F + k] * q->b[j * q->F + k];
                d += q->a[i * q->F + k] * q->b[j * q->F + k];
            }
            s[j] = na > 1e-6 && nb > 1e-12 ? d / (na * sqrt(nb)) / q->tau : 0;
            mx = fmax(mx, s[j]);
        }
        for (int j = 0; j < q->N; j++) se += exp(s[j] - mx);
        loss += mx + log(se) - s[i];
    }
    return loss / q->N;
}

static void contrast_fd(void) {
    rng_t r;
    rng_seed(&r, 31);
    enum { N = 7, F = 5 };
    float a[N * F], b[N * F], da[N * F], db[N * F], da2[N * F];
    double ad[N * F], bd[N * F];
    float *ws = fnew(contrast_ws_floats(N, F));
    for (int i = 0; i < N * F; i++) {
        a[i] = rng_normal(&r);
        b[i] = rng_normal(&r) + (i % F == 0 ? 1.0f : 0.0f);
    }
    for (int trial = 0; trial < 2; trial++) {
        double tau = trial ? 0.1 : 1.0;
        f2d(a, ad, N * F);
        f2d(b, bd, N * F);
        float v = contrast_cos(N, F, a, b, (float)tau, da, db, ws);
        ctr_ctx q = {N, F, ad, bd, tau};
        double ref = ctr_obj(&q);
        double ea = fd_check(ctr_obj, &q, ad, N * F, da, N * F, 1e-5, &r);
        double eb = fd_check(ctr_obj, &q, bd, N * F, db, N * F, 1e-5, &r);
        printf("# FD contrast_cos tau %g: loss %.6f err %.3g grad a %.3g b %.3g\n", tau, v, fabs(v - ref), ea, eb);
        CHECK(fabs(v - ref) < 1e-5 * fmax(1, fabs(ref)));
        CHECK(ea < 1e-3 && eb < 1e-3);
        /* NULL gradients skip, the loss and the other gradient unchanged */
        CHECK(contrast_cos(N, F, a, b, (float)tau, da2, NULL, ws) == v);
        CHECK(memcmp(da, da2, sizeof da) == 0);
    }
    /* scaling a row changes nothing (cosine); each image's own text at
     * its row's direction gives a lower loss than a shuffled pairing */
    float a3[N * F];
    memcpy(a3, a, sizeof a3);
    for (int k = 0; k < F; k++) a3[2 * F + k] *= 7.0f;
    CHECK(fabsf(contrast_cos(N, F, a3, b, 0.1f, NULL, NULL, ws) - contrast_cos(N, F, a, b, 0.1f, NULL, NULL, ws)) <
          1e-5f);
    float lm = contrast_cos(N, F, a, a, 0.1f, NULL, NULL, ws), lx = contrast_cos(N, F, a, b, 0.1f, NULL, NULL, ws);
    CHECK(lm < lx && lm < logf((float)N));
    /* a zero row: finite loss, zero gradient for it; N = 1: loss 0 */
    memset(a3 + 3 * F, 0, F * sizeof(float));
    float vz = contrast_cos(N, F, a3, b, 0.1f, da, db, ws);
    CHECK(isfinite(vz));
    for (int k = 0; k < F; k++) CHECK(da[3 * F + k] == 0.0f);
    CHECK(contrast_cos(1, F, a, b, 0.1f, da, db, ws) == 0.0f);
    for (int k = 0; k < F; k++) CHECK(da[k] == 0.0f && db[k] == 0.0f);
    free(ws);
}

/* The vectorised activation loops (nn_act.c) against scalar formulas on
 * an odd length (vector body + remainder), with zeros, NaN, and dx == dy. */
static void act_vector_paths(void) {
    enum { n = 1003 };
    float *x = fnew(n), *y = fnew(n), *dy = fnew(n), *dx = fnew(n), *ip = fnew(n);
    rng_t r;
    rng_seed(&r, 41);
    frand(&r, x, n, 3);
    frand(&r, dy, n, 1);
    x[0] = 0.0f;
    x[7] = -0.0f;
    x[500] = NAN;
    const float a = 0.2f;
    int bad = 0;
    relu_forward(n, x, y);
    for (int i = 0; i < n; i++) {
        float want = isnan(x[i]) ? NAN : (x[i] > 0 ? x[i] : 0.0f);
        if (!(y[i] == want || (isnan(want) && isnan(y[i])))) bad++;
    }
    CHECKF(bad == 0, "relu_forward: %d wrong", bad);
    x[500] = 1.0f;
    relu_forward(n, x, y);
    memcpy(ip, dy, n * sizeof(float));
    relu_backward(n, y, ip, ip); /* dx aliases dy */
    bad = 0;
    for (int i = 0; i < n; i++) bad += ip[i] != (y[i] > 0 ? dy[i] : 0.0f);
    CHECKF(bad == 0, "relu_backward: %d wrong", bad);
    x[500] = NAN;
    lrelu_forward(n, a, x, y);
    bad = 0;
    for (int i = 0; i < n; i++) {
        float want = x[i] > 0 ? x[i] : a * x[i];
        if (!(y[i] == want || (isnan(want) && isnan(y[i])))) bad++;
    }
    CHECKF(bad == 0, "lrelu_forward: %d wrong", bad);
    x[500] = -1.0f;
    lrelu_forward(n, a, x, y);
    memcpy(ip, dy, n * sizeof(float));
    lrelu_backward(n, a, y, ip, ip);
    bad = 0;
    for (int i = 0; i < n; i++) bad += ip[i] != (y[i] > 0 ? dy[i] : a * dy[i]);
    CHECKF(bad == 0, "lrelu_backward: %d wrong", bad);
    memcpy(ip, x, n * sizeof(float));
    lrelu_forward(n, a, ip, ip); /* in place */
    CHECK(memcmp(ip, y, n * sizeof(float)) == 0);
    tanh_forward(n, x, y);
    tanh_backward(n, y, dy, dx);
    bad = 0;
    for (int i = 0; i < n; i++) bad += fabsf(dx[i] - dy[i] * (1 - y[i] * y[i])) > 1e-6f;
    CHECK(bad == 0);
    free(x); free(y); free(dy); free(dx); free(ip);
}

/* ---- Adam vs a double reference, EMA, reductions ------------------------------ */

static void adam_reference(void) {
    rng_t r;
    rng_seed(&r, 31);
    enum { n = 50, steps = 7 };
    float p[n], m[n] = {0}, v[n] = {0}, g[n];
    double pd[n], md[n] = {0}, vd[n] = {0};
    frand(&r, p, n, 1);
    f2d(p, pd, n);
    adam_t a = {2e-4f, 0.5f, 0.999f, 1e-8f, 0};
    double worst = 0;
    for (int s = 1; s <= steps; s++) {
        frand(&r, g, n, 1);
        adam_begin(&a);
        adam_update(&a, n, p, g, m, v);
        double b1 = a.beta1, b2 = a.beta2;
        for (int i = 0; i < n; i++) {
            md[i] = b1 * md[i] + (1 - b1) * g[i];
            vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
            pd[i] -= (a.lr / (1 - pow(b1, s))) * md[i] / (sqrt(vd[i]) / sqrt(1 - pow(b2, s)) + (double)a.eps);
            worst = fmax(worst, fabs(p[i] - pd[i]));
        }
    }
    printf("# adam vs double reference, %d steps: max abs err %.3g\n", steps, worst);
    CHECK(worst < 1e-6);
}

/* adam_update and ema_update give, for every element, the bits of the
 * documented float formulas evaluated one element at a time (nn_optim.c
 * computes 4 at a time where it can): for lengths around the vector width,
 * unaligned starts, and 1 and 2 threads (whose ranges split elsewhere). */
static void adam_ema_bitwise(void) {
    rng_t r;
    rng_seed(&r, 37);
    static const size_t lens[] = {1, 3, 4, 5, 7, 8, 9, 1003, 70001};
    int checked = 0;
    for (int t = 1; t <= 2; t++) {
        nn_set_threads(t);
        for (size_t k = 0; k < ARRAY_LEN(lens); k++) {
            const size_t n = lens[k], off = k & 1; /* odd starts: not 16-byte aligned */
            float *p = fnew(n + 1), *m = fnew(n + 1), *v = fnew(n + 1), *g = fnew(n + 1), *e = fnew(n + 1);
            float *rp = fnew(n), *rm = fnew(n), *rv = fnew(n), *re = fnew(n);
            frand(&r, p, n + 1, 1);
            frand(&r, m, n + 1, 0.1f);
            frand(&r, g, n + 1, 1);
            frand(&r, e, n + 1, 1);
            for (size_t i = 0; i <= n; i++) v[i] = g[i] * g[i] * 0.5f; /* v >= 0 */
            memcpy(rp, p + off, n * sizeof(float));
            memcpy(rm, m + off, n * sizeof(float));
            memcpy(rv, v + off, n * sizeof(float));
            memcpy(re, e + off, n * sizeof(float));
            adam_t a = {2e-4f, 0.5f, 0.999f, 1e-8f, 4};
            adam_begin(&a);
            adam_update(&a, n, p + off, g + off, m + off, v + off);
            ema_update(n, 0.999f, e + off, p + off);
            const double bc1 = 1.0 - pow(a.beta1, (double)a.t), bc2 = 1.0 - pow(a.beta2, (double)a.t);
            const float step = (float)(a.lr / bc1), inv = (float)(1.0 / sqrt(bc2));
            const float b1 = a.beta1, b2 = a.beta2, c1 = 1.0f - b1, c2 = 1.0f - b2, eps = a.eps;
            for (size_t i = 0; i < n; i++) {
                const float gi = g[off + i];
                rm[i] = b1 * rm[i] + c1 * gi;
                rv[i] = b2 * rv[i] + c2 * gi * gi;
                rp[i] -= step * rm[i] / (sqrtf(rv[i]) * inv + eps);
                re[i] = 0.999f * re[i] + (1.0f - 0.999f) * rp[i];
            }
            int same = !memcmp(rp, p + off, n * sizeof(float)) && !memcmp(rm, m + off, n * sizeof(float)) &&
                       !memcmp(rv, v + off, n * sizeof(float)) && !memcmp(re, e + off, n * sizeof(float));
            CHECKF(same, "n %zu, %d threads: adam/ema bits differ from the scalar formulas", n, t);
            checked += same;
            free(p); free(m); free(v); free(g); free(e); free(rp); free(rm); free(rv); free(re);
        }
    }
    nn_set_threads(0);
    CHECK(checked == 2 * (int)ARRAY_LEN(lens));
}

static void ema_and_reductions(void) {
    float e[3] = {1, 2, 3}, p[3] = {3, 2, 1};
    ema_update(3, 0.75f, e, p);
    CHECK(fabsf(e[0] - 1.5f) < 1e-6f && fabsf(e[1] - 2) < 1e-6f && fabsf(e[2] - 2.5f) < 1e-6f);
    float x[5] = {1, -2, 3, 0, 0.5f};
    CHECK(fabs(nn_sumsq(5, x) - 14.25) < 1e-9);
    {
        /* long input: eight double lanes (i % 8) added in lane order, then
         * the tail: the documented bits, close to a long double sum */
        enum { LN = 1003 };
        float *v = fnew(LN);
        rng_t r;
        rng_seed(&r, 61);
        frand(&r, v, LN, 3);
        double lane[8] = {0}, want = 0;
        long double ref = 0;
        for (int i = 0; i < LN; i++) ref += (long double)v[i] * v[i];
        for (int i = 0; i + 8 <= LN; i += 8)
            for (int j = 0; j < 8; j++) lane[j] += (double)v[i + j] * v[i + j];
        for (int j = 0; j < 8; j++) want += lane[j];
        for (int i = LN - LN % 8; i < LN; i++) want += (double)v[i] * v[i];
        double got = nn_sumsq(LN, v);
        CHECK(memcmp(&got, &want, sizeof got) == 0);
        CHECK(fabsl(got - ref) < 1e-12L * ref);
        free(v);
    }
    CHECK(nn_all_finite(5, x));
    x[3] = INFINITY;
    CHECK(!nn_all_finite(5, x));
    x[3] = NAN;
    CHECK(!nn_all_finite(5, x));
    x[3] = -INFINITY;
    CHECK(!nn_all_finite(5, x));
    CHECK(nn_all_finite(0, x));
}

/* ---- npy ------------------------------------------------------------------- */

static void write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

static void npy_roundtrip(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/a.npy", test_tmpdir());
    float f[6] = {1, -2.5f, 3, 4, 5, 6e-7f};
    int64_t sh[2] = {2, 3};
    CHECK(npy_write_f32(path, f, 2, sh) == 0);
    npy_t a;
    CHECK(npy_read(path, NPY_ANY, &a) == 0);
    CHECK(a.dtype == NPY_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.count == 6);
    CHECK(a.data && memcmp(a.data, f, sizeof f) == 0);
    npy_free(&a);
    CHECK(npy_read(path, NPY_F64, &a) == 0 && a.dtype == NPY_F64 && ((double *)a.data)[1] == -2.5);
    npy_free(&a);
    CHECK(npy_read(path, NPY_I64, &a) == GB_EFORMAT && a.data == NULL); /* -2.5 is not integral */
    int64_t iv[3] = {7, -1, 1LL << 40};
    int64_t s1 = 3;
    CHECK(npy_write(path, NPY_I64, iv, 1, &s1) == 0);
    CHECK(npy_read(path, NPY_I64, &a) == 0 && a.ndim == 1 && memcmp(a.data, iv, sizeof iv) == 0);
    npy_free(&a);
    CHECK(npy_read(path, NPY_F32, &a) == 0 && ((float *)a.data)[0] == 7.0f);
    npy_free(&a);
    double dv = 0.125;
    CHECK(npy_write(path, NPY_F64, &dv, 0, NULL) == 0); /* scalar */
    CHECK(npy_read(path, NPY_ANY, &a) == 0 && a.ndim == 0 && a.count == 1 && *(double *)a.data == 0.125);
    npy_free(&a);
    /* The header is padded so the data start at a multiple of 64. */
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    if (fp) {
        fseek(fp, 0, SEEK_END);
        CHECK((ftell(fp) - 8) % 64 == 0);
        fclose(fp);
    }
    npy_free(&a); /* idempotent */
}

static void npy_rejects(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad.npy", test_tmpdir());
    npy_t a;
    snprintf(path, sizeof path, "%s/does-not-exist.npy", test_tmpdir());
    CHECK(npy_read(path, NPY_F32, &a) == ENOENT && strstr(a.err, "cannot open"));
    snprintf(path, sizeof path, "%s/bad.npy", test_tmpdir());
    struct { const char *hdr; int rc; } cases[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", GB_EUNSUPPORTED},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", GB_EUNSUPPORTED},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", GB_EUNSUPPORTED},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", GB_EUNSUPPORTED},
        {"{'descr': '<f4', 'shape': (2,), }", GB_EFORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,-1), }", GB_EFORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", GB_ETOOBIG},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", GB_EFORMAT}, /* only 2 floats follow */
        /* claims 8 GB but holds 8 bytes: refused before allocating */
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,), }", GB_EFORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", GB_EFORMAT}, /* trailing bytes */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", GB_EFORMAT},
        {"{'descr': '<f4' 'fortran_order': False}", GB_EFORMAT},
        {"garbage", GB_EFORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", GB_EFORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        unsigned char buf[512];
        size_t hl = strlen(cases[i].hdr);
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (unsigned char)((hl + 1) & 0xff);
        buf[9] = (unsigned char)((hl + 1) >> 8);
        memcpy(buf + 10, cases[i].hdr, hl);
        buf[10 + hl] = '\n';
        float two[2] = {1, 2};
        memcpy(buf + 11 + hl, two, sizeof two);
        write_raw(path, buf, 11 + hl + sizeof two);
        int rc = npy_read(path, NPY_F32, &a);
        CHECKF(rc == cases[i].rc, "case %zu: rc %d want %d (%s)", i, rc, cases[i].rc, a.err);
        if (rc) CHECK(a.data == NULL && a.err[0]);
        npy_free(&a);
    }
    write_raw(path, "\x93NUMPX\x01\x00\x00\x00", 10);
    CHECK(npy_read(path, NPY_F32, &a) == GB_EFORMAT);
    write_raw(path, "\x93NUMPY\x01\x00\xff", 9);
    CHECK(npy_read(path, NPY_F32, &a) == GB_EFORMAT);
    write_raw(path, "\x93NUMPY\x09\x00\x00\x00", 10);
    CHECK(npy_read(path, NPY_F32, &a) == GB_EUNSUPPORTED);
    write_raw(path, "", 0);
    CHECK(npy_read(path, NPY_F32, &a) == GB_EFORMAT);
    /* Fuzz-ish: random mutations of a valid file never crash. */
    int64_t sh = 4;
    float v[4] = {1, 2, 3, 4};
    CHECK(npy_write_f32(path, v, 1, &sh) == 0);
    FILE *fp = fopen(path, "rb");
    unsigned char good[256];
    size_t gl = fp ? fread(good, 1, sizeof good, fp) : 0;
    if (fp) fclose(fp);
    rng_t r;
    rng_seed(&r, 99);
    for (int it = 0; it < 300; it++) {
        unsigned char m[256];
        memcpy(m, good, gl);
        for (int k = 0; k < 3; k++) m[rng_below(&r, gl)] = (unsigned char)rng_u64(&r);
        size_t ml = gl - (it % 5 == 0 ? rng_below(&r, gl) : 0);
        write_raw(path, m, ml);
        int rc = npy_read(path, NPY_F32, &a);
        if (rc == 0) CHECK(a.data != NULL);
        npy_free(&a);
    }
}

int main(void) {
    nn_set_threads(0); /* exercise the helper threads (nn_par.c) everywhere */
    RUN(golden_present);
    RUN(sgemm_split);
    RUN(golden_conv2d_k4s2p1);
    RUN(golden_conv2d_k3s1p1);
    RUN(golden_conv2d_k7s1p0);
    RUN(golden_convT2d_k4s2p1);
    RUN(golden_convT2d_k7s1p0);
    RUN(golden_bn_train);
    RUN(golden_bn_eval);
    RUN(golden_linear);
    RUN(golden_act_relu);
    RUN(golden_act_lrelu);
    RUN(golden_act_tanh);
    RUN(golden_act_sigmoid);
    RUN(golden_bce);
    RUN(act_vector_paths);
    RUN(golden_adam);
    RUN(conv_init_rejects);
    RUN(conv_fd_shapes);
    RUN(convT_fd_shapes);
    RUN(conv_random_vs_naive);
    RUN(threads_knob);
    RUN(unfold_paths_bitwise);
    RUN(chunks_layouts_bitwise);
    RUN(bn_layout_bitwise);
    RUN(layers_thread_bits);
    RUN(par_after_fork);
    RUN(par_stress);
    RUN(linear_fd);
    RUN(bn_fd);
    RUN(bn_offset_mean);
    RUN(bn_running_unbiased);
    RUN(bn_act_fused_bitwise);
    RUN(embed_fd);
    RUN(losses_fd);
    RUN(contrast_fd);
    RUN(adam_reference);
    RUN(adam_ema_bitwise);
    RUN(ema_and_reductions);
    RUN(npy_roundtrip);
    RUN(npy_rejects);
    return test_done();
}
