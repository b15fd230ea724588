/* train_batch.c - the trainer's wall against bad batches.
 *
 * Every Batch comes from another process and may be anything: this file
 * checks each field a training step relies on (sizes with overflow-safe
 * arithmetic, dtype, shape against the model, dataset identity, labels,
 * pixel values) and names the first problem found. A rejected batch is
 * dropped and counted by the caller; nothing here logs or aborts. It also
 * counts and rate-limits the log lines for every kind of dropped message
 * (drop_*), so a peer that floods garbage cannot flood the log. */
#include "base.h"
#include "log.h"
#include "train.h"

#include <math.h>
#include <stdarg.h>

static const char *const drop_names[DROP_KINDS] = {
    "bad_frames",   "wrong_type",   "undecodable", "too_big",   "wrong_shape",
    "wrong_dtype",  "wrong_sizes",  "other_dataset", "bad_pixels", "bad_labels",
    "stale_seq",    "seq_too_far_ahead", "duplicate_seq",
};

const char *drop_kind_name(drop_kind_t k) { return k < DROP_KINDS ? drop_names[k] : "?"; }

void drop_note(drop_stats_t *d, drop_kind_t k, uint64_t seq, const char *why) {
    uint64_t c = ++d->count[k];
    if (!log_limit_due(c)) return; /* the first 3, then at powers of two (log.h) */
    if (seq != UINT64_MAX)
        log_warn("dropped batch seq %llu (%s): %s [%llu of this kind so far]", (unsigned long long)seq,
                 drop_names[k], why, (unsigned long long)c);
    else
        log_warn("dropped a message (%s): %s [%llu of this kind so far]", drop_names[k], why,
                 (unsigned long long)c);
}

void drop_sync_wire(drop_stats_t *d) {
    const uint64_t now[4] = {d->wire.bad_frames, d->wire.bad_type, d->wire.bad_payload, d->wire.too_big};
    static const char *const why[4] = {"not a two-frame message", "type is not gambar.Batch or gambar.EndOfStream",
                                       "payload does not decode as the named type",
                                       "payload over the size limit"};
    for (int i = 0; i < 4; i++)
        while (d->wire_seen[i] < now[i]) {
            d->wire_seen[i]++;
            drop_note(d, (drop_kind_t)i, UINT64_MAX, why[i]);
        }
}

uint64_t drop_total(const drop_stats_t *d) {
    uint64_t t = 0;
    for (int i = 0; i < DROP_KINDS; i++) t += d->count[i];
    return t;
}

void drop_report(const drop_stats_t *d) {
    uint64_t t = drop_total(d);
    if (!t) {
        log_info("dropped messages: 0");
        return;
    }
    char buf[1024];
    size_t n = 0;
    for (int i = 0; i < DROP_KINDS && n < sizeof buf; i++)
        if (d->count[i])
            n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%llu", drop_names[i],
                                  (unsigned long long)d->count[i]);
    log_info("dropped messages: %llu (%s )", (unsigned long long)t, buf);
}

static int reject(char *why, size_t len, int kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return kind;
}

