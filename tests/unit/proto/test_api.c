/*
 * test_api.c: the REST API as a pure function: JSON decoding and validation, the response
 * envelope and status codes, and that a rejected request changes nothing.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "db.h"

static char dir[256];
static fanns_db_t *db;
static fanns_api_t *api;

static void setup(void) {
    fanns_err_t err;
    snprintf(dir, sizeof(dir), "/tmp/fanns-test-api-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_msg(fanns_db_open(dir, NULL, &db, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(fanns_api_new(db, &api), 0);
}

static void teardown(void) {
    char cmd[300];
    fanns_api_free(api);
    fanns_db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Calls the API; returns the parsed response document and sets *status. */
static json_t *call(const char *method, const char *path, const char *query, const char *body, int *status) {
    fanns_api_req_t req = {method, path, query, body, body ? strlen(body) : 0, "t"};
    fanns_api_resp_t resp;
    fanns_api_handle(api, &req, &resp);
    *status = resp.status;
    json_t *doc = NULL;
    if (strcmp(resp.content_type, "application/json") == 0) {
        doc = json_loadb(resp.body, resp.body_len, 0, NULL);
        ck_assert_msg(doc != NULL, "response is not JSON: %.*s", (int)resp.body_len, resp.body);
    }
    free(resp.body);
    return doc;
}

/* Asserts an error envelope with a non-empty message and the given status. */
static void expect_error(const char *method, const char *path, const char *body, int want) {
    int st;
    json_t *doc = call(method, path, "wait=true", body, &st);
    ck_assert_msg(st == want, "%s %s %s: status %d, want %d", method, path, body ? body : "", st, want);
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "status"), "error"));
    ck_assert_msg(msg && *msg, "no error message for %s %s", method, path);
    ck_assert_ptr_nonnull(json_object_get(doc, "time"));
    json_decref(doc);
}

static json_t *ok(const char *method, const char *path, const char *body) {
    int st;
    json_t *doc = call(method, path, "wait=true", body, &st);
    ck_assert_msg(st == 200, "%s %s: status %d: %s", method, path, st, json_dumps(doc, 0));
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "ok");
    json_t *r = json_incref(json_object_get(doc, "result"));
    json_decref(doc);
    return r;
}

static void make_collection(void) {
    json_decref(ok("PUT", "/collections/c", "{\"vectors\":{\"size\":3,\"distance\":\"Dot\"}}"));
    json_decref(ok("PUT", "/collections/c/points",
                   "{\"points\":[{\"id\":1,\"vector\":[1,0,0],\"payload\":{\"a\":\"x\"}},"
                   "{\"id\":\"550e8400-e29b-41d4-a716-446655440000\",\"vector\":[0,1,0],\"payload\":{\"a\":\"y\"}}]}"));
}

START_TEST(test_root_and_health) {
    int st;
    json_t *doc = call("GET", "/", NULL, NULL, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(doc, "title")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(doc, "version")));
    json_decref(doc);
    call("GET", "/healthz", NULL, NULL, &st);
    ck_assert_int_eq(st, 200);
}
END_TEST

START_TEST(test_create_and_info) {
    make_collection();
    json_t *r = ok("GET", "/collections/c", NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "points_count")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(r, "status")), "green");
    json_t *vp = json_object_get(json_object_get(json_object_get(r, "config"), "params"), "vectors");
    ck_assert_int_eq(json_integer_value(json_object_get(vp, "size")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(vp, "distance")), "Dot");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_object_get(r, "config"), "hnsw_config"), "m")), 16);
    json_decref(r);
    expect_error("PUT", "/collections/c", "{\"vectors\":{\"size\":3,\"distance\":\"Dot\"}}", 409);
    r = ok("GET", "/collections/c/exists", NULL);
    ck_assert(json_is_true(json_object_get(r, "exists")));
    json_decref(r);
}
END_TEST

