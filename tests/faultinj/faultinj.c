/* faultinj.c - LD_PRELOAD library that fails the k-th call of chosen libc
 * functions, for the fault-injection loops of tests/t_faultinj.sh.
 *
 * Why: the stages promise that an I/O or memory failure at any moment ends
 * with a named error and nothing half-written (temp file + fsync + rename,
 * LMDB transactions). A full disk or a failing fsync cannot be arranged on
 * demand, so this library pretends: the k-th matching call fails with a
 * chosen errno, and a loop over k = 1, 2, ... visits every failure point.
 *
 * Environment:
 *   FAULTINJ_FN     comma list of functions or groups to count (unset: the
 *                   library does nothing). Functions: write pwrite writev
 *                   pwritev fsync fdatasync msync rename renameat renameat2
 *                   open openat creat mkstemp mkostemp mkstemps mkostemps
 *                   malloc calloc realloc posix_memalign aligned_alloc
 *                   mmap ftruncate fopen fflush fclose (the *64 variants
 *                   count as their base name). Groups: writes (write
 *                   pwrite writev pwritev fflush fclose),
 *                   syncs (fsync fdatasync msync), renames, opens (every
 *                   open-like call), allocs (every allocator).
 *   FAULTINJ_K      fail the k-th matching call (1-based); unset or 0: only
 *                   count.
 *   FAULTINJ_STICKY 1: also fail every matching call after the k-th (a disk
 *                   that stays full).
 *   FAULTINJ_ERRNO  errno name (ENOSPC, EIO, EDQUOT, ENOMEM, EACCES, EROFS,
 *                   EFBIG, EPERM, EXDEV, EMFILE, EINTR, EAGAIN) or number;
 *                   default EIO (allocators always fail with ENOMEM).
 *   FAULTINJ_PATH   count only calls on files whose absolute path starts
 *                   with this prefix (fd-based calls are resolved through
 *                   /proc/self/fd, so writes to stderr or a socket are not
 *                   counted). Allocations and anonymous mmap have no path
 *                   and are counted only when FAULTINJ_PATH is unset.
 *   FAULTINJ_BACKTRACE=1  also print the call stack when firing.
 *   FAULTINJ_COUNT_FILE  at normal exit, the number of matching calls seen
 *                   is written there ("N\n"): the loop's upper bound.
 * Only open calls that can write (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC), the
 * mkstemp family and fopen with a writing mode count as "open".
 * stdio writes go through libc-internal calls that cannot be interposed,
 * so a full disk under stdio is simulated at fflush/fclose of a stream
 * open for writing: fflush fails without flushing, fclose closes the
 * stream and then reports the failure (a deferred write error).
 *
 * When it fires it writes one line to stderr:
 *   faultinj: failing write #17 on /path/file with ENOSPC
 *
 * Constraints: the wrappers never allocate and never call wrapped
 * functions themselves (raw syscalls for the log line, __libc_malloc & co.
 * for the allocators, so that resolving symbols with dlsym, which may call
 * calloc, cannot recurse). Calls made before main starts (the libraries'
 * constructors) are passed through uncounted. Counting is atomic, so threads are safe,
 * though which thread's call is "the k-th" depends on scheduling. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- configuration --------------------------------------------------- */

enum {
    F_WRITE, F_PWRITE, F_WRITEV, F_PWRITEV, F_FSYNC, F_FDATASYNC, F_MSYNC,
    F_RENAME, F_RENAMEAT, F_RENAMEAT2, F_OPEN, F_OPENAT, F_CREAT, F_MKSTEMP,
    F_MKOSTEMP, F_MKSTEMPS, F_MKOSTEMPS, F_MALLOC, F_CALLOC, F_REALLOC,
    F_POSIX_MEMALIGN, F_ALIGNED_ALLOC, F_MMAP, F_FTRUNCATE, F_FOPEN, F_FFLUSH, F_FCLOSE, F_COUNT
};
static const char *const fn_names[F_COUNT] = {
    "write", "pwrite", "writev", "pwritev", "fsync", "fdatasync", "msync",
    "rename", "renameat", "renameat2", "open", "openat", "creat", "mkstemp",
    "mkostemp", "mkstemps", "mkostemps", "malloc", "calloc", "realloc",
    "posix_memalign", "aligned_alloc", "mmap", "ftruncate", "fopen", "fflush", "fclose"};
