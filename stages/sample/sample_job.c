/* sample_job.c - what an image is made from, and the record that says so.
 *
 * A job is a list of n images defined by pure functions: a base seed
 * (image i uses seed + i), an interpolation between the latents of two
 * seeds, or explicit latents (--from-image). The same job description is
 * written into each image's provenance and rebuilt from it by
 * --reproduce, so the two directions live side by side here. */
#include "sample.h"

#include "base.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "modelck.h"
#include "tencck.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>


/* ---- the checkpoint ----------------------------------------------------- */

int sctx_open(sctx_t *c, const char *path, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->path = path;
    int rc = ckpt_load_quiet(path, LOG_DEBUG, &c->ck, c->digest);
    if (rc) {
        const char *why = err_str(rc);
        if (rc == GB_EFORMAT) why = "not a gambar checkpoint (bad magic, header or content)";
        else if (rc == GB_ECORRUPT) why = "corrupt or truncated (size or SHA-256 does not match its header)";
        return gb_errf(err, errlen, rc, "checkpoint %s: %s", path, why);
    }
    digest_hex(c->digest, 32, c->digest_hex);
    c->step = c->ck->state->step;
    char why[256];
    rc = modelck_load(c->ck, 64, &c->model, why, sizeof why);
    if (rc) {
        rc = gb_errf(err, errlen, rc, "checkpoint %s: cannot rebuild the model: %s", path, why);
        goto fail;
    }
    rc = ginfer_new(c->model, 1, &c->gen, why, sizeof why);
    if (rc) {
        rc = gb_errf(err, errlen, rc, "checkpoint %s: %s", path, why);
        goto fail;
    }
    c->T = ginfer_text_dim(c->gen);
    if (c->T) {
        rc = tencck_load(c->ck, 1, false, &c->tenc, why, sizeof why);
        if (!rc && tenc_out_dim(c->tenc) != c->T)
            rc = gb_errf(why, sizeof why, GB_EMISMATCH, "its text encoder makes %d-float sentence vectors, the "
                         "generator takes %d", tenc_out_dim(c->tenc), c->T);
        if (rc) {
            rc = gb_errf(err, errlen, rc, "checkpoint %s: a text-conditional model whose text encoder cannot be "
                         "loaded: %s", path, why);
            goto fail;
        }
    }
    /* GAMBAR_SAMPLE_PORTABLE=1 forces the portable kernels (tests compare) */
    const char *port = getenv("GAMBAR_SAMPLE_PORTABLE");
    if (port && strcmp(port, "1") == 0) ginfer_set_portable(c->gen, 1);
    c->desc = model_desc(c->model);
    c->Z = c->desc->z_dim;
    c->C = c->desc->channels;
    c->H = c->desc->height;
    c->W = c->desc->width;
    c->ncls = c->desc->conditional ? c->desc->num_classes : 0;
    if (c->ck->dataset_digest.len == 32) digest_hex(c->ck->dataset_digest.data, 32, c->dataset_digest);
    else snprintf(c->dataset_digest, sizeof c->dataset_digest, "unknown");
    c->license = ckpt_note(c->ck, "license_summary");
    if (!c->license || !*c->license) c->license = "unknown";
    c->source = ckpt_note(c->ck, "dataset_source");
    if (!c->source || !*c->source) c->source = "unknown";
    return 0;
fail:
    sctx_close(c);
    return rc;
}

void sctx_close(sctx_t *c) {
    tenc_free(&c->tenc);
    ginfer_free(c->gen);
    model_free(c->model);
    ckpt_free(&c->ck);
    memset(c, 0, sizeof *c);
}

int sctx_encode(sctx_t *c, const char *text, float *out, char *err, size_t errlen) {
    ASSERT(c->tenc);
    const char *t[1] = {text};
    return model_encode_texts(c->tenc, t, 1, out, err, errlen);
}

/* ---- classes ------------------------------------------------------------ */

/* Lowercase letters and digits of s[0..n) into out (>= n+1 bytes). */
static size_t alnum_lower(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isalnum((unsigned char)s[i])) out[k++] = (char)tolower((unsigned char)s[i]);
    out[k] = 0;
    return k;
}

