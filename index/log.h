/*
 * log.h: structured one-line logs to stderr.
 *
 * Each line is "ts=<RFC3339 UTC> level=<lvl> <key=value ...> msg=\"...\"", written with a
 * single write(2) so lines from different threads never interleave.  The level is global
 * and set once at start-up (fanns_log_set_level); reading it is a relaxed atomic load.
 */
#ifndef FANNS_LOG_H
#define FANNS_LOG_H

typedef enum { FANNS_LOG_DEBUG = 0, FANNS_LOG_INFO, FANNS_LOG_WARN, FANNS_LOG_ERROR, FANNS_LOG_OFF } fanns_log_level_t;

void fanns_log_set_level(fanns_log_level_t level);
fanns_log_level_t fanns_log_get_level(void);
/* Parses "debug|info|warn|error|off" (case-insensitive); returns -1 if unknown. */
int fanns_log_parse_level(const char *s);
/* Logs one line.  fields is "key=value ..." already formatted (may be NULL). */
void fanns_log(fanns_log_level_t level, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define FANNS_LOG_ENABLED(lvl) ((lvl) >= fanns_log_get_level())
#define fanns_debug(...) do { if (FANNS_LOG_ENABLED(FANNS_LOG_DEBUG)) fanns_log(FANNS_LOG_DEBUG, NULL, __VA_ARGS__); } while (0)
#define fanns_info(...) do { if (FANNS_LOG_ENABLED(FANNS_LOG_INFO)) fanns_log(FANNS_LOG_INFO, NULL, __VA_ARGS__); } while (0)
#define fanns_warn(...) do { if (FANNS_LOG_ENABLED(FANNS_LOG_WARN)) fanns_log(FANNS_LOG_WARN, NULL, __VA_ARGS__); } while (0)
#define fanns_error(...) do { if (FANNS_LOG_ENABLED(FANNS_LOG_ERROR)) fanns_log(FANNS_LOG_ERROR, NULL, __VA_ARGS__); } while (0)

/* Always-on check for corruption and impossible states: logs and aborts. */
#define FANNS_CHECK(cond) do { if (!(cond)) { fanns_log(FANNS_LOG_ERROR, NULL, "check failed: %s at %s:%d", #cond, __FILE__, __LINE__); abort(); } } while (0)

#endif
