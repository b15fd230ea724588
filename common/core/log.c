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

void log_msg(log_level_t level, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    static const char *colors[] = {"\033[2m", "\033[36m", "\033[33m", "\033[1;31m"};
    if (level < g_level || level > LOG_ERROR) return;
    char buf[4096];
    int col = log_use_color(2);
    int n = snprintf(buf, sizeof buf, "%s[%d] %s%s%s: ", g_prog, (int)getpid(),
                     col ? colors[level] : "", names[level], col ? "\033[0m" : "");
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}