#define BIT(f) ((uint32_t)1 << (f))
static const struct { const char *name; uint32_t mask; } groups[] = {
    {"writes", BIT(F_WRITE) | BIT(F_PWRITE) | BIT(F_WRITEV) | BIT(F_PWRITEV) | BIT(F_FFLUSH) | BIT(F_FCLOSE)},
    {"syncs", BIT(F_FSYNC) | BIT(F_FDATASYNC) | BIT(F_MSYNC)},
    {"renames", BIT(F_RENAME) | BIT(F_RENAMEAT) | BIT(F_RENAMEAT2)},
    {"opens", BIT(F_OPEN) | BIT(F_OPENAT) | BIT(F_CREAT) | BIT(F_MKSTEMP) | BIT(F_MKOSTEMP) |
                  BIT(F_MKSTEMPS) | BIT(F_MKOSTEMPS) | BIT(F_FOPEN)},
    {"allocs", BIT(F_MALLOC) | BIT(F_CALLOC) | BIT(F_REALLOC) | BIT(F_POSIX_MEMALIGN) |
                   BIT(F_ALIGNED_ALLOC)},
};
static const struct { const char *name; int val; } errnos[] = {
    {"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EDQUOT", EDQUOT}, {"ENOMEM", ENOMEM},
    {"EACCES", EACCES}, {"EROFS", EROFS}, {"EFBIG", EFBIG}, {"EPERM", EPERM},
    {"EXDEV", EXDEV}, {"EMFILE", EMFILE}, {"EINTR", EINTR}, {"EAGAIN", EAGAIN},
};

static int g_ready;          /* 1 once main started (and the environment was parsed) */
static int g_backtrace;      /* FAULTINJ_BACKTRACE=1: print the call stack when firing */
static uint32_t g_mask;      /* functions counted */
static unsigned long g_k;    /* call to fail, 0: none */
static int g_sticky;
static int g_parsed;         /* the constructor parsed FAULTINJ_FN */
static int g_errno = EIO;
static char g_prefix[4096];  /* "" : every path */
static size_t g_prefix_len;
static char g_count_file[4096];
static unsigned long g_calls; /* matching calls so far (atomic) */

/* ---- helpers that allocate nothing and call no wrapped function ------- */

