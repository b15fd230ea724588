/* main.c - gambar-ingest: turn a folder of PNGs (ImageFolder layout) or
 * MNIST-format IDX files into a gambar dataset (an LMDB store, see
 * proto/dataset.proto).
 *
 * Shape of a run: list the source (sorted, so the dataset order is
 * reproducible), start decode workers (ingest_pipe.c), and in this thread
 * take their results strictly in list order: skip opted-out files, store
 * exact duplicates once (by SHA-256, also against earlier runs), log and
 * count rejected files, and append the rest to the store, committing a
 * large transaction every few MiB. Only whole transactions ever reach the
 * disk, and files already stored are recognised by their digest and
 * source URI, so a run that was killed at any point is completed by
 * running the same command again. The workload: tens of thousands of
 * small PNGs per second on two cores with bounded memory.
 */
#include "afile.h"
#include "base.h"
#include "cli.h"
#include "digest.h"
#include "err.h"
#include "img.h"
#include "ingest.h"
#include "log.h"
#include "progress.h"
#include "sig.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define ING_DEFAULT_BATCH_BYTES (4u << 20) /* staged bytes per transaction */
#define ING_DEFAULT_BATCH_N 2048           /* examples per transaction: bounds LMDB's dirty pages */
#define ING_GROUP_MAX 2                    /* a default batch grows to this many times its size while
                                            * the previous commit is still being written (see ing_put) */
#define ING_RING_BYTES (3u << 20)          /* decoded target pixels in flight: covers a commit's fsync */
#define ING_DEFAULT_MAX_BYTES ((size_t)64 << 20)

typedef struct {
    store_t *st;
    ing_manifest_t man;
    bool have_man;
    const char *man_path;         /* --manifest, for messages */
    const char *desc;             /* DatasetInfo.source text for this run */
    uint64_t batch_n;             /* commit after this many staged examples */
    size_t batch_bytes;           /* ... or this many staged bytes */
    /* counters for the summary */
    uint64_t stored, already, dups, optouts, rejected[ING_R_COUNT], nrejected;
    uint64_t d_optouts, d_dups;   /* not yet committed into DatasetInfo */
    int fatal;                    /* a store error that ended the run */
    bool group;                   /* default batch: may grow while a commit is in flight */
    uint64_t handed;              /* examples handed to commits so far (store_count once they land) */
    uint64_t base;                /* store_count at open: stored = store_count - base once committed */
    ing_capfile_t *capf;          /* --captions for an IDX source, or NULL */
    ing_caps_t caps;              /* the current image's captions */
    ing_capstat_t capst;          /* captions refused or changed */
} ing_run_t;

/* Append s to buf[0..o) (capacity cap > o, NUL-terminated) as far as it
 * fits; returns the new length. The writer builds a path or URI per image
 * with these, as snprintf costs more than the rest of its bookkeeping. */
static size_t ing_cat(char *buf, size_t cap, size_t o, const char *s) {
    size_t n = strlen(s);
    if (n > cap - 1 - o) n = cap - 1 - o;
    memcpy(buf + o, s, n);
    buf[o + n] = 0;
    return o + n;
}

/* file:// or idx:// URI of an absolute path: bytes outside the unreserved
 * set and '/' are percent-encoded. */
static void make_uri(char *out, size_t cap, const char *scheme, const char *abs, const char *suffix) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = ing_cat(out, cap, 0, scheme);
    o = ing_cat(out, cap, o, "://");
    for (const unsigned char *p = (const unsigned char *)abs; *p && o + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '/' ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
    if (suffix) snprintf(out + o, cap - o, "%s", suffix);
}

static double g_commit_s; /* seconds spent in store_commit, for -v */

/* Commit the staged batch: in the background while ingest goes on
 * (wait = false), or to the end (the last one). */
static int ing_commit(ing_run_t *r, bool wait) {
    double t = gb_now();
    uint64_t staged = store_staged(r->st);
    int rc = wait ? store_commit(r->st, r->desc, r->d_optouts, r->d_dups)
                  : store_commit_async(r->st, r->desc, r->d_optouts, r->d_dups);
    if (!rc) r->handed += staged;
    g_commit_s += gb_now() - t;
    if (rc) {
        r->fatal = rc;
        return rc;
    }
    r->d_optouts = r->d_dups = 0;
    return 0;
}

