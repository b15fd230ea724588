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
#include <pthread.h>
#include <unistd.h>

#define SHAPE_MAX_SIZES 64 /* distinct sizes counted one by one; more are "other" */
#define SHAPE_FALLBACK 64  /* pixels, when no header can be read (the decoder rejects those files) */

typedef struct {
    uint32_t w, h;
    size_t n;
    size_t first;   /* a file of this size, to name in the message */
} size_count_t;

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* The IHDR of the file name in the folder dirfd: 0 and *w, *h, *color; -1 when it cannot
 * be read or does not start like a PNG. */
static int read_ihdr(int dirfd, const char *name, uint32_t *w, uint32_t *h, bool *color) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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

/* One worker's share of the files and its counts. */
typedef struct {
    const char *root;
    const ing_list_t *l;
    size_t i0, i1;
    size_count_t sz[SHAPE_MAX_SIZES];
    int nsz;
    size_t other, colour, grey, unread, first_colour;
} tally_t;

static void tally_add(tally_t *t, uint32_t w, uint32_t h, size_t n, size_t first) {
    int k = 0;
    while (k < t->nsz && (t->sz[k].w != w || t->sz[k].h != h)) k++;
    if (k < t->nsz) {
        t->sz[k].n += n;
        if (first < t->sz[k].first) t->sz[k].first = first;
    } else if (t->nsz < SHAPE_MAX_SIZES) t->sz[t->nsz++] = (size_count_t){w, h, n, first};
    else t->other += n;
}

/* Read the headers of files i0..i1: one folder descriptor per run of
 * files in the same folder (the listing is sorted), openat per file. */
static void *tally_run(void *arg) {
    tally_t *t = arg;
    char *path = xmalloc(3 * PATH_MAX);
    const char *cur = NULL;
    int dfd = -1;
    for (size_t i = t->i0; i < t->i1; i++) {
        const char *dir = ing_list_dir(t->l, i);
        if (dir != cur) {
            if (dfd >= 0) close(dfd);
            snprintf(path, 3 * PATH_MAX, "%s/%s", t->root, dir);
            dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            cur = dir;
        }
        uint32_t fw, fh;
        bool col;
        if (dfd < 0 || read_ihdr(dfd, ing_list_name(t->l, i), &fw, &fh, &col)) {
            t->unread++;
            continue;
        }
        if (col && !t->colour++) t->first_colour = i;
        if (!col) t->grey++;
        tally_add(t, fw, fh, 1, i);
    }
    if (dfd >= 0) close(dfd);
    free(path);
    return NULL;
}

int ing_shape_from_files(const char *root, const ing_list_t *l, size_t n, int threads, uint32_t *w, uint32_t *h,
                         uint32_t *c) {
    double t0 = gb_now();
    int nt = threads < 1 ? 1 : threads > 16 ? 16 : threads;
    if ((size_t)nt > n / 256 + 1) nt = (int)(n / 256 + 1); /* small folders: one thread */
    tally_t *ts = xcalloc((size_t)nt, sizeof *ts);
    pthread_t tid[16];
    for (int k = 0; k < nt; k++) {
        ts[k] = (tally_t){.root = root, .l = l, .i0 = n * (size_t)k / (size_t)nt, .i1 = n * (size_t)(k + 1) / (size_t)nt};
        if (k && pthread_create(&tid[k], NULL, tally_run, &ts[k])) tally_run(&ts[k]), tid[k] = 0;
    }
    tally_run(&ts[0]);
    /* merge into ts[0], in file order so "first" stays the first */
    tally_t *t = &ts[0];
    for (int k = 1; k < nt; k++) {
        if (tid[k]) pthread_join(tid[k], NULL);
        const tally_t *u = &ts[k];
        for (int j = 0; j < u->nsz; j++) tally_add(t, u->sz[j].w, u->sz[j].h, u->sz[j].n, u->sz[j].first);
        t->other += u->other;
        if (u->colour && !t->colour) t->first_colour = u->first_colour;
        t->colour += u->colour;
        t->grey += u->grey;
        t->unread += u->unread;
    }
    char rel[2 * PATH_MAX];
    const size_count_t *sz = t->sz;
    int nsz = t->nsz;
    size_t other = t->other, colour = t->colour, grey = t->grey, first_colour = t->first_colour;
    int best = -1;
    for (int k = 0; k < nsz; k++) {
        if (best < 0 || sz[k].n > sz[best].n) best = k;
        else if (sz[k].n == sz[best].n) {
            uint64_t a = (uint64_t)sz[k].w * sz[k].h, b = (uint64_t)sz[best].w * sz[best].h;
            if (a > b || (a == b && sz[k].w > sz[best].w)) best = k;
        }
    }
    size_t readable = n - t->unread;
    log_debug("%s: read %zu PNG header(s) in %.3f s (%d thread(s))", root, n, gb_now() - t0, nt);
    if (best < 0) {
        if (!*w) *w = *h = SHAPE_FALLBACK;
        if (!*c) *c = 3;
        if (n) log_warn("%s: no readable PNG header among %zu file(s): storing %ux%u, %u channel(s)", root, n, *w, *h, *c);
        free(ts);
        return 0;
    }
    if (!*w) {
        *w = sz[best].w;
        *h = sz[best].h;
        if (sz[best].n < readable) {
            int k2 = best == 0 ? 1 : 0; /* another size, to name */
            log_warn("%s: the images differ in size: %zu of %zu are %ux%u, %zu have %d other size(s)%s (e.g. %ux%u: "
                     "%s); storing %ux%u, the most common (others are resized and centre-cropped; --size WxH "
                     "to choose)",
                     root, sz[best].n, readable, *w, *h, readable - sz[best].n, nsz - 1, other ? " or more" : "",
                     sz[k2].w, sz[k2].h, ing_list_rel(l, sz[k2].first, rel, sizeof rel), *w, *h);
        }
    }
    if (!*c) {
        *c = colour ? 3 : 1;
        if (colour && grey)
            log_warn("%s: %zu of %zu image(s) are colour (e.g. %s), %zu grey: storing RGB, 3 channels (grey "
                     "ones are repeated in each channel; --channels 1 to store grey)",
                     root, colour, readable, ing_list_rel(l, first_colour, rel, sizeof rel), grey);
    }
    free(ts);
    return 0;
}
