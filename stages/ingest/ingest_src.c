/* ingest_src.c - where gambar-ingest's images come from: an ImageFolder
 * tree (walked once, in a deterministic order, into a compact path list).
 * MNIST-format IDX files are read by common/io/idx.c.
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

/* A caption sidecar: NAME.txt right after NAME.png in the sorted listing
 * (last_png holds the previous PNG's name, or ""). Other .txt files are
 * ignored like any other file. */
static bool is_sidecar(const char *name, const char *last_png) {
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".txt") == 0 && strlen(last_png) == n &&
           strncmp(name, last_png, n - 4) == 0;
}

static void note_png(char *last_png, size_t cap, const char *name) {
    if (strlen(name) < cap) strcpy(last_png, name);
    else last_png[0] = 0;
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
    char last_png[NAME_MAX + 1] = "";
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
            note_png(last_png, sizeof last_png, name);
        } else if (is_sidecar(name, last_png)) {
            l->txt++;
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
    char last_png[NAME_MAX + 1] = "";
    uint32_t rootdir = list_add_dir(l, "", -1);
    for (size_t i = 0; i < n; i++) {
        if (names[i][0] == 'd') {
            walk(root, names[i] + 1, (int32_t)ci, 1, l);
            ci++;
        } else if (ends_png(names[i] + 1)) {
            list_push(l, rootdir, names[i] + 1);
            note_png(last_png, sizeof last_png, names[i] + 1);
        } else if (is_sidecar(names[i] + 1, last_png)) {
            l->txt++;
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