/* Store one decoded image unless it is a duplicate. Returns 0 or a fatal
 * store error. */
static int ing_put(ing_run_t *r, const uint8_t sha[DIGEST_LEN], uint8_t *px, uint32_t w, uint32_t h,
                   uint32_t c, int32_t label, const char *uri, const char *relpath, const char *shown,
                   ing_caps_t *caps) {
    uint64_t idx;
    int rc = store_find_sha(r->st, sha, &idx);
    if (rc == 0) {
        bool same = false;
        if (idx < store_count(r->st)) {
            Gambar__Example *ex = NULL;
            if (store_get(r->st, idx, &ex) == 0) same = strcmp(ex->source_uri, uri) == 0;
            if (ex) gambar__example__free_unpacked(ex, NULL);
        }
        if (same) {
            r->already++;
        } else {
            r->dups++;
            r->d_dups++;
            log_debug("%s: exact duplicate of example %llu (stored once)", shown, (unsigned long long)idx);
        }
        return 0;
    }
    if (rc != GB_ENOTFOUND) return r->fatal = rc;
    const ing_manent_t *me = r->have_man ? ing_manifest_find(&r->man, relpath) : NULL;
    Gambar__Example ex = GAMBAR__EXAMPLE__INIT;
    ex.height = h;
    ex.width = w;
    ex.channels = c;
    ex.pixels.data = px;
    ex.pixels.len = (size_t)w * h * c;
    ex.label = label;
    ex.source_uri = (char *)uri;
    ex.source_sha256.data = (uint8_t *)sha;
    ex.source_sha256.len = DIGEST_LEN;
    ex.license = me ? me->license : (char *)"";
    ex.attribution = me ? me->attribution : (char *)"";
    /* the manifest's caption cell adds to the sidecar's (not the "*" entry's: it would caption every file) */
    if (me && me->caption[0] && me != r->man.dflt)
        ing_cap_parse(me->caption, strlen(me->caption), '|', r->man_path, me->line, caps, &r->capst);
    ex.n_captions = caps->n;
    ex.captions = (char **)caps->ptr;
    rc = store_add(r->st, &ex);
    if (rc) return r->fatal = rc;
    r->stored++;
    uint64_t staged = store_staged(r->st);
    size_t bytes = store_staged_bytes(r->st);
    if (staged < r->batch_n && bytes < r->batch_bytes) return 0;
    /* Group commit: while the previous batch is still being written and
     * synced (store_count has not reached what was handed over), handing
     * this one over would only wait for it; keep staging instead, up to
     * ING_GROUP_MAX times the batch. Fewer, larger transactions rewrite
     * fewer sha/ index pages per example and fsync less often, so a slow
     * disk gets larger batches and a fast one keeps them small. */
    if (r->group && staged < r->batch_n * ING_GROUP_MAX && bytes < r->batch_bytes * ING_GROUP_MAX &&
        store_count(r->st) < r->handed)
        return 0;
    return ing_commit(r, false);
}

static void ing_reject(ing_run_t *r, int reason, const char *shown, const char *msg) {
    r->rejected[reason]++;
    r->nrejected++;
    log_warn("%s: %s (skipped)", shown, msg);
}

/* ---- folder source ---- */

