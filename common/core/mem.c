/* mem.c - allocation that succeeds or aborts, and the ASSERT handler.
 *
 * Every allocation failure is reported with the size and the call site,
 * then the process aborts (see base.h for why). */
#include "base.h"
#include "log.h"

#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

_Noreturn void gb_assert_fail(const char *cond, const char *file, int line) {
    log_error("internal error: ASSERT(%s) failed at %s:%d", cond, file, line);
    abort();
}

static _Noreturn void oom(size_t n, const char *file, int line) {
    log_error("out of memory allocating %zu bytes at %s:%d", n, file, line);
    abort();
}

_Noreturn void gb_alloc_fail(const char *call, const char *file, int line) {
    log_error("out of memory (or a library failure): %s failed at %s:%d", call, file, line);
    abort();
}

void *gb_xmalloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}

void *gb_xcalloc(size_t n, size_t s, const char *file, int line) {
    void *p = calloc(n ? n : 1, s ? s : 1);
    if (!p) oom(n * s, file, line);
    return p;
}

void *gb_xrealloc(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n, file, line);
    return q;
}

char *gb_xstrdup(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = gb_xmalloc(n, file, line);
    memcpy(p, s, n);
    return p;
}

void *gb_xmalloc_aligned(size_t n) {
    void *p = NULL;
    size_t sz = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, sz ? sz : 64) != 0) oom(n, __FILE__, __LINE__);
    return p;
}

void gb_zero_lazy(void *p, size_t n) {
    uintptr_t a = (uintptr_t)p, e = a + n, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (a + pg - 1) & ~(pg - 1), hi = e & ~(pg - 1);
    if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) {
        memset(p, 0, n);
        return;
    }
    memset(p, 0, lo - a);
    memset((void *)hi, 0, e - hi);
}

double gb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double gb_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
