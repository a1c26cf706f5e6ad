/*
 * bench_hnsw.c: the in-process benchmark of fanns's HNSW index (index/hnsw.h), run by
 * run_bench.py next to the hnswlib and FAISS baselines.
 *
 * Builds the index over the base vectors (Cosine metric, so vectors are normalised first as
 * the server does at write time; the workload's vectors are already unit length) with
 * fanns_hnsw_insert_many on all cores, then, for each ef, measures recall@k against the exact
 * ground truth and single-thread QPS with bench_common.h (whole passes over the queries,
 * repeated; best and median pass).  Prints JSON lines: one "build", one "search" per ef, one
 * "memory" (peak RSS from getrusage and the RSS right after loading the data, so the index's
 * own share can be told apart from the loaded arrays).  The build line also says whether
 * fanns_hnsw_check passed (every node reachable, links valid).
 *
 * --churn (bench_hnsw's own option) then deletes a seeded random half of the points, inserts
 * the same vectors again at the freed offsets (fanns_hnsw_insert_many replaces a node in
 * place), checks the graph again and prints one "churn" line per ef with the recall of the
 * churned graph next to the fresh build's, to show that deletes and re-inserts do not wear the
 * graph down.
 *
 * --mt-threads N (bench_hnsw's own option) also measures, per ef, the throughput of N threads
 * searching at once (each walks the queries from its own starting point for --min-time
 * seconds; "mt_qps" = all queries answered / wall time): what the machine's cores give
 * in-process, the ceiling for a server, next to the single-thread QPS x cores.
 *
 * --codec sq8|f16|bin (bench_hnsw's own option) builds the graph over compressed codes
 * (index/codec.h, trained on the first min(n, 65536) points; the nodes hold codes instead of
 * floats), traverses it on the codes with the query at --query-bits precision (0: the codec's
 * default), and rescores the best ceil(k * --oversample) candidates with the float32 vectors
 * (exact distances), as the server does with vectors kept outside the graph.  index_bytes is
 * then the graph with its codes; the float32 vectors used for rescoring are reported apart.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "codec.h"
#include "distance.h"
#include "err.h"
#include "hnsw.h"

typedef struct {
    const float *base;
    size_t dim;
} vec_ctx_t;

static const float *vec_of(void *ctx, uint32_t off) {
    vec_ctx_t *c = ctx;
    return c->base + (size_t)off * c->dim;
}

typedef struct {
    fanns_hnsw_t *h;
    const float *base; /* float32 vectors for rescoring (with a codec) */
    size_t dim;
    double oversample; /* 0: no rescoring */
} search_ctx_t;

static int cmp_res(const void *a, const void *b) {
    float x = ((const fanns_hnsw_result_t *)a)->dist, y = ((const fanns_hnsw_result_t *)b)->dist;
    return x < y ? -1 : x > y;
}

static int search(void *ctx, const float *q, size_t k, size_t ef, long long *ids, size_t *n) {
    search_ctx_t *c = ctx;
    fanns_hnsw_result_t res[1024];
    size_t want = k;
    if (c->oversample > 0) want = (size_t)(k * c->oversample + 0.999);
    if (want > 1024 || fanns_hnsw_search(c->h, q, want, ef < want ? want : ef, NULL, NULL, res, n, NULL)) return -1;
    if (c->oversample > 0) {
        for (size_t i = 0; i < *n; i++) res[i].dist = 1.0f - fanns_dist_dot(q, c->base + (size_t)res[i].off * c->dim, c->dim);
        qsort(res, *n, sizeof *res, cmp_res);
        if (*n > k) *n = k;
    }
    for (size_t i = 0; i < *n; i++) ids[i] = res[i].off;
    return 0;
}

typedef struct {
    search_ctx_t *sc;
    const bench_npy_t *q;
    size_t k, ef, start;
    double until;
    long long done;
    int rc;
} mt_arg_t;

static void *mt_main(void *p) {
    mt_arg_t *a = p;
    long long ids[1024];
    size_t n, nq = a->q->rows, d = a->q->cols, i = a->start;
    const float *qv = (const float *)a->q->data;
    while (bench_now() < a->until) {
        for (int j = 0; j < 16; j++, i = (i + 1) % nq, a->done++)
            if (search(a->sc, qv + i * d, a->k, a->ef, ids, &n)) {
                a->rc = -1;
                return NULL;
            }
    }
    return NULL;
}

