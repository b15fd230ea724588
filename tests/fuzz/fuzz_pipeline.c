/* fuzz_pipeline.c - libFuzzer harness for the pipeline-file parser and
 * validator (stages/run/pipeline.c), with no process started.
 *
 * The input is a pipeline file. It is parsed, two overrides are applied
 * (one may name a missing section, which must be an error, not a crash),
 * and it is resolved without looking programs up. Invariants (ASSERT):
 * a failing step leaves at least one error message; a resolved pipeline
 * has a start order that is a permutation of its stages in which every
 * stage comes after everything it waits for, every instance has an argv
 * whose first word is the program, and the plan, JSON and DOT printers
 * run to completion. */
#include "base.h"
#include "pipeline.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!devnull) devnull = fopen("/dev/null", "w");
    ASSERT(devnull);
    pipeline_t *pl = NULL;
    int rc = pl_parse((const char *)data, size, "fuzz.ini", &pl);
    ASSERT(pl);
    if (rc == 0) {
        rc = pl_set(pl, "train.steps=5");
        if (rc == 0) rc = pl_set(pl, "vars.epochs=2");
    }
    if (rc == 0) {
        pl_opts_t o = {.run_dir = "/tmp/fuzz-run", .bin_dir = NULL, .check_programs = 0};
        rc = pl_resolve(pl, &o);
    }
    if (rc != 0) {
        ASSERT(pl->nerrs > 0 && pl->errs[0].msg);
        pl_print_errors(pl, devnull);
    } else {
        int seen[PL_MAX_SECTIONS] = {0};
        ASSERT(pl->nstages > 0 && pl->nstages <= PL_MAX_SECTIONS);
        for (int k = 0; k < pl->nstages; k++) {
            int s = pl->order[k];
            ASSERT(s >= 0 && s < pl->nstages && !seen[s]);
            for (int d = 0; d < pl->stages[s].nafter; d++) ASSERT(seen[pl->stages[s].after[d]]);
            seen[s] = 1;
            const pl_stage_t *st = &pl->stages[s];
            for (int r = 0; r < st->replicas; r++) {
                ASSERT(st->inst[r].argc >= 1 && st->inst[r].argv[st->inst[r].argc] == NULL);
                ASSERT(!strcmp(st->inst[r].argv[0], st->program));
            }
        }
        pl_print_plan(pl, devnull);
        pl_print_plan_json(pl, devnull);
        pl_print_dot(pl, devnull);
    }
    pl_free(pl);
    return 0;
}
