/*
 * datetime.h: RFC 3339 / ISO 8601 timestamps as Qdrant's datetime filters accept them, as
 * microseconds since the Unix epoch (UTC).
 *
 * Accepted forms (the ones Qdrant's DateTimePayloadType::from_str accepts):
 *   2021-03-01T10:20:30Z              RFC 3339 ('T', 't' or ' ' between date and time)
 *   2021-03-01T10:20:30.123456+02:00  fractional seconds (any number of digits, truncated to
 *                                     microseconds), offsets +hh:mm, +hhmm, +hh, 'Z'/'z'
 *   2021-03-01 10:20:30               no zone: UTC
 *   2021-03-01T10:20                  no seconds (only without a zone): UTC
 *   2021-03-01                        date only: midnight UTC
 * Years are four digits (0000-9999); every field is range checked (months 1-12, days by month
 * with leap years, hours < 24, minutes < 60, seconds <= 60, offsets < 24h).
 */
#ifndef FANNS_DATETIME_H
#define FANNS_DATETIME_H

#include <stdint.h>

#include "err.h"

/* Parses s into microseconds since 1970-01-01T00:00:00Z.  Returns 0, or FANNS_EINVAL (and
 * leaves *usec_out untouched) when s is NULL or not one of the accepted forms. */
int fanns_datetime_parse(const char *s, int64_t *usec_out);

/* Formats usec as RFC 3339 UTC, "2021-03-01T00:00:00Z", with a ".ffffff" fraction only when
 * the microseconds are not zero.  out always receives a NUL-terminated string. */
void fanns_datetime_format(int64_t usec, char out[40]);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12, day 1-31; not checked). */
int64_t fanns_datetime_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
