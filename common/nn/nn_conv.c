/* nn_conv.c - conv2d and transposed conv2d as whole-batch GEMMs.
 *
 * Shape legend (nn.h): N batch, C in-channels, H W input, K out-channels,
 * KH KW kernel, S stride, P padding, OH OW output; L = OH*OW.
 *
 * The whole batch is unfolded at once, so each layer is one big GEMM per
 * direction instead of N small ones (the DCGAN layers have 7x7 and 14x14
 * maps: per-sample products would be too thin for OpenBLAS to reach its
 * peak). The column matrix is laid out channel-major over the batch:
 *   col (C*KH*KW, N*L): col[(c,kh,kw)][n*L + oh*OW + ow] = x[n,c,oh*S-P+kh,ow*S-P+kw] (0 outside)
 * so that
 *   conv forward:   Y' (K, N*L) = W (K, CKK) · col                    Y' is y
 *   conv dw:        dW (K, CKK) += dY' (K, N*L) · col^T
 *   conv dx:        dcol (CKK, N*L) = W^T · dY'                       then col2im -> dx
 * where Y'/dY' are y/dy read channel-major: a tensor laid out (K, N, L)
 * (nn.h nn_lay_t; what the model keeps its hidden activations in) IS that
 * matrix, with leading dimension Nb*L, so the GEMMs read and write it in
 * place; an NCHW tensor is relayed (a copy of L-long planes) through the
 * workspace instead. The transposed convolution is the conv's
 * input-gradient map with weight (C, K, KH, KW) read as a conv weight
 * (Cout=C, Cin=K):
 *   convT forward:  col (KKK, N*HW) = W^T (KKK, C) · X' (C, N*HW)      then col2im -> y
 *   convT dx:       dX' (C, N*HW) = W · im2col(dy)                     dX' is dx
 *   convT dw:       dW (C, KKK) += X' · im2col(dy)^T
 * Two shapes need no unfolding at all and run as plain dense layers (one
 * GEMM, no copies): a conv whose kernel covers the whole unpadded input
 * (output 1x1, e.g. the discriminator's last layer) is linear_* with
 * IN = C*KH*KW, and a transposed conv of a 1x1 unpadded input (the
 * generator's first layer) is y (N, K*KH*KW) = x (N, C) · W (C, K*KH*KW).
 * im2col reads each (sample, channel) plane through a table of offsets
 * (padding reads a 0), col2im gathers each pixel's entries in (kh, kw)
 * order (the table path below); shapes too large for their stack
 * tables use the row loops, which compute per kernel offset the range of
 * output positions inside the image. Both give the same bits. Nothing is
 * allocated: the caller's workspace holds col and the swapped copy. */
#include "base.h"
#include "nn.h"
#include "nn_par.h"

int conv_init(conv_t *c, int N, int C, int H, int W, int K, int KH, int KW, int S, int P) {
    memset(c, 0, sizeof *c);
    if (N < 1 || C < 1 || H < 1 || W < 1 || K < 1 || KH < 1 || KW < 1 || S < 1 || P < 0) return -1;
    if (H + 2 * P < KH || W + 2 * P < KW) return -1;
    *c = (conv_t){N, C, H, W, K, KH, KW, S, P, (H + 2 * P - KH) / S + 1, (W + 2 * P - KW) / S + 1};
    return 0;
}

int convT_init(conv_t *c, int N, int C, int H, int W, int K, int KH, int KW, int S, int P) {
    memset(c, 0, sizeof *c);
    if (N < 1 || C < 1 || H < 1 || W < 1 || K < 1 || KH < 1 || KW < 1 || S < 1 || P < 0) return -1;
    int OH = (H - 1) * S - 2 * P + KH, OW = (W - 1) * S - 2 * P + KW;
    if (OH < 1 || OW < 1) return -1;
    /* Every output pixel must be reachable the way PyTorch defines it; with
     * OH as above the conv geometry (OH+2P-KH)/S+1 == H holds exactly. */
    *c = (conv_t){N, C, H, W, K, KH, KW, S, P, OH, OW};
    return 0;
}

size_t conv2d_ws_floats(const conv_t *c) {
    size_t NL = (size_t)c->N * c->OH * c->OW;
    return (size_t)c->C * c->KH * c->KW * NL + (size_t)c->K * NL;
}

size_t convT2d_ws_floats(const conv_t *c) {
    size_t NHW = (size_t)c->N * c->H * c->W;
    return (size_t)c->K * c->KH * c->KW * NHW + (size_t)c->C * NHW;
}

/* ---- unfolding ------------------------------------------------------------ */

/* Output positions o in [*lo, *hi) whose input index o*S - P + k lies in
 * [0, in), clamped to [0, out). */