/* Throughput of nthreads threads searching at once for min_time seconds (at least 1). */
static double mt_qps(search_ctx_t *sc, const bench_npy_t *q, size_t k, size_t ef, unsigned nthreads, double min_time) {
    pthread_t th[64];
    mt_arg_t args[64];
    if (nthreads > 64) nthreads = 64;
    double t0 = bench_now(), until = t0 + (min_time > 1.0 ? min_time : 1.0);
    for (unsigned t = 0; t < nthreads; t++) {
        args[t] = (mt_arg_t){.sc = sc, .q = q, .k = k, .ef = ef, .start = t * q->rows / nthreads, .until = until};
        if (pthread_create(&th[t], NULL, mt_main, &args[t])) return -1;
    }
    long long total = 0;
    int rc = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        total += args[t].done;
        rc |= args[t].rc;
    }
    return rc ? -1 : (double)total / (bench_now() - t0);
}

/* splitmix64, for the seeded choice of the points to churn */
static uint64_t mix(uint64_t *st) {
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Deletes a seeded random half of the n points, re-inserts them, and prints one "churn" line
 * per ef next to the fresh build's recall (fresh[]).  Returns 0 or -1. */
static int churn(const bench_opts_t *o, fanns_hnsw_t *h, uint32_t *offs, size_t n, vec_ctx_t *vc,
                 const bench_npy_t *q, const bench_npy_t *gt, const double *fresh, search_ctx_t *sc) {
    fanns_err_t err = {0};
    uint64_t st = 1;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates: offs[0..n/2) are the churned points */
        size_t j = (size_t)(mix(&st) % i);
        uint32_t t = offs[i - 1];
        offs[i - 1] = offs[j];
        offs[j] = t;
    }
    size_t nc = n / 2;
    double t0 = bench_now();
    for (size_t i = 0; i < nc; i++) fanns_hnsw_delete(h, offs[i]);
    if (fanns_hnsw_count(h) != n - nc) return -1;
    double t1 = bench_now();
    if (fanns_hnsw_insert_many(h, offs, nc, vec_of, vc, (int)o->threads, &err)) {
        fprintf(stderr, "churn: %s\n", err.msg);
        return -1;
    }
    double reinsert_s = bench_now() - t1;
    if (fanns_hnsw_count(h) != n) return -1;
    int crc = fanns_hnsw_check(h, &err);
    if (crc) fprintf(stderr, "graph check after churn failed: %s\n", err.msg);
    for (size_t i = 0; i < o->nef; i++) {
        bench_point_t pt;
        if (bench_run_ef(o, q, gt, o->efs[i], search, sc, &pt)) return -1;
        printf("{\"system\":\"fanns\",\"kind\":\"churn\",\"ef\":%zu,\"k\":%u,\"nq\":%zu,\"churned\":%zu,"
               "\"recall\":%.4f,\"fresh_recall\":%.4f,\"qps\":%.1f,\"qps_median\":%.1f,\"delete_s\":%.3f,"
               "\"reinsert_s\":%.3f,\"graph_ok\":%s}\n",
               o->efs[i], o->k, q->rows, nc, pt.recall, fresh[i], pt.qps_best, pt.qps_median, t1 - t0, reinsert_s,
               crc ? "false" : "true");
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    bench_opts_t o;
    bench_npy_t base, q, gt;
    fanns_err_t err = {0};
    fanns_hnsw_t *h = NULL;
    uint32_t *offs = NULL;
    int rc = 1;
    double fresh[32];
    bool do_churn = false;
    const char *codec_name = NULL;
    double oversample = 0;
    unsigned query_bits = 0, mt_threads = 0;
    fanns_codec_t *codec = NULL;
    /* --churn, --codec, --oversample, --query-bits are this program's own flags: take them
     * out before the shared parser sees argv */
    int argn = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--churn")) do_churn = true;
        else if (i > 0 && i + 1 < argc && !strcmp(argv[i], "--codec")) codec_name = argv[++i];
        else if (i > 0 && i + 1 < argc && !strcmp(argv[i], "--oversample")) oversample = atof(argv[++i]);
        else if (i > 0 && i + 1 < argc && !strcmp(argv[i], "--query-bits")) query_bits = (unsigned)atoi(argv[++i]);
        else if (i > 0 && i + 1 < argc && !strcmp(argv[i], "--mt-threads")) mt_threads = (unsigned)atoi(argv[++i]);
        else argv[argn++] = argv[i];
    }
    argc = argn;
    if (bench_parse(argc, argv, &o)) {
        fprintf(stderr, "          [--churn]  then delete and re-insert half of the points, measure again\n"
                        "          [--codec sq8|f16|bin [--oversample F] [--query-bits N]]  graph over codes\n"
                        "          [--mt-threads N]  also the throughput of N threads searching at once\n");
        return 2;
    }
    if (bench_load(&o, &base, &q, &gt)) return 1;
    fanns_dist_init();
    size_t n = base.rows, d = base.cols;
    float *bv = base.data, *qv = q.data;
    for (size_t i = 0; i < n; i++) fanns_vec_normalize(bv + i * d, d);
    for (size_t i = 0; i < q.rows; i++) fanns_vec_normalize(qv + i * d, d);
    long long rss_loaded = bench_cur_rss();

    fanns_hnsw_params_t p = {.dim = (uint32_t)d, .metric = FANNS_METRIC_COSINE, .m = o.m, .ef_construct = o.efc,
                             .seed = 100, .query_bits = query_bits};
    double train_s = 0;
    if (codec_name) {
        fanns_codec_params_t cp = {.dim = (uint32_t)d, .metric = FANNS_METRIC_COSINE};
        if (!strcmp(codec_name, "sq8")) cp.kind = FANNS_CODEC_SQ8;
        else if (!strcmp(codec_name, "f16")) cp.kind = FANNS_CODEC_F16;
        else if (!strcmp(codec_name, "bin")) cp.kind = FANNS_CODEC_BIN;
        else {
            fprintf(stderr, "unknown codec %s\n", codec_name);
            return 2;
        }
        double tt = bench_now();
        if (fanns_codec_new(&cp, &codec, &err) || fanns_codec_train(codec, n < 65536 ? n : 65536, bv, &err)) goto fail;
        train_s = bench_now() - tt;
        p.codec = codec;
        if (oversample <= 0) oversample = 1;
    }
    if (fanns_hnsw_new(&p, &h, &err)) goto fail;
    search_ctx_t sc = {h, bv, d, codec ? oversample : 0};
    offs = malloc(n * sizeof(*offs));
    if (!offs) goto fail;
    for (size_t i = 0; i < n; i++) offs[i] = (uint32_t)i;
    vec_ctx_t vc = {bv, d};
    double t0 = bench_now();
    if (fanns_hnsw_insert_many(h, offs, n, vec_of, &vc, (int)o.threads, &err)) goto fail;
    double build_s = bench_now() - t0;
    if (fanns_hnsw_count(h) != n) {
        fprintf(stderr, "index holds %zu nodes, expected %zu\n", fanns_hnsw_count(h), n);
        goto fail;
    }
    fanns_err_t cerr = {0};
    int crc = fanns_hnsw_check(h, &cerr);
    printf("{\"system\":\"fanns\",\"kind\":\"build\",\"n\":%zu,\"dim\":%zu,\"m\":%u,\"ef_construction\":%u,"
           "\"threads\":%u,\"build_s\":%.3f,\"index_bytes\":%zu,\"isa\":\"%s\",\"graph_ok\":%s,"
           "\"codec\":\"%s\",\"code_bytes\":%zu,\"oversample\":%.2f,\"query_bits\":%u,\"train_s\":%.3f}\n",
           n, d, o.m, o.efc, o.threads, build_s, fanns_hnsw_memory(h), fanns_dist_isa(), crc ? "false" : "true",
           codec_name ? codec_name : "float32", codec ? fanns_codec_code_size(codec) : d * sizeof(float),
           codec ? oversample : 0.0, query_bits, train_s);
    if (crc) fprintf(stderr, "graph check failed: %s\n", cerr.msg);
    fflush(stdout);

    for (size_t i = 0; i < o.nef; i++) {
        bench_point_t pt;
        if (bench_run_ef(&o, &q, &gt, o.efs[i], search, &sc, &pt)) {
            fprintf(stderr, "search failed at ef %zu\n", o.efs[i]);
            goto fail;
        }
        double mt = mt_threads ? mt_qps(&sc, &q, o.k, o.efs[i], mt_threads, o.min_time) : 0.0;
        if (mt < 0) {
            fprintf(stderr, "multi-thread search failed at ef %zu\n", o.efs[i]);
            goto fail;
        }
        printf("{\"system\":\"fanns\",\"kind\":\"search\",\"ef\":%zu,\"k\":%u,\"nq\":%zu,\"recall\":%.4f,"
               "\"qps\":%.1f,\"qps_median\":%.1f,\"passes\":%u,\"mt_threads\":%u,\"mt_qps\":%.1f}\n",
               o.efs[i], o.k, q.rows, pt.recall, pt.qps_best, pt.qps_median, pt.passes, mt_threads, mt);
        fflush(stdout);
        fresh[i] = pt.recall;
    }
    if (do_churn && churn(&o, h, offs, n, &vc, &q, &gt, fresh, &sc)) {
        fprintf(stderr, "churn failed\n");
        goto fail;
    }
    printf("{\"system\":\"fanns\",\"kind\":\"memory\",\"peak_rss_bytes\":%lld,\"rss_after_load_bytes\":%lld}\n",
           bench_peak_rss(), rss_loaded);
    rc = 0;
fail:
    if (rc && err.msg[0]) fprintf(stderr, "fanns: %s\n", err.msg);
    fanns_hnsw_free(h);
    fanns_codec_free(codec);
    free(offs);
    free(base.data);
    free(q.data);
    free(gt.data);
    return rc;
}
