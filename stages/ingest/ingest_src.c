/* ingest_src.c - where gambar-ingest's images come from: an ImageFolder
 * tree (walked once, in a deterministic order, into a compact path list)
 * or MNIST-format IDX files read record by record through zlib's gz*
 * interface (which reads gzip and plain files alike).
 *
 * The listing stores bare file names in one arena plus a 4-byte offset per
 * file, folders once (see ing_list_t), so the list for 600,000 files takes
 * about 10 MB; images are never held here. */
#include "ingest.h"

#include "base.h"
#include "err.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ING_MAX_DEPTH 32 /* folder nesting followed below the root */


static bool ends_png(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

static uint32_t list_add_dir(ing_list_t *l, const char *rel, int32_t label) {
    if (l->ndirs == l->dircap) {
        l->dircap = l->dircap ? l->dircap * 2 : 64;
        l->dirs = xrealloc(l->dirs, l->dircap * sizeof *l->dirs);
        l->dir_label = xrealloc(l->dir_label, l->dircap * sizeof *l->dir_label);
    }
    ASSERT(l->ndirs < UINT32_MAX);
    l->dirs[l->ndirs] = xstrdup(rel);
    l->dir_label[l->ndirs] = label;
    return (uint32_t)l->ndirs++;
}

static void list_push(ing_list_t *l, uint32_t dir, const char *name) {
    size_t len = strlen(name) + 1;
    if (l->nlen + len > l->ncap) {
        size_t nc = l->ncap ? l->ncap * 2 : (1 << 16);
        while (l->nlen + len > nc) nc *= 2;
        l->names = xrealloc(l->names, nc);
        l->ncap = nc;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->off = xrealloc(l->off, l->cap * sizeof *l->off);
    }
    ASSERT(l->nlen + len < UINT32_MAX && l->n < UINT32_MAX);
    if (!l->nseg || l->seg[l->nseg - 1].dir != dir) {
        if (l->nseg == l->segcap) {
            l->segcap = l->segcap ? l->segcap * 2 : 64;
            l->seg = xrealloc(l->seg, l->segcap * sizeof *l->seg);
        }
        l->seg[l->nseg++] = (ing_seg_t){(uint32_t)l->n, dir};
    }
    memcpy(l->names + l->nlen, name, len);
    l->off[l->n++] = (uint32_t)l->nlen;
    l->nlen += len;
}

static const ing_seg_t *list_seg(const ing_list_t *l, size_t i) {
    size_t lo = 0, hi = l->nseg; /* last segment with first <= i */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (l->seg[mid].first <= i) lo = mid;
        else hi = mid;
    }
    return &l->seg[lo];
}

const char *ing_list_dir(const ing_list_t *l, size_t i) { return l->dirs[list_seg(l, i)->dir]; }
int32_t ing_list_label(const ing_list_t *l, size_t i) { return l->dir_label[list_seg(l, i)->dir]; }

char *ing_list_rel(const ing_list_t *l, size_t i, char *buf, size_t cap) {
    const char *d = ing_list_dir(l, i);
    snprintf(buf, cap, "%s%s%s", d, *d ? "/" : "", ing_list_name(l, i));
    return buf;
}

/* Sorted, non-hidden entries of the folder root/rel: malloc'd strings
 * whose first byte is 'd' for a folder or 'f' otherwise, followed by the
 * name (sorting compares the names, skipping the tag). The type comes from
 * readdir's d_type when the file system gives it, else from stat (which
 * also follows symbolic links). Returns 0 or an errno. */
static int cmp_tagged(const void *a, const void *b) {
    return strcmp(*(const char *const *)a + 1, *(const char *const *)b + 1);
}

