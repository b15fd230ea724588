/* fashion_captions.c - synthetic captions for Fashion-MNIST, from pixel
 * measures (common/img/attr.h). Used by scripts/fashion-captions.sh.
 *
 *   fashion_captions --train PREFIX [--images PREFIX] [--seed S]
 *                    [--per-image K] [--out FILE]
 *
 * For every class, the terciles of three measures are computed over the
 * --train records (brightness of the ink, bounding-box width, fill), so
 * that within each class a third of the training images is "dark", a
 * third "mid-tone", a third "light" (and narrow/medium/wide,
 * outlined/-/filled; the middle fill tercile gets no word). Then every
 * record of --images (default: the training set) gets K captions (default
 * 4) naming its class and its three words, each in a different phrasing
 * with synonyms drawn from rng_derive(seed, record, ...): deterministic
 * for a given seed. Output: '#' header lines (the thresholds per class),
 * then one line per record, its captions separated by '|' - the format
 * gambar-ingest --captions reads. Word counts per class go to stderr.
 *
 * The captions are synthetic: they say only what the measures say. */
#include "attr.h"
#include "capwords.h"
#include "base.h"
#include "cli.h"
#include "err.h"
#include "idx.h"
#include "log.h"
#include "rng.h"

#include <errno.h>

#define NCLS CAPW_FASHION_K
#define NATTR CAPW_NATTR /* brightness, width, fill */
#define MAX_K 6

static const char *article(const char *w) { return strchr("aeiouAEIOU", w[0]) ? "an" : "a"; }

/* One caption in phrasing t for class c with words b (brightness), w
 * (width), f (fill, may be "") and noun n. */
static void phrase(char *out, size_t cap, int t, const char *n, const char *b, const char *w, const char *f) {
    bool hf = f[0] != 0;
    switch (t) {
    case 0: snprintf(out, cap, "%s %s, %s %s", article(b), b, w, n); break;
    case 1:
        if (hf) snprintf(out, cap, "%s, %s, %s and %s", n, w, f, b);
        else snprintf(out, cap, "%s, %s and %s", n, w, b);
        break;
    case 2: snprintf(out, cap, "%s %s %s in a %s tone", article(w), w, n, b); break;
    case 3:
        if (hf) snprintf(out, cap, "%s %s %s %s", article(f), f, b, n);
        else snprintf(out, cap, "%s %s %s, %s cut", article(b), b, n, w);
        break;
    case 4: snprintf(out, cap, "photo of %s %s %s that is %s", article(b), b, n, w); break;
    default:
        if (hf) snprintf(out, cap, "%s %s, %s, %s %s", article(w), w, f, b, n);
        else snprintf(out, cap, "%s %s and %s %s", article(w), w, b, n);
        break;
    }
}

