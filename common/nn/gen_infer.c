/* gen_infer.c - the generator's inference path (gen_infer.h): fast, and
 * bit-reproducible whatever the batch. Used by gambar-sample for every
 * image it writes and by gambar-eval for every image it measures.
 *
 * Arithmetic contract "gambar-g1" (recorded in every PNG):
 *   activations are NHWC. The first layer computes each output as a
 *   chain of fused multiply-adds, acc = fma(a, w, acc) from acc = 0, over
 *   the input channels in order, then BN as y = fma(acc, scale, shift)
 *   (scale = gamma / sqrt(var + eps), shift = beta - mean * scale, both
 *   computed in double and rounded to float) and ReLU y > 0 ? y : 0. The
 *   middle layers (kernel 4, stride 2) use Winograd F(4x4, 2x2) per output
 *   parity (see wino_*): fixed float transforms, the 25 element products
 *   as fma chains over the input channels in order, then BN as
 *   y = acc * scale + shift and ReLU. The last layer (1 or 3 channels)
 *   sums each output as 4 x 8 interleaved fma chains over the
 *   channel-padded taps combined in a fixed tree (dot_ref), and the image
 *   is tanhf(acc).
 *   The AVX2 kernels and the portable fallback (fmaf) perform exactly
 *   these operations, so they agree bit for bit, whatever the batch or the
 *   thread. Results match model_generate to float rounding (gambar-sample
 *   --check-model, tests/test_gen_infer.c). 8-bit pixels are
 *   ginfer_to_u8 of the image.
 *
 *   Text models: the first layer's input is [z, e] with e = W c (W =
 *   G.text.weight (E, T), c the image's sentence vector), each e_k an fmaf
 *   chain acc = fma(W[k][t], c[t], acc) from acc = 0 over t in order.
 *
 * Layers: the first transposed convolution maps the 1x1 input (z, plus
 * the class embedding or the text projection) to k0 x k0 and is a plain product (N, Zin) x
 * (Zin, k0*k0*K). Every later one (kernel 4, stride 2, padding 1) is
 * split by output parity (sub-pixel form): output (2i+py, 2j+px) sums
 * exactly four input pixels (i+dy, j+dx) with fixed kernel taps, i.e. a
 * 2x2 correlation per parity, done with Winograd (middle layers) or as a
 * direct dot product over the 4 taps (last layer). Output channels are
 * padded to a multiple of 8 with zero weights.
 *
 * Speed: a DCGAN-28 width-32 unconditional image costs 4.1 M
 * multiply-adds with Winograd (7.25 M direct). On the 2-core test
 * machines (first-generation EPYC, AVX2 run as 2x128 bit) the core's FMA
 * peak is ~19.7 GMAC/s (tests/tools/fma_peak), the 6x16 kernel reaches
 * ~14 of it on cache-resident data, and the whole generator ~10 (about
 * 0.4 ms per image per core); the rest of the time is the Winograd
 * transforms and the last layer's dot products.
 *
 * The plan comes from model_gen_layers (model.c's own layer list), not
 * from tensor names; only the shapes the kernels handle are accepted.
 *
 * Backward (for gambar-sample --from-image) goes through cblas_sgemm: it
 * only has to be deterministic for a given batch, not batch-independent. */
#include "gen_infer.h"

#include "base.h"
#include "err.h"
#include "nn_par.h"

#include <immintrin.h>
#include <math.h>

#define SG_MAX_LAYERS MODEL_GEN_MAX_LAYERS
#define SG_ROWS 6  /* rows per kernel call */
#define SG_PANEL 16 /* columns per packed panel (the last may be 8) */
#define SG_WINO_BLOCK 4 /* images per Winograd block (operands stay in L2) */

typedef struct {
    int first;          /* 1: 1x1 input, kernel k0 x k0, stride 1, pad 0 */
    int Cin, Cinp;      /* input channels; channel stride of the input activations */
    int H, W;           /* input size */
    int K, Kp;          /* output channels; padded to a multiple of 8 */
    int OH, OW;         /* output size */
    int k0;             /* first layer's kernel size */
    int bn;             /* 1: BN + ReLU after the conv; 0: the last layer (tanh) */
    int ntaps;          /* 1 (first) or 4 */
    int Kdim;           /* ntaps * Cin: the reduction length */
    int Nc;             /* GEMM columns: first k0*k0*Kp, else Kp */
    int npar;           /* parities: 1 (first) or 4 */
    float *Bu[4];       /* (Kdim, Nc) row-major per parity (backward) */
    float *Bp[4];       /* the same packed as column panels (forward) */
    float *scale, *shift; /* (Kp) BN fold, padded channels 0 */
    float *Bd[4];       /* last layer: (K, 4, Cinp) per parity for the dot kernel */
    int wino;           /* 1: Winograd F(4x4, 2x2) per parity (middle layers) */
    int ntile;          /* Winograd tiles per side: ceil(H / 4) */
    float *Up[4];       /* per parity, 25 packed (Cin, Kp) panel sets: G g G^T */
} sg_layer_t;

struct ginfer {
    int L, Z, E, zin, ncls, C, H, W;
    float *embed;       /* (ncls, E) */
    int T;              /* text models: sentence vector length, else 0 */
    float *tw;          /* text models: (E, T), G's projection of the text */
    sg_layer_t ly[SG_MAX_LAYERS];
    int avx2;
    int maxcin;         /* widest Cinp (zero row length) */
    int maxnc;          /* widest Nc (dummy row length) */
    size_t maxv, maxm;  /* Winograd scratch floats per image */
};

