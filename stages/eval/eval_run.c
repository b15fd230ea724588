/* eval_run.c - one evaluation: make (or read) the images, embed them with
 * the feature network, and compute every figure and audit.
 *
 * The images of a checkpoint are gambar-sample's: the same latents
 * (gambar-z1 of seed S * 2^32 + i), generator (gen_infer.h) and 8-bit pixels
 * (ginfer_to_u8), read back to floats as the training images are, so the
 * figures describe the PNGs a user gets and each image can be remade.
 *
 * Order of work, all in memory: images (n x C x H x W) -> features and
 * logits -> FID, KID, precision/recall against the cached real statistics
 * -> bias audit (classifier labels vs the training class distribution,
 * per-class precision/recall, conditional accuracy) -> memorisation audit
 * (nearest training image in feature space for every image, in pixel
 * space for the first --mem-n) -> JSON detail text. Definitions are in
 * metrics.h and the man page. */
#include "eval.h"

#include "base.h"
#include "digest.h"
#include "err.h"
#include "gen_infer.h"
#include "json.h"
#include "img.h"
#include "log.h"
#include "metrics.h"
#include "model.h"
#include "modelck.h"
#include "nn.h"
#include "nn_extra.h"
#include "prov.h"
#include "rng.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>

#define PR_K 3
#define PIX_CHUNK 2048

void eval_add(eval_result_t *r, const char *name, double v) {
    ASSERT(r->nm < (int)ARRAY_LEN(r->m));
    r->m[r->nm].name = name;
    r->m[r->nm].value = v;
    r->nm++;
}

void eval_result_free(eval_result_t *r) {
    free(r->json_body);
    free(r->class_share);
    free(r->class_share_train);
    ckpt_free(&r->ck);
    memset(r, 0, sizeof *r);
}

/* ---- the images ------------------------------------------------------------ */

/* The gambar-sample seed of image i: S * 2^32 + i (S = --seed), so the
 * images of different --seed values are different latents (with S + i,
 * --seed 1 and --seed 2 would share all but one image) and each is still
 * easy to remake. */
static uint64_t image_seed(const eval_ctx_t *e, size_t i) { return (e->o->seed << 32) + (uint64_t)i; }

