/* aug_mkdb - write a small test dataset from an IDX image/label pair.
 *
 * The augmenter's tests need a real dataset (Fashion-MNIST) of a few
 * thousand images; this writes one through the store writer API directly
 * so those tests do not depend on gambar-ingest's options. Usage:
 *   aug_mkdb PREFIX DB N
 * reads PREFIX-images-idx3-ubyte(.gz) and PREFIX-labels-idx1-ubyte(.gz) and
 * stores the first N records with class names "0".."9". Exit 0, 2 usage,
 * 3 bad input, 4 I/O error. */
#include "base.h"
#include "digest.h"
#include "err.h"
#include "idx.h"
#include "log.h"
#include "store.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: aug_mkdb PREFIX DB N\n");
        return GB_EXIT_USAGE;
    }
    log_init("aug_mkdb");
    long long want = atoll(argv[3]);
    idx_data_t d;
    int rc = idx_read_all(argv[1], want > 0 ? (uint64_t)want : 1, &d);
    if (rc) return err_exit_code(rc); /* logged with the file name */
    if (!d.labels || want < 1 || (uint64_t)want > d.n) {
        fprintf(stderr, "aug_mkdb: %s: no labels, or N is not 1..%llu\n", argv[1], (unsigned long long)d.n);
        idx_data_free(&d);
        return GB_EXIT_DATA;
    }
    uint32_t h = d.h, w = d.w;
    store_t *st = NULL;
    rc = store_open(argv[2], STORE_CREATE, &st);
    if (rc) return err_exit_code(rc);
    const char *names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    rc = store_set_classes(st, names, 10);
    for (long long i = 0; rc == 0 && i < want; i++) {
        Gambar__Example ex = GAMBAR__EXAMPLE__INIT;
        uint8_t *px = d.px + (size_t)i * h * w;
        uint8_t sha[DIGEST_LEN];
        uint8_t rec[28 * 28 + 1];
        size_t rl = GB_MIN((size_t)h * w, sizeof rec - 1);
        memcpy(rec, px, rl);
        rec[rl] = (uint8_t)d.labels[i];
        digest_sha256(rec, rl + 1, sha);
        char uri[1100];
        snprintf(uri, sizeof uri, "idx://%s#%lld", argv[1], i);
        ex.height = h;
        ex.width = w;
        ex.channels = 1;
        ex.pixels.data = px;
        ex.pixels.len = (size_t)h * w;
        ex.label = d.labels[i];
        ex.source_uri = uri;
        ex.source_sha256.data = sha;
        ex.source_sha256.len = DIGEST_LEN;
        rc = store_add(st, &ex);
    }
    if (rc == 0) rc = store_commit(st, "aug_mkdb", 0, 0);
    if (rc) fprintf(stderr, "aug_mkdb: %s\n", err_str(rc));
    store_close(&st);
    idx_data_free(&d);
    return rc ? err_exit_code(rc) : 0;
}
