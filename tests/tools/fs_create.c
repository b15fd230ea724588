/* fs_create.c - how fast this filesystem creates small files: the second
 * roofline of the sampler bench, next to fma_peak's arithmetic one.
 *
 * gambar-sample writes one PNG (~700 bytes for 28x28) per image with
 * openat(O_CREAT) + write + close into one folder; on some disks that
 * costs more CPU (kernel time) than generating the image. This tool does
 * exactly those calls, nothing else, for N files split over T threads
 * (file k goes to thread k mod T) into DIR (which must not exist; it is
 * removed afterwards), and prints
 *   bench: fs_create_files_per_s VALUE files/s
 * Usage: fs_create DIR [N [T]] (defaults 10000, 2). Exit 0, 2 usage,
 * 4 I/O error (named). */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_BYTES 700

typedef struct {
    int dirfd, t, T, n, err;
} job_t;

static void *work(void *arg) {
    job_t *j = arg;
    char buf[FILE_BYTES], name[64];
    memset(buf, 0x5a, sizeof buf);
    for (int k = j->t; k < j->n; k += j->T) {
        snprintf(name, sizeof name, "img-%08d.png", k);
        int fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
            j->err = errno ? errno : EIO;
            if (fd >= 0) close(fd);
            return NULL;
        }
        close(fd);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: fs_create DIR [N [T]]\n");
        return 2;
    }
    const char *dir = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 10000, T = argc > 3 ? atoi(argv[3]) : 2;
    if (n < 1 || T < 1 || T > 64) {
        fprintf(stderr, "fs_create: N must be >= 1 and T 1..64\n");
        return 2;
    }
    if (mkdir(dir, 0755) != 0) {
        fprintf(stderr, "fs_create: %s: cannot create: %s\n", dir, strerror(errno));
        return 4;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        fprintf(stderr, "fs_create: %s: cannot open: %s\n", dir, strerror(errno));
        return 4;
    }
    job_t jobs[64];
    pthread_t th[64];
    double t0 = gb_now();
    for (int t = 0; t < T; t++) {
        jobs[t] = (job_t){dfd, t, T, n, 0};
        pthread_create(&th[t], NULL, work, &jobs[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    double dt = gb_now() - t0;
    int rc = 0;
    for (int t = 0; t < T; t++)
        if (jobs[t].err) {
            fprintf(stderr, "fs_create: %s: creating files: %s\n", dir, strerror(jobs[t].err));
            rc = 4;
        }
    char name[64];
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "img-%08d.png", k);
        unlinkat(dfd, name, 0);
    }
    close(dfd);
    rmdir(dir);
    if (!rc) printf("bench: fs_create_files_per_s %.0f files/s\n", n / dt);
    return rc;
}
