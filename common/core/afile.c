/* afile.c - atomic file replacement (see afile.h): temp file in the same
 * folder, write(2) or a stdio stream, fsync, rename, fsync of the folder.
 * Every I/O call goes through an af_* wrapper that the test hook
 * (afile_test_fail_at) can make fail. */
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
    int fd;     /* the temporary file */
    FILE *f;    /* stdio stream over fd once afile_stream was called, else NULL */
    char *path; /* the final name */
    char *tmp;  /* the temporary file's name */
    int err;    /* first write error, 0 = none */
};

/* ============================ Test hook ================================ */

static int g_fail_at;      /* 1-based index of the I/O call to fail; 0 = off */
static int g_io_calls;     /* injectable calls since afile_test_fail_at */
static int g_short_writes; /* 1: each write(2) writes about half of what it is asked */

void afile_test_fail_at(int k) {
    __atomic_store_n(&g_fail_at, k > 0 ? k : 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_io_calls, 0, __ATOMIC_SEQ_CST);
}

void afile_test_short_writes(int on) {
    __atomic_store_n(&g_short_writes, on ? 1 : 0, __ATOMIC_SEQ_CST);
}

int afile_test_io_calls(void) {
    return __atomic_load_n(&g_io_calls, __ATOMIC_SEQ_CST);
}

/* Count one I/O call; true (errno = EIO) when the hook says it must fail. */
static bool af_fault(void) {
    int n = __atomic_add_fetch(&g_io_calls, 1, __ATOMIC_SEQ_CST);
    int k = __atomic_load_n(&g_fail_at, __ATOMIC_SEQ_CST);
    if (k > 0 && n == k) {
        errno = EIO;
        return true;
    }
    return false;
}

static ssize_t af_write(int fd, const void *p, size_t n) {
    if (af_fault()) return -1;
    if (__atomic_load_n(&g_short_writes, __ATOMIC_SEQ_CST) && n > 1) n = n / 2 + 1;
    ssize_t w;
    do w = write(fd, p, n);
    while (w < 0 && errno == EINTR);
    return w;
}

static int af_fsync(int fd) {
    if (af_fault()) return -1;
    return fsync(fd);
}

/* close(2) (or fclose) is counted too: on some file systems (NFS) it is
 * where a deferred write error surfaces. Released either way. */
static int af_close(int fd, FILE *f) {
    if (af_fault()) {
        if (f) fclose(f); else close(fd);
        errno = EIO;
        return -1;
    }
    return f ? fclose(f) : close(fd);
}

static int af_rename(const char *from, const char *to) {
    if (af_fault()) return -1;
    return rename(from, to);
}

/* ============================== Writing ================================ */

/* the folder holding path, as a new string */
static char *afile_dir(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = 0;
    else if (slash) *slash = 0;
    else strcpy(dir, ".");
    return dir;
}

/* Create the temporary file: tmp as given (created or truncated), or
 * ".BASE.tmp.XXXXXX" next to path when tmp is NULL. */
static int afile_start(const char *path, const char *tmp_name, afile_t **out) {
    *out = NULL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base) {
        log_error("%s: cannot write: not a file name", path);
        return EISDIR;
    }
    char *tmp;
    int fd;
    if (tmp_name) {
        tmp = xstrdup(tmp_name);
        if (af_fault()) fd = -1;
        else do fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            while (fd < 0 && errno == EINTR);
    } else {
        size_t n = strlen(path) + 32;
        tmp = xmalloc(n);
        snprintf(tmp, n, "%.*s.%s.tmp.XXXXXX", (int)(base - path), path, base);
        fd = af_fault() ? -1 : mkostemp(tmp, O_CLOEXEC);
        if (fd >= 0 && fchmod(fd, 0644) != 0) {
            int e = errno;
            log_error("%s: cannot set the mode of its temporary file %s: %s", path, tmp, strerror(e));
            close(fd);
            unlink(tmp);
            free(tmp);
            return e;
        }
    }
    if (fd < 0) {
        int e = errno;
        char why[600];
        log_error("%s: cannot create a temporary file next to it: %s", path, err_io_str(e, path, why, sizeof why));
        free(tmp);
        return e;
    }
    afile_t *a = xcalloc(1, sizeof *a);
    a->fd = fd;
    a->path = xstrdup(path);
    a->tmp = tmp;
    *out = a;
    return 0;
}

int afile_open(const char *path, afile_t **out) {
    return afile_start(path, NULL, out);
}

int afile_open_tmp(const char *path, const char *tmp, afile_t **out) {
    return afile_start(path, tmp, out);
}

FILE *afile_stream(afile_t *a) {
    if (!a->f) {
        a->f = fdopen(a->fd, "w");
        ASSERT(a->f); /* fails only for lack of memory: succeed or die, as xmalloc */
    }
    return a->f;
}

int afile_write(afile_t *a, const void *data, size_t n) {
    if (a->err || !n) return a->err;
    if (a->f) {
        if (fwrite(data, 1, n, a->f) != n) a->err = errno ? errno : EIO;
        return a->err;
    }
    const char *p = data;
    while (n > 0) {
        ssize_t w = af_write(a->fd, p, n);
        if (w < 0 || w == 0) { /* 0 cannot happen for a regular file; do not spin */
            a->err = w < 0 && errno ? errno : EIO;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
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
    if (!e && a->f && ((af_fault() || fflush(a->f) != 0) || ferror(a->f))) e = errno ? errno : EIO;
    if (!e && af_fsync(a->fd) != 0) e = errno, op = "fsync";
    if (af_close(a->fd, a->f) != 0 && !e) e = errno, op = "close";
    if (!e && af_rename(a->tmp, a->path) != 0) e = errno, op = "rename";
    if (e) {
        char why[600];
        log_error("%s: cannot %s: %s", a->path, op, err_io_str(e, a->path, why, sizeof why));
        unlink(a->tmp);
        afile_free(pa);
        return e;
    }
    char *dir = afile_dir(a->path);
    int fd = af_fault() ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || af_fsync(fd) != 0) {
        e = errno ? errno : EIO;
        /* The new name may or may not survive a crash: withdraw it so
         * what readers see matches the failure the caller is told. */
        int u = unlink(a->path) == 0 || errno == ENOENT;
        log_error("%s: fsync of its folder %s: %s; %s", a->path, dir, strerror(e),
                  u ? "the file was withdrawn" : "the file could not be withdrawn");
    }
    if (fd >= 0) close(fd);
    free(dir);
    afile_free(pa);
    return e;
}

void afile_abort(afile_t **pa) {
    if (!pa || !*pa) return;
    if ((*pa)->f) fclose((*pa)->f);
    else close((*pa)->fd);
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
