#!/usr/bin/python3
"""FAISS baselines for the HNSW benchmark (run by run_bench.py; needs python3-faiss).

Default mode: IndexHNSWFlat(d, M, METRIC_INNER_PRODUCT) with efConstruction as given, built
with all cores (OpenMP), then for each ef, recall@k and single-thread QPS over all queries.
FAISS 1.7.3 ignores SearchParametersHNSW.efSearch, so index.hnsw.efSearch is set directly.
Each timed pass is one search call over all queries with one OpenMP thread, which FAISS runs
as a loop over the queries (no batching across queries in HNSW search).

--exact: the brute-force baseline with numpy, one query per call on one thread (what a server
answering single requests does; a matrix product over a batch of queries would be faster per
query but is not comparable to per-request latency).

Prints the same JSON lines as bench_hnsw.c and bench_hnswlib.cpp.
"""
import argparse, json, os, resource, sys, time

import numpy as np

try:
    import faiss
except ImportError:
    sys.exit("python3-faiss is not installed")


def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def recall(ids, gt, k):
    hits = possible = 0
    for row, g in zip(ids, gt):
        g = set(int(x) for x in g[:k] if x >= 0)
        possible += len(g)
        hits += len(g.intersection(int(x) for x in row[:k]))
    return hits / possible if possible else 1.0


def timed(fn, nq, reps, min_time):
    fn()  # warm-up
    qps = []
    t0 = time.perf_counter()
    while len(qps) < reps or time.perf_counter() - t0 < min_time:
        s = time.perf_counter()
        fn()
        qps.append(nq / (time.perf_counter() - s))
    return max(qps), float(np.median(qps)), len(qps)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--ef", default="16,32,64,96,128,192,256,384")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0, help="build threads (0 = all cores)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--exact", action="store_true", help="numpy brute force instead of HNSW")
    a = ap.parse_args()

    base = np.ascontiguousarray(np.load(a.base), dtype=np.float32)
    q = np.ascontiguousarray(np.load(a.queries), dtype=np.float32)
    gt = np.load(a.gt)
    faiss.normalize_L2(base)
    faiss.normalize_L2(q)
    n, d = base.shape
    rss_loaded = rss_now()
    threads = a.threads or os.cpu_count()
    out = sys.stdout

    if a.exact:
        # numpy's matrix-vector product goes to OpenBLAS, whose kernels are chosen for this
        # CPU at run time (run_bench.py sets OPENBLAS_NUM_THREADS=1), unlike Debian's generic
        # FAISS build; argpartition then sorts only the top k.
        build_s = 0.0
        out.write(json.dumps({"system": "exact", "kind": "build", "n": n, "dim": d, "threads": 1,
                              "build_s": round(build_s, 3), "index_bytes": n * d * 4,
                              "engine": "numpy " + np.__version__}) + "\n")

        def top(v):
            s = base @ v
            idx = np.argpartition(-s, a.k)[:a.k]
            return idx[np.argsort(-s[idx], kind="stable")]

        def run():
            return [top(v) for v in q]

        ids = run()
        best, med, passes = timed(run, len(q), a.reps, a.min_time)
        out.write(json.dumps({"system": "exact", "kind": "search", "ef": 0, "k": a.k, "nq": len(q),
                              "recall": round(recall(ids, gt, a.k), 4), "qps": round(best, 1),
                              "qps_median": round(med, 1), "passes": passes}) + "\n")
        name = "exact"
    else:
        index = faiss.IndexHNSWFlat(d, a.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = a.efc
        faiss.omp_set_num_threads(threads)
        t0 = time.perf_counter()
        index.add(base)
        build_s = time.perf_counter() - t0
        hn = index.hnsw
        index_bytes = n * d * 4 + hn.neighbors.size() * 4 + hn.levels.size() * 4 + hn.offsets.size() * 8
        out.write(json.dumps({"system": "faiss", "kind": "build", "n": n, "dim": d, "m": a.m,
                              "ef_construction": a.efc, "threads": threads, "build_s": round(build_s, 3),
                              "index_bytes": int(index_bytes), "faiss_version": faiss.__version__,
                              "faiss_compile_options": faiss.get_compile_options().strip()
                              if hasattr(faiss, "get_compile_options") else "?"}) + "\n")
        out.flush()
        faiss.omp_set_num_threads(1)
        for ef in [int(x) for x in a.ef.split(",")]:
            index.hnsw.efSearch = ef

            def run():
                return index.search(q, a.k)[1]

            ids = run()
            best, med, passes = timed(run, len(q), a.reps, a.min_time)
            out.write(json.dumps({"system": "faiss", "kind": "search", "ef": ef, "k": a.k, "nq": len(q),
                                  "recall": round(recall(ids, gt, a.k), 4), "qps": round(best, 1),
                                  "qps_median": round(med, 1), "passes": passes}) + "\n")
            out.flush()
        name = "faiss"
    out.write(json.dumps({"system": name, "kind": "memory",
                          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                          "rss_after_load_bytes": rss_loaded}) + "\n")


if __name__ == "__main__":
    main()
