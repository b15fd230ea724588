/* log.h - one line per event on stderr, each naming the stage and pid.
 *
 * Format: "gambar-ingest[1234] warn: message". Colour (level word only) is
 * used when stderr is a TTY and NO_COLOR is unset. Data never goes through
 * here: stdout belongs to the program's output. Thread-safe (one write(2)
 * per line). */
#ifndef GB_LOG_H
#define GB_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_QUIET = 4 } log_level_t;

/* Set the program name shown in every line (not copied: pass a string that
 * lives for the whole run, usually a literal). The level starts at
 * LOG_INFO, or GAMBAR_LOG_LEVEL (debug|info|warn|error) when set. */
void log_init(const char *prog);
void log_set_level(log_level_t level);
log_level_t log_get_level(void);
const char *log_prog(void);

void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Rate limit for a line that may repeat without bound (a peer's garbage,
 * refused requests), so a flood cannot flood the log. Of N occurrences
 * the 1st, 2nd, 3rd and then the 4th, 8th, 16th, ... (powers of two) are
 * logged: about 3 + log2(N) lines, each saying how many similar ones were
 * suppressed since the one before. One log_limit_t per call site or kind,
 * zero-initialised (a static is fine); thread-safe (one atomic counter). */
typedef struct {
    unsigned long long seen;     /* occurrences so far */
} log_limit_t;

/* Whether the nth occurrence (1, 2, ...) is one to log, for a caller that
 * keeps its own count. */
int log_limit_due(unsigned long long nth);
/* Count one occurrence. Returns 1 when it is to be logged, with
 * *suppressed (may be NULL) set to the occurrences not logged since the
 * previous logged one; 0 when it is to be suppressed. */
int log_limit_hit(log_limit_t *l, unsigned long long *suppressed);
/* Occurrences counted so far, and how many of them were not logged (for
 * a summary at exit). */
unsigned long long log_limit_seen(const log_limit_t *l);
unsigned long long log_limit_suppressed(const log_limit_t *l);
/* log_msg through the limit l: counted always, logged when log_limit_hit
 * says so, with " (N similar suppressed)" appended when N > 0. */
void log_msg_limited(log_limit_t *l, log_level_t level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define log_info_limited(l, ...) log_msg_limited((l), LOG_INFO, __VA_ARGS__)
#define log_warn_limited(l, ...) log_msg_limited((l), LOG_WARN, __VA_ARGS__)

/* True when colour may be used on fd (a TTY and NO_COLOR unset). */
int log_use_color(int fd);

#endif
