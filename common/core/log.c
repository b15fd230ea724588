/* log.c - stderr logging with stage name and pid (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *g_prog = "gambar";
static log_level_t g_level = LOG_INFO;

void log_init(const char *prog) {
    g_prog = prog;
    const char *e = getenv("GAMBAR_LOG_LEVEL");
    if (e) {
        if (!strcasecmp(e, "debug")) g_level = LOG_DEBUG;
        else if (!strcasecmp(e, "info")) g_level = LOG_INFO;
        else if (!strcasecmp(e, "warn")) g_level = LOG_WARN;
        else if (!strcasecmp(e, "error")) g_level = LOG_ERROR;
    }
}

void log_set_level(log_level_t level) { g_level = level; }
log_level_t log_get_level(void) { return g_level; }
const char *log_prog(void) { return g_prog; }

int log_use_color(int fd) {
    const char *nc = getenv("NO_COLOR");
    if (nc && *nc) return 0;
    return isatty(fd);
}

static void log_vmsg(log_level_t level, unsigned long long suppressed, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

void log_msg(log_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, 0, fmt, ap);
    va_end(ap);
}

/* Logged occurrences among the first n: 1, 2, 3, then the powers of two
 * 4, 8, ... up to n. */
static unsigned long long limit_shown(unsigned long long n) {
    if (n <= 3) return n;
    unsigned long long k = 3;
    for (unsigned long long p = 4; p && p <= n; p <<= 1) k++;
    return k;
}

int log_limit_due(unsigned long long nth) { return nth <= 3 || (nth & (nth - 1)) == 0; }

int log_limit_hit(log_limit_t *l, unsigned long long *suppressed) {
    unsigned long long n = __atomic_add_fetch(&l->seen, 1, __ATOMIC_RELAXED);
    if (!log_limit_due(n)) return 0;
    if (suppressed) *suppressed = n <= 4 ? 0 : n / 2 - 1; /* the previous logged one was n/2 */
    return 1;
}

unsigned long long log_limit_seen(const log_limit_t *l) { return __atomic_load_n(&l->seen, __ATOMIC_RELAXED); }

unsigned long long log_limit_suppressed(const log_limit_t *l) {
    unsigned long long n = log_limit_seen(l);
    return n - limit_shown(n);
}

void log_msg_limited(log_limit_t *l, log_level_t level, const char *fmt, ...) {
    unsigned long long sup = 0;
    if (!log_limit_hit(l, &sup)) return;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, sup, fmt, ap);
    va_end(ap);
}

static void log_vmsg(log_level_t level, unsigned long long suppressed, const char *fmt, va_list ap) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    static const char *colors[] = {"\033[2m", "\033[36m", "\033[33m", "\033[1;31m"};
    if (level < g_level || level > LOG_ERROR) return;
    char buf[4096];
    int col = log_use_color(2);
    int n = snprintf(buf, sizeof buf, "%s[%d] %s%s%s: ", g_prog, (int)getpid(),
                     col ? colors[level] : "", names[level], col ? "\033[0m" : "");
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    if (suppressed) {
        int k = snprintf(buf + len, sizeof buf - 1 - len, " (%llu similar suppressed)", suppressed);
        if (k > 0) len += (size_t)k;
        if (len > sizeof buf - 2) len = sizeof buf - 2;
    }
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}