static void raw_write(int fd, const char *s, size_t n) {
    while (n) {
        long w = syscall(SYS_write, fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* Append s to buf (capacity cap, always NUL-terminated). */
static void cat(char *buf, size_t cap, const char *s) {
    size_t l = strlen(buf), n = strlen(s);
    if (l + 1 >= cap) return;
    if (n > cap - 1 - l) n = cap - 1 - l;
    memcpy(buf + l, s, n);
    buf[l + n] = '\0';
}

static void utoa(unsigned long v, char out[24]) {
    char t[24];
    int i = 0;
    do t[i++] = (char)('0' + v % 10), v /= 10; while (v);
    for (int j = 0; j < i; j++) out[j] = t[i - 1 - j];
    out[i] = '\0';
}

static const char *errno_name(int e) {
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (errnos[i].val == e) return errnos[i].name;
    return NULL;
}

/* The absolute path of fd into out ("" when unknown). */
static void fd_path(int fd, char *out, size_t cap) {
    char link[48] = "/proc/self/fd/", num[24];
    out[0] = '\0';
    if (fd < 0) return;
    utoa((unsigned long)fd, num);
    cat(link, sizeof link, num);
    long n = syscall(SYS_readlink, link, out, cap - 1);
    out[n > 0 ? n : 0] = '\0';
}

/* path made absolute against dirfd (AT_FDCWD: the working folder). */
static void abs_path(int dirfd, const char *path, char *out, size_t cap) {
    out[0] = '\0';
    if (!path) return;
    if (path[0] != '/') {
        if (dirfd == AT_FDCWD) {
            if (syscall(SYS_getcwd, out, cap) < 0) out[0] = '\0';
        } else {
            fd_path(dirfd, out, cap);
        }
        cat(out, cap, "/");
    }
    cat(out, cap, path);
}

static bool path_matches(const char *p) {
    return g_prefix_len == 0 || strncmp(p, g_prefix, g_prefix_len) == 0;
}

/* The one stderr line saying what fails (kept out of should_fail so that
 * the allocators' stack frames stay small). */
__attribute__((noinline)) static void log_fire(int f, unsigned long n, const char *path,
                                                const char *path2) {
    char line[8400] = "faultinj: failing ", num[24];
    cat(line, sizeof line, fn_names[f]);
    cat(line, sizeof line, " #");
    utoa(n, num);
    cat(line, sizeof line, num);
    if (path) {
        cat(line, sizeof line, " on ");
        cat(line, sizeof line, path);
        if (path2 && path2[0]) {
            cat(line, sizeof line, " -> ");
            cat(line, sizeof line, path2);
        }
    }
    cat(line, sizeof line, " with ");
    int e = (f >= F_MALLOC && f <= F_ALIGNED_ALLOC) ? ENOMEM : g_errno;
    const char *en = errno_name(e);
    if (en) {
        cat(line, sizeof line, en);
    } else {
        utoa((unsigned long)e, num);
        cat(line, sizeof line, num);
    }
    cat(line, sizeof line, "\n");
    raw_write(2, line, strlen(line));
    if (g_backtrace) {
        void *frames[32];
        int nf = backtrace(frames, 32);
        backtrace_symbols_fd(frames, nf, 2);
    }
}

/* Decide whether this call of f on path (may be "" or NULL: no path)
 * fails. Counts it when it matches. On failure logs the line and returns
 * true; the caller sets errno and returns its failure value. */
static bool should_fail(int f, const char *path, const char *path2) {
    if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE) || !(g_mask & BIT(f))) return false;
    bool has_path = (path && path[0]) || (path2 && path2[0]);
    if (g_prefix_len) {
        if (!has_path) return false;
        if (!(path && path[0] && path_matches(path)) && !(path2 && path2[0] && path_matches(path2)))
            return false;
    }
    unsigned long n = __atomic_add_fetch(&g_calls, 1, __ATOMIC_SEQ_CST);
    if (g_k == 0 || n < g_k || (n > g_k && !g_sticky)) return false;
    log_fire(f, n, has_path ? (path && path[0] ? path : "?") : NULL, path2);
    return true;
}

static int fail_errno(int f) {
    return (f >= F_MALLOC && f <= F_ALIGNED_ALLOC) ? ENOMEM : g_errno;
}

__attribute__((constructor)) static void faultinj_init(void) {
    const char *fn = getenv("FAULTINJ_FN");
    if (!fn || !*fn) return;
    const char *p = fn;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char name[32] = "";
        if (l < sizeof name) memcpy(name, p, l), name[l] = '\0';
        size_t nl = strlen(name);
        if (nl > 2 && strcmp(name + nl - 2, "64") == 0) name[nl - 2] = '\0'; /* open64 -> open */
        bool known = false;
        for (int f = 0; f < F_COUNT; f++)
            if (strcmp(name, fn_names[f]) == 0) g_mask |= BIT(f), known = true;
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
            if (strcmp(name, groups[g].name) == 0) g_mask |= groups[g].mask, known = true;
        if (!known) {
            const char *m = "faultinj: unknown function in FAULTINJ_FN: ";
            raw_write(2, m, strlen(m));
            raw_write(2, p, l);
            raw_write(2, "\n", 1);
            _exit(99);
        }
        p = e ? e + 1 : p + l;
    }
    const char *k = getenv("FAULTINJ_K");
    if (k) g_k = strtoul(k, NULL, 10);
    const char *st = getenv("FAULTINJ_STICKY");
    g_sticky = st && strcmp(st, "1") == 0;
    const char *en = getenv("FAULTINJ_ERRNO");
    if (en && *en) {
        g_errno = 0;
        for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
            if (strcmp(en, errnos[i].name) == 0) g_errno = errnos[i].val;
        if (!g_errno) g_errno = atoi(en);
        if (g_errno <= 0) g_errno = EIO;
    }
    const char *pre = getenv("FAULTINJ_PATH");
    if (pre && *pre) {
        /* canonical form, as /proc/self/fd shows it */
        if (!realpath(pre, g_prefix)) {
            g_prefix[0] = '\0';
            cat(g_prefix, sizeof g_prefix, pre);
        }
        g_prefix_len = strlen(g_prefix);
    }
    const char *cf = getenv("FAULTINJ_COUNT_FILE");
    if (cf) cat(g_count_file, sizeof g_count_file, cf);
    const char *bt = getenv("FAULTINJ_BACKTRACE");
    g_backtrace = bt && strcmp(bt, "1") == 0;
    g_parsed = 1;
}

/* Counting starts when main does: allocations and files of the libraries'
 * constructors (OpenBLAS, OpenSSL) are not the program's, and a failure
 * there is no error path of ours to test. */
