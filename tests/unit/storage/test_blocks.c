/*
 * test_blocks.c: block links (storage/blocks.c).  A collection with a keyword and an integer
 * payload index gets links among the points of every value held by 2000 points or more (and
 * at most half of them); filtered graph walks on those values return only matching points
 * with good recall; the links are saved with the graph and loaded at start-up (a damaged
 * file is linked again); payload changes, a dropped index and payload_m 0 change the blocks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

#define DIM 16
#define NPTS 6000

static char dir[256];

static fanns_db_t *open_db(void) {
    fanns_db_t *db;
    fanns_err_t err;
    ck_assert_msg(fanns_db_open(dir, NULL, &db, &err) == 0, "open: %s", err.msg);
    return db;
}

static void write_ok(fanns_db_t *db, fanns_wentry_t *e) {
    fanns_err_t err;
    ck_assert_msg(fanns_db_write(db, e, true, NULL, &err) == 0, "write: %s", err.msg);
}

static json_t *config(int payload_m) {
    return json_pack("{s:{s:i}, s:{s:i, s:i, s:i, s:i}}", "optimizer_config", "indexing_threshold", 1, "hnsw_config", "m",
                     16, "ef_construct", 100, "full_scan_threshold", 1, "payload_m", payload_m);
}

/* Tag of point id: "a" for id % 5 in {0, 1}, "b" for {2, 3}, "c" for 4; y = id % 3. */
static const char *tag_of(uint64_t id) { return id % 5 < 2 ? "a" : id % 5 < 4 ? "b" : "c"; }

static void upsert_all(fanns_db_t *db) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_UPSERT);
    e->collection = strdup("c");
    e->dim = DIM;
    e->n = NPTS;
    e->ids = calloc(NPTS, sizeof(*e->ids));
    e->vectors = malloc((size_t)NPTS * DIM * sizeof(float));
    e->payloads = calloc(NPTS, sizeof(*e->payloads));
    uint64_t s = 77;
    for (size_t i = 0; i < NPTS; i++) {
        e->ids[i].kind = FANNS_PID_NUM;
        e->ids[i].num = i;
        e->payloads[i] = json_pack("{s:s, s:i}", "t", tag_of(i), "y", (int)(i % 3));
        int cl = (int)(i % 7);
        for (uint32_t j = 0; j < DIM; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            float u = (float)((s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
            e->vectors[i * DIM + j] = u + (float)((cl * 3 + (int)j) % 4) - 1.5f;
        }
    }
    write_ok(db, e);
}

static void index_field(fanns_db_t *db, const char *field, const char *type) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_CREATE_INDEX);
    e->collection = strdup("c");
    e->field = strdup(field);
    e->field_schema = json_string(type);
    write_ok(db, e);
}

static fanns_coll_t *get(fanns_db_t *db) {
    fanns_coll_t *c;
    ck_assert_int_eq(fanns_db_coll_get(db, "c", &c, NULL), 0);
    return c;
}

static fanns_coll_stats_t stats(fanns_coll_t *c) {
    fanns_coll_stats_t st;
    ck_assert_int_eq(fanns_coll_stats(c, &st), 0);
    json_decref(st.config);
    json_decref(st.payload_schema);
    return st;
}

static fanns_coll_stats_t wait_idle(fanns_coll_t *c) {
    for (int i = 0; i < 12000; i++) {
        fanns_coll_stats_t st = stats(c);
        if (!st.indexing) return st;
        usleep(10000);
    }
    ck_abort_msg("indexing did not finish");
    return stats(c);
}

/* Recall@10 over 30 queries of filtered graph searches for t == tag (ef 24: a walk, not a
 * scan, for 2000+ matches), against the exact filtered search; every hit must match. */
static double tag_recall(fanns_coll_t *c, const char *tag, bool links) {
    fanns_err_t err;
    fanns_filter_t *flt;
    json_t *fj = json_pack("{s:[{s:s, s:{s:s}}]}", "must", "key", "t", "match", "value", tag);
    ck_assert_int_eq(fanns_filter_compile(fj, "filter", &flt, &err), 0);
    size_t hits = 0, total = 0;
    for (int k = 0; k < 30; k++) {
        float q[DIM];
        for (uint32_t j = 0; j < DIM; j++) q[j] = (float)((j * 5 + (uint32_t)k) % 4) - 1.5f + 0.05f * (float)k;
        fanns_hit_t *a, *b;
        size_t na, nb;
        fanns_search_explain_t ex;
        fanns_search_req_t r = {.query = q, .limit = 10, .ef = 24, .filter = flt, .explain = &ex};
        ck_assert_int_eq(fanns_coll_search(c, &r, &a, &na, &err), 0);
        ck_assert_msg(strncmp(ex.strategy, "hnsw", 4) == 0, "strategy %s", ex.strategy);
        ck_assert_msg(ex.block_links == links, "block links used: %d", ex.block_links);
        fanns_search_req_t re = {.query = q, .limit = 10, .filter = flt, .exact = true};
        ck_assert_int_eq(fanns_coll_search(c, &re, &b, &nb, &err), 0);
        ck_assert_uint_eq(na, 10);
        for (size_t i = 0; i < na; i++) {
            ck_assert_str_eq(json_string_value(json_object_get(a[i].payload, "t")), tag);
            for (size_t j = 0; j < nb; j++) hits += fanns_pid_eq(&a[i].id, &b[j].id);
        }
        total += nb;
        fanns_hits_free(a, na);
        fanns_hits_free(b, nb);
    }
    fanns_filter_free(flt);
    json_decref(fj);
    return (double)hits / (double)total;
}

