/*
 * test_pid.c: tests index/pid.c: parsing and formatting of integer and UUID point ids, and
 * the order of their binary keys (every integer before every UUID, integers numerically).
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pid.h"

static const char *U = "550e8400-e29b-41d4-a716-446655440000";

START_TEST(test_from_json_int) {
    fanns_pid_t id;
    fanns_err_t err = {0};
    json_t *v = json_integer(42);
    ck_assert_int_eq(fanns_pid_from_json(v, &id, "points[0].id", &err), 0);
    ck_assert_int_eq(id.kind, FANNS_PID_NUM);
    ck_assert_uint_eq(id.num, 42);
    json_decref(v);
    v = json_integer(-1);
    ck_assert_int_eq(fanns_pid_from_json(v, &id, "points[0].id", &err), FANNS_EINVAL);
    ck_assert_str_eq(err.path, "points[0].id");
    ck_assert(strstr(err.msg, "points[0].id") != NULL);
    json_decref(v);
    v = json_real(1.5);
    ck_assert_int_eq(fanns_pid_from_json(v, &id, "id", &err), FANNS_EINVAL);
    json_decref(v);
    v = json_true();
    ck_assert_int_eq(fanns_pid_from_json(v, &id, "id", &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_pid_from_json(json_null(), &id, "id", &err), FANNS_EINVAL);
    json_decref(v);
}
END_TEST

START_TEST(test_uuid_forms) {
    static const char *forms[] = {
        "550e8400-e29b-41d4-a716-446655440000",
        "550E8400-E29B-41D4-A716-446655440000",
        "550e8400e29b41d4a716446655440000",
        "{550e8400-e29b-41d4-a716-446655440000}",
        "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        fanns_pid_t id;
        json_t *v = json_string(forms[i]);
        ck_assert_msg(fanns_pid_from_json(v, &id, "id", NULL) == 0, "form %s", forms[i]);
        ck_assert_int_eq(id.kind, FANNS_PID_UUID);
        char s[37];
        fanns_pid_uuid_str(id.uuid, s);
        ck_assert_str_eq(s, U);
        ck_assert_uint_eq(id.uuid[0], 0x55);
        ck_assert_uint_eq(id.uuid[15], 0x00);
        json_t *back = fanns_pid_to_json(&id);
        ck_assert_str_eq(json_string_value(back), U);
        json_decref(back);
        json_decref(v);
    }
}
END_TEST

START_TEST(test_invalid_uuid) {
    static const char *bad[] = {
        "",
        "42",                                       /* a numeric string is not an id in JSON */
        "550e8400-e29b-41d4-a716-44665544000",      /* 35 chars */
        "550e8400-e29b-41d4-a716-4466554400000",    /* 37 chars */
        "550e8400-e29b-41d4-a716-44665544000g",     /* non-hex */
        "550e8400e29b-41d4-a716-4466554400000",     /* hyphen in the wrong place */
        "550e8400-e29b-41d4-a716_446655440000",
        "{550e8400-e29b-41d4-a716-446655440000",
        "urn:uuid:",
        "not-a-uuid",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fanns_pid_t id;
        fanns_err_t err = {0};
        json_t *v = json_string(bad[i]);
        ck_assert_msg(fanns_pid_from_json(v, &id, "id", &err) == FANNS_EINVAL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(err.code, FANNS_EINVAL);
        json_decref(v);
    }
}
END_TEST

