/* progress.c - rate-limited progress line on a TTY stderr (see progress.h).
 *
 * The line is rewritten in place with "\r...\033[K" in one write(2), so it
 * never interleaves half-lines with log messages written by other threads
 * between redraws. */
#include "progress.h"

#include "base.h"
#include "log.h"

#include <unistd.h>

#define PROGRESS_PERIOD 0.1 /* seconds between redraws */
#define PROGRESS_BAR 30     /* characters in the bar */

void progress_init(progress_t *p, const char *label, uint64_t total) {
    memset(p, 0, sizeof *p);
    p->on = log_use_color(2) != 0;
    p->label = label;
    p->total = total;
    p->start = gb_now();
    p->last = 0;
}

void progress_update(progress_t *p, uint64_t done) {
    if (!p->on) return;
    double now = gb_now();
    if (now - p->last < PROGRESS_PERIOD && done != p->total) return;
    p->last = now;
    double el = now - p->start;
    double rate = el > 0 ? done / el : 0;
    char line[256];
    int n;
    if (p->total) {
        double f = (double)done / (double)p->total;
        if (f > 1) f = 1;
        char bar[PROGRESS_BAR + 1];
        int fill = (int)(f * PROGRESS_BAR);
        for (int i = 0; i < PROGRESS_BAR; i++) bar[i] = i < fill ? '#' : '.';
        bar[PROGRESS_BAR] = 0;
        double eta = rate > 0 ? (double)(p->total - (done < p->total ? done : p->total)) / rate : 0;
        n = snprintf(line, sizeof line, "\r%s [%s] %3.0f%% %llu/%llu %.0f/s eta %.0fs\033[K", p->label,
                     bar, f * 100, (unsigned long long)done, (unsigned long long)p->total, rate, eta);
    } else {
        n = snprintf(line, sizeof line, "\r%s %llu %.0f/s\033[K", p->label, (unsigned long long)done, rate);
    }
    if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
    ssize_t w = write(2, line, (size_t)n);
    UNUSED(w);
    p->drawn = true;
}

void progress_clear(progress_t *p) {
    if (!p->on || !p->drawn) return;
    ssize_t w = write(2, "\r\033[K", 4);
    UNUSED(w);
    p->drawn = false;
}
