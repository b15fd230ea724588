/* progress.h - a one-line progress bar on stderr for long loops.
 *
 * Drawn only when stderr is a TTY and NO_COLOR is unset (log_use_color),
 * so logs, pipes and tests never see it. Redraws are rate-limited (at most
 * every 100 ms), so progress_update can be called once per item without
 * cost. Single-threaded: call from one thread. */
#ifndef GB_PROGRESS_H
#define GB_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    bool on;            /* drawing at all (TTY and colour allowed) */
    const char *label;  /* shown before the bar; not copied */
    uint64_t total;     /* 0 = unknown (no bar, just the count) */
    double start, last; /* gb_now() of start and of the last redraw */
    bool drawn;         /* something is on the line */
} progress_t;

/* Start a progress line (nothing is drawn yet). label must outlive p. */
void progress_init(progress_t *p, const char *label, uint64_t total);
/* Report done items of total; redraws when 100 ms passed since the last. */
void progress_update(progress_t *p, uint64_t done);
/* Clear the line (call before printing anything else on stderr, and at
 * the end). Harmless when nothing was drawn. */
void progress_clear(progress_t *p);

#endif
