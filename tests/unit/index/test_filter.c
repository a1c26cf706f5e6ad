/*
 * test_filter.c: tests index/filter.c against Qdrant's filter semantics: every condition
 * type, arrays, key paths, nested, datetime ranges with offsets, missing fields, compile
 * errors with their JSON paths, and the depth / size limits.
 */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

static json_t *parse(const char *js) {
    json_error_t je;
    json_t *v = json_loads(js, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    ck_assert_msg(v != NULL, "bad test JSON '%s': %s", js, je.text);
    return v;
}

static fanns_filter_t *compile_ok(const char *js) {
    json_t *v = parse(js);
    fanns_filter_t *f = NULL;
    fanns_err_t err = {0};
    int rc = fanns_filter_compile(v, "filter", &f, &err);
    ck_assert_msg(rc == 0, "compile failed for %s: %s", js, err.msg);
    json_decref(v);
    return f;
}

/* Compiles js and expects code with err.path == path. */
static void compile_bad(const char *js, int code, const char *path) {
    json_t *v = parse(js);
    fanns_filter_t *f = (fanns_filter_t *)1;
    fanns_err_t err = {0};
    int rc = fanns_filter_compile(v, "filter", &f, &err);
    ck_assert_msg(rc == code, "expected %d for %s, got %d (%s)", code, js, rc, err.msg);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(err.code, code);
    if (path) ck_assert_msg(strcmp(err.path, path) == 0, "path for %s: got '%s' want '%s'", js, err.path, path);
    ck_assert_msg(strncmp(err.msg, err.path, strlen(err.path)) == 0, "message should name the path: %s", err.msg);
    json_decref(v);
}

/* Does the filter match the payload (JSON text, or NULL for no payload)? */
static bool matches(const fanns_filter_t *f, const char *payload) {
    json_t *p = payload ? parse(payload) : NULL;
    bool r = fanns_filter_match(f, NULL, p);
    json_decref(p);
    return r;
}

/* One-shot: compile filter, test payload. */
static bool fm(const char *filter, const char *payload) {
    fanns_filter_t *f = compile_ok(filter);
    bool r = matches(f, payload);
    fanns_filter_free(f);
    return r;
}

/* A `must` with a single field condition on key k. */
static char *cond(const char *k, const char *body) {
    static char buf[4096];
    snprintf(buf, sizeof(buf), "{\"must\":[{\"key\":\"%s\",%s}]}", k, body);
    return buf;
}

START_TEST(test_null_matches_all) {
    fanns_filter_t *f = (fanns_filter_t *)1;
    ck_assert_int_eq(fanns_filter_compile(NULL, "filter", &f, NULL), 0);
    ck_assert_ptr_null(f);
    f = (fanns_filter_t *)1;
    ck_assert_int_eq(fanns_filter_compile(json_null(), "filter", &f, NULL), 0);
    ck_assert_ptr_null(f);
    ck_assert(fanns_filter_match(NULL, NULL, NULL));
    ck_assert_uint_eq(fanns_filter_count(NULL), 0);
    /* An empty filter object and an empty condition object match everything. */
    ck_assert(fm("{}", "{\"a\":1}"));
    ck_assert(fm("{}", NULL));
    ck_assert(fm("{\"must\":[{}]}", "{}"));
    ck_assert(fm("{\"must\":[]}", "{}"));
    ck_assert(fm("{\"must\":null,\"should\":null,\"must_not\":null}", "{}"));
}
END_TEST

START_TEST(test_match_value) {
    const char *fs = cond("color", "\"match\":{\"value\":\"red\"}");
    fanns_filter_t *f = compile_ok(fs);
    ck_assert(matches(f, "{\"color\":\"red\"}"));
    ck_assert(!matches(f, "{\"color\":\"Red\"}"));
    ck_assert(!matches(f, "{\"color\":\"red \"}"));
    ck_assert(!matches(f, "{\"colour\":\"red\"}"));
    ck_assert(!matches(f, "{}"));
    ck_assert(!matches(f, NULL));
    ck_assert(matches(f, "{\"color\":[\"blue\",\"red\"]}"));     /* any element of an array */
    ck_assert(!matches(f, "{\"color\":[[\"red\"]]}"));            /* arrays inside arrays are not flattened */
    ck_assert(!matches(f, "{\"color\":{\"red\":1}}"));
    ck_assert(!matches(f, "{\"color\":null}"));
    fanns_filter_free(f);

    f = compile_ok(cond("n", "\"match\":{\"value\":5}"));
    ck_assert(matches(f, "{\"n\":5}"));
    ck_assert(matches(f, "{\"n\":[1,5]}"));
    ck_assert(!matches(f, "{\"n\":5.0}"));   /* Qdrant compares integers with as_i64(): a float never matches */
    ck_assert(!matches(f, "{\"n\":\"5\"}"));
    ck_assert(!matches(f, "{\"n\":6}"));
    fanns_filter_free(f);

    f = compile_ok(cond("ok", "\"match\":{\"value\":true}"));
    ck_assert(matches(f, "{\"ok\":true}"));
    ck_assert(!matches(f, "{\"ok\":false}"));
    ck_assert(!matches(f, "{\"ok\":1}"));
    ck_assert(!matches(f, "{\"ok\":\"true\"}"));
    fanns_filter_free(f);
    ck_assert(fm(cond("ok", "\"match\":{\"value\":false}"), "{\"ok\":false}"));
    ck_assert(fm(cond("n", "\"match\":{\"value\":-7}"), "{\"n\":-7}"));
    /* Strings with embedded NUL compare by length. */
    ck_assert(!fm(cond("s", "\"match\":{\"value\":\"a\"}"), "{\"s\":\"a\\u0000b\"}"));
}
END_TEST

START_TEST(test_match_any) {
    /* More than a dozen strings so the sorted binary search is exercised. */
    fanns_filter_t *f = compile_ok(cond("c", "\"match\":{\"any\":[\"z\",\"b\",\"y\",\"a\",\"x\",\"c\",\"w\",\"d\",\"v\","
                                             "\"e\",\"u\",\"f\",\"t\",\"g\",\"ab\"]}"));
    const char *yes[] = {"a", "b", "c", "d", "e", "f", "g", "t", "u", "v", "w", "x", "y", "z", "ab"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        char p[64];
        snprintf(p, sizeof(p), "{\"c\":\"%s\"}", yes[i]);
        ck_assert_msg(matches(f, p), "%s", p);
    }
    ck_assert(!matches(f, "{\"c\":\"h\"}"));
    ck_assert(!matches(f, "{\"c\":\"abc\"}"));
    ck_assert(!matches(f, "{\"c\":\"\"}"));
    ck_assert(matches(f, "{\"c\":[\"q\",\"ab\"]}"));
    ck_assert(!matches(f, "{\"c\":[\"q\",\"r\"]}"));
    ck_assert(!matches(f, "{\"c\":1}"));
    ck_assert(!matches(f, "{}"));
    fanns_filter_free(f);

    f = compile_ok(cond("n", "\"match\":{\"any\":[30,-2,10,20,1000000000000]}"));
    ck_assert(matches(f, "{\"n\":-2}"));
    ck_assert(matches(f, "{\"n\":1000000000000}"));
    ck_assert(matches(f, "{\"n\":[1,2,20]}"));
    ck_assert(!matches(f, "{\"n\":15}"));
    ck_assert(!matches(f, "{\"n\":10.0}"));
    ck_assert(!matches(f, "{\"n\":\"10\"}"));
    fanns_filter_free(f);
    /* An empty list matches nothing. */
    ck_assert(!fm(cond("c", "\"match\":{\"any\":[]}"), "{\"c\":\"a\"}"));
}
END_TEST

START_TEST(test_match_except) {
    fanns_filter_t *f = compile_ok(cond("c", "\"match\":{\"except\":[\"red\",\"blue\"]}"));
    ck_assert(matches(f, "{\"c\":\"green\"}"));
    ck_assert(!matches(f, "{\"c\":\"red\"}"));
    ck_assert(matches(f, "{\"c\":[\"red\",\"green\"]}"));  /* some element is not excluded */
    ck_assert(!matches(f, "{\"c\":[\"red\",\"blue\"]}"));
    ck_assert(!matches(f, "{\"c\":[]}"));                  /* no element at all */
    ck_assert(!matches(f, "{}"));                          /* missing */
    ck_assert(!matches(f, "{\"c\":null}"));                /* null is absence */
    ck_assert(matches(f, "{\"c\":1}"));                    /* another type is "not in the list" */
    ck_assert(matches(f, "{\"c\":true}"));
    ck_assert(matches(f, "{\"c\":{\"x\":1}}"));
    fanns_filter_free(f);
    f = compile_ok(cond("n", "\"match\":{\"except\":[1,2]}"));
    ck_assert(!matches(f, "{\"n\":1}"));
    ck_assert(matches(f, "{\"n\":3}"));
    ck_assert(matches(f, "{\"n\":1.5}"));
    ck_assert(matches(f, "{\"n\":\"1\"}"));
    ck_assert(!matches(f, "{\"n\":[1,null]}"));
    fanns_filter_free(f);
}
END_TEST

START_TEST(test_match_text) {
    fanns_filter_t *f = compile_ok(cond("t", "\"match\":{\"text\":\"quick brown\"}"));
    ck_assert(matches(f, "{\"t\":\"the quick brown fox\"}"));
    ck_assert(!matches(f, "{\"t\":\"the quick  brown fox\"}"));
    ck_assert(!matches(f, "{\"t\":\"Quick brown\"}"));       /* case-sensitive without an index */
    ck_assert(matches(f, "{\"t\":[\"x\",\"quick brown\"]}"));
    ck_assert(!matches(f, "{\"t\":5}"));
    fanns_filter_free(f);
    ck_assert(fm(cond("t", "\"match\":{\"phrase\":\"own fo\"}"), "{\"t\":\"brown fox\"}"));
    ck_assert(fm(cond("t", "\"match\":{\"prefix\":\"bro\"}"), "{\"t\":\"brown\"}"));
    ck_assert(!fm(cond("t", "\"match\":{\"prefix\":\"row\"}"), "{\"t\":\"brown\"}"));
    ck_assert(!fm(cond("t", "\"match\":{\"prefix\":\"brownie\"}"), "{\"t\":\"brown\"}"));
    f = compile_ok(cond("t", "\"match\":{\"text_any\":\"  cat   fox \"}"));
    ck_assert(matches(f, "{\"t\":\"brown fox\"}"));
    ck_assert(matches(f, "{\"t\":\"concatenate\"}"));
    ck_assert(!matches(f, "{\"t\":\"dog\"}"));
    fanns_filter_free(f);
    ck_assert(!fm(cond("t", "\"match\":{\"text_any\":\"   \"}"), "{\"t\":\"dog\"}"));
}
END_TEST

START_TEST(test_range_numeric) {
    fanns_filter_t *f = compile_ok(cond("p", "\"range\":{\"gte\":10,\"lt\":20.5}"));
    ck_assert(matches(f, "{\"p\":10}"));
    ck_assert(matches(f, "{\"p\":20.4}"));
    ck_assert(matches(f, "{\"p\":20}"));
    ck_assert(!matches(f, "{\"p\":20.5}"));
    ck_assert(!matches(f, "{\"p\":9.999}"));
    ck_assert(matches(f, "{\"p\":[1,15,100]}"));
    ck_assert(!matches(f, "{\"p\":[1,100]}"));
    ck_assert(!matches(f, "{\"p\":\"15\"}"));
    ck_assert(!matches(f, "{\"p\":true}"));
    ck_assert(!matches(f, "{}"));
    fanns_filter_free(f);
    f = compile_ok(cond("p", "\"range\":{\"gt\":1,\"lte\":3}"));
    ck_assert(!matches(f, "{\"p\":1}"));
    ck_assert(matches(f, "{\"p\":1.0001}"));
    ck_assert(matches(f, "{\"p\":3}"));
    ck_assert(!matches(f, "{\"p\":3.0001}"));
    fanns_filter_free(f);
    /* No bound at all: any number. */
    ck_assert(fm(cond("p", "\"range\":{}"), "{\"p\":-1e300}"));
    ck_assert(!fm(cond("p", "\"range\":{\"lt\":null}"), "{\"p\":\"x\"}"));
}
END_TEST

START_TEST(test_range_datetime) {
    fanns_filter_t *f = compile_ok(
        cond("ts", "\"range\":{\"gte\":\"2021-03-01T00:00:00Z\",\"lt\":\"2021-03-02T02:00:00+02:00\"}"));
    ck_assert(matches(f, "{\"ts\":\"2021-03-01T00:00:00Z\"}"));
    ck_assert(matches(f, "{\"ts\":\"2021-03-01T01:00:00+01:00\"}"));    /* = 00:00Z */
    ck_assert(!matches(f, "{\"ts\":\"2021-03-01T00:59:59+01:00\"}"));   /* = 2021-02-28T23:59:59Z */
    ck_assert(matches(f, "{\"ts\":\"2021-03-01 12:00:00\"}"));
    ck_assert(matches(f, "{\"ts\":\"2021-03-01\"}"));
    ck_assert(matches(f, "{\"ts\":\"2021-03-01T23:59:59.999999Z\"}"));
    ck_assert(!matches(f, "{\"ts\":\"2021-03-02T00:00:00Z\"}"));        /* the lt bound is 00:00Z */
    ck_assert(matches(f, "{\"ts\":\"2021-03-01T20:00:00-03:59\"}"));    /* 23:59Z */
    ck_assert(!matches(f, "{\"ts\":\"2021-03-01T21:00:00-03:00\"}"));   /* 00:00Z next day */
    ck_assert(!matches(f, "{\"ts\":\"not a date\"}"));
    ck_assert(!matches(f, "{\"ts\":1614556800}"));                       /* numbers are not datetimes */
    ck_assert(matches(f, "{\"ts\":[\"garbage\",\"2021-03-01T05:00:00Z\"]}"));
    ck_assert(!matches(f, "{}"));
    fanns_filter_free(f);
    /* One string bound is enough to make it a datetime range. */
    ck_assert(fm(cond("ts", "\"range\":{\"gt\":\"2020-01-01\"}"), "{\"ts\":\"2020-01-01T00:00:00.000001Z\"}"));
    ck_assert(!fm(cond("ts", "\"range\":{\"gt\":\"2020-01-01\"}"), "{\"ts\":\"2020-01-01T00:00:00Z\"}"));
    ck_assert(fm(cond("ts", "\"range\":{\"lte\":\"2020-01-01T00:00:00-05:00\"}"), "{\"ts\":\"2020-01-01T05:00:00Z\"}"));
    ck_assert(!fm(cond("ts", "\"range\":{\"lte\":\"2020-01-01T00:00:00-05:00\"}"), "{\"ts\":\"2020-01-01T05:00:01Z\"}"));
}
END_TEST

START_TEST(test_values_count) {
    fanns_filter_t *f = compile_ok(cond("a", "\"values_count\":{\"gte\":2,\"lt\":4}"));
    ck_assert(!matches(f, "{\"a\":[1]}"));
    ck_assert(matches(f, "{\"a\":[1,2]}"));
    ck_assert(matches(f, "{\"a\":[1,2,3]}"));
    ck_assert(!matches(f, "{\"a\":[1,2,3,4]}"));
    ck_assert(!matches(f, "{\"a\":5}"));      /* a scalar counts one */
    ck_assert(!matches(f, "{}"));
    fanns_filter_free(f);
    f = compile_ok(cond("a", "\"values_count\":{\"lte\":0}"));
    ck_assert(matches(f, "{}"));               /* a missing key counts zero */
    ck_assert(matches(f, "{\"a\":[]}"));
    ck_assert(matches(f, "{\"a\":null}"));
    ck_assert(!matches(f, "{\"a\":\"x\"}"));
    fanns_filter_free(f);
    ck_assert(fm(cond("a", "\"values_count\":{\"gt\":0}"), "{\"a\":{\"x\":1}}"));
    ck_assert(fm(cond("a", "\"values_count\":{\"lt\":2}"), "{\"a\":\"s\"}"));
}
END_TEST

START_TEST(test_is_empty_is_null) {
    fanns_filter_t *e = compile_ok("{\"must\":[{\"is_empty\":{\"key\":\"a\"}}]}");
    ck_assert(matches(e, "{}"));
    ck_assert(matches(e, NULL));
    ck_assert(matches(e, "{\"a\":null}"));
    ck_assert(matches(e, "{\"a\":[]}"));
    ck_assert(!matches(e, "{\"a\":[null]}"));
    ck_assert(!matches(e, "{\"a\":0}"));
    ck_assert(!matches(e, "{\"a\":\"\"}"));
    ck_assert(!matches(e, "{\"a\":{}}"));
    fanns_filter_free(e);
    /* Through arrays of objects (Qdrant's own json_path test case). */
    const char *p = "{\"a\":[{\"b\":1},{\"b\":2},{\"b\":null},{\"d\":[]},{\"d\":[]},{\"f\":null}]}";
    ck_assert(!fm("{\"must\":{\"is_empty\":{\"key\":\"a[].b\"}}}", p));
    ck_assert(fm("{\"must\":{\"is_empty\":{\"key\":\"a[].c\"}}}", p));
    ck_assert(fm("{\"must\":{\"is_empty\":{\"key\":\"a[].d\"}}}", p));
    ck_assert(fm("{\"must\":{\"is_empty\":{\"key\":\"a[].f\"}}}", p));

    fanns_filter_t *n = compile_ok("{\"must\":[{\"is_null\":{\"key\":\"a\"}}]}");
    ck_assert(matches(n, "{\"a\":null}"));
    ck_assert(!matches(n, "{}"));
    ck_assert(!matches(n, "{\"a\":[]}"));
    ck_assert(!matches(n, "{\"a\":[null]}"));   /* the array itself is not null */
    ck_assert(!matches(n, "{\"a\":1}"));
    fanns_filter_free(n);
    ck_assert(fm("{\"must\":{\"is_null\":{\"key\":\"a[].b\"}}}", "{\"a\":[{\"b\":1},{\"b\":null}]}"));
    ck_assert(!fm("{\"must\":{\"is_null\":{\"key\":\"a[].b\"}}}", "{\"a\":[{\"b\":1},{\"b\":2}]}"));

    /* The FieldCondition forms {key, is_empty: bool} / {key, is_null: bool}. */
    fanns_filter_t *fe = compile_ok(cond("a", "\"is_empty\":true"));
    ck_assert(matches(fe, "{}"));
    ck_assert(matches(fe, "{\"a\":[]}"));
    ck_assert(matches(fe, "{\"a\":null}"));
    ck_assert(!matches(fe, "{\"a\":[1]}"));
    ck_assert(!matches(fe, "{\"a\":\"x\"}"));
    fanns_filter_free(fe);
    fe = compile_ok(cond("a", "\"is_empty\":false"));
    ck_assert(!matches(fe, "{}"));
    ck_assert(!matches(fe, "{\"a\":[]}"));
    ck_assert(matches(fe, "{\"a\":[1]}"));
    fanns_filter_free(fe);
    fanns_filter_t *fn = compile_ok(cond("a", "\"is_null\":true"));
    ck_assert(matches(fn, "{\"a\":null}"));
    ck_assert(matches(fn, "{\"a\":[1,null]}"));  /* this form looks inside the array, as Qdrant does */
    ck_assert(!matches(fn, "{}"));
    ck_assert(!matches(fn, "{\"a\":[1]}"));
    fanns_filter_free(fn);
    fn = compile_ok(cond("a", "\"is_null\":false"));
    ck_assert(matches(fn, "{}"));
    ck_assert(matches(fn, "{\"a\":1}"));
    ck_assert(!matches(fn, "{\"a\":null}"));
    fanns_filter_free(fn);
}
END_TEST

START_TEST(test_has_id) {
    fanns_filter_t *f = compile_ok(
        "{\"must\":[{\"has_id\":[7,1,\"550e8400-e29b-41d4-a716-446655440000\",3,18446744073]}]}");
    ck_assert_uint_eq(fanns_filter_count(f), 1);
    fanns_pid_t id = {.kind = FANNS_PID_NUM};
    uint64_t yes[] = {1, 3, 7, 18446744073ull}, no[] = {0, 2, 4, 8, 18446744074ull};
    for (size_t i = 0; i < 4; i++) {
        id.num = yes[i];
        ck_assert(fanns_filter_match(f, &id, NULL));
    }
    for (size_t i = 0; i < 5; i++) {
        id.num = no[i];
        ck_assert(!fanns_filter_match(f, &id, NULL));
    }
    fanns_pid_t u;
    json_t *s = json_string("550E8400E29B41D4A716446655440000");
    ck_assert_int_eq(fanns_pid_from_json(s, &u, "id", NULL), 0);
    ck_assert(fanns_filter_match(f, &u, NULL));
    u.uuid[15] ^= 1;
    ck_assert(!fanns_filter_match(f, &u, NULL));
    ck_assert(!fanns_filter_match(f, NULL, NULL));   /* unknown id */
    json_decref(s);
    fanns_filter_free(f);
    f = compile_ok("{\"must_not\":{\"has_id\":[1]}}");
    id.num = 1;
    ck_assert(!fanns_filter_match(f, &id, NULL));
    id.num = 2;
    ck_assert(fanns_filter_match(f, &id, NULL));
    fanns_filter_free(f);
    ck_assert(!fm("{\"must\":{\"has_id\":[]}}", "{}"));
}
END_TEST

START_TEST(test_nested) {
    const char *p1 = "{\"authors\":[{\"name\":\"Ann\",\"affil\":\"MIT\"},{\"name\":\"Bob\",\"affil\":\"CMU\"}]}";
    /* The inner filter must hold for one element. */
    const char *nested =
        "{\"must\":[{\"nested\":{\"key\":\"authors\",\"filter\":{\"must\":["
        "{\"key\":\"name\",\"match\":{\"value\":\"Ann\"}},{\"key\":\"affil\",\"match\":{\"value\":\"CMU\"}}]}}}]}";
    ck_assert(!fm(nested, p1));
    /* Without nested the two conditions may hold on different elements. */
    const char *flat = "{\"must\":[{\"key\":\"authors[].name\",\"match\":{\"value\":\"Ann\"}},"
                       "{\"key\":\"authors[].affil\",\"match\":{\"value\":\"CMU\"}}]}";
    ck_assert(fm(flat, p1));
    const char *ok = "{\"must\":{\"nested\":{\"key\":\"authors[]\",\"filter\":{\"must\":["
                     "{\"key\":\"name\",\"match\":{\"value\":\"Bob\"}},{\"key\":\"affil\",\"match\":{\"value\":\"CMU\"}}]}}}}";
    ck_assert(fm(ok, p1));
    ck_assert(!fm(ok, "{\"authors\":{\"name\":\"Bob\",\"affil\":\"CMU\"}}"));   /* not an array */
    ck_assert(!fm(ok, "{\"authors\":[]}"));
    ck_assert(!fm(ok, "{}"));
    /* must_not inside nested applies per element. */
    const char *mn = "{\"must\":{\"nested\":{\"key\":\"authors\",\"filter\":{\"must_not\":"
                     "{\"key\":\"affil\",\"match\":{\"value\":\"MIT\"}}}}}}";
    ck_assert(fm(mn, p1));
    ck_assert(!fm(mn, "{\"authors\":[{\"affil\":\"MIT\"}]}"));
    /* Nested inside nested, with a deeper key. */
    const char *deep = "{\"must\":{\"nested\":{\"key\":\"a.b\",\"filter\":{\"must\":{\"nested\":{\"key\":\"c\","
                       "\"filter\":{\"must\":{\"key\":\"d\",\"range\":{\"gt\":5}}}}}}}}}";
    ck_assert(fm(deep, "{\"a\":{\"b\":[{\"c\":[{\"d\":1}]},{\"c\":[{\"d\":1},{\"d\":6}]}]}}"));
    ck_assert(!fm(deep, "{\"a\":{\"b\":[{\"c\":[{\"d\":1}]},{\"c\":[{\"d\":5}]}]}}"));
    /* has_id inside nested never matches (Qdrant passes no id to nested filters). */
    fanns_filter_t *f = compile_ok("{\"must\":{\"nested\":{\"key\":\"a\",\"filter\":{\"must\":{\"has_id\":[1]}}}}}");
    fanns_pid_t id = {.kind = FANNS_PID_NUM, .num = 1};
    json_t *pl = parse("{\"a\":[{}]}");
    ck_assert(!fanns_filter_match(f, &id, pl));
    json_decref(pl);
    fanns_filter_free(f);
}
END_TEST

START_TEST(test_key_paths) {
    const char *p = "{\"a\":{\"b\":{\"c\":1}},\"arr\":[{\"x\":1},{\"x\":2,\"y\":[10,20]}],\"g\":[\"g0\",\"g1\"],"
                    "\"k.e y\":7,\"ünï\":3}";
    ck_assert(fm(cond("a.b.c", "\"match\":{\"value\":1}"), p));
    ck_assert(!fm(cond("a.b.d", "\"match\":{\"value\":1}"), p));
    ck_assert(!fm(cond("a.b.c.d", "\"match\":{\"value\":1}"), p));
    ck_assert(fm(cond("arr[].x", "\"match\":{\"value\":2}"), p));
    ck_assert(!fm(cond("arr.x", "\"match\":{\"value\":2}"), p));   /* no implicit flattening */
    ck_assert(fm(cond("arr[1].x", "\"match\":{\"value\":2}"), p));
    ck_assert(!fm(cond("arr[0].x", "\"match\":{\"value\":2}"), p));
    ck_assert(!fm(cond("arr[5].x", "\"match\":{\"value\":2}"), p));
    ck_assert(fm(cond("arr[].y[]", "\"match\":{\"value\":20}"), p));
    ck_assert(fm(cond("arr[1].y[0]", "\"match\":{\"value\":10}"), p));
    ck_assert(fm(cond("g[]", "\"match\":{\"value\":\"g1\"}"), p));
    ck_assert(fm(cond("g", "\"match\":{\"value\":\"g1\"}"), p));
    ck_assert(fm(cond("g[1]", "\"match\":{\"value\":\"g1\"}"), p));
    ck_assert(!fm(cond("g[0]", "\"match\":{\"value\":\"g1\"}"), p));
    ck_assert(fm(cond("\\\"k.e y\\\"", "\"match\":{\"value\":7}"), p));
    ck_assert(fm(cond("ünï", "\"match\":{\"value\":3}"), p));
    /* values_count through a wildcard counts per value. */
    ck_assert(fm(cond("arr[].y", "\"values_count\":{\"gte\":2}"), p));
    ck_assert(fm(cond("arr", "\"values_count\":{\"gte\":2}"), p));
    ck_assert(!fm(cond("arr[]", "\"values_count\":{\"gte\":2}"), p));
}
END_TEST

START_TEST(test_boolean_logic) {
    const char *p = "{\"city\":\"Berlin\",\"n\":5}";
    ck_assert(fm("{\"should\":[{\"key\":\"city\",\"match\":{\"value\":\"London\"}},"
                 "{\"key\":\"city\",\"match\":{\"value\":\"Berlin\"}}]}", p));
    ck_assert(!fm("{\"should\":[{\"key\":\"city\",\"match\":{\"value\":\"London\"}},"
                  "{\"key\":\"n\",\"match\":{\"value\":6}}]}", p));
    ck_assert(fm("{\"should\":[]}", p));                                  /* empty should: no constraint */
    ck_assert(fm("{\"should\":{\"key\":\"n\",\"match\":{\"value\":5}}}", p));   /* single condition object */
    ck_assert(!fm("{\"must_not\":{\"key\":\"n\",\"match\":{\"value\":5}}}", p));
    ck_assert(fm("{\"must_not\":[{\"key\":\"n\",\"match\":{\"value\":4}},{\"key\":\"x\",\"match\":{\"value\":4}}]}", p));
    ck_assert(!fm("{\"must\":[{\"key\":\"n\",\"match\":{\"value\":5}},{\"key\":\"city\",\"match\":{\"value\":\"Rome\"}}]}", p));
    /* All clauses together. */
    ck_assert(fm("{\"must\":{\"key\":\"n\",\"range\":{\"gte\":5}},\"should\":{\"key\":\"city\",\"match\":{\"any\":[\"Berlin\"]}},"
                 "\"must_not\":{\"key\":\"n\",\"range\":{\"gt\":5}}}", p));
    /* A filter used as a condition (OR inside AND). */
    const char *orin = "{\"must\":[{\"key\":\"n\",\"match\":{\"value\":5}},{\"should\":["
                       "{\"key\":\"city\",\"match\":{\"value\":\"Rome\"}},{\"key\":\"city\",\"match\":{\"value\":\"Berlin\"}}]}]}";
    ck_assert(fm(orin, p));
    ck_assert(!fm(orin, "{\"city\":\"Paris\",\"n\":5}"));
    /* min_should. */
    const char *ms = "{\"min_should\":{\"conditions\":[{\"key\":\"a\",\"match\":{\"value\":1}},"
                     "{\"key\":\"b\",\"match\":{\"value\":1}},{\"key\":\"c\",\"match\":{\"value\":1}}],\"min_count\":2}}";
    ck_assert(fm(ms, "{\"a\":1,\"b\":1}"));
    ck_assert(fm(ms, "{\"a\":1,\"b\":1,\"c\":1}"));
    ck_assert(fm(ms, "{\"b\":1,\"c\":1}"));
    ck_assert(!fm(ms, "{\"a\":1,\"b\":2,\"c\":2}"));
    ck_assert(!fm("{\"min_should\":{\"conditions\":[],\"min_count\":1}}", "{}"));
    /* A field condition with two checks: either may match (Qdrant ORs them). */
    const char *both = "{\"must\":{\"key\":\"v\",\"match\":{\"value\":\"x\"},\"range\":{\"gt\":10}}}";
    ck_assert(fm(both, "{\"v\":\"x\"}"));
    ck_assert(fm(both, "{\"v\":11}"));
    ck_assert(!fm(both, "{\"v\":9}"));
    /* Null optional fields in a field condition are ignored. */
    ck_assert(fm("{\"must\":{\"key\":\"n\",\"match\":{\"value\":5},\"range\":null,\"geo_radius\":null}}", p));
}
END_TEST

START_TEST(test_geo) {
    /* Qdrant's own reference value: haversine((0,0),(0.5,0.5)) = 78626.296 m. */
    const char *p = "{\"loc\":{\"lon\":0.5,\"lat\":0.5}}";
    ck_assert(fm(cond("loc", "\"geo_radius\":{\"center\":{\"lon\":0,\"lat\":0},\"radius\":78627}"), p));
    ck_assert(!fm(cond("loc", "\"geo_radius\":{\"center\":{\"lon\":0,\"lat\":0},\"radius\":78626}"), p));
    /* Berlin and Moscow in one array: near Berlin matches. */
    const char *bm = "{\"loc\":[{\"lat\":52.52197645,\"lon\":13.413637435864272},{\"lat\":55.7536283,\"lon\":37.62137960067377}]}";
    ck_assert(fm(cond("loc", "\"geo_radius\":{\"center\":{\"lon\":13.413637,\"lat\":52.521976},\"radius\":2000}"), bm));
    ck_assert(!fm(cond("loc", "\"geo_radius\":{\"center\":{\"lon\":20.423637,\"lat\":52.511},\"radius\":2000}"), bm));
    const char *box = "\"geo_bounding_box\":{\"top_left\":{\"lon\":13.0,\"lat\":53.0},\"bottom_right\":{\"lon\":14.0,\"lat\":52.0}}";
    ck_assert(fm(cond("loc", box), bm));
    ck_assert(!fm(cond("loc", box), "{\"loc\":{\"lon\":12.9,\"lat\":52.5}}"));
    ck_assert(!fm(cond("loc", box), "{\"loc\":\"Berlin\"}"));
    /* A box across the antimeridian. */
    const char *am = "\"geo_bounding_box\":{\"top_left\":{\"lon\":170,\"lat\":10},\"bottom_right\":{\"lon\":-170,\"lat\":-10}}";
    ck_assert(fm(cond("loc", am), "{\"loc\":{\"lon\":179,\"lat\":0}}"));
    ck_assert(fm(cond("loc", am), "{\"loc\":{\"lon\":-175,\"lat\":0}}"));
    ck_assert(!fm(cond("loc", am), "{\"loc\":{\"lon\":0,\"lat\":0}}"));
    /* A square with a square hole. */
    const char *poly = "\"geo_polygon\":{\"exterior\":{\"points\":[{\"lon\":0,\"lat\":0},{\"lon\":10,\"lat\":0},"
                       "{\"lon\":10,\"lat\":10},{\"lon\":0,\"lat\":10},{\"lon\":0,\"lat\":0}]},\"interiors\":[{\"points\":["
                       "{\"lon\":4,\"lat\":4},{\"lon\":6,\"lat\":4},{\"lon\":6,\"lat\":6},{\"lon\":4,\"lat\":6},{\"lon\":4,\"lat\":4}]}]}";
    ck_assert(fm(cond("loc", poly), "{\"loc\":{\"lon\":2,\"lat\":2}}"));
    ck_assert(!fm(cond("loc", poly), "{\"loc\":{\"lon\":5,\"lat\":5}}"));
    ck_assert(!fm(cond("loc", poly), "{\"loc\":{\"lon\":11,\"lat\":5}}"));
    ck_assert(!fm(cond("loc", poly), "{\"loc\":{\"lon\":0,\"lat\":5}}"));   /* on the boundary */
}
END_TEST

START_TEST(test_errors) {
    compile_bad("[]", FANNS_EINVAL, "filter");
    compile_bad("{\"foo\":[]}", FANNS_EINVAL, "filter.foo");
    compile_bad("{\"must\":5}", FANNS_EINVAL, "filter.must");
    compile_bad("{\"must\":[1]}", FANNS_EINVAL, "filter.must[0]");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"value\":1}},{\"key\":\"b\",\"range\":{\"gt\":\"yesterday\"}}]}",
                FANNS_EINVAL, "filter.must[1].range.gt");
    compile_bad("{\"must\":[{\"key\":\"a\",\"range\":{\"gt\":\"2020-01-01\",\"lt\":5}}]}", FANNS_EINVAL, "filter.must[0].range.lt");
    compile_bad("{\"must\":[{\"key\":\"a\",\"range\":{\"gt\":true}}]}", FANNS_EINVAL, "filter.must[0].range.gt");
    compile_bad("{\"must\":[{\"key\":\"a\",\"range\":{\"above\":1}}]}", FANNS_EINVAL, "filter.must[0].range.above");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"value\":1.5}}]}", FANNS_EINVAL, "filter.must[0].match.value");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"value\":null}}]}", FANNS_EINVAL, "filter.must[0].match.value");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"any\":[\"x\",1]}}]}", FANNS_EINVAL, "filter.must[0].match.any[1]");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"any\":[1,\"x\"]}}]}", FANNS_EINVAL, "filter.must[0].match.any[1]");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"any\":\"x\"}}]}", FANNS_EINVAL, "filter.must[0].match.any");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"except\":[1.5]}}]}", FANNS_EINVAL, "filter.must[0].match.except[0]");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"value\":1,\"any\":[1]}}]}", FANNS_EINVAL, "filter.must[0].match");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"equals\":1}}]}", FANNS_EINVAL, "filter.must[0].match.equals");
    compile_bad("{\"must\":[{\"key\":\"a\",\"match\":{\"text\":5}}]}", FANNS_EINVAL, "filter.must[0].match.text");
    compile_bad("{\"must\":[{\"key\":\"a\",\"matchx\":{}}]}", FANNS_EINVAL, "filter.must[0].matchx");
    compile_bad("{\"must\":[{\"key\":5,\"match\":{\"value\":1}}]}", FANNS_EINVAL, "filter.must[0].key");
    compile_bad("{\"must\":[{\"key\":\"a..b\",\"match\":{\"value\":1}}]}", FANNS_EINVAL, "filter.must[0].key");
    compile_bad("{\"must\":[{\"key\":\"\",\"match\":{\"value\":1}}]}", FANNS_EINVAL, "filter.must[0].key");
    compile_bad("{\"must\":[{\"key\":\"a[x]\",\"match\":{\"value\":1}}]}", FANNS_EINVAL, "filter.must[0].key");
    compile_bad("{\"must\":[{\"key\":\"a b\",\"match\":{\"value\":1}}]}", FANNS_EINVAL, "filter.must[0].key");
    compile_bad("{\"must\":[{\"key\":\"a\",\"values_count\":{\"gt\":-1}}]}", FANNS_EINVAL, "filter.must[0].values_count.gt");
    compile_bad("{\"must\":[{\"key\":\"a\",\"values_count\":{\"gt\":1.5}}]}", FANNS_EINVAL, "filter.must[0].values_count.gt");
    compile_bad("{\"must\":[{\"key\":\"a\",\"is_empty\":\"yes\"}]}", FANNS_EINVAL, "filter.must[0].is_empty");
    compile_bad("{\"must\":[{\"key\":\"a\"}]}", FANNS_EVALIDATE, "filter.must[0]");
    compile_bad("{\"should\":[{\"is_empty\":{\"key\":\"a\",\"x\":1}}]}", FANNS_EINVAL, "filter.should[0].is_empty.x");
    compile_bad("{\"should\":[{\"is_empty\":{}}]}", FANNS_EINVAL, "filter.should[0].is_empty");
    compile_bad("{\"should\":[{\"is_null\":\"a\"}]}", FANNS_EINVAL, "filter.should[0].is_null");
    compile_bad("{\"should\":[{\"is_null\":{\"key\":\"a\"},\"extra\":1}]}", FANNS_EINVAL, "filter.should[0].extra");
    compile_bad("{\"must_not\":[{\"has_id\":[1,\"nope\"]}]}", FANNS_EINVAL, "filter.must_not[0].has_id[1]");
    compile_bad("{\"must_not\":[{\"has_id\":[-1]}]}", FANNS_EINVAL, "filter.must_not[0].has_id[0]");
    compile_bad("{\"must_not\":[{\"has_id\":5}]}", FANNS_EINVAL, "filter.must_not[0].has_id");
    compile_bad("{\"must\":[{\"nested\":{\"key\":\"a\"}}]}", FANNS_EINVAL, "filter.must[0].nested");
    compile_bad("{\"must\":[{\"nested\":{\"key\":\"a\",\"filter\":{\"must\":[{\"key\":\"b\",\"range\":{\"gt\":\"x\"}}]}}}]}",
                FANNS_EINVAL, "filter.must[0].nested.filter.must[0].range.gt");
    compile_bad("{\"must\":[{\"nested\":{\"key\":\"a\",\"filter\":{\"bogus\":1}}}]}", FANNS_EINVAL,
                "filter.must[0].nested.filter.bogus");
    compile_bad("{\"must\":[{\"must\":[{\"key\":\"a\",\"match\":{\"value\":1}}],\"other\":1}]}", FANNS_EINVAL,
                "filter.must[0].other");
    compile_bad("{\"must\":[{\"has_vector\":\"v\"}]}", FANNS_EINVAL, "filter.must[0].has_vector");
    compile_bad("{\"min_should\":{\"conditions\":[],\"min_count\":0}}", FANNS_EVALIDATE, "filter.min_should.min_count");
    compile_bad("{\"min_should\":{\"conditions\":[],\"min_count\":-1}}", FANNS_EINVAL, "filter.min_should.min_count");
    compile_bad("{\"min_should\":{\"conditions\":[]}}", FANNS_EINVAL, "filter.min_should");
    compile_bad("{\"min_should\":{\"conditions\":[5],\"min_count\":1}}", FANNS_EINVAL, "filter.min_should.conditions[0]");
    compile_bad("{\"min_should\":{\"conditions\":[],\"min_count\":1,\"x\":2}}", FANNS_EINVAL, "filter.min_should.x");
    compile_bad("{\"must\":[{\"key\":\"l\",\"geo_radius\":{\"center\":{\"lon\":0,\"lat\":91},\"radius\":5}}]}", FANNS_EINVAL,
                "filter.must[0].geo_radius.center");
    compile_bad("{\"must\":[{\"key\":\"l\",\"geo_polygon\":{\"exterior\":{\"points\":[{\"lon\":0,\"lat\":0},{\"lon\":1,\"lat\":0},"
                "{\"lon\":0,\"lat\":0}]}}}]}", FANNS_EVALIDATE, "filter.must[0].geo_polygon.exterior.points");
    /* A different prefix is used in paths. */
    json_t *v = parse("{\"must\":[{\"key\":\"a\",\"bad\":1}]}");
    fanns_filter_t *f;
    fanns_err_t err = {0};
    ck_assert_int_eq(fanns_filter_compile(v, "prefetch[0].filter", &f, &err), FANNS_EINVAL);
    ck_assert_str_eq(err.path, "prefetch[0].filter.must[0].bad");
    ck_assert(strstr(err.msg, "unknown field 'bad'") != NULL);
    json_decref(v);
}
END_TEST