static int run_folder(ing_run_t *r, const char *src, uint64_t limit, int threads, uint32_t w, uint32_t h,
                      uint32_t c, uint32_t max_dim, size_t max_bytes, const ing_shaset_t *optout,
                      bool *interrupted) {
    ing_list_t l;
    int rc = ing_list_folder(src, &l);
    if (rc) return rc;
    char root_abs[PATH_MAX];
    if (!realpath(src, root_abs)) snprintf(root_abs, sizeof root_abs, "%s", src);
    if (l.nclasses) {
        rc = store_set_classes(r->st, (const char *const *)l.classes, l.nclasses);
        if (rc) {
            log_error("%s: the class folders do not match the classes already in the dataset", src);
            ing_list_free(&l);
            return rc;
        }
    }
    if (l.other) log_info("%s: %llu file(s) not ending in .png ignored", src, (unsigned long long)l.other);
    if (l.txt) log_info("%s: %llu .txt file(s): the captions of the .png file(s) of the same name", src,
                        (unsigned long long)l.txt);
    if (!l.n) log_warn("%s: no .png files found", src);
    size_t n = l.n;
    if (limit && limit < n) n = (size_t)limit;
    log_info("%s: %zu PNG file(s) in %zu class folder(s)%s", src, l.n, l.nclasses,
             n < l.n ? " (limited)" : "");
    if (!w || !c) {
        bool own_size = !w, own_c = !c;
        ing_shape_from_files(src, &l, n, threads, &w, &h, &c);
        log_info("storing as %ux%u, %u channel(s)%s", w, h, c,
                 own_size && own_c ? " (size and colour type from the files)"
                 : own_size    ? " (size from the files)"
                               : " (colour type from the files)");
    }
    ing_pipe_cfg_t cfg = {.root = src, .list = &l, .n = n, .optout = optout, .w = w, .h = h, .c = c,
                          .max_dim = max_dim, .max_bytes = max_bytes,
                          .max_file = GB_MAX(max_bytes, (size_t)16 << 20),
                          .threads = threads,
                          .ring = GB_MIN(4096, GB_MAX(64, ING_RING_BYTES / ((size_t)w * h * c)))};
    store_expect(r->st, n);
    ing_pipe_t *p = n ? ing_pipe_start(&cfg) : NULL;
    progress_t pg;
    progress_init(&pg, "ingest", n);
    char *uri = xmalloc(3 * PATH_MAX + 64), *abs = xmalloc(2 * PATH_MAX);
    double t_waiting = 0, t_storing = 0, ta = gb_now(), tb; /* writer time split, for -v */
    /* abs = root_abs/rel; rel is its tail */
    size_t abs_cap = 2 * PATH_MAX, abs_root = ing_cat(abs, abs_cap, 0, root_abs);
    abs_root = ing_cat(abs, abs_cap, abs_root, "/");
    const char *rel = abs + abs_root;
    for (size_t i = 0; i < n && !r->fatal; i++) {
        if (sig_stop_requested() && !*interrupted) {
            /* Store what the workers already took on, then stop. */
            *interrupted = true;
            n = ing_pipe_halt(p);
            log_info("interrupted: storing the %zu image(s) already being decoded", n > i ? n - i : 0);
            if (i >= n) break;
        }
        const ing_item_t *it = ing_pipe_next(p, i);
        tb = gb_now();
        t_waiting += tb - ta;
        ta = tb;
        if (!it) { *interrupted = true; break; }
        const char *dir = ing_list_dir(&l, i);
        size_t o = abs_root;
        if (*dir) o = ing_cat(abs, abs_cap, ing_cat(abs, abs_cap, o, dir), "/");
        ing_cat(abs, abs_cap, o, ing_list_name(&l, i));
        if (it->kind == ING_REJECT) {
            progress_clear(&pg);
            ing_reject(r, it->reason, abs, it->msg);
        } else if (it->kind == ING_OPTOUT) {
            r->optouts++;
            r->d_optouts++;
            log_debug("%s: in the opt-out list (not stored)", abs);
        } else {
            make_uri(uri, 3 * PATH_MAX + 64, "file", abs, NULL);
            ing_cap_sidecar(abs, &r->caps, &r->capst);
            ing_put(r, it->sha, it->px, w, h, c, ing_list_label(&l, i), uri, rel, abs, &r->caps);
        }
        ing_pipe_release(p, i);
        progress_update(&pg, i + 1);
        tb = gb_now();
        t_storing += tb - ta;
        ta = tb;
    }
    log_debug("writer: %.3f s waiting for decoded images, %.3f s storing (%.3f s in commits)", t_waiting,
              t_storing, g_commit_s);
    progress_clear(&pg);
    free(uri);
    free(abs);
    ing_pipe_stop(&p);
    ing_list_free(&l);
    return 0;
}

/* ---- IDX source ---- */

