/*
 * datetime.c: RFC 3339 / ISO 8601 timestamps <-> microseconds since the Unix epoch
 * (see datetime.h for the accepted forms, which follow Qdrant's datetime parsing).
 *
 * The calendar arithmetic is done here instead of with timegm(3)/gmtime_r(3): those depend
 * on the C library's time_t range and on TZ handling, while the days-from-civil and
 * civil-from-days conversions are a few lines of exact integer arithmetic over the
 * proleptic Gregorian calendar (the classic 400-year "era" method: shift the year to start
 * in March so the leap day is the last day of the year, then count eras, years of era and
 * days of year).
 *
 * Invariant: the parser is a single left-to-right pass over s with no allocation; anything
 * left over after the accepted grammar is an error.
 */
#include "datetime.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define USEC_PER_SEC INT64_C(1000000)
#define SEC_PER_DAY INT64_C(86400)

int64_t fanns_datetime_days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                    /* [0, 399] */
    int64_t mp = (m + 9) % 12;                                      /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + (int64_t)d - 1;              /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                  /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned days_in_month(int64_t y, unsigned m) {
    static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Reads exactly n decimal digits at *p. */
static bool digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int fanns_datetime_parse(const char *s, int64_t *usec_out) {
    if (!s) return FANNS_EINVAL;
    const char *p = s;
    int year, mon, day, hour = 0, min = 0, sec = 0;
    int64_t frac_us = 0;
    int off_sec = 0;

    if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &mon) || *p++ != '-' || !digits(&p, 2, &day))
        return FANNS_EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || (unsigned)day > days_in_month(year, (unsigned)mon)) return FANNS_EINVAL;

    if (*p != '\0') {
        if (*p != 'T' && *p != 't' && *p != ' ') return FANNS_EINVAL;
        p++;
        if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &min)) return FANNS_EINVAL;
        bool has_sec = false;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec)) return FANNS_EINVAL;
            has_sec = true;
            if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9') return FANNS_EINVAL;
                int nd = 0;
                while (*p >= '0' && *p <= '9') {
                    if (nd < 6) frac_us = frac_us * 10 + (*p - '0');
                    nd++;
                    p++;
                }
                for (; nd < 6; nd++) frac_us *= 10;
            }
        }
        if (hour > 23 || min > 59 || sec > 60) return FANNS_EINVAL;
        if (*p != '\0') {
            /* A zone is only accepted after seconds, as in Qdrant. */
            if (!has_sec) return FANNS_EINVAL;
            if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
                p++;
            } else if (*p == '+' || *p == '-') {
                int sign = *p++ == '-' ? -1 : 1;
                int oh, om = 0;
                if (!digits(&p, 2, &oh)) return FANNS_EINVAL;
                if (*p == ':') {
                    p++;
                    if (!digits(&p, 2, &om)) return FANNS_EINVAL;
                } else if (*p != '\0') {
                    if (!digits(&p, 2, &om)) return FANNS_EINVAL;
                }
                if (oh > 23 || om > 59) return FANNS_EINVAL;
                off_sec = sign * (oh * 3600 + om * 60);
            } else {
                return FANNS_EINVAL;
            }
            if (*p != '\0') return FANNS_EINVAL;
        }
    }

    int64_t days = fanns_datetime_days_from_civil(year, (unsigned)mon, (unsigned)day);
    int64_t secs = days * SEC_PER_DAY + hour * 3600 + min * 60 + sec - off_sec;
    *usec_out = secs * USEC_PER_SEC + frac_us;
    return 0;
}

void fanns_datetime_format(int64_t usec, char out[40]) {
    /* Floor division, so times before 1970 get a non-negative fraction. */
    int64_t secs = usec / USEC_PER_SEC, us = usec % USEC_PER_SEC;
    if (us < 0) {
        us += USEC_PER_SEC;
        secs--;
    }
    int64_t days = secs / SEC_PER_DAY, sod = secs % SEC_PER_DAY;
    if (sod < 0) {
        sod += SEC_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int hh = (int)(sod / 3600), mm = (int)(sod / 60 % 60), ss = (int)(sod % 60);
    if (us)
        snprintf(out, 40, "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ", (long long)y, m, d, hh, mm, ss, (long long)us);
    else
        snprintf(out, 40, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d, hh, mm, ss);
}
