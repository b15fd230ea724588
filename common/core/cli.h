/* cli.h - command-line parsing shared by every gambar program.
 *
 * A program describes its options in a table; cli_parse() handles them
 * with getopt_long and adds the options every program has:
 *   -h, --help      usage on stdout, exit 0
 *   -V, --version   "PROG (gambar) VERSION" on stdout, exit 0
 *   -q, --quiet     only warnings and errors on stderr
 *   -v, --verbose   debug messages on stderr
 * Bad options or values print "PROG: reason" and "Try 'PROG --help'." on
 * stderr and exit with GB_EXIT_USAGE (2). */
#ifndef GB_CLI_H
#define GB_CLI_H

#include <stdbool.h>
#include <stdint.h>

#ifndef GAMBAR_VERSION
#define GAMBAR_VERSION "0.0.0-dev"
#endif

typedef enum {
    CLI_FLAG, /* dst: bool*; takes no value */
    CLI_STR,  /* dst: const char**; points into argv */
    CLI_INT,  /* dst: long long*; decimal, checked for range and junk */
    CLI_U64,  /* dst: uint64_t*; decimal or 0x hex */
    CLI_DBL,  /* dst: double*; finite */
} cli_type_t;

typedef struct {
    const char *name;    /* long name without "--" */
    char short_name;     /* 0 = no short form */
    cli_type_t type;
    void *dst;           /* where the value goes; see cli_type_t */
    const char *metavar; /* shown in --help, e.g. "PATH" */
    const char *help;    /* one line */
    bool *seen;          /* optional: set true when given */
} cli_opt_t;

typedef struct {
    const char *prog;        /* "gambar-ingest" */
    const char *usage;       /* "--source SRC --db PATH [options]" */
    const char *summary;     /* one paragraph shown under the usage line */
    const cli_opt_t *opts;
    int nopts;
    const char *epilog;      /* shown at the end of --help (may be NULL) */
} cli_spec_t;

/* Parse argv. Returns the index of the first positional argument
 * (argc when none). Exits the process on --help, --version and usage
 * errors, as described above. Also calls log_init(spec->prog). */
int cli_parse(const cli_spec_t *spec, int argc, char **argv);

/* Report a usage error found after parsing (e.g. a missing required
 * option) in the same style and exit with GB_EXIT_USAGE. */
_Noreturn void cli_usage_error(const cli_spec_t *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
