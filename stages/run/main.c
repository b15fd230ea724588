/* main.c - gambar-run: start a pipeline of gambar stages from an INI file.
 *
 * This file is only the command line: it loads and checks the pipeline
 * (common/pipeline.c), prints the plan when asked (--check, --dry-run,
 * --dot) and otherwise hands it to the supervisor (run_sup.c). --set may
 * be given many times, which cli.h's one-value options cannot hold, so
 * those pairs are taken out of argv before cli_parse sees it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "pipeline.h"
#include "run.h"
#include "wire_sec.h"

static const char *opt_run_dir, *opt_set_dummy, *opt_keygen;
static bool opt_check, opt_dry_run, opt_dot;

static const cli_opt_t opts[] = {
    {"run-dir", 'd', CLI_STR, &opt_run_dir, "DIR", "run folder (default runs/<file stem>-<time>; reuse one to resume)", NULL},
    {"set", 0, CLI_STR, &opt_set_dummy, "SEC.KEY=VAL", "override a key, e.g. train.steps=500 or vars.epochs=3 (repeatable)", NULL},
    {"check", 0, CLI_FLAG, &opt_check, NULL, "validate the pipeline and exit (starts nothing)", NULL},
    {"dry-run", 'n', CLI_FLAG, &opt_dry_run, NULL, "print the plan: start order, command lines, channels", NULL},
    {"dot", 0, CLI_FLAG, &opt_dot, NULL, "print the stage and channel graph as Graphviz DOT", NULL},
    {"keygen", 0, CLI_STR, &opt_keygen, "DIR", "make a CURVE keys folder DIR (for stages started by hand) and exit",
     NULL},
    WIRE_SEC_CLI_OPTS,
};

static const cli_spec_t spec = {
    .prog = "gambar-run",
    .usage = "FILE [--run-dir DIR] [--set SEC.KEY=VAL ...] [--check] [--dry-run] [--dot]\n"
             "       gambar-run --keygen DIR",
    .summary = "Run a pipeline of gambar stages described in an INI file: start them in dependency\n"
               "order, wire their ZeroMQ channels, prefix and log their output, restart crashed\n"
               "services with backoff (the trainer with --resume, the augmenter at the batch the\n"
               "trainer needs next) and stop everything in reverse order on Ctrl-C.",
    .opts = opts,
    .nopts = (int)(sizeof opts / sizeof opts[0]),
    .epilog = "The file format: pipelines/README.md and gambar-run(1).\n"
              "Exit status: a failed job's own status; 3 when the pipeline file is invalid;\n"
              "1 when a service kept crashing; 130 after Ctrl-C.\n"
              "Every stage gets the run's CURVE keys (RUN_DIR/keys, or --curve-keys DIR) as\n"
              "$GAMBAR_CURVE_KEYS: tcp:// channels are encrypted and authenticated.",
};

static char *make_abs(const char *p) {
    if (p[0] == '/') return xstrdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return xstrdup(p);
    size_t n = strlen(cwd) + strlen(p) + 2;
    char *r = xmalloc(n);
    snprintf(r, n, "%s/%s", cwd, p);
    return r;
}

/* The keys every stage gets: --curve-keys DIR, else $GAMBAR_CURVE_KEYS,
 * else RUN_DIR/keys (made when missing). An empty value means none. Loaded
 * here too (gambar-run's own metrics socket) and exported, as an absolute
 * path, for the children. Returns 0 or an exit status. */
static int run_keys(const char *run_dir) {
    const char *dir = wire_sec_opt_keys ? wire_sec_opt_keys : getenv(WIRE_SEC_ENV);
    char made[4200];
    if (!dir) {
        if (run_dir_keys(run_dir, made, sizeof made)) return GB_EXIT_IO;
        dir = made;
    }
    if (!*dir) {
        log_warn("no CURVE keys: tcp:// channels are neither encrypted nor authenticated");
        unsetenv(WIRE_SEC_ENV);
        return 0;
    }
    char *abs = make_abs(dir), why[700];
    int rc = wire_sec_load(abs, why, sizeof why);
    if (rc) log_error("CURVE keys: %s", why);
    else setenv(WIRE_SEC_ENV, abs, 1);
    free(abs);
    return rc ? GB_EXIT_USAGE : 0;
}

