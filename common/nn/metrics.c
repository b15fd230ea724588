/* metrics.c - FID, KID, k-NN precision/recall, nearest neighbours, KL.
 *
 * See metrics.h for the definitions. Pairwise distances are computed in
 * blocks of QB queries x RB references: one GEMM (linear_forward gives
 * q ref^T) per block into a scratch buffer allocated once per call, then
 * ||q||^2 + ||r||^2 - 2 q.r per entry. The block sizes keep the scratch
 * around 4 MiB so it stays in cache-friendly territory while the GEMM is
 * still large enough for OpenBLAS to run at speed. */
#include "metrics.h"

#include "base.h"
#include "nn.h"
#include "rng.h"

#include <cblas.h>
#include <math.h>

#define QB 512
#define RB 2048

void metrics_gauss_fit(const float *x, size_t n, int d, double *mean, double *cov) {
    ASSERT(n >= 2 && d >= 1);
    memset(mean, 0, (size_t)d * sizeof(double));
    for (size_t i = 0; i < n; i++)
        for (int a = 0; a < d; a++) mean[a] += x[i * d + a];
    for (int a = 0; a < d; a++) mean[a] /= (double)n;
    memset(cov, 0, (size_t)d * d * sizeof(double));
    double *c = xmalloc((size_t)d * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        for (int a = 0; a < d; a++) c[a] = x[i * d + a] - mean[a];
        for (int a = 0; a < d; a++) {
            double ca = c[a];
            double *row = cov + (size_t)a * d;
            for (int b = a; b < d; b++) row[b] += ca * c[b];
        }
    }
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) {
            double v = cov[(size_t)a * d + b] / (double)(n - 1);
            cov[(size_t)a * d + b] = v;
            cov[(size_t)b * d + a] = v;
        }
    free(c);
}

/* LAPACK's divide-and-conquer symmetric eigensolver, as OpenBLAS exports
 * it (Fortran calling convention: every argument by reference, then the
 * hidden lengths of the two character arguments). Debian's libopenblas
 * ships LAPACK, so no other library or header (lapacke.h) is needed. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
                    size_t uplo_len);

int metrics_sym_eig(int n, double *a, double *w, double *v) {
    ASSERT(n >= 1);
    /* a is symmetric, so row- and column-major read the same; with
     * jobz "V" LAPACK leaves eigenvector j in column j of its
     * column-major a, i.e. in row j of our row-major a. */
    const char jobz = v ? 'V' : 'N', uplo = 'U';
    int info = 0, lwork = -1, liwork = -1, iw_query = 0;
    double w_query = 0;
    dsyevd_(&jobz, &uplo, &n, a, &n, w, &w_query, &lwork, &iw_query, &liwork, &info, 1, 1);
    if (info != 0) return -1;
    lwork = (int)w_query, liwork = iw_query;
    double *work = xmalloc((size_t)(lwork > 1 ? lwork : 1) * sizeof(double));
    int *iwork = xmalloc((size_t)(liwork > 1 ? liwork : 1) * sizeof(int));
    dsyevd_(&jobz, &uplo, &n, a, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (info != 0) return -1;
    if (v)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) v[(size_t)i * n + j] = a[(size_t)j * n + i];
    return 0;
}

/* out = a b (n x n, row-major) */
static void matmul(int n, const double *a, const double *b, double *out) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, out, n);
}

double metrics_fid(int d, const double *mu1, const double *c1, const double *mu2, const double *c2) {
    size_t dd = (size_t)d * d;
    double *a = xmalloc(dd * sizeof(double)), *v = xmalloc(dd * sizeof(double));
    double *s = xmalloc(dd * sizeof(double)), *t = xmalloc(dd * sizeof(double));
    double *w = xmalloc((size_t)d * sizeof(double));
    double result = -1;
    memcpy(a, c1, dd * sizeof(double));
    if (metrics_sym_eig(d, a, w, v) < 0) goto done;
    /* s = c1^1/2 = V diag(sqrt w) V^T = (V diag(w^1/4)) (V diag(w^1/4))^T */
    for (int i = 0; i < d; i++)
        for (int k = 0; k < d; k++) t[(size_t)i * d + k] = v[(size_t)i * d + k] * sqrt(sqrt(w[k] > 0 ? w[k] : 0));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, t, d, t, d, 0.0, s, d);
    matmul(d, s, c2, t);
    matmul(d, t, s, a);
    for (int i = 0; i < d; i++) /* symmetrise against rounding */
        for (int j = i + 1; j < d; j++) {
            double m = 0.5 * (a[(size_t)i * d + j] + a[(size_t)j * d + i]);
            a[(size_t)i * d + j] = a[(size_t)j * d + i] = m;
        }
    if (metrics_sym_eig(d, a, w, NULL) < 0) goto done;
    double trsqrt = 0, tr = 0, mean2 = 0;
    for (int k = 0; k < d; k++) trsqrt += sqrt(w[k] > 0 ? w[k] : 0);
    for (int k = 0; k < d; k++) tr += c1[(size_t)k * d + k] + c2[(size_t)k * d + k];
    for (int k = 0; k < d; k++) mean2 += (mu1[k] - mu2[k]) * (mu1[k] - mu2[k]);
    result = mean2 + tr - 2 * trsqrt;
    if (result < 0 && result > -1e-9 * (tr + 1)) result = 0;