static inline void valid_range(int k, int S, int P, int in, int out, int *lo, int *hi) {
    int a = P - k;              /* need o*S >= a */
    int l = a <= 0 ? 0 : (a + S - 1) / S;
    int b = in - 1 + P - k;     /* need o*S <= b */
    int h = b < 0 ? 0 : b / S + 1;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Geometry of one unfold/fold: image (N,C,H,W), kernel KH x KW, stride S,
 * padding P, col spatial size OH x OW; col is (C*KH*KW, N*OH*OW). */
typedef struct {
    const float *src; /* im2col: the image; col2im: the col matrix */
    float *dst;       /* im2col: col; col2im: the image */
    const float *bias; /* col2im with init 2: per-channel start value */
    int init;          /* col2im: 0 add to dst, 1 zero first, 2 bias first */
    int N, C, H, W, KH, KW, S, P, OH, OW;
    nn_lay_t l;        /* where the image's planes lie */
} unfold_t;

/* Offset of plane (n, c) of the image side of u. */
static inline size_t uplane(const unfold_t *u, int n, int c) {
    return nn_lay_at(u->l, n, c);
}

/* im2col for samples [n0, n1): every col element of those samples is
 * written. */
static void im2col_part(void *vp, int part, int nparts) {
    const unfold_t *u = vp;
    const int C = u->C, H = u->H, W = u->W, KH = u->KH, KW = u->KW, S = u->S, P = u->P, OH = u->OH, OW = u->OW;
    const size_t L = (size_t)OH * OW, NL = (size_t)u->N * L;
    int n0, n1;
    nn_par_range(u->N, part, nparts, &n0, &n1);
    for (int c = 0; c < C; c++) {
        for (int kh = 0; kh < KH; kh++) {
            int oh0, oh1;
            valid_range(kh, S, P, H, OH, &oh0, &oh1);
            for (int kw = 0; kw < KW; kw++) {
                int ow0, ow1;
                valid_range(kw, S, P, W, OW, &ow0, &ow1);
                float *row = u->dst + ((size_t)(c * KH + kh) * KW + kw) * NL;
                const int iw0 = ow0 * S - P + kw;
                for (int n = n0; n < n1; n++) {
                    const float *src = u->src + uplane(u, n, c);
                    float *r = row + (size_t)n * L;
                    memset(r, 0, (size_t)oh0 * OW * sizeof(float));
                    for (int oh = oh0; oh < oh1; oh++) {
                        float *ro = r + (size_t)oh * OW;
                        const float *si = src + (size_t)(oh * S - P + kh) * W + iw0;
                        for (int ow = 0; ow < ow0; ow++) ro[ow] = 0.0f;
                        if (S == 1) {
                            memcpy(ro + ow0, si, (size_t)(ow1 - ow0) * sizeof(float));
                        } else {
                            for (int j = 0, ow = ow0; ow < ow1; ow++, j += S) ro[ow] = si[j];
                        }
                        for (int ow = ow1; ow < OW; ow++) ro[ow] = 0.0f;
                    }
                    memset(r + (size_t)oh1 * OW, 0, (size_t)(OH - oh1) * OW * sizeof(float));
                }
            }
        }
    }
}

/* col2im for samples [n0, n1): image += fold of col, after zeroing or
 * bias-filling those samples' planes when init asks. */
static void col2im_part(void *vp, int part, int nparts) {
    const unfold_t *u = vp;
    const int C = u->C, H = u->H, W = u->W, KH = u->KH, KW = u->KW, S = u->S, P = u->P, OH = u->OH, OW = u->OW;
    const size_t L = (size_t)OH * OW, NL = (size_t)u->N * L, HW = (size_t)H * W;
    int n0, n1;
    nn_par_range(u->N, part, nparts, &n0, &n1);
    if (u->init)
        for (int n = n0; n < n1; n++)
            for (int c = 0; c < C; c++) {
                float *p = u->dst + uplane(u, n, c);
                const float bc = u->init == 2 ? u->bias[c] : 0.0f;
                for (size_t i = 0; i < HW; i++) p[i] = bc;
            }
    for (int c = 0; c < C; c++) {
        for (int kh = 0; kh < KH; kh++) {
            int oh0, oh1;
            valid_range(kh, S, P, H, OH, &oh0, &oh1);
            for (int kw = 0; kw < KW; kw++) {
                int ow0, ow1;
                valid_range(kw, S, P, W, OW, &ow0, &ow1);
                const float *row = u->src + ((size_t)(c * KH + kh) * KW + kw) * NL;
                const int iw0 = ow0 * S - P + kw;
                const int cnt = ow1 - ow0;
                for (int n = n0; n < n1; n++) {
                    float *dst = u->dst + uplane(u, n, c);
                    const float *r = row + (size_t)n * L;
                    for (int oh = oh0; oh < oh1; oh++) {
                        const float *ro = r + (size_t)oh * OW + ow0;
                        float *di = dst + (size_t)(oh * S - P + kh) * W + iw0;
                        if (S == 1) {
                            for (int j = 0; j < cnt; j++) di[j] += ro[j];
                        } else {
                            for (int j = 0; j < cnt; j++) di[(size_t)j * S] += ro[j];
                        }
                    }
                }
            }
        }
    }
}

/* ---- the table path (most shapes) ------------------------------------------
 * The row loops above walk each (kernel offset, sample) in rows of OW
 * values with edge ranges, memsets and, for S > 1, a strided gather: for
 * the 7x7 and 14x14 maps of the DCGAN layers that is a few values per
 * loop, and the passes ran at a fraction of memory speed. Instead, im2col
 * copies one (sample, channel) plane at a time into a stack buffer that
 * ends in a 0, and each kernel offset's OH*OW values are one flat loop
 * through a table of offsets into that buffer (padding reads the 0): no
 * branches, no edges. col2im gathers per pixel instead (below). */

#define PLANE_MAX 4608 /* floats of one image plane (+ the 0) */
#define TAB_MAX 16384  /* table entries */

static int conv_rows_only; /* nn_conv_use_rows(): the tests' reference */

void nn_conv_use_rows(int on) {
    conv_rows_only = on;
}

/* Whether im2col of shape u fits the table path (and the path is on). */
static int unfold_fits(const unfold_t *u) {
    if (conv_rows_only) return 0;
    size_t plane = (size_t)u->H * u->W + 1;
    size_t tab = (size_t)u->KH * u->KW * u->OH * u->OW;
    return plane <= PLANE_MAX && tab <= TAB_MAX;
}

/* tab[(kh*KW + kw)*L + oh*OW + ow] = offset in the plane buffer of the
 * pixel that output (oh, ow) sees at kernel offset (kh, kw), or H*W (the
 * 0 after the plane) when that falls in the padding. */
static void unfold_table(const unfold_t *u, int *tab) {
    const int L = u->OH * u->OW, HW = u->H * u->W;
    for (int kh = 0; kh < u->KH; kh++)
        for (int kw = 0; kw < u->KW; kw++) {
            int *t = tab + (kh * u->KW + kw) * L;
            for (int oh = 0; oh < u->OH; oh++)
                for (int ow = 0; ow < u->OW; ow++) {
                    int h = oh * u->S - u->P + kh, w = ow * u->S - u->P + kw;
                    int inside = h >= 0 && h < u->H && w >= 0 && w < u->W;
                    t[oh * u->OW + ow] = inside ? h * u->W + w : HW;
                }
        }
}

static void im2col_tab_part(void *vp, int part, int nparts) {
    const unfold_t *u = vp;
    int tab[TAB_MAX];
    float plane[PLANE_MAX];
    const int KK = u->KH * u->KW, L = u->OH * u->OW;
    const size_t NL = (size_t)u->N * L, HW = (size_t)u->H * u->W;
    int n0, n1;
    nn_par_range(u->N, part, nparts, &n0, &n1);
    unfold_table(u, tab);
    plane[HW] = 0.0f;
    for (int c = 0; c < u->C; c++)
        for (int n = n0; n < n1; n++) {
            memcpy(plane, u->src + uplane(u, n, c), HW * sizeof(float));
            for (int kk = 0; kk < KK; kk++) {
                float *r = u->dst + ((size_t)c * KK + kk) * NL + (size_t)n * L;
                const int *t = tab + (size_t)kk * L;
                for (int l = 0; l < L; l++) r[l] = plane[t[l]];
            }
        }
}

/* col2im the other way round: each image pixel gathers the (at most
 * ceil(KH/S) * ceil(KW/S)) col entries that fold into it and is written
 * once, instead of KH*KW read-modify-write passes. The entries are listed
 * in increasing (kh, kw), the order in which the row loops add them, so
 * each pixel gets the same sum, bit for bit. */

/* Entries per pixel at most. */
static int fold_per_pixel(const unfold_t *u) {
    return ((u->KH + u->S - 1) / u->S) * ((u->KW + u->S - 1) / u->S);
}

/* Whether shape u fits the gather tables (offsets as int). */
static int fold_fits(const unfold_t *u) {
    if (conv_rows_only) return 0;
    size_t HW = (size_t)u->H * u->W, NL = (size_t)u->N * u->OH * u->OW;
    return HW <= PLANE_MAX && HW * fold_per_pixel(u) <= TAB_MAX && (size_t)u->KH * u->KW * NL < INT32_MAX;
}

/* tab[p*T + i], i < cnt[p]: offsets kk*NL + l, from a (channel, sample)
 * base of col, of the entries that fold into pixel p; T = fold_per_pixel. */
static void fold_table(const unfold_t *u, int *tab, int *cnt) {
    const int T = fold_per_pixel(u), L = u->OH * u->OW, NL = u->N * L;
    memset(cnt, 0, (size_t)u->H * u->W * sizeof(int));
    for (int kh = 0; kh < u->KH; kh++)
        for (int kw = 0; kw < u->KW; kw++)
            for (int oh = 0; oh < u->OH; oh++) {
                int h = oh * u->S - u->P + kh;
                if (h < 0 || h >= u->H) continue;
                for (int ow = 0; ow < u->OW; ow++) {
                    int w = ow * u->S - u->P + kw;
                    if (w < 0 || w >= u->W) continue;
                    int p = h * u->W + w;
                    tab[p * T + cnt[p]++] = (kh * u->KW + kw) * NL + oh * u->OW + ow;
                }
            }
}

static void col2im_gather_part(void *vp, int part, int nparts) {
    const unfold_t *u = vp;
    int tab[TAB_MAX], cnt[PLANE_MAX];
    const int T = fold_per_pixel(u), KK = u->KH * u->KW, HW = u->H * u->W;
    const size_t L = (size_t)u->OH * u->OW, NL = (size_t)u->N * L;
    int n0, n1;
    nn_par_range(u->N, part, nparts, &n0, &n1);
    fold_table(u, tab, cnt);
    for (int c = 0; c < u->C; c++) {
        const float start = u->init == 2 ? u->bias[c] : 0.0f;
        for (int n = n0; n < n1; n++) {
            const float *base = u->src + (size_t)c * KK * NL + (size_t)n * L;
            float *img = u->dst + uplane(u, n, c);
            for (int p = 0; p < HW; p++) {
                float a = u->init == 0 ? img[p] : start;
                const int *t = tab + (size_t)p * T;
                for (int i = 0; i < cnt[p]; i++) a += base[t[i]];
                img[p] = a;
            }
        }
    }
}

/* img (N,C,H,W) planes as l says -> col (C*KH*KW, N*OH*OW), all elements
 * written. */
static void im2col(const float *img, nn_lay_t l, int N, int C, int H, int W, int KH, int KW, int S, int P, int OH,
                   int OW, float *col) {
    unfold_t u = {img, col, NULL, 0, N, C, H, W, KH, KW, S, P, OH, OW, l};
    nn_par_run(unfold_fits(&u) ? im2col_tab_part : im2col_part, &u);
}

/* img (N,C,H,W) planes as l says = init (0: keep, 1: zeros, 2: bias[c])
 * + fold of col. */
static void col2im(const float *col, int N, int C, int H, int W, int KH, int KW, int S, int P, int OH, int OW,
                   float *img, nn_lay_t l, int init, const float *bias) {
    unfold_t u = {col, img, bias, init, N, C, H, W, KH, KW, S, P, OH, OW, l};
    nn_par_run(fold_fits(&u) ? col2im_gather_part : col2im_part, &u);
}

/* ---- layouts ---------------------------------------------------------------
 * A (N, C, L) activation is a matrix in two ways without a copy: as rows
 * per image (N, C*L) when it is NCHW (dense layers), and as rows per
 * channel (C, N*L) when it is channel-major (the GEMMs of the unfolded
 * convolutions). Otherwise it is copied plane by plane (relay) into the
 * workspace in the layout the GEMM needs, and back. */

/* Whether l holds (N, C, L) as (C, N*L) rows; *ld: their stride. */
static int lay_cm(nn_lay_t l, int N, int C, size_t L, size_t *ld) {
    if (N != 1 && l.sn != L) return 0;
    *ld = C == 1 ? (size_t)N * L : l.sc;
    return 1;
}

/* Whether l holds (N, C, L) as contiguous (N, C*L) rows (as NCHW). */
static int lay_rows(nn_lay_t l, int N, int C, size_t L) {
    return (C == 1 || l.sc == L) && (N == 1 || l.sn == (size_t)C * L);
}

/* Copy the planes (L floats) of an (N, C, L) tensor from layout ls to ld. */
typedef struct { const float *src; float *dst; nn_lay_t ls, ld; int N, C; size_t L; } relay_t;

static void relay_part(void *vp, int part, int nparts) {
    const relay_t *q = vp;
    int n0, n1;
    nn_par_range(q->N, part, nparts, &n0, &n1);
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < q->C; c++)
            memcpy(q->dst + nn_lay_at(q->ld, n, c), q->src + nn_lay_at(q->ls, n, c), q->L * sizeof(float));
}

