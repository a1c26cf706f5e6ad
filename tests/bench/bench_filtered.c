/*
 * bench_filtered.c: the in-process benchmark of fanns's FILTERED search through the real
 * storage path (storage/db.h), run by run_filtered.py next to the peers of
 * bench_filtered_peers.py (exact pre-filter brute force, FAISS HNSW with an id selector,
 * hnswlib post-filtering).
 *
 * What it does, in the order a server would: opens a database on a fresh temporary
 * directory, creates a Cosine collection with the given HNSW settings, creates keyword
 * payload indexes on categories, authors, license and primary_category, an integer index on
 * year and a datetime index on update_date (all before the points arrive, so they are filled
 * as the points are written), upserts every point of base.npy with its payload from
 * base.jsonl (id i is row i) in batches through the writer thread, and waits until the
 * indexer reports the collection fully indexed (fanns_coll_stats .indexing false).
 *
 * Then, for each ef of the sweep: one untimed pass over the queries of queries.jsonl
 * records recall@k against gt.npy and the planner's explain output (strategy, estimated
 * and actual matches, local selectivity, distance computations); then `reps` timed passes
 * measure each query's latency.  What is timed per query is what the API does for one
 * search request after JSON decoding: compile the filter (fanns_filter_compile), copy and
 * normalise the query vector, fanns_coll_search, and free the hits.  Single thread.
 *
 * With --traversal (a list of FANNS_FILTER_TRAVERSAL values, see storage/coll.c), every ef
 * is measured once per value, the values taking turns pass by pass (A/B back to back in
 * one process, on one graph); the query objects then carry "trav".
 *
 * Output: JSON lines on stdout (or --out): one "build" object, then one "query" object per
 * (ef, traversal, query) with its latencies in microseconds.  run_filtered.py aggregates
 * them per cell.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, getline, mkdtemp */
#endif
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* bench_common.h is shared with the unfiltered harness; this program uses only its .npy
 * reader, clock, recall and RSS helpers, so its other static functions are unused here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "bench_common.h"
#pragma GCC diagnostic pop
#include "db.h"
#include "distance.h"
#include "err.h"
#include "filter.h"
#include "log.h"

#define COLL "bench"

typedef struct {
    const char *data, *out, *tmp;
    size_t efs[32], nef;
    unsigned m, efc, k, reps, batch;
    unsigned long full_scan_kb, indexing_kb;
    long max_queries;
    int keep_unfiltered;
    const char *quant;      /* NULL, "int8" or "binary": the collection's quantization_config */
    char *travs[8];         /* --traversal values (strdup'ed), ntrav of them; 0: the planner's */
    size_t evict_mb;        /* --evict-mb: stream this many MiB between queries (untimed), so a
                               run over a few queries sees the caches a full run leaves them in */
    const char *trav_var;   /* the environment variable they set (--ab-var; FANNS_FILTER_TRAVERSAL) */
    size_t ntrav;
    double oversampling;    /* params.quantization.oversampling (0: the default) */
    const char *db;         /* --db: keep the database there and reuse it when it holds the
                               collection (no upsert; the build line then reports the reopen) */
    const char *kinds;      /* --kinds k1,k2: only queries of these filter kinds */
    double sel_min, sel_max; /* --sel MIN,MAX: only queries whose selectivity is in [MIN, MAX] */
} opts_t;

typedef struct {
    json_t *filter;   /* owned; NULL for "match all" */
    char kind[32], corr[8];
    double selectivity;
    bool skip;        /* left out by --kinds / --sel / --unfiltered */
} query_t;

/* Sets the environment of one A/B variant: var=value, or for a value of the form
 * NAME1=v1/NAME2=v2 those assignments (var unset).  Returns 0 or -1. */