done:
    free(a);
    free(v);
    free(s);
    free(t);
    free(w);
    return result;
}

double metrics_kid(const float *x, size_t nx, const float *y, size_t ny, int d, int subsets, int subset_size,
                   uint64_t seed, double *std_out) {
    ASSERT(nx >= 2 && ny >= 2 && subsets >= 1 && subset_size >= 2);
    size_t m = (size_t)subset_size;
    if (m > nx) m = nx;
    if (m > ny) m = ny;
    float *xs = xmalloc(m * d * sizeof(float)), *ys = xmalloc(m * d * sizeof(float));
    float *k = xmalloc(m * m * sizeof(float));
    uint64_t *ix = xmalloc(nx * sizeof(uint64_t)), *iy = xmalloc(ny * sizeof(uint64_t));
    double sum = 0, sum2 = 0;
    rng_t r;
    rng_seed(&r, seed);
    for (int s = 0; s < subsets; s++) {
        for (size_t i = 0; i < nx; i++) ix[i] = i;
        for (size_t i = 0; i < ny; i++) iy[i] = i;
        /* partial Fisher-Yates: the first m entries are a uniform sample */
        for (size_t i = 0; i < m; i++) {
            size_t j = i + (size_t)rng_below(&r, nx - i);
            uint64_t tmp = ix[i]; ix[i] = ix[j]; ix[j] = tmp;
            j = i + (size_t)rng_below(&r, ny - i);
            tmp = iy[i]; iy[i] = iy[j]; iy[j] = tmp;
        }
        for (size_t i = 0; i < m; i++) {
            memcpy(xs + i * d, x + ix[i] * d, (size_t)d * sizeof(float));
            memcpy(ys + i * d, y + iy[i] * d, (size_t)d * sizeof(float));
        }
        double kxx = 0, kyy = 0, kxy = 0;
        const float *pa[3] = {xs, ys, xs}, *pb[3] = {xs, ys, ys};
        double *acc[3] = {&kxx, &kyy, &kxy};
        for (int t = 0; t < 3; t++) {
            linear_forward((int)m, d, (int)m, pa[t], pb[t], NULL, k);
            double a = 0;
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < m; j++) {
                    if (t < 2 && i == j) continue;
                    double v = (double)k[i * m + j] / d + 1.0;
                    a += v * v * v;
                }
            *acc[t] = a;
        }
        double mmd = kxx / (double)(m * (m - 1)) + kyy / (double)(m * (m - 1)) - 2 * kxy / (double)(m * m);
        sum += mmd;
        sum2 += mmd * mmd;
    }
    double mean = sum / subsets;
    if (std_out) {
        double var = sum2 / subsets - mean * mean;
        *std_out = var > 0 ? sqrt(var) : 0;
    }
    free(xs);
    free(ys);
    free(k);
    free(ix);
    free(iy);
    return mean;
}

void metrics_row_sqnorm(const float *x, size_t n, int d, float *out) {
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int a = 0; a < d; a++) s += (double)x[i * d + a] * x[i * d + a];
        out[i] = (float)s;
    }
}

void metrics_knn_init(size_t nq, int k, float *dist2, int64_t *idx) {
    for (size_t i = 0; i < nq * (size_t)k; i++) {
        dist2[i] = INFINITY;
        idx[i] = -1;
    }
}

/* Blocked pairwise squared distances: calls row_fn(ctx, qi, r0, nrb, d2row)
 * with the distances from query qi to references r0..r0+nrb-1, block by
 * block; one scratch allocation per call. */
static void pairwise(const float *q, size_t nq, const float *ref, size_t nr, int d,
                     void (*row_fn)(void *ctx, size_t qi, size_t r0, size_t nrb, const float *d2row), void *ctx) {
    float *qn = xmalloc((nq ? nq : 1) * sizeof(float)), *rn = xmalloc((nr ? nr : 1) * sizeof(float));
    float *g = xmalloc((size_t)QB * RB * sizeof(float));
    float *row = xmalloc((size_t)RB * sizeof(float));
    metrics_row_sqnorm(q, nq, d, qn);
    metrics_row_sqnorm(ref, nr, d, rn);
    for (size_t q0 = 0; q0 < nq; q0 += QB) {
        size_t nqb = GB_MIN((size_t)QB, nq - q0);
        for (size_t r0 = 0; r0 < nr; r0 += RB) {
            size_t nrb = GB_MIN((size_t)RB, nr - r0);
            linear_forward((int)nqb, d, (int)nrb, q + q0 * d, ref + r0 * d, NULL, g);
            for (size_t i = 0; i < nqb; i++) {
                const float *gi = g + i * nrb;
                float a = qn[q0 + i];
                for (size_t j = 0; j < nrb; j++) {
                    float v = a + rn[r0 + j] - 2 * gi[j];
                    row[j] = v > 0 ? v : 0;
                }
                row_fn(ctx, q0 + i, r0, nrb, row);
            }
        }
    }
    free(qn);
    free(rn);
    free(g);
    free(row);
}