static const char *class_name(const sctx_t *c, int i) {
    return c->desc->class_names ? c->desc->class_names[i] : NULL;
}

static void list_names(const sctx_t *c, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < c->ncls && o + 1 < len; i++) {
        const char *nm = class_name(c, i);
        int w = nm ? snprintf(buf + o, len - o, "%s%d \"%s\"", i ? ", " : "", i, nm)
                   : snprintf(buf + o, len - o, "%s%d", i ? ", " : "", i);
        if (w < 0) break;
        o += (size_t)w;
    }
}

/* Does the normalised alternative alt equal the concatenation of one or
 * more consecutive prompt words? */
static int alt_matches(const char *alt, size_t al, char **words, int nw) {
    for (int a = 0; a < nw; a++) {
        size_t cl = 0;
        for (int b = a; b < nw; b++) {
            size_t wl = strlen(words[b]);
            if (cl + wl > al || memcmp(alt + cl, words[b], wl) != 0) break;
            cl += wl;
            if (cl == al) return 1;
        }
    }
    return 0;
}

/* Length of the longest alternative of a class name (the whole name, and
 * each '/'-separated part) that matches the prompt words, or 0. */
static size_t prompt_match(const char *name, char **words, int nw) {
    size_t best = 0, nl = strlen(name);
    char *alt = xmalloc(nl + 1);
    size_t al = alnum_lower(name, nl, alt);
    if (al && alt_matches(alt, al, words, nw)) best = al;
    for (const char *s = name; strchr(name, '/');) {
        const char *e = strchr(s, '/');
        if (!e) e = name + nl;
        al = alnum_lower(s, (size_t)(e - s), alt);
        if (al > best && alt_matches(alt, al, words, nw)) best = al;
        if (e == name + nl) break;
        s = e + 1;
    }
    free(alt);
    return best;
}

int sample_resolve_class(const sctx_t *c, const char *name, const char *prompt, int *idx, char *err,
                         size_t errlen) {
    char names[2048];
    if (!c->ncls)
        return gb_errf(err, errlen, GB_EUNSUPPORTED,
                       "the model in %s is unconditional: it has no classes to choose from", c->path);
    list_names(c, names, sizeof names);
    if (name) {
        char *end = NULL;
        errno = 0;
        long v = strtol(name, &end, 10);
        if (*name && !errno && end && !*end) {
            if (v < 0 || v >= c->ncls)
                return gb_errf(err, errlen, GB_ENOTFOUND, "class index %ld is out of range 0..%d; the classes are: %s",
                               v, c->ncls - 1, names);
            *idx = (int)v;
            return 0;
        }
        size_t nl = strlen(name);
        char *want = xmalloc(nl + 1);
        char *words[1] = {want};
        alnum_lower(name, nl, want);
        for (int i = 0; i < c->ncls && *want; i++) {
            const char *cn = class_name(c, i);
            if (!cn) continue;
            char *full = xmalloc(strlen(cn) + 1);
            alnum_lower(cn, strlen(cn), full);
            int hit = strcmp(full, want) == 0 || prompt_match(cn, words, 1) == strlen(want);
            free(full);
            if (hit) {
                *idx = i;
                free(want);
                return 0;
            }
        }
        free(want);
        return gb_errf(err, errlen, GB_ENOTFOUND, "unknown class '%s'; the classes are: %s", name, names);
    }
    /* prompt: split into words */
    size_t pl = strlen(prompt);
    char *buf = xmalloc(pl + 1), **words = xcalloc(pl + 1, sizeof(char *));
    int nw = 0;
    for (size_t i = 0; i < pl;) {
        while (i < pl && !isalnum((unsigned char)prompt[i])) i++;
        size_t s = i;
        while (i < pl && isalnum((unsigned char)prompt[i])) i++;
        if (i > s) {
            words[nw] = buf + s;
            alnum_lower(prompt + s, i - s, words[nw]);
            nw++;
            if (i < pl) i++; /* the separator slot holds the terminator */
        }
    }
    size_t best = 0;
    int bi = -1;
    for (int i = 0; i < c->ncls; i++) {
        const char *cn = class_name(c, i);
        if (!cn) continue;
        size_t l = prompt_match(cn, words, nw);
        if (l > best) { best = l; bi = i; }
    }
    free(buf);
    free(words);
    if (bi < 0)
        return gb_errf(err, errlen, GB_ENOTFOUND, "no class name found in the prompt '%s'; the classes are: %s",
                       prompt, names);
    *idx = bi;
    return 0;
}

