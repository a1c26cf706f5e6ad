/*
 * test_ondisk.c: collections with vectors.on_disk (storage/vecs.c) keep no float32 vectors
 * in RAM and read them from LMDB's records.  Two collections get the same writes, one in RAM
 * and one on disk; every read (exact, filtered and quantized+rescored searches, retrieve and
 * scroll with vectors, count) must give identical answers, after deletes, overwrites and
 * payload changes, across close/reopen and across PATCHing on_disk both ways.  A second case
 * builds graphs (small indexing threshold) and checks searches through them.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll_int.h" /* map_size: the test checks the map really grew */
#include "db.h"

static char dir[256];

static void mkdir_tmp(char *d, size_t n) {
    snprintf(d, n, "/tmp/fanns-test-ondisk-XXXXXX");
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

/* A normalised-enough config: what storage reads (on_disk, quantization, indexing). */
static json_t *config(bool ondisk, json_t *qcfg, int threshold_kb) {
    return json_pack("{s:{s:{s:b}}, s:o, s:{s:i}, s:{s:i, s:i}}", "params", "vectors", "on_disk", ondisk,
                     "quantization_config", qcfg ? qcfg : json_null(), "optimizer_config", "indexing_threshold",
                     threshold_kb, "hnsw_config", "m", 16, "ef_construct", 100);
}

static void create(fanns_db_t *db, const char *name, uint32_t dim, fanns_metric_t m, json_t *cfg) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_CREATE_COLL);
    e->collection = strdup(name);
    e->config = cfg;
    e->dim = dim;
    e->metric = m;
    write_ok(db, e);
}

static void update(fanns_db_t *db, const char *name, json_t *cfg) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_UPDATE_COLL);
    e->collection = strdup(name);
    e->config = cfg;
    write_ok(db, e);
}

/* Clustered vectors from a seeded LCG; payload {"g": id % 10}. */
static void upsert(fanns_db_t *db, const char *name, uint32_t dim, uint64_t first, size_t n, uint64_t seed) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_UPSERT);
    e->collection = strdup(name);
    e->dim = dim;
    e->n = n;
    e->ids = calloc(n, sizeof(*e->ids));
    e->vectors = malloc(n * dim * sizeof(float));
    e->payloads = calloc(n, sizeof(*e->payloads));
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        e->ids[i].kind = FANNS_PID_NUM;
        e->ids[i].num = first + i;
        e->payloads[i] = json_pack("{s:i}", "g", (int)((first + i) % 10));
        int cl = (int)((first + i) % 8);
        for (uint32_t j = 0; j < dim; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            float u = (float)((s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
            e->vectors[i * dim + j] = u + (float)((cl * 7 + (int)j) % 5) - 2.0f;
        }
    }
    write_ok(db, e);
}

static void delete_ids(fanns_db_t *db, const char *name, uint64_t first, size_t n, uint64_t step) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_DELETE);
    e->collection = strdup(name);
    e->n = n;
    e->ids = calloc(n, sizeof(*e->ids));
    for (size_t i = 0; i < n; i++) {
        e->ids[i].kind = FANNS_PID_NUM;
        e->ids[i].num = first + i * step;
    }
    write_ok(db, e);
}

static void set_payload(fanns_db_t *db, const char *name, uint64_t first, size_t n) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_SET_PAYLOAD);
    e->collection = strdup(name);
    e->n = n;
    e->ids = calloc(n, sizeof(*e->ids));
    for (size_t i = 0; i < n; i++) {
        e->ids[i].kind = FANNS_PID_NUM;
        e->ids[i].num = first + i;
    }
    e->payload = json_pack("{s:s}", "tag", "x");
    write_ok(db, e);
}

static fanns_coll_t *get(fanns_db_t *db, const char *name) {
    fanns_coll_t *c;
    ck_assert_int_eq(fanns_db_coll_get(db, name, &c, NULL), 0);
    return c;
}

static fanns_coll_stats_t stats(fanns_coll_t *c) {
    fanns_coll_stats_t st;
    ck_assert_int_eq(fanns_coll_stats(c, &st), 0);
    json_decref(st.config);
    json_decref(st.payload_schema);
    return st;
}

/* Waits until nothing runs in the background (codec ready if one is wanted, graph complete). */
static fanns_coll_stats_t wait_idle(fanns_coll_t *c, const char *kind) {
    fanns_coll_stats_t st;
    for (int i = 0; i < 6000; i++) {
        st = stats(c);
        bool codec_ok = !kind || (strcmp(st.codec_status, "ready") == 0 && st.codec_ready && strcmp(st.codec_ready, kind) == 0);
        if (codec_ok && !st.indexing) return st;
        usleep(10000);
    }
    ck_abort_msg("collection not idle (codec status %s, indexing %d)", st.codec_status, st.indexing);
    return st;
}

