/* eval_feat.c - the feature network and the real-data statistics that
 * every evaluation of one dataset shares, found in caches or computed.
 *
 * Caches live next to the dataset (or in --cache-dir), named by digest so
 * a changed dataset or feature network never reuses stale numbers:
 *   features-<db digest, 16 hex>.gck          the fitted classifier
 *   evalstats-<db 16 hex>-<features 16 hex>.gck  real statistics
 * Both are gck files written atomically (featio_write_gck). A cache that
 * cannot be written (read-only dataset folder) costs a warning, not the
 * evaluation.
 *
 * Near-copy thresholds (documented in the man page): for up to 1000
 * training examples drawn with a fixed seed, the distance to their nearest
 * other training example, in pixel space (L2 over [-1, 1] pixel values)
 * and in feature space; the threshold is the 1st percentile of those
 * distances. A generated image closer than that to a training image is as
 * close as only 1 % of real images are to their nearest neighbour. */
#include "eval.h"

#include "base.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "nn.h"
#include "rng.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIT_SEED 0x6a6d62617246ULL
#define RANDOM_CNN_SEED 0x72616e646f6dULL
#define THRESH_QUERIES 1000
#define PIX_CHUNK 2048

static int cache_folder(const eval_opts_t *o, char *out, size_t len) {
    const char *d = o->cache_dir ? o->cache_dir : o->db;
    if (snprintf(out, len, "%s", d) >= (int)len) return ENAMETOOLONG;
    if (o->cache_dir) mkdir(o->cache_dir, 0755);
    return 0;
}

/* Nearest other training example of each query (queries are training
 * examples qidx[0..nq)) in pixel space, by chunks of the training set. */
