/*
 * test_json_fastvec.c: the number conversion of the vector fast path (proto/json_fastvec.c)
 * gives bit for bit what strtof gives, for the shapes clients send (shortest float repr, %.9g,
 * 17-digit double reprs, exponents), for random digit strings over the whole float range, and
 * for decimals placed just around float rounding midpoints, where a conversion that rounds
 * twice would go wrong; and the fast path as a whole parses what jansson would.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_fastvec.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void same_as_strtof(const char *s) {
    float want = strtof(s, NULL), got = fanns__json_parse_float(s, strlen(s));
    uint32_t a, b;
    memcpy(&a, &want, 4);
    memcpy(&b, &got, 4);
    ck_assert_msg(a == b, "\"%s\": %a (0x%08x), strtof %a (0x%08x)", s, (double)got, b, (double)want, a);
}

START_TEST(test_client_formats) {
    char buf[64];
    for (int i = 0; i < 400000; i++) {
        uint32_t u = (uint32_t)next();
        float f;
        memcpy(&f, &u, 4);
        if (!isfinite(f)) continue;
        double d = (double)f;
        /* scaled into the range of embedding values too */
        double e = (double)(int32_t)next() / 2147483648.0 * 0.2;
        snprintf(buf, sizeof(buf), "%.9g", d);
        same_as_strtof(buf);
        snprintf(buf, sizeof(buf), "%.17g", e); /* a float64 repr, as Python's json.dumps sends */
        same_as_strtof(buf);
        snprintf(buf, sizeof(buf), "%.8e", e);
        same_as_strtof(buf);
        snprintf(buf, sizeof(buf), "%.6f", e);
        same_as_strtof(buf);
        snprintf(buf, sizeof(buf), "%.9g", (double)(float)e);
        same_as_strtof(buf);
    }
    static const char *fixed[] = {"0", "-0", "0.0", "1", "-1", "1e0", "1E+2", "1e-2", "123456789012345678",
                                  "1234567890123456789", "12345678901234567890", "0.000000000000000000001",
                                  "3.4028235e38", "3.4028236e38", "1e39", "1.17549435e-38", "1e-39", "1e-46",
                                  "16777217", "16777216.5", "16777218.999999999", "0.1", "0.30000000000000004"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) same_as_strtof(fixed[i]);
}
END_TEST

START_TEST(test_random_digits) {
    char buf[64];
    for (int i = 0; i < 400000; i++) {
        int nd = 1 + (int)(next() % 22), p = 0;
        if (next() & 1) buf[p++] = '-';
        int point = (int)(next() % (unsigned)(nd + 1));
        for (int j = 0; j < nd; j++) {
            if (j == point && j > 0) buf[p++] = '.';
            buf[p++] = (char)('0' + (j == 0 && nd > 1 && point != 1 ? 1 + next() % 9 : next() % 10));
        }
        if (next() % 3 == 0) p += snprintf(buf + p, sizeof(buf) - (size_t)p, "e%d", (int)(next() % 90) - 45);
        buf[p] = 0;
        same_as_strtof(buf);
    }
}
END_TEST

/* Decimals with 19 or fewer digits just around a rounding midpoint (f + f_next) / 2. */
START_TEST(test_near_midpoints) {
    char buf[64];
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)(next() % 0x7f000000u) + 0x00800000u;
        float f, g;
        memcpy(&f, &u, 4);
        u++;
        memcpy(&g, &u, 4);
        long double mid = ((long double)f + (long double)g) / 2;
        for (int digits = 9; digits <= 19; digits += 2) {
            snprintf(buf, sizeof(buf), "%.*Le", digits - 1, mid);
            same_as_strtof(buf);
            /* one unit up and down in the last printed digit */
            char *e = strchr(buf, 'e');
            char *last = e - 1;
            if (*last < '9') {
                (*last)++;
                same_as_strtof(buf);
                (*last)--;
            }
            if (*last > '0') {
                (*last)--;
                same_as_strtof(buf);
            }
        }
    }
}
END_TEST

START_TEST(test_fastvec_body) {
    const char *body = "{\"vector\": [0.5, -1.25e-3, 3, 0.30000000000000004], \"limit\": 3}";
    size_t n;
    fanns_fastvec_t fv;
    char *rest = fanns__json_fastvec(body, strlen(body), &n, &fv);
    ck_assert_ptr_nonnull(rest);
    ck_assert_str_eq(fv.key, "vector");
    ck_assert_uint_eq(fv.n, 4);
    ck_assert(fv.v[0] == 0.5f && fv.v[1] == strtof("-1.25e-3", NULL) && fv.v[2] == 3.0f &&
              fv.v[3] == strtof("0.30000000000000004", NULL));
    ck_assert(!fv.bad);
    ck_assert_str_eq(rest, "{\"vector\": [], \"limit\": 3}");
    free(rest);
    free(fv.v);
    /* out of float range: flagged for a 422, as the slow path does */
    const char *big = "{\"vector\": [1e39, 1]}";
    rest = fanns__json_fastvec(big, strlen(big), &n, &fv);
    ck_assert_ptr_nonnull(rest);
    ck_assert(fv.bad);
    free(rest);
    free(fv.v);
    /* not a number grammar jansson accepts: the fast path declines */
    const char *bad = "{\"vector\": [01, 2]}";
    ck_assert_ptr_null(fanns__json_fastvec(bad, strlen(bad), &n, &fv));
}
END_TEST

int main(void) {
    Suite *s = suite_create("proto/json_fastvec");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_client_formats);
    tcase_add_test(tc, test_random_digits);
    tcase_add_test(tc, test_near_midpoints);
    tcase_add_test(tc, test_fastvec_body);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
