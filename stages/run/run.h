/* run.h - gambar-run internals: the supervisor (run_sup.c) and the run
 * folder (run_dir.c), called from main.c. */
#ifndef GB_RUN_H
#define GB_RUN_H

#include "pipeline.h"

/* Create the run folder (and logs/), copy the pipeline file and write
 * plan.txt / plan.json. Returns 0 or an errno (logged). */
int run_dir_prepare(const pipeline_t *pl, const char *run_dir, const char *pipeline_path);

/* Make sure run_dir/keys holds the run's CURVE keys (wire_sec.h's layout,
 * one key pair that every stage uses as server and client): made on first
 * use, kept when the run folder is reused. Writes the folder's path to
 * out. Returns 0 or an errno (logged). */
int run_dir_keys(const char *run_dir, char *out, size_t outlen);

/* Append "STAGE REPLICA PID" to run_dir/pids (the process group id equals
 * the pid). Best effort. */
void run_dir_record_pid(const char *run_dir, const char *stage, int replica, int pid);

/* Start and supervise every stage of a resolved pipeline until it is done,
 * fails or is interrupted. Returns gambar-run's exit status: 0 when every
 * job succeeded, a failed job's exit status (128+signal when killed),
 * GB_EXIT_FAIL when a stage kept crashing, GB_EXIT_INTERRUPTED on
 * SIGINT/SIGTERM. */
int run_supervise(pipeline_t *pl, const char *run_dir);

#endif
