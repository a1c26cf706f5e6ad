/*
 * test_quant.c: collection codecs (storage/quant.c) through the public db API: scans on
 * codes with full oversampling equal the exact scan, exact and ignore never use codes, a
 * codebook is stored in LMDB and reloaded (not retrained) after close/open, removing the
 * config drops the codes and the stored record, and replicas given the same writes train the
 * same codebook.
 */
#include <check.h>
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

static char dir[256];

static void mkdir_tmp(char *d, size_t n) {
    snprintf(d, n, "/tmp/fanns-test-quant-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d));
}

static void rm_tmp(const char *d) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", d);
    ck_assert_int_eq(system(cmd), 0);
}

static fanns_db_t *open_db(const char *d) {
    fanns_db_t *db;
    fanns_err_t err;
    ck_assert_msg(fanns_db_open(d, NULL, &db, &err) == 0, "open: %s", err.msg);
    return db;
}

static void write_ok(fanns_db_t *db, fanns_wentry_t *e) {
    fanns_err_t err;
    ck_assert_msg(fanns_db_write(db, e, true, NULL, &err) == 0, "write: %s", err.msg);
}

static void create(fanns_db_t *db, const char *name, uint32_t dim, fanns_metric_t m, json_t *qcfg) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_CREATE_COLL);
    e->collection = strdup(name);
    e->config = json_pack("{s:o}", "quantization_config", qcfg);
    e->dim = dim;
    e->metric = m;
    write_ok(db, e);
}

static void update(fanns_db_t *db, const char *name, json_t *qcfg) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_UPDATE_COLL);
    e->collection = strdup(name);
    e->config = json_pack("{s:o}", "quantization_config", qcfg);
    write_ok(db, e);
}

/* Clustered vectors from a seeded LCG, so every run and replica writes the same values. */
static void upsert(fanns_db_t *db, const char *name, uint32_t dim, uint64_t first, size_t n, uint64_t seed) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_UPSERT);
    e->collection = strdup(name);
    e->dim = dim;
    e->n = n;
    e->ids = calloc(n, sizeof(*e->ids));
    e->vectors = malloc(n * dim * sizeof(float));
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        e->ids[i].kind = FANNS_PID_NUM;
        e->ids[i].num = first + i;
        int cl = (int)((first + i) % 8);
        for (uint32_t j = 0; j < dim; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            float u = (float)((s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
            e->vectors[i * dim + j] = u + (float)((cl * 7 + (int)j) % 5) - 2.0f;
        }
    }
    write_ok(db, e);
}

static fanns_coll_t *get(fanns_db_t *db, const char *name) {
    fanns_coll_t *c;
    ck_assert_int_eq(fanns_db_coll_get(db, name, &c, NULL), 0);
    return c;
}

/* Waits until the collection's codec is ready (and nothing is being trained). */
static fanns_coll_stats_t wait_ready(fanns_coll_t *c, const char *kind) {
    fanns_coll_stats_t st;
    for (int i = 0; i < 3000; i++) {
        fanns_coll_stats(c, &st);
        json_decref(st.config);
        json_decref(st.payload_schema);
        if (strcmp(st.codec_status, "ready") == 0 && !st.indexing && st.codec_ready && strcmp(st.codec_ready, kind) == 0)
            return st;
        usleep(10000);
    }
    ck_abort_msg("codec %s not ready (status %s)", kind, st.codec_status);
    return st;
}

static void search(fanns_coll_t *c, const float *q, fanns_search_req_t *req, fanns_hit_t **hits, size_t *n,
                   fanns_search_explain_t *ex) {
    fanns_err_t err;
    req->query = q;
    req->explain = ex;
    ck_assert_msg(fanns_coll_search(c, req, hits, n, &err) == 0, "search: %s", err.msg);
}