struct ginfer_ws {
    int nmax, backward;
    float *zin;                 /* (nmax, zin) */
    float *act[SG_MAX_LAYERS];  /* (nmax, OH, OW, Kp): post-ReLU, last: raw */
    float *out;                 /* (nmax, H, W, C) tanh output (backward) */
    float *zero;                /* maxcin zeros */
    float *dummy;               /* SG_ROWS * maxnc: outputs of padding rows */
    float *g0, *g1;             /* gradient ping-pong, largest activation */
    float *dA, *dY;             /* backward GEMM operands */
    float *dzin;                /* (nmax, zin) */
    float *V, *Mw;              /* Winograd: (25, rows, Cinp) and (25, rows, Kp) */
};

/* parity p: tap t in {0,1} reads input offset tap_off[p][t] with kernel
 * index tap_k[p][t] (from oh = 2*ih - 1 + kh). */
static const int tap_off[2][2] = {{0, -1}, {0, 1}};
static const int tap_k[2][2] = {{1, 3}, {2, 0}};

static void wino_prepare(sg_layer_t *l);

static int round8(int x) { return (x + 7) & ~7; }

/* Pack Bu (Kdim, Nc) into panels of SG_PANEL (last 8) columns. */
static void pack_panels(const float *Bu, int Kdim, int Nc, float *Bp) {
    for (int j0 = 0; j0 < Nc; j0 += SG_PANEL) {
        int pw = GB_MIN(SG_PANEL, Nc - j0);
        float *pan = Bp + (size_t)Kdim * j0;
        for (int k = 0; k < Kdim; k++) memcpy(pan + (size_t)k * pw, Bu + (size_t)k * Nc + j0, (size_t)pw * 4);
    }
}

int ginfer_new(const model_t *m, int use_ema, ginfer_t **out, char *err, size_t errlen) {
    *out = NULL;
    model_gen_t mg;
    model_gen_layers(m, use_ema, &mg);
    ginfer_t *g = xcalloc(1, sizeof *g);
    g->Z = mg.z_dim;
    g->E = mg.embed_dim;
    g->zin = g->Z + g->E;
    g->ncls = mg.num_classes;
    g->C = mg.channels;
    g->H = mg.height;
    g->W = mg.width;
    int rc = 0;
    if (g->E && mg.embed) { /* class models; a text model has G.text instead */
        g->embed = xmalloc((size_t)g->ncls * g->E * sizeof(float));
        memcpy(g->embed, mg.embed, (size_t)g->ncls * g->E * sizeof(float));
    }
    if (mg.text_dim) {
        g->T = mg.text_dim;
        g->ncls = 0;
        g->embed = NULL;
        g->tw = xmalloc((size_t)g->E * g->T * sizeof(float));
        memcpy(g->tw, mg.text_weight, (size_t)g->E * g->T * sizeof(float));
    }
    int cin = g->zin, h = 1;
    if (mg.L < 2 || mg.L > SG_MAX_LAYERS) {
        rc = gb_errf(err, errlen, GB_EFORMAT, "generator of %d layers: the inference kernels take 2..%d", mg.L, SG_MAX_LAYERS);
        goto fail;
    }
    for (int i = 0; i < mg.L; i++) {
        const model_gen_layer_t *ml = &mg.layer[i];
        sg_layer_t *l = &g->ly[i];
        int ks = ml->k;
        if (ml->Cin != cin || ml->H != h || ml->W != h || ml->bn != (i < mg.L - 1)) {
            rc = gb_errf(err, errlen, GB_EFORMAT, "generator layer %d: shape does not follow the previous layer", i);
            goto fail;
        }
        if (i == 0 ? (h != 1 || ml->stride != 1 || ml->pad != 0 || ml->OH != ks || ml->OW != ks)
                   : (ks != 4 || ml->stride != 2 || ml->pad != 1 || ml->OH != 2 * h || ml->OW != 2 * h)) {
            rc = gb_errf(err, errlen, GB_EFORMAT, "generator layer %d: kernel %d stride %d padding %d on %dx%d: the inference "
                         "kernels take %s", i, ks, ml->stride, ml->pad, h, h,
                         i == 0 ? "a 1x1 input, stride 1, padding 0" : "kernel 4, stride 2, padding 1");
            goto fail;
        }
        l->first = i == 0;
        l->Cin = cin;
        l->Cinp = i == 0 ? cin : round8(cin);
        l->H = l->W = h;
        l->K = ml->K;
        l->Kp = round8(l->K);
        if (i == 0) {
            l->k0 = ks;
            l->OH = l->OW = ks;
            l->ntaps = 1;
            l->npar = 1;
            l->Nc = ks * ks * l->Kp;
        } else {
            l->OH = l->OW = 2 * h;
            l->ntaps = 4;
            l->npar = 4;
            l->Nc = l->Kp;
        }
        l->Kdim = l->ntaps * cin;
        l->bn = ml->bn;
        if (l->bn) {
            l->scale = xcalloc((size_t)l->Kp, sizeof(float));
            l->shift = xcalloc((size_t)l->Kp, sizeof(float));
            for (int c = 0; c < l->K; c++) {
                double rs = 1.0 / sqrt((double)ml->var[c] + mg.bn_eps);
                l->scale[c] = (float)(ml->gamma[c] * rs);
                l->shift[c] = (float)(ml->beta[c] - ml->mean[c] * (double)ml->gamma[c] * rs);
            }
        }
        /* weights (Cin, K, ks, ks) -> Bu per parity */
        for (int p = 0; p < l->npar; p++) {
            float *B = xcalloc((size_t)l->Kdim * l->Nc, sizeof(float));
            for (int c = 0; c < cin; c++)
                for (int k = 0; k < l->K; k++) {
                    const float *wk = ml->weight + ((size_t)c * l->K + k) * ks * ks;
                    if (l->first) {
                        for (int y = 0; y < ks; y++)
                            for (int x = 0; x < ks; x++)
                                B[(size_t)c * l->Nc + (size_t)(y * ks + x) * l->Kp + k] = wk[y * ks + x];
                    } else {
                        int py = p >> 1, px = p & 1;
                        for (int t = 0; t < 4; t++) {
                            int kh = tap_k[py][t >> 1], kw = tap_k[px][t & 1];
                            B[((size_t)t * cin + c) * l->Nc + k] = wk[kh * 4 + kw];
                        }
                    }
                }
            l->Bu[p] = B;
            if (!l->first) {
                /* the dot kernel's copy: per output channel, taps x padded channels */
                float *Dd = xcalloc((size_t)l->K * 4 * l->Cinp, sizeof(float));
                for (int k = 0; k < l->K; k++)
                    for (int t = 0; t < 4; t++)
                        for (int c = 0; c < cin; c++)
                            Dd[((size_t)k * 4 + t) * l->Cinp + c] = B[((size_t)t * cin + c) * l->Nc + k];
                l->Bd[p] = Dd;
            }
            l->Bp[p] = xmalloc((size_t)l->Kdim * l->Nc * sizeof(float));
            pack_panels(B, l->Kdim, l->Nc, l->Bp[p]);
        }
        if (l->Cinp > g->maxcin) g->maxcin = l->Cinp;
        if (l->Nc > g->maxnc) g->maxnc = l->Nc;
        g->L = i + 1;
        cin = l->K;
        h = l->OH;
    }
    if (cin != g->C || h != g->H || h != g->W) {
        rc = gb_errf(err, errlen, GB_EFORMAT, "generator layers make %dx%dx%d images, not %dx%dx%d", h, h, cin, g->W, g->H, g->C);
        goto fail;
    }
    for (int i = 1; i < g->L - 1; i++) {
        sg_layer_t *l = &g->ly[i];
        l->wino = 1;
        l->ntile = (l->H + 3) / 4;
        wino_prepare(l);
        size_t R = (size_t)l->ntile * l->ntile;
        if (25 * R * l->Cinp > g->maxv) g->maxv = 25 * R * l->Cinp;
        if (25 * R * l->Kp > g->maxm) g->maxm = 25 * R * l->Kp;
    }
    g->avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    *out = g;
    return 0;
fail:
    ginfer_free(g);
    return rc;
}