START_TEST(test_blocks) {
    snprintf(dir, sizeof(dir), "/tmp/fanns-test-blocks-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    fanns_db_t *db = open_db();
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_CREATE_COLL);
    e->collection = strdup("c");
    e->config = config(8);
    e->dim = DIM;
    e->metric = FANNS_METRIC_EUCLID;
    write_ok(db, e);
    upsert_all(db);
    fanns_coll_t *c = get(db);
    fanns_coll_stats_t st = wait_idle(c);
    ck_assert_uint_eq(st.blocks, 0); /* no payload index yet */
    index_field(db, "t", "keyword");
    index_field(db, "y", "integer");
    st = wait_idle(c);
    /* a and b (2400 points each; c has 1200), y = 0, 1, 2 (2000 each). */
    ck_assert_uint_eq(st.blocks, 5);
    ck_assert_uint_ge(st.block_links, 2400 + 2400 + 6000); /* a link or more per member */
    ck_assert_uint_gt(st.block_bytes, 4 * st.block_links);
    double ra = tag_recall(c, "a", true);
    ck_assert_msg(ra >= 0.9, "t = a: recall@10 %.3f", ra);
    fanns_coll_release(c);

    /* Saved with the graph and loaded at start-up, before the indexer runs. */
    fanns_db_close(db);
    char path[512];
    snprintf(path, sizeof(path), "%s/index/c1.blk", dir);
    ck_assert_int_eq(access(path, R_OK), 0);
    db = open_db();
    c = get(db);
    ck_assert_uint_eq(stats(c).blocks, 5);
    st = wait_idle(c);
    ck_assert_uint_eq(st.blocks, 5);
    fanns_coll_release(c);
    fanns_db_close(db);

    /* A damaged file is not trusted: the blocks are linked again. */
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 200, SEEK_SET), 0);
    int ch = fgetc(f);
    ck_assert_int_eq(fseek(f, 200, SEEK_SET), 0);
    fputc(ch ^ 0x5a, f);
    fclose(f);
    db = open_db();
    c = get(db);
    ck_assert_uint_eq(stats(c).blocks, 0);
    st = wait_idle(c);
    ck_assert_uint_eq(st.blocks, 5);

    /* 1000 points of a become c: a (1400) leaves the blocks, c (2200) joins them. */
    e = fanns_wentry_new(FANNS_W_SET_PAYLOAD);
    e->collection = strdup("c");
    e->n = 1000;
    e->ids = calloc(1000, sizeof(*e->ids));
    for (size_t i = 0; i < 1000; i++) {
        e->ids[i].kind = FANNS_PID_NUM;
        e->ids[i].num = i * 5; /* id % 5 == 0: all a */
    }
    e->payload = json_pack("{s:s}", "t", "c");
    write_ok(db, e);
    st = wait_idle(c);
    ck_assert_uint_eq(st.blocks, 5);
    double rc = tag_recall(c, "c", true);
    ck_assert_msg(rc >= 0.9, "t = c: recall@10 %.3f", rc);

    /* Dropping the integer index drops its blocks; payload_m 0 drops them all. */
    e = fanns_wentry_new(FANNS_W_DROP_INDEX);
    e->collection = strdup("c");
    e->field = strdup("y");
    write_ok(db, e);
    st = wait_idle(c);
    ck_assert_uint_eq(st.blocks, 2);
    e = fanns_wentry_new(FANNS_W_UPDATE_COLL);
    e->collection = strdup("c");
    e->config = config(0);
    write_ok(db, e);
    st = wait_idle(c);
    ck_assert_uint_eq(st.blocks, 0);
    ck_assert_uint_eq(st.block_links, 0);
    rc = tag_recall(c, "c", false);
    ck_assert_msg(rc >= 0.8, "t = c without block links: recall@10 %.3f", rc);
    fanns_coll_release(c);
    fanns_db_close(db);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("blocks");
    TCase *tc = tcase_create("blocks");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_blocks);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