static void relay(const float *src, nn_lay_t ls, float *dst, nn_lay_t ld, int N, int C, size_t L) {
    relay_t q = {src, dst, ls, ld, N, C, L};
    nn_par_run(relay_part, &q);
}

/* y planes (n, k) += b[k]. */
static void bias_add(float *y, nn_lay_t l, int N, int K, size_t L, const float *b) {
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float *yp = y + nn_lay_at(l, n, k);
            const float bk = b[k];
            for (size_t i = 0; i < L; i++) yp[i] += bk;
        }
}

/* db[k] += sum over n and L of dy (N,K,L) planes as l says. */
static void bias_grad(const float *dy, nn_lay_t l, int N, int K, size_t L, float *db) {
    for (int k = 0; k < K; k++) {
        double s = 0;
        for (int n = 0; n < N; n++) {
            const float *g = dy + nn_lay_at(l, n, k);
            float a = 0;
            for (size_t i = 0; i < L; i++) a += g[i];
            s += a;
        }
        db[k] += (float)s;
    }
}

/* ---- conv2d --------------------------------------------------------------- */

/* Kernel covers the whole unpadded input: a dense layer. */
static int conv_is_dense(const conv_t *c) {
    return c->P == 0 && c->KH == c->H && c->KW == c->W;
}