int train_batch_check(const Gambar__Batch *b, const train_expect_t *ex, char *why, size_t len) {
    if (b->n == 0 || b->n > TRAIN_MAX_BATCH)
        return reject(why, len, DROP_SHAPE, "n = %u images (accepted 1..%d)", b->n, TRAIN_MAX_BATCH);
    if (b->c == 0 || b->h == 0 || b->w == 0 || b->c > TRAIN_MAX_SIDE || b->h > TRAIN_MAX_SIDE ||
        b->w > TRAIN_MAX_SIDE)
        return reject(why, len, DROP_SHAPE, "image shape %ux%ux%u is impossible", b->c, b->h, b->w);
    if (ex->have_shape && (b->c != ex->c || b->h != ex->h || b->w != ex->w))
        return reject(why, len, DROP_SHAPE, "images are %ux%ux%u (CxHxW), the model needs %ux%ux%u", b->c,
                      b->h, b->w, ex->c, ex->h, ex->w);
    uint64_t elem;
    if (b->dtype == GAMBAR__DTYPE__DTYPE_U8) elem = 1;
    else if (b->dtype == GAMBAR__DTYPE__DTYPE_F32) elem = 4;
    else return reject(why, len, DROP_DTYPE, "dtype %d is not DTYPE_U8 or DTYPE_F32", (int)b->dtype);
    uint64_t count = (uint64_t)b->n * b->c * b->h * b->w; /* < 2^48, no overflow */
    if (b->data.len != count * elem)
        return reject(why, len, DROP_SIZE, "data has %zu bytes, n*c*h*w*%llu = %llu", b->data.len,
                      (unsigned long long)elem, (unsigned long long)(count * elem));
    if (b->n_labels != 0 && b->n_labels != b->n)
        return reject(why, len, DROP_SIZE, "%zu labels for %u images", b->n_labels, b->n);
    if (b->n_indices != 0 && b->n_indices != b->n)
        return reject(why, len, DROP_SIZE, "%zu indices for %u images", b->n_indices, b->n);
    if (b->dataset_digest.len != DIGEST_LEN)
        return reject(why, len, DROP_DATASET, "dataset_digest has %zu bytes, not %d", b->dataset_digest.len,
                      DIGEST_LEN);
    if (b->batches_per_epoch == 0)
        return reject(why, len, DROP_DATASET, "batches_per_epoch is 0");
    if (b->epoch != b->seq / b->batches_per_epoch)
        return reject(why, len, DROP_DATASET, "epoch %u disagrees with seq / batches_per_epoch = %llu", b->epoch,
                      (unsigned long long)(b->seq / b->batches_per_epoch));
    if (ex->have_dataset) {
        if (memcmp(b->dataset_digest.data, ex->digest, DIGEST_LEN) != 0) {
            char got[DIGEST_HEX_LEN + 1], want[DIGEST_HEX_LEN + 1];
            digest_hex(b->dataset_digest.data, DIGEST_LEN, got);
            digest_hex(ex->digest, DIGEST_LEN, want);
            return reject(why, len, DROP_DATASET, "dataset %.16s..., this run trains on %.16s...", got, want);
        }
        if (b->num_classes != ex->num_classes)
            return reject(why, len, DROP_DATASET, "num_classes %u, the run's dataset has %u", b->num_classes,
                          ex->num_classes);
        if (b->batches_per_epoch != ex->bpe)
            return reject(why, len, DROP_DATASET, "batches_per_epoch %u, the run's stream has %u",
                          b->batches_per_epoch, ex->bpe);
    }
    if (b->n_captions != 0 && b->n_captions != b->n)
        return reject(why, len, DROP_SIZE, "%zu captions for %u images", b->n_captions, b->n);
    if (ex->text && b->n_captions != b->n)
        return reject(why, len, DROP_LABELS, "no captions, but the model is text-conditional");
    if (ex->text)
        for (size_t i = 0; i < b->n_captions; i++) {
            tenc_tokens_t tok;
            char e[128];
            const char *c = b->captions[i] ? b->captions[i] : "";
            if (tenc_tokenize(c, strlen(c), TENC_MAX_TOKENS, &tok, e, sizeof e) != 0)
                return reject(why, len, DROP_LABELS, "caption of image %zu: %s", i, e);
        }
    const int labelled = ex->conditional || ex->aux;
    if (labelled && b->n_labels != b->n)
        return reject(why, len, DROP_LABELS, "no labels, but the model is %s",
                      ex->conditional ? "class-conditional" : "trained with an auxiliary classifier (--aux-class)");
    for (size_t i = 0; i < b->n_labels; i++) {
        int32_t l = b->labels[i];
        if (l < -1 || (l >= 0 && (uint32_t)l >= b->num_classes) || (labelled && l < 0))
            return reject(why, len, DROP_LABELS, "label %d of image %zu is outside %s0..%u", (int)l, i,
                          labelled ? "" : "-1, ", b->num_classes ? b->num_classes - 1 : 0);
    }
    if (elem == 4) {
        /* Unaligned data is possible (protobuf bytes): read via memcpy. */
        const uint8_t *p = b->data.data;
        for (uint64_t i = 0; i < count; i++) {
            float v;
            memcpy(&v, p + 4 * i, 4);
            if (!isfinite(v))
                return reject(why, len, DROP_PIXELS, "pixel %llu is %s", (unsigned long long)i,
                              isnan(v) ? "NaN" : "infinite");
            if (v < -1.0001f || v > 1.0001f)
                return reject(why, len, DROP_PIXELS, "pixel %llu = %g is outside [-1, 1]",
                              (unsigned long long)i, (double)v);
        }
    }
    return 0;
}

void train_expect_fix(train_expect_t *ex, const Gambar__Batch *b) {
    if (!ex->have_dataset) {
        memcpy(ex->digest, b->dataset_digest.data, DIGEST_LEN);
        ex->num_classes = b->num_classes;
        ex->bpe = b->batches_per_epoch;
        ex->have_dataset = 1;
    }
    if (!ex->have_shape) {
        ex->c = b->c;
        ex->h = b->h;
        ex->w = b->w;
        ex->have_shape = 1;
    }
}

void train_batch_floats(const Gambar__Batch *b, float *out, int32_t *labels_out) {
    size_t count = (size_t)b->n * b->c * b->h * b->w;
    if (b->dtype == GAMBAR__DTYPE__DTYPE_U8) {
        for (size_t i = 0; i < count; i++) out[i] = (float)b->data.data[i] / 127.5f - 1.0f;
    } else {
        memcpy(out, b->data.data, count * 4);
        for (size_t i = 0; i < count; i++) { /* the checked +-1.0001 slack */
            if (out[i] > 1.0f) out[i] = 1.0f;
            if (out[i] < -1.0f) out[i] = -1.0f;
        }
    }
    for (uint32_t i = 0; i < b->n; i++) labels_out[i] = i < b->n_labels && b->labels[i] >= 0 ? b->labels[i] : 0;
}
