/* pipeline.h - pipeline files for gambar-run: parse, override, validate, plan.
 *
 * A pipeline file is INI (read with libinih through a line reader that
 * refuses over-long lines and stops at the first error). Sections:
 *   [vars]            NAME = VALUE, used as ${NAME} anywhere below
 *   [pipeline]        description, exit_when = jobs|all
 *   [channel NAME]    type = gambar.Batch, endpoint = tcp://... (optional)
 *   [channels]        NAME = gambar.Batch (short form, default endpoint)
 *   [STAGE]           command, args, opt.NAME, after, type, replicas, ...
 *                     (ranks = N, hosts, mpirun, mpirun_args: a gambar-train
 *                     stage started as "mpirun ... -np N gambar-train ...")
 * The format is described with a worked example in pipelines/README.md.
 *
 * Processing is in three steps so every error can name file, line and key
 * and so the fuzz harness can run everything but process start:
 *   pl_parse      text -> sections of raw (key, value, line) entries;
 *   pl_set        command-line overrides ("train.steps=500");
 *   pl_resolve    typed stages and channels, variables expanded, every
 *                 check done (unknown keys with "did you mean", unknown
 *                 stages, cycles, channels without producer or consumer,
 *                 message-type mismatches, missing programs), the start
 *                 order and each instance's argv and environment.
 * Errors are collected (up to PL_MAX_ERRORS) as "FILE:LINE: [sec] key: why".
 *
 * Limits (outside input): PL_MAX_FILE bytes, lines of at most the reader's
 * buffer (libinih's 200 bytes less CR/LF/NUL), PL_MAX_SECTIONS sections,
 * PL_MAX_REPLICAS replicas per stage. */
#ifndef GB_PIPELINE_H
#define GB_PIPELINE_H

#include <stddef.h>
#include <stdio.h>

#define PL_MAX_FILE (1u << 20)
#define PL_MAX_SECTIONS 128
#define PL_MAX_KEYS 512      /* per section */
#define PL_MAX_REPLICAS 64
#define PL_MAX_RANKS 256    /* ranks = N under mpirun */
#define PL_MAX_ERRORS 32
#define PL_MAX_VALUE 65536   /* one value, continuation lines included */

typedef enum { PL_JOB = 0, PL_SERVICE = 1 } pl_kind_t;
typedef enum { PL_RESTART_NO = 0, PL_RESTART_ON_FAILURE = 1, PL_RESTART_ALWAYS = 2 } pl_restart_t;

/* One raw entry of a section. line 0 = from the command line (--set). */
typedef struct {
    char *key;
    char *val;
    int line;
} pl_kv_t;

typedef struct {
    char *name; /* section name as written, e.g. "train", "channel batches" */
    int line;
    pl_kv_t *kv;
    int nkv;
} pl_sec_t;

/* A channel: a named message stream between stages. */
typedef struct {
    char *name;
    char *type;     /* "gambar.Batch", ... */
    char *endpoint; /* without @/> prefix */
    int line;
    int producers;  /* producing instances (replicas counted) */
    int consumers;
    int bind_producer; /* 1: producers bind, consumers connect; 0: the reverse */
} pl_chan_t;

/* One use of channels by a stage: out = batches. */
typedef struct {
    char *role;       /* "in", "out", "metrics", "serve", "sample" */
    int produce;      /* 1 producer/server side, 0 consumer/client side */
    int line;
    int *chans;       /* indices into pl->chans */
    int nchans;
    const char *option; /* option that takes the endpoint, NULL = env only */
    const char *type;   /* message type the stage expects, NULL = any */
} pl_use_t;

/* One process of a stage. */
typedef struct {
    char **argv;  /* NULL-terminated; argv[0] is the resolved program path */
    int argc;
    char **env;   /* extra "K=V" entries, NULL-terminated */
    int nenv;
} pl_inst_t;