/* ---- latents ------------------------------------------------------------ */

static uint64_t image_seed(const job_t *j, int i) { return j->seed + (uint64_t)i; }

static int image_label(const sctx_t *c, const job_t *j, int i) {
    if (!c->ncls) return -1;
    if (j->mode == JOB_EXPLICIT) return j->labels[i];
    if (j->class_index >= 0) return j->class_index;
    uint64_t s = j->mode == JOB_INTERP ? j->ia : image_seed(j, i);
    return (int)(s % (uint64_t)c->ncls);
}

void job_latent(const sctx_t *c, const job_t *j, int i, float *z, int32_t *label) {
    *label = image_label(c, j, i);
    if (j->mode == JOB_EXPLICIT) {
        memcpy(z, j->z + (size_t)i * c->Z, (size_t)c->Z * sizeof(float));
        return;
    }
    if (j->mode == JOB_SEED) {
        prov_latent_z1(image_seed(j, i), c->Z, j->truncation, z);
        return;
    }
    if (j->mode == JOB_TEXT_INTERP) {
        prov_latent_z1(j->seed, c->Z, j->truncation, z);
        return;
    }
    /* spherical interpolation, t = i / (steps - 1), in double */
    float *a = xmalloc((size_t)c->Z * 2 * sizeof(float)), *b = a + c->Z;
    prov_latent_z1(j->ia, c->Z, j->truncation, a);
    prov_latent_z1(j->ib, c->Z, j->truncation, b);
    double t = j->n > 1 ? (double)i / (double)(j->n - 1) : 0.0;
    double dot = 0, na = 0, nb = 0;
    for (int k = 0; k < c->Z; k++) {
        dot += (double)a[k] * b[k];
        na += (double)a[k] * a[k];
        nb += (double)b[k] * b[k];
    }
    double cosw = (na > 0 && nb > 0) ? dot / sqrt(na * nb) : 1.0;
    if (cosw > 1) cosw = 1;
    if (cosw < -1) cosw = -1;
    double w = acos(cosw), sw = sin(w);
    double fa, fb;
    if (sw < 1e-6) { fa = 1 - t; fb = t; }
    else { fa = sin((1 - t) * w) / sw; fb = sin(t * w) / sw; }
    for (int k = 0; k < c->Z; k++) z[k] = (float)(fa * a[k] + fb * b[k]);
    free(a);
}

void sample_prompt_warnings(sctx_t *c, const char *text, sample_warn_t *w) {
    w->n = 0;
    if (!c->tenc) return;
    tenc_tokens_t *u = xmalloc(sizeof *u);
    char err[256];
    if (tenc_unknown_words(c->tenc, text, u, err, sizeof err) == 0) {
        if (u->n) {
            char list[2048];
            size_t o = 0;
            for (int i = 0; i < u->n && o + 8 < sizeof list; i++) {
                int k = snprintf(list + o, sizeof list - o, "%s\"%s\"", i ? ", " : "", u->word[i]);
                if (k < 0) break;
                o += (size_t)k;
            }
            if (o >= sizeof list) o = sizeof list - 1;
            list[o] = 0;
            snprintf(w->line[w->n++], sizeof w->line[0],
                     "prompt \"%s\": %d word%s the model never saw in training (its text encoder hashes %s, so %s "
                     "effect is a guess): %s", text, u->n, u->n == 1 ? "" : "s", u->n == 1 ? "it" : "them",
                     u->n == 1 ? "its" : "their", list);
        }
        tenc_tokens_t *all = xmalloc(sizeof *all);
        tenc_desc_t d;
        tenc_to_desc(c->tenc, &d);
        if (tenc_tokenize(text, strlen(text), d.max_tokens, all, err, sizeof err) == 0) {
            if (!all->n)
                snprintf(w->line[w->n++], sizeof w->line[0],
                         "prompt \"%s\" has no words: the images are conditioned on the empty text", text);
            if (all->truncated)
                snprintf(w->line[w->n++], sizeof w->line[0],
                         "prompt \"%s\": only its first %d words are used (the encoder's limit)", text, d.max_tokens);
        }
        free(all);
    }
    free(u);
}