static int gen_from_ckpt(eval_ctx_t *e, const char *path, eval_result_t *r, float **x, int32_t **req,
                         eval_text_t **tx) {
    char err[1024];
    int rc = ckpt_load(path, &r->ck, r->ck_digest);
    if (rc) {
        log_error("checkpoint %s: %s", path, err_str(rc));
        return rc > 0 ? GB_EXIT_IO : GB_EXIT_DATA;
    }
    model_desc_t d;
    if (modelck_desc(r->ck->model, &d, err, sizeof err) != 0) {
        log_error("checkpoint %s: %s", path, err);
        return GB_EXIT_DATA;
    }
    int status = 0;
    model_t *m = NULL;
    ginfer_t *gen = NULL;
    if (d.height != e->H || d.width != e->W || d.channels != e->C) {
        log_error("checkpoint %s generates %dx%dx%d images but dataset %s holds %dx%dx%d (WxHxC): wrong dataset or "
                  "checkpoint", path, d.width, d.height, d.channels, e->o->db, e->W, e->H, e->C);
        status = GB_EXIT_DATA;
        goto done;
    }
    if (d.conditional && d.num_classes != e->K) {
        log_error("checkpoint %s is conditional on %d classes but dataset %s has %d", path, d.num_classes, e->o->db,
                  e->K);
        status = GB_EXIT_DATA;
        goto done;
    }
    rc = modelck_load(r->ck, 2, &m, err, sizeof err);
    if (rc) {
        log_error("checkpoint %s: %s", path, err);
        status = rc == GB_ENUMERIC ? GB_EXIT_NUMERIC : GB_EXIT_DATA;
        goto done;
    }
    r->step = r->ck->state->step;
    r->epoch = r->ck->state->epoch;
    rc = ginfer_new(m, 1, &gen, err, sizeof err);
    if (rc) {
        log_error("checkpoint %s: %s", path, err);
        status = GB_EXIT_DATA;
        goto done;
    }
    /* image i is gambar-sample's image of image_seed(i) (class (*req)[i],
     * or for a text model the prompt eval_text_prompt(i)): the same latent
     * contract, generator and 8-bit pixels */
    size_t n = r->n, img = (size_t)e->C * e->H * e->W;
    float *z = xmalloc(n * (size_t)d.z_dim * sizeof(float));
    for (size_t i = 0; i < n; i++) prov_latent_z1(image_seed(e, i), d.z_dim, 0, z + i * (size_t)d.z_dim);
    rng_t g;
    rng_derive(&g, e->o->seed, 0x6576616cULL, 0, 0, 0);
    if (ginfer_text_dim(gen)) {
        /* prompts from held-out captions (eval_text.c); the caption's class
         * stands for the requested one in the bias audit (-1: none) */
        status = eval_text_prepare(e, path, r->ck, gen, n, z, tx);
        gen = NULL; /* the text audit's now */
        if (status) {
            free(z);
            goto done;
        }
        *req = xmalloc(n * sizeof(int32_t));
        for (size_t i = 0; i < n; i++) (*req)[i] = eval_text_class(*tx, i);
    } else if (d.conditional) {
        /* classes requested in the training proportions, so the bias audit
         * compares like with like */
        *req = xmalloc(n * sizeof(int32_t));
        double tot = 0;
        for (int k = 0; k < e->K; k++) tot += k < (int)e->info->n_class_counts ? (double)e->info->class_counts[k] : 1;
        for (size_t i = 0; i < n; i++) {
            double u = rng_uniform_d(&g) * tot, c = 0;
            int k = 0;
            for (; k < e->K - 1; k++) {
                c += k < (int)e->info->n_class_counts ? (double)e->info->class_counts[k] : 1;
                if (u < c) break;
            }
            (*req)[i] = k;
        }
    }
    float *hwc = xmalloc(n * img * sizeof(float));
    if (*tx) {
        ginfer_generate_text(eval_text_generator(*tx), z, eval_text_vectors(*tx), (int)n, hwc);
        eval_text_keep_pixels(*tx, hwc, img);
    } else {
        ginfer_generate(gen, z, *req, (int)n, hwc);
    }
    free(z);
    if (!nn_all_finite(n * img, hwc)) {
        log_error("checkpoint %s: the generator produced NaN/Inf pixels", path);
        status = GB_EXIT_NUMERIC;
    } else {
        /* measure the pixels the sampler writes: quantise as it does, then
         * back to floats exactly as the real images are read */
        uint8_t *px = xmalloc(img);
        *x = xmalloc(n * img * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            ginfer_to_u8(hwc + i * img, img, px);
            featnet_px_to_float(px, e->C, e->H, e->W, *x + i * img);
        }
        free(px);
    }
    free(hwc);
done:
    ginfer_free(gen);
    model_free(m);
    model_desc_release(&d);
    return status;
}