typedef struct {
    char *name;
    int line;
    char *command;   /* as written */
    char *program;   /* resolved path (or the command when not checked) */
    int gambar;      /* index in the built-in stage table, -1 = foreign */
    pl_kind_t kind;
    pl_restart_t restart;
    int replicas;
    int start_retries;
    int stop_signal;
    double stop_timeout;
    char *host;
    int optional;    /* 1: when it fails for good the pipeline goes on without it */
    int *after;      /* stage indices */
    int nafter;
    pl_use_t *uses;
    int nuses;
    char **restart_args; /* appended when the stage is restarted */
    int nrestart_args;
    int start_batch_from; /* stage index or -1: gets --start-batch K from it */
    char *ckpt_dir;       /* this stage's --ckpt-dir value (NULL = none) */
    pl_inst_t *inst;      /* replicas instances */
    /* Under mpirun (ranks = N on a gambar-train stage; 0 = not): argv is
     * "MPIRUN [--hostfile F] [mpirun_args] --mca ... -np N -x NAME ...
     * PROGRAM ARGS"; launch_argc is the index of PROGRAM in it. */
    int ranks;
    char *mpirun;         /* resolved path of mpirun */
    char *hostfile;       /* absolute or relative to the pipeline file's folder */
    int launch_argc;
} pl_stage_t;

typedef struct {
    int line;
    char *msg; /* full message "FILE:LINE: ..." */
} pl_err_t;

typedef struct pipeline {
    char *file;    /* name used in messages */
    pl_sec_t *secs;
    int nsecs;
    /* set by pl_resolve */
    pl_stage_t *stages;
    int nstages;
    pl_chan_t *chans;
    int nchans;
    int *order;    /* start order: stage indices */
    int exit_all;  /* exit_when = all: wait for services too */
    char *description;
    pl_err_t errs[PL_MAX_ERRORS];
    int nerrs;
    int nerrs_total;
} pipeline_t;

typedef struct {
    const char *run_dir;  /* value of ${run_dir}; required */
    const char *bin_dir;  /* searched first for gambar-* commands (may be NULL) */
    int check_programs;   /* 1: look commands up (PATH) and require execute permission */
} pl_opts_t;

/* Parse text[0..n) (need not be NUL-terminated) read from file `file`
 * (used in messages). Always returns a pipeline in *out (free with
 * pl_free). Returns 0, or GB_EFORMAT with the first error in
 * (*out)->errs[0] (parsing stops at the first error). */
int pl_parse(const char *text, size_t n, const char *file, pipeline_t **out);

/* Read and parse a file (at most PL_MAX_FILE bytes). Returns 0,
 * GB_EFORMAT (errors in *out), GB_ETOOBIG, or an errno (file unreadable;
 * *out still set, with the message in errs[0]). */
int pl_load(const char *path, pipeline_t **out);

/* Apply an override "SECTION.KEY=VALUE" (SECTION may be "vars"; a KEY
 * that is not a stage key becomes opt.KEY, so train.steps=500 sets
 * --steps 500). Replaces the key's value or adds it. Returns 0 or
 * GB_EFORMAT with an error appended. */
int pl_set(pipeline_t *pl, const char *assignment);

/* Interpret, expand and check everything (see the file comment). Returns
 * 0, or GB_EFORMAT with the errors in pl->errs. Call once. */
int pl_resolve(pipeline_t *pl, const pl_opts_t *o);

/* Print all errors to f, one per line, then "N errors" when more than
 * PL_MAX_ERRORS were found. */
void pl_print_errors(const pipeline_t *pl, FILE *f);

/* The plan, for people (plan.txt / --dry-run) and for programs
 * (plan.json), and the channel graph as Graphviz DOT. pl must be resolved. */
void pl_print_plan(const pipeline_t *pl, FILE *f);
void pl_print_plan_json(const pipeline_t *pl, FILE *f);
void pl_print_dot(const pipeline_t *pl, FILE *f);

/* Endpoint argument for a use by a stage: "@ipc://..." when this side
 * binds, ">ipc://..." when it connects. Static buffer-free: returns a new
 * string (caller frees). */
char *pl_endpoint_arg(const pipeline_t *pl, const pl_use_t *u);

/* Levenshtein distance of a and b (bytes), capped at 100. */
int pl_edit_distance(const char *a, const char *b);

/* Quote one argument for a POSIX shell when needed (new string). */
char *pl_shell_quote(const char *s);

void pl_free(pipeline_t *pl);

#endif
