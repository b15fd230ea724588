/* ingest_shape.c - the shape a folder of PNGs is stored at by default.
 *
 * A dataset holds one shape (width, height, channels). When neither the
 * dataset (an earlier ingest) nor --size/--channels fixes it, it is taken
 * from the files themselves, before anything is stored: their PNG headers
 * (the IHDR chunk, the first 33 bytes) are read in one pass over the
 * listing, which costs one open and one small read per file (a few
 * percent of decoding them). So a folder of 28x28 grey PNGs is stored as
 * 28x28 grey, not upsampled to a default.
 *
 * When the files disagree the most common size wins (ties: the larger
 * area, then the wider), and the files are grey unless one of them holds
 * colour (grey to RGB loses nothing, the other way round would); the
 * decision is said in one line with the counts, and the other files are
 * resized (centre crop) or converted when they are decoded. Files whose
 * header cannot be read are left to the decoder, which rejects them. */
#include "ingest.h"

#include "base.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#define SHAPE_MAX_SIZES 64 /* distinct sizes counted one by one; more are "other" */
#define SHAPE_FALLBACK 64  /* pixels, when no header can be read (the decoder rejects those files) */

typedef struct {
    uint32_t w, h;
    size_t n;
    size_t first;   /* a file of this size, to name in the message */
} size_count_t;

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* The IHDR of the file at path: 0 and *w, *h, *color; -1 when it cannot
 * be read or does not start like a PNG. */
static int read_ihdr(const char *path, uint32_t *w, uint32_t *h, bool *color) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    uint8_t b[26];
    ssize_t got = read(fd, b, sizeof b);
    close(fd);
    if (got != (ssize_t)sizeof b || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return -1;
    *w = be32(b + 16);
    *h = be32(b + 20);
    uint8_t ct = b[25];
    if (!*w || !*h || (ct != 0 && ct != 2 && ct != 3 && ct != 4 && ct != 6)) return -1;
    *color = ct == 2 || ct == 3 || ct == 6; /* a palette may hold colour */
    return 0;
}

int ing_shape_from_files(const char *root, const ing_list_t *l, size_t n, uint32_t *w, uint32_t *h,
                         uint32_t *c) {
    size_count_t sz[SHAPE_MAX_SIZES];
    int nsz = 0;
    size_t other = 0, colour = 0, grey = 0, unread = 0, first_colour = 0;
    char *path = xmalloc(3 * PATH_MAX), rel[2 * PATH_MAX];
    double t0 = gb_now();
    for (size_t i = 0; i < n; i++) {
        snprintf(path, 3 * PATH_MAX, "%s/%s", root, ing_list_rel(l, i, rel, sizeof rel));
        uint32_t fw, fh;
        bool col;
        if (read_ihdr(path, &fw, &fh, &col)) {
            unread++;
            continue;
        }
        if (col && !colour++) first_colour = i;
        if (!col) grey++;
        int k = 0;
        while (k < nsz && (sz[k].w != fw || sz[k].h != fh)) k++;
        if (k < nsz) sz[k].n++;
        else if (nsz < SHAPE_MAX_SIZES) sz[nsz++] = (size_count_t){fw, fh, 1, i};
        else other++;
    }
    int best = -1;
    for (int k = 0; k < nsz; k++) {
        if (best < 0 || sz[k].n > sz[best].n) best = k;
        else if (sz[k].n == sz[best].n) {
            uint64_t a = (uint64_t)sz[k].w * sz[k].h, b = (uint64_t)sz[best].w * sz[best].h;
            if (a > b || (a == b && sz[k].w > sz[best].w)) best = k;
        }
    }
    size_t readable = n - unread;
    log_debug("%s: read %zu PNG header(s) in %.3f s", root, n, gb_now() - t0);
    if (best < 0) {
        if (!*w) *w = *h = SHAPE_FALLBACK;
        if (!*c) *c = 3;
        if (n) log_warn("%s: no readable PNG header among %zu file(s): storing %ux%u, %u channel(s)", root, n, *w, *h, *c);
        free(path);
        return 0;
    }
    if (!*w) {
        *w = sz[best].w;
        *h = sz[best].h;
        if (sz[best].n < readable) {
            size_t k2 = (size_t)(best == 0 ? (nsz > 1 ? 1 : 0) : 0);
            log_warn("%s: the images differ in size: %zu of %zu are %ux%u, %zu have %d other size(s)%s (e.g. %ux%u: "
                     "%s); storing %ux%u, the most common (others are resized and centre-cropped; --size WxH "
                     "to choose)",
                     root, sz[best].n, readable, *w, *h, readable - sz[best].n, nsz - 1 + (other ? 1 : 0),
                     other ? " or more" : "", sz[k2].w, sz[k2].h, ing_list_rel(l, sz[k2].first, rel, sizeof rel),
                     *w, *h);
        }
    }
    if (!*c) {
        *c = colour ? 3 : 1;
        if (colour && grey)
            log_warn("%s: %zu of %zu image(s) are colour (e.g. %s), %zu grey: storing RGB, 3 channels (grey "
                     "ones are repeated in each channel; --channels 1 to store grey)",
                     root, colour, readable, ing_list_rel(l, first_colour, rel, sizeof rel), grey);
    }
    free(path);
    return 0;
}
