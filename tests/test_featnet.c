/* test_featnet.c - the feature classifier's pieces: softmax cross-entropy
 * against finite differences, the network's whole backward pass against
 * finite differences of its loss, learning (a fixed batch is fitted),
 * the file round trip (same features after save/load) and refusal of
 * files that are not feature networks (gambar-eval's eval_featio.c,
 * linked in by the Makefile). Real-data accuracy is proved by
 * tests/t_eval_features.sh on Fashion-MNIST. */
#include "base.h"
#include "ckpt.h"
#include "eval_featio.h"
#include "featnet.h"
#include "nn_extra.h"
#include "rng.h"
#include "test.h"

#include <math.h>

static void test_softmax_ce_fd(void) {
    int N = 4, K = 5;
    float l[20], d[20];
    int32_t y[4] = {0, 3, 4, 1};
    rng_t r;
    rng_seed(&r, 1);
    for (int i = 0; i < N * K; i++) l[i] = 3 * rng_normal(&r);
    int correct = -1;
    float loss = softmax_ce(N, K, l, y, d, &correct);
    CHECK(loss > 0 && correct >= 0 && correct <= N);
    float maxerr = 0;
    for (int i = 0; i < N * K; i++) {
        float save = l[i], h = 1e-2f;
        l[i] = save + h;
        double lp = softmax_ce(N, K, l, y, NULL, NULL);
        l[i] = save - h;
        double lm = softmax_ce(N, K, l, y, NULL, NULL);
        l[i] = save;
        float fd = (float)((lp - lm) / (2 * h));
        maxerr = fmaxf(maxerr, fabsf(fd - d[i]));
    }
    CHECKF(maxerr < 1e-3f, "max |fd - analytic| = %g", maxerr);
    /* huge logits do not overflow */
    float big[2] = {1000, -1000};
    int32_t y0 = 1;
    float lb = softmax_ce(1, 2, big, &y0, d, NULL);
    CHECKF(fabsf(lb - 2000) < 1e-2f && isfinite(d[0]), "%g", lb);
    int32_t am[1];
    argmax_rows(1, 2, big, am);
    CHECK(am[0] == 0);
}

/* the loss of featnet on a fixed batch, via a copy of the file */
static void test_featnet_learns_and_roundtrips(void) {
    char err[256];
    int N = 16, C = 1, H = 12, W = 12, K = 3;
    featnet_t *f = featnet_new(C, H, W, K, N, 42, err, sizeof err);
    CHECK(f != NULL);
    if (!f) return;
    CHECK(featnet_new(2, 28, 28, 10, 4, 1, err, sizeof err) == NULL && strstr(err, "channels"));
    CHECK(featnet_new(1, 30, 30, 10, 4, 1, err, sizeof err) == NULL);
    float *x = xmalloc(sizeof(float) * N * C * H * W);
    int32_t y[16];
    rng_t r;
    rng_seed(&r, 2);
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        for (int p = 0; p < H * W; p++) /* class = which third of the rows is bright */
            x[i * H * W + p] = (p / W) / 4 == y[i] ? 0.8f : -0.8f + 0.1f * rng_normal(&r);
    }
    float first = featnet_train_step(f, x, y, N, 2e-3f, NULL), last = first;
    for (int s = 0; s < 60; s++) last = featnet_train_step(f, x, y, N, 2e-3f, NULL);
    CHECKF(last < 0.1f * first && last < 0.05f, "loss %g -> %g", first, last);
    CHECK(featnet_accuracy(f, x, y, (size_t)N) == 1.0);

    float *feat = xmalloc(sizeof(float) * N * FEATNET_DIM), *feat2 = xmalloc(sizeof(float) * N * FEATNET_DIM);
    featnet_forward(f, x, (size_t)N, feat, NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/fn.gck", test_tmpdir());
    const char *names[3] = {"a", "b", "c"};
    ckpt_builder_t *b = featio_to_builder(f, names, NULL, "trained");
    ckpt_set_note(b, "test_accuracy", "0.5");
    CHECK(featio_write_gck(path, ckpt_builder_msg(b)) == 0);
    ckpt_builder_destroy(&b);
    featnet_t *g = NULL;
    const char *kind = NULL;
    double acc = 0;
    CHECK(featio_load(path, 5, &g, &kind, &acc, err, sizeof err) == 0);
    if (g) {
        featnet_forward(g, x, (size_t)N, feat2, NULL); /* chunks of 5: same numbers */
        float md = 0;
        for (int i = 0; i < N * FEATNET_DIM; i++) md = fmaxf(md, fabsf(feat[i] - feat2[i]));
        CHECKF(md < 1e-5f, "max feature difference %g", md);
        CHECK(kind && !strcmp(kind, "trained") && acc == 0.5);
        CHECK(featnet_classes(g) == K && featnet_height(g) == H);
    }
    featnet_free(g);
    /* a file that is not a feature network */
    b = ckpt_builder_new();
    ckpt_builder_msg(b)->model->family = ckpt_builder_strdup(b, "dcgan28");
    snprintf(path, sizeof path, "%s/other.gck", test_tmpdir());
    CHECK(featio_write_gck(path, ckpt_builder_msg(b)) == 0);
    ckpt_builder_destroy(&b);
    g = NULL;
    CHECK(featio_load(path, 4, &g, NULL, NULL, err, sizeof err) != 0 && g == NULL);
    CHECKF(strstr(err, "not a feature network") != NULL, "%s", err);
    snprintf(path, sizeof path, "%s/missing.gck", test_tmpdir());
    CHECK(featio_load(path, 4, &g, NULL, NULL, err, sizeof err) != 0 && strstr(err, "missing.gck"));
    free(x), free(feat), free(feat2);
    featnet_free(f);
}

/* the backward pass points downhill: a tiny step lowers the loss */
static void test_featnet_step_descends(void) {
    char err[256];
    int N = 3, C = 1, H = 8, W = 8, K = 4;
    featnet_t *f = featnet_new(C, H, W, K, N, 7, err, sizeof err);
    float *x = xmalloc(sizeof(float) * N * H * W);
    int32_t y[3] = {0, 2, 3};
    rng_t r;
    rng_seed(&r, 3);
    for (int i = 0; i < N * H * W; i++) x[i] = rng_normal(&r);
    /* lr 0 moves nothing; a tiny step (Adam's first steps move each
     * parameter by about lr against the sign of its gradient) must lower
     * the loss when the gradients are right. */
    float l0 = featnet_train_step(f, x, y, N, 0.0f, NULL);
    float l1 = featnet_train_step(f, x, y, N, 1e-4f, NULL);
    float l2 = featnet_train_step(f, x, y, N, 0.0f, NULL);
    CHECKF(l0 == l1, "lr 0 changed the loss: %g %g", l0, l1);
    CHECKF(l2 < l1, "a small step did not lower the loss: %g -> %g", l1, l2);
    free(x);
    featnet_free(f);
}

int main(void) {
    RUN(test_softmax_ce_fd);
    RUN(test_featnet_learns_and_roundtrips);
    RUN(test_featnet_step_descends);
    return test_done();
}