static int read_sorted(const char *root, const char *rel, char ***names, size_t *n) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel) >= (int)sizeof path)
        return ENAMETOOLONG;
    DIR *d = opendir(path);
    if (!d) return errno;
    size_t cap = 64;
    *n = 0;
    *names = xmalloc(cap * sizeof **names);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        bool dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            struct stat st;
            dir = fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        if (*n == cap) *names = xrealloc(*names, (cap *= 2) * sizeof **names);
        size_t len = strlen(e->d_name);
        char *t = xmalloc(len + 2);
        t[0] = dir ? 'd' : 'f';
        memcpy(t + 1, e->d_name, len + 1);
        (*names)[(*n)++] = t;
    }
    closedir(d);
    qsort(*names, *n, sizeof **names, cmp_tagged);
    return 0;
}

static void walk(const char *root, const char *rel, int32_t label, int depth, ing_list_t *l) {
    char **names;
    size_t n;
    int rc = read_sorted(root, rel, &names, &n);
    if (rc) {
        log_warn("%s/%s: cannot read this folder: %s (skipped)", root, rel, strerror(rc));
        return;
    }
    uint32_t dir = list_add_dir(l, rel, label);
    size_t rlen = strlen(rel);
    for (size_t i = 0; i < n; i++) {
        char sub[PATH_MAX];
        const char *name = names[i] + 1;
        size_t nlen = strlen(name);
        if (rlen + 1 + nlen >= sizeof sub) {
            log_warn("%s/%s/%s: path too long (skipped)", root, rel, name);
        } else if (names[i][0] == 'd') {
            memcpy(sub, rel, rlen);
            sub[rlen] = '/';
            memcpy(sub + rlen + 1, name, nlen + 1);
            if (depth < ING_MAX_DEPTH) walk(root, sub, label, depth + 1, l);
            else log_warn("%s/%s: nested too deeply (skipped)", root, sub);
        } else if (ends_png(name)) {
            list_push(l, dir, name);
        } else {
            l->other++;
        }
        free(names[i]);
    }
    free(names);
}

int ing_list_folder(const char *root, ing_list_t *l) {
    memset(l, 0, sizeof *l);
    struct stat st;
    if (stat(root, &st) != 0) {
        int rc = errno;
        log_error("%s: cannot read the source folder: %s", root, strerror(rc));
        return rc;
    }
    if (!S_ISDIR(st.st_mode)) {
        log_error("%s: the source is not a folder (use idx:PREFIX for IDX files)", root);
        return ENOTDIR;
    }
    char **names;
    size_t n;
    int rc = read_sorted(root, "", &names, &n);
    if (rc) {
        log_error("%s: cannot read the source folder: %s", root, strerror(rc));
        return rc;
    }
    /* Class folders first, so labels are known: sorted top-level folders. */
    l->classes = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        if (names[i][0] == 'd') l->classes[l->nclasses++] = xstrdup(names[i] + 1);
    size_t ci = 0;
    uint32_t rootdir = list_add_dir(l, "", -1);
    for (size_t i = 0; i < n; i++) {
        if (names[i][0] == 'd') {
            walk(root, names[i] + 1, (int32_t)ci, 1, l);
            ci++;
        } else if (ends_png(names[i] + 1)) {
            list_push(l, rootdir, names[i] + 1);
        } else {
            l->other++;
        }
        free(names[i]);
    }
    free(names);
    return 0;
}

void ing_list_free(ing_list_t *l) {
    for (size_t i = 0; i < l->nclasses; i++) free(l->classes[i]);
    for (size_t i = 0; i < l->ndirs; i++) free(l->dirs[i]);
    free(l->classes);
    free(l->dirs);
    free(l->dir_label);
    free(l->names);
    free(l->off);
    free(l->seg);
    memset(l, 0, sizeof *l);
}

/* ---- IDX ---- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Find PREFIX-KIND-idxN-ubyte.gz or the same without .gz. */
static char *idx_file(const char *prefix, const char *kind) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s-%s.gz", prefix, kind);
    if (access(path, F_OK) == 0) return xstrdup(path);
    snprintf(path, sizeof path, "%s-%s", prefix, kind);
    if (access(path, F_OK) == 0) return xstrdup(path);
    return NULL;
}