int main(int argc, char **argv) {
    /* take --set out of argv */
    char **sets = xcalloc((size_t)argc + 1, sizeof(char *));
    int nsets = 0, nargc = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            while (i < argc) argv[nargc++] = argv[i++];
            break;
        }
        if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) {
                log_init("gambar-run");
                cli_usage_error(&spec, "option '--set' requires an argument");
            }
            sets[nsets++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            sets[nsets++] = argv[i] + 6;
        } else {
            argv[nargc++] = argv[i];
        }
    }
    argv[nargc] = NULL;
    int first = cli_parse(&spec, nargc, argv);
    if (opt_keygen) {
        if (first < nargc) cli_usage_error(&spec, "--keygen DIR takes no pipeline FILE");
        char why[700];
        int krc = wire_sec_keygen(opt_keygen, why, sizeof why);
        if (krc == EEXIST) cli_usage_error(&spec, "--keygen: %s", why);
        if (krc) {
            log_error("--keygen: %s", why);
            return GB_EXIT_IO;
        }
        printf("%s\n", opt_keygen);
        return GB_EXIT_OK;
    }
    if (first >= nargc) cli_usage_error(&spec, "no pipeline FILE given");
    if (first + 1 < nargc) cli_usage_error(&spec, "one pipeline FILE only (got '%s' too)", argv[first + 1]);
    const char *file = argv[first];

    char bin_dir[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", bin_dir, sizeof bin_dir - 1);
    if (n > 0) {
        bin_dir[n] = 0;
        char *sl = strrchr(bin_dir, '/');
        if (sl) *sl = 0;
    } else {
        bin_dir[0] = 0;
    }
    char *run_dir;
    if (opt_run_dir && *opt_run_dir) {
        run_dir = make_abs(opt_run_dir);
    } else {
        const char *base = strrchr(file, '/');
        base = base ? base + 1 : file;
        char stem[256];
        snprintf(stem, sizeof stem, "%s", base);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = 0;
        char ts[32];
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", &tm);
        char rel[400];
        snprintf(rel, sizeof rel, "runs/%s-%s", stem, ts);
        run_dir = make_abs(rel);
    }
    size_t rl = strlen(run_dir);
    while (rl > 1 && run_dir[rl - 1] == '/') run_dir[--rl] = 0;

    pipeline_t *pl = NULL;
    int rc = pl_load(file, &pl);
    for (int i = 0; rc == 0 && i < nsets; i++) rc = pl_set(pl, sets[i]);
    if (rc == 0) {
        pl_opts_t o = {.run_dir = run_dir, .bin_dir = bin_dir, .check_programs = 1};
        rc = pl_resolve(pl, &o);
    }
    if (rc) {
        pl_print_errors(pl, stderr);
        int st = (rc > 0) ? GB_EXIT_IO : GB_EXIT_DATA;
        pl_free(pl);
        free(run_dir);
        free(sets);
        return st;
    }
    int status = 0;
    if (opt_check) {
        printf("%s: ok (%d stages, %d channels)\n", file, pl->nstages, pl->nchans);
    } else if (opt_dry_run || opt_dot) {
        if (opt_dry_run) {
            printf("run folder: %s\n", run_dir);
            pl_print_plan(pl, stdout);
        }
        if (opt_dot) pl_print_dot(pl, stdout);
    } else {
        rc = run_dir_prepare(pl, run_dir, file);
        status = rc ? GB_EXIT_IO : run_keys(run_dir);
        if (!status) status = run_supervise(pl, run_dir);
    }
    pl_free(pl);
    free(run_dir);
    free(sets);
    return status;
}