static int images_from_db(eval_ctx_t *e, const char *path, eval_result_t *r, float **x) {
    store_t *s = NULL;
    int rc = store_open(path, STORE_RDONLY, &s);
    if (rc) {
        log_error("samples dataset %s: cannot open: %s", path, err_str(rc));
        return GB_EXIT_IO;
    }
    const Gambar__DatasetInfo *si = store_info(s);
    int status = 0;
    size_t count = (size_t)store_count(s);
    if (!si || count < 10) {
        log_error("samples dataset %s: needs at least 10 images (has %zu)", path, count);
        status = GB_EXIT_DATA;
        goto done;
    }
    if ((int)si->channels != e->C || (int)si->height != e->H || (int)si->width != e->W) {
        log_error("samples dataset %s holds %ux%ux%u images but dataset %s holds %dx%dx%d", path, si->width,
                  si->height, si->channels, e->o->db, e->W, e->H, e->C);
        status = GB_EXIT_DATA;
        goto done;
    }
    if (r->n > count) r->n = count;
    uint64_t *perm = xmalloc(count * sizeof(uint64_t));
    for (size_t i = 0; i < count; i++) perm[i] = i;
    rng_t g;
    rng_derive(&g, e->o->seed, 0x73616d70ULL, 0, 0, 0);
    rng_shuffle_u64(&g, perm, count);
    size_t img = (size_t)e->C * e->H * e->W;
    *x = xmalloc(r->n * img * sizeof(float));
    rc = featio_read_store(s, perm, r->n, *x, NULL);
    free(perm);
    if (rc) status = GB_EXIT_DATA;
done:
    store_close(&s);
    return status;
}

/* ---- audits ---------------------------------------------------------------- */

static const char *class_name(const eval_ctx_t *e, int k) {
    return k >= 0 && k < (int)e->info->n_class_names ? e->info->class_names[k] : "?";
}

/* Bias audit into f (JSON object members), figures into r. req: the
 * class asked for per image (NULL: unconditional; for a text model
 * (text) the class its prompt names, -1 when none, which the per-class
 * "requested" figures skip). */
