/* cli.c - table-driven getopt_long wrapper (see cli.h). */
#include "cli.h"
#include "base.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void cli_usage_error(const cli_spec_t *spec, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", spec->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", spec->prog);
    exit(GB_EXIT_USAGE);
}

static void print_help(const cli_spec_t *spec) {
    printf("Usage: %s %s\n", spec->prog, spec->usage);
    if (spec->summary) printf("\n%s\n", spec->summary);
    printf("\nOptions:\n");
    for (int i = 0; i < spec->nopts; i++) {
        const cli_opt_t *o = &spec->opts[i];
        char left[96];
        int n = 0;
        if (o->short_name) n = snprintf(left, sizeof left, "-%c, ", o->short_name);
        else n = snprintf(left, sizeof left, "    ");
        snprintf(left + n, sizeof left - (size_t)n, "--%s%s%s", o->name,
                 o->type == CLI_FLAG ? "" : " ", o->type == CLI_FLAG ? "" : (o->metavar ? o->metavar : "VALUE"));
        printf("  %-28s %s\n", left, o->help ? o->help : "");
    }
    printf("  %-28s %s\n", "-q, --quiet", "only warnings and errors on stderr");
    printf("  %-28s %s\n", "-v, --verbose", "debug messages on stderr");
    printf("  %-28s %s\n", "-h, --help", "show this help and exit");
    printf("  %-28s %s\n", "-V, --version", "show the version and exit");
    if (spec->epilog) printf("\n%s\n", spec->epilog);
    printf("\nExit status: 0 ok, 1 failure, 2 usage error, 3 bad data, 4 I/O error,\n"
           "5 numeric failure, 6 peer/socket error, 130 interrupted.\n");
}

static void set_value(const cli_spec_t *spec, const cli_opt_t *o, const char *arg) {
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case CLI_FLAG: *(bool *)o->dst = true; break;
    case CLI_STR: *(const char **)o->dst = arg; break;
    case CLI_INT: {
        long long v = strtoll(arg, &end, 10);
        if (errno || end == arg || *end)
            cli_usage_error(spec, "--%s: '%s' is not an integer", o->name, arg);
        *(long long *)o->dst = v;
        break;
    }
    case CLI_U64: {
        if (arg[0] == '-') cli_usage_error(spec, "--%s: '%s' must not be negative", o->name, arg);
        unsigned long long v = strtoull(arg, &end, 0);
        if (errno || end == arg || *end)
            cli_usage_error(spec, "--%s: '%s' is not an unsigned integer", o->name, arg);
        *(uint64_t *)o->dst = (uint64_t)v;
        break;
    }
    case CLI_DBL: {
        double v = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(v))
            cli_usage_error(spec, "--%s: '%s' is not a finite number", o->name, arg);
        *(double *)o->dst = v;
        break;
    }
    }
    if (o->seen) *o->seen = true;
}

int cli_parse(const cli_spec_t *spec, int argc, char **argv) {
    log_init(spec->prog);
    int n = spec->nopts;
    /* Static so the tables stay reachable when a usage error exits from
     * inside the loop (no leak report); freed on the normal path. */
    static struct option *lo;
    static char *so;
    lo = xcalloc((size_t)n + 5, sizeof *lo);
    so = xcalloc((size_t)n * 2 + 16, 1);
    size_t sp = 0;
    so[sp++] = ':';
    for (int i = 0; i < n; i++) {
        const cli_opt_t *o = &spec->opts[i];
        lo[i].name = o->name;
        lo[i].has_arg = o->type == CLI_FLAG ? no_argument : required_argument;
        lo[i].flag = NULL;
        lo[i].val = 1000 + i;
        if (o->short_name) {
            so[sp++] = o->short_name;
            if (o->type != CLI_FLAG) so[sp++] = ':';
        }
    }
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n + 1] = (struct option){"version", no_argument, NULL, 'V'};
    lo[n + 2] = (struct option){"quiet", no_argument, NULL, 'q'};
    lo[n + 3] = (struct option){"verbose", no_argument, NULL, 'v'};
    memcpy(so + sp, "hVqv", 5);
    opterr = 0;
    optind = 1;
    int c, li;
    while ((c = getopt_long(argc, argv, so, lo, &li)) != -1) {
        if (c == 'h') { print_help(spec); free(lo); free(so); exit(0); }
        if (c == 'V') { printf("%s (gambar) %s\n", spec->prog, GAMBAR_VERSION); free(lo); free(so); exit(0); }
        if (c == 'q') { log_set_level(LOG_WARN); continue; }
        if (c == 'v') { log_set_level(LOG_DEBUG); continue; }
        if (c == '?') {
            if (optopt) cli_usage_error(spec, "unknown option '-%c'", optopt);
            cli_usage_error(spec, "unknown option '%s'", argv[optind - 1]);
        }
        if (c == ':') cli_usage_error(spec, "option '%s' needs a value", argv[optind - 1]);
        const cli_opt_t *o = NULL;
        if (c >= 1000) o = &spec->opts[c - 1000];
        else for (int i = 0; i < n; i++) if (spec->opts[i].short_name == c) o = &spec->opts[i];
        if (!o) cli_usage_error(spec, "unknown option");
        set_value(spec, o, optarg);
    }
    free(lo);
    free(so);
    lo = NULL;
    so = NULL;
    return optind;
}
