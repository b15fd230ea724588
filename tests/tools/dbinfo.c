/* dbinfo.c - print a gambar dataset's DatasetInfo (and optionally one
 * Example) as "key value" lines, for shell tests.
 *
 *   dbinfo DB [--example N] [--verify]
 *
 * Lines: count, digest (hex), height, width, channels, classes
 * (comma-joined), class_counts, unlabelled, optouts, duplicates, license
 * LICENSE COUNT (one per license), source. With --example N: ex_index,
 * ex_label, ex_label_name, ex_uri, ex_sha256, ex_license,
 * ex_attribution, ex_pixels_sha256, ex_ncaptions, one ex_caption per caption.
 * Also examples_with_captions, captions_total. --verify runs store_verify and
 * prints "verify ok" or exits 1. Exit 1 when the dataset cannot be
 * opened. */
#include "base.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "store.h"

int main(int argc, char **argv) {
    log_init("dbinfo");
    if (argc < 2) {
        fprintf(stderr, "usage: dbinfo DB [--example N] [--verify]\n");
        return 2;
    }
    long long exi = -1;
    int verify = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--example") == 0 && i + 1 < argc) exi = atoll(argv[++i]);
        else if (strcmp(argv[i], "--verify") == 0) verify = 1;
        else { fprintf(stderr, "dbinfo: unknown argument %s\n", argv[i]); return 2; }
    }
    store_t *s = NULL;
    if (store_open(argv[1], STORE_RDONLY, &s)) return 1;
    const Gambar__DatasetInfo *in = store_info(s);
    char hex[DIGEST_HEX_LEN + 1] = "";
    if (in) {
        digest_hex(in->digest.data, in->digest.len < 32 ? in->digest.len : 32, hex);
        printf("count %llu\ndigest %s\nheight %u\nwidth %u\nchannels %u\n", (unsigned long long)in->count, hex,
               in->height, in->width, in->channels);
        printf("classes ");
        for (size_t i = 0; i < in->n_class_names; i++) printf("%s%s", i ? "," : "", in->class_names[i]);
        printf("\nclass_counts ");
        for (size_t i = 0; i < in->n_class_counts; i++)
            printf("%s%llu", i ? "," : "", (unsigned long long)in->class_counts[i]);
        printf("\nunlabelled %llu\noptouts %llu\nduplicates %llu\n", (unsigned long long)in->unlabelled_count,
               (unsigned long long)in->optout_count, (unsigned long long)in->duplicate_count);
        for (size_t i = 0; i < in->n_licenses; i++)
            printf("license %s %llu\n", in->licenses[i]->license[0] ? in->licenses[i]->license : "-",
                   (unsigned long long)in->licenses[i]->count);
        printf("source %s\n", in->source);
        printf("examples_with_captions %llu\ncaptions_total %llu\n", (unsigned long long)in->examples_with_captions,
               (unsigned long long)in->captions_total);
    } else {
        printf("count 0\n");
    }
    int rc = 0;
    if (exi >= 0) {
        Gambar__Example *ex = NULL;
        rc = store_get(s, (uint64_t)exi, &ex);
        if (rc) {
            fprintf(stderr, "dbinfo: example %lld: %s\n", exi, err_str(rc));
        } else {
            char sh[DIGEST_HEX_LEN + 1], ph[DIGEST_HEX_LEN + 1];
            uint8_t pd[DIGEST_LEN];
            digest_hex(ex->source_sha256.data, ex->source_sha256.len < 32 ? ex->source_sha256.len : 32, sh);
            digest_sha256(ex->pixels.data, ex->pixels.len, pd);
            digest_hex(pd, DIGEST_LEN, ph);
            printf("ex_index %llu\nex_label %d\nex_label_name %s\nex_uri %s\nex_sha256 %s\nex_license %s\n"
                   "ex_attribution %s\nex_pixels_sha256 %s\n",
                   (unsigned long long)ex->index, ex->label, ex->label_name, ex->source_uri, sh, ex->license,
                   ex->attribution, ph);
            printf("ex_ncaptions %zu\n", ex->n_captions);
            for (size_t i = 0; i < ex->n_captions; i++) printf("ex_caption %s\n", ex->captions[i]);
            gambar__example__free_unpacked(ex, NULL);
        }
    }
    if (!rc && verify) {
        rc = store_verify(s);
        if (!rc) printf("verify ok\n");
    }
    store_close(&s);
    return rc ? 1 : 0;
}
