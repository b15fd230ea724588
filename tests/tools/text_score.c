/* text_score.c - how well a text model's discriminator tells an image's
 * own caption from another's, on a dataset it may never have seen (the
 * learning check of tests/t_train_text_learn.sh; GAN-CLS, issue 10).
 *
 *   text_score CKPT DB [--limit N]
 *
 * Loads the model and its text encoder from CKPT, takes the first N (grey
 * images: HWC = CHW)
 * (default 500) examples of DB that have a label and a caption, and
 * scores with model_discriminate_text (eval-mode BN, EMA not involved):
 *   match      D(x_i, first caption of i)
 *   mismatch   D(x_i, first caption of the next example (cyclically) whose
 *              label differs from i's): a caption that names another class
 * Prints key=value lines: pairs, match_mean, mismatch_mean (mean logits)
 * and wins, the fraction of images whose own caption scores higher than
 * the mismatched one (0.5 = chance). Exit 0; 2 usage; 3 when the
 * checkpoint is not a text model or DB has no usable examples; 4 I/O. */
#include "base.h"
#include "ckpt.h"
#include "err.h"
#include "log.h"
#include "model.h"
#include "modelck.h"
#include "store.h"
#include "tencck.h"

int main(int argc, char **argv) {
    log_init("text_score");
    if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--limit") == 0)) {
        fprintf(stderr, "usage: text_score CKPT DB [--limit N]\n");
        return 2;
    }
    int limit = argc == 5 ? atoi(argv[4]) : 500;
    if (limit < 2) return 2;
    Gambar__Checkpoint *ck = NULL;
    if (ckpt_load(argv[1], &ck, NULL)) return 4;
    char err[256];
    model_t *m = NULL;
    tenc_t *e = NULL;
    if (modelck_load(ck, 64, &m, err, sizeof err) || tencck_load(ck, 64, false, &e, err, sizeof err) ||
        model_desc(m)->text_dim == 0) {
        fprintf(stderr, "text_score: %s: %s\n", argv[1], m && model_desc(m)->text_dim == 0 ? "not a text model" : err);
        return 3;
    }
    store_t *s = NULL;
    if (store_open(argv[2], STORE_RDONLY, &s)) return 4;
    size_t img = model_image_floats(m);
    int T = model_desc(m)->text_dim;
    float *x = xmalloc((size_t)limit * img * sizeof(float));
    int32_t *lab = xmalloc((size_t)limit * sizeof(int32_t));
    char **caps = xcalloc((size_t)limit, sizeof(char *));
    int n = 0;
    for (uint64_t i = 0; i < store_count(s) && n < limit; i++) {
        Gambar__Example *ex = NULL;
        if (store_get(s, i, &ex)) break;
        if (ex->label >= 0 && ex->n_captions > 0 && ex->pixels.len == img) {
            for (size_t k = 0; k < img; k++) x[(size_t)n * img + k] = (float)ex->pixels.data[k] / 127.5f - 1.0f;
            lab[n] = ex->label;
            caps[n] = xstrdup(ex->captions[0]);
            n++;
        }
        gambar__example__free_unpacked(ex, NULL);
    }
    store_close(&s);
    if (n < 2) {
        fprintf(stderr, "text_score: %s: no labelled, captioned examples of the model's size\n", argv[2]);
        return 3;
    }
    const char **own = xcalloc((size_t)n, sizeof(char *)), **other = xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        own[i] = caps[i];
        int j = (i + 1) % n;
        while (j != i && lab[j] == lab[i]) j = (j + 1) % n;
        other[i] = caps[j];
    }
    float *tv = xmalloc((size_t)n * T * sizeof(float)), *lo = xmalloc((size_t)n * sizeof(float)),
          *lm = xmalloc((size_t)n * sizeof(float));
    if (model_encode_texts(e, own, n, tv, err, sizeof err) || model_discriminate_text(m, x, tv, n, lo) ||
        model_encode_texts(e, other, n, tv, err, sizeof err) || model_discriminate_text(m, x, tv, n, lm)) {
        fprintf(stderr, "text_score: %s\n", err);
        return 3;
    }
    double so = 0, sm = 0;
    int wins = 0;
    for (int i = 0; i < n; i++) {
        so += lo[i];
        sm += lm[i];
        wins += lo[i] > lm[i];
    }
    printf("pairs=%d\nmatch_mean=%.4f\nmismatch_mean=%.4f\nwins=%.4f\n", n, so / n, sm / n, (double)wins / n);
    for (int i = 0; i < n; i++) free(caps[i]);
    free(caps);
    free(own);
    free(other);
    free(x);
    free(lab);
    free(tv);
    free(lo);
    free(lm);
    model_free(m);
    tenc_free(&e);
    ckpt_free(&ck);
    return 0;
}
