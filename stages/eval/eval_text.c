/* eval_text.c - text-conditional checkpoints: their prompts come from
 * held-out captions, and the text-image agreement audit checks that each
 * image shows what its prompt says (issue 10, item 6).
 *
 * Prompts: the captions dataset (--captions-db, else --test-db, else
 * --db) holds captions in its Examples. Its examples with at least one
 * caption are shuffled with the eval seed; image i is prompted with one
 * caption (drawn with rng_derive(seed, i)) of example perm[i mod m], and
 * its latent is the class models' (gambar-z1 of seed S * 2^32 + i), so
 * `gambar-sample --ckpt F --seed S*2^32+i --prompt CAPTION` writes the
 * same pixels (gen_infer, text path; the JSON report lists the first
 * prompts and seeds).
 *
 * What a caption says is read back by capwords.h (the tables that wrote
 * the synthetic captions): a class word and up to three attribute words
 * (brightness, width, fill terciles). The checks:
 *   class      the feature classifier's label of the image equals the
 *              caption's class (captions naming one class);
 *   attribute  the tercile of the image's measure (attr.h, ink > 32)
 *              against the caption class's cut points equals the word's;
 *   direction  for the first --text-pairs captions, per attribute the
 *              caption made with the low word and with the high word
 *              (only that word differs: "dark" vs "light", same synonym,
 *              same class and latent): share of pairs whose measure is
 *              higher for the high word (ties fail);
 *   real       class and attribute checks on the captions dataset's own
 *              images with the same captions: the ceiling of the measure
 *              (classifier errors; thresholds of another split);
 *   mismatched the class and attribute checks of the generated images
 *              against other images' captions (a fixed derangement): what
 *              a generator that ignores its text scores.
 * Cut points: per class terciles of --db's images (capw_thresholds, the
 * captions script's definition, so --db = the training set the captions
 * were made on reproduces them) or, with --caption-thresholds FILE, read
 * from a captions file's header (a subset of the training set as --db). */
#include "eval.h"

#include "attr.h"
#include "base.h"
#include "capwords.h"
#include "err.h"
#include "gen_infer.h"
#include "json.h"
#include "log.h"
#include "model.h"
#include "nn_extra.h"
#include "rng.h"
#include "tencck.h"
#include "textenc.h"

#include <errno.h>
#include <math.h>

#define EXAMPLES_SHOWN 20

/* The per-dataset part, loaded once (eval_ctx_t.text). */
struct eval_textdata {
    store_t *db;          /* the captions dataset (owned only when own) */
    bool own;
    char path[4096];
    uint64_t *elig;       /* examples with captions, shuffled */
    size_t m;
    char ***caps;         /* caps[j][0..ncap[j]) of elig[j]; owned */
    size_t *ncap;
    capw_lex_t *lex;
    capw_thr_t *th;       /* K cut points */
    char th_source[4200];
    /* the real ceiling (for the first n_real prompts) */
    size_t n_real_done;
    double real_cls, real_attr[CAPW_NATTR];
    size_t real_cls_n, real_attr_n[CAPW_NATTR];
};

struct eval_text {
    size_t n;
    int T, Z;
    char **prompt;        /* n, borrowed from the textdata */
    uint64_t *example;    /* n: the captions dataset index of each prompt */
    capw_parse_t *parse;  /* n */
    float *z;             /* n x Z latents */
    float *text;          /* n x T sentence vectors */
    uint8_t *px;          /* n images, HWC bytes as gambar-sample writes them */
    ginfer_t *gen;        /* owned */
    tenc_t *tenc;         /* owned */
};

void eval_text_ctx_free(eval_ctx_t *e) {
    struct eval_textdata *d = e->text;
    if (!d) return;
    if (d->own) store_close(&d->db);
    for (size_t j = 0; j < d->m; j++) {
        for (size_t c = 0; c < d->ncap[j]; c++) free(d->caps[j][c]);
        free(d->caps[j]);
    }
    free(d->caps), free(d->ncap), free(d->elig), free(d->th);
    capw_lex_free(d->lex);
    free(d);
    e->text = NULL;
}

void eval_text_free(eval_text_t *t) {
    if (!t) return;
    free(t->prompt), free(t->example), free(t->parse), free(t->z), free(t->text), free(t->px);
    ginfer_free(t->gen);
    tenc_free(&t->tenc);
    free(t);
}

