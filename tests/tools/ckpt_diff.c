/* ckpt_diff.c - compare two checkpoint files bit for bit, or print one's
 * header fields (test tool for gambar-train's resume and init-from tests).
 *
 *   ckpt_diff A.gck B.gck    exit 0 when every tensor (same names, shapes
 *                            and bytes), the step, next batch seq, both
 *                            Adam states and the dataset digest are equal;
 *                            exit 1 listing what differs (max |a-b| per
 *                            tensor); 4 when a file does not load.
 *   ckpt_diff --info A.gck   print key=value lines: step, epoch,
 *                            next_batch_seq, adam_g_t, adam_d_t, seed,
 *                            threads, tensors, dataset_digest,
 *                            parent_digest, digest (of the file), family,
 *                            g_mult, conditional, num_classes, text_dim,
 *                            text_vocab (words of the text encoder, -1
 *                            when the checkpoint has none), text_adam_t,
 *                            text_adam_lr.
 * The comparison includes the text encoder's description (vocabulary,
 * sizes) and Adam state when either file has one.
 * Tensors are compared by their bytes, so -0.0 vs 0.0 and NaN payloads
 * count as differences: "bit-identical" means exactly that. Fields that
 * legitimately differ between an interrupted and a straight run
 * (created_unix, command_line, wall_time_trained) are ignored. */
#include "base.h"
#include "ckpt.h"
#include "digest.h"
#include "err.h"
#include "log.h"

#include <inttypes.h>
#include <math.h>

static void hex_or_none(const ProtobufCBinaryData *b, char *out) {
    if (b->len == DIGEST_LEN) digest_hex(b->data, DIGEST_LEN, out);
    else strcpy(out, "none");
}

static int info(const char *path) {
    Gambar__Checkpoint *ck = NULL;
    uint8_t dig[DIGEST_LEN];
    int rc = ckpt_load(path, &ck, dig);
    if (rc) return 4;
    char h1[DIGEST_HEX_LEN + 1], h2[DIGEST_HEX_LEN + 1], h3[DIGEST_HEX_LEN + 1];
    hex_or_none(&ck->dataset_digest, h1);
    hex_or_none(&ck->parent_digest, h2);
    digest_hex(dig, DIGEST_LEN, h3);
    const Gambar__TrainState *s = ck->state;
    printf("step=%" PRIu64 "\nepoch=%u\nnext_batch_seq=%" PRIu64 "\nadam_g_t=%" PRIu64 "\nadam_d_t=%" PRIu64
           "\nseed=%" PRIu64 "\nthreads=%u\ntensors=%zu\ndataset_digest=%s\nparent_digest=%s\ndigest=%s\n"
           "family=%s\ng_mult=%u\nconditional=%d\nnum_classes=%u\nlr_d=%g\n",
           s->step, s->epoch, s->next_batch_seq, s->adam_g ? s->adam_g->t : 0, s->adam_d ? s->adam_d->t : 0,
           s->seed, s->threads, ck->n_tensors, h1, h2, h3, ck->model->family, ck->model->g_mult,
           (int)ck->model->conditional, ck->model->num_classes, s->adam_d ? (double)s->adam_d->lr : 0.0);
    const Gambar__TextEncoderDesc *te = ck->text_encoder;
    printf("text_dim=%u\ntext_vocab=%ld\ntext_adam_t=%" PRIu64 "\ntext_adam_lr=%g\n", ck->model->text_dim,
           te ? (long)te->n_vocab : -1L, te && te->adam ? te->adam->t : 0, te && te->adam ? (double)te->adam->lr : 0.0);
    ckpt_free(&ck);
    return 0;
}

static int adam_eq(const Gambar__AdamState *a, const Gambar__AdamState *b) {
    if (!a || !b) return a == b;
    return a->t == b->t && memcmp(&a->lr, &b->lr, 4) == 0 && memcmp(&a->beta1, &b->beta1, 4) == 0 &&
           memcmp(&a->beta2, &b->beta2, 4) == 0 && memcmp(&a->eps, &b->eps, 4) == 0;
}