static void query_vec(float *q, uint32_t dim, int k) {
    for (uint32_t j = 0; j < dim; j++) q[j] = (float)((j * 3 + (uint32_t)k) % 5) - 2.0f + 0.1f * (float)j / (float)dim;
}

static void assert_hits_equal(const fanns_hit_t *a, size_t na, const fanns_hit_t *b, size_t nb, uint32_t dim, const char *what) {
    ck_assert_msg(na == nb, "%s: %zu vs %zu hits", what, na, nb);
    for (size_t i = 0; i < na; i++) {
        ck_assert_msg(fanns_pid_eq(&a[i].id, &b[i].id), "%s: hit %zu differs (%llu vs %llu)", what, i,
                      (unsigned long long)a[i].id.num, (unsigned long long)b[i].id.num);
        ck_assert_msg(a[i].score == b[i].score, "%s: score of hit %zu differs", what, i);
        ck_assert_msg(json_equal(a[i].payload, b[i].payload) || (!a[i].payload && !b[i].payload), "%s: payload differs", what);
        ck_assert_msg(!a[i].vector == !b[i].vector, "%s: vector presence differs", what);
        if (a[i].vector) ck_assert_msg(memcmp(a[i].vector, b[i].vector, dim * sizeof(float)) == 0, "%s: vector differs", what);
    }
}

static void search2(fanns_coll_t *ram, fanns_coll_t *disk, fanns_search_req_t *r, const char *what, const char *strategy) {
    fanns_hit_t *ha, *hb;
    size_t na, nb;
    fanns_err_t err;
    fanns_search_explain_t ea, eb;
    r->explain = &ea;
    ck_assert_msg(fanns_coll_search(ram, r, &ha, &na, &err) == 0, "%s: %s", what, err.msg);
    r->explain = &eb;
    ck_assert_msg(fanns_coll_search(disk, r, &hb, &nb, &err) == 0, "%s: %s", what, err.msg);
    ck_assert_str_eq(ea.strategy, eb.strategy);
    if (strategy) ck_assert_msg(strcmp(eb.strategy, strategy) == 0, "%s: strategy %s, expected %s", what, eb.strategy, strategy);
    ck_assert_uint_gt(nb, 0);
    assert_hits_equal(ha, na, hb, nb, fanns_coll_dim(ram), what);
    fanns_hits_free(ha, na);
    fanns_hits_free(hb, nb);
}

/* Every read path answers the same in both collections.  With graphs (built separately, so
 * they may differ) only the searches that do not traverse them are compared. */
