/* base.h - the prelude every gambar source includes first.
 *
 * System headers used everywhere, the always-on ASSERT for our own bugs
 * (external faults are return codes, see err.h), and allocation helpers
 * that never return NULL: running out of memory in a stage is not a
 * condition we try to survive (Redis' zmalloc stance). */
#ifndef GB_BASE_H
#define GB_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))
#define GB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GB_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ASSERT stays on in release builds: it guards invariants of our own code
 * (shape mismatch, impossible state), never outside input. */
#define ASSERT(c) \
    do { if (!(c)) gb_assert_fail(#c, __FILE__, __LINE__); } while (0)
_Noreturn void gb_assert_fail(const char *cond, const char *file, int line);

/* For library calls that fail only when they cannot allocate (OpenSSL's
 * digest calls): abort with "out of memory", the call, file and line. */
#define ASSERT_ALLOC(c) \
    do { if (!(c)) gb_alloc_fail(#c, __FILE__, __LINE__); } while (0)
_Noreturn void gb_alloc_fail(const char *call, const char *file, int line);

/* Allocate or abort with size, file and line. Never return NULL
 * (xmalloc(0) returns a unique pointer). Free with free(). */
#define xmalloc(n) gb_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(n, s) gb_xcalloc((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) gb_xrealloc((p), (n), __FILE__, __LINE__)
#define xstrdup(s) gb_xstrdup((s), __FILE__, __LINE__)
void *gb_xmalloc(size_t n, const char *file, int line);
void *gb_xcalloc(size_t n, size_t s, const char *file, int line);
void *gb_xrealloc(void *p, size_t n, const char *file, int line);
char *gb_xstrdup(const char *s, const char *file, int line);

/* Aligned (64-byte) allocation for tensors; free with free(). */
void *gb_xmalloc_aligned(size_t n);
/* Zero n bytes of heap memory at p without making them resident: the
 * whole pages inside are handed back to the kernel (madvise
 * MADV_DONTNEED: they read as zeros and cost no RSS until written), the
 * partial pages at the ends are cleared. For large buffers that a program
 * allocates early and fills much later (a model's activations while a
 * checkpoint is being loaded). p must come from malloc/gb_xmalloc_aligned
 * (private anonymous memory). */
void gb_zero_lazy(void *p, size_t n);

/* Monotonic clock in seconds. */
double gb_now(void);
/* Wall clock in seconds since the Unix epoch. */
double gb_wall(void);

#endif