/* Read exactly n bytes; false on a short read or error. */
static bool gz_full(gzFile f, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

int ing_idx_open(const char *prefix, ing_idx_t *x) {
    memset(x, 0, sizeof *x);
    int rc = 0;
    char *lpath = NULL;
    gzFile lf = NULL;
    x->images_path = idx_file(prefix, "images-idx3-ubyte");
    if (!x->images_path) {
        log_error("idx:%s: no %s-images-idx3-ubyte(.gz) file", prefix, prefix);
        return ENOENT;
    }
    char abs[PATH_MAX];
    if (!realpath(x->images_path, abs)) snprintf(abs, sizeof abs, "%s", x->images_path);
    char *cut = strstr(abs, "-images-idx3-ubyte");
    if (cut) *cut = 0;
    x->prefix_abs = xstrdup(abs);
    x->img = gzopen(x->images_path, "rb");
    if (!x->img) {
        rc = errno ? errno : EIO;
        log_error("%s: cannot open: %s", x->images_path, strerror(rc));
        goto fail;
    }
    gzbuffer(x->img, 1 << 17);
    uint8_t hdr[16];
    if (!gz_full(x->img, hdr, 16) || be32(hdr) != 0x00000803) {
        log_error("%s: not an IDX image file (want magic 0x00000803 and 3 dimensions)", x->images_path);
        rc = GB_EFORMAT;
        goto fail;
    }
    x->n = be32(hdr + 4);
    x->h = be32(hdr + 8);
    x->w = be32(hdr + 12);
    if (!x->h || !x->w || x->h > 16384 || x->w > 16384) {
        log_error("%s: record size %ux%u is not usable", x->images_path, x->w, x->h);
        rc = GB_EFORMAT;
        goto fail;
    }
    lpath = idx_file(prefix, "labels-idx1-ubyte");
    if (!lpath) {
        log_info("idx:%s: no labels file; examples are unlabelled", prefix);
        return 0;
    }
    lf = gzopen(lpath, "rb");
    uint8_t lh[8];
    if (!lf || !gz_full(lf, lh, 8) || be32(lh) != 0x00000801) {
        log_error("%s: not an IDX label file (want magic 0x00000801)", lpath);
        rc = GB_EFORMAT;
        goto fail;
    }
    if (be32(lh + 4) != x->n) {
        log_error("%s: %u labels for %llu images", lpath, be32(lh + 4), (unsigned long long)x->n);
        rc = GB_EMISMATCH;
        goto fail;
    }
    x->labels = xmalloc(x->n ? x->n : 1);
    if (!gz_full(lf, x->labels, x->n)) {
        log_error("%s: cut short (fewer than %llu labels)", lpath, (unsigned long long)x->n);
        rc = GB_ECORRUPT;
        goto fail;
    }
    gzclose(lf);
    free(lpath);
    return 0;
fail:
    if (lf) gzclose(lf);
    free(lpath);
    ing_idx_close(x);
    return rc;
}

int ing_idx_next(ing_idx_t *x, uint8_t *px, int *label) {
    if (x->next >= x->n) return GB_ENOTFOUND;
    if (!gz_full(x->img, px, (size_t)x->h * x->w)) {
        int zerr = 0;
        const char *m = gzerror(x->img, &zerr);
        log_error("%s: record %llu: file cut short or damaged (%s)", x->images_path,
                  (unsigned long long)x->next, zerr ? m : "end of file");
        return GB_ECORRUPT;
    }
    *label = x->labels ? x->labels[x->next] : -1;
    x->next++;
    return 0;
}

void ing_idx_close(ing_idx_t *x) {
    if (x->img) gzclose(x->img);
    free(x->labels);
    free(x->prefix_abs);
    free(x->images_path);
    memset(x, 0, sizeof *x);
}

static const char *const FASHION[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
static const char *const DIGITS[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

const char *const *ing_idx_classes(const char *prefix, size_t *n) {
    *n = 10;
    return strcasestr(prefix, "fashion") ? FASHION : DIGITS;
}