static int run_idx(ing_run_t *r, const char *prefix, uint64_t limit, uint32_t w, uint32_t h, uint32_t c,
                   const ing_shaset_t *optout, bool *interrupted) {
    idx_t x;
    int rc = idx_open(prefix, &x);
    if (rc) return rc;
    size_t ncls = 0;
    const char *const *cls = idx_classes(prefix, &ncls);
    if (x.labels && (rc = store_set_classes(r->st, cls, ncls))) {
        log_error("idx:%s: the dataset already has other class names", prefix);
        idx_close(&x);
        return rc;
    }
    uint64_t n = x.n;
    if (limit && limit < n) n = limit;
    store_expect(r->st, n);
    size_t rec = (size_t)x.h * x.w;
    uint8_t *buf = xmalloc(rec + 1), *rgb = c == 3 ? xmalloc(rec * 3) : NULL;
    uint8_t *px = xmalloc((size_t)w * h * c);
    char uri[PATH_MAX + 64], shown[PATH_MAX + 64], frag[32];
    progress_t pg;
    progress_init(&pg, "ingest", n);
    for (uint64_t i = 0; i < n && !r->fatal; i++) {
        if (sig_stop_requested()) { *interrupted = true; break; }
        int label;
        rc = idx_next(&x, buf, &label);
        if (rc) { progress_clear(&pg); ing_reject(r, ING_R_CORRUPT, x.images_path, "file cut short; stopping"); break; }
        /* the captions file's line for record i, read whatever becomes of the record */
        r->caps.n = 0;
        if (r->capf && (rc = ing_capfile_next(r->capf, &r->caps, &r->capst))) {
            r->fatal = rc;
            break;
        }
        snprintf(frag, sizeof frag, "#%llu", (unsigned long long)i);
        snprintf(shown, sizeof shown, "%s%s", x.images_path, frag);
        uint8_t sha[DIGEST_LEN];
        buf[rec] = (uint8_t)label;
        digest_sha256(buf, rec + (x.labels ? 1 : 0), sha);
        if (ing_shaset_has(optout, sha)) {
            r->optouts++;
            r->d_optouts++;
            continue;
        }
        if (label >= (int)ncls) {
            progress_clear(&pg);
            char m[64];
            snprintf(m, sizeof m, "label %d outside the %zu classes", label, ncls);
            ing_reject(r, ING_R_CORRUPT, shown, m);
            continue;
        }
        img_t src = {x.w, x.h, 1, buf};
        if (c == 3) {
            for (size_t j = 0; j < rec; j++) rgb[3 * j] = rgb[3 * j + 1] = rgb[3 * j + 2] = buf[j];
            src.c = 3;
            src.px = rgb;
        }
        if (x.w == w && x.h == h) {
            memcpy(px, src.px, (size_t)w * h * c);
        } else {
            img_t out;
            img_resize_crop(&src, w, h, &out);
            memcpy(px, out.px, (size_t)w * h * c);
            img_free(&out);
        }
        make_uri(uri, sizeof uri, "idx", x.prefix_abs, frag);
        ing_put(r, sha, px, w, h, c, label, uri, "*", shown, &r->caps);
        progress_update(&pg, i + 1);
    }
    progress_clear(&pg);
    free(buf);
    free(rgb);
    free(px);
    idx_close(&x);
    return 0;
}

/* ---- summary ---- */

static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = 0;
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0) kib = strtod(line + 6, NULL);
        fclose(f);
    }
    if (kib == 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kib = (double)ru.ru_maxrss;
    }
    return kib / 1024.0;
}

