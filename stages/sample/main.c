/* gambar-sample - images from a checkpoint's EMA generator, each carrying
 * its provenance; inspect and reproduce them; serve them over ZeroMQ.
 *
 * Modes: generate (default), --inspect FILE.png, --reproduce FILE.png,
 * --serve ENDPOINT, and --from-image FILE.png (fit a latent, then
 * generate from it). What an image is made from is a job (sample.h):
 * the same description is written into every PNG and read back by
 * --reproduce.
 *
 * Writing many files: worker threads (--threads) each take chunks of
 * images, generate them (gen_infer.h, one thread per chunk), encode the
 * PNGs and write them; the main thread makes them durable with one
 * syncfs() and then publishes them: a new output folder is built under a
 * staging name and renamed into place in one step, an existing one gets
 * per-file temporary names renamed one by one (write_dir). A crash leaves
 * only staging or temporary names; a failure removes them; no final name
 * ever holds a partial file.
 * Single files (--out FILE.png) go through img_write_png (temp, fsync,
 * rename). */
#include "base.h"
#include "cli.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "nn.h"
#include "sample.h"
#include "sig.h"
#include "wire_sec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "gambar-sample"

typedef struct {
    const char *ckpt, *out, *cls, *prompt, *grid, *interp, *from, *inspect, *reproduce, *serve, *follow;
    const char *iprompt_a, *iprompt_b; /* --interpolate-prompts A B STEPS */
    int isteps;
    long long check_model, n, threads, variations, fit_iters, fit_starts, compression;
    uint64_t seed;
    double truncation, sigma;
    bool json, n_seen, seed_seen;
} opts_t;

static cli_spec_t g_spec;