void ginfer_free(ginfer_t *g) {
    if (!g) return;
    for (int i = 0; i < SG_MAX_LAYERS; i++) {
        for (int p = 0; p < 4; p++) {
            free(g->ly[i].Bu[p]);
            free(g->ly[i].Bp[p]);
            free(g->ly[i].Bd[p]);
            free(g->ly[i].Up[p]);
        }
        free(g->ly[i].scale);
        free(g->ly[i].shift);
    }
    free(g->embed);
    free(g->tw);
    free(g);
}

int ginfer_z_dim(const ginfer_t *g) { return g->Z; }
int ginfer_text_dim(const ginfer_t *g) { return g->T; }

void ginfer_set_portable(ginfer_t *g, int portable) {
    g->avx2 = !portable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
size_t ginfer_image_floats(const ginfer_t *g) { return (size_t)g->H * g->W * g->C; }

static size_t act_floats(const sg_layer_t *l) { return (size_t)l->OH * l->OW * l->Kp; }

ginfer_ws_t *ginfer_ws_new(const ginfer_t *g, int nmax, int backward) {
    ASSERT(nmax >= 1);
    ginfer_ws_t *w = xcalloc(1, sizeof *w);
    w->nmax = nmax;
    w->backward = backward;
    w->zin = gb_xmalloc_aligned((size_t)nmax * g->zin * sizeof(float));
    size_t maxact = 0, maxrows = 0, maxkd = 0, maxkp = 0;
    for (int i = 0; i < g->L; i++) {
        const sg_layer_t *l = &g->ly[i];
        w->act[i] = gb_xmalloc_aligned((size_t)nmax * act_floats(l) * sizeof(float));
        if (act_floats(l) > maxact) maxact = act_floats(l);
        size_t rows = (size_t)l->H * l->W;
        if (rows > maxrows) maxrows = rows;
        if ((size_t)l->Kdim > maxkd) maxkd = (size_t)l->Kdim;
        if ((size_t)l->Kp > maxkp) maxkp = (size_t)l->Kp;
    }
    w->zero = xcalloc((size_t)g->maxcin + 8, sizeof(float));
    w->dummy = gb_xmalloc_aligned((size_t)SG_ROWS * g->maxnc * sizeof(float));
    if (g->maxv) {
        w->V = gb_xmalloc_aligned((size_t)SG_WINO_BLOCK * g->maxv * sizeof(float));
        w->Mw = gb_xmalloc_aligned((size_t)SG_WINO_BLOCK * g->maxm * sizeof(float));
    }
    if (backward) {
        w->out = xmalloc((size_t)nmax * ginfer_image_floats(g) * sizeof(float));
        w->g0 = xmalloc((size_t)nmax * maxact * sizeof(float));
        w->g1 = xmalloc((size_t)nmax * maxact * sizeof(float));
        w->dA = xmalloc((size_t)nmax * maxrows * maxkd * sizeof(float));
        w->dY = xmalloc((size_t)nmax * maxrows * maxkp * sizeof(float));
        w->dzin = xmalloc((size_t)nmax * g->zin * sizeof(float));
    }
    return w;
}

void ginfer_ws_free(ginfer_ws_t *w) {
    if (!w) return;
    free(w->zin);
    for (int i = 0; i < SG_MAX_LAYERS; i++) free(w->act[i]);
    free(w->out);
    free(w->zero);
    free(w->dummy);
    free(w->g0);
    free(w->g1);
    free(w->dA);
    free(w->dY);
    free(w->dzin);
    free(w->V);
    free(w->Mw);
    free(w);
}

/* ---- kernels ------------------------------------------------------------ */
/* One call computes SG_ROWS rows x pw (8 or 16) columns of one panel:
 * row r's reduction reads a[r*ntaps + t][0..Cin) for t = 0..ntaps-1 and
 * the panel rows in the same order; the result goes to c[r][0..pw) after
 * the epilogue (bn: y = fma(acc, s, h), then ReLU; else raw). s/h point at
 * the scale/shift of the panel's first column; sh2/hh2 at those of column
 * 8 (the channel index restarts every Kp columns). */
typedef struct {
    int ntaps, Cin, pw, bn;
    const float *const *a;
    const float *pan;
    float *const *c;
    const float *s0, *h0, *s1, *h1;
} sg_call_t;

static void kern_ref(const sg_call_t *k) {
    for (int r = 0; r < SG_ROWS; r++)
        for (int j = 0; j < k->pw; j++) {
            float acc = 0.0f;
            for (int t = 0; t < k->ntaps; t++) {
                const float *a = k->a[r * k->ntaps + t];
                const float *b = k->pan + (size_t)t * k->Cin * k->pw + j;
                for (int q = 0; q < k->Cin; q++) acc = fmaf(a[q], b[(size_t)q * k->pw], acc);
            }
            if (k->bn) {
                float s = j < 8 ? k->s0[j] : k->s1[j - 8], h = j < 8 ? k->h0[j] : k->h1[j - 8];
                acc = fmaf(acc, s, h);
                acc = acc > 0 ? acc : 0.0f;
            }
            k->c[r][j] = acc;
        }
}

__attribute__((target("avx2,fma"))) static void kern16_avx2(const sg_call_t *k) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const int nt = k->ntaps, Cin = k->Cin;
    const float *b = k->pan;
    for (int t = 0; t < nt; t++) {
        const float *a0 = k->a[0 * nt + t], *a1 = k->a[1 * nt + t], *a2 = k->a[2 * nt + t];
        const float *a3 = k->a[3 * nt + t], *a4 = k->a[4 * nt + t], *a5 = k->a[5 * nt + t];
        for (int q = 0; q < Cin; q++, b += 16) {
            __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
            x = _mm256_broadcast_ss(a0 + q); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
            x = _mm256_broadcast_ss(a1 + q); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
            x = _mm256_broadcast_ss(a2 + q); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
            x = _mm256_broadcast_ss(a3 + q); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
            x = _mm256_broadcast_ss(a4 + q); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
            x = _mm256_broadcast_ss(a5 + q); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
        }
    }
    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (k->bn) {
        __m256 s0 = _mm256_loadu_ps(k->s0), h0 = _mm256_loadu_ps(k->h0);
        __m256 s1 = _mm256_loadu_ps(k->s1), h1 = _mm256_loadu_ps(k->h1), z = _mm256_setzero_ps();
        for (int r = 0; r < SG_ROWS; r++) {
            acc[2 * r] = _mm256_max_ps(_mm256_fmadd_ps(acc[2 * r], s0, h0), z);
            acc[2 * r + 1] = _mm256_max_ps(_mm256_fmadd_ps(acc[2 * r + 1], s1, h1), z);
        }
    }
    for (int r = 0; r < SG_ROWS; r++) {
        _mm256_storeu_ps(k->c[r], acc[2 * r]);
        _mm256_storeu_ps(k->c[r] + 8, acc[2 * r + 1]);
    }
}