/* Builds {"must":[{"must":[ ... {"key":"a","match":{"value":1}} ... ]}]} with `levels` filters. */
static char *deep_filter(int levels) {
    size_t cap = (size_t)levels * 24 + 128;
    char *s = malloc(cap), *p = s;
    for (int i = 0; i < levels; i++) p += sprintf(p, "{\"must\":[");
    p += sprintf(p, "{\"key\":\"a\",\"match\":{\"value\":1}}");
    for (int i = 0; i < levels; i++) p += sprintf(p, "]}");
    return s;
}

START_TEST(test_depth_limit) {
    char *ok = deep_filter(FANNS_FILTER_MAX_DEPTH);
    ck_assert(fm(ok, "{\"a\":1}"));
    ck_assert(!fm(ok, "{\"a\":2}"));
    free(ok);
    char *bad = deep_filter(FANNS_FILTER_MAX_DEPTH + 1);
    json_t *v = parse(bad);
    fanns_filter_t *f;
    fanns_err_t err = {0};
    ck_assert_int_eq(fanns_filter_compile(v, "filter", &f, &err), FANNS_EINVAL);
    ck_assert(strstr(err.msg, "nested deeper") != NULL);
    ck_assert(strncmp(err.path, "filter.must[0].must[0]", 22) == 0);
    json_decref(v);
    free(bad);
    /* nested conditions count as a level too. */
    char buf[8192], *p = buf;
    for (int i = 0; i < FANNS_FILTER_MAX_DEPTH; i++) p += sprintf(p, "{\"must\":{\"nested\":{\"key\":\"a\",\"filter\":");
    p += sprintf(p, "{}");
    for (int i = 0; i < FANNS_FILTER_MAX_DEPTH; i++) p += sprintf(p, "}}}");
    compile_bad(buf, FANNS_EINVAL, NULL);
}
END_TEST