typedef struct {
    int k;
    int64_t ref_offset, self_offset;
    float *dist2;
    int64_t *idx;
} knn_ctx_t;

static void knn_row(void *vctx, size_t qi, size_t r0, size_t nrb, const float *d2row) {
    knn_ctx_t *c = vctx;
    int k = c->k;
    float *dd = c->dist2 + qi * k;
    int64_t *ii = c->idx + qi * k;
    for (size_t j = 0; j < nrb; j++) {
        float v = d2row[j];
        if (v >= dd[k - 1]) continue;
        int64_t gidx = c->ref_offset + (int64_t)(r0 + j);
        if (c->self_offset >= 0 && gidx == c->self_offset + (int64_t)qi) continue;
        int p = k - 1;
        while (p > 0 && dd[p - 1] > v) {
            dd[p] = dd[p - 1];
            ii[p] = ii[p - 1];
            p--;
        }
        dd[p] = v;
        ii[p] = gidx;
    }
}

void metrics_knn_update(const float *q, size_t nq, const float *ref, size_t nr, int d, int k, int64_t ref_offset,
                        int64_t self_offset, float *dist2, int64_t *idx) {
    ASSERT(k >= 1);
    knn_ctx_t c = {k, ref_offset, self_offset, dist2, idx};
    pairwise(q, nq, ref, nr, d, knn_row, &c);
}

typedef struct {
    const float *rad2;
    uint8_t *in;
} man_ctx_t;

static void man_row(void *vctx, size_t qi, size_t r0, size_t nrb, const float *d2row) {
    man_ctx_t *c = vctx;
    if (c->in[qi]) return;
    for (size_t j = 0; j < nrb; j++)
        if (d2row[j] <= c->rad2[r0 + j]) {
            c->in[qi] = 1;
            return;
        }
}

void metrics_in_manifold(const float *q, size_t nq, const float *ref, size_t nr, int d, const float *rad2,
                         uint8_t *in_out) {
    man_ctx_t c = {rad2, in_out};
    pairwise(q, nq, ref, nr, d, man_row, &c);
}

/* k-th neighbour squared radius of every row of x within x */
static void kth_radius(const float *x, size_t n, int d, int k, float *rad2) {
    float *dd = xmalloc(n * k * sizeof(float));
    int64_t *ii = xmalloc(n * k * sizeof(int64_t));
    metrics_knn_init(n, k, dd, ii);
    metrics_knn_update(x, n, x, n, d, k, 0, 0, dd, ii);
    for (size_t i = 0; i < n; i++) rad2[i] = dd[i * k + k - 1];
    free(dd);
    free(ii);
}

void metrics_precision_recall(const float *real, size_t nr, const float *fake, size_t nf, int d, int k,
                              double *precision, double *recall) {
    ASSERT(nr > (size_t)k && nf > (size_t)k);
    float *rr = xmalloc(nr * sizeof(float)), *rf = xmalloc(nf * sizeof(float));
    uint8_t *inf = xcalloc(nf, 1), *inr = xcalloc(nr, 1);
    kth_radius(real, nr, d, k, rr);
    kth_radius(fake, nf, d, k, rf);
    metrics_in_manifold(fake, nf, real, nr, d, rr, inf);
    metrics_in_manifold(real, nr, fake, nf, d, rf, inr);
    size_t cp = 0, cr = 0;
    for (size_t i = 0; i < nf; i++) cp += inf[i];
    for (size_t i = 0; i < nr; i++) cr += inr[i];
    *precision = (double)cp / (double)nf;
    *recall = (double)cr / (double)nr;
    free(rr);
    free(rf);
    free(inf);
    free(inr);
}

double metrics_kl(const double *p, const double *q, int n, double smooth) {
    double sp = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        sp += p[i];
        sq += q[i] + smooth;
    }
    if (sp <= 0 || sq <= 0) return 0;
    double kl = 0;
    for (int i = 0; i < n; i++) {
        double pi = p[i] / sp, qi = (q[i] + smooth) / sq;
        if (pi <= 0) continue;
        if (qi <= 0) return INFINITY;
        kl += pi * log(pi / qi);
    }
    return kl;
}