/* 1x1 unpadded input of a transposed conv: a dense layer. */
static int convT_is_dense(const conv_t *c) {
    return c->P == 0 && c->H == 1 && c->W == 1;
}

/* The four passes on c->N images, x (and dx) planes as xl says, y (and
 * dy) as yl says; the public calls are these with NCHW layouts. */
static void conv_fwd(const conv_t *c, const float *x, nn_lay_t xl, const float *w, const float *b, float *y,
                     nn_lay_t yl, float *ws) {
    const int N = c->N, K = c->K;
    const size_t HW = (size_t)c->H * c->W, L = (size_t)c->OH * c->OW, NL = (size_t)N * L;
    const int CKK = c->C * c->KH * c->KW;
    size_t ldy;
    if (conv_is_dense(c)) {
        /* ws: x rows (N, CKK), then y rows (N, K) */
        const float *xr = x;
        if (!lay_rows(xl, N, c->C, HW)) {
            relay(x, xl, ws, nn_lay_nchw(c->C, HW), N, c->C, HW);
            xr = ws;
        }
        if (lay_rows(yl, N, K, 1)) {
            linear_forward(N, CKK, K, xr, w, b, y);
        } else {
            float *yr = ws + (size_t)N * CKK;
            linear_forward(N, CKK, K, xr, w, b, yr);
            relay(yr, nn_lay_nchw(K, 1), y, yl, N, K, 1);
        }
        return;
    }
    float *col = ws, *yk = ws + (size_t)CKK * NL;
    im2col(x, xl, N, c->C, c->H, c->W, c->KH, c->KW, c->S, c->P, c->OH, c->OW, col);
    const int direct = lay_cm(yl, N, K, L, &ldy);
    nn_sgemm(0, 0, K, (int)NL, CKK, 1.0f, w, CKK, col, (int)NL, 0.0f, direct ? y : yk, direct ? (int)ldy : (int)NL);
    if (!direct) relay(yk, nn_lay_cm(N, L), y, yl, N, K, L);
    if (b) bias_add(y, yl, N, K, L, b);
}