/* ---- the captions dataset and the cut points ---------------------------------- */

static int thresholds_from_db(eval_ctx_t *e, struct eval_textdata *d) {
    size_t count = (size_t)store_count(e->db);
    attr_t *a = xmalloc(count * sizeof *a);
    int32_t *lab = xmalloc(count * sizeof *lab);
    int rc = 0;
    size_t i = 0;
    for (; i < count && rc == 0; i++) {
        const uint8_t *px;
        size_t npx;
        rc = store_get_pixels(e->db, i, &px, &npx, &lab[i]);
        if (rc == 0) attr_measure(px, e->W, e->H, e->C, ATTR_INK_THR, &a[i]);
    }
    if (rc == 0) {
        capw_thresholds(a, lab, count, e->K, d->th);
        snprintf(d->th_source, sizeof d->th_source, "per-class terciles of the %zu images of --db %s", count,
                 e->o->db);
        for (int k = 0; k < e->K; k++)
            if (!d->th[k].n) log_warn("dataset %s has no image of class \"%s\": its attribute words are not checked",
                                      e->o->db, e->info->class_names[k]);
    } else {
        log_error("dataset %s: example %zu: %s", e->o->db, i - 1, err_str(rc));
    }
    free(a), free(lab);
    return rc ? GB_EXIT_DATA : 0;
}

/* textdata_load's work; on failure the caller frees e->text */
static int textdata_load1(eval_ctx_t *e, const char *ckpt_path) {
    const eval_opts_t *o = e->o;
    struct eval_textdata *d = xcalloc(1, sizeof *d);
    e->text = d;
    const char *path = o->captions_db ? o->captions_db : o->test_db ? o->test_db : o->db;
    snprintf(d->path, sizeof d->path, "%s", path);
    if (o->captions_db) {
        int rc = store_open(path, STORE_RDONLY, &d->db);
        if (rc) {
            log_error("--captions-db %s: cannot open: %s", path, err_str(rc));
            return rc == ENOENT ? GB_EXIT_IO : err_exit_code(rc);
        }
        d->own = true;
        const Gambar__DatasetInfo *ci = store_info(d->db);
        if (!ci || ci->channels != (uint32_t)e->C || ci->height != (uint32_t)e->H || ci->width != (uint32_t)e->W) {
            log_error("--captions-db %s: its images are not %dx%dx%d like those of dataset %s", path, e->W, e->H,
                      e->C, o->db);
            return GB_EXIT_DATA;
        }
    } else {
        d->db = o->test_db ? e->test_db : e->db;
    }
    const char *why_here = o->captions_db ? "--captions-db" : o->test_db ? "--test-db" : "--db";
    if (e->K <= 0 || !e->fn_classes) {
        log_error("checkpoint %s is text-conditional: its agreement audit needs a labelled dataset (class names) "
                  "and the trained feature classifier, and dataset %s has %s", ckpt_path, o->db,
                  e->K <= 0 ? "no class labels" : "a feature network of other classes");
        return GB_EXIT_DATA;
    }
    size_t count = (size_t)store_count(d->db);
    d->elig = xmalloc((count ? count : 1) * sizeof *d->elig);
    d->caps = xmalloc((count ? count : 1) * sizeof *d->caps);
    d->ncap = xmalloc((count ? count : 1) * sizeof *d->ncap);
    for (size_t i = 0; i < count; i++) {
        Gambar__Example *ex = NULL;
        int rc = store_get(d->db, i, &ex);
        if (rc) {
            log_error("captions dataset %s: example %zu: %s", path, i, err_str(rc));
            return GB_EXIT_DATA;
        }
        if (ex->n_captions) {
            d->elig[d->m] = i;
            d->ncap[d->m] = ex->n_captions;
            d->caps[d->m] = xmalloc(ex->n_captions * sizeof(char *));
            for (size_t c = 0; c < ex->n_captions; c++) d->caps[d->m][c] = xstrdup(ex->captions[c]);
            d->m++;
        }
        gambar__example__free_unpacked(ex, NULL);
    }
    if (!d->m) {
        log_error("checkpoint %s is text-conditional, so gambar-eval prompts it with held-out captions, but the "
                  "captions dataset %s (%s) has no captions: ingest it with --captions FILE (see "
                  "scripts/fashion-captions.sh) or give --captions-db PATH", ckpt_path, path, why_here);
        return GB_EXIT_DATA;
    }
    /* shuffle the examples and their caption lists together */
    uint64_t *perm = xmalloc(d->m * sizeof *perm);
    for (size_t j = 0; j < d->m; j++) perm[j] = j;
    rng_t g;
    rng_derive(&g, o->seed, 0x74657874ULL /* "text" */, 0, 0, 0);
    rng_shuffle_u64(&g, perm, d->m);
    uint64_t *el = xmalloc(d->m * sizeof *el);
    char ***cp = xmalloc(d->m * sizeof *cp);
    size_t *nc = xmalloc(d->m * sizeof *nc);
    for (size_t j = 0; j < d->m; j++) el[j] = d->elig[perm[j]], cp[j] = d->caps[perm[j]], nc[j] = d->ncap[perm[j]];
    free(d->elig), free(d->caps), free(d->ncap), free(perm);
    d->elig = el, d->caps = cp, d->ncap = nc;
    d->lex = capw_lex_new((const char *const *)e->info->class_names, e->K);
    d->th = xcalloc((size_t)e->K, sizeof *d->th);
    if (o->caption_thresholds) {
        char err[1024];
        int rc = capw_thresholds_read(o->caption_thresholds, (const char *const *)e->info->class_names, e->K, d->th,
                                      err, sizeof err);
        if (rc) {
            log_error("--caption-thresholds %s", err);
            return rc > 0 ? GB_EXIT_IO : GB_EXIT_DATA;
        }
        for (int k = 0; k < e->K; k++) d->th[k].n = 1;
        snprintf(d->th_source, sizeof d->th_source, "the header of %s", o->caption_thresholds);
        return 0;
    }
    return thresholds_from_db(e, d);
}

