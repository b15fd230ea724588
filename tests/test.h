/* test.h - the tiny harness every C test program uses.
 *
 * A test program is a list of void functions run by RUN(fn). Each prints
 * "ok NAME" or "not ok NAME" on stdout (tests/run.sh counts them), or
 * "skip NAME (reason)" when the test calls SKIP(reason);
 * CHECK failures print file:line and the condition on stderr. main()
 * ends with `return test_done();`, which prints "N passed, N failed" and
 * returns non-zero when anything failed (compile with -D_GNU_SOURCE, as
 * the Makefile does: test_done removes the temporary folder with nftw).
 * Tests find their data through
 * test_golden_dir() and test_tmpdir() (removed by test_done when all
 * passed). */
#ifndef GB_TEST_H
#define GB_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

static int t_cur_failed, t_passed, t_failed, t_skipped;
static const char *t_skip_reason;

#define CHECK(c)                                                                      \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);     \
            t_cur_failed++;                                                           \
        }                                                                             \
    } while (0)

#define CHECKF(c, ...)                                                                \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #c);     \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
            t_cur_failed++;                                                           \
        }                                                                             \
    } while (0)

static inline void t_run(const char *name, void (*fn)(void)) {
    const char *only = getenv("TEST_ONLY");
    if (only && *only && !strstr(name, only)) return;
    t_cur_failed = 0;
    t_skip_reason = NULL;
    fn();
    fflush(stderr);
    if (t_skip_reason && !t_cur_failed) {
        t_skipped++;
        printf("skip %s (%s)\n", name, t_skip_reason);
    } else if (t_cur_failed) {
        t_failed++;
        printf("not ok %s\n", name);
    } else {
        t_passed++;
        printf("ok %s\n", name);
    }
    fflush(stdout);
}
#define RUN(fn) t_run(#fn, fn)

/* Inside a test: it cannot run here (reason: a static string, e.g. what
 * is missing); the test then returns, and prints "skip NAME (reason)"
 * instead of "ok NAME" unless a CHECK failed first. */
#define SKIP(reason) \
    do {                 \
        t_skip_reason = (reason); \
        return;          \
    } while (0)

static char t_tmpdir[512]; /* test_tmpdir's folder, once made */

static inline int t_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path) != 0 ? -1 : 0;
}

/* Ends main(): the summary line; the temporary folder is removed when
 * every test passed and kept (and named) when one failed. */
static inline int test_done(void) {
    printf("%d passed, %d failed, %d skipped\n", t_passed, t_failed, t_skipped);
    if (t_tmpdir[0]) {
        if (t_failed) fprintf(stderr, "test files kept in %s\n", t_tmpdir);
        else if (nftw(t_tmpdir, t_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            fprintf(stderr, "could not remove %s\n", t_tmpdir);
    }
    return t_failed ? 1 : 0;
}

/* Folder with the golden reference values (../shared/golden by default,
 * GAMBAR_GOLDEN overrides). */
static inline const char *test_golden_dir(void) {
    const char *g = getenv("GAMBAR_GOLDEN");
    return g && *g ? g : "../shared/golden";
}

/* A fresh temporary folder for this test program (created on first call,
 * under TMPDIR; test_done removes it unless a test failed, so failures
 * can be inspected). */
static inline const char *test_tmpdir(void) {
    char *dir = t_tmpdir;
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof t_tmpdir, "%s/gambar-test-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    return dir;
}

/* Folder holding the built stage binaries (GAMBAR_BIN, default build/bin). */
static inline const char *test_bin_dir(void) {
    const char *b = getenv("GAMBAR_BIN");
    return b && *b ? b : "build/bin";
}

#endif