typedef int (*main_fn)(int, char **, char **);
static main_fn g_main;
static int wrapped_main(int argc, char **argv, char **envp) {
    if (g_parsed) __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
    return g_main(argc, argv, envp);
}
int __libc_start_main(main_fn m, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end);
int __libc_start_main(main_fn m, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end) {
    int (*real)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *) =
        (int (*)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *))dlsym(
            RTLD_NEXT, "__libc_start_main");
    g_main = m;
    return real(wrapped_main, argc, argv, init, fini, rtld_fini, stack_end);
}

__attribute__((destructor)) static void faultinj_fini(void) {
    if (!g_ready || !g_count_file[0]) return;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, g_count_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char num[24];
    utoa(__atomic_load_n(&g_calls, __ATOMIC_SEQ_CST), num);
    cat(num, sizeof num, "\n");
    raw_write(fd, num, strlen(num));
    syscall(SYS_close, fd);
}

/* ---- the real functions ------------------------------------------------ */

#define REAL(ret, name, params)                                      \
    static ret(*real_##name) params;                                 \
    static ret(*get_##name(void)) params {                           \
        if (!real_##name) real_##name = (ret(*) params)dlsym(RTLD_NEXT, #name); \
        return real_##name;                                          \
    }

REAL(ssize_t, write, (int, const void *, size_t))
REAL(ssize_t, pwrite, (int, const void *, size_t, off_t))
REAL(ssize_t, pwrite64, (int, const void *, size_t, off_t))
REAL(ssize_t, writev, (int, const struct iovec *, int))
REAL(ssize_t, pwritev, (int, const struct iovec *, int, off_t))
REAL(ssize_t, pwritev64, (int, const struct iovec *, int, off_t))
REAL(int, fsync, (int))
REAL(int, fdatasync, (int))
REAL(int, msync, (void *, size_t, int))
REAL(int, rename, (const char *, const char *))
REAL(int, renameat, (int, const char *, int, const char *))
REAL(int, renameat2, (int, const char *, int, const char *, unsigned))
REAL(int, open, (const char *, int, ...))
REAL(int, open64, (const char *, int, ...))
REAL(int, openat, (int, const char *, int, ...))
REAL(int, openat64, (int, const char *, int, ...))
REAL(int, creat, (const char *, mode_t))
REAL(int, creat64, (const char *, mode_t))
REAL(int, mkstemp, (char *))
REAL(int, mkstemp64, (char *))
REAL(int, mkostemp, (char *, int))
REAL(int, mkostemp64, (char *, int))
REAL(int, mkstemps, (char *, int))
REAL(int, mkstemps64, (char *, int))
REAL(int, mkostemps, (char *, int, int))
REAL(int, mkostemps64, (char *, int, int))
REAL(void *, mmap, (void *, size_t, int, int, int, off_t))
REAL(void *, mmap64, (void *, size_t, int, int, int, off_t))
REAL(int, ftruncate, (int, off_t))
REAL(int, ftruncate64, (int, off_t))
REAL(FILE *, fopen, (const char *, const char *))
REAL(FILE *, fopen64, (const char *, const char *))
REAL(int, fflush, (FILE *))
REAL(int, fclose, (FILE *))
REAL(int, posix_memalign, (void **, size_t, size_t))
REAL(void *, aligned_alloc, (size_t, size_t))

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

#define PATHBUF 4096

/* ---- fd-based calls ---------------------------------------------------- */

static bool fd_fail(int f, int fd) {
    if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE) || !(g_mask & BIT(f))) return false;
    char p[PATHBUF];
    fd_path(fd, p, sizeof p);
    if (!should_fail(f, p, NULL)) return false;
    errno = fail_errno(f);
    return true;
}

ssize_t write(int fd, const void *b, size_t n) {
    if (fd_fail(F_WRITE, fd)) return -1;
    return get_write()(fd, b, n);
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) {
    if (fd_fail(F_PWRITE, fd)) return -1;
    return get_pwrite()(fd, b, n, o);
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) {
    if (fd_fail(F_PWRITE, fd)) return -1;
    return get_pwrite64()(fd, b, n, o);
}
ssize_t writev(int fd, const struct iovec *v, int n) {
    if (fd_fail(F_WRITEV, fd)) return -1;
    return get_writev()(fd, v, n);
}
ssize_t pwritev(int fd, const struct iovec *v, int n, off_t o) {
    if (fd_fail(F_PWRITEV, fd)) return -1;
    return get_pwritev()(fd, v, n, o);
}
ssize_t pwritev64(int fd, const struct iovec *v, int n, off_t o) {
    if (fd_fail(F_PWRITEV, fd)) return -1;
    return get_pwritev64()(fd, v, n, o);
}
int fsync(int fd) {
    if (fd_fail(F_FSYNC, fd)) return -1;
    return get_fsync()(fd);
}
int fdatasync(int fd) {
    if (fd_fail(F_FDATASYNC, fd)) return -1;
    return get_fdatasync()(fd);
}
int ftruncate(int fd, off_t len) {
    if (fd_fail(F_FTRUNCATE, fd)) return -1;
    return get_ftruncate()(fd, len);
}
int ftruncate64(int fd, off_t len) {
    if (fd_fail(F_FTRUNCATE, fd)) return -1;
    return get_ftruncate64()(fd, len);
}