static void conv_bwd(const conv_t *c, const float *x, nn_lay_t xl, const float *w, const float *dy, nn_lay_t yl,
                     float *dx, float *dw, float *db, float *ws) {
    const int N = c->N, K = c->K;
    const size_t HW = (size_t)c->H * c->W, L = (size_t)c->OH * c->OW, NL = (size_t)N * L;
    const int CKK = c->C * c->KH * c->KW;
    if (db) bias_grad(dy, yl, N, K, L, db);
    if (!dw && !dx) return;
    if (conv_is_dense(c)) {
        /* ws: x rows (N, CKK), later dx rows; then dy rows (N, K) */
        const float *dyr = dy;
        if (!lay_rows(yl, N, K, 1)) {
            float *t = ws + (size_t)N * CKK;
            relay(dy, yl, t, nn_lay_nchw(K, 1), N, K, 1);
            dyr = t;
        }
        if (dw) {
            const float *xr = x;
            if (!lay_rows(xl, N, c->C, HW)) {
                relay(x, xl, ws, nn_lay_nchw(c->C, HW), N, c->C, HW);
                xr = ws;
            }
            linear_backward(N, CKK, K, xr, w, dyr, NULL, dw, NULL);
        }
        if (dx) {
            if (lay_rows(xl, N, c->C, HW)) {
                linear_backward(N, CKK, K, NULL, w, dyr, dx, NULL, NULL);
            } else {
                linear_backward(N, CKK, K, NULL, w, dyr, ws, NULL, NULL);
                relay(ws, nn_lay_nchw(c->C, HW), dx, xl, N, c->C, HW);
            }
        }
        return;
    }
    float *col = ws, *dyk = ws + (size_t)CKK * NL;
    const float *g = dy;
    size_t ldg;
    if (!lay_cm(yl, N, K, L, &ldg)) {
        relay(dy, yl, dyk, nn_lay_cm(N, L), N, K, L);
        g = dyk;
        ldg = NL;
    }
    if (dw) {
        im2col(x, xl, N, c->C, c->H, c->W, c->KH, c->KW, c->S, c->P, c->OH, c->OW, col);
        nn_sgemm(0, 1, K, CKK, (int)NL, 1.0f, g, (int)ldg, col, (int)NL, 1.0f, dw, CKK);
    }
    if (dx) {
        nn_sgemm(1, 0, CKK, (int)NL, K, 1.0f, w, CKK, g, (int)ldg, 0.0f, col, (int)NL);
        col2im(col, N, c->C, c->H, c->W, c->KH, c->KW, c->S, c->P, c->OH, c->OW, dx, xl, 1, NULL);
    }
}

/* NCHW layouts of c's input and output: the public calls'. */
static nn_lay_t in_nchw(const conv_t *c) { return nn_lay_nchw(c->C, (size_t)c->H * c->W); }
static nn_lay_t out_nchw(const conv_t *c) { return nn_lay_nchw(c->K, (size_t)c->OH * c->OW); }

void conv2d_forward(const conv_t *c, const float *x, const float *w, const float *b, float *y, float *ws) {
    conv_fwd(c, x, in_nchw(c), w, b, y, out_nchw(c), ws);
}

void conv2d_backward(const conv_t *c, const float *x, const float *w, const float *dy, float *dx, float *dw,
                     float *db, float *ws) {
    conv_bwd(c, x, in_nchw(c), w, dy, out_nchw(c), dx, dw, db, ws);
}

/* ---- transposed conv2d ---------------------------------------------------- */

