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

/* True when colour may be used on fd (a TTY and NO_COLOR unset). */
int log_use_color(int fd);

#endif