__attribute__((target("avx2,fma"))) static void kern8_avx2(const sg_call_t *k) {
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    const int nt = k->ntaps, Cin = k->Cin;
    const float *b = k->pan;
    for (int t = 0; t < nt; t++) {
        const float *a0 = k->a[0 * nt + t], *a1 = k->a[1 * nt + t], *a2 = k->a[2 * nt + t];
        const float *a3 = k->a[3 * nt + t], *a4 = k->a[4 * nt + t], *a5 = k->a[5 * nt + t];
        for (int q = 0; q < Cin; q++, b += 8) {
            __m256 b0 = _mm256_loadu_ps(b);
            c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + q), b0, c0);
            c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + q), b0, c1);
            c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + q), b0, c2);
            c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + q), b0, c3);
            c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + q), b0, c4);
            c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + q), b0, c5);
        }
    }
    __m256 acc[6] = {c0, c1, c2, c3, c4, c5};
    if (k->bn) {
        __m256 s0 = _mm256_loadu_ps(k->s0), h0 = _mm256_loadu_ps(k->h0), z = _mm256_setzero_ps();
        for (int r = 0; r < SG_ROWS; r++) acc[r] = _mm256_max_ps(_mm256_fmadd_ps(acc[r], s0, h0), z);
    }
    for (int r = 0; r < SG_ROWS; r++) _mm256_storeu_ps(k->c[r], acc[r]);
}

/* The last layer (K = image channels, 1..3): one output pixel, every
 * channel k as a dot product of the 4 taps' padded channels with Bd[k].
 * Tap t keeps 8 interleaved partial sums p[t][0..7] (lane l takes the
 * elements l, l+8, ... of the tap, fma from 0): four independent chains,
 * so the FMA latency overlaps. Then per lane s = (p0 + p1) + (p2 + p3),
 * and the 8 lanes are combined as ((s0+s4)+(s2+s6))+((s1+s5)+(s3+s7)). */
static float hsum8_ref(const float *p) { return ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7])); }

static void dot_ref(const float *const *a, const float *Bd, int Cinp, int K, float *out) {
    for (int k = 0; k < K; k++) {
        float p[4][8] = {{0}}, sl[8];
        for (int t = 0; t < 4; t++) {
            const float *b = Bd + ((size_t)k * 4 + t) * Cinp;
            for (int q = 0; q < Cinp; q += 8)
                for (int l = 0; l < 8; l++) p[t][l] = fmaf(a[t][q + l], b[q + l], p[t][l]);
        }
        for (int l = 0; l < 8; l++) sl[l] = (p[0][l] + p[1][l]) + (p[2][l] + p[3][l]);
        out[k] = hsum8_ref(sl);
    }
}

