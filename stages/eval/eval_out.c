/* eval_out.c - where results go: Metric messages on the PUB socket, the
 * JSON report and the Markdown model card.
 *
 * Files are built in memory (open_memstream) and written in one atomic
 * step (eval_write_file: temp file in the same folder, fsync, rename,
 * fsync folder), so a reader sees the old report or the new one, never a
 * partial one. */
#include "eval.h"

#include "afile.h"
#include "base.h"
#include "digest.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "stream.pb-c.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

int eval_write_file(const char *path, const void *data, size_t n) {
    return afile_write_all(path, data, n);
}

static void hex(const uint8_t *d, size_t n, char *out) {
    if (n != 32) {
        out[0] = 0;
        return;
    }
    digest_hex(d, 32, out);
}

int eval_write_json(const eval_ctx_t *e, const eval_result_t *r, const char *path) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    char h[65];
    fprintf(f, "{\n  \"source\": ");
    json_str(f, r->source);
    fprintf(f, ",\n  \"kind\": \"%s\",\n", r->ck ? "checkpoint" : "samples_db");
    if (r->ck) {
        hex(r->ck_digest, 32, h);
        fprintf(f, "  \"checkpoint_digest\": \"%s\",\n", h);
    }
    fprintf(f, "  \"step\": %llu,\n  \"epoch\": %u,\n  \"n\": %zu,\n  \"seed\": %llu,\n  \"dataset\": ",
            (unsigned long long)r->step, r->epoch, r->n, (unsigned long long)e->o->seed);
    json_str(f, e->o->db);
    hex(e->db_digest, 32, h);
    fprintf(f, ",\n  \"dataset_digest\": \"%s\",\n  \"features\": \"%s\",\n  \"features_file\": ", h,
            e->features_kind);
    if (e->features_path[0]) json_str(f, e->features_path);
    else fputs("null", f);
    fprintf(f, ",\n  \"features_note\": ");
    json_str(f, strcmp(e->features_kind, "random_cnn") == 0
                         ? "unlabelled dataset: features of a fixed random CNN (documented fallback); figures are "
                           "comparable only between runs with the same fallback"
                         : "penultimate layer (128-d, ReLU) of a CNN classifier fitted on the training dataset");
    fprintf(f, ",\n  \"feature_classifier_test_accuracy\": ");
    json_num(f, e->fn_test_acc >= 0 ? e->fn_test_acc : NAN);
    fprintf(f, ",\n  \"real_statistics_cache\": ");
    if (e->real.path[0]) json_str(f, e->real.path);
    else fputs("null", f);
    fprintf(f, ",\n  \"metrics\": {");
    for (int i = 0; i < r->nm; i++) {
        fprintf(f, "%s\n    \"%s\": ", i ? "," : "", r->m[i].name);
        json_num(f, r->m[i].value);
    }
    fprintf(f, "\n  },\n  \"definitions\": {\n"
               "    \"fid\": \"Frechet distance between Gaussians fitted to generated and training features\",\n"
               "    \"kid\": \"unbiased MMD^2, kernel (x.y/128+1)^3, mean over random subsets of up to 1000\",\n"
               "    \"precision_recall\": \"k-NN manifolds, k=3 (Kynkaanniemi et al. 2019), against a random "
               "sample of n training images\"\n  },\n");
    if (r->json_body) fputs(r->json_body, f);
    fprintf(f, "}\n");
    fclose(f);
    int rc = eval_write_file(path, buf, len);
    free(buf);
    return rc;
}