/* Load the captions dataset's captions, the lexicon and the cut points
 * once (a failure leaves nothing, so --follow tries again). Returns 0 or
 * an exit status (logged). */
static int textdata_load(eval_ctx_t *e, const char *ckpt_path) {
    if (e->text) return 0;
    int status = textdata_load1(e, ckpt_path);
    if (status) eval_text_ctx_free(e);
    return status;
}

/* ---- prompts and images ------------------------------------------------------- */

int eval_text_prepare(eval_ctx_t *e, const char *ckpt_path, const Gambar__Checkpoint *ck, ginfer_t *gen, size_t n,
                      const float *z, eval_text_t **out) {
    *out = NULL;
    int status = textdata_load(e, ckpt_path);
    if (status) {
        ginfer_free(gen);
        return status;
    }
    struct eval_textdata *d = e->text;
    eval_text_t *t = xcalloc(1, sizeof *t);
    t->gen = gen;
    char err[1024];
    int rc = tencck_load(ck, 256, false, &t->tenc, err, sizeof err);
    if (!rc && tenc_out_dim(t->tenc) != ginfer_text_dim(gen))
        rc = gb_errf(err, sizeof err, GB_EMISMATCH, "its text encoder makes %d-float sentence vectors, the "
                     "generator takes %d", tenc_out_dim(t->tenc), ginfer_text_dim(gen));
    if (rc) {
        log_error("checkpoint %s: a text-conditional model whose text encoder cannot be loaded: %s", ckpt_path, err);
        eval_text_free(t);
        return rc == GB_ENUMERIC ? GB_EXIT_NUMERIC : GB_EXIT_DATA;
    }
    t->n = n;
    t->T = ginfer_text_dim(gen);
    t->Z = ginfer_z_dim(gen);
    t->prompt = xmalloc(n * sizeof *t->prompt);
    t->example = xmalloc(n * sizeof *t->example);
    t->parse = xmalloc(n * sizeof *t->parse);
    for (size_t i = 0; i < n; i++) {
        size_t j = i % d->m;
        rng_t g;
        rng_derive(&g, e->o->seed, 0x70726f6dULL /* "prom" */, i, 0, 0);
        t->prompt[i] = d->caps[j][rng_below(&g, d->ncap[j])];
        t->example[i] = d->elig[j];
        capw_parse(d->lex, t->prompt[i], &t->parse[i]);
    }
    t->text = xmalloc(n * (size_t)t->T * sizeof(float));
    rc = model_encode_texts(t->tenc, (const char *const *)t->prompt, (int)n, t->text, err, sizeof err);
    if (rc) {
        log_error("captions dataset %s: %s", d->path, err);
        eval_text_free(t);
        return GB_EXIT_DATA;
    }
    t->z = xmalloc(n * (size_t)t->Z * sizeof(float));
    memcpy(t->z, z, n * (size_t)t->Z * sizeof(float));
    *out = t;
    return 0;
}