__attribute__((target("avx2,fma"))) static void dot_avx2(const float *const *a, const float *Bd, int Cinp, int K,
                                                          float *out) {
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    for (int k = 0; k < K; k++) {
        const float *b0 = Bd + (size_t)k * 4 * Cinp, *b1 = b0 + Cinp, *b2 = b1 + Cinp, *b3 = b2 + Cinp;
        __m256 p0 = _mm256_setzero_ps(), p1 = p0, p2 = p0, p3 = p0;
        for (int q = 0; q < Cinp; q += 8) {
            p0 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + q), _mm256_loadu_ps(b0 + q), p0);
            p1 = _mm256_fmadd_ps(_mm256_loadu_ps(a1 + q), _mm256_loadu_ps(b1 + q), p1);
            p2 = _mm256_fmadd_ps(_mm256_loadu_ps(a2 + q), _mm256_loadu_ps(b2 + q), p2);
            p3 = _mm256_fmadd_ps(_mm256_loadu_ps(a3 + q), _mm256_loadu_ps(b3 + q), p3);
        }
        __m256 sv = _mm256_add_ps(_mm256_add_ps(p0, p1), _mm256_add_ps(p2, p3));
        /* ((s0+s4)+(s2+s6))+((s1+s5)+(s3+s7)) */
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(sv), _mm256_extractf128_ps(sv, 1)); /* s0+s4, s1+s5, s2+s6, s3+s7 */
        __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));                                  /* (s0+s4)+(s2+s6), (s1+s5)+(s3+s7) */
        __m128 h3 = _mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1));
        out[k] = _mm_cvtss_f32(h3);
    }
}

/* All panels of one row block: a (SG_ROWS*ntaps pointers), crow (row
 * output pointers at column 0). */
static void run_gemm(const ginfer_t *g, int ntaps, int Cin, int Nc, int Kp, int bn, const float *panels,
                     const float *scale, const float *shift, const float *const *a, float *const *crow) {
    float *cp[SG_ROWS];
    const int Kdim = ntaps * Cin;
    sg_call_t k = {ntaps, Cin, 0, bn, a, NULL, cp, NULL, NULL, NULL, NULL};
    for (int j0 = 0; j0 < Nc; j0 += SG_PANEL) {
        k.pw = GB_MIN(SG_PANEL, Nc - j0);
        k.pan = panels + (size_t)Kdim * j0;
        for (int r = 0; r < SG_ROWS; r++) cp[r] = crow[r] + j0;
        if (bn) {
            int c0 = j0 % Kp, c1 = (j0 + 8) % Kp;
            k.s0 = scale + c0; k.h0 = shift + c0;
            k.s1 = scale + c1; k.h1 = shift + c1;
        }
        if (!g->avx2) kern_ref(&k);
        else if (k.pw == 16) kern16_avx2(&k);
        else kern8_avx2(&k);
    }
}

static void run_block(const ginfer_t *g, const sg_layer_t *l, int par, const float *const *a, float *const *crow) {
    run_gemm(g, l->ntaps, l->Cin, l->Nc, l->Kp, l->bn, l->Bp[par], l->scale, l->shift, a, crow);
}

/* ---- Winograd F(4x4, 2x2) for the middle layers ------------------------- */
/* Each parity of a stride-2 kernel-4 transposed convolution is a 2x2
 * correlation (see tap_off): output (2(i)+py) reads input rows i-1, i
 * (py = 0: taps kh 3, 1) or i, i+1 (py = 1: taps kh 2, 0). Tiles of 4x4
 * outputs read 5x5 inputs; Y = AT [(G g G^T) . (BT d B)] A with the
 * points 0, 1, -1, 2, inf:
 *   BT = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1]
 *   G  = [1/2 0; -1/2 -1/2; -1/6 1/6; 1/6 1/3; 0 1]
 *   AT = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1]
 * This turns 4 x 16 products per 4x4 outputs into 25 (1.96x fewer
 * multiply-adds on 7x7 maps, including the padding to 8x8); the 25
 * products are GEMMs over channels in the kernels above. The transforms
 * are plain float adds and multiplies by small constants in a fixed order,
 * computed 4 channels at a time with GCC vector extensions (no FMA, so
 * every target computes the same values); BN after the output transform
 * is y = acc * scale + shift, then ReLU. */
typedef float sg_v4 __attribute__((vector_size(16)));
typedef int32_t sg_i4 __attribute__((vector_size(16)));