static void convT_fwd(const conv_t *c, const float *x, nn_lay_t xl, const float *w, const float *b, float *y,
                      nn_lay_t yl, float *ws) {
    const int N = c->N, C = c->C, K = c->K;
    const size_t HW = (size_t)c->H * c->W, NHW = (size_t)N * HW, L = (size_t)c->OH * c->OW;
    const int KKK = K * c->KH * c->KW;
    if (convT_is_dense(c)) {
        /* ws: y rows (N, KKK), then x rows (N, C) */
        const float *xr = x;
        if (!lay_rows(xl, N, C, 1)) {
            float *t = ws + (size_t)KKK * N;
            relay(x, xl, t, nn_lay_nchw(C, 1), N, C, 1);
            xr = t;
        }
        const int direct = lay_rows(yl, N, K, L);
        float *yr = direct ? y : ws;
        nn_sgemm(0, 0, N, KKK, C, 1.0f, xr, C, w, KKK, 0.0f, yr, KKK);
        if (!direct) relay(yr, nn_lay_nchw(K, L), y, yl, N, K, L);
        if (b) bias_add(y, yl, N, K, L, b);
        return;
    }
    float *col = ws, *xc = ws + (size_t)KKK * NHW;
    const float *xs = x;
    size_t ldx;
    if (!lay_cm(xl, N, C, HW, &ldx)) {
        relay(x, xl, xc, nn_lay_cm(N, HW), N, C, HW);
        xs = xc;
        ldx = NHW;
    }
    nn_sgemm(1, 0, KKK, (int)NHW, C, 1.0f, w, KKK, xs, (int)ldx, 0.0f, col, (int)NHW);
    /* The conv that maps y-shaped (K, OH, OW) to x-shaped (C, H, W). */
    col2im(col, N, K, c->OH, c->OW, c->KH, c->KW, c->S, c->P, c->H, c->W, y, yl, b ? 2 : 1, b);
}

static void convT_bwd(const conv_t *c, const float *x, nn_lay_t xl, const float *w, const float *dy, nn_lay_t yl,
                      float *dx, float *dw, float *db, float *ws) {
    const int N = c->N, C = c->C, K = c->K;
    const size_t HW = (size_t)c->H * c->W, NHW = (size_t)N * HW, L = (size_t)c->OH * c->OW;
    const int KKK = K * c->KH * c->KW;
    if (db) bias_grad(dy, yl, N, K, L, db);
    if (!dw && !dx) return;
    float *col = ws, *xc = ws + (size_t)KKK * NHW;
    if (convT_is_dense(c)) {
        /* ws: dy rows (N, KKK), then x rows (N, C), later dx rows */
        const float *dyr = dy;
        if (!lay_rows(yl, N, K, L)) {
            relay(dy, yl, col, nn_lay_nchw(K, L), N, K, L);
            dyr = col;
        }
        const int xrows = lay_rows(xl, N, C, 1);
        if (dw) {
            const float *xr = x;
            if (!xrows) {
                relay(x, xl, xc, nn_lay_nchw(C, 1), N, C, 1);
                xr = xc;
            }
            nn_sgemm(1, 0, C, KKK, N, 1.0f, xr, C, dyr, KKK, 1.0f, dw, KKK);
        }
        if (dx) {
            nn_sgemm(0, 1, N, C, KKK, 1.0f, dyr, KKK, w, KKK, 0.0f, xrows ? dx : xc, C);
            if (!xrows) relay(xc, nn_lay_nchw(C, 1), dx, xl, N, C, 1);
        }
        return;
    }
    im2col(dy, yl, N, K, c->OH, c->OW, c->KH, c->KW, c->S, c->P, c->H, c->W, col);
    size_t ldx;
    const int xcm = lay_cm(xl, N, C, HW, &ldx);
    if (dw) {
        const float *xs = x;
        size_t lds = ldx;
        if (!xcm) {
            relay(x, xl, xc, nn_lay_cm(N, HW), N, C, HW);
            xs = xc;
            lds = NHW;
        }
        nn_sgemm(0, 1, C, KKK, (int)NHW, 1.0f, xs, (int)lds, col, (int)NHW, 1.0f, dw, KKK);
    }
    if (dx) {
        nn_sgemm(0, 0, C, (int)NHW, KKK, 1.0f, w, KKK, col, (int)NHW, 0.0f, xcm ? dx : xc, xcm ? (int)ldx : (int)NHW);
        if (!xcm) relay(xc, nn_lay_cm(N, HW), dx, xl, N, C, HW);
    }
}

void convT2d_forward(const conv_t *c, const float *x, const float *w, const float *b, float *y, float *ws) {
    convT_fwd(c, x, in_nchw(c), w, b, y, out_nchw(c), ws);
}

void convT2d_backward(const conv_t *c, const float *x, const float *w, const float *dy, float *dx, float *dw,
                      float *db, float *ws) {
    convT_bwd(c, x, in_nchw(c), w, dy, out_nchw(c), dx, dw, db, ws);
}

/* ---- whole batches in chunks ------------------------------------------------
 * A model keeps one workspace for a chunk of images (model.c). Splitting
 * each pass of each chunk over the pool cost five hand-offs per chunk and
 * layer (relay, im2col, GEMM, GEMM, col2im) and sent every pass's data
 * from one core's cache to the other's. Instead:
 * - forward and the input gradient (per image): thread p takes images
 *   [lo, hi) of the batch (nn_par_range) and runs them through the calls
 *   above, chunk/threads images at a time, in its own slice of the
 *   workspace (nested nn_par_run calls run on that thread): one hand-off;
 * - weight gradients (a sum over images): per chunk, the threads unfold
 *   their images into the chunk's shared matrices, one split GEMM adds the
 *   chunk into dw (so dw sums the chunks in order, the same bits at any
 *   thread count), then each thread takes its images' input gradient from
 *   those matrices: three hand-offs per chunk.
 * Each output element is one single-threaded cblas_sgemm dot product over
 * the same K, so the bits do not depend on how the images are grouped, nor
 * on the leading dimensions the layouts give the GEMMs. */