static void bias_audit(eval_ctx_t *e, eval_result_t *r, const float *feat, const float *logits, const int32_t *req,
                       bool text, FILE *f) {
    int K = e->fn_classes;
    size_t n = r->n;
    int32_t *pred = xmalloc(n * sizeof(int32_t));
    argmax_rows((int)n, K, logits, pred);
    double *gen = xcalloc((size_t)K, sizeof(double)), *train = xcalloc((size_t)K, sizeof(double));
    for (size_t i = 0; i < n; i++) gen[pred[i]] += 1;
    for (int k = 0; k < K; k++)
        train[k] = k < (int)e->info->n_class_counts ? (double)e->info->class_counts[k] : 0;
    double ttot = 0;
    for (int k = 0; k < K; k++) ttot += train[k];
    if (ttot <= 0) /* no counts stored: count the labels */
        for (size_t i = 0; i < e->real.n; i++)
            if (e->real.labels[i] >= 0 && e->real.labels[i] < K) train[e->real.labels[i]] += 1, ttot += 1;
    double kl = metrics_kl(train, gen, K, 0.5);
    double kl_rev = metrics_kl(gen, train, K, 0.5);
    eval_add(r, "class_kl", kl);
    r->nclass = K;
    r->class_share = xmalloc((size_t)K * sizeof(double));
    r->class_share_train = xmalloc((size_t)K * sizeof(double));
    for (int k = 0; k < K; k++) {
        r->class_share[k] = gen[k] / (double)n;
        r->class_share_train[k] = ttot > 0 ? train[k] / ttot : NAN;
    }
    int under = 0, over = 0;
    double *ratio = xmalloc((size_t)K * sizeof(double));
    for (int k = 0; k < K; k++) {
        double tf = ttot > 0 ? train[k] / ttot : 0, gf = gen[k] / (double)n;
        ratio[k] = tf > 0 ? gf / tf : INFINITY;
        if (ratio[k] < ratio[under]) under = k;
        if (ratio[k] > ratio[over]) over = k;
    }
    /* per-class precision/recall: generated images labelled k against
     * real images of class k (a random sample of up to n real images) */
    size_t nr = GB_MIN(n, e->real.n);
    uint64_t *perm = xmalloc(e->real.n * sizeof(uint64_t));
    for (size_t i = 0; i < e->real.n; i++) perm[i] = i;
    rng_t g;
    rng_derive(&g, e->o->seed, 0x62696173ULL, 0, 0, 0);
    rng_shuffle_u64(&g, perm, e->real.n);
    float *fk = xmalloc(n * FEATNET_DIM * sizeof(float)), *rk = xmalloc(nr * FEATNET_DIM * sizeof(float));
    fprintf(f, "  \"bias\": {\n    \"class_kl\": ");
    json_num(f, kl);
    fprintf(f, ",\n    \"class_kl_definition\": \"KL(train || generated) in nats over classifier labels, generated "
               "counts smoothed by +0.5\",\n    \"class_kl_reverse\": ");
    json_num(f, kl_rev);
    fprintf(f, ",\n    \"most_under_represented\": ");
    json_str(f, class_name(e, under));
    fprintf(f, ",\n    \"most_over_represented\": ");
    json_str(f, class_name(e, over));
    fprintf(f, ",\n    \"classes\": [\n");
    for (int k = 0; k < K; k++) {
        size_t a = 0, b = 0;
        for (size_t i = 0; i < n; i++)
            if (pred[i] == k) memcpy(fk + a++ * FEATNET_DIM, feat + i * FEATNET_DIM, FEATNET_DIM * sizeof(float));
        for (size_t i = 0; i < nr; i++)
            if (e->real.labels[perm[i]] == k)
                memcpy(rk + b++ * FEATNET_DIM, e->real.feat + perm[i] * FEATNET_DIM, FEATNET_DIM * sizeof(float));
        double p = NAN, rc = NAN;
        if (a > PR_K && b > PR_K) metrics_precision_recall(rk, b, fk, a, FEATNET_DIM, PR_K, &p, &rc);
        fprintf(f, "      {\"index\": %d, \"name\": ", k);
        json_str(f, class_name(e, k));
        fprintf(f, ", \"train_fraction\": ");
        json_num(f, ttot > 0 ? train[k] / ttot : NAN);
        fprintf(f, ", \"generated_fraction\": ");
        json_num(f, gen[k] / (double)n);
        fprintf(f, ", \"ratio\": ");
        json_num(f, ratio[k]);
        fprintf(f, ", \"precision\": ");
        json_num(f, p);
        fprintf(f, ", \"recall\": ");
        json_num(f, rc);
        if (req) {
            size_t asked = 0, hit = 0;
            for (size_t i = 0; i < n; i++)
                if (req[i] == k) asked++, hit += pred[i] == k;
            fprintf(f, ", \"requested\": %zu, \"requested_accuracy\": ", asked);
            json_num(f, asked ? (double)hit / (double)asked : NAN);
        }
        fprintf(f, "}%s\n", k + 1 < K ? "," : "");
    }
    fprintf(f, "    ]");
    if (req && !text) { /* a text model's figure is text_class_accuracy */
        size_t hit = 0;
        for (size_t i = 0; i < n; i++) hit += pred[i] == req[i];
        double ca = (double)hit / (double)n;
        eval_add(r, "conditional_accuracy", ca);
        fprintf(f, ",\n    \"conditional_accuracy\": ");
        json_num(f, ca);
    }
    fprintf(f, "\n  },\n");
    free(pred), free(gen), free(train), free(ratio), free(perm), free(fk), free(rk);
}

/* generated | nearest training image, 2 px grey gap, as one PNG */
static int write_pair(const eval_ctx_t *e, const char *path, const float *gen, uint64_t train_idx) {
    const uint8_t *px;
    size_t npx;
    int32_t lab;
    int rc = store_get_pixels(e->db, train_idx, &px, &npx, &lab);
    if (rc) return rc;
    int C = e->C, H = e->H, W = e->W, OW = 2 * W + 2;
    img_t im = {(uint32_t)OW, (uint32_t)H, (uint32_t)C, xmalloc((size_t)OW * H * C)};
    memset(im.px, 128, (size_t)OW * H * C);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                ginfer_to_u8(&gen[((size_t)c * H + y) * W + x], 1, &im.px[((size_t)y * OW + x) * C + c]);
                im.px[((size_t)y * OW + W + 2 + x) * C + c] = px[((size_t)y * W + x) * C + c];
            }
    img_text_t t[1] = {{"Comment", "left: generated image; right: nearest training image (pixel L2)"}};
    rc = img_write_png(path, &im, t, 1, -1);
    img_free(&im);
    return rc;
}