const float *eval_text_vectors(const eval_text_t *t) { return t->text; }
const ginfer_t *eval_text_generator(const eval_text_t *t) { return t->gen; }

void eval_text_keep_pixels(eval_text_t *t, const float *hwc, size_t img) {
    t->px = xmalloc(t->n * img);
    ginfer_to_u8(hwc, t->n * img, t->px);
}

const char *eval_text_prompt(const eval_text_t *t, size_t i) { return t->prompt[i]; }
int eval_text_class(const eval_text_t *t, size_t i) { return t->parse[i].cls; }

/* ---- the audit ------------------------------------------------------------------- */

typedef struct {
    size_t cls_n, cls_hit, attr_n[CAPW_NATTR], attr_hit[CAPW_NATTR];
} tally_t;

/* Check image (pixels px, classifier label pred) against caption p. */
static void check_one(const eval_ctx_t *e, const capw_parse_t *p, const uint8_t *px, int32_t pred, tally_t *t) {
    if (p->cls < 0) return;
    t->cls_n++;
    t->cls_hit += pred == p->cls;
    const capw_thr_t *th = &e->text->th[p->cls];
    if (!th->n) return;
    attr_t a;
    attr_measure(px, e->W, e->H, e->C, ATTR_INK_THR, &a);
    for (int k = 0; k < CAPW_NATTR; k++) {
        if (p->ter[k] < 0) continue;
        t->attr_n[k]++;
        t->attr_hit[k] += capw_tercile(th, k, capw_measure(&a, k)) == p->ter[k];
    }
}

static double frac(size_t a, size_t b) { return b ? (double)a / (double)b : NAN; }

/* The real ceiling over the first nr prompts' examples (their own images). */
static int real_ceiling(eval_ctx_t *e, const eval_text_t *t, size_t nr) {
    struct eval_textdata *d = e->text;
    if (d->n_real_done == nr) return 0;
    size_t img = (size_t)e->C * e->H * e->W;
    tally_t ta = {0};
    float *x = xmalloc(256 * img * sizeof(float)), *logits = xmalloc(256 * (size_t)e->fn_classes * sizeof(float));
    int32_t *pred = xmalloc(256 * sizeof(int32_t));
    int rc = 0;
    for (size_t i0 = 0; i0 < nr && rc == 0; i0 += 256) {
        size_t b = GB_MIN((size_t)256, nr - i0);
        rc = featio_read_store(d->db, t->example + i0, b, x, NULL);
        if (rc) break;
        featnet_forward(e->fn, x, b, NULL, logits);
        argmax_rows((int)b, e->fn_classes, logits, pred);
        for (size_t i = 0; i < b && rc == 0; i++) {
            const uint8_t *px;
            size_t npx;
            int32_t lab;
            rc = store_get_pixels(d->db, t->example[i0 + i], &px, &npx, &lab);
            if (rc == 0) check_one(e, &t->parse[i0 + i], px, pred[i], &ta);
        }
    }
    free(x), free(logits), free(pred);
    if (rc) {
        log_error("captions dataset %s: %s", d->path, err_str(rc));
        return GB_EXIT_DATA;
    }
    d->n_real_done = nr;
    d->real_cls = frac(ta.cls_hit, ta.cls_n);
    d->real_cls_n = ta.cls_n;
    for (int k = 0; k < CAPW_NATTR; k++) {
        d->real_attr[k] = frac(ta.attr_hit[k], ta.attr_n[k]);
        d->real_attr_n[k] = ta.attr_n[k];
    }
    return 0;
}