void eval_publish(const eval_ctx_t *e, const eval_result_t *r) {
    if (!e->pub) return;
    for (int i = 0; i < r->nm; i++) {
        if (!isfinite(r->m[i].value)) continue;
        Gambar__Metric m = GAMBAR__METRIC__INIT;
        m.stage = (char *)"eval";
        m.run = (char *)e->o->run;
        m.name = (char *)r->m[i].name;
        m.value = r->m[i].value;
        m.step = r->step;
        m.epoch = r->epoch;
        m.wall_time = gb_wall();
        int rc = wire_send(e->pub, &m.base, ZMQ_DONTWAIT);
        if (rc) log_warn("metric %s not sent: %s", r->m[i].name, err_str(rc));
    }
    /* the bias audit per class: class_share{class=NAME} (generated images
     * the classifier puts in that class) and class_share_train{class=NAME},
     * what the dashboard's class-share chart draws */
    for (int k = 0; k < r->nclass; k++) {
        const char *cn = k < (int)e->info->n_class_names ? e->info->class_names[k] : "?";
        for (int which = 0; which < 2; which++) {
            double v = which ? r->class_share_train[k] : r->class_share[k];
            if (!isfinite(v)) continue;
            Gambar__Metric__LabelsEntry le = GAMBAR__METRIC__LABELS_ENTRY__INIT, *lp = &le;
            le.key = (char *)"class";
            le.value = (char *)cn;
            Gambar__Metric m = GAMBAR__METRIC__INIT;
            m.stage = (char *)"eval";
            m.run = (char *)e->o->run;
            m.name = (char *)(which ? "class_share_train" : "class_share");
            m.value = v;
            m.step = r->step;
            m.epoch = r->epoch;
            m.wall_time = gb_wall();
            m.n_labels = 1;
            m.labels = &lp;
            int rc = wire_send(e->pub, &m.base, ZMQ_DONTWAIT);
            if (rc) log_warn("metric %s{class=%s} not sent: %s", m.name, cn, err_str(rc));
        }
    }
}

static void md_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.4g", v);
    else fputs("n/a", f);
}

/* Distinct attribution lines of the dataset's examples with their counts
 * (the first ATTR_MAX distinct ones; the rest counted together). One pass
 * over the examples: a fraction of a second for 60000. */
#define ATTR_MAX 20
static void attribution_summary(const eval_ctx_t *e, FILE *f) {
    char *name[ATTR_MAX];
    uint64_t cnt[ATTR_MAX], other = 0, none = 0, count = store_count(e->db);
    int n = 0;
    for (uint64_t i = 0; i < count; i++) {
        Gambar__Example *ex = NULL;
        if (store_get(e->db, i, &ex) != 0) continue;
        const char *a = ex->attribution;
        if (!a[0]) none++;
        else {
            int k = 0;
            while (k < n && strcmp(name[k], a) != 0) k++;
            if (k < n) cnt[k]++;
            else if (n < ATTR_MAX) name[n] = xstrdup(a), cnt[n++] = 1;
            else other++;
        }
        gambar__example__free_unpacked(ex, NULL);
    }
    fprintf(f, "Attributions (credit lines stored with each image):\n\n");
    if (!n) fprintf(f, "- none recorded (%llu images without a credit line)\n\n", (unsigned long long)none);
    else {
        for (int k = 0; k < n; k++) {
            fprintf(f, "- %s (%llu images)\n", name[k], (unsigned long long)cnt[k]);
            free(name[k]);
        }
        if (other) fprintf(f, "- other credit lines (%llu images)\n", (unsigned long long)other);
        fprintf(f, "- no credit line (%llu images)\n\n", (unsigned long long)none);
    }
}

static double metric(const eval_result_t *r, const char *name) {
    for (int i = 0; i < r->nm; i++)
        if (strcmp(r->m[i].name, name) == 0) return r->m[i].value;
    return NAN;
}

/* The text-image agreement of a text model, from its text_* metrics. */
static void text_section(FILE *f, const eval_result_t *r) {
    static const char *const attr[3] = {"brightness", "width", "fill"};
    fprintf(f, "## Text-image agreement\n\n");
    fprintf(f, "The model was prompted with %zu held-out captions of `%s`; does each image show what its prompt "
               "says? Class: the feature classifier's label is the caption's class word. Attributes: the image's "
               "measured brightness, width or fill falls in the caption word's tercile (cut points: %s). "
               "Direction: the same caption and latent with the attribute's low word and with its high word "
               "(\"dark\" vs \"light\"): the measure is higher for the high word. The real-data ceiling is "
               "the same check on the captions dataset's own images.\n\n",
            r->n, r->text_captions, r->text_thresholds);
    fprintf(f, "| words | generated images | real images (ceiling) | direction |\n|---|---|---|---|\n| class | ");
    md_num(f, metric(r, "text_class_accuracy"));
    fprintf(f, " | ");
    md_num(f, metric(r, "text_class_accuracy_real"));
    fprintf(f, " | - |\n");
    for (int k = 0; k < 3; k++) {
        char a[64], b[64], c[64];
        snprintf(a, sizeof a, "text_%s_agreement", attr[k]);
        snprintf(b, sizeof b, "text_%s_agreement_real", attr[k]);
        snprintf(c, sizeof c, "text_%s_direction", attr[k]);
        fprintf(f, "| %s | ", attr[k]);
        md_num(f, metric(r, a));
        fprintf(f, " | ");
        md_num(f, metric(r, b));
        fprintf(f, " | ");
        md_num(f, metric(r, c));
        fprintf(f, " |\n");
    }
    fprintf(f, "\nChance is about 1/classes for the class and 1/3 (1/2 for fill) for the attributes; the JSON "
               "report also gives the agreement of the images with mismatched captions (what a generator that "
               "ignores its text scores). The captions are synthetic (scripts/fashion-captions.sh): they say only "
               "what these pixel measures say.\n\n");
}

