/* test_metrics.c - the evaluation math (common/metrics.c) on inputs with
 * known answers: eigen-decomposition (LAPACK), FID of identical and shifted
 * Gaussians (closed forms), KID near zero for one distribution and
 * clearly positive for two, k-NN search against brute force, precision and
 * recall on toy point sets, KL divergence. */
#include "base.h"
#include "metrics.h"
#include "rng.h"
#include "test.h"

#include <math.h>

static void test_eig(void) {
    /* [[2,1],[1,2]] has eigenvalues 1 and 3 */
    double a[4] = {2, 1, 1, 2}, w[2], v[4];
    CHECK(metrics_sym_eig(2, a, w, v) == 0);
    double lo = fmin(w[0], w[1]), hi = fmax(w[0], w[1]);
    CHECKF(fabs(lo - 1) < 1e-12 && fabs(hi - 3) < 1e-12, "%g %g", lo, hi);
    /* random symmetric 40x40: trace and Frobenius norm are preserved */
    int n = 40;
    double *m = xmalloc(sizeof(double) * n * n), *c = xmalloc(sizeof(double) * n * n), *ww = xmalloc(sizeof(double) * n);
    rng_t r;
    rng_seed(&r, 7);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) m[i * n + j] = m[j * n + i] = rng_normal(&r);
    memcpy(c, m, sizeof(double) * n * n);
    double tr = 0, fro = 0, se = 0, se2 = 0;
    for (int i = 0; i < n; i++) tr += m[i * n + i];
    for (int i = 0; i < n * n; i++) fro += m[i] * m[i];
    CHECK(metrics_sym_eig(n, c, ww, NULL) == 0);
    for (int i = 0; i < n; i++) { se += ww[i]; se2 += ww[i] * ww[i]; }
    CHECKF(fabs(tr - se) < 1e-9 && fabs(fro - se2) < 1e-8 * fro, "tr %g %g fro %g %g", tr, se, fro, se2);
    /* ascending eigenvalues, and M v_j = w_j v_j with unit v_j (column j) */
    double *vv = xmalloc(sizeof(double) * n * n);
    memcpy(c, m, sizeof(double) * n * n);
    CHECK(metrics_sym_eig(n, c, ww, vv) == 0);
    int sorted = 1;
    for (int i = 1; i < n; i++) sorted &= ww[i - 1] <= ww[i];
    CHECK(sorted);
    double res = 0, nrm = 0;
    for (int j = 0; j < n; j++) {
        double len = 0;
        for (int i = 0; i < n; i++) {
            double mv = 0;
            for (int k = 0; k < n; k++) mv += m[i * n + k] * vv[k * n + j];
            res = fmax(res, fabs(mv - ww[j] * vv[i * n + j]));
            len += vv[i * n + j] * vv[i * n + j];
        }
        nrm = fmax(nrm, fabs(len - 1));
    }
    CHECKF(res < 1e-10 && nrm < 1e-12, "max |Mv - wv| %g, max |1 - |v|^2| %g", res, nrm);
    free(m); free(c); free(ww); free(vv);
}

static void test_fid_closed_forms(void) {
    int d = 16;
    double *mu = xcalloc(d, sizeof(double)), *mu2 = xcalloc(d, sizeof(double));
    double *c = xcalloc((size_t)d * d, sizeof(double)), *c2 = xcalloc((size_t)d * d, sizeof(double));
    rng_t r;
    rng_seed(&r, 3);
    /* a random SPD covariance: B B^T + I */
    double *b = xmalloc(sizeof(double) * d * d);
    for (int i = 0; i < d * d; i++) b[i] = rng_normal(&r);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = i == j;
            for (int k = 0; k < d; k++) s += b[i * d + k] * b[j * d + k];
            c[i * d + j] = s;
        }
    for (int i = 0; i < d; i++) mu[i] = rng_normal(&r);
    double f0 = metrics_fid(d, mu, c, mu, c);
    CHECKF(fabs(f0) < 1e-6, "identical: %g", f0);
    /* shifted mean: FID = squared shift */
    double shift2 = 0;
    for (int i = 0; i < d; i++) { mu2[i] = mu[i] + 0.5 * (i % 3); shift2 += 0.25 * (i % 3) * (i % 3); }
    double f1 = metrics_fid(d, mu, c, mu2, c);
    CHECKF(fabs(f1 - shift2) < 1e-6, "shift: %g want %g", f1, shift2);
    /* scaled covariance s^2 C against C: tr(C)(1 - s)^2 */
    double tr = 0;
    for (int i = 0; i < d; i++) tr += c[i * d + i];
    for (int i = 0; i < d * d; i++) c2[i] = 4 * c[i];
    double f2 = metrics_fid(d, mu, c, mu, c2);
    CHECKF(fabs(f2 - tr) < 1e-6 * tr, "scale: %g want %g", f2, tr);
    /* diagonal: sum (sqrt a - sqrt b)^2 */
    memset(c, 0, sizeof(double) * d * d);
    memset(c2, 0, sizeof(double) * d * d);
    double want = 0;
    for (int i = 0; i < d; i++) {
        c[i * d + i] = 1 + i;
        c2[i * d + i] = 2 + 0.5 * i;
        want += pow(sqrt(1.0 + i) - sqrt(2 + 0.5 * i), 2);
    }
    double f3 = metrics_fid(d, mu, c, mu, c2);
    CHECKF(fabs(f3 - want) < 1e-9, "diag: %g want %g", f3, want);
    free(mu); free(mu2); free(c); free(c2); free(b);
}