typedef struct {
    size_t i;
    float d;
} pair_t;

static int cmp_pair(const void *a, const void *b) {
    float x = ((const pair_t *)a)->d, y = ((const pair_t *)b)->d;
    return x < y ? -1 : x > y;
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double median_of(const float *v, size_t n) {
    float *c = xmalloc(n * sizeof(float));
    memcpy(c, v, n * sizeof(float));
    qsort(c, n, sizeof(float), cmp_f);
    double m = c[n / 2];
    free(c);
    return m;
}

/* from_ckpt: the images came from gen_from_ckpt (req: their classes, NULL
 * when unconditional; tx: a text model's prompts, else NULL), so each
 * closest pair names the gambar-sample seed and class (or prompt) that
 * remake its generated image. */
static int memorisation_audit(eval_ctx_t *e, eval_result_t *r, const char *ckpt_path, int from_ckpt,
                              const int32_t *req, const eval_text_t *tx, const float *x, const float *feat,
                              FILE *f) {
    size_t n = r->n, img = (size_t)e->C * e->H * e->W;
    /* feature space: every generated image against every training image */
    float *fd = xmalloc(n * sizeof(float));
    int64_t *fi = xmalloc(n * sizeof(int64_t));
    metrics_knn_init(n, 1, fd, fi);
    metrics_knn_update(feat, n, e->real.feat, e->real.n, FEATNET_DIM, 1, 0, -1, fd, fi);
    size_t fnear = 0;
    for (size_t i = 0; i < n; i++) {
        fd[i] = sqrtf(fd[i]);
        fnear += fd[i] < e->real.feat_thresh;
    }
    /* pixel space: the first mem_n generated images, training set in chunks */
    size_t m = GB_MIN((size_t)e->o->mem_n, n);
    float *pd = xmalloc((m ? m : 1) * sizeof(float));
    int64_t *pi = xmalloc((m ? m : 1) * sizeof(int64_t));
    size_t pnear = 0;
    int rc = 0;
    if (m) {
        metrics_knn_init(m, 1, pd, pi);
        float *chunk = xmalloc((size_t)PIX_CHUNK * img * sizeof(float));
        uint64_t *idx = xmalloc((size_t)PIX_CHUNK * sizeof(uint64_t));
        size_t count = e->real.n;
        for (size_t c0 = 0; c0 < count && rc == 0; c0 += PIX_CHUNK) {
            size_t nc = GB_MIN((size_t)PIX_CHUNK, count - c0);
            for (size_t i = 0; i < nc; i++) idx[i] = c0 + i;
            rc = featio_read_store(e->db, idx, nc, chunk, NULL);
            if (rc == 0) metrics_knn_update(x, m, chunk, nc, (int)img, 1, (int64_t)c0, -1, pd, pi);
        }
        free(chunk), free(idx);
        for (size_t i = 0; i < m; i++) {
            pd[i] = sqrtf(pd[i]);
            pnear += pd[i] < e->real.pix_thresh;
        }
    }
    if (rc) goto done;
    double ncf = m ? (double)pnear / (double)m : NAN;
    eval_add(r, "near_copy_fraction", ncf);
    eval_add(r, "near_copy_fraction_features", (double)fnear / (double)n);
    fprintf(f, "  \"memorisation\": {\n    \"threshold_definition\": \"1st percentile of nearest-neighbour "
               "distances from 1000 training images to the rest of the training set (L2; pixels scaled to "
               "[-1, 1])\",\n");
    fprintf(f, "    \"pixel_threshold\": ");
    json_num(f, e->real.pix_thresh);
    fprintf(f, ",\n    \"feature_threshold\": ");
    json_num(f, e->real.feat_thresh);
    fprintf(f, ",\n    \"pixel_audited\": %zu,\n    \"near_copy_fraction\": ", m);
    json_num(f, ncf);
    fprintf(f, ",\n    \"near_copy_fraction_features\": ");
    json_num(f, (double)fnear / (double)n);
    fprintf(f, ",\n    \"feature_distance_median\": ");
    json_num(f, median_of(fd, n));
    fprintf(f, ",\n    \"pixel_distance_median\": ");
    json_num(f, m ? median_of(pd, m) : NAN);
    fprintf(f, ",\n    \"closest\": [");
    /* the closest pairs in pixel space, with provenance; PNGs when asked */
    size_t w = GB_MIN((size_t)e->o->worst_n, m);
    pair_t *pp = xmalloc((m ? m : 1) * sizeof(pair_t));
    for (size_t i = 0; i < m; i++) pp[i] = (pair_t){i, pd[i]};
    qsort(pp, m, sizeof(pair_t), cmp_pair);
    r->worst_dir[0] = 0;
    r->pairs_failed = false;
    if (w) {
        if (e->o->worst_dir) snprintf(r->worst_dir, sizeof r->worst_dir, "%s", e->o->worst_dir);
        else if (ckpt_path) snprintf(r->worst_dir, sizeof r->worst_dir, "%s.nearest", ckpt_path);
        if (r->worst_dir[0] && mkdir(r->worst_dir, 0755) != 0 && errno != EEXIST) {
            log_warn("cannot create %s: %s; closest pairs not written", r->worst_dir, strerror(errno));
            r->worst_dir[0] = 0;
            r->pairs_failed = true;
        }
    }
    for (size_t j = 0; j < w; j++) {
        size_t i = pp[j].i;
        uint64_t ti = (uint64_t)pi[i];
        Gambar__Example *ex = NULL;
        store_get(e->db, ti, &ex);
        char png[4200] = "";
        if (r->worst_dir[0]) {
            snprintf(png, sizeof png, "%s/pair-%02zu.png", r->worst_dir, j);
            int wr = write_pair(e, png, x + i * img, ti);
            if (wr) {
                char why[4400];
                log_warn("%s: %s", png, err_io_str(wr, png, why, sizeof why));
                png[0] = 0;
                r->pairs_failed = true;
            }
        }
        fprintf(f, "%s\n      {\"generated\": %zu, ", j ? "," : "", i);
        if (from_ckpt) {
            fprintf(f, "\"seed\": %llu, \"class_index\": ", (unsigned long long)image_seed(e, i));
            if (req && req[i] >= 0) fprintf(f, "%d, ", (int)req[i]);
            else fputs("null, ", f);
            if (tx) {
                fputs("\"prompt\": ", f);
                json_str(f, eval_text_prompt(tx, i));
                fputs(", ", f);
            }
        }
        fprintf(f, "\"train_index\": %llu, \"pixel_distance\": ", (unsigned long long)ti);
        json_num(f, pd[i]);
        fprintf(f, ", \"ratio_to_threshold\": ");
        json_num(f, e->real.pix_thresh > 0 ? pd[i] / e->real.pix_thresh : NAN);
        fprintf(f, ", \"near_copy\": %s, \"source_uri\": ", pd[i] < e->real.pix_thresh ? "true" : "false");
        json_str(f, ex ? ex->source_uri : "");
        fprintf(f, ", \"license\": ");
        json_str(f, ex ? ex->license : "");
        fprintf(f, ", \"attribution\": ");
        json_str(f, ex ? ex->attribution : "");
        fprintf(f, ", \"png\": ");
        if (png[0]) json_str(f, png);
        else fputs("null", f);
        fputc('}', f);
        if (ex) gambar__example__free_unpacked(ex, NULL);
    }
    fprintf(f, "%s]\n  }\n", w ? "\n    " : "");
    free(pp);
done:
    free(fd), free(fi), free(pd), free(pi);
    return rc ? GB_EXIT_DATA : 0;
}

/* ---- the whole evaluation ---------------------------------------------------- */

int eval_run(eval_ctx_t *e, const char *ckpt_path, const char *samples_db, eval_result_t *r) {
    memset(r, 0, sizeof *r);
    double t0 = gb_now();
    r->n = (size_t)e->o->n;
    snprintf(r->source, sizeof r->source, "%s", samples_db ? samples_db : ckpt_path);
    float *x = NULL, *feat = NULL, *logits = NULL;
    int32_t *req = NULL;
    eval_text_t *tx = NULL;
    int status = samples_db ? images_from_db(e, samples_db, r, &x) : gen_from_ckpt(e, ckpt_path, r, &x, &req, &tx);
    if (status) goto fail;
    size_t n = r->n;
    int K = featnet_classes(e->fn);
    feat = xmalloc(n * FEATNET_DIM * sizeof(float));
    logits = xmalloc(n * (size_t)K * sizeof(float));
    featnet_forward(e->fn, x, n, feat, logits);

    /* distribution metrics */
    double *mu = xmalloc(FEATNET_DIM * sizeof(double)), *cov = xmalloc(FEATNET_DIM * FEATNET_DIM * sizeof(double));
    metrics_gauss_fit(feat, n, FEATNET_DIM, mu, cov);
    double fid = metrics_fid(FEATNET_DIM, mu, cov, e->real.mean, e->real.cov);
    free(mu), free(cov);
    double kid_std = 0;
    double kid = metrics_kid(feat, n, e->real.feat, e->real.n, FEATNET_DIM, (int)e->o->kid_subsets, 1000,
                             e->o->seed ^ 0x6b6964ULL, &kid_std);
    size_t nr = GB_MIN(n, e->real.n);
    float *rs = xmalloc(nr * FEATNET_DIM * sizeof(float));
    uint64_t *perm = xmalloc(e->real.n * sizeof(uint64_t));
    for (size_t i = 0; i < e->real.n; i++) perm[i] = i;
    rng_t g;
    rng_derive(&g, e->o->seed, 0x707263ULL, 0, 0, 0);
    rng_shuffle_u64(&g, perm, e->real.n);
    for (size_t i = 0; i < nr; i++)
        memcpy(rs + i * FEATNET_DIM, e->real.feat + perm[i] * FEATNET_DIM, FEATNET_DIM * sizeof(float));
    free(perm);
    double prec = NAN, rec = NAN;
    if (nr > PR_K && n > PR_K) metrics_precision_recall(rs, nr, feat, n, FEATNET_DIM, PR_K, &prec, &rec);
    free(rs);
    eval_add(r, "fid", fid);
    eval_add(r, "kid", kid);
    eval_add(r, "kid_std", kid_std);
    eval_add(r, "precision", prec);
    eval_add(r, "recall", rec);
    if (e->classifier_accuracy >= 0) eval_add(r, "classifier_accuracy", e->classifier_accuracy);

    char *body = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&body, &blen);
    ASSERT(f);
    if (e->fn_classes) bias_audit(e, r, feat, logits, req, tx != NULL, f);
    else fprintf(f, "  \"bias\": null,\n");
    if (tx) status = eval_text_audit(e, tx, r, logits, f);
    if (!status) status = memorisation_audit(e, r, ckpt_path, !samples_db, req, tx, x, feat, f);
    fclose(f);
    r->json_body = body;
    if (status) goto fail;
    r->seconds = gb_now() - t0;
    eval_add(r, "eval_seconds", r->seconds);
    free(x), free(feat), free(logits), free(req);
    eval_text_free(tx);
    return 0;
fail:
    free(x), free(feat), free(logits), free(req);
    eval_text_free(tx);
    eval_result_free(r);
    return status;
}