typedef struct {
    conv_t c;          /* the whole batch */
    int transposed, q; /* q: images per call and thread */
    size_t per;        /* workspace floats per image */
    nn_lay_t xl, yl;
    const float *x, *w, *dy;
    float *y, *dx, *ws;
} per_image_t;

/* Thread `part`'s images, q at a time in its slice of ws: the forward
 * (dy NULL) or the input gradient. */
static void per_image_part(void *vp, int part, int nparts) {
    const per_image_t *j = vp;
    const conv_t *c = &j->c;
    float *ws = j->ws + (size_t)part * j->q * j->per;
    int lo, hi;
    nn_par_range(c->N, part, nparts, &lo, &hi);
    for (int n = lo; n < hi; n += j->q) {
        conv_t cv = *c;
        cv.N = hi - n < j->q ? hi - n : j->q;
        const size_t xo = (size_t)n * j->xl.sn, yo = (size_t)n * j->yl.sn;
        if (!j->dy && j->transposed) convT_fwd(&cv, j->x + xo, j->xl, j->w, NULL, j->y + yo, j->yl, ws);
        else if (!j->dy) conv_fwd(&cv, j->x + xo, j->xl, j->w, NULL, j->y + yo, j->yl, ws);
        else if (j->transposed)
            convT_bwd(&cv, NULL, j->xl, j->w, j->dy + yo, j->yl, j->dx + xo, NULL, NULL, ws);
        else conv_bwd(&cv, NULL, j->xl, j->w, j->dy + yo, j->yl, j->dx + xo, NULL, NULL, ws);
    }
}

/* Run the per-image pass j over the pool when every thread gets at least
 * one image of a chunk; else chunk by chunk on the calling thread's
 * schedule (the calls split their own passes). */
static void per_image_run(per_image_t *j, int chunk) {
    const int parts = nn_par_parts();
    const conv_t *c = &j->c;
    conv_t one = *c;
    one.N = 1;
    j->per = j->transposed ? convT2d_ws_floats(&one) : conv2d_ws_floats(&one);
    if (chunk >= parts && parts > 1 && c->N > 1) {
        j->q = chunk / parts;
        nn_par_run(per_image_part, j);
        return;
    }
    j->q = chunk;
    per_image_part(j, 0, 1);
}

void conv2d_forward_chunks(const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w, float *y,
                           nn_lay_t yl, float *ws) {
    per_image_t j = {*c, 0, 0, 0, xl, yl, x, w, NULL, y, NULL, ws};
    per_image_run(&j, chunk);
}

void convT2d_forward_chunks(const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w, float *y,
                            nn_lay_t yl, float *ws) {
    per_image_t j = {*c, 1, 0, 0, xl, yl, x, w, NULL, y, NULL, ws};
    per_image_run(&j, chunk);
}

/* One chunk's weight-gradient pass: the chunk's geometry and matrices. */
typedef struct {
    int transposed;
    int N, C, H, W, K, KH, KW, S, P, OH, OW; /* the chunk (N images) */
    nn_lay_t xl, yl;
    const float *x, *w, *dy;                 /* at the chunk's first image */
    float *dx;                               /* NULL: no input gradient */
    float *col;                              /* conv: col of x; convT: col of dy */
    const float *mat;                        /* conv: dY' (K, NL); convT: X' (C, NHW): the tensor
                                                itself when its layout allows, else mat_ws */
    float *mat_ws;                           /* the workspace copy, or NULL */
    size_t ld;                               /* mat's leading dimension */
} wgrad_t;

/* Phase 1, thread `part`'s images: conv: dY' and col of x; convT: col of
 * dy and X'. Columns of image n are [n*L, (n+1)*L) in both. */
static void wgrad_unfold_part(void *vp, int part, int nparts) {
    const wgrad_t *g = vp;
    int n0, n1;
    nn_par_range(g->N, part, nparts, &n0, &n1);
    if (!g->transposed) {
        const size_t L = (size_t)g->OH * g->OW;
        if (g->mat_ws && n1 > n0)
            relay(g->dy + (size_t)n0 * g->yl.sn, g->yl, g->mat_ws + (size_t)n0 * L, nn_lay_cm(g->N, L), n1 - n0, g->K,
                  L);
        unfold_t u = {g->x, g->col, NULL, 0, g->N, g->C, g->H, g->W, g->KH, g->KW, g->S, g->P, g->OH, g->OW,
                      g->xl};
        (unfold_fits(&u) ? im2col_tab_part : im2col_part)(&u, part, nparts);
    } else {
        const size_t HW = (size_t)g->H * g->W;
        if (g->mat_ws && n1 > n0)
            relay(g->x + (size_t)n0 * g->xl.sn, g->xl, g->mat_ws + (size_t)n0 * HW, nn_lay_cm(g->N, HW), n1 - n0, g->C,
                  HW);
        unfold_t u = {g->dy, g->col, NULL, 0, g->N, g->K, g->OH, g->OW, g->KH, g->KW, g->S, g->P, g->H, g->W,
                      g->yl};
        (unfold_fits(&u) ? im2col_tab_part : im2col_part)(&u, part, nparts);
    }
}

/* Phase 3, thread `part`'s images: the input gradient from the chunk's
 * matrices (after the dw GEMM, which read them). */