int main(int argc, char **argv) {
    log_init("fashion_captions");
    const char *train = NULL, *images = NULL, *outp = NULL;
    uint64_t seed = 0;
    long long per = 4;
    cli_opt_t opts[] = {
        {"train", 0, CLI_STR, &train, "PREFIX", "IDX prefix the per-class terciles come from", NULL},
        {"images", 0, CLI_STR, &images, "PREFIX", "IDX prefix to caption (default: --train)", NULL},
        {"seed", 0, CLI_U64, &seed, "S", "seed of the phrasings and synonyms (default 0)", NULL},
        {"per-image", 0, CLI_INT, &per, "K", "captions per image, 1..6 (default 4)", NULL},
        {"out", 'o', CLI_STR, &outp, "FILE", "output file (default stdout)", NULL},
    };
    cli_spec_t spec = {.prog = "fashion_captions", .usage = "--train PREFIX [options]",
                       .summary = "Write synthetic Fashion-MNIST captions from pixel measures.",
                       .opts = opts, .nopts = (int)ARRAY_LEN(opts)};
    int pos = cli_parse(&spec, argc, argv);
    if (pos < argc) cli_usage_error(&spec, "unexpected argument '%s'", argv[pos]);
    if (!train) cli_usage_error(&spec, "--train is required");
    if (per < 1 || per > MAX_K) cli_usage_error(&spec, "--per-image must be 1..%d", MAX_K);
    if (!images) images = train;

    idx_data_t tr;
    int rc = idx_read_all(train, 0, &tr);
    if (rc) return err_exit_code(rc);
    if (!tr.labels || !tr.n) {
        log_error("%s: no labels (or no records)", train);
        return GB_EXIT_DATA;
    }
    /* per-class terciles over the training set (capwords.h: eval reads
     * them back from the header) */
    capw_thr_t th[NCLS];
    int32_t *lab = xmalloc(tr.n * sizeof *lab);
    attr_t *at = xmalloc(tr.n * sizeof *at);
    size_t rec = (size_t)tr.w * tr.h;
    for (uint64_t i = 0; i < tr.n; i++) {
        attr_measure(tr.px + i * rec, (int)tr.w, (int)tr.h, 1, ATTR_INK_THR, &at[i]);
        lab[i] = tr.labels[i];
    }
    capw_thresholds(at, lab, tr.n, NCLS, th);
    free(lab);
    free(at);
    idx_data_t im;
    uint32_t tw = tr.w, thh = tr.h;
    if (strcmp(images, train) == 0) {
        im = tr;
        memset(&tr, 0, sizeof tr);
    } else if ((rc = idx_read_all(images, 0, &im))) {
        idx_data_free(&tr);
        return err_exit_code(rc);
    }
    if (!im.labels || im.w != tw || im.h != thh) {
        if (!im.labels) log_error("%s: no labels", images);
        else log_error("%s: records are %ux%u, the training set's %ux%u", images, im.w, im.h, tw, thh);
        return GB_EXIT_DATA;
    }
    FILE *f = outp ? fopen(outp, "w") : stdout;
    if (!f) {
        log_error("%s: cannot write: %s", outp, strerror(errno));
        return GB_EXIT_IO;
    }
    fprintf(f, "# gambar synthetic Fashion-MNIST captions (scripts/fashion-captions.sh): one line per record of\n"
               "# %s, captions separated by '|'; words from common/img/attr.h measures (ink = value > %d)\n"
               "# against per-class terciles of %s; seed %llu, %lld per image.\n",
            images, ATTR_INK_THR, train, (unsigned long long)seed, per);
    const char *names[NCLS];
    for (int c = 0; c < NCLS; c++) names[c] = capw_fashion_class(c);
    capw_thresholds_write(f, names, NCLS, th);
    uint64_t cnt[NCLS][NATTR][3] = {{{0}}}, ncls[NCLS] = {0};
    for (uint64_t i = 0; i < im.n; i++) {
        int c = im.labels[i];
        if (c < 0 || c >= NCLS) {
            fprintf(f, "\n");
            continue;
        }
        attr_t a;
        attr_measure(im.px + i * rec, (int)im.w, (int)im.h, 1, ATTR_INK_THR, &a);
        int ter[NATTR];
        for (int k = 0; k < NATTR; k++) {
            ter[k] = capw_tercile(&th[c], k, capw_measure(&a, k));
            cnt[c][k][ter[k]]++;
        }
        ncls[c]++;
        rng_t r;
        rng_derive(&r, seed, i, 0, 0, 0x66636170 /* "fcap" */);
        int order[MAX_K] = {0, 1, 2, 3, 4, 5};
        for (int j = MAX_K - 1; j > 0; j--) {
            int s = (int)rng_below(&r, (uint64_t)j + 1), t = order[j];
            order[j] = order[s];
            order[s] = t;
        }
        for (int j = 0; j < per; j++) {
            const char *n = capw_fashion_syn(c, (int)rng_below(&r, 3));
            const char *b = capw_word(0, ter[0], (int)rng_below(&r, 3));
            const char *w = capw_word(1, ter[1], (int)rng_below(&r, 3));
            const char *fl = capw_word(2, ter[2], (int)rng_below(&r, 3));
            char cap[256];
            phrase(cap, sizeof cap, order[j], n, b, w, fl);
            fprintf(f, "%s%s", j ? "|" : "", cap);
        }
        fprintf(f, "\n");
    }
    int bad = ferror(f) | (outp ? fclose(f) : fflush(f));
    fprintf(stderr, "fashion_captions: %llu records captioned; share of each word (tercile 0/1/2) per class:\n",
            (unsigned long long)im.n);
    for (int c = 0; c < NCLS; c++) {
        fprintf(stderr, "  %-11s", capw_fashion_class(c));
        for (int k = 0; k < NATTR; k++)
            fprintf(stderr, "  %s %.2f/%.2f/%.2f", capw_attr_name(k), ncls[c] ? (double)cnt[c][k][0] / ncls[c] : 0.0,
                    ncls[c] ? (double)cnt[c][k][1] / ncls[c] : 0.0, ncls[c] ? (double)cnt[c][k][2] / ncls[c] : 0.0);
        fprintf(stderr, "\n");
    }
    idx_data_free(&tr);
    idx_data_free(&im);
    if (bad) {
        log_error("%s: write error", outp ? outp : "stdout");
        return GB_EXIT_IO;
    }
    return 0;
}
