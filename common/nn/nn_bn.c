/* nn_bn.c - 2-d batch normalisation (per channel over N and HW).
 *
 * PyTorch semantics, which the golden values pin down: training mode
 * normalises with the batch mean and the BIASED variance (divide by
 * M = N*HW), then updates the running statistics with momentum m and the
 * UNBIASED variance (divide by M-1):
 *   run_mean = (1-m) run_mean + m mean;  run_var = (1-m) run_var + m var*M/(M-1).
 * Eval mode uses the running statistics. Channel sums are accumulated in
 * double (a channel of a 64x128x7x7 layer has 3136 values; float sums
 * would lose digits). Backward, with xhat = (x-mean)*rstd:
 *   dbeta += sum dy;  dgamma += sum dy*xhat;
 *   dx = gamma*rstd/M * (M*dy - sum dy - xhat * sum dy*xhat).
 *
 * Each (n, c) plane is found through bn_t's layouts (x and dx: xl, y and
 * dy: yl), so NCHW tensors and the model's channel-major ones
 * (nn.h nn_lay_t) take the same passes in the same order: the same bits,
 * and a layer can change layout on its way through (model.c).
 *
 * Speed: each (n, c) row of HW values is reduced with 8 float lanes (which
 * the compiler vectorises; a scalar double sum cannot be, as reordering it
 * changes the result), and only the per-row lane totals go into the double
 * channel sums: rows are short (HW <= a few thousand), so the float part
 * adds about 1e-7 relative error. Channels are independent, so every
 * pass is split by channel ranges over the nn_par pool (nn_par.h): one
 * thread computes a channel from start to end, in the serial order, so the
 * results are the same bits whatever the thread count. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "base.h"
#include "nn.h"
#include "nn_par.h"

/* sum p[i] over [0, n), 8 float lanes, total in double. */
static inline double row_sum(const float *p, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += p[i + j];
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < n; i++) s += p[i];
    return s;
}

/* sum (p[i] - mu)^2 over [0, n). */
static inline double row_sqdev(const float *p, int n, float mu) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float d = p[i + j] - mu;
            acc[j] += d * d;
        }
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < n; i++) {
        double d = (double)p[i] - mu;
        s += d * d;
    }
    return s;
}

/* *sg += sum g[i]; *sgx += sum g[i] * (x[i] - mu). */
static inline void row_dsums(const float *g, const float *x, int n, float mu, double *sg, double *sgx) {
    float a[8] = {0}, b[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            a[j] += g[i + j];
            b[j] += g[i + j] * (x[i + j] - mu);
        }
    double s1 = 0, s2 = 0;
    for (int j = 0; j < 8; j++) {
        s1 += a[j];
        s2 += b[j];
    }
    for (; i < n; i++) {
        s1 += g[i];
        s2 += (double)g[i] * ((double)x[i] - mu);
    }
    *sg += s1;
    *sgx += s2;
}

/* The same with dy replaced by act'(y) * dy (the activation's backward,
 * nn_act.c's formulas: relu dy*[y>0], lrelu dy*(y>0 ? 1 : alpha)), each
 * value computed as those passes compute it. */
static inline __attribute__((always_inline)) float act_grad(int act, float alpha, float y, float d) {
    if (act == BN_ACT_RELU) return y > 0.0f ? d : 0.0f;
    float pos = y > 0.0f ? d : 0.0f, neg = y > 0.0f ? 0.0f : d;
    return pos + alpha * neg;
}

static inline __attribute__((always_inline)) void row_dsums_act(const float *g0, const float *y, const float *x,
                                                                 int n, float mu, int act, float alpha, double *sg,
                                                                 double *sgx) {
    float a[8] = {0}, b[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float g = act_grad(act, alpha, y[i + j], g0[i + j]);
            a[j] += g;
            b[j] += g * (x[i + j] - mu);
        }
    double s1 = 0, s2 = 0;
    for (int j = 0; j < 8; j++) {
        s1 += a[j];
        s2 += b[j];
    }
    for (; i < n; i++) {
        float g = act_grad(act, alpha, y[i], g0[i]);
        s1 += g;
        s2 += (double)g * ((double)x[i] - mu);
    }
    *sg += s1;
    *sgx += s2;
}

/* y[i] = act(v[i]) for the forward, written as nn_act.c writes it. */
static inline void row_act(float *y, int n, int act, float alpha) {
    if (act == BN_ACT_RELU) {
        for (int i = 0; i < n; i++) {
            float v = y[i];
            y[i] = v <= 0.0f ? 0.0f : v;
        }
    } else if (act == BN_ACT_LRELU) {
        for (int i = 0; i < n; i++) {
            float v = y[i];
            float pos = v <= 0.0f ? 0.0f : v, neg = v <= 0.0f ? v : 0.0f;
            y[i] = pos + alpha * neg;
        }
    }
}

#include <math.h>

/* One call's operands, shared by the channel-range parts below. Each
 * channel is computed whole by one thread, in the same order as a serial
 * loop would, so the split (and the thread count) cannot change a bit. */
