/* aug_mkdb - write a small test dataset from an IDX image/label pair.
 *
 * The augmenter's tests need a real dataset (Fashion-MNIST) of a few
 * thousand images; this writes one through the store writer API directly
 * so those tests do not depend on gambar-ingest's options. Usage:
 *   aug_mkdb PREFIX DB N
 * reads PREFIX-images-idx3-ubyte.gz and PREFIX-labels-idx1-ubyte.gz and
 * stores the first N records with class names "0".."9". Exit 0, 2 usage,
 * 3 bad input, 4 I/O error. */
#include "base.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "store.h"

#include <zlib.h>

static int read_all(const char *path, uint8_t **out, size_t *n) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "aug_mkdb: cannot open %s\n", path);
        return GB_EXIT_IO;
    }
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        if (len == cap) buf = xrealloc(buf, cap *= 2);
        int r = gzread(f, buf + len, (unsigned)(cap - len));
        if (r < 0) {
            fprintf(stderr, "aug_mkdb: cannot read %s\n", path);
            gzclose(f);
            free(buf);
            return GB_EXIT_IO;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    gzclose(f);
    *out = buf;
    *n = len;
    return 0;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: aug_mkdb PREFIX DB N\n");
        return GB_EXIT_USAGE;
    }
    log_init("aug_mkdb");
    char ipath[1024], lpath[1024];
    snprintf(ipath, sizeof ipath, "%s-images-idx3-ubyte.gz", argv[1]);
    snprintf(lpath, sizeof lpath, "%s-labels-idx1-ubyte.gz", argv[1]);
    long long want = atoll(argv[3]);
    uint8_t *im = NULL, *lb = NULL;
    size_t nim = 0, nlb = 0;
    int rc = read_all(ipath, &im, &nim);
    if (rc) return rc;
    rc = read_all(lpath, &lb, &nlb);
    if (rc) return rc;
    if (nim < 16 || nlb < 8 || be32(im) != 0x803 || be32(lb) != 0x801) {
        fprintf(stderr, "aug_mkdb: %s is not an IDX image/label pair\n", argv[1]);
        return GB_EXIT_DATA;
    }
    uint32_t count = be32(im + 4), h = be32(im + 8), w = be32(im + 12);
    if (be32(lb + 4) != count || nim < 16 + (size_t)count * h * w || nlb < 8 + (size_t)count || want < 1 ||
        (uint64_t)want > count) {
        fprintf(stderr, "aug_mkdb: bad sizes or N\n");
        return GB_EXIT_DATA;
    }
    store_t *st = NULL;
    rc = store_open(argv[2], STORE_CREATE, &st);
    if (rc) return err_exit_code(rc);
    const char *names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    rc = store_set_classes(st, names, 10);
    for (long long i = 0; rc == 0 && i < want; i++) {
        Gambar__Example ex = GAMBAR__EXAMPLE__INIT;
        uint8_t *px = im + 16 + (size_t)i * h * w;
        uint8_t sha[DIGEST_LEN];
        uint8_t rec[28 * 28 + 1];
        size_t rl = GB_MIN((size_t)h * w, sizeof rec - 1);
        memcpy(rec, px, rl);
        rec[rl] = lb[8 + i];
        digest_sha256(rec, rl + 1, sha);
        char uri[1100];
        snprintf(uri, sizeof uri, "idx://%s#%lld", argv[1], i);
        ex.height = h;
        ex.width = w;
        ex.channels = 1;
        ex.pixels.data = px;
        ex.pixels.len = (size_t)h * w;
        ex.label = lb[8 + i];
        ex.source_uri = uri;
        ex.source_sha256.data = sha;
        ex.source_sha256.len = DIGEST_LEN;
        rc = store_add(st, &ex);
    }
    if (rc == 0) rc = store_commit(st, "aug_mkdb", 0, 0);
    if (rc) fprintf(stderr, "aug_mkdb: %s\n", err_str(rc));
    store_close(&st);
    free(im);
    free(lb);
    return rc ? err_exit_code(rc) : 0;
}