/* msync has an address, not an fd: the mapping's file is looked up in
 * /proc/self/maps only when a path filter is set. */
static void addr_path(const void *addr, char *out, size_t cap) {
    out[0] = '\0';
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[8192];
    size_t have = 0;
    uintptr_t a = (uintptr_t)addr;
    for (;;) {
        long r = syscall(SYS_read, fd, buf + have, sizeof buf - 1 - have);
        if (r <= 0) break;
        have += (size_t)r;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            uintptr_t lo = (uintptr_t)strtoull(line, NULL, 16);
            char *dash = strchr(line, '-');
            uintptr_t hi = dash ? (uintptr_t)strtoull(dash + 1, NULL, 16) : 0;
            if (a >= lo && a < hi) {
                char *slash = strchr(line, '/');
                if (slash) cat(out, cap, slash);
                syscall(SYS_close, fd);
                return;
            }
            line = nl + 1;
        }
        have = strlen(line);
        memmove(buf, line, have);
    }
    syscall(SYS_close, fd);
}

int msync(void *addr, size_t len, int flags) {
    if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE) && (g_mask & BIT(F_MSYNC))) {
        char p[PATHBUF];
        addr_path(addr, p, sizeof p);
        if (should_fail(F_MSYNC, p, NULL)) {
            errno = g_errno;
            return -1;
        }
    }
    return get_msync()(addr, len, flags);
}

static bool mmap_fail(int fd) {
    if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE) || !(g_mask & BIT(F_MMAP))) return false;
    char p[PATHBUF];
    fd_path(fd, p, sizeof p);
    if (!should_fail(F_MMAP, p, NULL)) return false;
    errno = g_errno;
    return true;
}
void *mmap(void *a, size_t n, int prot, int fl, int fd, off_t o) {
    if (mmap_fail(fl & MAP_ANONYMOUS ? -1 : fd)) return MAP_FAILED;
    return get_mmap()(a, n, prot, fl, fd, o);
}
void *mmap64(void *a, size_t n, int prot, int fl, int fd, off_t o) {
    if (mmap_fail(fl & MAP_ANONYMOUS ? -1 : fd)) return MAP_FAILED;
    return get_mmap64()(a, n, prot, fl, fd, o);
}

/* ---- path-based calls -------------------------------------------------- */

static bool path_fail(int f, int dirfd, const char *path, int dirfd2, const char *path2) {
    if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE) || !(g_mask & BIT(f))) return false;
    char a[PATHBUF], b[PATHBUF];
    abs_path(dirfd, path, a, sizeof a);
    abs_path(dirfd2, path2, b, sizeof b);
    if (!should_fail(f, a, b)) return false;
    errno = g_errno;
    return true;
}

int rename(const char *from, const char *to) {
    if (path_fail(F_RENAME, AT_FDCWD, from, AT_FDCWD, to)) return -1;
    return get_rename()(from, to);
}
int renameat(int fd1, const char *from, int fd2, const char *to) {
    if (path_fail(F_RENAMEAT, fd1, from, fd2, to)) return -1;
    return get_renameat()(fd1, from, fd2, to);
}
int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned fl) {
    if (path_fail(F_RENAMEAT2, fd1, from, fd2, to)) return -1;
    return get_renameat2()(fd1, from, fd2, to, fl);
}