int job_encode(sctx_t *c, job_t *j, float **tbuf, char *err, size_t errlen) {
    *tbuf = NULL;
    if (!c->T) return 0;
    float *t = xcalloc((size_t)2 * c->T, sizeof(float));
    char why[256];
    int rc = sctx_encode(c, j->prompt ? j->prompt : "", t, why, sizeof why);
    if (rc) {
        free(t);
        return gb_errf(err, errlen, rc, "prompt '%s': %s", j->prompt ? j->prompt : "", why);
    }
    if (j->mode == JOB_TEXT_INTERP) {
        rc = sctx_encode(c, j->prompt_b ? j->prompt_b : "", t + c->T, why, sizeof why);
        if (rc) {
            free(t);
            return gb_errf(err, errlen, rc, "prompt '%s': %s", j->prompt_b ? j->prompt_b : "", why);
        }
    } else {
        memcpy(t + c->T, t, (size_t)c->T * sizeof(float));
    }
    j->text = t;
    *tbuf = t;
    return 0;
}

/* TEXT_INTERP's t of image i */
static double text_t(const job_t *j, int i) { return j->n > 1 ? (double)i / (double)(j->n - 1) : 0.0; }

void job_text(const sctx_t *c, const job_t *j, int i, float *t) {
    ASSERT(c->T && j->text);
    const float *a = j->text, *b = j->text + c->T;
    if (j->mode != JOB_TEXT_INTERP) {
        memcpy(t, a, (size_t)c->T * sizeof(float));
        return;
    }
    double u = text_t(j, i);
    for (int k = 0; k < c->T; k++) t[k] = (float)((1.0 - u) * a[k] + u * b[k]);
}

void job_generate(const sctx_t *c, const job_t *j, ginfer_ws_t *w, int i0, int i1, float *out) {
    int n = i1 - i0;
    float *z = xmalloc((size_t)n * c->Z * sizeof(float));
    int32_t *lab = xmalloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) job_latent(c, j, i0 + i, z + (size_t)i * c->Z, &lab[i]);
    if (c->T) {
        float *t = xmalloc((size_t)n * c->T * sizeof(float));
        for (int i = 0; i < n; i++) job_text(c, j, i0 + i, t + (size_t)i * c->T);
        ginfer_forward_text(c->gen, w, z, t, n, out);
        free(t);
    } else {
        ginfer_forward(c->gen, w, z, c->ncls ? lab : NULL, n, out);
    }
    free(z);
    free(lab);
}

void job_grid(const sctx_t *c, const job_t *j, const float *imgs, img_t *out) {
    const int B = SAMPLE_BORDER;
    uint32_t W = (uint32_t)(j->cols * c->W + (j->cols + 1) * B), H = (uint32_t)(j->rows * c->H + (j->rows + 1) * B);
    out->w = W;
    out->h = H;
    out->c = (uint32_t)c->C;
    out->px = xcalloc((size_t)W * H * c->C, 1);
    size_t rowb = (size_t)c->W * c->C;
    uint8_t *tmp = xmalloc((size_t)c->H * rowb);
    for (int i = 0; i < j->n && i < j->rows * j->cols; i++) {
        int r = i / j->cols, q = i % j->cols;
        ginfer_to_u8(imgs + (size_t)i * c->H * rowb, (size_t)c->H * rowb, tmp);
        for (int y = 0; y < c->H; y++) {
            size_t oy = (size_t)(B + r * (c->H + B) + y), ox = (size_t)(B + q * (c->W + B));
            memcpy(out->px + (oy * W + ox) * c->C, tmp + (size_t)y * rowb, rowb);
        }
    }
    free(tmp);
}

/* ---- provenance --------------------------------------------------------- */

static const char *mode_name(const job_t *j, int i) {
    if (j->mode == JOB_SEED) return "seed";
    if (j->mode == JOB_INTERP) return "interpolate";
    if (j->mode == JOB_TEXT_INTERP) return "interpolate-prompts";
    return i >= 0 && j->kinds ? j->kinds[i] : "from-image";
}

