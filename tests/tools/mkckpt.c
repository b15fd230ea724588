/* mkckpt - write a small, real checkpoint for tests without the trainer.
 *
 * The sampler's and evaluator's tests need checkpoints of a known shape;
 * this builds a model with model_new, optionally trains it for a few steps
 * on synthetic images (per-class stripes and blobs, so a conditional model
 * learns something class-dependent), stores it with modelck_store and
 * writes it with ckpt_save. Usage:
 *   mkckpt OUT_DIR [--family dcgan28] [--width 8] [--z-dim 16]
 *          [--classes "A,B,C"] [--steps N] [--seed S] [--step-number K]
 *          [--license TEXT] [--source TEXT] [--channels 1|3]
 * --classes makes a conditional model with those class names (comma
 * separated; a name may not contain a comma). --step-number sets
 * State.step (default: --steps). --license/--source set the notes
 * "license_summary" / "dataset_source" that gambar-sample records. The
 * checkpoint's path goes to stdout. Exit 0, 2 usage, 3 bad shape,
 * 4 I/O error. */
#include "base.h"
#include "ckpt.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "model.h"
#include "modelck.h"
#include "rng.h"

#include <math.h>

static _Noreturn void usage(const char *msg) {
    fprintf(stderr, "mkckpt: %s\n"
                    "usage: mkckpt OUT_DIR [--family F] [--width G] [--z-dim Z] [--classes A,B,..] "
                    "[--steps N] [--seed S] [--step-number K] [--license T] [--source T] [--channels C]\n",
            msg);
    exit(GB_EXIT_USAGE);
}

/* Synthetic image of class y (or random class when unconditional) into
 * x (C,H,W) in [-1,1]: a horizontal band whose position depends on y, a
 * blob whose size depends on y, plus noise. */
static void synth(rng_t *r, int y, int C, int H, int W, float *x) {
    int band = (y * 5) % H;
    float rad = 3.0f + (float)(y % 4) * 2.0f;
    float cx = (float)W / 2 + (rng_uniform(r) - 0.5f) * 4, cy = (float)H / 2 + (rng_uniform(r) - 0.5f) * 4;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                float v = -0.9f;
                if (i >= band && i < band + 4) v = 0.6f;
                float dx = (float)j - cx, dy = (float)i - cy;
                if (dx * dx + dy * dy < rad * rad) v = 0.9f - 0.3f * (float)c;
                v += 0.05f * rng_normal(r);
                x[((size_t)c * H + i) * W + j] = v > 1 ? 1 : v < -1 ? -1 : v;
            }
}

int main(int argc, char **argv) {
    log_init("mkckpt");
    if (argc < 2 || argv[1][0] == '-') usage("missing OUT_DIR");
    const char *dir = argv[1], *family = "dcgan28", *classes = NULL, *license = NULL, *source = NULL;
    long width = 8, zdim = 16, steps = 0, stepnum = -1, channels = 1;
    uint64_t seed = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage("option needs a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--family")) family = v;
        else if (!strcmp(a, "--width")) width = atol(v);
        else if (!strcmp(a, "--z-dim")) zdim = atol(v);
        else if (!strcmp(a, "--classes")) classes = v;
        else if (!strcmp(a, "--steps")) steps = atol(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--step-number")) stepnum = atol(v);
        else if (!strcmp(a, "--license")) license = v;
        else if (!strcmp(a, "--source")) source = v;
        else if (!strcmp(a, "--channels")) channels = atol(v);
        else usage("unknown option");
    }
    model_desc_t d;
    model_family_t fam;
    if (model_family_parse(family, &fam) != 0) usage("unknown family");
    model_desc_default(&d, fam);
    d.g_mult = d.d_mult = (int)width;
    d.z_dim = (int)zdim;
    d.channels = (int)channels;
    char **names = NULL;
    int nc = 0;
    if (classes) {
        char *tmp = xstrdup(classes);
        names = xcalloc(strlen(classes) + 1, sizeof(char *));
        for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
            names[nc++] = xstrdup(t);
        free(tmp);
        d.conditional = 1;
        d.num_classes = nc;
        d.embed_dim = (int)zdim;
        d.class_names = names;
    }
    char err[256];
    if (model_desc_check(&d, err, sizeof err) != 0) {
        fprintf(stderr, "mkckpt: %s\n", err);
        return GB_EXIT_DATA;
    }
    const int B = 16;
    model_t *m = model_new(&d, B, seed);
    ASSERT(m);
    model_set_ema_decay(m, 0.5f); /* few steps: let EMA follow G closely */
    size_t img = model_image_floats(m);
    float *real = xmalloc((size_t)B * img * sizeof(float)), *z = xmalloc((size_t)B * zdim * sizeof(float));
    int32_t lab[16], flab[16];
    rng_t r;
    rng_seed(&r, seed ^ 0x5eedULL);
    for (long s = 0; s < steps; s++) {
        for (int i = 0; i < B; i++) {
            lab[i] = nc ? (int32_t)rng_below(&r, (uint64_t)nc) : (int32_t)rng_below(&r, 4);
            flab[i] = nc ? (int32_t)rng_below(&r, (uint64_t)nc) : 0;
            synth(&r, lab[i], d.channels, d.height, d.width, real + (size_t)i * img);
        }
        rng_normal_fill(&r, z, (size_t)B * zdim);
        int rc = model_train_step(m, real, nc ? lab : NULL, B, z, nc ? flab : NULL, NULL);
        if (rc != 0) {
            fprintf(stderr, "mkckpt: training step %ld: %s\n", s, err_str(rc));
            return GB_EXIT_NUMERIC;
        }
    }
    ckpt_builder_t *b = ckpt_builder_new();
    modelck_store(m, b);
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    ck->state->step = (uint64_t)(stepnum >= 0 ? stepnum : steps);
    ck->state->seed = seed;
    ck->software_version = ckpt_builder_strdup(b, "mkckpt (gambar tests)");
    ck->created_unix = 1700000000;
    uint8_t dd[32];
    digest_sha256("mkckpt synthetic dataset", 24, dd);
    ck->dataset_digest = ckpt_builder_bytes(b, dd, 32);
    if (license) ckpt_set_note(b, "license_summary", license);
    if (source) ckpt_set_note(b, "dataset_source", source);
    char path[4096];
    int rc = ckpt_save(dir, ck, 0, path, sizeof path, NULL);
    ckpt_builder_destroy(&b);
    model_free(m);
    free(real);
    free(z);
    for (int i = 0; i < nc; i++) free(names[i]);
    free(names);
    if (rc != 0) {
        fprintf(stderr, "mkckpt: cannot save in %s: %s\n", dir, err_str(rc));
        return GB_EXIT_IO;
    }
    printf("%s\n", path);
    return 0;
}