static void test_fid_samples(void) {
    /* samples of N(0, I) vs N(m, I): FID ~ |m|^2 from fitted statistics */
    int d = 8;
    size_t n = 20000;
    float *x = xmalloc(sizeof(float) * n * d), *y = xmalloc(sizeof(float) * n * d);
    rng_t r;
    rng_seed(&r, 11);
    rng_normal_fill(&r, x, n * d);
    rng_normal_fill(&r, y, n * d);
    for (size_t i = 0; i < n; i++) y[i * d] += 2.0f;
    double mu1[8], mu2[8], c1[64], c2[64];
    metrics_gauss_fit(x, n, d, mu1, c1);
    metrics_gauss_fit(y, n, d, mu2, c2);
    CHECKF(fabs(c1[0] - 1) < 0.05 && fabs(c1[1]) < 0.05, "cov %g %g", c1[0], c1[1]);
    double f = metrics_fid(d, mu1, c1, mu2, c2);
    CHECKF(fabs(f - 4) < 0.15, "fid %g want ~4", f);
    double f0 = metrics_fid(d, mu1, c1, mu1, c1);
    CHECKF(fabs(f0) < 1e-6, "self %g", f0);
    free(x); free(y);
}

static void test_kid(void) {
    int d = 16;
    size_t n = 2000;
    float *x = xmalloc(sizeof(float) * n * d), *y = xmalloc(sizeof(float) * n * d), *z = xmalloc(sizeof(float) * n * d);
    rng_t r;
    rng_seed(&r, 5);
    rng_normal_fill(&r, x, n * d);
    rng_normal_fill(&r, y, n * d);
    rng_normal_fill(&r, z, n * d);
    for (size_t i = 0; i < n * d; i++) z[i] = z[i] * 1.5f + 0.5f;
    double sd = 0;
    double same = metrics_kid(x, n, y, n, d, 20, 500, 1, &sd);
    double diff = metrics_kid(x, n, z, n, d, 20, 500, 1, NULL);
    CHECKF(fabs(same) < 3 * sd + 1e-3, "same %g sd %g", same, sd);
    CHECKF(diff > 0.5 && diff > 50 * fabs(same), "diff %g same %g", diff, same);
    /* unbiasedness: the mean over many small subsets stays near 0 */
    double small = metrics_kid(x, n, y, n, d, 200, 20, 2, &sd);
    CHECKF(fabs(small) < 4 * sd / sqrt(200.0), "small-subset mean %g sd %g", small, sd);
    free(x); free(y); free(z);
}

