/* eval_featio.c - the feature network (common/nn/featnet.h) meets the
 * outside world: examples read from the LMDB store, the fit on the
 * labelled training data, and the *.gck file (see eval_featio.h). Kept in
 * gambar-eval, its only user, so that the network's arithmetic in the nn
 * layer needs neither the store nor the checkpoint container. */
#include "eval_featio.h"

#include "base.h"
#include "err.h"
#include "log.h"
#include "nn.h"
#include "rng.h"
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>

int featio_read_store(store_t *s, const uint64_t *idx, size_t n, float *x, int32_t *labels) {
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

int featio_fit(store_t *train, store_t *test, int epochs, uint64_t seed, featnet_t **out, double *train_acc,
                double *test_acc, char *err, size_t errlen) {
    *out = NULL;
    if (test_acc) *test_acc = -1;
    if (train_acc) *train_acc = -1;
    const Gambar__DatasetInfo *info = store_info(train);
    if (!info || info->n_class_names == 0) {
        gb_errf(err, errlen, 0, "the dataset has no class labels (DatasetInfo.class_names is empty), so a classifier "
                            "cannot be fitted");
        return GB_EFORMAT;
    }
    const Gambar__DatasetInfo *tinfo = test ? store_info(test) : NULL;
    if (test && (!tinfo || tinfo->channels != info->channels || tinfo->height != info->height ||
                 tinfo->width != info->width || tinfo->n_class_names != info->n_class_names)) {
        gb_errf(err, errlen, 0, "the test dataset does not match the training dataset (shape or number of classes)");
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
        gb_errf(err, errlen, 0, "only %zu labelled examples; at least %d are needed", n, B);
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
    if (rc == GB_EINTR) gb_errf(err, errlen, 0, "interrupted");
fail:
    free(x), free(y), free(tx), free(ty);
    if (rc != 0) {
        featnet_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

ckpt_builder_t *featio_to_builder(featnet_t *f, const char *const *class_names, const uint8_t digest[32],
                                  const char *features_kind) {
    ckpt_builder_t *b = ckpt_builder_new();
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    ck->model->family = ckpt_builder_strdup(b, "featnet");
    ck->model->height = (uint32_t)featnet_height(f);
    ck->model->width = (uint32_t)featnet_width(f);
    ck->model->channels = (uint32_t)featnet_channels(f);
    ck->model->num_classes = (uint32_t)featnet_classes(f);
    ck->model->g_mult = (uint32_t)featnet_width1(f);
    ck->model->d_mult = (uint32_t)featnet_width2(f);
    ck->model->conditional = 0;
    ck->model->loss = ckpt_builder_strdup(b, "softmax_ce");
    if (class_names)
        for (int k = 0; k < featnet_classes(f); k++) ckpt_add_class_name(b, class_names[k]);
    featnet_tensor_t t[FEATNET_NTENSORS];
    for (int i = 0; i < featnet_tensors(f, t); i++)
        ASSERT(ckpt_add_tensor(b, t[i].name, t[i].shape, t[i].ndim, t[i].data) == 0);
    ck->state->step = featnet_steps(f);
    if (digest) ck->dataset_digest = ckpt_builder_bytes(b, digest, 32);
    ck->software_version = ckpt_builder_strdup(b, "gambar " GAMBAR_VERSION);
    ck->created_unix = (int64_t)gb_wall();
    ckpt_set_note(b, "kind", "featnet");
    ckpt_set_note(b, "features", features_kind);
    return b;
}

int featio_write_gck(const char *path, const Gambar__Checkpoint *ck) {
    return ckpt_write(path, ck, NULL); /* atomic, through afile; logged */
}

int featio_load(const char *path, int max_batch, featnet_t **out, const char **kind_out, double *test_acc,
                 char *err, size_t errlen) {
    *out = NULL;
    Gambar__Checkpoint *ck = NULL;
    int rc = ckpt_load(path, &ck, NULL);
    if (rc != 0) {
        gb_errf(err, errlen, 0, "%s: %s", path, err_str(rc));
        return rc;
    }
    const Gambar__ModelDesc *md = ck->model;
    featnet_t *f = NULL;
    if (strcmp(md->family, "featnet") != 0) {
        gb_errf(err, errlen, 0, "%s: not a feature network file (model family \"%s\")", path, md->family);
        rc = GB_EFORMAT;
        goto done;
    }
    f = featnet_new_widths((int)md->channels, (int)md->height, (int)md->width, (int)md->num_classes,
                      md->g_mult ? (int)md->g_mult : 32, md->d_mult ? (int)md->d_mult : 64, max_batch, 1, err, errlen);
    if (!f) {
        rc = GB_EFORMAT;
        goto done;
    }
    featnet_tensor_t t[FEATNET_NTENSORS];
    for (int i = 0; i < featnet_tensors(f, t); i++) {
        rc = ckpt_get_tensor(ck, t[i].name, t[i].shape, t[i].ndim, t[i].data);
        if (rc == 0 && !nn_all_finite(t[i].len, t[i].data)) rc = GB_ENUMERIC;
        if (rc != 0) {
            gb_errf(err, errlen, 0, "%s: tensor %s: %s", path, t[i].name, err_str(rc));
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