static void compare_all(fanns_db_t *db, uint32_t dim, uint64_t nids, bool quantized, bool graph) {
    fanns_coll_t *ram = get(db, "ram"), *disk = get(db, "disk");
    fanns_err_t err;
    json_error_t je;
    fanns_filter_t *flt;
    json_t *fj = json_loads("{\"must\": [{\"key\": \"g\", \"range\": {\"lt\": 3}}]}", 0, &je);
    ck_assert_int_eq(fanns_filter_compile(fj, "filter", &flt, &err), 0);
    fanns_filter_t *tiny;
    json_t *tj = json_loads("{\"must\": [{\"key\": \"g\", \"match\": {\"value\": 2}},"
                            " {\"has_id\": [2, 12, 22, 32, 42, 52, 62, 72, 82, 92, 102, 112, 5, 7]}]}", 0, &je);
    ck_assert_ptr_nonnull(tj);
    ck_assert_int_eq(fanns_filter_compile(tj, "filter", &tiny, &err), 0);
    float q[64];
    for (int k = 0; k < 4; k++) {
        query_vec(q, dim, k);
        fanns_search_req_t r = {.query = q, .limit = 10, .exact = true, .with_vector = true};
        search2(ram, disk, &r, "exact", "exact_scan");
        fanns_search_req_t r2 = {.query = q, .limit = 10, .offset = 3, .q_oversampling = 2};
        if (!graph) search2(ram, disk, &r2, "default", quantized ? "quantized_scan" : "exact_scan");
        fanns_search_req_t r3 = {.query = q, .limit = 10, .filter = flt, .with_vector = true};
        search2(ram, disk, &r3, "filtered", quantized ? "quantized_filtered_scan" : "exact_filtered_scan");
        fanns_search_req_t r4 = {.query = q, .limit = 10, .filter = flt, .exact = true};
        search2(ram, disk, &r4, "filtered exact", "exact_filtered_scan");
        /* A match set no larger than the code scan would rescore (10 x 2) is scored exactly,
         * codes or not (storage/coll.c, small_match_set). */
        fanns_search_req_t r6 = {.query = q, .limit = 10, .filter = tiny, .q_oversampling = 2};
        search2(ram, disk, &r6, "tiny filtered", "exact_filtered_scan");
        if (quantized) {
            fanns_search_req_t r5 = {.query = q, .limit = 10, .q_no_rescore = true};
            search2(ram, disk, &r5, "codes only", "quantized_scan");
            /* Oversampling past the size rescores everything: the exact answer, from disk. */
            fanns_hit_t *he, *ho;
            size_t ne, no;
            fanns_search_req_t re = {.query = q, .limit = 10, .exact = true};
            fanns_search_req_t ro = {.query = q, .limit = 10, .q_oversampling = 1e9};
            ck_assert_int_eq(fanns_coll_search(disk, &re, &he, &ne, &err), 0);
            ck_assert_int_eq(fanns_coll_search(disk, &ro, &ho, &no, &err), 0);
            assert_hits_equal(he, ne, ho, no, dim, "full oversampling");
            fanns_hits_free(he, ne);
            fanns_hits_free(ho, no);
        }
    }
    /* Retrieve with vectors, including ids that do not exist. */
    fanns_pid_t ids[40];
    for (int i = 0; i < 40; i++) {
        ids[i].kind = FANNS_PID_NUM;
        ids[i].num = (uint64_t)i * 97 % (nids + 50);
    }
    fanns_hit_t *ga, *gb;
    size_t na, nb;
    ck_assert_int_eq(fanns_coll_get_points(ram, ids, 40, true, &ga, &na, &err), 0);
    ck_assert_int_eq(fanns_coll_get_points(disk, ids, 40, true, &gb, &nb, &err), 0);
    ck_assert_uint_gt(nb, 20);
    assert_hits_equal(ga, na, gb, nb, dim, "retrieve");
    fanns_hits_free(ga, na);
    fanns_hits_free(gb, nb);
    /* Scroll every page with vectors, with and without a filter. */
    for (int f = 0; f < 2; f++) {
        fanns_pid_t start, next;
        bool has_start = false, more = true;
        size_t pages = 0;
        while (more) {
            fanns_hit_t *sa, *sb;
            size_t sna, snb;
            bool ma, mb;
            fanns_pid_t na2, nb2;
            ck_assert_int_eq(fanns_coll_scroll(ram, has_start ? &start : NULL, f ? flt : NULL, 256, true, &sa, &sna, &ma, &na2, &err), 0);
            ck_assert_int_eq(fanns_coll_scroll(disk, has_start ? &start : NULL, f ? flt : NULL, 256, true, &sb, &snb, &mb, &nb2, &err), 0);
            assert_hits_equal(sa, sna, sb, snb, dim, "scroll");
            ck_assert(ma == mb);
            if (ma) ck_assert(fanns_pid_eq(&na2, &nb2));
            next = na2;
            fanns_hits_free(sa, sna);
            fanns_hits_free(sb, snb);
            more = ma;
            start = next;
            has_start = true;
            pages++;
        }
        ck_assert_uint_gt(pages, 1);
    }
    uint64_t ca, cb;
    ck_assert_int_eq(fanns_coll_count(ram, flt, &ca, &err), 0);
    ck_assert_int_eq(fanns_coll_count(disk, flt, &cb, &err), 0);
    ck_assert_uint_eq(ca, cb);
    ck_assert_int_eq(fanns_coll_count(ram, NULL, &ca, &err), 0);
    ck_assert_int_eq(fanns_coll_count(disk, NULL, &cb, &err), 0);
    ck_assert_uint_eq(ca, cb);
    fanns_filter_free(flt);
    json_decref(fj);
    fanns_filter_free(tiny);
    json_decref(tj);
    fanns_coll_release(ram);
    fanns_coll_release(disk);
}