START_TEST(test_bad_input_changes_nothing) {
    make_collection();
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":3,\"vector\":[1,0]}]}", 422);
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":3,\"vector\":[1,0,", 400);
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":3,\"vector\":[NaN,0,0]}]}", 400);
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":3,\"vector\":[\"a\",0,0]}]}", 400);
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":\"not-a-uuid\",\"vector\":[1,0,0]}]}", 400);
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":-1,\"vector\":[1,0,0]}]}", 400);
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":3,\"vector\":[1,0,0],\"bogus\":1}]}", 400);
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":3,\"vector\":[1,0,0]}],\"extra\":true}", 400);
    /* A good point followed by a bad one: the batch is rejected as a whole. */
    expect_error("PUT", "/collections/c/points", "{\"points\":[{\"id\":7,\"vector\":[1,0,0]},{\"id\":8,\"vector\":[1,0]}]}", 422);
    expect_error("PUT", "/collections/nope/points", "{\"points\":[{\"id\":3,\"vector\":[1,0,0]}]}", 404);
    expect_error("PUT", "/collections/d", "{\"vectors\":{\"size\":3,\"distance\":\"Cosinus\"}}", 422);
    expect_error("PUT", "/collections/d", "{\"vectors\":{\"size\":0,\"distance\":\"Dot\"}}", 422);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[1,0,0],\"limit\":0}", 422);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[1,0,0],\"limit\":-5}", 422);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[1,0,0]}", 400);
    expect_error("POST", "/collections/c/points/query", "{\"query\":[1,0,0],\"filter\":{\"must\":[{\"key\":\"a\",\"match\":{}}]}}", 400);
    expect_error("POST", "/collections/c/points/query", "{\"query\":[1,0,0],\"filter\":{\"must\":[{\"key\":\"a\",\"range\":{\"gt\":\"nope\"}}]}}", 400);
    expect_error("POST", "/collections/c/points/delete", "{\"points\":[1],\"filter\":{}}", 400);
    expect_error("GET", "/collections/c/points/xyz", NULL, 400);
    expect_error("GET", "/collections/c/points/99", NULL, 404);
    expect_error("DELETE", "/collections/c/points", NULL, 405);
    expect_error("GET", "/nothing/here", NULL, 404);
    expect_error("POST", "/collections/c/points/scroll", "[1,2]", 400);
    int st;
    json_t *doc = call("PUT", "/collections/c/points", NULL, "{\"points\":[]}", &st);
    ck_assert_int_eq(st, 200);
    json_decref(doc);
    json_t *r = ok("POST", "/collections/c/points/count", "{}");
    ck_assert_int_eq(json_integer_value(json_object_get(r, "count")), 2);
    json_decref(r);
    r = ok("POST", "/collections/c/points/scroll", "{\"with_vector\":true}");
    json_t *pts = json_object_get(r, "points");
    ck_assert_uint_eq(json_array_size(pts), 2);
    /* Integer ids come before UUIDs. */
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, 0), "id")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(pts, 1), "id")), "550e8400-e29b-41d4-a716-446655440000");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(pts, 0), "payload"), "a")), "x");
    json_decref(r);
}
END_TEST

START_TEST(test_search_and_query) {
    make_collection();
    json_t *r = ok("POST", "/collections/c/points/search", "{\"vector\":[0.2,1,0],\"limit\":5,\"with_payload\":true}");
    ck_assert_uint_eq(json_array_size(r), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 0), "id")), "550e8400-e29b-41d4-a716-446655440000");
    ck_assert_double_eq_tol(json_number_value(json_object_get(json_array_get(r, 0), "score")), 1.0, 1e-6);
    ck_assert_double_eq_tol(json_number_value(json_object_get(json_array_get(r, 1), "score")), 0.2, 1e-6);
    json_decref(r);
    r = ok("POST", "/collections/c/points/query",
           "{\"query\":{\"nearest\":[0.2,1,0]},\"filter\":{\"must\":[{\"key\":\"a\",\"match\":{\"value\":\"x\"}}]},\"with_payload\":[\"a\"]}");
    json_t *pts = json_object_get(r, "points");
    ck_assert_uint_eq(json_array_size(pts), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(pts, 0), "id")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(pts, 0), "payload"), "a")), "x");
    json_decref(r);
    /* Filter on a field no point has: no match, not an error. */
    r = ok("POST", "/collections/c/points/query", "{\"query\":[1,1,1],\"filter\":{\"must\":[{\"key\":\"zzz\",\"match\":{\"value\":1}}]}}");
    ck_assert_uint_eq(json_array_size(json_object_get(r, "points")), 0);
    json_decref(r);
}
END_TEST

START_TEST(test_payload_ops) {
    make_collection();
    json_decref(ok("POST", "/collections/c/points/payload", "{\"payload\":{\"b\":2},\"points\":[1]}"));
    json_t *r = ok("GET", "/collections/c/points/1", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "payload"), "a")), "x");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "payload"), "b")), 2);
    json_decref(r);
    json_decref(ok("PUT", "/collections/c/points/payload", "{\"payload\":{\"c\":3},\"points\":[1]}"));
    r = ok("GET", "/collections/c/points/1", NULL);
    ck_assert_ptr_null(json_object_get(json_object_get(r, "payload"), "a"));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "payload"), "c")), 3);
    json_decref(r);
    json_decref(ok("POST", "/collections/c/points/payload/delete", "{\"keys\":[\"c\"],\"filter\":{\"must\":[{\"has_id\":[1]}]}}"));
    r = ok("GET", "/collections/c/points/1", NULL);
    ck_assert_uint_eq(json_object_size(json_object_get(r, "payload")), 0);
    json_decref(r);
    json_decref(ok("POST", "/collections/c/points/delete", "{\"filter\":{\"must\":[{\"key\":\"a\",\"match\":{\"value\":\"y\"}}]}}"));
    r = ok("POST", "/collections/c/points/count", "{}");
    ck_assert_int_eq(json_integer_value(json_object_get(r, "count")), 1);
    json_decref(r);
    r = ok("DELETE", "/collections/c", NULL);
    ck_assert(json_is_true(r));
    json_decref(r);
    expect_error("GET", "/collections/c", NULL, 404);
}
END_TEST


