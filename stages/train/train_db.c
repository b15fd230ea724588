/* train_db.c - what gambar-train --db learns from the dataset: its digest
 * (checked against the batches), its class names (put into the model
 * description, so checkpoints name their classes) and the provenance
 * notes the sampler copies into every image (license_summary,
 * dataset_source, ...).
 *
 * The notes are kept as strings under their checkpoint note keys, so a
 * resumed run carries the checkpoint's notes forward unchanged without a
 * parse/format round trip. The dataset is opened read-only and closed
 * again before training starts: the trainer holds no LMDB reader slot.
 * Whoever else needs every Example at start (the text vocabulary,
 * train_text.c) rides along as a visitor of the same pass, so a dataset
 * of 60k captioned images is read once, not once per need. */
#include "base.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "train.h"

#include <inttypes.h>

const char *const train_db_note_keys[TRAIN_DB_NOTES] = {"dataset_source",    "dataset_count",
                                                        "license_summary",   "attribution_count",
                                                        "optout_count",      "duplicate_count"};

void train_db_free(train_db_t *db) {
    for (size_t i = 0; i < db->n_classes; i++) free(db->class_names[i]);
    free(db->class_names);
    for (int k = 0; k < TRAIN_DB_NOTES; k++) free(db->note[k]);
    memset(db, 0, sizeof *db);
}

static char *fmt_u64(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return xstrdup(buf);
}

/* Order for the license summary: larger count first, then by name. */
static int lic_cmp(const void *a, const void *b) {
    const Gambar__LicenseCount *x = *(const Gambar__LicenseCount *const *)a;
    const Gambar__LicenseCount *y = *(const Gambar__LicenseCount *const *)b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->license ? x->license : "", y->license ? y->license : "");
}

char *train_license_summary(const Gambar__DatasetInfo *info) {
    size_t n = info->n_licenses;
    if (n == 0) return xstrdup(info->count ? "unknown" : "none");
    const Gambar__LicenseCount **v = xcalloc(n, sizeof *v);
    size_t len = 1;
    for (size_t i = 0; i < n; i++) {
        v[i] = info->licenses[i];
        len += strlen(v[i]->license ? v[i]->license : "") + 7 /* "unknown" */ + 2 + 20 + 2;
    }
    qsort(v, n, sizeof *v, lic_cmp);
    char *s = xmalloc(len);
    size_t off = 0;
    s[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = v[i]->license && *v[i]->license ? v[i]->license : "unknown";
        off += (size_t)snprintf(s + off, len - off, "%s%s: %" PRIu64, i ? ", " : "", name, v[i]->count);
    }
    free(v);
    return s;
}

#define TRAIN_DB_SCAN_MAX 2000000 /* examples scanned for attribution_count */
#define TRAIN_DB_SCAN_RELEASE 2048 /* examples read between store_release_pages */

int train_db_read(const char *path, train_db_t *db, const train_db_visitor_t *v) {
    memset(db, 0, sizeof *db);
    store_t *s = NULL;
    int rc = store_open(path, STORE_RDONLY, &s);
    if (rc) {
        log_error("--db %s: cannot open the dataset: %s", path, err_str(rc));
        return rc;
    }
    const Gambar__DatasetInfo *info = store_info(s);
    if (!info || info->digest.len != DIGEST_LEN) {
        log_error("--db %s: the dataset is empty (no DatasetInfo with a digest)", path);
        store_close(&s);
        return GB_EMISMATCH;
    }
    memcpy(db->digest, info->digest.data, DIGEST_LEN);
    db->n_classes = info->n_class_names;
    if (db->n_classes) {
        db->class_names = xcalloc(db->n_classes, sizeof(char *));
        for (size_t i = 0; i < db->n_classes; i++) db->class_names[i] = xstrdup(info->class_names[i]);
    }
    db->note[0] = xstrdup(info->source ? info->source : "");
    db->note[1] = fmt_u64(info->count);
    db->note[2] = train_license_summary(info);
    db->note[4] = fmt_u64(info->optout_count);
    db->note[5] = fmt_u64(info->duplicate_count);
    if (v && v->begin && (rc = v->begin(v->arg, info)) != 0) {
        store_close(&s);
        train_db_free(db);
        return rc;
    }
    /* Attribution is per Example (DatasetInfo has no counter): one pass
     * over the store, skipped for very large datasets unless a visitor
     * needs every Example anyway (then the count comes with it). */
    if (info->count <= TRAIN_DB_SCAN_MAX || (v && v->example)) {
        uint64_t n = info->count, with = 0;
        for (uint64_t i = 0; i < n; i++) {
            Gambar__Example *ex = NULL;
            rc = store_get(s, i, &ex);
            if (rc) {
                log_error("--db %s: example %" PRIu64 ": %s", path, i, err_str(rc));
                store_close(&s);
                train_db_free(db);
                return GB_EMISMATCH;
            }
            if (ex->attribution && *ex->attribution) with++;
            if (v && v->example) rc = v->example(v->arg, i, ex);
            gambar__example__free_unpacked(ex, NULL);
            if (rc) {
                store_close(&s);
                train_db_free(db);
                return rc;
            }
            /* the pages read stay mapped: a 60k-image dataset would add
             * ~60 MiB to the trainer's peak RSS */
            if ((i + 1) % TRAIN_DB_SCAN_RELEASE == 0) store_release_pages(s);
        }
        store_release_pages(s);
        db->note[3] = fmt_u64(with);
    }
    db->have = 1;
    store_close(&s);
    return 0;
}

void train_db_from_ckpt(const Gambar__Checkpoint *ck, train_db_t *db) {
    memset(db, 0, sizeof *db);
    for (int k = 0; k < TRAIN_DB_NOTES; k++) {
        const char *v = ckpt_note(ck, train_db_note_keys[k]);
        if (v) {
            db->note[k] = xstrdup(v);
            db->have = 1;
        }
    }
    if (ck->dataset_digest.len == DIGEST_LEN) memcpy(db->digest, ck->dataset_digest.data, DIGEST_LEN);
}

void train_db_notes(const train_db_t *db, ckpt_builder_t *b) {
    if (!db || !db->have) return;
    for (int k = 0; k < TRAIN_DB_NOTES; k++)
        if (db->note[k]) ckpt_set_note(b, train_db_note_keys[k], db->note[k]);
}