START_TEST(test_size_limits) {
    /* 10000 conditions compile; 10001 do not. */
    size_t n = FANNS_FILTER_MAX_CONDITIONS;
    json_t *must = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_pack("{s:s, s:{s:I}}", "key", "a", "match", "value", (json_int_t)i);
        json_array_append_new(must, c);
    }
    json_t *flt = json_pack("{s:O}", "should", must);
    fanns_filter_t *f = NULL;
    fanns_err_t err = {0};
    ck_assert_int_eq(fanns_filter_compile(flt, "filter", &f, &err), 0);
    ck_assert_uint_eq(fanns_filter_count(f), n);
    json_t *pl = json_pack("{s:i}", "a", 9999);
    ck_assert(fanns_filter_match(f, NULL, pl));
    json_decref(pl);
    fanns_filter_free(f);
    json_array_append_new(must, json_pack("{s:s, s:{s:i}}", "key", "a", "match", "value", 1));
    ck_assert_int_eq(fanns_filter_compile(flt, "filter", &f, &err), FANNS_EINVAL);
    ck_assert(strstr(err.msg, "conditions") != NULL);
    json_decref(flt);
    json_decref(must);

    /* any lists: 100000 values compile, 100001 do not; the sorted lookup finds every value. */
    json_t *any = json_array();
    for (int i = 0; i < FANNS_FILTER_MAX_LIST; i++) json_array_append_new(any, json_integer((json_int_t)i * 7));
    flt = json_pack("{s:{s:s, s:{s:O}}}", "must", "key", "a", "match", "any", any);
    ck_assert_int_eq(fanns_filter_compile(flt, "filter", &f, &err), 0);
    for (int i = 0; i < 1000; i++) {
        pl = json_pack("{s:I}", "a", (json_int_t)i * 7 * 97);
        ck_assert(fanns_filter_match(f, NULL, pl) == (i * 97 < FANNS_FILTER_MAX_LIST));
        json_decref(pl);
        pl = json_pack("{s:I}", "a", (json_int_t)i * 7 + 3);
        ck_assert(!fanns_filter_match(f, NULL, pl));
        json_decref(pl);
    }
    fanns_filter_free(f);
    json_array_append_new(any, json_integer(-1));
    ck_assert_int_eq(fanns_filter_compile(flt, "filter", &f, &err), FANNS_EINVAL);
    ck_assert_str_eq(err.path, "filter.must.match.any");
    json_decref(flt);
    json_decref(any);
}
END_TEST