static inline sg_v4 ld4(const float *p) {
    sg_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st4(float *p, sg_v4 v) { memcpy(p, &v, sizeof v); }

/* 1D input transform of 5 values */
#define BT5(d0, d1, d2, d3, d4, o)                               \
    do {                                                         \
        o[0] = (d0) * 2.0f - (d1) - (d2) * 2.0f + (d3);          \
        o[1] = -((d1) * 2.0f) - (d2) + (d3);                     \
        o[2] = (d1) * 2.0f - (d2) * 3.0f + (d3);                 \
        o[3] = (d3) - (d1);                                      \
        o[4] = (d1) * 2.0f - (d2) - (d3) * 2.0f + (d4);          \
    } while (0)
/* 1D output transform of 5 values */
#define AT5(m0, m1, m2, m3, m4, o)                               \
    do {                                                         \
        o[0] = (m0) + (m1) + (m2) + (m3);                        \
        o[1] = (m1) - (m2) + (m3) * 2.0f;                        \
        o[2] = (m1) + (m2) + (m3) * 4.0f;                        \
        o[3] = (m1) - (m2) + (m3) * 8.0f + (m4);                 \
    } while (0)

static const float g_wino[5][2] = {{0.5, 0}, {-0.5, -0.5}, {-1.0 / 6, 1.0 / 6}, {1.0 / 6, 1.0 / 3}, {0, 1}};

/* U = G g G^T for every (parity, element, cin, cout), packed in panels. */
static void wino_prepare(sg_layer_t *l) {
    const int Cin = l->Cin, Kp = l->Kp;
    float *U = xcalloc((size_t)Cin * Kp, sizeof(float));
    for (int par = 0; par < 4; par++) {
        int py = par >> 1, px = par & 1;
        /* filter taps in input order: g[0] at the lower offset */
        int ky[2] = {py ? 2 : 3, py ? 0 : 1}, kx[2] = {px ? 2 : 3, px ? 0 : 1};
        l->Up[par] = xmalloc((size_t)25 * Cin * Kp * sizeof(float));
        for (int e = 0; e < 25; e++) {
            int u = e / 5, v = e % 5;
            memset(U, 0, (size_t)Cin * Kp * sizeof(float));
            for (int c = 0; c < Cin; c++)
                for (int k = 0; k < l->K; k++) {
                    double acc = 0;
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++) {
                            /* Bu rows: tap t = ty*2 + tx with ty/tx indexing tap_off */
                            int ta = py ? a : 1 - a, tb = px ? b : 1 - b;
                            float w = l->Bu[par][((size_t)(ta * 2 + tb) * Cin + c) * l->Nc + k];
                            (void)ky;
                            (void)kx;
                            acc += (double)g_wino[u][a] * g_wino[v][b] * w;
                        }
                    U[(size_t)c * Kp + k] = (float)acc;
                }
            pack_panels(U, Cin, Kp, l->Up[par] + (size_t)e * Cin * Kp);
        }
    }
    free(U);
}

/* Images [0, n) of in -> out; called on blocks of SG_WINO_BLOCK images so
 * the transformed operands stay in the L2 cache. */
static void wino_block(const ginfer_t *g, ginfer_ws_t *w, const sg_layer_t *l, const float *in, int n, float *out) {
    const int H = l->H, W = l->W, T = l->ntile, Cp = l->Cinp, Kp = l->Kp;
    const int R = n * T * T;
    const float *a[SG_ROWS];
    float *crow[SG_ROWS];
    for (int par = 0; par < 4; par++) {
        int py = par >> 1, px = par & 1, s0y = py ? 0 : -1, s0x = px ? 0 : -1;
        /* input transform: V[row][e][c] (a row's 25 element vectors side
         * by side: with V[e][row][c] the 25 planes lie a power of two apart,
         * share L1 sets, and the transform's 25 stores per channel group
         * missed) */
        for (int row = 0; row < R; row++) {
            int img = row / (T * T), ty = (row / T) % T, tx = row % T;
            const float *dp[5][5];
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++) {
                    int y = ty * 4 + s0y + i, x = tx * 4 + s0x + j;
                    dp[i][j] = (y >= 0 && y < H && x >= 0 && x < W) ? in + ((size_t)(img * H + y) * W + x) * Cp : w->zero;
                }
            for (int c = 0; c < Cp; c += 4) {
                sg_v4 t[5][5], o[5];
                for (int i = 0; i < 5; i++) {
                    BT5(ld4(dp[i][0] + c), ld4(dp[i][1] + c), ld4(dp[i][2] + c), ld4(dp[i][3] + c),
                        ld4(dp[i][4] + c), o);
                    for (int v = 0; v < 5; v++) t[i][v] = o[v];
                }
                for (int v = 0; v < 5; v++) {
                    BT5(t[0][v], t[1][v], t[2][v], t[3][v], t[4][v], o);
                    for (int u = 0; u < 5; u++) st4(w->V + ((size_t)row * 25 + u * 5 + v) * Cp + c, o[u]);
                }
            }
        }
        /* 25 products over channels */
        for (int e = 0; e < 25; e++) {
            for (int m0 = 0; m0 < R; m0 += SG_ROWS) {
                for (int r = 0; r < SG_ROWS; r++) {
                    int m = m0 + r;
                    a[r] = m < R ? w->V + ((size_t)m * 25 + e) * Cp : w->zero;
                    crow[r] = m < R ? w->Mw + ((size_t)m * 25 + e) * Kp : w->dummy + (size_t)r * g->maxnc;
                }
                run_gemm(g, 1, l->Cin, Kp, Kp, 0, l->Up[par] + (size_t)e * l->Cin * Kp, NULL, NULL, a, crow);
            }
        }
        /* output transform, BN, ReLU, scatter to the parity's pixels */
        for (int row = 0; row < R; row++) {
            int img = row / (T * T), ty = (row / T) % T, tx = row % T;
            for (int c = 0; c < Kp; c += 4) {
                sg_v4 t[4][5], o[4], y[4];
                for (int v = 0; v < 5; v++) {
                    AT5(ld4(w->Mw + ((size_t)row * 25 + 0 * 5 + v) * Kp + c),
                        ld4(w->Mw + ((size_t)row * 25 + 1 * 5 + v) * Kp + c),
                        ld4(w->Mw + ((size_t)row * 25 + 2 * 5 + v) * Kp + c),
                        ld4(w->Mw + ((size_t)row * 25 + 3 * 5 + v) * Kp + c),
                        ld4(w->Mw + ((size_t)row * 25 + 4 * 5 + v) * Kp + c), o);
                    for (int u = 0; u < 4; u++) t[u][v] = o[u];
                }
                sg_v4 sc = ld4(l->scale + c), sh = ld4(l->shift + c), zero = {0};
                for (int u = 0; u < 4; u++) {
                    int i = ty * 4 + u;
                    AT5(t[u][0], t[u][1], t[u][2], t[u][3], t[u][4], y);
                    if (i >= H) continue;
                    for (int v = 0; v < 4; v++) {
                        int j = tx * 4 + v;
                        if (j >= W) continue;
                        sg_v4 r = y[v] * sc + sh;
                        r = (sg_v4)((sg_i4)r & (r > zero)); /* ReLU: r > 0 ? r : +0 */
                        st4(out + ((size_t)(img * l->OH + 2 * i + py) * l->OW + 2 * j + px) * Kp + c, r);
                    }
                }
            }
        }
    }
}

