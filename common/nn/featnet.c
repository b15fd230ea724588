/* featnet.c - the evaluator's feature classifier (see featnet.h).
 *
 * Laid out like model.c on a small scale: one allocation per kind
 * (parameters, gradients, Adam m, Adam v, activations, workspace) made in
 * featnet_new and carved into named tensors, so the training step and the
 * forward pass allocate nothing. Forward passes take any N and run in
 * chunks of max_batch, re-deriving the conv shapes per chunk (conv_init is
 * arithmetic only). */
#include "featnet.h"

#include "base.h"
#include "err.h"
#include "log.h"
#include "nn.h"
#include "nn_extra.h"
#include "rng.h"

#include <math.h>
#include <string.h>


enum { T_W1, T_B1, T_W2, T_B2, T_W3, T_B3, T_W4, T_B4, T_COUNT };
_Static_assert(T_COUNT == FEATNET_NTENSORS, "featnet.h counts the tensors");
static const char *const tnames[T_COUNT] = {"F.conv1.weight", "F.conv1.bias", "F.conv2.weight", "F.conv2.bias",
                                            "F.fc1.weight",   "F.fc1.bias",   "F.fc2.weight",   "F.fc2.bias"};

struct featnet {
    int C, H, W, K, B;
    int w1, w2;            /* conv1 and conv2 output channels */
    int H1, W1, H2, W2, F; /* conv1 and conv2 output sizes, fc1 input */
    int ndim[T_COUNT];
    int64_t shape[T_COUNT][4];
    size_t off[T_COUNT], len[T_COUNT], nparams;
    float *p, *g, *m, *v;   /* parameters, gradients, Adam moments */
    float *a1, *a2, *f, *lg; /* activations for B images */
    float *da1, *da2, *df, *dlg;
    float *ws;
    adam_t adam;
};

static void set_shape(featnet_t *f, int t, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    f->ndim[t] = nd;
    f->shape[t][0] = a;
    f->shape[t][1] = b;
    f->shape[t][2] = c;
    f->shape[t][3] = d;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)f->shape[t][i];
    f->len[t] = n;
}