static void test_knn_brute(void) {
    int d = 5, k = 3;
    size_t nq = 700, nr = 3000; /* crosses the block sizes */
    float *q = xmalloc(sizeof(float) * nq * d), *ref = xmalloc(sizeof(float) * nr * d);
    rng_t r;
    rng_seed(&r, 9);
    rng_normal_fill(&r, q, nq * d);
    rng_normal_fill(&r, ref, nr * d);
    float *dd = xmalloc(sizeof(float) * nq * k);
    int64_t *ii = xmalloc(sizeof(int64_t) * nq * k);
    metrics_knn_init(nq, k, dd, ii);
    /* two chunks, merged */
    metrics_knn_update(q, nq, ref, 1000, d, k, 0, -1, dd, ii);
    metrics_knn_update(q, nq, ref + 1000 * d, nr - 1000, d, k, 1000, -1, dd, ii);
    int bad = 0;
    for (size_t i = 0; i < nq; i++) {
        float best[3] = {INFINITY, INFINITY, INFINITY};
        int64_t bi[3] = {-1, -1, -1};
        for (size_t j = 0; j < nr; j++) {
            float s = 0;
            for (int a = 0; a < d; a++) s += (q[i * d + a] - ref[j * d + a]) * (q[i * d + a] - ref[j * d + a]);
            for (int p = 0; p < 3; p++)
                if (s < best[p]) {
                    for (int t = 2; t > p; t--) { best[t] = best[t - 1]; bi[t] = bi[t - 1]; }
                    best[p] = s; bi[p] = (int64_t)j;
                    break;
                }
        }
        for (int p = 0; p < 3; p++)
            if (bi[p] != ii[i * k + p] || fabs(best[p] - dd[i * k + p]) > 1e-3f) bad++;
    }
    CHECKF(bad == 0, "%d mismatches", bad);
    /* self exclusion: nearest of a set within itself is never itself */
    metrics_knn_init(nq, 1, dd, ii);
    metrics_knn_update(q, nq, q, nq, d, 1, 0, 0, dd, ii);
    int self = 0;
    for (size_t i = 0; i < nq; i++) self += ii[i] == (int64_t)i;
    CHECK(self == 0);
    free(q); free(ref); free(dd); free(ii);
}

static void test_precision_recall_toy(void) {
    /* real: a 20x20 unit grid; fake A: the same grid shifted by 0.1 (inside
     * every ball: precision 1, recall 1); fake B: only the left half of the
     * grid (precision 1, recall about 1/2); fake C: far away (0, 0). */
    int d = 2, k = 3;
    size_t n = 400;
    float *real = xmalloc(sizeof(float) * n * d), *a = xmalloc(sizeof(float) * n * d);
    float *b = xmalloc(sizeof(float) * n * d), *c = xmalloc(sizeof(float) * n * d);
    for (size_t i = 0; i < n; i++) {
        real[2 * i] = (float)(i % 20);
        real[2 * i + 1] = (float)(i / 20);
        a[2 * i] = real[2 * i] + 0.1f;
        a[2 * i + 1] = real[2 * i + 1];
        b[2 * i] = (float)(i % 10) + 0.02f * (float)(i / 200); /* duplicates spread a little */
        b[2 * i + 1] = (float)((i / 10) % 20);
        c[2 * i] = 100 + (float)(i % 20);
        c[2 * i + 1] = 100 + (float)(i / 20);
    }
    double p, r;
    metrics_precision_recall(real, n, a, n, d, k, &p, &r);
    CHECKF(p == 1 && r == 1, "shifted grid p %g r %g", p, r);
    metrics_precision_recall(real, n, b, n, d, k, &p, &r);
    CHECKF(p == 1 && r > 0.45 && r < 0.6, "half grid p %g r %g", p, r);
    metrics_precision_recall(real, n, c, n, d, k, &p, &r);
    CHECKF(p == 0 && r == 0, "far p %g r %g", p, r);
    free(real); free(a); free(b); free(c);
}

static void test_kl(void) {
    double p[3] = {1, 1, 2}, q[3] = {1, 1, 2}, u[3] = {1, 1, 1};
    CHECK(fabs(metrics_kl(p, q, 3, 0)) < 1e-15);
    double want = 0.25 * log(0.25 / (1.0 / 3)) * 2 + 0.5 * log(0.5 / (1.0 / 3));
    CHECKF(fabs(metrics_kl(p, u, 3, 0) - want) < 1e-12, "%g %g", metrics_kl(p, u, 3, 0), want);
    double z[3] = {0, 0, 5};
    CHECK(isinf(metrics_kl(p, z, 3, 0)));
    double ks = metrics_kl(p, z, 3, 0.5);
    double ws = 0.5 * log(0.25 / (0.5 / 6.5)) + 0.5 * log(0.5 / (5.5 / 6.5));
    CHECKF(fabs(ks - ws) < 1e-12, "smoothed %g want %g", ks, ws);
    /* p = 0 where q > 0 adds nothing */
    double pz[3] = {0, 0, 1};
    CHECK(fabs(metrics_kl(pz, z, 3, 0)) < 1e-15);
}

int main(void) {
    RUN(test_eig);
    RUN(test_fid_closed_forms);
    RUN(test_fid_samples);
    RUN(test_kid);
    RUN(test_knn_brute);
    RUN(test_precision_recall_toy);
    RUN(test_kl);
    return test_done();
}
