/* run_dir.c - the run folder: the exact pipeline file used, the resolved
 * plan (plan.txt for people, plan.json for programs), logs/ and the pids
 * file that lets anyone find every stage process later, and keys/ (the
 * run's CURVE keys, see wire_sec.h). Files are written
 * atomically (temp file, fsync, rename, fsync of the folder) so a reused
 * run folder never holds a half-written plan. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "afile.h"
#include "base.h"
#include "log.h"
#include "run.h"
#include "wire_sec.h"

static int mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
    return 0;
}

typedef void (*writer_fn)(const void *arg, FILE *f);

/* Write dir/name atomically (afile.h) with fn. Returns 0 or an errno
 * (logged). */
static int write_atomic(const char *dir, const char *name, writer_fn fn, const void *arg) {
    char dst[4096];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    afile_t *a;
    int e = afile_open(dst, &a);
    if (e) return e;
    fn(arg, afile_stream(a));
    return afile_commit(&a);
}

static void w_plan(const void *a, FILE *f) { pl_print_plan(a, f); }
static void w_json(const void *a, FILE *f) { pl_print_plan_json(a, f); }
static void w_copy(const void *a, FILE *f) {
    FILE *in = fopen(a, "rb");
    if (!in) return;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, f);
    fclose(in);
}

int run_dir_prepare(const pipeline_t *pl, const char *run_dir, const char *pipeline_path) {
    char logs[4096];
    snprintf(logs, sizeof logs, "%s/logs", run_dir);
    int rc = mkdir_p(logs);
    if (rc) {
        log_error("%s: cannot create the run folder: %s", logs, strerror(rc));
        return rc;
    }
    /* One gambar-run per run folder: two trainers on one checkpoint folder
     * would each prune the other's files. The lock lives as long as this
     * process (the fd is close-on-exec, so stages do not hold it). */
    char lock[4096];
    snprintf(lock, sizeof lock, "%s/.lock", run_dir);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = errno;
        log_error("%s: cannot create: %s", lock, strerror(rc));
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno;
        char other[32] = "";
        ssize_t n = pread(fd, other, sizeof other - 1, 0);
        other[n > 0 ? n : 0] = 0;
        other[strcspn(other, "\n")] = 0;
        if (*other)
            log_error("run folder %s is in use by another gambar-run (pid %s)", run_dir, other);
        else
            log_error("run folder %s is in use by another gambar-run", run_dir);
        close(fd);
        return rc == EWOULDBLOCK ? EBUSY : rc;
    }
    char me[32];
    int n = snprintf(me, sizeof me, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, me, (size_t)n, 0) != n) log_warn("%s: cannot record the pid", lock);
    if ((rc = write_atomic(run_dir, "pipeline.ini", w_copy, pipeline_path))) return rc;
    if ((rc = write_atomic(run_dir, "plan.txt", w_plan, pl))) return rc;
    if ((rc = write_atomic(run_dir, "plan.json", w_json, pl))) return rc;
    return 0;
}

void run_dir_record_pid(const char *run_dir, const char *stage, int replica, int pid) {
    char path[4096];
    snprintf(path, sizeof path, "%s/pids", run_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char line[512];
    int n = snprintf(line, sizeof line, "%s %d %d\n", stage, replica, pid);
    if (write(fd, line, (size_t)n) != n) log_warn("%s: short write", path);
    close(fd);
}

int run_dir_keys(const char *run_dir, char *out, size_t outlen) {
    snprintf(out, outlen, "%s/keys", run_dir);
    char why[700];
    int rc = wire_sec_keygen(out, why, sizeof why);
    if (rc == EEXIST) return 0; /* a reused run folder keeps its keys */
    if (rc) log_error("cannot make the run's CURVE keys: %s", why);
    else log_debug("made the run's CURVE keys in %s", out);
    return rc;
}