/* Write the JSON summary atomically (afile.h). */
static int write_json(const char *path, const ing_run_t *r, uint64_t count, const char *digest_hex,
                      double secs, double rss, bool interrupted) {
    afile_t *a;
    int rc = afile_open(path, &a);
    if (rc) return rc;
    FILE *f = afile_stream(a);
    uint64_t done = r->stored + r->already + r->dups + r->optouts + r->nrejected;
    fprintf(f, "{\n  \"stored\": %llu,\n  \"already_present\": %llu,\n  \"duplicates\": %llu,\n"
               "  \"opted_out\": %llu,\n  \"rejected\": %llu,\n  \"rejected_by_reason\": {",
            (unsigned long long)r->stored, (unsigned long long)r->already, (unsigned long long)r->dups,
            (unsigned long long)r->optouts, (unsigned long long)r->nrejected);
    for (int i = 0; i < ING_R_COUNT; i++)
        fprintf(f, "%s\"%s\": %llu", i ? ", " : "", ing_reason_names[i], (unsigned long long)r->rejected[i]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    const Gambar__DatasetInfo *fi = store_info(r->st);
    fprintf(f, "},\n  \"captions\": {\"examples_with_captions\": %llu, \"captions_total\": %llu, "
               "\"invalid_utf8\": %llu, \"truncated\": %llu, \"dropped_over_max\": %llu, "
               "\"unreadable_files\": %llu",
            (unsigned long long)(fi ? fi->examples_with_captions : 0), (unsigned long long)(fi ? fi->captions_total : 0),
            (unsigned long long)r->capst.invalid, (unsigned long long)r->capst.truncated,
            (unsigned long long)r->capst.dropped, (unsigned long long)r->capst.unreadable);
    fprintf(f, "},\n  \"dataset_count\": %llu,\n  \"dataset_digest\": \"%s\",\n  \"seconds\": %.3f,\n"
               "  \"cpu_seconds\": %.3f,\n  \"images_per_s\": %.1f,\n  \"peak_rss_mib\": %.1f,\n"
               "  \"interrupted\": %s\n}\n",
            (unsigned long long)count, digest_hex, secs, cpu, secs > 0 ? done / secs : 0.0, rss,
            interrupted ? "true" : "false");
    return afile_commit(&a);
}

static bool parse_size(const char *s, uint32_t *w, uint32_t *h) {
    char *e;
    unsigned long a = strtoul(s, &e, 10), b = a;
    if (e == s) return false;
    if (*e == 'x' || *e == 'X') {
        const char *t = e + 1;
        b = strtoul(t, &e, 10);
        if (e == t) return false;
    }
    if (*e || a < 1 || b < 1 || a > 4096 || b > 4096) return false;
    *w = (uint32_t)a;
    *h = (uint32_t)b;
    return true;
}

/* ---- the run, step by step (main) ---- */

/* The command line, checked; the shape fields are filled in further by
 * open_dataset. */
typedef struct {
    const char *source, *db, *size, *manifest, *optout_path, *json, *captions;
    long long channels, threads, max_dim, batch;
    uint64_t limit, max_bytes;
    uint32_t w, h;                /* target size, 0 = not decided yet */
    bool is_idx;                  /* source is idx:PREFIX */
} ing_opts_t;

/* Parse and check the options; exits with status 2 on a usage error. */
static void parse_options(int argc, char **argv, ing_opts_t *o) {
    *o = (ing_opts_t){.max_dim = 16384, .max_bytes = ING_DEFAULT_MAX_BYTES};
    cli_opt_t opts[] = {
        {"source", 's', CLI_STR, &o->source, "SRC", "a folder (ImageFolder layout) or idx:PREFIX", NULL},
        {"db", 'd', CLI_STR, &o->db, "PATH", "dataset folder (created if missing)", NULL},
        {"size", 0, CLI_STR, &o->size, "WxH", "target size (default: the dataset's, else the images' own)", NULL},
        {"channels", 0, CLI_INT, &o->channels, "1|3", "1 gray or 3 RGB (default: the dataset's, else the images')",
         NULL},
        {"manifest", 0, CLI_STR, &o->manifest, "FILE", "CSV path,license,attribution[,caption]", NULL},
        {"optout", 0, CLI_STR, &o->optout_path, "FILE", "SHA-256 hex per line: never store these", NULL},
        {"limit", 0, CLI_U64, &o->limit, "N", "only the first N files/records (0 = all)", NULL},
        {"threads", 'j', CLI_INT, &o->threads, "N", "decode threads (default: number of CPUs)", NULL},
        {"max-dim", 0, CLI_INT, &o->max_dim, "N", "reject images wider or taller than N (16384)", NULL},
        {"max-bytes", 0, CLI_U64, &o->max_bytes, "N", "decoded-size budget per image (64 MiB)", NULL},
        {"batch", 0, CLI_INT, &o->batch, "N", "examples per transaction (default: about 8 MiB)", NULL},
        {"json", 0, CLI_STR, &o->json, "FILE", "also write the summary as JSON", NULL},
        {"captions", 0, CLI_STR, &o->captions, "FILE",
         "IDX source: line i holds record i's captions, separated by '|' ('#' lines skipped)", NULL},
    };
    cli_spec_t spec = {
        .prog = "gambar-ingest",
        .usage = "--source SRC --db PATH [options]",
        .summary = "Store images from a folder of PNGs (subfolder = class) or from MNIST-format\n"
                   "IDX files in a gambar dataset, with provenance, opt-outs and de-duplication.\n"
                   "Re-running the same command resumes or completes an earlier run.",
        .opts = opts,
        .nopts = (int)ARRAY_LEN(opts),
        .epilog = "Exit status 3 means some files were rejected (the rest were stored).",
    };
    int pos = cli_parse(&spec, argc, argv);
    if (pos < argc) cli_usage_error(&spec, "unexpected argument '%s'", argv[pos]);
    if (!o->source) cli_usage_error(&spec, "--source is required");
    if (!o->db) cli_usage_error(&spec, "--db is required");
    if (o->size && !parse_size(o->size, &o->w, &o->h))
        cli_usage_error(&spec, "--size: '%s' is not WxH (1..4096)", o->size);
    if (o->channels && o->channels != 1 && o->channels != 3) cli_usage_error(&spec, "--channels must be 1 or 3");
    if (o->threads < 0 || o->threads > 256) cli_usage_error(&spec, "--threads must be 0..256");
    if (o->max_dim < 1 || o->max_dim > 1000000) cli_usage_error(&spec, "--max-dim must be 1..1000000");
    if (o->batch < 0) cli_usage_error(&spec, "--batch must not be negative");
    if (o->max_bytes < 1024) cli_usage_error(&spec, "--max-bytes must be at least 1024");
    if (!o->threads) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = nc > 0 ? nc : 1;
    }
    o->is_idx = strncmp(o->source, "idx:", 4) == 0;
    if (o->captions && !o->is_idx)
        cli_usage_error(&spec, "--captions is for an idx: source (a folder's captions are NAME.txt files)");
}