featnet_t *featnet_new_widths(int C, int H, int W, int K, int w1, int w2, int max_batch, uint64_t seed, char *err,
                              size_t errlen) {
    if ((C != 1 && C != 3) || H < 8 || W < 8 || H > 256 || W > 256 || H % 4 || W % 4) {
        gb_errf(err, errlen, 0, "feature network needs 1 or 3 channels and a size that is a multiple of 4 in 8..256 "
                                "(got %dx%dx%d)", C, H, W);
        return NULL;
    }
    if (w1 < 1 || w1 > 1024 || w2 < 1 || w2 > 1024) {
        gb_errf(err, errlen, 0, "feature network widths must be 1..1024 (got %d, %d)", w1, w2);
        return NULL;
    }
    if (K < 1 || K > 1024 || max_batch < 1) {
        gb_errf(err, errlen, 0, "feature network needs 1..1024 classes (got %d)", K);
        return NULL;
    }
    featnet_t *f = xcalloc(1, sizeof *f);
    f->C = C, f->H = H, f->W = W, f->K = K, f->B = max_batch;
    f->w1 = w1, f->w2 = w2;
    const int C1 = w1, C2 = w2;
    conv_t c1, c2;
    ASSERT(conv_init(&c1, max_batch, C, H, W, C1, 5, 5, 2, 2) == 0);
    f->H1 = c1.OH, f->W1 = c1.OW;
    ASSERT(conv_init(&c2, max_batch, C1, f->H1, f->W1, C2, 3, 3, 2, 1) == 0);
    f->H2 = c2.OH, f->W2 = c2.OW;
    f->F = C2 * f->H2 * f->W2;
    set_shape(f, T_W1, 4, C1, C, 5, 5);
    set_shape(f, T_B1, 1, C1, 0, 0, 0);
    set_shape(f, T_W2, 4, C2, C1, 3, 3);
    set_shape(f, T_B2, 1, C2, 0, 0, 0);
    set_shape(f, T_W3, 2, FEATNET_DIM, f->F, 0, 0);
    set_shape(f, T_B3, 1, FEATNET_DIM, 0, 0, 0);
    set_shape(f, T_W4, 2, K, FEATNET_DIM, 0, 0);
    set_shape(f, T_B4, 1, K, 0, 0, 0);
    size_t n = 0;
    for (int t = 0; t < T_COUNT; t++) {
        f->off[t] = n;
        n += (f->len[t] + 15) & ~(size_t)15;
    }
    f->nparams = n;
    f->p = gb_xmalloc_aligned(n * sizeof(float));
    f->g = gb_xmalloc_aligned(n * sizeof(float));
    f->m = gb_xmalloc_aligned(n * sizeof(float));
    f->v = gb_xmalloc_aligned(n * sizeof(float));
    memset(f->p, 0, n * sizeof(float));
    memset(f->m, 0, n * sizeof(float));
    memset(f->v, 0, n * sizeof(float));
    rng_t r;
    rng_seed(&r, seed);
    const size_t fan_in[T_COUNT] = {(size_t)C * 25, 0, (size_t)C1 * 9, 0, (size_t)f->F, 0, FEATNET_DIM, 0};
    for (int t = 0; t < T_COUNT; t += 2) {
        float sd = sqrtf(2.0f / (float)fan_in[t]);
        float *w = f->p + f->off[t];
        for (size_t i = 0; i < f->len[t]; i++) w[i] = sd * rng_normal(&r);
    }
    size_t B = (size_t)max_batch;
    size_t n1 = B * C1 * f->H1 * f->W1, n2 = B * (size_t)f->F;
    f->a1 = gb_xmalloc_aligned(n1 * sizeof(float));
    f->da1 = gb_xmalloc_aligned(n1 * sizeof(float));
    f->a2 = gb_xmalloc_aligned(n2 * sizeof(float));
    f->da2 = gb_xmalloc_aligned(n2 * sizeof(float));
    f->f = gb_xmalloc_aligned(B * FEATNET_DIM * sizeof(float));
    f->df = gb_xmalloc_aligned(B * FEATNET_DIM * sizeof(float));
    f->lg = gb_xmalloc_aligned(B * K * sizeof(float));
    f->dlg = gb_xmalloc_aligned(B * K * sizeof(float));
    size_t ws = GB_MAX(conv2d_ws_floats(&c1), conv2d_ws_floats(&c2));
    f->ws = gb_xmalloc_aligned((ws ? ws : 1) * sizeof(float));
    f->adam = (adam_t){2e-3f, 0.9f, 0.999f, 1e-8f, 0};
    return f;
}

featnet_t *featnet_new(int C, int H, int W, int K, int max_batch, uint64_t seed, char *err, size_t errlen) {
    return featnet_new_widths(C, H, W, K, FEATNET_W1, FEATNET_W2, max_batch, seed, err, errlen);
}

void featnet_free(featnet_t *f) {
    if (!f) return;
    free(f->p), free(f->g), free(f->m), free(f->v);
    free(f->a1), free(f->da1), free(f->a2), free(f->da2);
    free(f->f), free(f->df), free(f->lg), free(f->dlg), free(f->ws);
    free(f);
}

int featnet_channels(const featnet_t *f) { return f->C; }
int featnet_height(const featnet_t *f) { return f->H; }
int featnet_width(const featnet_t *f) { return f->W; }
int featnet_classes(const featnet_t *f) { return f->K; }

#define P(f, t) ((f)->p + (f)->off[t])
#define G(f, t) ((f)->g + (f)->off[t])

/* forward n <= B images into the activation buffers */
static void forward_chunk(featnet_t *f, const float *x, int n, conv_t *c1, conv_t *c2) {
    const int C1 = f->w1, C2 = f->w2;
    ASSERT(conv_init(c1, n, f->C, f->H, f->W, C1, 5, 5, 2, 2) == 0);
    ASSERT(conv_init(c2, n, C1, f->H1, f->W1, C2, 3, 3, 2, 1) == 0);
    conv2d_forward(c1, x, P(f, T_W1), P(f, T_B1), f->a1, f->ws);
    relu_forward((size_t)n * C1 * f->H1 * f->W1, f->a1, f->a1);
    conv2d_forward(c2, f->a1, P(f, T_W2), P(f, T_B2), f->a2, f->ws);
    relu_forward((size_t)n * f->F, f->a2, f->a2);
    linear_forward(n, f->F, FEATNET_DIM, f->a2, P(f, T_W3), P(f, T_B3), f->f);
    relu_forward((size_t)n * FEATNET_DIM, f->f, f->f);
    linear_forward(n, FEATNET_DIM, f->K, f->f, P(f, T_W4), P(f, T_B4), f->lg);
}