static _Noreturn void die(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void die(int rc, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(rc);
}

static int ends_with_png(const char *s) {
    size_t l = strlen(s);
    return l >= 4 && strcasecmp(s + l - 4, ".png") == 0;
}

static void open_ckpt(sctx_t *c, const char *path) {
    char err[1024];
    int rc = sctx_open(c, path, err, sizeof err);
    if (rc) die(err_exit_code(rc), "%s", err);
}

/* ---- writing many files --------------------------------------------------- */

typedef struct {
    const sctx_t *c;
    const job_t *j;
    const char *dir;
    int dirfd;
    int staged;              /* 1: writing final names into a staging folder */
    int compression;
    const char *created;
    int chunk;
    int next;                /* next image to claim (atomic) */
    float *keep;             /* (n, P) floats for the grid, or NULL */
    unsigned char *made;     /* n flags: temp file written */
    pthread_mutex_t mu;
    int rc;                  /* first failure */
    char err[10240];
} wjob_t;

static void image_name(const job_t *j, int i, char *buf, size_t len) {
    if (j->mode == JOB_SEED) snprintf(buf, len, "img-%" PRIu64 ".png", j->seed + (uint64_t)i);
    else if (j->mode == JOB_INTERP) snprintf(buf, len, "interp-%" PRIu64 "-%" PRIu64 "-%d.png", j->ia, j->ib, i);
    else if (j->mode == JOB_TEXT_INTERP) snprintf(buf, len, "interp-prompts-%" PRIu64 "-%d.png", j->seed, i);
    else if (i == 0) snprintf(buf, len, "recon.png");
    else snprintf(buf, len, "var-%d.png", i);
}

/* The name image i is written under while the run is in progress: its
 * final name inside a fresh staging folder, else a hidden temporary name
 * next to the final one. */
static void work_name(const job_t *j, int i, int staged, char *buf, size_t len) {
    char nm[128];
    image_name(j, i, nm, sizeof nm);
    if (staged) snprintf(buf, len, "%s", nm);
    else snprintf(buf, len, ".%s.tmp-%ld", nm, (long)getpid());
}

static int write_all_fd(int fd, const uint8_t *b, size_t n) {
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void wfail(wjob_t *wj, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void wfail(wjob_t *wj, int rc, const char *fmt, ...) {
    pthread_mutex_lock(&wj->mu);
    if (!wj->rc) {
        wj->rc = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(wj->err, sizeof wj->err, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&wj->mu);
}

static void *worker(void *arg) {
    wjob_t *wj = arg;
    const sctx_t *c = wj->c;
    const job_t *j = wj->j;
    size_t P = ginfer_image_floats(c->gen);
    ginfer_ws_t *w = ginfer_ws_new(c->gen, wj->chunk, 0);
    float *buf = xmalloc((size_t)wj->chunk * P * sizeof(float));
    uint8_t *px = xmalloc(P);
    for (;;) {
        if (__atomic_load_n(&wj->rc, __ATOMIC_RELAXED)) break;
        if (sig_stop_requested()) {
            wfail(wj, GB_EINTR, "interrupted: nothing was written to %s", wj->dir);
            break;
        }
        int i0 = __atomic_fetch_add(&wj->next, wj->chunk, __ATOMIC_RELAXED);
        if (i0 >= j->n) break;
        int i1 = GB_MIN(j->n, i0 + wj->chunk);
        job_generate(c, j, w, i0, i1, buf);
        if (wj->keep) memcpy(wj->keep + (size_t)i0 * P, buf, (size_t)(i1 - i0) * P * sizeof(float));
        for (int i = i0; i < i1; i++) {
            ginfer_to_u8(buf + (size_t)(i - i0) * P, P, px);
            img_t im = {(uint32_t)c->W, (uint32_t)c->H, (uint32_t)c->C, px};
            prov_t p;
            job_prov(c, j, i, wj->created, &p);
            uint8_t *png;
            size_t len;
            int rc = sample_encode(&p, &im, wj->compression, &png, &len);
            prov_free(&p);
            if (rc) {
                wfail(wj, rc, "cannot encode image %d: %s", i, err_str(rc));
                break;
            }
            char tn[256];
            work_name(j, i, wj->staged, tn, sizeof tn);
            int fd = openat(wj->dirfd, tn, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0) rc = errno;
            else {
                wj->made[i] = 1;
                rc = write_all_fd(fd, png, len);
                if (close(fd) != 0 && !rc) rc = errno;
            }
            free(png);
            if (rc) {
                char why[4400];
                wfail(wj, rc, "cannot write %s/%s: %s", wj->dir, tn, err_io_str(rc, wj->dir, why, sizeof why));
                break;
            }
        }
    }
    ginfer_ws_free(w);
    free(buf);
    free(px);
    return NULL;
}

/* Write every image of j into dir; keep (may be NULL) receives all
 * images' floats. A new folder is built as a staging folder
 * "DIR.tmp-PID" holding the final names, flushed with one syncfs() and
 * renamed to DIR in one step (the parent is then fsynced): the whole set
 * appears at once. Into an existing folder, each file is written under a
 * temporary name, then all are flushed and renamed one by one. Failure
 * removes what was written and dies. */
static void write_dir(const sctx_t *c, const job_t *j, const char *dir, int threads, int compression,
                      const char *created, float *keep) {
    if (strlen(dir) > 4000) die(GB_EXIT_USAGE, "--out: path too long");
    char dbuf[4096], stage[4200], parent[4096];
    snprintf(dbuf, sizeof dbuf, "%s", dir);
    for (size_t l = strlen(dbuf); l > 1 && dbuf[l - 1] == '/'; l--) dbuf[l - 1] = 0; /* "out/" -> "out" */
    dir = dbuf;
    struct stat sb;
    int staged = stat(dir, &sb) != 0 && errno == ENOENT;
    snprintf(stage, sizeof stage, "%s.tmp-%ld", dir, (long)getpid());
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == parent) slash[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(parent, sizeof parent, ".");
    const char *wdir = staged ? stage : dir;
    sig_install(); /* SIGINT/SIGTERM: stop, remove what was written, exit 130 */
    char why[4400];
    if (staged && mkdir(stage, 0755) != 0)
        die(GB_EXIT_IO, "cannot create folder %s: %s", stage, err_io_str(errno, parent, why, sizeof why));
    if (!staged && !S_ISDIR(sb.st_mode)) die(GB_EXIT_IO, "--out %s exists and is not a folder", dir);
    int dfd = open(wdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) die(GB_EXIT_IO, "cannot open folder %s: %s", wdir, strerror(errno));
    wjob_t wj;
    memset(&wj, 0, sizeof wj);
    wj.c = c;
    wj.j = j;
    wj.dir = wdir;
    wj.dirfd = dfd;
    wj.staged = staged;
    wj.compression = compression;
    wj.created = created;
    wj.keep = keep;
    wj.made = xcalloc((size_t)j->n, 1);
    /* chunks: big enough for the kernels, small enough to share the work */
    wj.chunk = GB_MAX(1, GB_MIN(64, (j->n + threads - 1) / threads));
    pthread_mutex_init(&wj.mu, NULL);
    int nt = GB_MAX(1, GB_MIN(threads, (j->n + wj.chunk - 1) / wj.chunk));
    pthread_t *th = xcalloc((size_t)nt, sizeof *th);
    for (int t = 1; t < nt; t++)
        if (pthread_create(&th[t], NULL, worker, &wj) != 0) die(GB_EXIT_FAIL, "cannot start a thread");
    double t0 = gb_now();
    worker(&wj);
    for (int t = 1; t < nt; t++) pthread_join(th[t], NULL);
    free(th);
    double t1 = gb_now();
    char tn[256], fn[128];
    int rc = wj.rc;
    if (!rc && syncfs(dfd) != 0) {
        rc = errno;
        snprintf(wj.err, sizeof wj.err, "cannot flush %s: %s", wdir, err_io_str(rc, wdir, why, sizeof why));
    }
    if (staged && !rc) {
        if (rename(stage, dir) != 0) {
            rc = errno;
            snprintf(wj.err, sizeof wj.err, "cannot rename %s to %s: %s", stage, dir, strerror(rc));
        } else {
            memset(wj.made, 0, (size_t)j->n);
            int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (pfd < 0 || fsync(pfd) != 0) {
                rc = errno;
                snprintf(wj.err, sizeof wj.err, "cannot fsync folder %s: %s", parent, strerror(rc));
            }
            if (pfd >= 0) close(pfd);
        }
    }
    for (int i = 0; i < j->n && !rc && !staged; i++) {
        work_name(j, i, 0, tn, sizeof tn);
        image_name(j, i, fn, sizeof fn);
        if (renameat(dfd, tn, dfd, fn) != 0) {
            rc = errno;
            snprintf(wj.err, sizeof wj.err, "cannot rename %s/%s: %s", dir, tn, strerror(rc));
        } else {
            wj.made[i] = 0;
        }
    }
    if (!rc && !staged && fsync(dfd) != 0) {
        rc = errno;
        snprintf(wj.err, sizeof wj.err, "cannot fsync folder %s: %s", dir, strerror(rc));
    }
    log_debug("%d images: generate+encode+write %.3fs, flush+rename %.3fs", j->n, t1 - t0, gb_now() - t1);
    for (int i = 0; i < j->n; i++)
        if (wj.made[i]) {
            work_name(j, i, staged, tn, sizeof tn);
            unlinkat(dfd, tn, 0);
        }
    close(dfd);
    if (rc && staged) rmdir(stage);
    if (rc == GB_EINTR) snprintf(wj.err, sizeof wj.err, "interrupted: %s was not written", dir);
    free(wj.made);
    pthread_mutex_destroy(&wj.mu);
    if (rc) die(err_exit_code(rc), "%s", wj.err);
}

static void write_one(const char *path, const prov_t *p, const img_t *im, int compression) {
    img_text_t *t;
    int nt;
    char *xmp;
    prov_to_texts(p, &t, &nt, &xmp);
    int rc = img_write_png(path, im, t, nt, compression);
    free(t);
    free(xmp);
    char why[4400];
    if (rc) die(err_exit_code(rc), "cannot write %s: %s", path, err_io_str(rc, path, why, sizeof why));
}

/* Generate all images of j into memory (HWC floats, n * P). */
static float *generate_all(const sctx_t *c, const job_t *j) {
    size_t P = ginfer_image_floats(c->gen);
    float *imgs = xmalloc((size_t)j->n * P * sizeof(float));
    ginfer_ws_t *w = ginfer_ws_new(c->gen, 64, 0);
    for (int i0 = 0; i0 < j->n; i0 += 64) job_generate(c, j, w, i0, GB_MIN(j->n, i0 + 64), imgs + (size_t)i0 * P);
    ginfer_ws_free(w);
    return imgs;
}

/* Write the output of job j as --out asks: a folder of images (plus the
 * grid file when a grid is asked for), or one file (the grid, or the
 * single image). */
static void emit(const sctx_t *c, const job_t *j, const opts_t *o) {
    char created[32];
    prov_now_iso8601(created, sizeof created);
    size_t P = ginfer_image_floats(c->gen);
    int compression = (int)o->compression;
    if (ends_with_png(o->out)) {
        float *imgs = generate_all(c, j);
        img_t im;
        prov_t p;
        uint8_t *px = NULL;
        if (j->rows) {
            job_grid(c, j, imgs, &im);
            job_prov(c, j, -1, created, &p);
        } else {
            px = xmalloc(P);
            ginfer_to_u8(imgs, P, px);
            im = (img_t){(uint32_t)c->W, (uint32_t)c->H, (uint32_t)c->C, px};
            job_prov(c, j, 0, created, &p);
        }
        write_one(o->out, &p, &im, compression);
        prov_free(&p);
        if (j->rows) img_free(&im);
        free(px);
        free(imgs);
        printf("wrote %s\n", o->out);
        return;
    }
    float *keep = j->rows ? xmalloc((size_t)j->n * P * sizeof(float)) : NULL;
    write_dir(c, j, o->out, (int)o->threads, compression, created, keep);
    printf("wrote %d image%s to %s\n", j->n, j->n == 1 ? "" : "s", o->out);
    if (j->rows) {
        img_t im;
        prov_t p;
        job_grid(c, j, keep, &im);
        job_prov(c, j, -1, created, &p);
        char path[4096];
        if (j->mode == JOB_INTERP)
            snprintf(path, sizeof path, "%s/grid-interp-%" PRIu64 "-%" PRIu64 ".png", o->out, j->ia, j->ib);
        else if (j->mode == JOB_TEXT_INTERP)
            snprintf(path, sizeof path, "%s/grid-interp-prompts-%" PRIu64 ".png", o->out, j->seed);
        else
            snprintf(path, sizeof path, "%s/grid-%" PRIu64 ".png", o->out, j->seed);
        write_one(path, &p, &im, compression);
        printf("wrote %s\n", path);
        prov_free(&p);
        img_free(&im);
        free(keep);
    }
}

/* ---- modes ---------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno;
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= ((size_t)256 << 20)) { fclose(f); free(b); return GB_ETOOBIG; }
            b = xrealloc(b, cap *= 2);
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int rc = ferror(f) ? EIO : 0;
    fclose(f);
    if (rc) { free(b); return rc; }
    *buf = b;
    *len = n;
    return 0;
}

static void read_prov_or_die(const char *path, prov_t *p) {
    int rc = prov_read_file(path, p);
    if (rc == GB_ENOTFOUND) die(GB_EXIT_DATA, "%s: no gambar provenance in this PNG (no gambar:* text chunks)", path);
    if (rc > 0) die(GB_EXIT_IO, "cannot read %s: %s", path, strerror(rc));
    if (rc) die(err_exit_code(rc), "%s: not a readable PNG: %s", path, err_str(rc));
}

static int do_inspect(const opts_t *o) {
    prov_t p;
    read_prov_or_die(o->inspect, &p);
    if (!o->json) printf("file: %s\n", o->inspect);
    prov_print(stdout, &p, o->json);
    prov_free(&p);
    return 0;
}

static int do_reproduce(const opts_t *o) {
    if (!o->ckpt) cli_usage_error(&g_spec, "--reproduce needs --ckpt FILE");
    prov_t p;
    read_prov_or_die(o->reproduce, &p);
    sctx_t c;
    open_ckpt(&c, o->ckpt);
    const char *rec = prov_get(&p, "gambar:checkpoint_digest"), *rstep = prov_get(&p, "gambar:checkpoint_step");
    if (!rec || strcmp(rec, c.digest_hex) != 0)
        die(GB_EXIT_DATA,
            "checkpoint digest differs: %s was made by checkpoint %s (step %s), but %s has digest %s (step %" PRIu64
            "); cannot reproduce it with this checkpoint",
            o->reproduce, rec ? rec : "(not recorded)", rstep ? rstep : "?", o->ckpt, c.digest_hex, c.step);
    job_t j;
    int index;
    float *zb;
    int32_t *lb;
    char err[512];
    int rc = job_from_prov(&c, &p, &j, &index, &zb, &lb, err, sizeof err);
    if (rc) die(GB_EXIT_DATA, "%s: cannot reproduce: %s", o->reproduce, err);
    float *tb;
    rc = job_encode(&c, &j, &tb, err, sizeof err);
    if (rc) die(GB_EXIT_DATA, "%s: cannot reproduce: %s", o->reproduce, err);
    size_t P = ginfer_image_floats(c.gen);
    img_t im;
    uint8_t *px = NULL;
    float *imgs;
    if (index < 0) {
        imgs = generate_all(&c, &j);
        job_grid(&c, &j, imgs, &im);
    } else {
        imgs = xmalloc(P * sizeof(float));
        ginfer_ws_t *w = ginfer_ws_new(c.gen, 1, 0);
        job_generate(&c, &j, w, index, index + 1, imgs);
        ginfer_ws_free(w);
        px = xmalloc(P);
        ginfer_to_u8(imgs, P, px);
        im = (img_t){(uint32_t)c.W, (uint32_t)c.H, (uint32_t)c.C, px};
    }
    img_t orig;
    char why[256];
    rc = img_read_png(o->reproduce, 0, NULL, &orig, why, sizeof why);
    if (rc) die(err_exit_code(rc), "%s: cannot decode: %s", o->reproduce, why);
    int same = orig.w == im.w && orig.h == im.h && orig.c == im.c;
    size_t ndiff = 0, total = (size_t)im.w * im.h * im.c;
    int maxd = 0;
    if (same) {
        for (size_t k = 0; k < total; k++) {
            int d = abs((int)orig.px[k] - (int)im.px[k]);
            if (d) { ndiff++; if (d > maxd) maxd = d; }
        }
    }
    if (o->out) {
        char created[32];
        prov_now_iso8601(created, sizeof created);
        prov_t np;
        job_prov(&c, &j, index, created, &np);
        write_one(o->out, &np, &im, (int)o->compression);
        prov_free(&np);
    }
    int status = 0;
    if (!same) {
        printf("differs: %s is %ux%ux%u, the regenerated image is %ux%ux%u\n", o->reproduce, orig.w, orig.h, orig.c,
               im.w, im.h, im.c);
        status = GB_EXIT_DATA;
    } else if (ndiff) {
        printf("differs: %zu of %zu pixel values differ (largest difference %d)\n", ndiff, total, maxd);
        status = GB_EXIT_DATA;
    } else {
        printf("identical\n");
    }
    img_free(&orig);
    if (index < 0) img_free(&im);
    free(px);
    free(imgs);
    free(zb);
    free(lb);
    free(tb);
    prov_free(&p);
    sctx_close(&c);
    return status;
}

static void parse_grid(const char *s, int *rows, int *cols) {
    char *e1, *e2;
    errno = 0;
    long r = strtol(s, &e1, 10);
    if (e1 == s || (*e1 != 'x' && *e1 != 'X')) cli_usage_error(&g_spec, "--grid '%s': expected RxC, e.g. 4x4", s);
    long c = strtol(e1 + 1, &e2, 10);
    if (e2 == e1 + 1 || *e2 || errno || r < 1 || c < 1 || r > 256 || c > 256)
        cli_usage_error(&g_spec, "--grid '%s': expected RxC with 1..256 rows and columns", s);
    *rows = (int)r;
    *cols = (int)c;
}

static void parse_interp(const char *s, uint64_t *a, uint64_t *b, int *steps) {
    unsigned long long x, y;
    int st, used = 0;
    if (sscanf(s, "%llu:%llu:%d%n", &x, &y, &st, &used) != 3 || s[used] || s[0] == '-' || st < 2 || st > 10000)
        cli_usage_error(&g_spec, "--interpolate '%s': expected SEED_A:SEED_B:STEPS with STEPS in 2..10000", s);
    *a = x;
    *b = y;
    *steps = st;
}

static int do_from_image(sctx_t *c, const opts_t *o, int cls) {
    img_t in, rs;
    char why[256];
    int rc = img_read_png(o->from, c->C, NULL, &in, why, sizeof why);
    if (rc > 0) die(GB_EXIT_IO, "cannot read %s: %s", o->from, strerror(rc));
    if (rc) die(err_exit_code(rc), "%s: not a usable PNG: %s", o->from, why);
    img_resize_crop(&in, (uint32_t)c->W, (uint32_t)c->H, &rs);
    size_t P = ginfer_image_floats(c->gen);
    float *target = xmalloc(P * sizeof(float));
    for (size_t k = 0; k < P; k++) target[k] = (float)rs.px[k] / 127.5f - 1.0f;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    uint8_t sha[32];
    char shahex[65];
    if (read_file(o->from, &raw, &rawlen) == 0) {
        digest_sha256(raw, rawlen, sha);
        free(raw);
        digest_hex(sha, 32, shahex);
    } else {
        snprintf(shahex, sizeof shahex, "unknown");
    }
    nn_set_threads((int)o->threads); /* the fit's backward GEMMs are small */
    sfit_opts_t fo = {(int)o->fit_starts, (int)o->fit_iters, 0.05f, o->seed};
    int nv = (int)o->variations, n = 1 + nv, best_cls;
    double fit_mse;
    float *z = xmalloc((size_t)n * c->Z * sizeof(float));
    int32_t *lab = xmalloc((size_t)n * sizeof(int32_t));
    const char **kinds = xmalloc((size_t)n * sizeof(char *));
    sfit_run(c->gen, c->ncls, cls, target, &fo, z, &best_cls, &fit_mse);
    float *noise = xmalloc((size_t)c->Z * sizeof(float));
    kinds[0] = "from-image";
    lab[0] = best_cls;
    for (int k = 1; k < n; k++) {
        prov_latent_z1(o->seed + (uint64_t)k, c->Z, 0, noise);
        for (int q = 0; q < c->Z; q++) z[(size_t)k * c->Z + q] = z[q] + (float)o->sigma * noise[q];
        lab[k] = best_cls;
        kinds[k] = "variation";
    }
    free(noise);
    /* the reconstruction as it will be written: its error against the target */
    float *rec = xmalloc(P * sizeof(float));
    ginfer_ws_t *w = ginfer_ws_new(c->gen, 1, 0);
    ginfer_forward(c->gen, w, z, c->ncls ? lab : NULL, 1, rec);
    ginfer_ws_free(w);
    double se = 0;
    for (size_t k = 0; k < P; k++) {
        double d = ((double)rec[k] - target[k]) / 2.0; /* on the [0, 1] pixel scale */
        se += d * d;
    }
    double mse = se / (double)P, psnr = mse > 0 ? 10.0 * log10(1.0 / mse) : INFINITY;
    prov_t extra;
    prov_init(&extra);
    prov_set(&extra, "gambar:source_image_sha256", "%s", shahex);
    prov_set(&extra, "gambar:fit", "adam lr=0.05 starts=%d iters=%d seed=%" PRIu64 " loss=mse", fo.starts, fo.iters,
             fo.seed);
    prov_set(&extra, "gambar:fit_mse", "%.8g", mse);
    prov_set(&extra, "gambar:fit_psnr_db", "%.4g", psnr);
    prov_set(&extra, "gambar:variation_sigma", "%.9g", o->sigma);
    job_t j;
    memset(&j, 0, sizeof j);
    j.mode = JOB_EXPLICIT;
    j.n = ends_with_png(o->out) ? 1 : n;
    j.seed = o->seed;
    j.class_index = cls;
    j.prompt = o->prompt;
    j.z = z;
    j.labels = lab;
    j.kinds = kinds;
    j.extra = &extra;
    const char *cname = best_cls >= 0 && c->desc->class_names ? c->desc->class_names[best_cls] : "";
    printf("reconstruction: mse=%.6f psnr=%.2f dB class=%d%s%s%s (pixel scale 0..1)\n", mse, psnr, best_cls,
           *cname ? " (" : "", cname, *cname ? ")" : "");
    fflush(stdout);
    emit(c, &j, o);
    prov_free(&extra);
    free(z);
    free(lab);
    free(kinds);
    free(rec);
    free(target);
    img_free(&in);
    img_free(&rs);
    return 0;
}

/* Text models: the prompt's warnings (sample_prompt_warnings) as log
 * lines: the words the encoder never saw named in one line, one when the
 * prompt has no words or too many. */
static void warn_words(sctx_t *c, const char *text) {
    sample_warn_t *w = xmalloc(sizeof *w);
    sample_prompt_warnings(c, text, w);
    for (int i = 0; i < w->n; i++) log_warn("%s", w->line[i]);
    free(w);
}

static int do_generate(const opts_t *o) {
    if (!o->ckpt) cli_usage_error(&g_spec, "--ckpt FILE is required");
    if (!o->out) cli_usage_error(&g_spec, "--out DIR or --out FILE.png is required");
    if (o->n < 1 || o->n > SAMPLE_MAX_N) cli_usage_error(&g_spec, "--n %lld: must be in 1..%d", o->n, SAMPLE_MAX_N);
    if (o->threads < 1 || o->threads > 256) cli_usage_error(&g_spec, "--threads %lld: must be in 1..256", o->threads);
    if (o->compression < 0 || o->compression > 9) cli_usage_error(&g_spec, "--compression: must be in 0..9");
    if (o->truncation < 0 || (o->truncation > 0 && o->truncation < PROV_MIN_TRUNCATION))
        cli_usage_error(&g_spec, "--truncation %g: 0 (none) or at least %g", o->truncation, PROV_MIN_TRUNCATION);
    if (o->cls && o->prompt) cli_usage_error(&g_spec, "--class and --prompt are exclusive");
    if (o->interp && o->from) cli_usage_error(&g_spec, "--interpolate and --from-image are exclusive");
    if (o->from && o->grid) cli_usage_error(&g_spec, "--grid is not available with --from-image");
    if (o->from && o->n_seen) cli_usage_error(&g_spec, "--n is not used with --from-image (see --variations)");
    if (o->from && (o->fit_iters < 0 || o->fit_iters > 100000 || o->fit_starts < 1 || o->fit_starts > 64 ||
                    o->variations < 0 || o->variations > 1000))
        cli_usage_error(&g_spec, "--fit-iters 0..100000, --fit-starts 1..64, --variations 0..1000");
    job_t j;
    memset(&j, 0, sizeof j);
    j.mode = JOB_SEED;
    j.seed = o->seed;
    j.n = (int)o->n;
    j.truncation = o->truncation;
    j.class_index = -1;
    j.prompt = o->prompt;
    if (o->grid) {
        parse_grid(o->grid, &j.rows, &j.cols);
        if (!o->n_seen && !o->interp) j.n = j.rows * j.cols;
    }
    if (o->interp) {
        if (o->n_seen) cli_usage_error(&g_spec, "--n and --interpolate are exclusive (STEPS is the count)");
        j.mode = JOB_INTERP;
        parse_interp(o->interp, &j.ia, &j.ib, &j.n);
    }
    if (o->iprompt_a) {
        if (o->n_seen) cli_usage_error(&g_spec, "--n and --interpolate-prompts are exclusive (STEPS is the count)");
        if (o->interp || o->prompt || o->cls || o->from)
            cli_usage_error(&g_spec, "--interpolate-prompts is exclusive with --interpolate, --prompt, --class and "
                            "--from-image");
        j.mode = JOB_TEXT_INTERP;
        j.prompt = o->iprompt_a;
        j.prompt_b = o->iprompt_b;
        j.n = o->isteps;
        if (!o->grid) { /* a row of STEPS images */
            j.rows = 1;
            j.cols = j.n;
        }
    }
    if (j.rows && j.n > j.rows * j.cols)
        cli_usage_error(&g_spec, "--grid %dx%d holds %d images, fewer than the %d asked for", j.rows, j.cols,
                        j.rows * j.cols, j.n);
    if (ends_with_png(o->out) && !j.rows && j.n > 1 && !o->from)
        cli_usage_error(&g_spec, "--out %s is one file but %d images were asked for: give a folder or --grid", o->out,
                        j.n);
    sctx_t c;
    open_ckpt(&c, o->ckpt);
    float *tb = NULL;
    if (c.T) {
        if (o->cls)
            die(GB_EXIT_USAGE, "--class: the model in %s is text-conditional: it has no classes; describe the image "
                "with --prompt TEXT", o->ckpt);
        if (!o->prompt && !o->iprompt_a)
            die(GB_EXIT_USAGE, "the model in %s is text-conditional: give --prompt TEXT (or --interpolate-prompts A B "
                "STEPS); --prompt \"\" samples with the empty text", o->ckpt);
        if (o->from) die(GB_EXIT_USAGE, "--from-image is not available for text-conditional models");
        char err[2048];
        int rc = job_encode(&c, &j, &tb, err, sizeof err);
        if (rc) die(GB_EXIT_USAGE, "%s: %s", o->iprompt_a ? "--interpolate-prompts" : "--prompt", err);
        warn_words(&c, j.prompt);
        if (j.mode == JOB_TEXT_INTERP) warn_words(&c, j.prompt_b);
    } else {
        if (o->iprompt_a)
            die(GB_EXIT_USAGE, "--interpolate-prompts: the model in %s is not text-conditional (use --interpolate "
                "A:B:STEPS between seeds)", o->ckpt);
        if (o->cls || o->prompt) {
            char err[2048];
            int rc = sample_resolve_class(&c, o->cls, o->prompt, &j.class_index, err, sizeof err);
            if (rc) die(GB_EXIT_USAGE, "%s: %s", o->cls ? "--class" : "--prompt", err);
        }
    }
    int status = 0;
    if (o->from) status = do_from_image(&c, o, j.class_index);
    else emit(&c, &j, o);
    free(tb);
    sctx_close(&c);
    return status;
}

/* --check-model N: the generator against model_generate (the training
 * code's own eval-mode forward) on N seeded latents. */
static int do_check_model(const opts_t *o) {
    if (!o->ckpt) cli_usage_error(&g_spec, "--check-model needs --ckpt FILE");
    if (o->check_model < 1 || o->check_model > 100000) cli_usage_error(&g_spec, "--check-model: N in 1..100000");
    sctx_t c;
    open_ckpt(&c, o->ckpt);
    int n = (int)o->check_model;
    size_t P = ginfer_image_floats(c.gen);
    job_t j;
    memset(&j, 0, sizeof j);
    j.mode = JOB_SEED;
    j.n = n;
    j.seed = o->seed;
    j.class_index = -1;
    j.prompt = o->prompt; /* text models: the condition (NULL: the empty text) */
    float *tb, *tv = NULL;
    char err[512];
    if (job_encode(&c, &j, &tb, err, sizeof err)) die(GB_EXIT_USAGE, "--prompt: %s", err);
    float *a = generate_all(&c, &j), *b = xmalloc((size_t)n * P * sizeof(float));
    float *z = xmalloc((size_t)n * c.Z * sizeof(float));
    int32_t *lab = xmalloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) job_latent(&c, &j, i, z + (size_t)i * c.Z, &lab[i]);
    int rc;
    if (c.T) {
        tv = xmalloc((size_t)n * c.T * sizeof(float));
        for (int i = 0; i < n; i++) job_text(&c, &j, i, tv + (size_t)i * c.T);
        rc = model_generate_text(c.model, z, tv, n, 1, b);
    } else {
        rc = model_generate(c.model, z, c.ncls ? lab : NULL, n, 1, b);
    }
    ASSERT(rc == 0);
    double maxd = 0, maxv = 0, var = 0, mean = 0;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c.C; ch++)
            for (int y = 0; y < c.H * c.W; y++) {
                double ref = b[(size_t)i * P + (size_t)ch * c.H * c.W + y];
                double d = fabs((double)a[(size_t)i * P + (size_t)y * c.C + ch] - ref);
                if (d > maxd) maxd = d;
                if (fabs(ref) > maxv) maxv = fabs(ref);
                mean += ref;
                var += ref * ref;
            }
    mean /= (double)n * P;
    var = var / ((double)n * P) - mean * mean;
    printf("generator vs model_generate: max |difference| %.3g over %d images (outputs: max |x| %.3g, sd %.3g)\n",
           maxd, n, maxv, sqrt(var > 0 ? var : 0));
    /* the contract: portable kernels and single-image batches give the same bits */
    ginfer_set_portable(c.gen, 1);
    float *p = generate_all(&c, &j);
    ginfer_set_portable(c.gen, 0);
    int port_same = memcmp(a, p, (size_t)n * P * sizeof(float)) == 0, single_diff = 0;
    ginfer_ws_t *w1 = ginfer_ws_new(c.gen, 1, 0);
    for (int i = 0; i < n; i++) {
        job_generate(&c, &j, w1, i, i + 1, p);
        if (memcmp(p, a + (size_t)i * P, P * sizeof(float)) != 0) single_diff++;
    }
    ginfer_ws_free(w1);
    free(p);
    printf("portable kernels: %s\n", port_same ? "bit-identical" : "DIFFERENT");
    printf("one image at a time vs batches: %d of %d images differ\n", single_diff, n);
    free(a);
    free(b);
    free(z);
    free(lab);
    free(tv);
    free(tb);
    sctx_close(&c);
    return maxd <= 1e-3 * maxv + 1e-6 && port_same && !single_diff ? 0 : GB_EXIT_DATA;
}

int main(int argc, char **argv) {
    opts_t o;
    memset(&o, 0, sizeof o);
    o.n = 1;
    o.threads = 2;
    o.variations = 4;
    o.fit_iters = 200;
    o.fit_starts = 4;
    o.compression = 1;
    o.sigma = 0.3;
    const cli_opt_t opts[] = {
        {"ckpt", 'c', CLI_STR, &o.ckpt, "FILE", "checkpoint to sample from (its EMA generator)", NULL},
        {"out", 'o', CLI_STR, &o.out, "DIR|FILE.png", "folder for one PNG per image, or one PNG file", NULL},
        {"n", 'n', CLI_INT, &o.n, "N", "number of images (default 1; with --grid RxC: R*C)", &o.n_seen},
        {"seed", 's', CLI_U64, &o.seed, "S", "base seed: image i uses seed S+i (default 0)", &o.seed_seen},
        {"class", 0, CLI_STR, &o.cls, "NAME|INDEX", "class by name (case-insensitive) or index", NULL},
        {"prompt", 0, CLI_STR, &o.prompt, "TEXT",
         "text models: the description to draw; class models: a class named inside it, e.g. \"an ankle boot\"", NULL},
        {"interpolate-prompts", 0, CLI_STR, &o.iprompt_a, "A B STEPS",
         "text models: one latent (--seed), the text moving linearly from A to B in STEPS images (a row)", NULL},
        {"truncation", 't', CLI_DBL, &o.truncation, "X", "resample latent components with |z| > X (0 = off)", NULL},
        {"grid", 'g', CLI_STR, &o.grid, "RxC", "also (or, with --out FILE.png, only) write a grid image", NULL},
        {"interpolate", 0, CLI_STR, &o.interp, "A:B:STEPS", "spherical interpolation between seeds A and B", NULL},
        {"from-image", 0, CLI_STR, &o.from, "FILE.png", "fit a latent to this image, write it and variations", NULL},
        {"variations", 0, CLI_INT, &o.variations, "N", "--from-image: variations to write (default 4)", NULL},
        {"variation-sigma", 0, CLI_DBL, &o.sigma, "X", "--from-image: noise scale of variations (default 0.3)", NULL},
        {"fit-iters", 0, CLI_INT, &o.fit_iters, "N", "--from-image: Adam iterations (default 200)", NULL},
        {"fit-starts", 0, CLI_INT, &o.fit_starts, "N", "--from-image: seeded starts per class (default 4)", NULL},
        {"threads", 'j', CLI_INT, &o.threads, "N", "worker threads (default 2)", NULL},
        {"compression", 0, CLI_INT, &o.compression, "L", "zlib level 0..9 (default 1)", NULL},
        {"inspect", 'i', CLI_STR, &o.inspect, "FILE.png", "print the provenance of a PNG", NULL},
        {"json", 0, CLI_FLAG, &o.json, NULL, "--inspect: print JSON", NULL},
        {"reproduce", 'r', CLI_STR, &o.reproduce, "FILE.png", "regenerate a PNG from its provenance and compare", NULL},
        {"serve", 0, CLI_STR, &o.serve, "ENDPOINT", "answer SampleRequests on a REP socket (binds by default)", NULL},
        {"follow", 0, CLI_STR, &o.follow, "DIR", "--serve: serve the newest checkpoint in DIR, reloading as they appear",
         NULL},
        {"check-model", 0, CLI_INT, &o.check_model, "N", "diagnostic: compare with model_generate on N images", NULL},
        WIRE_SEC_CLI_OPTS,
    };
    g_spec = (cli_spec_t){
        PROG,
        "--ckpt FILE --out DIR|FILE.png [options]\n"
        "       " PROG " --inspect FILE.png [--json]\n"
        "       " PROG " --reproduce FILE.png --ckpt FILE [--out FILE.png]\n"
        "       " PROG " --serve ENDPOINT --ckpt FILE | --follow DIR",
        "Generate images with a checkpoint's EMA generator. Every PNG records that it is\n"
        "AI-generated (IPTC DigitalSourceType trainedAlgorithmicMedia, also in XMP) and how it\n"
        "was made (checkpoint digest, seed, class, ...), so --reproduce can remake it bit for bit.",
        opts,
        (int)ARRAY_LEN(opts),
        "Latents: image i uses z = gambar-z1(S+i): rng_seed(S+i), rng_normal_fill(z); with\n"
        "--truncation X, components with |z| > X are redrawn from the same stream, in order.\n"
        "See gambar-sample(1) for the provenance keys and the class-matching rules.",
    };
    int pos = cli_parse(&g_spec, argc, argv);
    if (o.iprompt_a) { /* its B and STEPS are the two positional arguments */
        if (argc - pos != 2)
            cli_usage_error(&g_spec, "--interpolate-prompts takes three arguments: \"A\" \"B\" STEPS");
        o.iprompt_b = argv[pos];
        char *e;
        errno = 0;
        long st = strtol(argv[pos + 1], &e, 10);
        if (e == argv[pos + 1] || *e || errno || st < 2 || st > 10000)
            cli_usage_error(&g_spec, "--interpolate-prompts: STEPS '%s' must be a number in 2..10000", argv[pos + 1]);
        o.isteps = (int)st;
        pos = argc;
    }
    if (pos < argc) cli_usage_error(&g_spec, "unexpected argument '%s'", argv[pos]);
    int modes = !!o.inspect + !!o.reproduce + !!o.serve;
    if (modes > 1) cli_usage_error(&g_spec, "--inspect, --reproduce and --serve are exclusive");
    if (o.check_model) return do_check_model(&o);
    if (o.inspect) return do_inspect(&o);
    if (o.reproduce) return do_reproduce(&o);
    if (o.follow && !o.serve) cli_usage_error(&g_spec, "--follow DIR needs --serve ENDPOINT");
    if (o.serve) {
        if (!o.ckpt && !o.follow) cli_usage_error(&g_spec, "--serve needs --ckpt FILE or --follow DIR");
        wire_sec_init(&g_spec, (const char *const[]){o.serve}, 1);
        sctx_t c;
        memset(&c, 0, sizeof c);
        if (o.ckpt) open_ckpt(&c, o.ckpt);
        int rc = sample_serve(&c, o.serve, o.follow);
        sctx_close(&c);
        if (rc) die(rc > 0 ? GB_EXIT_PEER : err_exit_code(rc), "serve on %s: %s", o.serve, err_str(rc));
        return 0;
    }
    return do_generate(&o);
}