typedef struct {
    const bn_t *b;
    const float *x, *gamma, *beta, *dy, *yact, *mean_in, *rstd_in, *run_mean_in, *run_var_in;
    float *y, *mean, *rstd, *run_mean, *run_var, *dx, *dgamma, *dbeta;
    double *bmean, *bvar;
} bn_job_t;

/* Channels [c0, c1) of the part-th slice of C. */
static inline void bn_part_range(const bn_job_t *j, int part, int nparts, int *c0, int *c1) {
    nn_par_range(j->b->C, part, nparts, c0, c1);
}

/* Offset of plane (n, c) of x and dx (bn_t xl), and of y and dy (yl; x's
 * when unset). */
static inline size_t bn_plane(const bn_t *b, int n, int c) {
    return b->xl.sn ? nn_lay_at(b->xl, n, c) : ((size_t)n * b->C + c) * b->HW;
}
static inline size_t bn_yplane(const bn_t *b, int n, int c) {
    return b->yl.sn ? nn_lay_at(b->yl, n, c) : bn_plane(b, n, c);
}

/* Floats a pass over the tensor touches, for nn_par_run_sized. */
static inline size_t bn_work(const bn_t *b) {
    return (size_t)b->N * b->C * b->HW;
}

/* Training-mode forward of channel c (see bn_forward_train); its batch
 * mean and unbiased variance go to bmean/bvar (double, may be NULL), and
 * the running statistics are updated when run_mean/run_var are given. */
static void bn_train_channel(const bn_job_t *j, int c) {
    const bn_t *b = j->b;
    const int N = b->N, HW = b->HW;
    const double M = (double)N * HW;
    const float *x = j->x;
    double s = 0;
    for (int n = 0; n < N; n++) s += row_sum(x + bn_plane(b, n, c), HW);
    double mu = s / M;
    /* Two-pass variance: free of cancellation. The deviations use the
     * float mean; the (float - double) mean error e only adds e^2. */
    const float muf = (float)mu;
    double ss = 0;
    for (int n = 0; n < N; n++) ss += row_sqdev(x + bn_plane(b, n, c), HW, muf);
    double dm = mu - muf;
    ss -= M * dm * dm;
    if (ss < 0) ss = 0;
    double var = ss / M;
    double rs = 1.0 / sqrt(var + b->eps);
    j->mean[c] = (float)mu;
    j->rstd[c] = (float)rs;
    /* (x - mean) first, with the mean as float + float remainder: with
     * a large mean, x*scale + shift would cancel two big numbers. */
    const float scale = (float)(j->gamma[c] * rs), bc = j->beta[c], dmf = (float)dm;
    for (int n = 0; n < N; n++) {
        const float *xp = x + bn_plane(b, n, c);
        float *yp = j->y + bn_yplane(b, n, c);
        for (int i = 0; i < HW; i++) yp[i] = ((xp[i] - muf) - dmf) * scale + bc;
        row_act(yp, HW, b->act, b->alpha);
    }
    double unb = M > 1 ? ss / (M - 1) : var;
    if (j->bmean) j->bmean[c] = mu;
    if (j->bvar) j->bvar[c] = unb;
    if (j->run_mean || j->run_var)
        bn_running_update(b, 1, &mu, &unb, j->run_mean ? j->run_mean + c : NULL, j->run_var ? j->run_var + c : NULL);
}

static void bn_train_part(void *vp, int part, int nparts) {
    const bn_job_t *j = vp;
    int c0, c1;
    bn_part_range(j, part, nparts, &c0, &c1);
    for (int c = c0; c < c1; c++) bn_train_channel(j, c);
}

static void bn_train_core(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                          float *mean, float *rstd, float *run_mean, float *run_var, double *bmean, double *bvar) {
    ASSERT((double)b->N * b->HW >= 1);
    bn_job_t j = {.b = b, .x = x, .gamma = gamma, .beta = beta, .y = y, .mean = mean, .rstd = rstd,
                  .run_mean = run_mean, .run_var = run_var, .bmean = bmean, .bvar = bvar};
    nn_par_run_sized(bn_work(b), bn_train_part, &j);
}

void bn_forward_train(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                      float *mean, float *rstd, float *run_mean, float *run_var) {
    bn_train_core(b, x, gamma, beta, y, mean, rstd, run_mean, run_var, NULL, NULL);
}

void bn_forward_train_stats(const bn_t *b, const float *x, const float *gamma, const float *beta, float *y,
                            float *mean, float *rstd, double *bmean, double *bvar) {
    bn_train_core(b, x, gamma, beta, y, mean, rstd, NULL, NULL, bmean, bvar);
}

void bn_running_update(const bn_t *b, int C, const double *bmean, const double *bvar, float *run_mean,
                       float *run_var) {
    for (int c = 0; c < C; c++) {
        if (run_mean) run_mean[c] = (float)((1.0 - b->momentum) * run_mean[c] + b->momentum * bmean[c]);
        if (run_var) run_var[c] = (float)((1.0 - b->momentum) * run_var[c] + b->momentum * bvar[c]);
    }
}

