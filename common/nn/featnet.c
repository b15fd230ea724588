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
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>


enum { T_W1, T_B1, T_W2, T_B2, T_W3, T_B3, T_W4, T_B4, T_COUNT };
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

static void seterr(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t n, const char *fmt, ...) {
    if (!err || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

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

static featnet_t *featnet_new_w(int C, int H, int W, int K, int w1, int w2, int max_batch, uint64_t seed, char *err,
                                size_t errlen) {
    if ((C != 1 && C != 3) || H < 8 || W < 8 || H > 256 || W > 256 || H % 4 || W % 4) {
        seterr(err, errlen, "feature network needs 1 or 3 channels and a size that is a multiple of 4 in 8..256 "
                            "(got %dx%dx%d)", C, H, W);
        return NULL;
    }
    if (w1 < 1 || w1 > 1024 || w2 < 1 || w2 > 1024) {
        seterr(err, errlen, "feature network widths must be 1..1024 (got %d, %d)", w1, w2);
        return NULL;
    }
    if (K < 1 || K > 1024 || max_batch < 1) {
        seterr(err, errlen, "feature network needs 1..1024 classes (got %d)", K);
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
    return featnet_new_w(C, H, W, K, FEATNET_W1, FEATNET_W2, max_batch, seed, err, errlen);
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

int featnet_read_store(store_t *s, const uint64_t *idx, size_t n, float *x, int32_t *labels) {
    const Gambar__DatasetInfo *info = store_info(s);
    if (!info) return GB_ENOTFOUND;
    int C = (int)info->channels, H = (int)info->height, W = (int)info->width;
    size_t img = (size_t)C * H * W;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = idx ? idx[i] : i;
        const uint8_t *px;
        size_t npx;
        int32_t lab;
        int rc = store_get_pixels(s, k, &px, &npx, &lab);
        if (rc == 0 && npx != img) rc = GB_ECORRUPT;
        if (rc != 0) {
            log_error("dataset example %llu: %s", (unsigned long long)k, err_str(rc));
            return rc;
        }
        featnet_px_to_float(px, C, H, W, x + i * img);
        if (labels) labels[i] = lab;
    }
    return 0;
}

/* Load every labelled example of s: *x (n, C, H, W), *y (n). */
static int load_labelled(store_t *s, float **x, int32_t **y, size_t *n) {
    const Gambar__DatasetInfo *info = store_info(s);
    size_t count = (size_t)store_count(s), img = (size_t)info->channels * info->height * info->width, k = 0;
    *x = xmalloc((count ? count : 1) * img * sizeof(float));
    *y = xmalloc((count ? count : 1) * sizeof(int32_t));
    for (size_t i = 0; i < count; i++) {
        const uint8_t *px;
        size_t npx;
        int32_t lab;
        int rc = store_get_pixels(s, i, &px, &npx, &lab);
        if (rc == 0 && npx != img) rc = GB_ECORRUPT;
        if (rc != 0) {
            log_error("dataset example %zu: %s", i, err_str(rc));
            free(*x), free(*y);
            *x = NULL, *y = NULL;
            return rc;
        }
        if (lab < 0 || lab >= (int32_t)info->n_class_names) continue;
        featnet_px_to_float(px, (int)info->channels, (int)info->height, (int)info->width, *x + k * img);
        (*y)[k++] = lab;
    }
    *n = k;
    return 0;
}

int featnet_fit(store_t *train, store_t *test, int epochs, uint64_t seed, featnet_t **out, double *train_acc,
                double *test_acc, char *err, size_t errlen) {
    *out = NULL;
    if (test_acc) *test_acc = -1;
    if (train_acc) *train_acc = -1;
    const Gambar__DatasetInfo *info = store_info(train);
    if (!info || info->n_class_names == 0) {
        seterr(err, errlen, "the dataset has no class labels (DatasetInfo.class_names is empty), so a classifier "
                            "cannot be fitted");
        return GB_EFORMAT;
    }
    const Gambar__DatasetInfo *tinfo = test ? store_info(test) : NULL;
    if (test && (!tinfo || tinfo->channels != info->channels || tinfo->height != info->height ||
                 tinfo->width != info->width || tinfo->n_class_names != info->n_class_names)) {
        seterr(err, errlen, "the test dataset does not match the training dataset (shape or number of classes)");
        return GB_EMISMATCH;
    }
    int C = (int)info->channels, H = (int)info->height, W = (int)info->width, K = (int)info->n_class_names;
    const int B = 64;
    featnet_t *f = featnet_new(C, H, W, K, B, seed, err, errlen);
    if (!f) return GB_EUNSUPPORTED;
    float *x = NULL, *tx = NULL;
    int32_t *y = NULL, *ty = NULL;
    size_t n = 0, tn = 0;
    int rc = load_labelled(train, &x, &y, &n);
    if (rc == 0 && test) rc = load_labelled(test, &tx, &ty, &tn);
    if (rc != 0) goto fail;
    if (n < (size_t)B) {
        seterr(err, errlen, "only %zu labelled examples; at least %d are needed", n, B);
        rc = GB_EFORMAT;
        goto fail;
    }
    size_t img = (size_t)C * H * W;
    float *bx = xmalloc((size_t)B * img * sizeof(float));
    int32_t by[64];
    uint64_t *perm = xmalloc(n * sizeof(uint64_t));
    size_t steps_per_epoch = n / B, total = steps_per_epoch * (size_t)epochs, step = 0;
    const float lr0 = 2e-3f, lr1 = 1e-4f;
    rng_t r;
    rng_seed(&r, seed ^ 0xfea7ULL);
    double t0 = gb_now();
    for (int e = 0; e < epochs && rc == 0; e++) {
        for (size_t i = 0; i < n; i++) perm[i] = i;
        rng_shuffle_u64(&r, perm, n);
        double loss = 0;
        size_t ok = 0;
        for (size_t s = 0; s < steps_per_epoch; s++, step++) {
            if (sig_stop_requested()) {
                rc = GB_EINTR;
                break;
            }
            for (int j = 0; j < B; j++) {
                memcpy(bx + (size_t)j * img, x + perm[s * B + j] * img, img * sizeof(float));
                by[j] = y[perm[s * B + j]];
            }
            float lr = lr1 + 0.5f * (lr0 - lr1) * (1.0f + cosf(3.14159265f * (float)step / (float)total));
            int c = 0;
            loss += featnet_train_step(f, bx, by, B, lr, &c);
            ok += (size_t)c;
        }
        if (rc) break;
        double ta = test ? featnet_accuracy(f, tx, ty, tn) : -1;
        char tacc[48] = "";
        if (test) snprintf(tacc, sizeof tacc, ", test accuracy %.4f", ta);
        log_info("feature network epoch %d/%d: loss %.4f, train accuracy %.4f%s (%.1f s)", e + 1, epochs,
                 loss / (double)steps_per_epoch, (double)ok / (double)(steps_per_epoch * B), tacc, gb_now() - t0);
        if (train_acc) *train_acc = (double)ok / (double)(steps_per_epoch * B);
        if (test_acc) *test_acc = ta;
    }
    free(bx);
    free(perm);
    if (rc == GB_EINTR) seterr(err, errlen, "interrupted");
fail:
    free(x), free(y), free(tx), free(ty);
    if (rc != 0) {
        featnet_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

ckpt_builder_t *featnet_to_builder(const featnet_t *f, const char *const *class_names, const uint8_t digest[32],
                                   const char *features_kind) {
    ckpt_builder_t *b = ckpt_builder_new();
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    ck->model->family = ckpt_builder_strdup(b, "featnet");
    ck->model->height = (uint32_t)f->H;
    ck->model->width = (uint32_t)f->W;
    ck->model->channels = (uint32_t)f->C;
    ck->model->num_classes = (uint32_t)f->K;
    ck->model->g_mult = (uint32_t)f->w1;
    ck->model->d_mult = (uint32_t)f->w2;
    ck->model->conditional = 0;
    ck->model->loss = ckpt_builder_strdup(b, "softmax_ce");
    if (class_names)
        for (int k = 0; k < f->K; k++) ckpt_add_class_name(b, class_names[k]);
    for (int t = 0; t < T_COUNT; t++)
        ASSERT(ckpt_add_tensor(b, tnames[t], f->shape[t], f->ndim[t], f->p + f->off[t]) == 0);
    ck->state->step = f->adam.t;
    if (digest) ck->dataset_digest = ckpt_builder_bytes(b, digest, 32);
    ck->software_version = ckpt_builder_strdup(b, "gambar " GAMBAR_VERSION);
    ck->created_unix = (int64_t)gb_wall();
    ckpt_set_note(b, "kind", "featnet");
    ckpt_set_note(b, "features", features_kind);
    return b;
}

/* fsync the folder holding path */
static int fsync_dir_of(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = 0;
    else if (slash) *slash = 0;
    else strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    if (fd < 0 || fsync(fd) != 0) rc = errno;
    if (fd >= 0) close(fd);
    free(dir);
    return rc;
}

int featnet_write_gck(const char *path, const Gambar__Checkpoint *ck) {
    char tmpdir[4096], saved[4096];
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path) : 1;
    if (snprintf(tmpdir, sizeof tmpdir, "%.*s/.gck-%ld.tmp", dl, slash ? path : ".", (long)getpid()) >=
        (int)sizeof tmpdir)
        return ENAMETOOLONG;
    int rc = ckpt_save(tmpdir, ck, 0, saved, sizeof saved, NULL);
    if (rc != 0) {
        log_error("%s: cannot write: %s", path, err_str(rc));
        rmdir(tmpdir);
        return rc;
    }
    if (rename(saved, path) != 0) {
        rc = errno;
        log_error("%s: rename from %s: %s", path, saved, err_str(rc));
        unlink(saved);
        rmdir(tmpdir);
        return rc;
    }
    rmdir(tmpdir);
    rc = fsync_dir_of(path);
    if (rc != 0) {
        log_error("%s: fsync of its folder: %s", path, err_str(rc));
        unlink(path);
    }
    return rc;
}

int featnet_load(const char *path, int max_batch, featnet_t **out, const char **kind_out, double *test_acc,
                 char *err, size_t errlen) {
    *out = NULL;
    Gambar__Checkpoint *ck = NULL;
    int rc = ckpt_load(path, &ck, NULL);
    if (rc != 0) {
        seterr(err, errlen, "%s: %s", path, err_str(rc));
        return rc;
    }
    const Gambar__ModelDesc *md = ck->model;
    featnet_t *f = NULL;
    if (strcmp(md->family, "featnet") != 0) {
        seterr(err, errlen, "%s: not a feature network file (model family \"%s\")", path, md->family);
        rc = GB_EFORMAT;
        goto done;
    }
    f = featnet_new_w((int)md->channels, (int)md->height, (int)md->width, (int)md->num_classes,
                      md->g_mult ? (int)md->g_mult : 32, md->d_mult ? (int)md->d_mult : 64, max_batch, 1, err, errlen);
    if (!f) {
        rc = GB_EFORMAT;
        goto done;
    }
    for (int t = 0; t < T_COUNT; t++) {
        rc = ckpt_get_tensor(ck, tnames[t], f->shape[t], f->ndim[t], f->p + f->off[t]);
        if (rc == 0 && !nn_all_finite(f->len[t], f->p + f->off[t])) rc = GB_ENUMERIC;
        if (rc != 0) {
            seterr(err, errlen, "%s: tensor %s: %s", path, tnames[t], err_str(rc));
            rc = GB_EFORMAT;
            goto done;
        }
    }
    if (kind_out) {
        const char *k = ckpt_note(ck, "features");
        *kind_out = k && !strcmp(k, "random_cnn") ? "random_cnn" : "trained";
    }
    if (test_acc) {
        const char *a = ckpt_note(ck, "test_accuracy");
        *test_acc = a ? atof(a) : -1;
    }
done:
    ckpt_free(&ck);
    if (rc != 0) {
        featnet_free(f);
        return rc;
    }
    *out = f;
    return 0;
}