void job_prov(const sctx_t *c, const job_t *j, int i, const char *created, prov_t *p) {
    prov_init(p);
    prov_set(p, PROV_KEY_SOFTWARE, "%s", SAMPLE_SOFTWARE);
    prov_set(p, "gambar:provenance_version", "%s", PROV_VERSION);
    prov_set(p, "gambar:created", "%s", created);
    prov_set(p, "gambar:checkpoint_digest", "%s", c->digest_hex);
    prov_set(p, "gambar:checkpoint_step", "%" PRIu64, c->step);
    prov_set(p, "gambar:model_family", "%s", model_family_name(c->desc->family));
    if (c->T)
        prov_set(p, "gambar:model", "%s %dx%dx%d z_dim=%d g_mult=%d classes=0 text_dim=%d",
                 model_family_name(c->desc->family), c->C, c->H, c->W, c->Z, c->desc->g_mult, c->T);
    else
        prov_set(p, "gambar:model", "%s %dx%dx%d z_dim=%d g_mult=%d classes=%d", model_family_name(c->desc->family),
                 c->C, c->H, c->W, c->Z, c->desc->g_mult, c->ncls);
    prov_set(p, "gambar:z_method", "%s", PROV_Z_METHOD);
    prov_set(p, "gambar:generator", "%s", GINFER_METHOD);
    prov_set(p, "gambar:kind", "%s", i < 0 ? "grid" : "image");
    prov_set(p, "gambar:mode", "%s", mode_name(j, i));
    if (j->mode == JOB_SEED) prov_set(p, "gambar:seed", "%" PRIu64, i < 0 ? j->seed : image_seed(j, i));
    if (j->mode == JOB_SEED && i >= 0) prov_set(p, "gambar:base_seed", "%" PRIu64, j->seed);
    if (j->mode == JOB_EXPLICIT || j->mode == JOB_TEXT_INTERP) prov_set(p, "gambar:seed", "%" PRIu64, j->seed);
    int lab = c->ncls ? (i >= 0 ? image_label(c, j, i) : j->class_index) : -1;
    if (c->ncls && i < 0 && j->mode == JOB_INTERP) lab = image_label(c, j, 0);
    prov_set(p, "gambar:class_index", "%d", lab);
    prov_set(p, "gambar:class_name", "%s", lab >= 0 && class_name(c, lab) ? class_name(c, lab) : "");
    prov_set(p, "gambar:class_rule", "%s",
             c->T ? "text" : !c->ncls ? "none" : j->mode == JOB_EXPLICIT ? "fitted" : j->class_index >= 0 ? "given" : "seed-mod-classes");
    prov_set(p, "gambar:prompt", "%s", j->prompt ? j->prompt : "");
    prov_set(p, "gambar:truncation", "%.17g", j->truncation);
    if (j->mode == JOB_INTERP) {
        prov_set(p, "gambar:interpolation", "slerp %" PRIu64 ":%" PRIu64 ":%d", j->ia, j->ib, j->n);
    }
    if (j->mode == JOB_TEXT_INTERP) {
        prov_set(p, "gambar:prompt_b", "%s", j->prompt_b ? j->prompt_b : "");
        prov_set(p, "gambar:interpolation", "text-linear %d", j->n);
        if (i >= 0) prov_set(p, "gambar:text_t", "%.17g", text_t(j, i));
    }
    if (j->mode == JOB_EXPLICIT && i >= 0) {
        char *hex = xmalloc((size_t)c->Z * 8 + 1);
        prov_z_to_hex(j->z + (size_t)i * c->Z, c->Z, hex);
        prov_set(p, "gambar:z", "%s", hex);
        free(hex);
    }
    prov_set(p, "gambar:count", "%d", j->n);
    if (i >= 0) prov_set(p, "gambar:index", "%d", i);
    if (j->rows > 0) prov_set(p, "gambar:grid", "%dx%d", j->rows, j->cols);
    if (j->extra)
        for (int k = 0; k < j->extra->n; k++) prov_set(p, j->extra->key[k], "%s", j->extra->val[k]);
    prov_set(p, "gambar:dataset_digest", "%s", c->dataset_digest);
    prov_set(p, "gambar:license_summary", "%s", c->license);
    prov_set(p, "gambar:dataset_source", "%s", c->source);
}