/* Direction pairs over the first np prompts: moved[k] of pairs[k]. */
static void direction_pairs(const eval_ctx_t *e, const eval_text_t *t, size_t np, size_t pairs[CAPW_NATTR],
                            size_t moved[CAPW_NATTR]) {
    size_t cap = np * CAPW_NATTR * 2, nv = 0, img = (size_t)e->C * e->H * e->W;
    char **txt = xmalloc((cap ? cap : 1) * sizeof *txt);
    size_t *src = xmalloc((cap ? cap : 1) * sizeof *src);
    int *attr = xmalloc((cap ? cap : 1) * sizeof *attr);
    for (size_t i = 0; i < np; i++) {
        const capw_parse_t *p = &t->parse[i];
        if (p->cls < 0) continue;
        size_t len = strlen(t->prompt[i]) + 64;
        for (int k = 0; k < CAPW_NATTR; k++) {
            char *lo = xmalloc(len), *hi = xmalloc(len);
            if (capw_swap(t->prompt[i], p, k, 0, lo, len) == 0 && capw_swap(t->prompt[i], p, k, 2, hi, len) == 0) {
                txt[nv] = lo, src[nv] = i, attr[nv++] = k;
                txt[nv] = hi, src[nv] = i, attr[nv++] = k;
            } else {
                free(lo), free(hi);
            }
        }
    }
    for (int k = 0; k < CAPW_NATTR; k++) pairs[k] = moved[k] = 0;
    if (nv) {
        float *tv = xmalloc(nv * (size_t)t->T * sizeof(float)), *z = xmalloc(nv * (size_t)t->Z * sizeof(float));
        char err[256];
        if (model_encode_texts(t->tenc, (const char *const *)txt, (int)nv, tv, err, sizeof err) == 0) {
            for (size_t v = 0; v < nv; v++)
                memcpy(z + v * t->Z, t->z + src[v] * t->Z, (size_t)t->Z * sizeof(float));
            float *hwc = xmalloc(nv * img * sizeof(float));
            ginfer_generate_text(t->gen, z, tv, (int)nv, hwc);
            uint8_t *px = xmalloc(img);
            double m[2] = {0, 0};
            for (size_t v = 0; v < nv; v++) {
                attr_t a;
                ginfer_to_u8(hwc + v * img, img, px);
                attr_measure(px, e->W, e->H, e->C, ATTR_INK_THR, &a);
                m[v & 1] = capw_measure(&a, attr[v]);
                if (v & 1) pairs[attr[v]]++, moved[attr[v]] += m[1] > m[0];
            }
            free(px), free(hwc);
        } else {
            log_warn("direction pairs skipped: %s", err);
        }
        free(tv), free(z);
    }
    for (size_t v = 0; v < nv; v++) free(txt[v]);
    free(txt), free(src), free(attr);
}

static const char *const M_AGREE[CAPW_NATTR] = {"text_brightness_agreement", "text_width_agreement",
                                                "text_fill_agreement"};
static const char *const M_AGREE_REAL[CAPW_NATTR] = {"text_brightness_agreement_real", "text_width_agreement_real",
                                                     "text_fill_agreement_real"};
static const char *const M_DIR[CAPW_NATTR] = {"text_brightness_direction", "text_width_direction",
                                              "text_fill_direction"};