static bool opens_for_writing(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC));
}
static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    if (opens_for_writing(flags) && path_fail(F_OPEN, AT_FDCWD, path, AT_FDCWD, NULL)) return -1;
    return get_open()(path, flags, m);
}
int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    if (opens_for_writing(flags) && path_fail(F_OPEN, AT_FDCWD, path, AT_FDCWD, NULL)) return -1;
    return get_open64()(path, flags, m);
}
int openat(int dfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    if (opens_for_writing(flags) && path_fail(F_OPENAT, dfd, path, AT_FDCWD, NULL)) return -1;
    return get_openat()(dfd, path, flags, m);
}
int openat64(int dfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    if (opens_for_writing(flags) && path_fail(F_OPENAT, dfd, path, AT_FDCWD, NULL)) return -1;
    return get_openat64()(dfd, path, flags, m);
}
int creat(const char *path, mode_t m) {
    if (path_fail(F_CREAT, AT_FDCWD, path, AT_FDCWD, NULL)) return -1;
    return get_creat()(path, m);
}
int creat64(const char *path, mode_t m) {
    if (path_fail(F_CREAT, AT_FDCWD, path, AT_FDCWD, NULL)) return -1;
    return get_creat64()(path, m);
}
int mkstemp(char *t) {
    if (path_fail(F_MKSTEMP, AT_FDCWD, t, AT_FDCWD, NULL)) return -1;
    return get_mkstemp()(t);
}
int mkstemp64(char *t) {
    if (path_fail(F_MKSTEMP, AT_FDCWD, t, AT_FDCWD, NULL)) return -1;
    return get_mkstemp64()(t);
}
int mkostemp(char *t, int fl) {
    if (path_fail(F_MKOSTEMP, AT_FDCWD, t, AT_FDCWD, NULL)) return -1;
    return get_mkostemp()(t, fl);
}
int mkostemp64(char *t, int fl) {
    if (path_fail(F_MKOSTEMP, AT_FDCWD, t, AT_FDCWD, NULL)) return -1;
    return get_mkostemp64()(t, fl);
}
int mkstemps(char *t, int s) {
    if (path_fail(F_MKSTEMPS, AT_FDCWD, t, AT_FDCWD, NULL)) return -1;
    return get_mkstemps()(t, s);
}
int mkstemps64(char *t, int s) {
    if (path_fail(F_MKSTEMPS, AT_FDCWD, t, AT_FDCWD, NULL)) return -1;
    return get_mkstemps64()(t, s);
}
int mkostemps(char *t, int s, int fl) {
    if (path_fail(F_MKOSTEMPS, AT_FDCWD, t, AT_FDCWD, NULL)) return -1;
    return get_mkostemps()(t, s, fl);
}
int mkostemps64(char *t, int s, int fl) {
    if (path_fail(F_MKOSTEMPS, AT_FDCWD, t, AT_FDCWD, NULL)) return -1;
    return get_mkostemps64()(t, s, fl);
}

/* ---- stdio ----------------------------------------------------------- */

static bool fopen_fail(const char *path, const char *mode) {
    if (!mode || !(strchr(mode, 'w') || strchr(mode, 'a') || strchr(mode, '+'))) return false;
    return path_fail(F_FOPEN, AT_FDCWD, path, AT_FDCWD, NULL);
}
FILE *fopen(const char *path, const char *mode) {
    if (fopen_fail(path, mode)) return NULL;
    return get_fopen()(path, mode);
}
FILE *fopen64(const char *path, const char *mode) {
    if (fopen_fail(path, mode)) return NULL;
    return get_fopen64()(path, mode);
}
static bool stream_fail(int f, FILE *s) {
    if (!s || !__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE) || !(g_mask & BIT(f))) return false;
    int fd = fileno(s), fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
    if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) return false;
    return fd_fail(f, fd);
}
int fflush(FILE *s) {
    if (stream_fail(F_FFLUSH, s)) return EOF;
    return get_fflush()(s);
}
int fclose(FILE *s) {
    if (stream_fail(F_FCLOSE, s)) {
        int e = errno;
        get_fclose()(s);
        errno = e;
        return EOF;
    }
    return get_fclose()(s);
}

/* ---- allocators (no dlsym: glibc's __libc_* entry points) -------------- */

void *malloc(size_t n) {
    if (should_fail(F_MALLOC, NULL, NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t s) {
    if (should_fail(F_CALLOC, NULL, NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, s);
}
void *realloc(void *p, size_t n) {
    /* realloc(p, 0) frees: not an allocation that can fail */
    if ((n || !p) && should_fail(F_REALLOC, NULL, NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}
int posix_memalign(void **out, size_t al, size_t n) {
    if (should_fail(F_POSIX_MEMALIGN, NULL, NULL)) return ENOMEM;
    return get_posix_memalign()(out, al, n);
}
void *aligned_alloc(size_t al, size_t n) {
    if (should_fail(F_ALIGNED_ALLOC, NULL, NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    return get_aligned_alloc()(al, n);
}