int sample_encode(const prov_t *p, const img_t *im, int compression, uint8_t **buf, size_t *len) {
    img_text_t *t;
    int nt;
    char *xmp;
    prov_to_texts(p, &t, &nt, &xmp);
    int rc = img_encode_png(im, t, nt, compression, buf, len);
    free(t);
    free(xmp);
    return rc;
}

static int need_u64(const prov_t *p, const char *key, uint64_t *v, char *err, size_t errlen) {
    int rc = prov_get_u64(p, key, v);
    if (rc) return gb_errf(err, errlen, GB_EFORMAT, "provenance key %s is %s", key, rc == GB_ENOTFOUND ? "missing" : "not a number");
    return 0;
}

static int need_int(const prov_t *p, const char *key, long long lo, long long hi, long long *v, char *err,
                    size_t errlen) {
    int rc = prov_get_int(p, key, v);
    if (rc) return gb_errf(err, errlen, GB_EFORMAT, "provenance key %s is %s", key, rc == GB_ENOTFOUND ? "missing" : "not a number");
    if (*v < lo || *v > hi) return gb_errf(err, errlen, GB_EFORMAT, "provenance key %s = %lld is out of range", key, *v);
    return 0;
}

int job_from_prov(const sctx_t *c, const prov_t *p, job_t *j, int *index, float **zbuf, int32_t **lbuf,
                  char *err, size_t errlen) {
    memset(j, 0, sizeof *j);
    *zbuf = NULL;
    *lbuf = NULL;
    const char *zm = prov_get(p, "gambar:z_method"), *gm = prov_get(p, "gambar:generator");
    const char *kind = prov_get(p, "gambar:kind"), *mode = prov_get(p, "gambar:mode");
    const char *fam = prov_get(p, "gambar:model_family");
    if (!zm || strcmp(zm, PROV_Z_METHOD) != 0)
        return gb_errf(err, errlen, GB_EMISMATCH, "latent method '%s' is not %s", zm ? zm : "(missing)", PROV_Z_METHOD);
    if (!gm || strcmp(gm, GINFER_METHOD) != 0)
        return gb_errf(err, errlen, GB_EMISMATCH, "generator '%s' is not %s", gm ? gm : "(missing)", GINFER_METHOD);
    if (!fam || strcmp(fam, model_family_name(c->desc->family)) != 0)
        return gb_errf(err, errlen, GB_EMISMATCH, "model family '%s' differs from the checkpoint's %s",
                       fam ? fam : "(missing)", model_family_name(c->desc->family));
    if (!kind || (strcmp(kind, "image") && strcmp(kind, "grid")))
        return gb_errf(err, errlen, GB_EFORMAT, "provenance key gambar:kind is missing or unknown");
    int grid = strcmp(kind, "grid") == 0;
    long long v, cls;
    int rc;
    if ((rc = need_int(p, "gambar:count", 1, SAMPLE_MAX_N, &v, err, errlen))) return rc;
    j->n = (int)v;
    if ((rc = need_int(p, "gambar:class_index", -1, c->ncls - 1, &cls, err, errlen))) return rc;
    if (prov_get_double(p, "gambar:truncation", &j->truncation) != 0 || j->truncation < 0 ||
        (j->truncation > 0 && j->truncation < PROV_MIN_TRUNCATION))
        return gb_errf(err, errlen, GB_EFORMAT, "provenance key gambar:truncation is missing or invalid");
    j->prompt = prov_get(p, "gambar:prompt");
    const char *rule = prov_get(p, "gambar:class_rule");
    j->class_index = -1;
    if (rule && strcmp(rule, "given") == 0) j->class_index = (int)cls;
    if (c->ncls && cls < 0 && !(rule && strcmp(rule, "seed-mod-classes") == 0))
        return gb_errf(err, errlen, GB_EMISMATCH, "the image has no class but the checkpoint's model is conditional");
    if (!c->ncls && cls >= 0)
        return gb_errf(err, errlen, GB_EMISMATCH, "the image has a class but the checkpoint's model is unconditional");
    if (c->T && !(rule && strcmp(rule, "text") == 0 && j->prompt))
        return gb_errf(err, errlen, GB_EMISMATCH, "the image was not made from a prompt but the checkpoint's model is "
                       "text-conditional");
    if (!c->T && rule && strcmp(rule, "text") == 0)
        return gb_errf(err, errlen, GB_EMISMATCH, "the image was made from a prompt by a text-conditional model, but "
                       "the checkpoint's model is not one");
    *index = -1;
    if (!grid) {
        if ((rc = need_int(p, "gambar:index", 0, j->n - 1, &v, err, errlen))) return rc;
        *index = (int)v;
    }
    const char *gs = prov_get(p, "gambar:grid");
    if (gs) {
        if (sscanf(gs, "%dx%d", &j->rows, &j->cols) != 2 || j->rows < 1 || j->cols < 1 ||
            j->rows * j->cols < j->n || j->rows > 256 || j->cols > 256)
            return gb_errf(err, errlen, GB_EFORMAT, "provenance key gambar:grid '%s' is invalid", gs);
    } else if (grid) {
        return gb_errf(err, errlen, GB_EFORMAT, "a grid image without gambar:grid");
    }
    if (!mode) return gb_errf(err, errlen, GB_EFORMAT, "provenance key gambar:mode is missing");
    if (strcmp(mode, "seed") == 0) {
        j->mode = JOB_SEED;
        if ((rc = need_u64(p, grid ? "gambar:seed" : "gambar:base_seed", &j->seed, err, errlen))) return rc;
        if (!grid && c->ncls && j->class_index < 0) j->class_index = (int)cls; /* same label, recorded */
    } else if (strcmp(mode, "interpolate") == 0) {
        j->mode = JOB_INTERP;
        const char *ip = prov_get(p, "gambar:interpolation");
        int steps = 0;
        if (!ip || sscanf(ip, "slerp %" SCNu64 ":%" SCNu64 ":%d", &j->ia, &j->ib, &steps) != 3 || steps != j->n)
            return gb_errf(err, errlen, GB_EFORMAT, "provenance key gambar:interpolation is missing or invalid");
    } else if (strcmp(mode, "interpolate-prompts") == 0) {
        j->mode = JOB_TEXT_INTERP;
        const char *ip = prov_get(p, "gambar:interpolation");
        int steps = 0, used = 0;
        j->prompt_b = prov_get(p, "gambar:prompt_b");
        if ((rc = need_u64(p, "gambar:seed", &j->seed, err, errlen))) return rc;
        if (!ip || sscanf(ip, "text-linear %d%n", &steps, &used) != 1 || ip[used] || steps != j->n || !j->prompt_b)
            return gb_errf(err, errlen, GB_EFORMAT, "provenance keys gambar:interpolation / gambar:prompt_b are "
                           "missing or invalid");
    } else if (strcmp(mode, "from-image") == 0 || strcmp(mode, "variation") == 0) {
        if (grid) return gb_errf(err, errlen, GB_EFORMAT, "explicit-latent grids are not made by this version");
        j->mode = JOB_EXPLICIT;
        const char *hex = prov_get(p, "gambar:z");
        /* a one-image job holding only this image's latent */
        float *z = xmalloc((size_t)c->Z * sizeof(float));
        int32_t *l = xmalloc(sizeof(int32_t));
        if (!hex || prov_z_from_hex(hex, c->Z, z) != 0) {
            free(z);
            free(l);
            return gb_errf(err, errlen, GB_EFORMAT, "provenance key gambar:z is missing or not %d floats", c->Z);
        }
        l[0] = (int32_t)cls;
        *zbuf = z;
        *lbuf = l;
        j->z = z;
        j->labels = l;
        j->n = 1;
        *index = 0;
        j->rows = j->cols = 0;
        static const char *const k_fi[1] = {"from-image"}, *const k_var[1] = {"variation"};
        j->kinds = strcmp(mode, "variation") == 0 ? k_var : k_fi;
    } else {
        return gb_errf(err, errlen, GB_EFORMAT, "provenance mode '%s' is unknown", mode);
    }
    return 0;
}