static int pixel_nn_self(store_t *db, const uint64_t *qidx, size_t nq, size_t count, size_t img, float *nn_dist) {
    float *q = xmalloc(nq * img * sizeof(float)), *chunk = xmalloc((size_t)PIX_CHUNK * img * sizeof(float));
    float *dd = xmalloc(nq * 2 * sizeof(float));
    int64_t *ii = xmalloc(nq * 2 * sizeof(int64_t));
    int rc = featio_read_store(db, qidx, nq, q, NULL);
    metrics_knn_init(nq, 2, dd, ii);
    for (size_t c0 = 0; rc == 0 && c0 < count; c0 += PIX_CHUNK) {
        size_t nc = GB_MIN((size_t)PIX_CHUNK, count - c0);
        uint64_t *idx = xmalloc(nc * sizeof(uint64_t));
        for (size_t i = 0; i < nc; i++) idx[i] = c0 + i;
        rc = featio_read_store(db, idx, nc, chunk, NULL);
        free(idx);
        if (rc == 0) metrics_knn_update(q, nq, chunk, nc, (int)img, 2, (int64_t)c0, -1, dd, ii);
    }
    for (size_t i = 0; i < nq; i++) nn_dist[i] = sqrtf(ii[2 * i] == (int64_t)qidx[i] ? dd[2 * i + 1] : dd[2 * i]);
    free(q), free(chunk), free(dd), free(ii);
    return rc;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* 1st percentile of v[0..n) (sorts v) */
static double percentile1(float *v, size_t n) {
    qsort(v, n, sizeof(float), cmp_float);
    return v[(size_t)floor(0.01 * (double)(n - 1))];
}

static int compute_real(eval_ctx_t *e) {
    eval_real_t *r = &e->real;
    size_t count = (size_t)store_count(e->db), img = (size_t)e->C * e->H * e->W;
    double t0 = gb_now();
    log_info("computing real-data statistics of %s (%zu images)", e->o->db, count);
    r->n = count;
    r->feat = xmalloc(count * FEATNET_DIM * sizeof(float));
    r->labels = xmalloc(count * sizeof(int32_t));
    float *chunk = xmalloc((size_t)PIX_CHUNK * img * sizeof(float));
    uint64_t *idx = xmalloc((size_t)PIX_CHUNK * sizeof(uint64_t));
    int rc = 0;
    for (size_t c0 = 0; c0 < count && rc == 0; c0 += PIX_CHUNK) {
        size_t nc = GB_MIN((size_t)PIX_CHUNK, count - c0);
        for (size_t i = 0; i < nc; i++) idx[i] = c0 + i;
        rc = featio_read_store(e->db, idx, nc, chunk, r->labels + c0);
        if (rc == 0) featnet_forward(e->fn, chunk, nc, r->feat + c0 * FEATNET_DIM, NULL);
    }
    free(chunk);
    free(idx);
    if (rc) return rc;
    r->mean = xmalloc(FEATNET_DIM * sizeof(double));
    r->cov = xmalloc(FEATNET_DIM * FEATNET_DIM * sizeof(double));
    metrics_gauss_fit(r->feat, count, FEATNET_DIM, r->mean, r->cov);
    /* thresholds from a fixed random subset of queries */
    size_t nq = GB_MIN((size_t)THRESH_QUERIES, count);
    uint64_t *perm = xmalloc(count * sizeof(uint64_t));
    for (size_t i = 0; i < count; i++) perm[i] = i;
    rng_t g;
    rng_seed(&g, 0x7468726573ULL);
    rng_shuffle_u64(&g, perm, count);
    float *dist = xmalloc(nq * sizeof(float)), *q = xmalloc(nq * FEATNET_DIM * sizeof(float));
    rc = pixel_nn_self(e->db, perm, nq, count, img, dist);
    if (rc == 0) {
        r->pix_thresh = percentile1(dist, nq);
        float *dd = xmalloc(nq * 2 * sizeof(float));
        int64_t *ii = xmalloc(nq * 2 * sizeof(int64_t));
        for (size_t i = 0; i < nq; i++) memcpy(q + i * FEATNET_DIM, r->feat + perm[i] * FEATNET_DIM, FEATNET_DIM * sizeof(float));
        metrics_knn_init(nq, 2, dd, ii);
        metrics_knn_update(q, nq, r->feat, count, FEATNET_DIM, 2, 0, -1, dd, ii);
        for (size_t i = 0; i < nq; i++) dist[i] = sqrtf(ii[2 * i] == (int64_t)perm[i] ? dd[2 * i + 1] : dd[2 * i]);
        r->feat_thresh = percentile1(dist, nq);
        free(dd), free(ii);
    }
    free(perm), free(dist), free(q);
    log_info("real-data statistics done in %.1f s (near-copy thresholds: pixel %.3f, feature %.3f)",
             gb_now() - t0, r->pix_thresh, r->feat_thresh);
    return rc;
}

static int save_real(eval_ctx_t *e, const char *path) {
    eval_real_t *r = &e->real;
    ckpt_builder_t *b = ckpt_builder_new();
    Gambar__Checkpoint *ck = ckpt_builder_msg(b);
    ck->model->family = ckpt_builder_strdup(b, "evalstats");
    ck->model->height = (uint32_t)e->H, ck->model->width = (uint32_t)e->W, ck->model->channels = (uint32_t)e->C;
    ck->dataset_digest = ckpt_builder_bytes(b, e->db_digest, 32);
    int64_t sh[2] = {(int64_t)r->n, FEATNET_DIM};
    ckpt_add_tensor(b, "feat", sh, 2, r->feat);
    float *tmp = xmalloc((r->n > FEATNET_DIM * FEATNET_DIM ? r->n : FEATNET_DIM * FEATNET_DIM) * sizeof(float));
    for (size_t i = 0; i < r->n; i++) tmp[i] = (float)r->labels[i];
    sh[0] = (int64_t)r->n;
    ckpt_add_tensor(b, "labels", sh, 1, tmp);
    for (int i = 0; i < FEATNET_DIM * FEATNET_DIM; i++) tmp[i] = (float)r->cov[i];
    sh[0] = sh[1] = FEATNET_DIM;
    ckpt_add_tensor(b, "cov", sh, 2, tmp);
    for (int i = 0; i < FEATNET_DIM; i++) tmp[i] = (float)r->mean[i];
    ckpt_add_tensor(b, "mean", sh, 1, tmp);
    free(tmp);
    char v[64];
    snprintf(v, sizeof v, "%.9g", r->pix_thresh);
    ckpt_set_note(b, "pix_thresh", v);
    snprintf(v, sizeof v, "%.9g", r->feat_thresh);
    ckpt_set_note(b, "feat_thresh", v);
    ckpt_set_note(b, "kind", "evalstats");
    int rc = featio_write_gck(path, ck);
    ckpt_builder_destroy(&b);
    return rc;
}

static int load_real(eval_ctx_t *e, const char *path) {
    Gambar__Checkpoint *ck = NULL;
    int rc = ckpt_load_quiet(path, LOG_WARN, &ck, NULL);
    if (rc) return rc;
    eval_real_t *r = &e->real;
    size_t n = (size_t)store_count(e->db);
    const Gambar__Tensor *tf = ckpt_tensor(ck, "feat");
    const char *pt = ckpt_note(ck, "pix_thresh"), *ft = ckpt_note(ck, "feat_thresh");
    if (!tf || tf->n_shape != 2 || (size_t)tf->shape[0] != n || !pt || !ft) {
        log_warn("%s: stale or foreign statistics cache; recomputing", path);
        ckpt_free(&ck);
        return GB_EFORMAT;
    }
    r->n = n;
    r->feat = xmalloc(n * FEATNET_DIM * sizeof(float));
    float *lab = xmalloc(n * sizeof(float)), *cov = xmalloc(FEATNET_DIM * FEATNET_DIM * sizeof(float));
    float mean[FEATNET_DIM];
    int64_t s2[2] = {(int64_t)n, FEATNET_DIM}, s1[1] = {(int64_t)n}, sc[2] = {FEATNET_DIM, FEATNET_DIM},
            sm[1] = {FEATNET_DIM};
    rc = ckpt_get_tensor(ck, "feat", s2, 2, r->feat);
    if (!rc) rc = ckpt_get_tensor(ck, "labels", s1, 1, lab);
    if (!rc) rc = ckpt_get_tensor(ck, "cov", sc, 2, cov);
    if (!rc) rc = ckpt_get_tensor(ck, "mean", sm, 1, mean);
    if (!rc) {
        r->labels = xmalloc(n * sizeof(int32_t));
        r->mean = xmalloc(FEATNET_DIM * sizeof(double));
        r->cov = xmalloc(FEATNET_DIM * FEATNET_DIM * sizeof(double));
        for (size_t i = 0; i < n; i++) r->labels[i] = (int32_t)lab[i];
        for (int i = 0; i < FEATNET_DIM; i++) r->mean[i] = mean[i];
        for (int i = 0; i < FEATNET_DIM * FEATNET_DIM; i++) r->cov[i] = cov[i];
        r->pix_thresh = atof(pt);
        r->feat_thresh = atof(ft);
    } else {
        free(r->feat);
        r->feat = NULL;
    }
    free(lab), free(cov);
    ckpt_free(&ck);
    return rc;
}

static int open_db(const char *path, const char *what, store_t **s) {
    int rc = store_open(path, STORE_RDONLY, s);
    if (rc) {
        log_error("%s %s: cannot open: %s", what, path, err_str(rc));
        return rc == ENOENT ? GB_EXIT_IO : err_exit_code(rc);
    }
    if (store_count(*s) == 0 || !store_info(*s)) {
        log_error("%s %s: the dataset is empty", what, path);
        store_close(s);
        return GB_EXIT_DATA;
    }
    return 0;
}

static void hex16(const uint8_t d[32], char out[17]) {
    char h[65];
    digest_hex(d, 32, h);
    memcpy(out, h, 16);
    out[16] = 0;
}

int eval_ctx_open(eval_ctx_t *e, const eval_opts_t *o) {
    memset(e, 0, sizeof *e);
    e->o = o;
    e->classifier_accuracy = -1;
    e->fn_test_acc = -1;
    char err[1024];
    int rc = open_db(o->db, "dataset", &e->db);
    if (rc) return rc;
    e->info = store_info(e->db);
    if (store_count(e->db) < 10) {
        log_error("dataset %s holds %llu images; the statistics need at least 10", o->db,
                  (unsigned long long)store_count(e->db));
        return GB_EXIT_DATA;
    }
    e->C = (int)e->info->channels, e->H = (int)e->info->height, e->W = (int)e->info->width;
    e->K = (int)e->info->n_class_names;
    if (e->info->digest.len == 32) memcpy(e->db_digest, e->info->digest.data, 32);
    if (o->test_db) {
        rc = open_db(o->test_db, "test dataset", &e->test_db);
        if (rc) return rc;
        const Gambar__DatasetInfo *ti = store_info(e->test_db);
        if (ti->channels != e->info->channels || ti->height != e->info->height || ti->width != e->info->width) {
            log_error("test dataset %s: images are %ux%ux%u but the dataset %s has %dx%dx%d", o->test_db, ti->width,
                      ti->height, ti->channels, o->db, e->W, e->H, e->C);
            return GB_EXIT_DATA;
        }
    }
    char folder[3072], db16[17], fn16[17];
    if (cache_folder(o, folder, sizeof folder)) return GB_EXIT_USAGE;
    hex16(e->db_digest, db16);
    uint8_t fdig[32];
    /* 1. the feature network */
    if (o->features) {
        snprintf(e->features_path, sizeof e->features_path, "%s", o->features);
        rc = featio_load(o->features, 256, &e->fn, &e->features_kind, &e->fn_test_acc, err, sizeof err);
        if (rc) {
            log_error("--features %s", err);
            return rc == ENOENT ? GB_EXIT_IO : rc > 0 ? GB_EXIT_IO : GB_EXIT_DATA;
        }
    } else if (e->K > 0) {
        snprintf(e->features_path, sizeof e->features_path, "%s/features-%s.gck", folder, db16);
        if (access(e->features_path, F_OK) == 0) {
            rc = featio_load(e->features_path, 256, &e->fn, &e->features_kind, &e->fn_test_acc, err, sizeof err);
            if (rc) log_warn("cached feature network unusable (%s); fitting a new one", err);
            else log_info("using the cached feature network %s", e->features_path);
        }
        if (!e->fn) {
            log_info("no feature network for dataset %s yet: fitting one (saved as %s; --features FILE to use "
                     "another)", o->db, e->features_path);
            featnet_t *f = NULL;
            double tr = -1, te = -1, t0 = gb_now();
            rc = featio_fit(e->db, e->test_db, (int)o->epochs, FIT_SEED, &f, &tr, &te, err, sizeof err);
            if (rc) {
                log_error("fitting the feature network on %s: %s", o->db, err);
                return err_exit_code(rc);
            }
            ckpt_builder_t *b = featio_to_builder(f, (const char *const *)e->info->class_names, e->db_digest,
                                                   "trained");
            char v[64];
            snprintf(v, sizeof v, "%.6f", te);
            ckpt_set_note(b, "test_accuracy", v);
            snprintf(v, sizeof v, "%.6f", tr);
            ckpt_set_note(b, "train_accuracy", v);
            snprintf(v, sizeof v, "%lld", o->epochs);
            ckpt_set_note(b, "epochs", v);
            snprintf(v, sizeof v, "%.1f", gb_now() - t0);
            ckpt_set_note(b, "fit_seconds", v);
            if (featio_write_gck(e->features_path, ckpt_builder_msg(b)) != 0)
                log_warn("could not cache the feature network at %s; continuing", e->features_path);
            ckpt_builder_destroy(&b);
            rc = featio_load(e->features_path, 256, &e->fn, &e->features_kind, &e->fn_test_acc, err, sizeof err);
            if (rc) { /* could not cache: use the fitted one directly */
                e->fn = f;
                f = NULL;
                e->features_kind = "trained";
                e->fn_test_acc = te;
                e->features_path[0] = 0;
            }
            featnet_free(f);
        }
    } else {
        log_warn("dataset %s has no class labels: using the documented fallback features of a fixed random CNN "
                 "(\"features\": \"random_cnn\" in the report). FID/KID/precision/recall are comparable only "
                 "between runs using this same fallback; the bias audit and classifier accuracy are skipped",
                 o->db);
        e->fn = featnet_new(e->C, e->H, e->W, 1, 256, RANDOM_CNN_SEED, err, sizeof err);
        if (!e->fn) {
            log_error("dataset %s: %s", o->db, err);
            return GB_EXIT_DATA;
        }
        e->features_kind = "random_cnn";
        e->features_path[0] = 0;
    }
    if (featnet_channels(e->fn) != e->C || featnet_height(e->fn) != e->H || featnet_width(e->fn) != e->W) {
        log_error("feature network %s takes %dx%dx%d images but dataset %s has %dx%dx%d",
                  e->features_path[0] ? e->features_path : "(random)", featnet_width(e->fn), featnet_height(e->fn),
                  featnet_channels(e->fn), o->db, e->W, e->H, e->C);
        return GB_EXIT_DATA;
    }
    e->fn_classes = strcmp(e->features_kind, "trained") == 0 ? featnet_classes(e->fn) : 0;
    if (e->fn_classes && e->K && e->fn_classes != e->K) {
        log_warn("feature network has %d classes but dataset %s has %d: bias audit skipped", e->fn_classes, o->db,
                 e->K);
        e->fn_classes = 0;
    }
    if (e->features_path[0]) {
        if (ckpt_file_digest(e->features_path, fdig) != 0) memset(fdig, 0, 32);
    } else {
        digest_sha256("random_cnn-v1", 13, fdig);
    }
    hex16(fdig, fn16);
    /* 2. the classifier's sanity figure on held-out data */
    if (e->test_db && e->fn_classes) {
        const Gambar__DatasetInfo *ti = store_info(e->test_db);
        size_t tn = (size_t)store_count(e->test_db), img = (size_t)e->C * e->H * e->W;
        if (ti->n_class_names != (size_t)e->fn_classes) {
            log_warn("test dataset %s has %zu classes, the feature network %d: no classifier accuracy", o->test_db,
                     ti->n_class_names, e->fn_classes);
        } else {
            float *x = xmalloc(tn * img * sizeof(float));
            int32_t *y = xmalloc(tn * sizeof(int32_t));
            rc = featio_read_store(e->test_db, NULL, tn, x, y);
            if (rc == 0) e->classifier_accuracy = featnet_accuracy(e->fn, x, y, tn);
            free(x), free(y);
            if (rc) return err_exit_code(rc);
            log_info("feature classifier accuracy on %s: %.4f", o->test_db, e->classifier_accuracy);
        }
    }
    /* 3. real statistics */
    snprintf(e->real.path, sizeof e->real.path, "%s/evalstats-%s-%s.gck", folder, db16, fn16);
    if (o->no_cache || access(e->real.path, F_OK) != 0 || load_real(e, e->real.path) != 0) {
        rc = compute_real(e);
        if (rc) return err_exit_code(rc);
        if (!o->no_cache && save_real(e, e->real.path) != 0) {
            log_warn("could not cache real statistics at %s; continuing", e->real.path);
            e->real.path[0] = 0;
        }
    } else {
        log_info("using cached real-data statistics %s", e->real.path);
    }
    return 0;
}

void eval_ctx_close(eval_ctx_t *e) {
    eval_text_ctx_free(e);
    featnet_free(e->fn);
    free(e->real.feat), free(e->real.labels), free(e->real.mean), free(e->real.cov);
    store_close(&e->db);
    store_close(&e->test_db);
    memset(e, 0, sizeof *e);
}

int eval_fit_features_cmd(const eval_opts_t *o) {
    store_t *db = NULL, *test = NULL;
    featnet_t *f = NULL;
    char err[1024], out[4096];
    int rc = open_db(o->db, "dataset", &db), status = 0;
    if (rc) return rc;
    if (o->test_db && (rc = open_db(o->test_db, "test dataset", &test)) != 0) {
        store_close(&db);
        return rc;
    }
    const Gambar__DatasetInfo *info = store_info(db);
    uint8_t dig[32] = {0};
    if (info->digest.len == 32) memcpy(dig, info->digest.data, 32);
    if (o->out) {
        snprintf(out, sizeof out, "%s", o->out);
    } else {
        char folder[3072], d16[17];
        if (cache_folder(o, folder, sizeof folder)) return GB_EXIT_USAGE;
        hex16(dig, d16);
        snprintf(out, sizeof out, "%s/features-%s.gck", folder, d16);
    }
    double tr = -1, te = -1, t0 = gb_now();
    rc = featio_fit(db, test, (int)o->epochs, o->seed ? o->seed : FIT_SEED, &f, &tr, &te, err, sizeof err);
    double secs = gb_now() - t0;
    if (rc) {
        log_error("cannot fit a feature network on %s: %s", o->db, err);
        status = rc == GB_EINTR ? GB_EXIT_INTERRUPTED : rc == GB_EFORMAT || rc == GB_EMISMATCH ? GB_EXIT_DATA
                                                                                              : err_exit_code(rc);
        goto done;
    }
    ckpt_builder_t *b = featio_to_builder(f, (const char *const *)info->class_names, dig, "trained");
    char v[128];
    snprintf(v, sizeof v, "%.6f", te);
    ckpt_set_note(b, "test_accuracy", v);
    snprintf(v, sizeof v, "%.6f", tr);
    ckpt_set_note(b, "train_accuracy", v);
    snprintf(v, sizeof v, "%lld", o->epochs);
    ckpt_set_note(b, "epochs", v);
    snprintf(v, sizeof v, "%.1f", secs);
    ckpt_set_note(b, "fit_seconds", v);
    if (test) {
        const Gambar__DatasetInfo *ti = store_info(test);
        if (ti->digest.len == 32) {
            char h[65];
            digest_hex(ti->digest.data, 32, h);
            ckpt_set_note(b, "test_dataset_digest", h);
        }
    }
    rc = featio_write_gck(out, ckpt_builder_msg(b));
    ckpt_builder_destroy(&b);
    if (rc) {
        status = GB_EXIT_IO;
        goto done;
    }
    printf("features %s\ntrain_accuracy %.4f\n", out, tr);
    if (test) printf("test_accuracy %.4f\n", te);
    printf("fit_seconds %.1f\n", secs);
done:
    featnet_free(f);
    store_close(&db);
    store_close(&test);
    return status;
}
