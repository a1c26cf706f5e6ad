/*
 * test_datetime.c: tests index/datetime.c, the RFC 3339 / ISO 8601 parser and formatter
 * used by datetime range filters.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datetime.h"

static int64_t parse_ok(const char *s) {
    int64_t t = INT64_MIN;
    ck_assert_msg(fanns_datetime_parse(s, &t) == 0, "expected '%s' to parse", s);
    return t;
}

static void parse_bad(const char *s) {
    int64_t t = 12345;
    ck_assert_msg(fanns_datetime_parse(s, &t) == FANNS_EINVAL, "expected '%s' to be rejected", s);
    ck_assert_int_eq(t, 12345);
}

/* 2021-03-01T00:00:00Z in seconds since the epoch (checked against date -u -d). */
#define T20210301 INT64_C(1614556800)

START_TEST(test_basic_forms) {
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00Z"), T20210301 * 1000000);
    ck_assert_int_eq(parse_ok("2021-03-01t00:00:00z"), T20210301 * 1000000);
    ck_assert_int_eq(parse_ok("2021-03-01 00:00:00Z"), T20210301 * 1000000);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00"), T20210301 * 1000000);
    ck_assert_int_eq(parse_ok("2021-03-01 00:00:00"), T20210301 * 1000000);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00"), T20210301 * 1000000);
    ck_assert_int_eq(parse_ok("2021-03-01 00:00"), T20210301 * 1000000);
    ck_assert_int_eq(parse_ok("2021-03-01"), T20210301 * 1000000);
    ck_assert_int_eq(parse_ok("2021-03-01T10:20:30Z"), (T20210301 + 10 * 3600 + 20 * 60 + 30) * 1000000);
}
END_TEST

START_TEST(test_fraction) {
    int64_t base = T20210301 * 1000000;
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00.5Z"), base + 500000);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00.123456Z"), base + 123456);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00.123456789Z"), base + 123456);  /* truncated */
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00.000001"), base + 1);
    ck_assert_int_eq(parse_ok("2021-03-01 00:00:00.25+01:00"), base + 250000 - INT64_C(3600000000));
}
END_TEST

START_TEST(test_offsets) {
    int64_t base = T20210301 * 1000000, h = INT64_C(3600000000);
    ck_assert_int_eq(parse_ok("2021-03-01T02:00:00+02:00"), base);
    ck_assert_int_eq(parse_ok("2021-02-28T22:00:00-02:00"), base);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00+0530"), base - 5 * h - h / 2);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00+05"), base - 5 * h);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00-00:00"), base);
    ck_assert_int_eq(parse_ok("2021-03-01T00:00:00.5-01:30"), base + 500000 + h + h / 2);
}
END_TEST

START_TEST(test_calendar) {
    /* Leap years: divisible by 4, except centuries not divisible by 400. */
    parse_ok("2020-02-29");
    parse_ok("2000-02-29");
    parse_bad("2021-02-29");
    parse_bad("1900-02-29");
    parse_bad("2021-04-31");
    parse_ok("2021-12-31T23:59:59Z");
    ck_assert_int_eq(parse_ok("2000-03-01") - parse_ok("2000-02-28"), INT64_C(2) * 86400 * 1000000);
    ck_assert_int_eq(parse_ok("1900-03-01") - parse_ok("1900-02-28"), INT64_C(1) * 86400 * 1000000);
    /* Before the epoch. */
    ck_assert_int_eq(parse_ok("1969-12-31T23:59:59Z"), -1000000);
    ck_assert_int_eq(parse_ok("0000-01-01"), fanns_datetime_days_from_civil(0, 1, 1) * 86400 * INT64_C(1000000));
    ck_assert_int_eq(fanns_datetime_days_from_civil(1970, 1, 1), 0);
    ck_assert_int_eq(fanns_datetime_days_from_civil(2000, 3, 1), 11017);
    ck_assert_int_eq(fanns_datetime_days_from_civil(1600, 1, 1), -135140);
}
END_TEST

/* Cross-checks days_from_civil against the C library for every day of several centuries. */
START_TEST(test_against_timegm) {
    for (int64_t y = 1890; y <= 2110; y++) {
        for (unsigned m = 1; m <= 12; m++) {
            struct tm tm = {.tm_year = (int)(y - 1900), .tm_mon = (int)m - 1, .tm_mday = 15, .tm_hour = 12};
            int64_t want = (int64_t)timegm(&tm);
            int64_t got = fanns_datetime_days_from_civil(y, m, 15) * 86400 + 12 * 3600;
            ck_assert_int_eq(got, want);
        }
    }
}
END_TEST

START_TEST(test_invalid) {
    parse_bad("");
    parse_bad("2021");
    parse_bad("2021-3-01");
    parse_bad("2021-13-01");
    parse_bad("2021-00-01");
    parse_bad("2021-01-00");
    parse_bad("2021-01-32");
    parse_bad("2021-01-01T24:00:00Z");
    parse_bad("2021-01-01T23:60:00Z");
    parse_bad("2021-01-01T23:59:61Z");
    parse_bad("2021-01-01T");
    parse_bad("2021-01-01T1:00:00");
    parse_bad("2021-01-01X10:00:00");
    parse_bad("2021-01-01T10:00:00.Z");
    parse_bad("2021-01-01T10:00:00+25:00");
    parse_bad("2021-01-01T10:00:00+01:60");
    parse_bad("2021-01-01T10:00:00+1");
    parse_bad("2021-01-01T10:00:00Zjunk");
    parse_bad("2021-01-01T10:00Z");       /* a zone needs seconds, as in Qdrant */
    parse_bad("2021-01-01 ");
    parse_bad(" 2021-01-01");
    parse_bad("yesterday");
    ck_assert_int_eq(fanns_datetime_parse(NULL, &(int64_t){0}), FANNS_EINVAL);
}
END_TEST

START_TEST(test_format) {
    char out[40];
    fanns_datetime_format(0, out);
    ck_assert_str_eq(out, "1970-01-01T00:00:00Z");
    fanns_datetime_format(T20210301 * 1000000 + 123456, out);
    ck_assert_str_eq(out, "2021-03-01T00:00:00.123456Z");
    fanns_datetime_format(-1, out);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.999999Z");
    fanns_datetime_format(parse_ok("2020-02-29T23:59:59Z"), out);
    ck_assert_str_eq(out, "2020-02-29T23:59:59Z");
    fanns_datetime_format(INT64_MIN, out);   /* must not crash; far before year 0 */
    ck_assert(strlen(out) > 0 && strlen(out) < 40);
    fanns_datetime_format(INT64_MAX, out);
    ck_assert(strlen(out) > 0 && strlen(out) < 40);
}
END_TEST

/* format then parse is the identity on a spread of instants. */
START_TEST(test_roundtrip) {
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* Years 0000..9999 span about +-2e17 microseconds around 1970. */
        int64_t lo = parse_ok("0000-01-01"), hi = parse_ok("9999-12-31T23:59:59.999999");
        int64_t t = lo + (int64_t)(x % (uint64_t)(hi - lo));
        char out[40];
        fanns_datetime_format(t, out);
        ck_assert_int_eq(parse_ok(out), t);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("datetime");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_basic_forms);
    tcase_add_test(tc, test_fraction);
    tcase_add_test(tc, test_offsets);
    tcase_add_test(tc, test_calendar);
    tcase_add_test(tc, test_against_timegm);
    tcase_add_test(tc, test_invalid);
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_roundtrip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
