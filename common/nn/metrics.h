/* metrics.h - the math of generative-model evaluation: Gaussian statistics
 * and the Frechet distance (FID), the kernel inception distance (KID),
 * k-NN manifold precision and recall, nearest neighbours, and KL
 * divergence between class distributions.
 *
 * Everything works on row-major float feature matrices (n rows of d
 * values) and does its pairwise work as blocked GEMMs (linear_forward from
 * nn.h computes x w^T) with ||a||^2 + ||b||^2 - 2ab, so 10k x 60k
 * neighbour searches take seconds, not minutes. Accumulations that need
 * precision (means, covariances, MMD sums) are done in double.
 * The symmetric eigen-decomposition (FID's matrix square root) is
 * LAPACK's dsyevd, which OpenBLAS ships. */
#ifndef GB_METRICS_H
#define GB_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Mean (d) and unbiased covariance (d x d, divided by n-1; n >= 2) of the
 * n rows of x (n x d). */
void metrics_gauss_fit(const float *x, size_t n, int d, double *mean, double *cov);

/* Eigen-decomposition of the symmetric n x n matrix a (row-major,
 * overwritten): eigenvalues into w (n), eigenvectors into v (n x n,
 * column j belongs to w[j], unit length; v may be NULL). Eigenvalues in
 * ascending order. LAPACK's dsyevd (from OpenBLAS). Returns 0, or -1
 * when LAPACK reports that it did not converge. */
int metrics_sym_eig(int n, double *a, double *w, double *v);

/* Frechet distance between N(mu1, c1) and N(mu2, c2) (d-dimensional):
 * ||mu1 - mu2||^2 + tr(c1 + c2 - 2 (c1^1/2 c2 c1^1/2)^1/2), the matrix
 * square roots through eigen-decompositions (negative eigenvalues from
 * rounding clamped to 0). Returns the distance (>= 0 up to rounding), or
 * a negative value when the eigen-solver failed. */
double metrics_fid(int d, const double *mu1, const double *c1, const double *mu2, const double *c2);

/* KID (Binkowski et al. 2018): the unbiased estimate of squared MMD with
 * the kernel k(a, b) = (a.b / d + 1)^3, averaged over `subsets` random
 * subsets of m = min(subset_size, nx, ny) rows of each set (drawn without
 * replacement from seed). std_out (may be NULL) gets the standard
 * deviation over the subsets. Needs nx, ny >= 2. */
double metrics_kid(const float *x, size_t nx, const float *y, size_t ny, int d, int subsets, int subset_size,
                   uint64_t seed, double *std_out);

/* Squared Euclidean row norms of x (n x d) into out (n). */
void metrics_row_sqnorm(const float *x, size_t n, int d, float *out);

/* k-nearest-neighbour search, mergeable over chunks of the reference set.
 * dist2 (nq x k) and idx (nq x k) hold each query's k smallest squared
 * distances, ascending, and the reference indices (ref_offset + row).
 * Start with metrics_knn_init (INFINITY / -1), then call
 * metrics_knn_update for each chunk ref (nr x d) of the reference set.
 * self_offset >= 0 says that query i is reference row self_offset + i
 * (same set): that pair is skipped. Distances are clamped at 0. */
void metrics_knn_init(size_t nq, int k, float *dist2, int64_t *idx);
void metrics_knn_update(const float *q, size_t nq, const float *ref, size_t nr, int d, int k, int64_t ref_offset,
                        int64_t self_offset, float *dist2, int64_t *idx);

/* For each query row: is it inside the k-NN manifold of ref, i.e. is
 * there a reference row j with ||q - ref_j||^2 <= rad2[j]? in_out (nq)
 * gets 1/0 (OR-ed into: zero it first). */
void metrics_in_manifold(const float *q, size_t nq, const float *ref, size_t nr, int d, const float *rad2,
                         uint8_t *in_out);

/* Improved precision and recall (Kynkaanniemi et al. 2019) with k
 * neighbours: precision = share of fake rows inside the real manifold
 * (balls around each real row with its k-th neighbour's radius), recall =
 * share of real rows inside the fake manifold. Needs nr, nf > k. */
void metrics_precision_recall(const float *real, size_t nr, const float *fake, size_t nf, int d, int k,
                              double *precision, double *recall);

/* KL(p || q) in nats over n categories of counts or probabilities (both
 * normalised here). Each category of q gets `smooth` added to its count
 * before normalising (use e.g. 0.5 for counts, 0 for exact
 * distributions); categories with p = 0 add nothing. Returns INFINITY
 * when p > 0 where q = 0. */
double metrics_kl(const double *p, const double *q, int n, double smooth);

#endif