static int set_variant(const char *var, const char *value) {
    if (!strchr(value, '=')) return setenv(var, value, 1);
    if (unsetenv(var)) return -1;
    char *copy = strdup(value), *save = NULL;
    int rc = copy ? 0 : -1;
    for (char *a = copy ? strtok_r(copy, "/", &save) : NULL; a && !rc; a = strtok_r(NULL, "/", &save)) {
        char *eq = strchr(a, '=');
        if (!eq) rc = -1;
        else {
            *eq = 0;
            rc = setenv(a, eq + 1, 1);
        }
    }
    free(copy);
    return rc;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --data DIR [--ef 32,64,128,256] [--m 16] [--efc 200] [--k 10] [--reps 3]\n"
            "          [--full-scan-kb 10000] [--indexing-kb 10000] [--batch 1000] [--tmp /tmp]\n"
            "          [--max-queries N] [--unfiltered 0|1] [--out FILE] [--evict-mb N]\n"
            "          [--quantization int8|binary [--oversampling F]] [--traversal widen,acorn,...]\n"
            "          [--ab-var NAME (the variable --traversal sets; FANNS_FILTER_TRAVERSAL)]\n"
            "          [--db DIR (keep the database; reuse it when it holds the collection)]\n"
            "          [--kinds cat,cat_year,...] [--sel MIN,MAX (only queries of these kinds / selectivities)]\n"
            "A --traversal value NAME1=v1/NAME2=v2 sets those variables instead (and unsets --ab-var's).\n"
            "DIR holds base.npy, base.jsonl, queries.npy, queries.jsonl, gt.npy (arxiv_like.py).\n",
            prog);
}

static int parse(int argc, char **argv, opts_t *o) {
    static const size_t def_efs[] = {32, 64, 128, 256};
    memset(o, 0, sizeof(*o));
    o->m = 16;
    o->efc = 200;
    o->k = 10;
    o->reps = 3;
    o->trav_var = "FANNS_FILTER_TRAVERSAL";
    o->batch = 1000;
    o->full_scan_kb = 10000;
    o->indexing_kb = 10000;
    o->tmp = "/tmp";
    o->max_queries = -1;
    o->sel_max = 2.0;
    for (size_t i = 0; i < sizeof(def_efs) / sizeof(def_efs[0]); i++) o->efs[o->nef++] = def_efs[i];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto bad;
        i++;
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--tmp")) o->tmp = v;
        else if (!strcmp(a, "--m")) o->m = (unsigned)atoi(v);
        else if (!strcmp(a, "--efc")) o->efc = (unsigned)atoi(v);
        else if (!strcmp(a, "--k")) o->k = (unsigned)atoi(v);
        else if (!strcmp(a, "--reps")) o->reps = (unsigned)atoi(v);
        else if (!strcmp(a, "--batch")) o->batch = (unsigned)atoi(v);
        else if (!strcmp(a, "--full-scan-kb")) o->full_scan_kb = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--indexing-kb")) o->indexing_kb = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--max-queries")) o->max_queries = atol(v);
        else if (!strcmp(a, "--evict-mb")) o->evict_mb = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--unfiltered")) o->keep_unfiltered = atoi(v);
        else if (!strcmp(a, "--quantization")) o->quant = v;
        else if (!strcmp(a, "--oversampling")) o->oversampling = atof(v);
        else if (!strcmp(a, "--ab-var")) o->trav_var = v;
        else if (!strcmp(a, "--db")) o->db = v;
        else if (!strcmp(a, "--kinds")) o->kinds = v;
        else if (!strcmp(a, "--sel")) {
            if (sscanf(v, "%lf,%lf", &o->sel_min, &o->sel_max) != 2) goto bad;
        }
        else if (!strcmp(a, "--traversal")) {
            for (const char *s = v; *s && o->ntrav < 8;) {
                size_t len = strcspn(s, ",");
                if (!len || !(o->travs[o->ntrav++] = strndup(s, len))) goto bad;
                s += len;
                if (*s) s++;
            }
        }
        else if (!strcmp(a, "--ef")) {
            char *end;
            o->nef = 0;
            for (const char *s = v; *s && o->nef < 32; s = *end ? end + 1 : end) {
                o->efs[o->nef++] = strtoull(s, &end, 10);
                if (end == s) goto bad;
            }
        } else goto bad;
    }
    if (!o->data || o->k == 0 || o->k > 1024 || o->reps == 0 || o->batch == 0 || o->nef == 0) goto bad;
    return 0;
bad:
    usage(argv[0]);
    return -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void path_in(char *buf, size_t n, const char *dir, const char *file) { snprintf(buf, n, "%s/%s", dir, file); }

/* Reads a JSON-lines file into a new array of n objects.  Returns NULL on error. */
static json_t **read_jsonl(const char *path, size_t *n) {
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, len = 0, acap = 0;
    json_t **arr = NULL;
    if (!f) {
        perror(path);
        return NULL;
    }
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *v = json_loads(line, 0, &je);
        if (!v) {
            fprintf(stderr, "%s:%zu: %s\n", path, len + 1, je.text);
            goto fail;
        }
        if (len == acap) {
            acap = acap ? acap * 2 : 1024;
            json_t **na = realloc(arr, acap * sizeof(*na));
            if (!na) {
                json_decref(v);
                goto fail;
            }
            arr = na;
        }
        arr[len++] = v;
    }
    free(line);
    fclose(f);
    *n = len;
    return arr;