static void wino_forward(const ginfer_t *g, ginfer_ws_t *w, const sg_layer_t *l, const float *in, int n) {
    float *out = w->act[l - g->ly];
    size_t isz = (size_t)l->H * l->W * l->Cinp, osz = act_floats(l);
    for (int i0 = 0; i0 < n; i0 += SG_WINO_BLOCK)
        wino_block(g, w, l, in + (size_t)i0 * isz, GB_MIN(SG_WINO_BLOCK, n - i0), out + (size_t)i0 * osz);
}

static void layer_forward(const ginfer_t *g, ginfer_ws_t *w, int li, const float *in, int n) {
    const sg_layer_t *l = &g->ly[li];
    float *out = w->act[li];
    const float *a[SG_ROWS * 4];
    float *crow[SG_ROWS];
    if (l->first) {
        for (int m0 = 0; m0 < n; m0 += SG_ROWS) {
            for (int r = 0; r < SG_ROWS; r++) {
                int m = m0 + r;
                a[r] = m < n ? in + (size_t)m * l->Cinp : w->zero;
                crow[r] = m < n ? out + (size_t)m * l->Nc : w->dummy + (size_t)r * g->maxnc;
            }
            run_block(g, l, 0, a, crow);
        }
        return;
    }
    if (l->wino) {
        wino_forward(g, w, l, in, n);
        return;
    }
    const int H = l->H, W = l->W, HW = H * W;
    const int M = n * HW;
    if (!l->bn) {
        for (int par = 0; par < 4; par++) {
            int py = par >> 1, px = par & 1;
            for (int img = 0; img < n; img++)
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++) {
                        for (int t = 0; t < 4; t++) {
                            int y = i + tap_off[py][t >> 1], x = j + tap_off[px][t & 1];
                            a[t] = (y >= 0 && y < H && x >= 0 && x < W)
                                       ? in + ((size_t)(img * H + y) * W + x) * l->Cinp
                                       : w->zero;
                        }
                        float *o = out + ((size_t)(img * l->OH + 2 * i + py) * l->OW + 2 * j + px) * l->Kp;
                        if (g->avx2) dot_avx2(a, l->Bd[par], l->Cinp, l->K, o);
                        else dot_ref(a, l->Bd[par], l->Cinp, l->K, o);
                    }
        }
        return;
    }
    for (int par = 0; par < 4; par++) {
        int py = par >> 1, px = par & 1;
        for (int m0 = 0; m0 < M; m0 += SG_ROWS) {
            for (int r = 0; r < SG_ROWS; r++) {
                int m = m0 + r;
                if (m >= M) {
                    for (int t = 0; t < 4; t++) a[r * 4 + t] = w->zero;
                    crow[r] = w->dummy + (size_t)r * g->maxnc;
                    continue;
                }
                int img = m / HW, p = m % HW, i = p / W, j = p % W;
                for (int t = 0; t < 4; t++) {
                    int y = i + tap_off[py][t >> 1], x = j + tap_off[px][t & 1];
                    a[r * 4 + t] = (y >= 0 && y < H && x >= 0 && x < W)
                                       ? in + ((size_t)(img * H + y) * W + x) * l->Cinp
                                       : w->zero;
                }
                crow[r] = out + ((size_t)(img * l->OH + 2 * i + py) * l->OW + 2 * j + px) * l->Kp;
            }
            run_block(g, l, par, a, crow);
        }
    }
}

/* The first layer's input rows [z, e]: e = embed[label], or for text
 * models e = W c computed as gambar-g1 says (an fmaf chain per component,
 * over the text in order from 0: a pure function of the image's own c). */
static void make_zin(const ginfer_t *g, ginfer_ws_t *w, const float *z, const int32_t *labels, const float *text,
                     int n) {
    for (int i = 0; i < n; i++) {
        float *row = w->zin + (size_t)i * g->zin;
        memcpy(row, z + (size_t)i * g->Z, (size_t)g->Z * sizeof(float));
        if (g->T) {
            ASSERT(text);
            const float *c = text + (size_t)i * g->T;
            for (int k = 0; k < g->E; k++) {
                const float *wk = g->tw + (size_t)k * g->T;
                float acc = 0.0f;
                for (int t = 0; t < g->T; t++) acc = fmaf(wk[t], c[t], acc);
                row[g->Z + k] = acc;
            }
        } else if (g->E) {
            ASSERT(labels && labels[i] >= 0 && labels[i] < g->ncls);
            memcpy(row + g->Z, g->embed + (size_t)labels[i] * g->E, (size_t)g->E * sizeof(float));
        }
    }
}

static void forward_zin(const ginfer_t *g, ginfer_ws_t *w, int n, float *out);

void ginfer_forward(const ginfer_t *g, ginfer_ws_t *w, const float *z, const int32_t *labels, int n, float *out) {
    ASSERT(n >= 1 && n <= w->nmax && !g->T);
    make_zin(g, w, z, labels, NULL, n);
    forward_zin(g, w, n, out);
}

void ginfer_forward_text(const ginfer_t *g, ginfer_ws_t *w, const float *z, const float *text, int n, float *out) {
    ASSERT(n >= 1 && n <= w->nmax && g->T && text);
    make_zin(g, w, z, NULL, text, n);
    forward_zin(g, w, n, out);
}

