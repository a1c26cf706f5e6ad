/*
 * bench_hnswlib.cpp: the hnswlib baseline for the HNSW benchmark (run by run_bench.py).
 *
 * Builds hnswlib's HierarchicalNSW with InnerProductSpace over the (unit-length) base vectors,
 * M and ef_construction as given, inserting from N threads that take the next index from a
 * shared atomic counter (the parallel-add pattern of hnswlib's own examples), then measures
 * recall@k and single-thread QPS for each ef exactly as bench_hnsw.c does (bench_common.h),
 * and prints the same JSON lines.  Compiled with -O3 -march=native so hnswlib's compile-time
 * SIMD selection uses what this machine has.
 *
 * Index memory is computed from hnswlib's public fields: the level-0 block for the elements
 * added, the upper-level link lists and the label map (an estimate for the map's nodes).
 */
#include <hnswlib/hnswlib.h>

#include <atomic>
#include <thread>
#include <vector>

#include "bench_common.h"

typedef hnswlib::HierarchicalNSW<float> hnsw_t;

struct search_ctx {
    hnsw_t *h;
    size_t ef;
};

static int search(void *vctx, const float *q, size_t k, size_t ef, long long *ids, size_t *n) {
    search_ctx *c = (search_ctx *)vctx;
    if (c->ef != ef) {
        c->h->setEf(ef);
        c->ef = ef;
    }
    auto pq = c->h->searchKnn(q, k);
    *n = pq.size();
    for (size_t i = pq.size(); i-- > 0;) {
        ids[i] = (long long)pq.top().second;
        pq.pop();
    }
    return 0;
}

static size_t index_memory(const hnsw_t *h) {
    size_t n = h->cur_element_count, bytes = n * h->size_data_per_element_ + n * sizeof(void *);
    for (size_t i = 0; i < n; i++)
        if (h->element_levels_[i] > 0) bytes += (size_t)h->element_levels_[i] * h->size_links_per_element_;
    /* unordered_map node: key, value, next pointer, cached hash; plus the bucket array */
    bytes += n * (sizeof(hnswlib::labeltype) + sizeof(hnswlib::tableint) + 2 * sizeof(void *)) + n * sizeof(void *);
    return bytes;
}

int main(int argc, char **argv) {
    bench_opts_t o;
    bench_npy_t base, q, gt;
    if (bench_parse(argc, argv, &o)) return 2;
    if (bench_load(&o, &base, &q, &gt)) return 1;
    size_t n = base.rows, d = base.cols;
    const float *bv = (const float *)base.data;
    long long rss_loaded = bench_cur_rss();

    hnswlib::InnerProductSpace space(d);
    hnsw_t *h = new hnsw_t(&space, n, o.m, o.efc, 100);
    double t0 = bench_now();
    std::atomic<size_t> next(0);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < o.threads; t++)
        threads.emplace_back([&]() {
            for (size_t i; (i = next.fetch_add(1)) < n;) h->addPoint(bv + i * d, (hnswlib::labeltype)i);
        });
    for (auto &t : threads) t.join();
    double build_s = bench_now() - t0;
    printf("{\"system\":\"hnswlib\",\"kind\":\"build\",\"n\":%zu,\"dim\":%zu,\"m\":%u,\"ef_construction\":%u,"
           "\"threads\":%u,\"build_s\":%.3f,\"index_bytes\":%zu}\n",
           n, d, o.m, o.efc, o.threads, build_s, index_memory(h));
    fflush(stdout);

    search_ctx c = {h, 0};
    for (size_t i = 0; i < o.nef; i++) {
        bench_point_t pt;
        if (bench_run_ef(&o, &q, &gt, o.efs[i], search, &c, &pt)) return 1;
        printf("{\"system\":\"hnswlib\",\"kind\":\"search\",\"ef\":%zu,\"k\":%u,\"nq\":%zu,\"recall\":%.4f,"
               "\"qps\":%.1f,\"qps_median\":%.1f,\"passes\":%u}\n",
               o.efs[i], o.k, q.rows, pt.recall, pt.qps_best, pt.qps_median, pt.passes);
        fflush(stdout);
    }
    printf("{\"system\":\"hnswlib\",\"kind\":\"memory\",\"peak_rss_bytes\":%lld,\"rss_after_load_bytes\":%lld}\n",
           bench_peak_rss(), rss_loaded);
    delete h;
    free(base.data);
    free(q.data);
    free(gt.data);
    return 0;
}