START_TEST(test_scan_exact_and_persist) {
    const uint32_t dim = 32;
    mkdir_tmp(dir, sizeof(dir));
    fanns_db_t *db = open_db(dir);
    create(db, "c", dim, FANNS_METRIC_EUCLID, json_pack("{s:{s:s}}", "scalar", "type", "int8"));
    for (int b = 0; b < 3; b++) upsert(db, "c", dim, (uint64_t)b * 1000, 1000, (uint64_t)b + 1);
    fanns_coll_t *c = get(db, "c");
    fanns_coll_stats_t st = wait_ready(c, "sq8");
    ck_assert_uint_eq(st.code_size, dim + 4); /* Euclid keeps the decoded norm */
    ck_assert_uint_eq(st.codec_trained_points, 2000); /* 256 -> 1000 -> 2000; 3000 < 4000 */
    ck_assert_uint_ge(st.codes_bytes, 3000 * (dim + 4));
    uint64_t sum = st.codec_checksum;

    float q[32];
    for (uint32_t j = 0; j < dim; j++) q[j] = (float)((j * 3) % 5) - 2.0f + 0.1f * (float)j / dim;
    fanns_hit_t *he, *hc, *hi;
    size_t ne, nc, ni;
    fanns_search_explain_t ex;
    fanns_search_req_t r = {.limit = 20, .exact = true};
    search(c, q, &r, &he, &ne, &ex);
    ck_assert_ptr_null(ex.codec);
    ck_assert_uint_eq(ne, 20);
    /* Oversampling past the collection size rescores every point: the exact answer. */
    fanns_search_req_t r2 = {.limit = 20, .q_oversampling = 1e9};
    search(c, q, &r2, &hc, &nc, &ex);
    ck_assert_str_eq(ex.codec, "sq8");
    ck_assert_str_eq(ex.strategy, "quantized_scan");
    ck_assert_uint_eq(ex.candidates, 3000);
    ck_assert(ex.rescored);
    ck_assert_uint_eq(nc, ne);
    for (size_t i = 0; i < ne; i++) {
        ck_assert_uint_eq(hc[i].id.num, he[i].id.num);
        ck_assert_float_eq(hc[i].score, he[i].score);
    }
    fanns_search_req_t r3 = {.limit = 20, .q_ignore = true};
    search(c, q, &r3, &hi, &ni, &ex);
    ck_assert_ptr_null(ex.codec);
    for (size_t i = 0; i < ne; i++) ck_assert_uint_eq(hi[i].id.num, he[i].id.num);
    /* Without rescoring the scores are code estimates, close to but not the float32 ones. */
    fanns_hit_t *hn;
    size_t nn;
    fanns_search_req_t r4 = {.limit = 20, .q_no_rescore = true, .q_oversampling = 2};
    search(c, q, &r4, &hn, &nn, &ex);
    ck_assert(!ex.rescored);
    ck_assert_uint_eq(ex.candidates, 40);
    bool differs = false;
    for (size_t i = 0; i < nn; i++) differs |= hn[i].score != he[i].score;
    ck_assert(differs);
    ck_assert_float_eq_tol(hn[0].score, he[0].score, 0.05f * he[0].score + 0.05f);
    fanns_hits_free(he, ne);
    fanns_hits_free(hc, nc);
    fanns_hits_free(hi, ni);
    fanns_hits_free(hn, nn);
    fanns_coll_release(c);
    fanns_db_close(db);

    /* Reopen: the stored codebook is reloaded (same checksum and sample size). */
    db = open_db(dir);
    c = get(db, "c");
    st = wait_ready(c, "sq8");
    ck_assert_uint_eq(st.codec_checksum, sum);
    ck_assert_uint_eq(st.codec_trained_points, 2000);
    fanns_coll_release(c);

    /* Removing the config drops the codes at once and the stored record with them. */
    update(db, "c", json_null());
    c = get(db, "c");
    fanns_coll_stats(c, &st);
    json_decref(st.config);
    json_decref(st.payload_schema);
    ck_assert_str_eq(st.codec_status, "none");
    ck_assert_ptr_null(st.codec_ready);
    ck_assert_uint_eq(st.codes_bytes, 0);
    fanns_coll_release(c);
    fanns_db_close(db);

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    MDB_val k = {strlen("codebook/1"), "codebook/1"}, v;
    ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), MDB_NOTFOUND);
    MDB_val kc = {strlen("coll/c"), "coll/c"};
    ck_assert_int_eq(mdb_get(txn, dbi, &kc, &v), 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    rm_tmp(dir);
}
END_TEST

/* Two databases given the same writes train the same codebooks (the sample is chosen by the
 * writer from the state after a given write, by a seeded hash of the ids). */
static uint64_t train_one(const char *kind_json, const char *kind, uint64_t *trained) {
    char d[256];
    json_error_t je;
    mkdir_tmp(d, sizeof(d));
    fanns_db_t *db = open_db(d);
    create(db, "c", 16, FANNS_METRIC_COSINE, json_loads(kind_json, 0, &je));
    upsert(db, "c", 16, 0, 700, 5);
    upsert(db, "c", 16, 700, 900, 6);
    fanns_coll_t *c = get(db, "c");
    fanns_coll_stats_t st = wait_ready(c, kind);
    fanns_coll_release(c);
    fanns_db_close(db);
    rm_tmp(d);
    *trained = st.codec_trained_points;
    return st.codec_checksum;
}

START_TEST(test_same_writes_same_codebook) {
    static const char *const cfg[][2] = {{"{\"scalar\": {\"type\": \"int8\", \"quantile\": 0.99, \"fanns_training_sample\": 1000}}", "sq8"},
                                         {"{\"binary\": {}}", "bin"},
                                         {"{\"product\": {\"compression\": \"x8\"}}", "pq"}};
    for (size_t i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++) {
        uint64_t t1, t2;
        uint64_t a = train_one(cfg[i][0], cfg[i][1], &t1), b = train_one(cfg[i][0], cfg[i][1], &t2);
        ck_assert_msg(a == b, "%s: codebooks differ", cfg[i][1]);
        ck_assert_uint_eq(t1, t2);
        /* 700 points trained first; 1600 >= 2 * 700 trains again, capped by the sample size. */
        ck_assert_uint_eq(t1, i == 0 ? 1000 : 1600);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("storage/quant");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_scan_exact_and_persist);
    tcase_add_test(tc, test_same_writes_same_codebook);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
