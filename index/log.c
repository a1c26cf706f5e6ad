/*
 * log.c: one-line structured logging to stderr (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = FANNS_LOG_INFO;

void fanns_log_set_level(fanns_log_level_t level) { atomic_store(&g_level, (int)level); }
fanns_log_level_t fanns_log_get_level(void) { return (fanns_log_level_t)atomic_load_explicit(&g_level, memory_order_relaxed); }

int fanns_log_parse_level(const char *s) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return FANNS_LOG_WARN;
    return -1;
}

void fanns_log(fanns_log_level_t level, const char *fields, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    char line[2048], msg[1400];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n, j = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Escape quotes and newlines so a line stays one line. */
    char esc[1500];
    for (int i = 0; msg[i] && j < (int)sizeof(esc) - 3; i++) {
        char c = msg[i];
        if (c == '"' || c == '\\') { esc[j++] = '\\'; esc[j++] = c; }
        else if (c == '\n') { esc[j++] = '\\'; esc[j++] = 'n'; }
        else esc[j++] = c;
    }
    esc[j] = 0;
    n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s%s%s msg=\"%s\"\n",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, names[level], fields ? " " : "", fields ? fields : "", esc);
    if (n > (int)sizeof(line)) n = sizeof(line);
    if (write(2, line, (size_t)n) < 0) { /* nothing sensible to do */ }
}