void featnet_forward(featnet_t *f, const float *x, size_t N, float *feat, float *logits) {
    size_t img = (size_t)f->C * f->H * f->W;
    conv_t c1, c2;
    for (size_t i = 0; i < N; i += (size_t)f->B) {
        int n = (int)GB_MIN((size_t)f->B, N - i);
        forward_chunk(f, x + i * img, n, &c1, &c2);
        if (feat) memcpy(feat + i * FEATNET_DIM, f->f, (size_t)n * FEATNET_DIM * sizeof(float));
        if (logits) memcpy(logits + i * f->K, f->lg, (size_t)n * f->K * sizeof(float));
    }
}

float featnet_train_step(featnet_t *f, const float *x, const int32_t *labels, int N, float lr, int *correct) {
    const int C1 = f->w1;
    ASSERT(N >= 1 && N <= f->B);
    conv_t c1, c2;
    forward_chunk(f, x, N, &c1, &c2);
    float loss = softmax_ce(N, f->K, f->lg, labels, f->dlg, correct);
    memset(f->g, 0, f->nparams * sizeof(float));
    linear_backward(N, FEATNET_DIM, f->K, f->f, P(f, T_W4), f->dlg, f->df, G(f, T_W4), G(f, T_B4));
    relu_backward((size_t)N * FEATNET_DIM, f->f, f->df, f->df);
    linear_backward(N, f->F, FEATNET_DIM, f->a2, P(f, T_W3), f->df, f->da2, G(f, T_W3), G(f, T_B3));
    relu_backward((size_t)N * f->F, f->a2, f->da2, f->da2);
    conv2d_backward(&c2, f->a1, P(f, T_W2), f->da2, f->da1, G(f, T_W2), G(f, T_B2), f->ws);
    relu_backward((size_t)N * C1 * f->H1 * f->W1, f->a1, f->da1, f->da1);
    conv2d_backward(&c1, x, P(f, T_W1), f->da1, NULL, G(f, T_W1), G(f, T_B1), f->ws);
    f->adam.lr = lr;
    adam_begin(&f->adam);
    adam_update(&f->adam, f->nparams, f->p, f->g, f->m, f->v);
    return loss;
}

double featnet_accuracy(featnet_t *f, const float *x, const int32_t *labels, size_t N) {
    size_t img = (size_t)f->C * f->H * f->W, ok = 0, seen = 0;
    int32_t *pred = xmalloc((size_t)f->B * sizeof(int32_t));
    conv_t c1, c2;
    for (size_t i = 0; i < N; i += (size_t)f->B) {
        int n = (int)GB_MIN((size_t)f->B, N - i);
        forward_chunk(f, x + i * img, n, &c1, &c2);
        argmax_rows(n, f->K, f->lg, pred);
        for (int j = 0; j < n; j++) {
            if (labels[i + j] < 0) continue;
            seen++;
            ok += pred[j] == labels[i + j];
        }
    }
    free(pred);
    return seen ? (double)ok / (double)seen : 0;
}

void featnet_px_to_float(const uint8_t *px, int C, int H, int W, float *out) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                out[((size_t)c * H + y) * W + x] = (float)px[((size_t)y * W + x) * C + c] * (2.0f / 255.0f) - 1.0f;
}

int featnet_width1(const featnet_t *f) { return f->w1; }
int featnet_width2(const featnet_t *f) { return f->w2; }
uint64_t featnet_steps(const featnet_t *f) { return f->adam.t; }

int featnet_tensors(featnet_t *f, featnet_tensor_t t[FEATNET_NTENSORS]) {
    for (int i = 0; i < T_COUNT; i++) {
        t[i].name = tnames[i];
        t[i].ndim = f->ndim[i];
        memcpy(t[i].shape, f->shape[i], sizeof t[i].shape);
        t[i].len = f->len[i];
        t[i].data = f->p + f->off[i];
    }
    return T_COUNT;
}