START_TEST(test_from_str) {
    fanns_pid_t id;
    fanns_err_t err = {0};
    ck_assert_int_eq(fanns_pid_from_str("0", &id, &err), 0);
    ck_assert(id.kind == FANNS_PID_NUM && id.num == 0);
    ck_assert_int_eq(fanns_pid_from_str("18446744073709551615", &id, &err), 0);
    ck_assert(id.kind == FANNS_PID_NUM && id.num == UINT64_MAX);
    ck_assert_int_eq(fanns_pid_from_str("18446744073709551616", &id, &err), FANNS_EINVAL);  /* overflow */
    ck_assert_int_eq(fanns_pid_from_str(U, &id, &err), 0);
    ck_assert_int_eq(id.kind, FANNS_PID_UUID);
    ck_assert_int_eq(fanns_pid_from_str("-1", &id, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_pid_from_str("", &id, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_pid_from_str("12a", &id, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_pid_from_str("+5", &id, &err), FANNS_EINVAL);
    ck_assert(strlen(err.msg) > 0);
}
END_TEST

START_TEST(test_to_json) {
    fanns_pid_t id = {.kind = FANNS_PID_NUM, .num = 7};
    json_t *v = fanns_pid_to_json(&id);
    ck_assert(json_is_integer(v) && json_integer_value(v) == 7);
    json_decref(v);
}
END_TEST

static int keycmp(const fanns_pid_t *a, const fanns_pid_t *b) {
    uint8_t ka[FANNS_PID_KEYLEN], kb[FANNS_PID_KEYLEN];
    fanns_pid_key(a, ka);
    fanns_pid_key(b, kb);
    return memcmp(ka, kb, FANNS_PID_KEYLEN);
}

START_TEST(test_key_order) {
    /* Integers in numeric order (not lexicographic: 9 < 10 < 256 < 2^40), then UUIDs. */
    uint64_t nums[] = {0, 1, 9, 10, 255, 256, 65536, (uint64_t)1 << 40, UINT64_MAX - 1, UINT64_MAX};
    size_t nn = sizeof(nums) / sizeof(nums[0]);
    fanns_pid_t ids[16];
    for (size_t i = 0; i < nn; i++) ids[i] = (fanns_pid_t){.kind = FANNS_PID_NUM, .num = nums[i]};
    fanns_pid_t u0 = {.kind = FANNS_PID_UUID}, u1 = {.kind = FANNS_PID_UUID}, u2 = {.kind = FANNS_PID_UUID};
    u1.uuid[15] = 1;
    memset(u2.uuid, 0xff, 16);
    ids[nn] = u0;
    ids[nn + 1] = u1;
    ids[nn + 2] = u2;
    size_t total = nn + 3;
    for (size_t i = 0; i + 1 < total; i++)
        for (size_t j = i + 1; j < total; j++) ck_assert_msg(keycmp(&ids[i], &ids[j]) < 0, "order %zu < %zu", i, j);
    /* Round trip through the key. */
    for (size_t i = 0; i < total; i++) {
        uint8_t k[FANNS_PID_KEYLEN];
        fanns_pid_t back;
        fanns_pid_key(&ids[i], k);
        fanns_pid_from_key(k, &back);
        ck_assert(fanns_pid_eq(&back, &ids[i]));
    }
}
END_TEST

START_TEST(test_eq) {
    fanns_pid_t a = {.kind = FANNS_PID_NUM, .num = 5}, b = {.kind = FANNS_PID_NUM, .num = 5};
    fanns_pid_t c = {.kind = FANNS_PID_NUM, .num = 6}, u = {.kind = FANNS_PID_UUID};
    ck_assert(fanns_pid_eq(&a, &b));
    ck_assert(!fanns_pid_eq(&a, &c));
    ck_assert(!fanns_pid_eq(&a, &u));
    fanns_pid_t u2 = u;
    ck_assert(fanns_pid_eq(&u, &u2));
    u2.uuid[3] = 1;
    ck_assert(!fanns_pid_eq(&u, &u2));
}
END_TEST

int main(void) {
    Suite *s = suite_create("pid");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_from_json_int);
    tcase_add_test(tc, test_uuid_forms);
    tcase_add_test(tc, test_invalid_uuid);
    tcase_add_test(tc, test_from_str);
    tcase_add_test(tc, test_to_json);
    tcase_add_test(tc, test_key_order);
    tcase_add_test(tc, test_eq);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