static void bn_eval_part(void *vp, int part, int nparts) {
    const bn_job_t *j = vp;
    const bn_t *b = j->b;
    const int N = b->N, HW = b->HW;
    int c0, c1;
    bn_part_range(j, part, nparts, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        double rs = 1.0 / sqrt((double)j->run_var_in[c] + j->b->eps);
        const float scale = (float)(j->gamma[c] * rs), bc = j->beta[c], mc = j->run_mean_in[c];
        for (int n = 0; n < N; n++) {
            const float *xp = j->x + bn_plane(b, n, c);
            float *yp = j->y + bn_yplane(b, n, c);
            for (int i = 0; i < HW; i++) yp[i] = (xp[i] - mc) * scale + bc;
            row_act(yp, HW, j->b->act, j->b->alpha);
        }
    }
}

void bn_forward_eval(const bn_t *b, const float *x, const float *gamma, const float *beta,
                     const float *run_mean, const float *run_var, float *y) {
    bn_job_t j = {.b = b, .x = x, .gamma = gamma, .beta = beta, .run_mean_in = run_mean, .run_var_in = run_var,
                  .y = y};
    nn_par_run_sized(bn_work(b), bn_eval_part, &j);
}

/* Backward of channel c (see the formulas at the top). */
static void bn_backward_channel(const bn_job_t *j, int c) {
    const bn_t *b = j->b;
    const int N = b->N, HW = b->HW;
    const double M = (double)N * HW;
    const float mu = j->mean_in[c], rs = j->rstd_in[c];
    const int act = j->b->act;
    const float alpha = j->b->alpha;
    double sdy = 0, sdyx = 0;
    for (int n = 0; n < N; n++) {
        const size_t o = bn_plane(b, n, c), oy = bn_yplane(b, n, c);
        /* constant act arguments: each call is its own vectorised loop */
        if (act == BN_ACT_RELU)
            row_dsums_act(j->dy + oy, j->yact + oy, j->x + o, HW, mu, BN_ACT_RELU, 0, &sdy, &sdyx);
        else if (act) row_dsums_act(j->dy + oy, j->yact + oy, j->x + o, HW, mu, BN_ACT_LRELU, alpha, &sdy, &sdyx);
        else row_dsums(j->dy + oy, j->x + o, HW, mu, &sdy, &sdyx);
    }
    sdyx *= rs; /* sum dy * xhat */
    if (j->dbeta) j->dbeta[c] += (float)sdy;
    if (j->dgamma) j->dgamma[c] += (float)sdyx;
    if (!j->dx) return;
    /* dx = k * (dy - sdy/M - xhat * sdyx/M), k = gamma*rstd */
    const float k = j->gamma[c] * rs;
    const float m1 = (float)(sdy / M);
    const float m2 = (float)(sdyx / M) * rs;
    for (int n = 0; n < N; n++) {
        const float *xp = j->x + bn_plane(b, n, c);
        const float *gp = j->dy + bn_yplane(b, n, c);
        float *dp = j->dx + bn_plane(b, n, c);
        if (act == BN_ACT_RELU) {
            const float *yp = j->yact + bn_yplane(b, n, c);
            for (int i = 0; i < HW; i++)
                dp[i] = k * (act_grad(BN_ACT_RELU, 0, yp[i], gp[i]) - m1 - (xp[i] - mu) * m2);
        } else if (act) {
            const float *yp = j->yact + bn_yplane(b, n, c);
            for (int i = 0; i < HW; i++)
                dp[i] = k * (act_grad(BN_ACT_LRELU, alpha, yp[i], gp[i]) - m1 - (xp[i] - mu) * m2);
        } else {
            for (int i = 0; i < HW; i++) dp[i] = k * (gp[i] - m1 - (xp[i] - mu) * m2);
        }
    }
}

static void bn_backward_part(void *vp, int part, int nparts) {
    const bn_job_t *j = vp;
    int c0, c1;
    bn_part_range(j, part, nparts, &c0, &c1);
    for (int c = c0; c < c1; c++) bn_backward_channel(j, c);
}

void bn_backward(const bn_t *b, const float *x, const float *gamma, const float *mean, const float *rstd,
                 const float *dy, float *dx, float *dgamma, float *dbeta) {
    ASSERT(b->act == BN_ACT_NONE);
    bn_backward_act(b, x, NULL, gamma, mean, rstd, dy, dx, dgamma, dbeta);
}

void bn_backward_act(const bn_t *b, const float *x, const float *y, const float *gamma, const float *mean,
                     const float *rstd, const float *dy, float *dx, float *dgamma, float *dbeta) {
    ASSERT(!b->act || y);
    bn_job_t j = {.b = b, .x = x, .yact = y, .gamma = gamma, .mean_in = mean, .rstd_in = rstd, .dy = dy, .dx = dx,
                  .dgamma = dgamma, .dbeta = dbeta};
    nn_par_run_sized(bn_work(b), bn_backward_part, &j);
}