/* Many threads evaluate one compiled filter at once. */
typedef struct {
    const fanns_filter_t *f;
    json_t *yes, *no;
    int bad;
} thr_arg_t;

static void *thr(void *p) {
    thr_arg_t *a = p;
    for (int i = 0; i < 20000; i++) {
        if (!fanns_filter_match(a->f, NULL, a->yes)) a->bad++;
        if (fanns_filter_match(a->f, NULL, a->no)) a->bad++;
    }
    return NULL;
}

START_TEST(test_threads) {
    fanns_filter_t *f = compile_ok("{\"must\":[{\"key\":\"c\",\"match\":{\"any\":[\"a\",\"b\"]}},"
                                   "{\"key\":\"ts\",\"range\":{\"gt\":\"2020-01-01T00:00:00+01:00\"}}]}");
    json_t *yes = parse("{\"c\":\"b\",\"ts\":\"2020-06-01\"}"), *no = parse("{\"c\":\"b\",\"ts\":\"2019-06-01\"}");
    pthread_t t[4];
    thr_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (thr_arg_t){f, yes, no, 0};
        pthread_create(&t[i], NULL, thr, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(a[i].bad, 0);
    }
    json_decref(yes);
    json_decref(no);
    fanns_filter_free(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("filter");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_null_matches_all);
    tcase_add_test(tc, test_match_value);
    tcase_add_test(tc, test_match_any);
    tcase_add_test(tc, test_match_except);
    tcase_add_test(tc, test_match_text);
    tcase_add_test(tc, test_range_numeric);
    tcase_add_test(tc, test_range_datetime);
    tcase_add_test(tc, test_values_count);
    tcase_add_test(tc, test_is_empty_is_null);
    tcase_add_test(tc, test_has_id);
    tcase_add_test(tc, test_nested);
    tcase_add_test(tc, test_key_paths);
    tcase_add_test(tc, test_boolean_logic);
    tcase_add_test(tc, test_geo);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_size_limits);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