START_TEST(test_u64_ids) {
    json_decref(ok("PUT", "/collections/u", "{\"vectors\":{\"size\":2,\"distance\":\"Dot\"}}"));
    json_decref(ok("PUT", "/collections/u/points",
                   "{\"points\":[{\"id\":18446744073709551615,\"vector\":[1,0],\"payload\":{\"big\":9223372036854775808,\"s\":\"18446744073709551615\"}},"
                   "{\"id\":9223372036854775807,\"vector\":[0,1]}]}"));
    fanns_api_req_t req = {"POST", "/collections/u/points/scroll", NULL, "{}", 2, "t"};
    fanns_api_resp_t resp;
    fanns_api_handle(api, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    /* Both ids come back as bare integer literals, in numeric order; the string stays a string. */
    const char *a = strstr(resp.body, "\"id\":9223372036854775807"), *b = strstr(resp.body, "\"id\":18446744073709551615");
    ck_assert_msg(a && b && a < b, "body: %s", resp.body);
    ck_assert_ptr_nonnull(strstr(resp.body, "\"s\":\"18446744073709551615\""));
    ck_assert_ptr_null(strstr(resp.body, "u64:"));
    free(resp.body);
    /* The next page starts at the big id, also written as a bare literal. */
    fanns_api_req_t req1 = {"POST", "/collections/u/points/scroll", NULL, "{\"limit\":1}", 11, "t"};
    fanns_api_handle(api, &req1, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_msg(strstr(resp.body, "\"next_page_offset\":18446744073709551615}"), "body: %s", resp.body);
    free(resp.body);
    fanns_api_req_t get = {"GET", "/collections/u/points/18446744073709551615", NULL, NULL, 0, "t"};
    fanns_api_handle(api, &get, &resp);
    ck_assert_int_eq(resp.status, 200);
    json_t *doc = json_loadb(resp.body, resp.body_len, JSON_DECODE_INT_AS_REAL, NULL);
    ck_assert_ptr_nonnull(doc);
    json_t *big = json_object_get(json_object_get(json_object_get(doc, "result"), "payload"), "big");
    ck_assert(json_is_real(big));
    ck_assert_double_eq(json_real_value(big), 9223372036854775808.0);
    json_decref(doc);
    free(resp.body);
    expect_error("PUT", "/collections/u/points", "{\"points\":[{\"id\":18446744073709551616,\"vector\":[1,0]}]}", 400);
}
END_TEST


START_TEST(test_fast_vector_path) {
    make_collection();
    /* The fast path must give what the jansson path gives, whatever the number spelling. */
    json_t *a = ok("POST", "/collections/c/points/search", "{\"vector\":[0.2,1,0],\"limit\":5}");
    json_t *b = ok("POST", "/collections/c/points/search", "{ \"limit\" : 5 , \"vector\" : [ 2e-1 , 1.0E0 ,-0.0 ] }");
    ck_assert_uint_eq(json_array_size(a), 2);
    ck_assert(json_equal(json_object_get(json_array_get(a, 0), "id"), json_object_get(json_array_get(b, 0), "id")));
    ck_assert_double_eq_tol(json_number_value(json_object_get(json_array_get(a, 1), "score")),
                            json_number_value(json_object_get(json_array_get(b, 1), "score")), 1e-7);
    json_decref(a);
    json_decref(b);
    json_t *r = ok("POST", "/collections/c/points/query", "{\"query\":[0,1,0],\"limit\":1,\"with_payload\":true}");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(r, "points"), 0), "payload"), "a")), "y");
    json_decref(r);
    /* Numbers JSON does not allow are rejected as jansson would. */
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[01,0,0],\"limit\":1}", 400);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[1.,0,0],\"limit\":1}", 400);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[+1,0,0],\"limit\":1}", 400);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[NaN,0,0],\"limit\":1}", 400);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[1,0,0,],\"limit\":1}", 400);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[1,0],\"limit\":1}", 422);
    expect_error("POST", "/collections/c/points/search", "{\"vector\":[1e39,0,0],\"limit\":1}", 422);
    expect_error("POST", "/collections/c/points/query", "{\"query\":[1,0,0],\"query\":[1,0,0]}", 400);
    /* A "vector" key deeper in the body is not the query vector. */
    r = ok("POST", "/collections/c/points/query", "{\"query\":{\"nearest\":[0,1,0]},\"limit\":1,\"filter\":{\"must\":[{\"is_empty\":{\"key\":\"vector\"}}]}}");
    json_decref(r);
}
END_TEST