static void forward_zin(const ginfer_t *g, ginfer_ws_t *w, int n, float *out) {
    const float *in = w->zin;
    for (int i = 0; i < g->L; i++) {
        layer_forward(g, w, i, in, n);
        in = w->act[i];
    }
    const sg_layer_t *l = &g->ly[g->L - 1];
    const size_t px = (size_t)n * g->H * g->W;
    for (size_t p = 0; p < px; p++)
        for (int c = 0; c < g->C; c++) out[p * g->C + c] = tanhf(in[p * l->Kp + c]);
    if (w->backward) memcpy(w->out, out, px * g->C * sizeof(float));
}

void ginfer_backward_z(const ginfer_t *g, ginfer_ws_t *w, const float *dout, int n, float *dz) {
    ASSERT(w->backward && n >= 1 && n <= w->nmax);
    /* gradient w.r.t. the last layer's raw output (its GEMM result) */
    const sg_layer_t *last = &g->ly[g->L - 1];
    const size_t px = (size_t)n * g->H * g->W;
    float *gr = w->g0, *gn = w->g1;
    memset(gr, 0, px * last->Kp * sizeof(float));
    for (size_t p = 0; p < px; p++)
        for (int c = 0; c < g->C; c++) {
            float y = w->out[p * g->C + c];
            gr[p * last->Kp + c] = dout[p * g->C + c] * (1.0f - y * y);
        }
    for (int li = g->L - 1; li >= 1; li--) {
        const sg_layer_t *l = &g->ly[li];
        const int H = l->H, W = l->W, HW = H * W, M = n * HW;
        /* gn: gradient w.r.t. this layer's input (n, H, W, Cinp) */
        memset(gn, 0, (size_t)M * l->Cinp * sizeof(float));
        for (int par = 0; par < 4; par++) {
            int py = par >> 1, px2 = par & 1;
            for (int m = 0; m < M; m++) {
                int img = m / HW, p = m % HW, i = p / W, j = p % W;
                memcpy(w->dY + (size_t)m * l->Kp,
                       gr + ((size_t)(img * l->OH + 2 * i + py) * l->OW + 2 * j + px2) * l->Kp,
                       (size_t)l->Kp * sizeof(float));
            }
            nn_sgemm(0, 1, M, l->Kdim, l->Nc, 1.0f, w->dY, l->Kp,
                     l->Bu[par], l->Nc, 0.0f, w->dA, l->Kdim);
            for (int m = 0; m < M; m++) {
                int img = m / HW, p = m % HW, i = p / W, j = p % W;
                for (int t = 0; t < 4; t++) {
                    int y = i + tap_off[py][t >> 1], x = j + tap_off[px2][t & 1];
                    if (y < 0 || y >= H || x < 0 || x >= W) continue;
                    float *dst = gn + ((size_t)(img * H + y) * W + x) * l->Cinp;
                    const float *src = w->dA + (size_t)m * l->Kdim + (size_t)t * l->Cin;
                    for (int c = 0; c < l->Cin; c++) dst[c] += src[c];
                }
            }
        }
        /* through the previous layer's ReLU and BN: gradient of its GEMM output */
        const sg_layer_t *pl = &g->ly[li - 1];
        const float *act = w->act[li - 1];
        size_t cnt = (size_t)n * pl->OH * pl->OW;
        for (size_t p = 0; p < cnt; p++)
            for (int c = 0; c < pl->Kp; c++) {
                size_t k = p * pl->Kp + c;
                gn[k] = act[k] > 0 ? gn[k] * pl->scale[c] : 0.0f;
            }
        float *t = gr;
        gr = gn;
        gn = t;
    }
    const sg_layer_t *l0 = &g->ly[0];
    nn_sgemm(0, 1, n, g->zin, l0->Nc, 1.0f, gr, l0->Nc, l0->Bu[0], l0->Nc,
             0.0f, w->dzin, g->zin);
    for (int i = 0; i < n; i++) memcpy(dz + (size_t)i * g->Z, w->dzin + (size_t)i * g->zin, (size_t)g->Z * sizeof(float));
}

/* ---- many images over the nn threads ------------------------------------- */

#define GI_CHUNK 64 /* images per ginfer_forward call in ginfer_generate */

typedef struct {
    const ginfer_t *g;
    const float *z;
    const int32_t *labels;
    const float *text;
    int n;
    float *out;
} gi_par_t;

static void generate_part(void *ctx, int part, int nparts) {
    const gi_par_t *a = ctx;
    int lo, hi;
    nn_par_range(a->n, part, nparts, &lo, &hi);
    if (lo >= hi) return;
    ginfer_ws_t *w = ginfer_ws_new(a->g, GB_MIN(GI_CHUNK, hi - lo), 0);
    size_t P = ginfer_image_floats(a->g);
    for (int i0 = lo; i0 < hi; i0 += GI_CHUNK) {
        int n = GB_MIN(GI_CHUNK, hi - i0);
        if (a->g->T)
            ginfer_forward_text(a->g, w, a->z + (size_t)i0 * a->g->Z, a->text + (size_t)i0 * a->g->T, n,
                                a->out + (size_t)i0 * P);
        else
            ginfer_forward(a->g, w, a->z + (size_t)i0 * a->g->Z, a->labels ? a->labels + i0 : NULL, n,
                           a->out + (size_t)i0 * P);
    }
    ginfer_ws_free(w);
}

void ginfer_generate(const ginfer_t *g, const float *z, const int32_t *labels, int n, float *out) {
    ASSERT(n >= 1 && !g->T);
    gi_par_t a = {g, z, g->E ? labels : NULL, NULL, n, out};
    nn_par_run(generate_part, &a);
}

void ginfer_generate_text(const ginfer_t *g, const float *z, const float *text, int n, float *out) {
    ASSERT(n >= 1 && g->T && text);
    gi_par_t a = {g, z, NULL, text, n, out};
    nn_par_run(generate_part, &a);
}

void ginfer_to_u8(const float *x, size_t n, uint8_t *px) {
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] + 1.0f) * 127.5f;
        px[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)lrintf(v);
    }
}
