/* afile.c - atomic file replacement (see afile.h): temp file in the same
 * folder, fsync, rename, fsync of the folder. */
#include "afile.h"

#include "base.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct afile {
    FILE *f;
    char *path; /* the final name */
    char *tmp;  /* the temporary file */
    int err;    /* first write error, 0 = none */
};

/* the folder holding path, as a new string */
static char *afile_dir(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = 0;
    else if (slash) *slash = 0;
    else strcpy(dir, ".");
    return dir;
}

int afile_open(const char *path, afile_t **out) {
    *out = NULL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base) {
        log_error("%s: cannot write: not a file name", path);
        return EISDIR;
    }
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%.*s.%s.tmp.XXXXXX", (int)(base - path), path, base);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        char why[600];
        log_error("%s: cannot create a temporary file next to it: %s", path, err_io_str(e, path, why, sizeof why));
        free(tmp);
        return e;
    }
    FILE *f = fchmod(fd, 0644) == 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int e = errno;
        log_error("%s: cannot open its temporary file %s: %s", path, tmp, strerror(e));
        close(fd);
        unlink(tmp);
        free(tmp);
        return e;
    }
    afile_t *a = xcalloc(1, sizeof *a);
    a->f = f;
    a->path = xstrdup(path);
    a->tmp = tmp;
    *out = a;
    return 0;
}

FILE *afile_stream(afile_t *a) { return a->f; }

int afile_write(afile_t *a, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, a->f) != n && !a->err) a->err = errno ? errno : EIO;
    return a->err;
}

static void afile_free(afile_t **pa) {
    free((*pa)->path);
    free((*pa)->tmp);
    free(*pa);
    *pa = NULL;
}

int afile_commit(afile_t **pa) {
    afile_t *a = *pa;
    int e = a->err;
    const char *op = "write";
    if (!e && (fflush(a->f) != 0 || ferror(a->f))) e = errno ? errno : EIO;
    if (!e && fsync(fileno(a->f)) != 0) e = errno, op = "fsync";
    if (fclose(a->f) != 0 && !e) e = errno, op = "close";
    if (!e && rename(a->tmp, a->path) != 0) e = errno, op = "rename";
    if (e) {
        char why[600];
        log_error("%s: cannot %s: %s", a->path, op, err_io_str(e, a->path, why, sizeof why));
        unlink(a->tmp);
        afile_free(pa);
        return e;
    }
    char *dir = afile_dir(a->path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        e = errno;
        log_error("%s: fsync of its folder %s: %s", a->path, dir, strerror(e));
    }
    if (fd >= 0) close(fd);
    free(dir);
    afile_free(pa);
    return e;
}

void afile_abort(afile_t **pa) {
    if (!pa || !*pa) return;
    fclose((*pa)->f);
    unlink((*pa)->tmp);
    afile_free(pa);
}

int afile_write_all(const char *path, const void *data, size_t n) {
    afile_t *a;
    int rc = afile_open(path, &a);
    if (rc) return rc;
    afile_write(a, data, n);
    return afile_commit(&a);
}