int main(int argc, char **argv) {
    log_init("ckpt_diff");
    if (argc == 3 && strcmp(argv[1], "--info") == 0) return info(argv[2]);
    if (argc != 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: ckpt_diff A.gck B.gck | ckpt_diff --info A.gck\n");
        return 2;
    }
    Gambar__Checkpoint *a = NULL, *b = NULL;
    if (ckpt_load(argv[1], &a, NULL) || ckpt_load(argv[2], &b, NULL)) {
        ckpt_free(&a);
        return 4;
    }
    int diffs = 0;
    const Gambar__TrainState *sa = a->state, *sb = b->state;
    if (sa->step != sb->step || sa->next_batch_seq != sb->next_batch_seq || sa->epoch != sb->epoch) {
        printf("state differs: step %" PRIu64 "/%" PRIu64 " next_batch_seq %" PRIu64 "/%" PRIu64 "\n", sa->step,
               sb->step, sa->next_batch_seq, sb->next_batch_seq);
        diffs++;
    }
    if (!adam_eq(sa->adam_g, sb->adam_g) || !adam_eq(sa->adam_d, sb->adam_d)) {
        printf("adam state differs\n");
        diffs++;
    }
    if (a->dataset_digest.len != b->dataset_digest.len ||
        memcmp(a->dataset_digest.data, b->dataset_digest.data, a->dataset_digest.len) != 0) {
        printf("dataset digest differs\n");
        diffs++;
    }
    const Gambar__TextEncoderDesc *ea = a->text_encoder, *eb = b->text_encoder;
    int tsame = (!ea) == (!eb);
    if (tsame && ea) {
        tsame = ea->n_vocab == eb->n_vocab && ea->hash_buckets == eb->hash_buckets &&
                ea->bigram_buckets == eb->bigram_buckets && ea->embed_dim == eb->embed_dim &&
                ea->out_dim == eb->out_dim && ea->max_tokens == eb->max_tokens && adam_eq(ea->adam, eb->adam);
        for (size_t i = 0; tsame && i < ea->n_vocab; i++) tsame = strcmp(ea->vocab[i], eb->vocab[i]) == 0;
    }
    if (!tsame) {
        printf("text encoder description or Adam state differs\n");
        diffs++;
    }
    if (a->n_tensors != b->n_tensors) {
        printf("tensor count differs: %zu vs %zu\n", a->n_tensors, b->n_tensors);
        diffs++;
    }
    size_t same = 0;
    for (size_t i = 0; i < a->n_tensors; i++) {
        const Gambar__Tensor *ta = a->tensors[i];
        const Gambar__Tensor *tb = ckpt_tensor(b, ta->name);
        if (!tb) {
            printf("%s: only in %s\n", ta->name, argv[1]);
            diffs++;
            continue;
        }
        if (ta->n_shape != tb->n_shape || memcmp(ta->shape, tb->shape, ta->n_shape * sizeof(int64_t)) != 0) {
            printf("%s: shapes differ\n", ta->name);
            diffs++;
            continue;
        }
        if (memcmp(ta->data.data, tb->data.data, ta->data.len) == 0) {
            same++;
            continue;
        }
        double maxd = 0;
        size_t nd = 0, n = ta->data.len / 4;
        for (size_t k = 0; k < n; k++) {
            float x, y;
            memcpy(&x, ta->data.data + 4 * k, 4);
            memcpy(&y, tb->data.data + 4 * k, 4);
            if (memcmp(&x, &y, 4) != 0) {
                nd++;
                if (fabs((double)x - (double)y) > maxd) maxd = fabs((double)x - (double)y);
            }
        }
        printf("%s: %zu of %zu values differ, max |a-b| %g\n", ta->name, nd, n, maxd);
        diffs++;
    }
    printf("%zu tensors identical, %d differences\n", same, diffs);
    ckpt_free(&a);
    ckpt_free(&b);
    return diffs ? 1 : 0;
}