START_TEST(test_ondisk_equals_ram) {
    const uint32_t dim = 24;
    const char *names[] = {"ram", "disk"};
    mkdir_tmp(dir, sizeof(dir));
    fanns_db_t *db = open_db(dir);
    for (int i = 0; i < 2; i++) {
        create(db, names[i], dim, FANNS_METRIC_EUCLID, config(i == 1, json_pack("{s:{s:s}}", "scalar", "type", "int8"), 0));
        upsert(db, names[i], dim, 0, 1500, 1);
        upsert(db, names[i], dim, 1500, 1500, 2);
        delete_ids(db, names[i], 3, 300, 7);      /* every 7th id from 3 */
        upsert(db, names[i], dim, 100, 200, 3);   /* overwrites 100..299, some reusing freed slots */
        upsert(db, names[i], dim, 3000, 100, 4);  /* new points take freed offsets */
        set_payload(db, names[i], 250, 100);      /* payload change: the record keeps its vector */
    }
    fanns_coll_t *ram = get(db, "ram"), *disk = get(db, "disk");
    fanns_coll_stats_t sr = wait_idle(ram, "sq8"), sd = wait_idle(disk, "sq8");
    ck_assert_uint_eq(sd.points_count, sr.points_count);
    ck_assert_uint_gt(sr.vectors_bytes, 0);
    ck_assert_uint_eq(sd.vectors_bytes, 0);       /* nothing float32 in RAM */
    ck_assert_uint_eq(sd.codes_bytes, sr.codes_bytes);
    ck_assert_uint_gt(sd.codes_bytes, 0);
    /* The same writes train the same codebook, from vectors read off the records. */
    ck_assert_uint_eq(sd.codec_checksum, sr.codec_checksum);
    fanns_coll_release(ram);
    fanns_coll_release(disk);
    compare_all(db, dim, 3100, true, false);
    fanns_db_close(db);

    /* Reopen: loaded from LMDB with no vectors in RAM; codes re-encoded from the records. */
    db = open_db(dir);
    disk = get(db, "disk");
    ram = get(db, "ram");
    sd = wait_idle(disk, "sq8");
    wait_idle(ram, "sq8");
    ck_assert_uint_eq(sd.vectors_bytes, 0);
    ck_assert_uint_gt(sd.codes_bytes, 0);
    fanns_coll_release(ram);
    fanns_coll_release(disk);
    compare_all(db, dim, 3100, true, false);

    /* PATCH to RAM loads the vectors from the records; back to disk frees them. */
    update(db, "disk", config(false, json_pack("{s:{s:s}}", "scalar", "type", "int8"), 0));
    disk = get(db, "disk");
    sd = stats(disk);
    ck_assert_uint_eq(sd.vectors_bytes, sr.vectors_bytes);
    fanns_coll_release(disk);
    compare_all(db, dim, 3100, true, false);
    update(db, "disk", config(true, json_pack("{s:{s:s}}", "scalar", "type", "int8"), 0));
    /* Writes while on disk after a round trip, then no quantization at all. */
    upsert(db, "disk", dim, 2000, 300, 9);
    upsert(db, "ram", dim, 2000, 300, 9);
    disk = get(db, "disk");
    ck_assert_uint_eq(stats(disk).vectors_bytes, 0);
    fanns_coll_release(disk);
    compare_all(db, dim, 3100, true, false);
    update(db, "disk", config(true, NULL, 0));
    update(db, "ram", config(false, NULL, 0));
    compare_all(db, dim, 3100, false, false);
    fanns_db_close(db);
    rm_tmp(dir);
}
END_TEST

/* The 10th best exact score. */
static float exact_kth(fanns_coll_t *c, const float *q) {
    fanns_hit_t *h;
    size_t n;
    fanns_err_t err;
    fanns_search_req_t r = {.query = q, .limit = 10, .exact = true};
    ck_assert_int_eq(fanns_coll_search(c, &r, &h, &n, &err), 0);
    ck_assert_uint_eq(n, 10);
    float kth = h[9].score;
    fanns_hits_free(h, n);
    return kth;
}

