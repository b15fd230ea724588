/* idx2png.c - write MNIST-format IDX images as a PNG class-folder tree.
 *
 *   idx2png PREFIX OUTDIR [--limit N] [--variants K]
 *
 * Reads PREFIX-images-idx3-ubyte(.gz) and PREFIX-labels-idx1-ubyte(.gz)
 * and writes OUTDIR/CLASS/NNNNN.png (8-bit gray), CLASS being a file-name
 * safe Fashion-MNIST class name (T-shirt-top, Trouser, Pullover, Dress,
 * Coat, Sandal, Shirt, Sneaker, Bag, Ankle-boot) or the digit for other
 * IDX files. --variants K writes K versions of every image
 * (NNNNN_vV.png), version V having V added to its first pixel, so the
 * files differ byte-wise: used to make 10x larger benchmark trees.
 * Files are written without fsync (this is test data, made for speed). */
#include "base.h"
#include "err.h"
#include "idx.h"
#include "img.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const FASHION[] = {"T-shirt-top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle-boot"};
static const char *const DIGITS[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

static int write_file(const char *path, const uint8_t *buf, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0) { if (errno == EINTR) continue; int e = errno; close(fd); return e; }
        off += (size_t)w;
    }
    return close(fd) ? errno : 0;
}

int main(int argc, char **argv) {
    log_init("idx2png");
    if (argc < 3) {
        fprintf(stderr, "usage: idx2png PREFIX OUTDIR [--limit N] [--variants K]\n");
        return 2;
    }
    const char *prefix = argv[1], *out = argv[2];
    unsigned long limit = 0, variants = 1;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--limit") == 0) limit = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--variants") == 0) variants = strtoul(argv[i + 1], NULL, 10);
        else { fprintf(stderr, "idx2png: unknown option %s\n", argv[i]); return 2; }
    }
    if (variants < 1 || variants > 255) { fprintf(stderr, "idx2png: --variants must be 1..255\n"); return 2; }
    idx_t x;
    if (idx_open(prefix, &x) != 0) return 1; /* logged with the file name */
    if (!x.labels || x.h > 4096 || x.w > 4096 || x.n > UINT32_MAX) {
        fprintf(stderr, "idx2png: %s: no labels file, or records over 4096 pixels a side\n", prefix);
        return 1;
    }
    uint32_t n = (uint32_t)x.n, rows = x.h, cols = x.w;
    if (limit && limit < n) n = (uint32_t)limit;
    const char *const *cls = strcasestr(prefix, "fashion") ? FASHION : DIGITS;
    mkdir(out, 0755);
    for (int c = 0; c < 10; c++) {
        char d[PATH_MAX];
        snprintf(d, sizeof d, "%s/%s", out, cls[c]);
        if (mkdir(d, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "idx2png: %s: %s\n", d, strerror(errno));
            return 1;
        }
    }
    size_t rec = (size_t)rows * cols;
    uint8_t *px = xmalloc(rec), *var = xmalloc(rec);
    for (uint32_t i = 0; i < n; i++) {
        int label;
        if (idx_next(&x, px, &label) != 0) return 1; /* logged */
        if (label < 0 || label > 9) { fprintf(stderr, "idx2png: record %u: label %d\n", i, label); return 1; }
        for (unsigned long v = 0; v < variants; v++) {
            memcpy(var, px, rec);
            var[0] = (uint8_t)(var[0] + v);
            img_t im = {cols, rows, 1, var};
            uint8_t *buf = NULL;
            size_t len = 0;
            int rc = img_encode_png(&im, NULL, 0, 6, &buf, &len);
            if (rc) { fprintf(stderr, "idx2png: encode: %s\n", err_str(rc)); return 1; }
            char path[PATH_MAX];
            if (variants > 1) snprintf(path, sizeof path, "%s/%s/%05u_v%lu.png", out, cls[label], i, v);
            else snprintf(path, sizeof path, "%s/%s/%05u.png", out, cls[label], i);
            rc = write_file(path, buf, len);
            free(buf);
            if (rc) { fprintf(stderr, "idx2png: %s: %s\n", path, strerror(rc)); return 1; }
        }
    }
    free(px);
    free(var);
    idx_close(&x);
    return 0;
}