/* The run's counters and batching policy, before anything is opened. */
static void run_init(const ing_opts_t *o, ing_run_t *r) {
    *r = (ing_run_t){.batch_n = o->batch ? (uint64_t)o->batch : ING_DEFAULT_BATCH_N,
                     .batch_bytes = ING_DEFAULT_BATCH_BYTES,
                     .desc = o->source};
    if (o->batch) r->batch_bytes = SIZE_MAX;
    r->group = !o->batch;
}

/* DatasetInfo.source names the source absolutely: desc[0..cap). */
static void describe_source(const ing_opts_t *o, char *desc, size_t cap) {
    if (o->is_idx) {
        char dir[PATH_MAX];
        const char *pre = o->source + 4, *slash = strrchr(pre, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - pre) : 1, slash ? pre : ".");
        char absdir[PATH_MAX];
        if (slash == pre || !realpath(dir, absdir)) snprintf(desc, cap, "%s", o->source);
        else snprintf(desc, cap, "idx:%s/%s", absdir, slash ? slash + 1 : pre);
    } else {
        char abs[PATH_MAX];
        snprintf(desc, cap, "%s", realpath(o->source, abs) ? abs : o->source);
    }
}

/* Load --optout and --manifest. Returns 0 or an rc (logged). */
static int load_lists(const ing_opts_t *o, ing_run_t *r, ing_shaset_t *optout) {
    int rc;
    if (o->optout_path && (rc = ing_optout_load(o->optout_path, optout))) return rc;
    if (o->manifest) {
        char root_abs[PATH_MAX];
        if (o->is_idx || !realpath(o->source, root_abs)) snprintf(root_abs, sizeof root_abs, "%s", o->source);
        if ((rc = ing_manifest_load(o->manifest, root_abs, &r->man))) return rc;
        r->have_man = true;
        r->man_path = o->manifest;
    }
    return 0;
}

/* Check the source before creating anything. Returns 0 or an rc (logged). */
static int check_source(const ing_opts_t *o) {
    if (o->is_idx) {
        idx_t x;
        int rc = idx_open(o->source + 4, &x);
        if (!rc) idx_close(&x);
        return rc;
    }
    struct stat sst;
    if (stat(o->source, &sst) != 0 || !S_ISDIR(sst.st_mode)) {
        int rc = stat(o->source, &sst) != 0 ? errno : ENOTDIR;
        if (rc == ENOTDIR) log_error("%s: the source is not a folder (use idx:PREFIX for IDX files)", o->source);
        else log_error("%s: cannot read the source folder: %s", o->source, strerror(rc));
        return rc;
    }
    return 0;
}

/* Open (or create) the dataset and settle the shape: the dataset's, else
 * --size/--channels, else the defaults (o->w/h/channels updated; a folder
 * without them gets its files' own shape, decided in run_folder from
 * their headers before anything is stored, ingest_shape.c). Returns 0 or
 * an rc (logged). */