int eval_text_audit(eval_ctx_t *e, const eval_text_t *t, eval_result_t *r, const float *logits, FILE *f) {
    struct eval_textdata *d = e->text;
    size_t n = t->n, img = (size_t)e->C * e->H * e->W;
    int32_t *pred = xmalloc(n * sizeof(int32_t));
    argmax_rows((int)n, e->fn_classes, logits, pred);
    /* matched, and against a derangement of the captions (i -> i + shift) */
    tally_t g = {0}, mm = {0};
    size_t shift = n > 1 ? 1 + n / 2 : 0;
    for (size_t i = 0; i < n; i++) {
        check_one(e, &t->parse[i], t->px + i * img, pred[i], &g);
        if (shift) check_one(e, &t->parse[(i + shift) % n], t->px + i * img, pred[i], &mm);
    }
    free(pred);
    size_t nr = GB_MIN(n, d->m);
    int status = real_ceiling(e, t, nr);
    if (status) return status;
    size_t np = GB_MIN(n, (size_t)e->o->text_pairs), pairs[CAPW_NATTR], moved[CAPW_NATTR];
    direction_pairs(e, t, np, pairs, moved);

    double cls = frac(g.cls_hit, g.cls_n);
    r->text = true;
    snprintf(r->text_captions, sizeof r->text_captions, "%s", d->path);
    snprintf(r->text_thresholds, sizeof r->text_thresholds, "%s", d->th_source);
    eval_add(r, "text_class_accuracy", cls);
    eval_add(r, "text_class_accuracy_real", d->real_cls);
    eval_add(r, "text_class_accuracy_ratio", d->real_cls > 0 ? cls / d->real_cls : NAN);
    for (int k = 0; k < CAPW_NATTR; k++) {
        eval_add(r, M_AGREE[k], frac(g.attr_hit[k], g.attr_n[k]));
        eval_add(r, M_AGREE_REAL[k], d->real_attr[k]);
        eval_add(r, M_DIR[k], frac(moved[k], pairs[k]));
    }

    fprintf(f, "  \"text\": {\n    \"captions_dataset\": ");
    json_str(f, d->path);
    fprintf(f, ",\n    \"captioned_examples\": %zu,\n    \"prompts\": %zu,\n    \"prompt_rule\": ", d->m, n);
    json_str(f, "image i: latent gambar-z1 of seed S*2^32+i, prompt = caption number rng_derive(S, 'prom', i) mod "
                "its count of example perm[i mod m] of the captioned examples shuffled by rng_derive(S, 'text'); "
                "gambar-sample --seed S*2^32+i --prompt PROMPT remakes it");
    fprintf(f, ",\n    \"thresholds_source\": ");
    json_str(f, d->th_source);
    fprintf(f, ",\n    \"class\": {\"agreement\": ");
    json_num(f, cls);
    fprintf(f, ", \"agreement_real\": ");
    json_num(f, d->real_cls);
    fprintf(f, ", \"ratio_to_real\": ");
    json_num(f, d->real_cls > 0 ? cls / d->real_cls : NAN);
    fprintf(f, ", \"agreement_mismatched\": ");
    json_num(f, frac(mm.cls_hit, mm.cls_n));
    fprintf(f, ", \"counted\": %zu, \"counted_real\": %zu},\n    \"attributes\": [", g.cls_n, d->real_cls_n);
    for (int k = 0; k < CAPW_NATTR; k++) {
        fprintf(f, "%s\n      {\"name\": \"%s\", \"words\": [\"%s\", \"%s\", \"%s\"], \"agreement\": ", k ? "," : "",
                capw_attr_name(k), capw_word(k, 0, 0), capw_word(k, 1, 0), capw_word(k, 2, 0));
        json_num(f, frac(g.attr_hit[k], g.attr_n[k]));
        fprintf(f, ", \"agreement_real\": ");
        json_num(f, d->real_attr[k]);
        fprintf(f, ", \"agreement_mismatched\": ");
        json_num(f, frac(mm.attr_hit[k], mm.attr_n[k]));
        fprintf(f, ", \"counted\": %zu, \"counted_real\": %zu, \"direction\": ", g.attr_n[k], d->real_attr_n[k]);
        json_num(f, frac(moved[k], pairs[k]));
        fprintf(f, ", \"direction_pairs\": %zu}", pairs[k]);
    }
    fprintf(f, "\n    ],\n    \"definitions\": {\n"
               "      \"agreement\": \"share of prompts whose image the check confirms: class = the feature "
               "classifier's label equals the caption's class word; attribute = the tercile of the image's "
               "measure (common/img/attr.h) against the caption class's cut points equals the caption's word\",\n"
               "      \"agreement_real\": \"the same checks on the captions dataset's own images with the same "
               "captions (the ceiling)\",\n"
               "      \"agreement_mismatched\": \"the generated images checked against other prompts' captions "
               "(image i vs prompt i + n/2 + 1): a generator that ignores its text scores this\",\n"
               "      \"direction\": \"for the first %zu prompts, the caption with the attribute's low word vs "
               "with its high word (same synonym, class, latent; only that word differs): share of pairs whose "
               "measure is higher for the high word (ties fail)\"\n    },\n    \"examples\": [",
            np);
    for (size_t i = 0; i < GB_MIN(n, (size_t)EXAMPLES_SHOWN); i++) {
        fprintf(f, "%s\n      {\"seed\": %llu, \"prompt\": ", i ? "," : "",
                (unsigned long long)((e->o->seed << 32) + (uint64_t)i));
        json_str(f, t->prompt[i]);
        fprintf(f, ", \"captions_example\": %llu, \"class_index\": %d}", (unsigned long long)t->example[i],
                t->parse[i].cls);
    }
    fprintf(f, "\n    ]\n  },\n");
    return 0;
}
