/*
 * test_json_out.c: proto/json_out.c.  Every float32 printed reads back (strtof) as exactly
 * the same float32, with at most 9 significant digits, as a number jansson's strict parser
 * accepts; values that have a short exact decimal print short ("0.5", "1.0", "-2.25e-7");
 * and the buffer grows, and writes integers, doubles and JSON values.
 */
#include <check.h>
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int sig_digits(const char *s) {
    int n = 0;
    bool lead = true;
    for (; *s && *s != 'e'; s++) {
        if (!isdigit((unsigned char)*s)) continue;
        if (lead && *s == '0') continue;
        lead = false;
        n++;
    }
    return n;
}

static void check_one(float f) {
    char b[32];
    int n = fanns__json_fmt_f32(b, f);
    b[n] = 0;
    ck_assert_int_lt(n, 24);
    float back = strtof(b, NULL);
    uint32_t x, y;
    memcpy(&x, &f, 4);
    memcpy(&y, &back, 4);
    ck_assert_msg(x == y, "%a printed as %s reads back as %a", (double)f, b, (double)back);
    /* Trailing ".0" of integral values is not a significant digit, but may be counted as one. */
    ck_assert_msg(sig_digits(b) <= 10, "%s has too many digits", b);
    json_error_t err;
    json_t *j = json_loads(b, JSON_DECODE_ANY, &err);
    ck_assert_msg(j && json_is_real(j), "%s is not a JSON real: %s", b, err.text);
    json_decref(j);
}

START_TEST(test_f32_round_trip_random_bits) {
    for (int i = 0; i < 500000; i++) {
        uint32_t u = (uint32_t)next();
        float f;
        memcpy(&f, &u, 4);
        if (!isfinite(f)) continue;
        check_one(f);
    }
}
END_TEST

START_TEST(test_f32_embedding_range) {
    /* Scores and unit-vector components: the values responses carry most. */
    for (int i = 0; i < 300000; i++) {
        float f = (float)((double)(int64_t)next() / 9.223372036854775807e18);
        check_one(f);
        check_one(f * 1e-3f);
    }
    static const float edge[] = {1.0f, -1.0f, 0.5f, 0.1f, 1e-5f, 9.99999e-6f, 1e9f, 999999936.0f, 3.4028235e38f,
                                 1.17549435e-38f, 1e-45f, 16777216.0f, 16777217.0f, 123456789.0f, 0.99999994f};
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) check_one(edge[i]);
}
END_TEST

static void expect(float f, const char *want) {
    char b[32];
    int n = fanns__json_fmt_f32(b, f);
    b[n] = 0;
    ck_assert_str_eq(b, want);
}

START_TEST(test_f32_shapes) {
    expect(0.0f, "0.0");
    expect(-0.0f, "-0.0");
    expect(1.0f, "1.0");
    expect(0.5f, "0.5");
    expect(-2.25f, "-2.25");
    expect(1024.0f, "1024.0");
    expect(0.125f, "0.125");
    expect(-2.25e-7f, "-2.24999994e-7"); /* the float nearest 2.25e-7, to 9 digits */
    expect(1e10f, "1e10");
    expect(0.0001f, "9.99999975e-5");
    expect(0.001f, "0.00100000005");
    expect(NAN, "null");
    expect(INFINITY, "null");
}
END_TEST

START_TEST(test_buffer) {
    fanns_jbuf_t b = {0};
    fanns__jbuf_puts(&b, "[");
    for (int i = 0; i < 5000; i++) {
        if (i) fanns__jbuf_put(&b, ",", 1);
        fanns__jbuf_u64(&b, (uint64_t)i * 1000003u);
    }
    fanns__jbuf_puts(&b, ",");
    fanns__jbuf_u64(&b, UINT64_MAX);
    fanns__jbuf_puts(&b, ",");
    fanns__jbuf_f64(&b, 2.0);
    fanns__jbuf_puts(&b, ",");
    fanns__jbuf_f64(&b, 0.1);
    fanns__jbuf_puts(&b, ",");
    json_t *obj = json_pack("{s:s, s:[i, f]}", "a", "x\"y", "b", 1, 2.5);
    fanns__jbuf_json(&b, obj);
    json_decref(obj);
    fanns__jbuf_puts(&b, ",");
    fanns__jbuf_json(&b, NULL);
    fanns__jbuf_puts(&b, "]");
    ck_assert(!b.oom);
    ck_assert_uint_eq(strlen(b.p), b.len);
    ck_assert_ptr_nonnull(strstr(b.p, ",18446744073709551615,2.0,0.10000000000000001,{\"a\":\"x\\\"y\",\"b\":[1,2.5]},null]"));
    json_error_t err;
    json_t *j = json_loads(b.p, JSON_DECODE_INT_AS_REAL, &err);
    ck_assert_msg(j != NULL, "not JSON: %s", err.text);
    ck_assert_uint_eq(json_array_size(j), 5005);
    ck_assert(json_real_value(json_array_get(j, 4999)) == 4999.0 * 1000003.0);
    json_decref(j);
    free(b.p);
}
END_TEST

int main(void) {
    Suite *s = suite_create("proto/json_out");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_f32_round_trip_random_bits);
    tcase_add_test(tc, test_f32_embedding_range);
    tcase_add_test(tc, test_f32_shapes);
    tcase_add_test(tc, test_buffer);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