int eval_write_card(const eval_ctx_t *e, const eval_result_t *r, const char *ckpt_path) {
    const Gambar__Checkpoint *ck = r->ck;
    if (!ck) return 0;
    const Gambar__DatasetInfo *in = e->info;
    const Gambar__ModelDesc *md = ck->model;
    const Gambar__TrainState *st = ck->state;
    char *buf = NULL, h[65];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    const char *base = strrchr(ckpt_path, '/');
    base = base ? base + 1 : ckpt_path;
    fprintf(f, "# Model card: %s\n\n", base);
    time_t now = time(NULL);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    hex(r->ck_digest, 32, h);
    fprintf(f, "Written by gambar-eval %s on %s.\nCheckpoint SHA-256: `%s`\n\n", GAMBAR_VERSION, ts, h);

    fprintf(f, "## Model\n\n");
    fprintf(f, "- Architecture: %s, %ux%u pixels, %u channel(s), generator width %u, discriminator width %u, "
               "latent size %u\n", md->family, md->width, md->height, md->channels, md->g_mult, md->d_mult,
            md->z_dim);
    if (md->text_dim) fprintf(f, "- Conditional: on text (sentence vectors of %u floats from its own text encoder, "
                                 "embedding %u)", md->text_dim, md->embed_dim);
    else fprintf(f, "- Conditional: %s", md->conditional ? "yes" : "no");
    if (md->conditional && !md->text_dim) fprintf(f, " (%u classes, embedding %u)", md->num_classes, md->embed_dim);
    if (md->text_dim && md->aux_classes)
        fprintf(f, "; trained with an auxiliary classifier over the %u class labels of the training images "
                   "(TAC-GAN; the prompts stay free text)", md->aux_classes);
    fprintf(f, "\n- Loss: %s\n- Software: %s\n\n", md->loss, ck->software_version[0] ? ck->software_version : "?");

    fprintf(f, "## Training\n\n");
    fprintf(f, "- Steps: %llu, epoch %u, %llu real images seen, %.0f s of training\n", (unsigned long long)st->step,
            st->epoch, (unsigned long long)st->images_seen, st->wall_time_trained);
    if (st->adam_g && st->adam_d)
        fprintf(f, "- Optimizer: Adam; G lr %g betas (%g, %g) eps %g; D lr %g betas (%g, %g) eps %g\n",
                st->adam_g->lr, st->adam_g->beta1, st->adam_g->beta2, st->adam_g->eps, st->adam_d->lr,
                st->adam_d->beta1, st->adam_d->beta2, st->adam_d->eps);
    fprintf(f, "- EMA decay: %g; seed %llu; trainer threads %u\n", st->ema_decay, (unsigned long long)st->seed,
            st->threads);
    fprintf(f, "- Command line: `%s`\n", ck->command_line[0] ? ck->command_line : "(not recorded)");
    hex(ck->dataset_digest.data, ck->dataset_digest.len, h);
    fprintf(f, "- Training dataset digest: `%s`%s\n", h[0] ? h : "(not recorded)",
            ck->dataset_digest.len == 32 && memcmp(ck->dataset_digest.data, e->db_digest, 32) != 0
                ? " (**differs from the evaluation dataset**)" : "");
    hex(ck->parent_digest.data, ck->parent_digest.len, h);
    fprintf(f, "- Parent checkpoint: %s%s%s\n\n", h[0] ? "`" : "", h[0] ? h : "none (trained from scratch)",
            h[0] ? "`" : "");

    fprintf(f, "## Dataset\n\n");
    hex(e->db_digest, 32, h);
    fprintf(f, "- Path: `%s` (digest `%s`)\n- Source: %s\n- Images: %llu of %ux%u, %u channel(s)\n", e->o->db, h,
            in->source[0] ? in->source : "(not recorded)", (unsigned long long)in->count, in->width, in->height,
            in->channels);
    if (in->n_class_names) {
        fprintf(f, "- Classes (%zu):\n\n| # | class | images |\n|---|---|---|\n", in->n_class_names);
        for (size_t k = 0; k < in->n_class_names; k++)
            fprintf(f, "| %zu | %s | %llu |\n", k, in->class_names[k],
                    k < in->n_class_counts ? (unsigned long long)in->class_counts[k] : 0ULL);
        fprintf(f, "\n");
    } else {
        fprintf(f, "- Classes: none (unlabelled)\n");
    }
    fprintf(f, "- Unlabelled images: %llu; duplicates skipped at ingest: %llu\n\n",
            (unsigned long long)in->unlabelled_count, (unsigned long long)in->duplicate_count);
    fprintf(f, "### Licenses and attribution\n\n");
    if (in->n_licenses) {
        fprintf(f, "| license | images |\n|---|---|\n");
        for (size_t i = 0; i < in->n_licenses; i++)
            fprintf(f, "| %s | %llu |\n", in->licenses[i]->license[0] ? in->licenses[i]->license : "(unknown)",
                    (unsigned long long)in->licenses[i]->count);
        fprintf(f, "\n");
    } else {
        fprintf(f, "No license information was recorded at ingest: treat the terms as unknown.\n\n");
    }
    attribution_summary(e, f);
    fprintf(f, "### Opt-outs\n\n%llu source file(s) were refused at ingest because they were on the opt-out "
               "list; none of them is in the training data.\n\n", (unsigned long long)in->optout_count);

    fprintf(f, "## Evaluation (%zu generated images, seed %llu)\n\n", r->n, (unsigned long long)e->o->seed);
    fprintf(f, "Feature space: %s.\n\n",
            strcmp(e->features_kind, "random_cnn") == 0
                ? "a fixed random CNN (the dataset is unlabelled), so the numbers compare runs, not datasets"
                : "the 128-d penultimate layer of a classifier fitted on the training data");
    fprintf(f, "| metric | value |\n|---|---|\n");
    for (int i = 0; i < r->nm; i++) {
        fprintf(f, "| %s | ", r->m[i].name);
        md_num(f, r->m[i].value);
        fprintf(f, " |\n");
    }
    fprintf(f, "\nFID and KID: lower is closer to the training distribution. Precision: share of generated "
               "images that look like training images; recall: share of the training distribution the "
               "generator covers (k-NN manifolds, k = 3). class_kl: KL(train || generated) of classifier "
               "labels, nats; large values mean missing or over-produced classes (mode collapse). "
               "near_copy_fraction: share of generated images closer (pixel L2) to a training image than the "
               "1st percentile of real nearest-neighbour distances.\n\n");
    if (r->text) text_section(f, r);
    fprintf(f, "## Known limitations\n\n"
               "- The feature network is small and trained on this dataset only; FID/KID here are not comparable "
               "with Inception-based numbers from papers.\n"
               "- FID is biased for small n: compare runs at the same n.\n"
               "- The bias audit relies on the classifier's labels (test accuracy ");
    md_num(f, e->fn_test_acc >= 0 ? e->fn_test_acc : NAN);
    fprintf(f, "); its errors show up as apparent imbalance.\n"
               "- The memorisation audit in pixel space covers the first %lld generated images; near copies "
               "that are shifted or flipped are not detected in pixel space (see the feature-space figure).\n"
               "- The generator can reproduce biases and artefacts of its training data; the dataset's "
               "license terms apply to what it learned.\n",
            e->o->mem_n);
    fclose(f);
    char path[4200];
    snprintf(path, sizeof path, "%s.card.md", ckpt_path);
    int rc = eval_write_file(path, buf, len);
    free(buf);
    return rc;
}