START_TEST(test_fast_upsert_path) {
    json_decref(ok("PUT", "/collections/f", "{\"vectors\":{\"size\":3,\"distance\":\"Euclid\"}}"));
    /* points form, batch form, the named default form, and a payload that has its own
     * "vector" and "vectors" arrays, which must be stored untouched. */
    json_decref(ok("PUT", "/collections/f/points",
                   "{\"points\":[{\"id\":1,\"vector\":[1.5,-2,3e-1],\"payload\":{\"vector\":[9,8,7],\"vectors\":[[1,2]]}},"
                   "{\"vector\":{\"\":[0,0,1]},\"id\":2}]}"));
    json_decref(ok("PUT", "/collections/f/points",
                   "{\"batch\":{\"ids\":[3,4],\"vectors\":[[0.25,0.5,0.75],[1,1,1]],\"payloads\":[{\"vector\":[1,2,3]},null]}}"));
    json_t *r = ok("POST", "/collections/f/points", "{\"ids\":[1,2,3,4],\"with_vector\":true}");
    ck_assert_uint_eq(json_array_size(r), 4);
    json_t *p1 = json_array_get(r, 0), *p3 = json_array_get(r, 2);
    ck_assert_double_eq(json_real_value(json_array_get(json_object_get(p1, "vector"), 0)), 1.5);
    ck_assert_double_eq_tol(json_real_value(json_array_get(json_object_get(p1, "vector"), 2)), 0.3, 1e-7);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(json_object_get(p1, "payload"), "vector"), 0)), 9);
    ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(p1, "payload"), "vectors")), 1);
    ck_assert_double_eq(json_real_value(json_array_get(json_object_get(json_array_get(r, 1), "vector"), 2)), 1.0);
    ck_assert_double_eq(json_real_value(json_array_get(json_object_get(p3, "vector"), 1)), 0.5);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(json_object_get(p3, "payload"), "vector"), 2)), 3);
    json_decref(r);
    expect_error("PUT", "/collections/f/points", "{\"points\":[{\"id\":5,\"vector\":[1,2]}]}", 422);
    expect_error("PUT", "/collections/f/points", "{\"batch\":{\"ids\":[5],\"vectors\":[[1,2,3,4]]}}", 422);
    expect_error("PUT", "/collections/f/points", "{\"points\":[{\"id\":5,\"vector\":[1,2,1e40]}]}", 422);
    expect_error("PUT", "/collections/f/points", "{\"points\":[{\"id\":5,\"vector\":[1,2,.5]}]}", 400);
    expect_error("PUT", "/collections/f/points", "{\"points\":[{\"id\":5,\"vector\":\"\\u0002fv:0\"}]}", 400);
    r = ok("POST", "/collections/f/points/count", "{}");
    ck_assert_int_eq(json_integer_value(json_object_get(r, "count")), 4);
    json_decref(r);
}
END_TEST


START_TEST(test_batches) {
    make_collection();
    json_t *r = ok("POST", "/collections/c/points/search/batch",
                   "{\"searches\":[{\"vector\":[1,0,0],\"limit\":1},{\"vector\":[0,1,0],\"limit\":2}]}");
    ck_assert_uint_eq(json_array_size(r), 2);
    ck_assert_uint_eq(json_array_size(json_array_get(r, 0)), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_array_get(r, 0), 0), "id")), 1);
    ck_assert_uint_eq(json_array_size(json_array_get(r, 1)), 2);
    json_decref(r);
    r = ok("POST", "/collections/c/points/query/batch", "{\"searches\":[{\"query\":[0,1,0],\"limit\":1}]}");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(json_array_get(r, 0), "points"), 0), "id")),
                     "550e8400-e29b-41d4-a716-446655440000");
    json_decref(r);
    expect_error("POST", "/collections/c/points/search/batch", "{\"searches\":[{\"vector\":[1,0],\"limit\":1}]}", 422);
    expect_error("POST", "/collections/c/points/query/batch", "{\"searches\":{}}", 400);
}
END_TEST

int main(void) {
    fanns_dist_init();
    Suite *s = suite_create("proto/api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_root_and_health);
    tcase_add_test(tc, test_create_and_info);
    tcase_add_test(tc, test_bad_input_changes_nothing);
    tcase_add_test(tc, test_search_and_query);
    tcase_add_test(tc, test_payload_ops);
    tcase_add_test(tc, test_u64_ids);
    tcase_add_test(tc, test_fast_vector_path);
    tcase_add_test(tc, test_fast_upsert_path);
    tcase_add_test(tc, test_batches);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