static int open_dataset(ing_opts_t *o, ing_run_t *r) {
    int rc = store_open(o->db, STORE_CREATE, &r->st);
    if (rc) return rc;
    r->handed = r->base = store_count(r->st);
    const Gambar__DatasetInfo *info = store_info(r->st);
    if (info && info->height) {
        if ((o->size && (o->w != info->width || o->h != info->height)) ||
            (o->channels && (uint32_t)o->channels != info->channels)) {
            log_error("%s: the dataset holds %ux%u images with %u channel(s); --size/--channels differ", o->db,
                      info->width, info->height, info->channels);
            return GB_EMISMATCH;
        }
        o->w = info->width, o->h = info->height;
        o->channels = info->channels;
    }
    if (!o->w && o->is_idx) {
        idx_t x;
        if ((rc = idx_open(o->source + 4, &x))) return rc;
        o->w = x.w, o->h = x.h;
        idx_close(&x);
    }
    if (!o->channels && o->is_idx) o->channels = 1;
    return 0;
}

/* Opt-outs cannot remove what an earlier run stored: say so. */
static void warn_stored_optouts(const ing_opts_t *o, const ing_run_t *r, const ing_shaset_t *optout) {
    uint64_t stored_already = 0, idx;
    for (size_t i = 0; i < optout->n; i++)
        if (store_find_sha(r->st, optout->sha[i], &idx) == 0) stored_already++;
    if (stored_already)
        log_warn("%s: %llu example(s) stored by an earlier run are in the opt-out list; they cannot be "
                 "removed in place (re-ingest into a new dataset)", o->db, (unsigned long long)stored_already);
}

/* Announce the run and ingest the source. Returns 0 or the source's rc. */
static int run_source(const ing_opts_t *o, ing_run_t *r, const ing_shaset_t *optout, bool *interrupted) {
    if (o->w && o->channels)
        log_info("ingesting %s into %s as %ux%u, %lld channel(s), %lld thread(s)", o->source, o->db, o->w, o->h,
                 o->channels, o->is_idx ? 1 : o->threads);
    else
        log_info("ingesting %s into %s, %lld thread(s)", o->source, o->db, o->threads);
    if (o->is_idx && o->captions) {
        ing_capfile_t cf;
        int rc = ing_capfile_open(o->captions, &cf);
        if (rc) return rc;
        r->capf = &cf;
        rc = run_idx(r, o->source + 4, o->limit, o->w, o->h, (uint32_t)o->channels, optout, interrupted);
        r->capf = NULL;
        ing_capfile_close(&cf);
        return rc;
    }
    if (o->is_idx)
        return run_idx(r, o->source + 4, o->limit, o->w, o->h, (uint32_t)o->channels, optout, interrupted);
    return run_folder(r, o->source, o->limit, (int)o->threads, o->w, o->h, (uint32_t)o->channels,
                      (uint32_t)o->max_dim, (size_t)o->max_bytes, optout, interrupted);
}

/* Commit what is staged, also after an interrupt or a source error
 * (source_rc). Returns the run's rc: source_rc, else a store error. */
static int commit_rest(const ing_opts_t *o, ing_run_t *r, int rc) {
    if (!r->fatal && r->st) {
        if (store_staged(r->st) || r->d_optouts || r->d_dups) {
            ing_commit(r, true);
        } else {
            int frc = store_flush(r->st);
            if (frc) r->fatal = frc;
            else if (!rc && !store_info(r->st)) ing_commit(r, true);
        }
    }
    if (r->fatal) {
        log_error("%s: ingest stopped: %s; the %llu example(s) committed before are intact", o->db,
                  err_str(r->fatal), (unsigned long long)store_count(r->st));
        if (!rc) rc = r->fatal;
    }
    return rc;
}

/* The summary lines and --json, from what is in the dataset. Returns rc,
 * or the --json write error when rc was 0. */