START_TEST(test_ondisk_graph) {
    const uint32_t dim = 16;
    const char *names[] = {"ram", "disk"};
    mkdir_tmp(dir, sizeof(dir));
    fanns_db_t *db = open_db(dir);
    for (int i = 0; i < 2; i++) {
        /* indexing_threshold 1 KB: a graph from the first points on. */
        create(db, names[i], dim, FANNS_METRIC_EUCLID, config(i == 1, NULL, 1));
        upsert(db, names[i], dim, 0, 1000, 11);
        upsert(db, names[i], dim, 1000, 1500, 12);
    }
    for (int round = 0; round < 2; round++) {
        fanns_coll_t *cs[2] = {get(db, "ram"), get(db, "disk")};
        for (int i = 0; i < 2; i++) {
            fanns_coll_stats_t st = wait_idle(cs[i], NULL);
            ck_assert_uint_eq(st.indexed_vectors_count, st.points_count);
            ck_assert_uint_gt(st.graph_bytes, 0);
            if (i == 1) ck_assert_uint_eq(st.vectors_bytes, 0);
        }
        double hits[2] = {0, 0};
        for (int k = 0; k < 10; k++) {
            float q[16];
            query_vec(q, dim, k * 3 + 1);
            float kth = exact_kth(cs[0], q);
            for (int i = 0; i < 2; i++) {
                fanns_hit_t *h;
                size_t n;
                fanns_err_t err;
                fanns_search_explain_t ex;
                fanns_search_req_t r = {.query = q, .limit = 10, .ef = 400, .explain = &ex};
                ck_assert_int_eq(fanns_coll_search(cs[i], &r, &h, &n, &err), 0);
                ck_assert_str_eq(ex.strategy, "hnsw");
                ck_assert_uint_eq(n, 10);
                /* Correct when as good as the exact 10th (ties may pick other ids). */
                for (size_t a = 0; a < n; a++) hits[i] += h[a].score <= kth + 1e-5f; /* Euclid: smaller is better */
                fanns_hits_free(h, n);
            }
        }
        ck_assert_msg(hits[0] >= 98 && hits[1] >= 98, "recall@10 at ef 400: ram %.0f%%, disk %.0f%%", hits[0], hits[1]);
        fanns_coll_release(cs[0]);
        fanns_coll_release(cs[1]);
        if (round == 0) {
            /* Survives a restart (graph saved or rebuilt from the records), then writes again. */
            fanns_db_close(db);
            db = open_db(dir);
            for (int i = 0; i < 2; i++) {
                delete_ids(db, names[i], 0, 200, 5);
                upsert(db, names[i], dim, 2500, 300, 13);
            }
        }
    }
    /* A point just written is found through the graph search at once (stale slots are
     * scored from the records), whether or not the indexer has caught up. */
    for (int i = 0; i < 2; i++) upsert(db, names[i], dim, 5000, 50, 14);
    fanns_coll_t *disk = get(db, "disk");
    fanns_pid_t id = {.kind = FANNS_PID_NUM, .num = 5017};
    fanns_hit_t *g, *h;
    size_t ng, n;
    fanns_err_t err;
    ck_assert_int_eq(fanns_coll_get_points(disk, &id, 1, true, &g, &ng, &err), 0);
    ck_assert_uint_eq(ng, 1);
    fanns_search_req_t r = {.query = g[0].vector, .limit = 1, .ef = 200};
    ck_assert_int_eq(fanns_coll_search(disk, &r, &h, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_msg(h[0].id.num == 5017, "top hit %llu score %.7f", (unsigned long long)h[0].id.num, h[0].score);
    ck_assert_float_eq_tol(h[0].score, 0.0f, 1e-5f);
    fanns_hits_free(g, ng);
    fanns_hits_free(h, n);
    fanns_coll_release(disk);
    compare_all(db, dim, 5050, false, true);
    fanns_db_close(db);
    rm_tmp(dir);
}
END_TEST

/* A collection with int8 quantization gets a graph whose nodes hold the int8 codes (no
 * float32 copy in the graph): searches traverse the codes and rescore ceil(k * oversampling)
 * candidates from the records; quantization.ignore answers with the exact float32 scan; the
 * graph and its codec survive a restart; removing quantization rebuilds a float32 graph. */
START_TEST(test_codes_graph) {
    const uint32_t dim = 32;
    mkdir_tmp(dir, sizeof(dir));
    fanns_db_t *db = open_db(dir);
    create(db, "q", dim, FANNS_METRIC_EUCLID, config(true, json_pack("{s:{s:s}}", "scalar", "type", "int8"), 1));
    create(db, "f", dim, FANNS_METRIC_EUCLID, config(true, NULL, 1));
    for (int i = 0; i < 2; i++) {
        upsert(db, i ? "f" : "q", dim, 0, 1500, 21);
        upsert(db, i ? "f" : "q", dim, 1500, 1500, 22);
    }
    for (int round = 0; round < 3; round++) {
        fanns_coll_t *q = get(db, "q"), *f = get(db, "f");
        fanns_coll_stats_t st = wait_idle(q, round < 2 ? "sq8" : NULL), sf = wait_idle(f, NULL);
        ck_assert_uint_eq(st.indexed_vectors_count, st.points_count);
        ck_assert_uint_eq(st.vectors_bytes, 0);
        /* a node holds 32 code bytes instead of 128 float bytes */
        if (round < 2) ck_assert_msg(st.graph_bytes < sf.graph_bytes, "graph %llu vs float graph %llu",
                                     (unsigned long long)st.graph_bytes, (unsigned long long)sf.graph_bytes);
        double hits = 0;
        for (int k = 0; k < 20; k++) {
            float v[32];
            query_vec(v, dim, k * 5 + 2);
            float kth = exact_kth(q, v);
            fanns_hit_t *h;
            size_t n;
            fanns_err_t err;
            fanns_search_explain_t ex;
            fanns_search_req_t r = {.query = v, .limit = 10, .ef = 200, .q_oversampling = 2, .explain = &ex};
            ck_assert_int_eq(fanns_coll_search(q, &r, &h, &n, &err), 0);
            ck_assert_str_eq(ex.strategy, round < 2 ? "hnsw_codes" : "hnsw");
            ck_assert_uint_eq(n, 10);
            for (size_t a = 0; a < n; a++) {
                hits += h[a].score <= kth + 1e-4f;
                if (a) ck_assert(h[a - 1].score <= h[a].score); /* rescored: exact order */
            }
            fanns_hits_free(h, n);
            /* ignore: the exact float32 answer, the same as exact: true */
            fanns_hit_t *h1, *h2;
            size_t n1, n2;
            fanns_search_req_t ri = {.query = v, .limit = 10, .q_ignore = true, .explain = &ex};
            ck_assert_int_eq(fanns_coll_search(q, &ri, &h1, &n1, &err), 0);
            ck_assert(strncmp(ex.strategy, "hnsw", 4) != 0 || round == 2);
            fanns_search_req_t re = {.query = v, .limit = 10, .exact = true};
            ck_assert_int_eq(fanns_coll_search(q, &re, &h2, &n2, &err), 0);
            if (round < 2) assert_hits_equal(h1, n1, h2, n2, dim, "ignore vs exact");
            fanns_hits_free(h1, n1);
            fanns_hits_free(h2, n2);
        }
        ck_assert_msg(hits >= 190, "round %d: recall@10 %.1f%%", round, hits / 2.0);
        fanns_coll_release(q);
        fanns_coll_release(f);
        if (round == 0) { /* restart: the graph over codes and its codec are reloaded */
            fanns_db_close(db);
            db = open_db(dir);
        } else if (round == 1) { /* quantization removed: a float32 graph replaces it */
            update(db, "q", config(true, NULL, 1));
        }
    }
    fanns_db_close(db);
    rm_tmp(dir);
}
END_TEST

/* Searches with vectors on disk keep running while the writer grows the map (the records of
 * 512-d points fill it past its first size) and the indexer trains and encodes codes: every
 * read transaction must be closed before a resize (env_lock), or readers would touch pages
 * outside the old mapping. */
/* The map size the writer last set (private layout, read after a waited write). */
static size_t map_size(fanns_db_t *db) { return db->mapsize; }

typedef struct {
    fanns_db_t *db;
    _Atomic int *stop;
    int reads;
} reader_arg_t;

static void *reader_main(void *p) {
    reader_arg_t *a = p;
    float q[512];
    int k = 0;
    while (!atomic_load(a->stop)) {
        fanns_coll_t *c;
        if (fanns_db_coll_get(a->db, "disk", &c, NULL) != 0) continue;
        fanns_hit_t *h;
        size_t n;
        fanns_err_t err;
        query_vec(q, 512, k++);
        fanns_search_req_t r = {.query = q, .limit = 5, .exact = (k & 1) != 0, .with_vector = true};
        ck_assert_msg(fanns_coll_search(c, &r, &h, &n, &err) == 0, "search: %s", err.msg);
        for (size_t i = 0; i < n; i++) ck_assert(isfinite(h[i].vector[0]) && isfinite(h[i].score));
        fanns_hits_free(h, n);
        fanns_coll_release(c);
        a->reads++;
        usleep(2000); /* leave the writer a gap to take the write lock in */
    }
    return NULL;
}

START_TEST(test_ondisk_reads_during_map_growth) {
    const uint32_t dim = 512;
    mkdir_tmp(dir, sizeof(dir));
    fanns_db_t *db;
    fanns_err_t err;
    fanns_db_opts_t opts = {.map_size_initial = 1u << 20};
    ck_assert_msg(fanns_db_open(dir, &opts, &db, &err) == 0, "open: %s", err.msg);
    create(db, "disk", dim, FANNS_METRIC_EUCLID, config(true, json_pack("{s:{s:s}}", "scalar", "type", "int8"), 0));
    upsert(db, "disk", dim, 0, 100, 21);
    /* One reader: two whose scans overlap would hold the collection's read lock without a
     * gap, and the writer (glibc's rwlocks prefer readers) would wait for a long time. */
    _Atomic int stop = 0;
    pthread_t th;
    reader_arg_t ra = {db, &stop, 0};
    ck_assert_int_eq(pthread_create(&th, NULL, reader_main, &ra), 0);
    size_t map0 = 0;
    for (int b = 0; b < 50; b++) {
        upsert(db, "disk", dim, 100 + (uint64_t)b * 500, 500, 22 + (uint64_t)b);
        if (b == 0) map0 = map_size(db);
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    ck_assert_int_gt(ra.reads, 0);
    fanns_coll_t *c = get(db, "disk");
    fanns_coll_stats_t st = wait_idle(c, "sq8");
    ck_assert_uint_eq(st.points_count, 25100);
    ck_assert_uint_eq(st.vectors_bytes, 0);
    ck_assert_msg(map_size(db) > map0, "the map did not grow while reading (%zu)", map0);
    fanns_coll_release(c);
    fanns_db_close(db);
    rm_tmp(dir);
}
END_TEST

/* Graph over codes holding the only copy of the codes (storage/quant.c, fanns__quant_share):
 * "sh" has a graph, "ref" the same writes and no graph (so a code array).  Their codebooks are
 * equal (same writes), so quantized scans must answer identically whether the codes come from
 * the graph's nodes or from the array; points written since indexing are scored exactly; a
 * retraining swaps the graph's codebook in place; a graph rebuild (hnsw_config changed) gives
 * the codes back to the array first and shares them again after.  A binary collection gets a
 * graph over its 1-bit codes too. */
static void filtered_equal(fanns_coll_t *a, fanns_coll_t *b, const fanns_filter_t *flt, uint32_t dim, const char *what) {
    for (int k = 0; k < 6; k++) {
        float q[64];
        query_vec(q, dim, k * 7 + 1);
        fanns_search_req_t r = {.query = q, .limit = 10, .filter = flt, .q_oversampling = 2, .with_vector = true};
        search2(a, b, &r, what, "quantized_filtered_scan");
    }
}

static void full_oversampling_is_exact(fanns_coll_t *c, const fanns_filter_t *flt, uint32_t dim, const char *what) {
    for (int k = 0; k < 6; k++) {
        float q[64];
        query_vec(q, dim, k * 5 + 3);
        fanns_hit_t *he, *ho;
        size_t ne, no;
        fanns_err_t err;
        fanns_search_req_t re = {.query = q, .limit = 10, .filter = flt, .exact = true};
        fanns_search_req_t ro = {.query = q, .limit = 10, .filter = flt, .q_oversampling = 1e9};
        ck_assert_int_eq(fanns_coll_search(c, &re, &he, &ne, &err), 0);
        ck_assert_int_eq(fanns_coll_search(c, &ro, &ho, &no, &err), 0);
        assert_hits_equal(he, ne, ho, no, dim, what);
        fanns_hits_free(he, ne);
        fanns_hits_free(ho, no);
    }
}

static json_t *config_m(json_t *qcfg, int threshold_kb, int m) {
    json_t *c = config(false, qcfg, threshold_kb);
    json_object_set_new(json_object_get(c, "hnsw_config"), "m", json_integer(m));
    return c;
}

START_TEST(test_shared_codes) {
    const uint32_t dim = 32;
    mkdir_tmp(dir, sizeof(dir));
    fanns_db_t *db = open_db(dir);
    create(db, "sh", dim, FANNS_METRIC_COSINE, config(false, json_pack("{s:{s:s}}", "scalar", "type", "int8"), 1));
    create(db, "ref", dim, FANNS_METRIC_COSINE, config(false, json_pack("{s:{s:s}}", "scalar", "type", "int8"), 0));
    for (int i = 0; i < 2; i++) upsert(db, i ? "ref" : "sh", dim, 0, 3000, 31);
    fanns_err_t err;
    json_error_t je;
    fanns_filter_t *flt;
    json_t *fj = json_loads("{\"must\": [{\"key\": \"g\", \"match\": {\"value\": 4}}]}", 0, &je);
    ck_assert_int_eq(fanns_filter_compile(fj, "filter", &flt, &err), 0);

    fanns_coll_t *sh = get(db, "sh"), *ref = get(db, "ref");
    fanns_coll_stats_t s1 = wait_idle(sh, "sq8"), s2 = wait_idle(ref, "sq8");
    ck_assert_msg(s1.codes_in_graph, "codes not shared with the graph");
    ck_assert_uint_eq(s1.codes_bytes, s1.points_count * s1.code_size);
    ck_assert(!s2.codes_in_graph);
    ck_assert_uint_ge(s2.codes_bytes, s2.points_count * s2.code_size);
    ck_assert_uint_eq(s1.codec_checksum, s2.codec_checksum);
    filtered_equal(sh, ref, flt, dim, "shared vs array");
    full_oversampling_is_exact(sh, flt, dim, "shared, full oversampling");
    fanns_coll_release(sh);
    fanns_coll_release(ref);

    /* New and overwritten points are scored exactly until indexed (checked at once, while
     * the indexer may still be on them). */
    for (int round = 0; round < 3; round++) {
        upsert(db, "sh", dim, (uint64_t)round * 37, 50, 40 + (uint64_t)round);
        upsert(db, "sh", dim, 3000 + (uint64_t)round * 50, 50, 50 + (uint64_t)round);
        sh = get(db, "sh");
        full_oversampling_is_exact(sh, flt, dim, "stale slots");
        fanns_coll_release(sh);
    }
    for (int round = 0; round < 3; round++) {
        upsert(db, "ref", dim, (uint64_t)round * 37, 50, 40 + (uint64_t)round);
        upsert(db, "ref", dim, 3000 + (uint64_t)round * 50, 50, 50 + (uint64_t)round);
    }

    /* Twice the points: the codec retrains on the larger sample and the graph takes it. */
    for (int i = 0; i < 2; i++) upsert(db, i ? "ref" : "sh", dim, 3150, 3000, 32);
    sh = get(db, "sh");
    ref = get(db, "ref");
    for (int i = 0; i < 6000; i++) {
        s1 = wait_idle(sh, "sq8");
        if (s1.codec_trained_points > 3000) break;
        usleep(10000);
    }
    s2 = wait_idle(ref, "sq8");
    ck_assert_uint_gt(s1.codec_trained_points, 3000);
    ck_assert_uint_eq(s1.codec_checksum, s2.codec_checksum);
    ck_assert_msg(s1.codes_in_graph, "codes not shared after retraining");
    filtered_equal(sh, ref, flt, dim, "shared vs array after retraining");
    fanns_search_explain_t ex;
    float q[64];
    query_vec(q, dim, 3);
    fanns_hit_t *h;
    size_t n;
    fanns_search_req_t rg = {.query = q, .limit = 10, .ef = 100, .q_oversampling = 2, .explain = &ex};
    ck_assert_int_eq(fanns_coll_search(sh, &rg, &h, &n, &err), 0);
    ck_assert_str_eq(ex.strategy, "hnsw_codes");
    ck_assert_uint_eq(n, 10);
    fanns_hits_free(h, n);
    fanns_coll_release(sh);
    fanns_coll_release(ref);

    /* A rebuild: the codes go back to an array while the new graph fills, then are shared. */
    update(db, "sh", config_m(json_pack("{s:{s:s}}", "scalar", "type", "int8"), 1, 8));
    sh = get(db, "sh");
    full_oversampling_is_exact(sh, flt, dim, "during rebuild");
    fanns_coll_release(sh);
    sh = get(db, "sh");
    ref = get(db, "ref");
    s1 = wait_idle(sh, "sq8");
    ck_assert_msg(s1.codes_in_graph, "codes not shared after the rebuild");
    filtered_equal(sh, ref, flt, dim, "shared vs array after rebuild");
    fanns_coll_release(sh);
    fanns_coll_release(ref);

    /* Restart: the graph and its codebook are loaded, the codes shared again. */
    fanns_db_close(db);
    db = open_db(dir);
    sh = get(db, "sh");
    ref = get(db, "ref");
    s1 = wait_idle(sh, "sq8");
    wait_idle(ref, "sq8");
    ck_assert_msg(s1.codes_in_graph, "codes not shared after restart");
    filtered_equal(sh, ref, flt, dim, "shared vs array after restart");
    fanns_coll_release(sh);
    fanns_coll_release(ref);

    /* Binary and PQ codes: a graph over them, searched with rescoring, finds about what a
     * scan of the same codes with the same oversampling finds ("<x>f" has no graph). */
    const char *kinds[2] = {"bin", "pq"};
    for (int kd = 0; kd < 2; kd++) {
        char gname[8], fname[8];
        snprintf(gname, sizeof(gname), "%s", kinds[kd]);
        snprintf(fname, sizeof(fname), "%sf", kinds[kd]);
        for (int i = 0; i < 2; i++) {
            json_t *qc = kd ? json_pack("{s:{s:s}}", "product", "compression", "x16") : json_pack("{s:{}}", "binary");
            create(db, i ? fname : gname, 64, FANNS_METRIC_COSINE, config(false, qc, i ? 0 : 1));
            upsert(db, i ? fname : gname, 64, 0, 3000, 33);
        }
        fanns_coll_t *b = get(db, gname), *bf = get(db, fname);
        s1 = wait_idle(b, kinds[kd]);
        wait_idle(bf, kinds[kd]);
        ck_assert_msg(s1.codes_in_graph, "%s codes not shared", kinds[kd]);
        ck_assert_uint_eq(s1.indexed_vectors_count, 3000);
        full_oversampling_is_exact(b, flt, 64, kinds[kd]);
        double hits[2] = {0, 0};
        for (int k = 0; k < 20; k++) {
            float v[64];
            query_vec(v, 64, k * 3 + 1);
            float kth = exact_kth(b, v);
            for (int i = 0; i < 2; i++) {
                /* ef 1000 of 3000 points: the seeded clusters are tight, so coarse codes tie
                 * often and a narrow beam stalls on plateaus (ef 200: PQ 0.82-0.88) */
                fanns_search_req_t r = {.query = v, .limit = 10, .ef = 1000, .q_oversampling = 10, .explain = &ex};
                ck_assert_int_eq(fanns_coll_search(i ? bf : b, &r, &h, &n, &err), 0);
                ck_assert_str_eq(ex.strategy, i ? "quantized_scan" : "hnsw_codes");
                ck_assert_uint_eq(n, 10);
                for (size_t a = 0; a < n; a++) hits[i] += h[a].score >= kth - 1e-5f;
                fanns_hits_free(h, n);
            }
        }
        ck_assert_msg(hits[0] >= hits[1] - 10, "%s recall@10: graph %.0f%%, scan %.0f%%", kinds[kd], hits[0] / 2, hits[1] / 2);
        fanns_coll_release(b);
        fanns_coll_release(bf);
    }

    fanns_filter_free(flt);
    json_decref(fj);
    fanns_db_close(db);
    rm_tmp(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("storage/ondisk");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_ondisk_equals_ram);
    tcase_add_test(tc, test_ondisk_graph);
    tcase_add_test(tc, test_codes_graph);
    tcase_add_test(tc, test_shared_codes);
    tcase_add_test(tc, test_ondisk_reads_during_map_growth);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
