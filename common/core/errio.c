/* errio.c - err_io_str: the reason an I/O call failed, naming a full disk
 * as such. A full file system shows up as ENOSPC (or EDQUOT), but also as
 * EIO when a library turns the short write a full disk gives into a
 * generic error (LMDB does), so the free space is looked up with statvfs
 * rather than trusting errno alone. Only called on error paths. */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#define ERRIO_LOW_BYTES (1ll << 20) /* EIO with less free than this: a full disk */

/* Free bytes (for an unprivileged writer) of the file system holding path,
 * or of its folder when path itself does not exist; -1 when unknown. */
static long long errio_free(const char *path) {
    struct statvfs v;
    if (statvfs(path, &v) == 0) return (long long)v.f_bavail * (long long)v.f_frsize;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    if (statvfs(dir, &v) == 0) return (long long)v.f_bavail * (long long)v.f_frsize;
    return -1;
}

const char *err_io_str(int rc, const char *path, char *buf, size_t len) {
    if (rc == ENOSPC || rc == EDQUOT || rc == EIO) {
        long long nfree = errio_free(path);
        if (rc != EIO || (nfree >= 0 && nfree < ERRIO_LOW_BYTES)) {
            if (nfree >= 0) snprintf(buf, len, "disk full: %s has %lld bytes free (%s)", path, nfree, strerror(rc));
            else snprintf(buf, len, "disk full: %s (%s)", path, strerror(rc));
            return buf;
        }
    }
    snprintf(buf, len, "%s", err_str(rc));
    return buf;
}