static void wgrad_dx_part(void *vp, int part, int nparts) {
    const wgrad_t *g = vp;
    int n0, n1;
    nn_par_range(g->N, part, nparts, &n0, &n1);
    if (n0 >= n1) return;
    if (!g->transposed) {
        /* dcol (CKK, own columns) = W^T dY', over the own columns of col */
        const int L = g->OH * g->OW, NL = g->N * L, CKK = g->C * g->KH * g->KW;
        nn_sgemm(1, 0, CKK, (n1 - n0) * L, g->K, 1.0f, g->w, CKK, g->mat + (size_t)n0 * L, (int)g->ld, 0.0f,
                 g->col + (size_t)n0 * L, NL);
        unfold_t u = {g->col, g->dx, NULL, 1, g->N, g->C, g->H, g->W, g->KH, g->KW, g->S, g->P, g->OH, g->OW,
                      g->xl};
        (fold_fits(&u) ? col2im_gather_part : col2im_part)(&u, part, nparts);
    } else {
        /* dX' (C, own columns) = W col: straight into a channel-major dx,
         * else into X' (read by the dw GEMM already) and relayed */
        const int HW = g->H * g->W, NHW = g->N * HW, KKK = g->K * g->KH * g->KW;
        if (!g->mat_ws) { /* x, and so dx, is channel-major */
            nn_sgemm(0, 0, g->C, (n1 - n0) * HW, KKK, 1.0f, g->w, KKK, g->col + (size_t)n0 * HW, NHW, 0.0f,
                     g->dx + (size_t)n0 * g->xl.sn, (int)g->ld);
        } else {
            float *m = g->mat_ws + (size_t)n0 * HW;
            nn_sgemm(0, 0, g->C, (n1 - n0) * HW, KKK, 1.0f, g->w, KKK, g->col + (size_t)n0 * HW, NHW, 0.0f, m,
                     NHW);
            relay(m, nn_lay_cm(g->N, (size_t)HW), g->dx + (size_t)n0 * g->xl.sn, g->xl, n1 - n0, g->C, (size_t)HW);
        }
    }
}

static void backward_chunks(const conv_t *c, int transposed, int chunk, const float *x, nn_lay_t xl, const float *w,
                            const float *dy, nn_lay_t yl, float *dx, float *dw, float *ws) {
    const int dense = transposed ? convT_is_dense(c) : conv_is_dense(c);
    if (!dw && !dx) return;
    if (!dw) { /* per image only */
        per_image_t j = {*c, transposed, 0, 0, xl, yl, x, w, dy, NULL, dx, ws};
        per_image_run(&j, chunk);
        return;
    }
    for (int n0 = 0; n0 < c->N; n0 += chunk) {
        conv_t cv = *c;
        cv.N = c->N - n0 < chunk ? c->N - n0 : chunk;
        const float *xc = x + (size_t)n0 * xl.sn, *dyc = dy + (size_t)n0 * yl.sn;
        float *dxc = dx ? dx + (size_t)n0 * xl.sn : NULL;
        if (dense || nn_par_parts() == 1) {
            if (transposed) convT_bwd(&cv, xc, xl, w, dyc, yl, dxc, dw, NULL, ws);
            else conv_bwd(&cv, xc, xl, w, dyc, yl, dxc, dw, NULL, ws);
            continue;
        }
        const size_t L = (size_t)c->OH * c->OW, HW = (size_t)c->H * c->W;
        wgrad_t g = {transposed, cv.N, c->C, c->H, c->W, c->K, c->KH, c->KW, c->S, c->P, c->OH, c->OW, xl, yl,
                     xc, w, dyc, dxc, ws, NULL, NULL, 0};
        if (!transposed) {
            const int CKK = c->C * c->KH * c->KW, NL = (int)(cv.N * L);
            if (lay_cm(yl, cv.N, c->K, L, &g.ld)) {
                g.mat = dyc;
            } else {
                g.mat = g.mat_ws = ws + (size_t)CKK * NL;
                g.ld = (size_t)NL;
            }
            nn_par_run(wgrad_unfold_part, &g);
            nn_sgemm(0, 1, c->K, CKK, NL, 1.0f, g.mat, (int)g.ld, g.col, NL, 1.0f, dw, CKK);
        } else {
            const int KKK = c->K * c->KH * c->KW, NHW = (int)(cv.N * HW);
            if (lay_cm(xl, cv.N, c->C, HW, &g.ld)) { /* phase 3 writes dx with the same ld */
                g.mat = xc;
            } else {
                g.mat = g.mat_ws = ws + (size_t)KKK * NHW;
                g.ld = (size_t)NHW;
            }
            nn_par_run(wgrad_unfold_part, &g);
            nn_sgemm(0, 1, c->C, KKK, NHW, 1.0f, g.mat, (int)g.ld, g.col, NHW, 1.0f, dw, KKK);
        }
        if (dxc) nn_par_run(wgrad_dx_part, &g);
    }
}

void conv2d_backward_chunks(const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w,
                            const float *dy, nn_lay_t yl, float *dx, float *dw, float *ws) {
    backward_chunks(c, 0, chunk, x, xl, w, dy, yl, dx, dw, ws);
}

void convT2d_backward_chunks(const conv_t *c, int chunk, const float *x, nn_lay_t xl, const float *w,
                             const float *dy, nn_lay_t yl, float *dx, float *dw, float *ws) {
    backward_chunks(c, 1, chunk, x, xl, w, dy, yl, dx, dw, ws);
}