fail:
    for (size_t i = 0; i < len; i++) json_decref(arr[i]);
    free(arr);
    free(line);
    fclose(f);
    return NULL;
}

/* Submits e and waits for it; prints the error and returns -1 on failure. */
static int write_wait(fanns_db_t *db, fanns_wentry_t *e, const char *what) {
    fanns_err_t err;
    memset(&err, 0, sizeof(err));
    int rc = fanns_db_write(db, e, true, NULL, &err);
    if (rc) fprintf(stderr, "%s: %s (%d)\n", what, err.msg, rc);
    return rc ? -1 : 0;
}

static int create_index(fanns_db_t *db, const char *field, const char *type) {
    fanns_wentry_t *e = fanns_wentry_new(FANNS_W_CREATE_INDEX);
    if (!e || !(e->collection = strdup(COLL)) || !(e->field = strdup(field)) ||
        !(e->field_schema = json_string(type))) {
        fanns_wentry_free(e);
        return -1;
    }
    return write_wait(db, e, field);
}

int main(int argc, char **argv) {
    opts_t o;
    bench_npy_t base, qv, gt;
    char path[4096], dbdir[4096] = "";
    fanns_db_t *db = NULL;
    fanns_coll_t *coll = NULL;
    json_t **payloads = NULL, **qlines = NULL;
    query_t *qs = NULL;
    size_t npl = 0, nql = 0;
    FILE *out = stdout;
    int ret = 1;
    fanns_err_t err;

    memset(&base, 0, sizeof(base));
    memset(&qv, 0, sizeof(qv));
    memset(&gt, 0, sizeof(gt));
    memset(&err, 0, sizeof(err));
    if (parse(argc, argv, &o)) return 2;
    fanns_log_set_level(FANNS_LOG_WARN);
    fanns_dist_init(); /* as fannsd's main does: pick the SIMD kernels before any distance */

    path_in(path, sizeof(path), o.data, "base.npy");
    if (bench_npy_read(path, &base)) goto done;
    path_in(path, sizeof(path), o.data, "queries.npy");
    if (bench_npy_read(path, &qv)) goto done;
    path_in(path, sizeof(path), o.data, "gt.npy");
    if (bench_npy_read(path, &gt)) goto done;
    path_in(path, sizeof(path), o.data, "base.jsonl");
    if (!(payloads = read_jsonl(path, &npl))) goto done;
    path_in(path, sizeof(path), o.data, "queries.jsonl");
    if (!(qlines = read_jsonl(path, &nql))) goto done;
    const size_t n = base.rows, d = base.cols;
    if (!base.is_float || !qv.is_float || gt.is_float || qv.cols != d || npl != n || nql != qv.rows ||
        gt.rows != qv.rows || gt.cols < o.k) {
        fprintf(stderr, "inconsistent inputs: base %zux%zu (%zu payloads), queries %zux%zu (%zu lines), gt %zux%zu\n",
                n, d, npl, qv.rows, qv.cols, nql, gt.rows, gt.cols);
        goto done;
    }
    if (o.out && !(out = fopen(o.out, "w"))) {
        perror(o.out);
        out = stdout;
        goto done;
    }

    /* Queries: the filter JSON is kept and compiled inside the timed section, per search. */
    qs = calloc(nql, sizeof(*qs));
    if (!qs) goto done;
    for (size_t i = 0; i < nql; i++) {
        json_t *f = json_object_get(qlines[i], "filter");
        const char *kind = json_string_value(json_object_get(qlines[i], "kind"));
        const char *corr = json_string_value(json_object_get(qlines[i], "correlation"));
        qs[i].filter = f && !json_is_null(f) ? json_incref(f) : NULL;
        snprintf(qs[i].kind, sizeof(qs[i].kind), "%s", kind ? kind : "?");
        snprintf(qs[i].corr, sizeof(qs[i].corr), "%s", corr ? corr : "none");
        qs[i].selectivity = json_number_value(json_object_get(qlines[i], "selectivity"));
        qs[i].skip = !qs[i].filter && !o.keep_unfiltered;
        if (o.kinds) {
            size_t kl = strlen(qs[i].kind);
            const char *hit = NULL;
            for (const char *p = o.kinds; (p = strstr(p, qs[i].kind)) != NULL; p++)
                if ((p == o.kinds || p[-1] == ',') && (p[kl] == ',' || p[kl] == 0)) {
                    hit = p;
                    break;
                }
            if (!hit) qs[i].skip = true;
        }
        if (qs[i].selectivity < o.sel_min || qs[i].selectivity > o.sel_max) qs[i].skip = true;
    }

    /* Database on a fresh temporary directory. */
    bool reuse = false;
    if (o.db) {
        if (mkdir(o.db, 0755) != 0 && errno != EEXIST) {
            perror(o.db);
            goto done;
        }
    } else {
        snprintf(dbdir, sizeof(dbdir), "%s/fanns-bench-filtered-XXXXXX", o.tmp);
        if (!mkdtemp(dbdir)) {
            perror(dbdir);
            dbdir[0] = 0;
            goto done;
        }
    }
    fanns_db_opts_t dopts = {(size_t)4 << 30, 0};
    if (fanns_db_open(o.db ? o.db : dbdir, &dopts, &db, &err)) {
        fprintf(stderr, "fanns_db_open: %s\n", err.msg);
        goto done;
    }
    double t0 = bench_now();
    if (o.db && fanns_db_coll_get(db, COLL, &coll, NULL) == 0) {
        reuse = true; /* reopened: the graph is loaded or rebuilt by the indexer */
        fanns_coll_release(coll);
        coll = NULL;
    }
    if (!reuse) {
        /* The normalised config shape that proto/api.c builds (the fields storage reads). */
        fanns_wentry_t *e = fanns_wentry_new(FANNS_W_CREATE_COLL);
        if (!e || !(e->collection = strdup(COLL))) {
            fanns_wentry_free(e);
            goto done;
        }
        e->config = json_pack("{s:{s:{s:I, s:s}}, s:{s:I, s:I, s:I}, s:{s:I}}", "params", "vectors", "size", (json_int_t)d,
                              "distance", "Cosine", "hnsw_config", "m", (json_int_t)o.m, "ef_construct", (json_int_t)o.efc,
                              "full_scan_threshold", (json_int_t)o.full_scan_kb, "optimizer_config",
                              "indexing_threshold", (json_int_t)o.indexing_kb);
        e->dim = (uint32_t)d;
        e->metric = FANNS_METRIC_COSINE;
        if (e->config && o.quant) {
            json_t *q = !strcmp(o.quant, "binary") ? json_pack("{s:{s:b}}", "binary", "always_ram", 1)
                                                   : json_pack("{s:{s:s, s:b}}", "scalar", "type", "int8", "always_ram", 1);
            json_object_set_new(e->config, "quantization_config", q);
        }
        if (!e->config || write_wait(db, e, "create collection")) goto done;
    }
    static const char *const kw[] = {"categories", "authors", "license", "primary_category"};
    for (size_t i = 0; !reuse && i < sizeof(kw) / sizeof(kw[0]); i++)
        if (create_index(db, kw[i], "keyword")) goto done;
    if (!reuse && (create_index(db, "year", "integer") || create_index(db, "update_date", "datetime"))) goto done;

    const float *bv = (const float *)base.data;
    for (size_t s = 0; !reuse && s < n; s += o.batch) {
        size_t cnt = n - s < o.batch ? n - s : o.batch;
        fanns_wentry_t *e = fanns_wentry_new(FANNS_W_UPSERT);
        if (!e || !(e->collection = strdup(COLL)) || !(e->ids = calloc(cnt, sizeof(*e->ids))) ||
            !(e->vectors = malloc(cnt * d * sizeof(float))) || !(e->payloads = calloc(cnt, sizeof(*e->payloads)))) {
            fanns_wentry_free(e);
            goto done;
        }
        e->n = cnt;
        e->dim = (uint32_t)d; /* checked against the collection (db.c), though db.h does not list it for UPSERT */
        for (size_t i = 0; i < cnt; i++) {
            e->ids[i].kind = FANNS_PID_NUM;
            e->ids[i].num = s + i;
            memcpy(e->vectors + i * d, bv + (s + i) * d, d * sizeof(float));
            fanns_vec_normalize(e->vectors + i * d, d);
            e->payloads[i] = payloads[s + i]; /* the entry takes our reference */
            payloads[s + i] = NULL;
        }
        if (write_wait(db, e, "upsert")) goto done;
    }
    double t_upsert = bench_now() - t0;
    if (fanns_db_coll_get(db, COLL, &coll, &err)) {
        fprintf(stderr, "coll_get: %s\n", err.msg);
        goto done;
    }
    fanns_coll_stats_t st;
    double t_graph = -1;
    for (;;) {
        fanns_coll_stats(coll, &st);
        json_decref(st.config);
        json_decref(st.payload_schema);
        /* with quantization, also until the codec is trained on the whole sample and
         * serves scans */
        bool codec_busy = o.quant && (!st.codec_status || strcmp(st.codec_status, "ready") != 0);
        /* Every vector in the graph; block links (if any) come after. */
        if (t_graph < 0 && st.indexed_vectors_count == st.points_count && !codec_busy) t_graph = bench_now() - t0;
        if (!st.indexing && !codec_busy) break;
        usleep(200 * 1000);
    }
    double t_index = bench_now() - t0;
    if (t_graph < 0) t_graph = t_index;
    fprintf(stderr,
            "bench_filtered: %zu points upserted in %.1f s, graph complete after %.1f s, indexed (%llu vectors, %llu "
            "blocks linked, %llu block links) after %.1f s\n",
            n, t_upsert, t_graph, (unsigned long long)st.indexed_vectors_count, (unsigned long long)st.blocks,
            (unsigned long long)st.block_links, t_index);
    fprintf(out, "{\"type\":\"build\",\"n\":%zu,\"dim\":%zu,\"m\":%u,\"efc\":%u,\"upsert_s\":%.3f,\"graph_s\":%.3f,"
                 "\"indexed_s\":%.3f,\"points\":%llu,\"indexed_vectors\":%llu,\"blocks\":%llu,\"block_links\":%llu,"
                 "\"block_bytes\":%llu,\"graph_bytes\":%llu,\"peak_rss\":%lld}\n",
            n, d, o.m, o.efc, t_upsert, t_graph, t_index, (unsigned long long)st.points_count,
            (unsigned long long)st.indexed_vectors_count, (unsigned long long)st.blocks,
            (unsigned long long)st.block_links, (unsigned long long)st.block_bytes,
            (unsigned long long)st.graph_bytes, bench_peak_rss());

    /* Queries. */
    size_t nq = qv.rows;
    if (o.max_queries >= 0 && (size_t)o.max_queries < nq) nq = (size_t)o.max_queries;
    const size_t nt = o.ntrav ? o.ntrav : 1; /* traversal variants measured per ef */
    float *qbuf = malloc(d * sizeof(float));
    double *lat = malloc(nt * (size_t)o.reps * nq * sizeof(double));
    if (!qbuf || !lat) {
        free(qbuf);
        free(lat);
        goto done;
    }
    const float *qf = (const float *)qv.data;
    uint64_t *evict = o.evict_mb ? calloc(o.evict_mb << 17, sizeof(uint64_t)) : NULL;
    const int32_t *g = (const int32_t *)gt.data;
    int failed = 0;
    for (size_t ei = 0; ei < o.nef && !failed; ei++) {
        size_t ef = o.efs[ei];
        fanns_search_explain_t *exs = calloc(nt * nq, sizeof(*exs));
        int *hits = calloc(nt * nq, sizeof(*hits)), *possible = calloc(nt * nq, sizeof(*possible));
        if (!exs || !hits || !possible) failed = 1;
        /* Pass 0 untimed (recall, explain); passes 1..reps timed; within a pass the traversal
         * variants take turns, in an order rotated by one each pass: the machine's speed
         * drifts by 10-20% over minutes here, and a variant always run last in a pass came out
         * up to 20% slower on identical code paths. */
        for (unsigned pass = 0; pass <= o.reps && !failed; pass++) {
            for (size_t tt = 0; tt < nt && !failed; tt++) {
                size_t t = (tt + pass) % nt;
                if (o.ntrav && set_variant(o.trav_var, o.travs[t])) failed = 1;
                for (size_t i = 0; i < nq && !failed; i++) {
                    if (qs[i].skip) continue;
                    size_t ti = t * nq + i;
                    fanns_filter_t *flt = NULL;
                    fanns_hit_t *res = NULL;
                    size_t nres = 0;
                    fanns_search_explain_t ex;
                    if (evict) {
                        for (size_t j = 0; j < o.evict_mb << 17; j += 8) evict[j]++;
                    }
                    double s = bench_now();
                    if (fanns_filter_compile(qs[i].filter, "filter", &flt, &err)) {
                        fprintf(stderr, "query %zu: filter: %s\n", i, err.msg);
                        failed = 1;
                        break;
                    }
                    memcpy(qbuf, qf + i * d, d * sizeof(float));
                    fanns_vec_normalize(qbuf, d);
                    fanns_search_req_t req;
                    memset(&req, 0, sizeof(req));
                    req.query = qbuf;
                    req.filter = flt;
                    req.limit = o.k;
                    req.no_payload = true; /* as /points/search by default (with_payload false) */
                    req.ef = ef;
                    req.explain = &ex;
                    req.q_oversampling = o.oversampling;
                    int rc = fanns_coll_search(coll, &req, &res, &nres, &err);
                    if (pass == 0 && rc == 0) {
                        long long ids[1024];
                        for (size_t j = 0; j < nres && j < 1024; j++) ids[j] = (long long)res[j].id.num;
                        hits[ti] = bench_hits(g + i * gt.cols, o.k, ids, nres);
                        for (size_t j = 0; j < o.k; j++) possible[ti] += g[i * gt.cols + j] >= 0;
                        exs[ti] = ex;
                    }
                    fanns_hits_free(res, nres);
                    fanns_filter_free(flt);
                    double el = bench_now() - s;
                    if (rc) {
                        fprintf(stderr, "query %zu: search: %s (%d)\n", i, err.msg, rc);
                        failed = 1;
                        break;
                    }
                    if (pass > 0) lat[(t * o.reps + (pass - 1)) * nq + i] = el;
                }
            }
        }
        if (o.ntrav) unsetenv(o.trav_var);
        for (size_t t = 0; t < nt && !failed; t++) {
            for (size_t i = 0; i < nq; i++) {
                if (qs[i].skip) continue;
                size_t ti = t * nq + i;
                char trav[64] = "";
                if (o.ntrav) snprintf(trav, sizeof(trav), "\"trav\":\"%s\",", o.travs[t]);
                fprintf(out,
                        "{\"type\":\"query\",\"ef\":%zu,%s\"qi\":%zu,\"kind\":\"%s\",\"corr\":\"%s\",\"selectivity\":%.8g,"
                        "\"hits\":%d,\"possible\":%d,\"strategy\":\"%s\",\"est\":%llu,\"est_exact\":%s,\"actual\":%llu,"
                        "\"local_sel\":%.4f,\"dist_comps\":%llu,\"lat_us\":[",
                        ef, trav, i, qs[i].kind, qs[i].corr, qs[i].selectivity, hits[ti], possible[ti],
                        exs[ti].strategy ? exs[ti].strategy : "?", (unsigned long long)exs[ti].estimated_matches,
                        exs[ti].estimate_exact ? "true" : "false", (unsigned long long)exs[ti].actual_matches,
                        exs[ti].local_selectivity, (unsigned long long)exs[ti].dist_comps);
                for (unsigned r = 0; r < o.reps; r++)
                    fprintf(out, "%s%.2f", r ? "," : "", lat[(t * o.reps + r) * nq + i] * 1e6);
                fprintf(out, "]}\n");
            }
            /* A one-line summary on stderr so a long run shows progress. */
            long th = 0, tp = 0;
            for (size_t i = 0; i < nq; i++) {
                th += hits[t * nq + i];
                tp += possible[t * nq + i];
            }
            fprintf(stderr, "bench_filtered: ef %zu%s%s recall %.4f\n", ef, o.ntrav ? " " : "", o.ntrav ? o.travs[t] : "",
                    tp ? (double)th / (double)tp : 1.0);
        }
        free(exs);
        free(hits);
        free(possible);
    }
    free(qbuf);
    free(lat);
    free(evict);
    fflush(out);
    if (!failed) ret = 0;

done:
    if (coll) fanns_coll_release(coll);
    if (db) fanns_db_close(db);
    if (dbdir[0]) nftw(dbdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; payloads && i < npl; i++)
        if (payloads[i]) json_decref(payloads[i]);
    free(payloads);
    for (size_t i = 0; qlines && i < nql; i++) json_decref(qlines[i]);
    free(qlines);
    for (size_t i = 0; qs && i < nql; i++) json_decref(qs[i].filter);
    free(qs);
    for (size_t i = 0; i < o.ntrav; i++) free(o.travs[i]);
    free(base.data);
    free(qv.data);
    free(gt.data);
    if (out != stdout) fclose(out);
    return ret;
}