static int report_summary(const ing_opts_t *o, ing_run_t *r, double secs, bool interrupted, int rc) {
    double rss = peak_rss_mib();
    if (!r->st) return rc;
    /* The summary counts what is in the dataset, not what was staged:
     * a failed commit drops its batch (and what was staged after). */
    uint64_t committed = store_count(r->st) - r->base;
    if (committed < r->stored) {
        log_error("%s: %llu example(s) were decoded but never committed (lost with the failed "
                  "transaction; run again to store them)", o->db, (unsigned long long)(r->stored - committed));
        r->stored = committed;
    }
    const Gambar__DatasetInfo *fi = store_info(r->st);
    char dh[DIGEST_HEX_LEN + 1] = "";
    if (fi && fi->digest.len == DIGEST_LEN) digest_hex(fi->digest.data, DIGEST_LEN, dh);
    uint64_t done = r->stored + r->already + r->dups + r->optouts + r->nrejected;
    log_info("%s: %llu stored, %llu already present, %llu duplicate(s), %llu opted out, %llu rejected "
             "(not_png %llu, corrupt %llu, too_large %llu, over_budget %llu, unreadable %llu)",
             interrupted ? "interrupted" : "done", (unsigned long long)r->stored, (unsigned long long)r->already,
             (unsigned long long)r->dups, (unsigned long long)r->optouts, (unsigned long long)r->nrejected,
             (unsigned long long)r->rejected[ING_R_NOT_PNG], (unsigned long long)r->rejected[ING_R_CORRUPT],
             (unsigned long long)r->rejected[ING_R_TOO_LARGE], (unsigned long long)r->rejected[ING_R_OVER_BUDGET],
             (unsigned long long)r->rejected[ING_R_UNREADABLE]);
    if (fi && (fi->captions_total || r->capst.invalid || r->capst.truncated || r->capst.dropped ||
               r->capst.unreadable))
        log_info("captions: %llu example(s) with captions, %llu caption(s) in the dataset; this run: %llu invalid "
                 "UTF-8 skipped, %llu cut to %d bytes, %llu over %d per image dropped, %llu caption file(s) "
                 "unreadable", (unsigned long long)fi->examples_with_captions,
                 (unsigned long long)fi->captions_total, (unsigned long long)r->capst.invalid,
                 (unsigned long long)r->capst.truncated, ING_CAP_MAX_BYTES, (unsigned long long)r->capst.dropped,
                 ING_CAP_MAX_N, (unsigned long long)r->capst.unreadable);
    log_info("dataset %s: %llu example(s), digest %.16s...; %.2f s, %.0f files/s, peak RSS %.1f MiB", o->db,
             (unsigned long long)store_count(r->st), dh, secs, secs > 0 ? done / secs : 0.0, rss);
    if (o->json) {
        int jrc = write_json(o->json, r, store_count(r->st), dh, secs, rss, interrupted);
        if (jrc) {
            log_error("--json %s: cannot write: %s", o->json, strerror(jrc));
            if (!rc) rc = jrc;
        }
    }
    return rc;
}

/* Manifest entries that matched nothing, after a complete run. */
static void report_manifest_unused(const ing_opts_t *o, const ing_run_t *r, bool interrupted, int rc) {
    if (!r->have_man) return;
    size_t unused = 0;
    for (size_t i = 0; i < r->man.n; i++) unused += !r->man.e[i].used;
    if (unused && !rc && !interrupted && !o->limit)
        log_info("--manifest: %zu entr%s matched no stored file", unused, unused == 1 ? "y" : "ies");
}

/* The process exit status (see the README's table). */
static int exit_status(const ing_run_t *r, int rc, bool interrupted) {
    if (interrupted) return GB_EXIT_INTERRUPTED;
    if (rc) return err_exit_code(rc);
    if (r->nrejected) return GB_EXIT_DATA;
    return GB_EXIT_OK;
}

int main(int argc, char **argv) {
    ing_opts_t o;
    parse_options(argc, argv, &o);
    sig_install();
    double t0 = gb_now();
    bool interrupted = false;
    ing_shaset_t optout = {0};
    ing_run_t r;
    run_init(&o, &r);
    char desc[PATH_MAX + 8];
    describe_source(&o, desc, sizeof desc);
    r.desc = desc;
    int rc = load_lists(&o, &r, &optout);
    if (!rc) rc = check_source(&o);
    if (!rc) rc = open_dataset(&o, &r);
    if (!rc) {
        if (optout.n) warn_stored_optouts(&o, &r, &optout);
        rc = run_source(&o, &r, &optout, &interrupted);
        rc = commit_rest(&o, &r, rc);
    }
    rc = report_summary(&o, &r, gb_now() - t0, interrupted, rc);
    report_manifest_unused(&o, &r, interrupted, rc);
    int crc = store_close(&r.st); /* the final sync: logged with the folder */
    if (crc && !rc) rc = crc;
    ing_manifest_free(&r.man);
    ing_shaset_free(&optout);
    return exit_status(&r, rc, interrupted);
}
