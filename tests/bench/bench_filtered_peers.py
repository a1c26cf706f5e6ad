#!/usr/bin/python3
"""The baselines of the filtered-search benchmark (run_filtered.py drives this file).

Systems, all single-threaded at search time, all over the workload's filtered queries:
  bruteforce  exact pre-filter: the ids matching the query's filter are given (a real system
              gets them from a payload index), and what is timed is only the distance
              computation and the top-k.  Two variants, both exact, and the report keeps the
              faster per cell: "gather" scores only the matching rows (base[ids] @ q, which
              copies them), "dense" scores every row with one matrix-vector product and keeps
              the matching scores (base @ q, then [ids]); both finish with argpartition and a
              sort of the k best.  Recall is 1 by construction (ties aside).
  faiss       FAISS IndexHNSWFlat (inner product, M=16, efConstruction=200) searched with an
              IDSelectorBitmap through SearchParametersHNSW(sel=...).  The bitmap is built per
              query outside the timing (again: a payload index would supply it).  FAISS 1.7.3
              (Debian) reads the beam width from both SearchParametersHNSW.efSearch and
              index.hnsw.efSearch when search parameters are passed (measured: setting only
              one of them to 256 leaves recall at the ef-16 level), so both are set.
  hnswlib     hnswlib 0.6.2 (Debian python3-hnswlib, no filter functor) with post-filtering:
              ask for k' = min(n, ceil(k / selectivity * c)) candidates with ef = max(k', ef0),
              keep those that pass the filter, return the first k.  The selectivity used is
              the true one from queries.jsonl (an oracle estimate, generous to this baseline).
              Timed: set_ef, knn_query and the pass check.

The filters of queries.jsonl are evaluated here over the payloads of base.jsonl with a small
columnar evaluator (keyword match value/any/except on strings or string arrays, numeric
range, must/should/must_not, nested filters).  Each mask is checked against the query's
recorded selectivity and against the ground truth (every true neighbour must pass), so a
wrong evaluator cannot go unnoticed.

Each configuration runs every query `reps` times; the first run also gives recall.  Graphs
are cached next to the data (faiss-hnsw-m16-efc200.index, hnswlib-m16-efc200.bin) since
building them takes minutes on two cores.  Output: JSON lines ("build", then one "query"
per system, configuration and query, with latencies in microseconds).
"""
import argparse, json, math, os, sys, time

import numpy as np


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Filter evaluation over columns


class Columns:
    """Lazily built columns of the payloads: inverted lists for string fields (scalar or
    array), float arrays for numbers."""

    def __init__(self, payloads):
        self.p = payloads
        self.n = len(payloads)
        self.inv = {}
        self.num = {}

    def inverted(self, key):
        if key not in self.inv:
            d = {}
            for i, doc in enumerate(self.p):
                v = doc.get(key)
                for x in (v if isinstance(v, list) else [v]):
                    if isinstance(x, (str, int, bool)) and x is not None:
                        d.setdefault(x, []).append(i)
            self.inv[key] = {k: np.array(v, dtype=np.int64) for k, v in d.items()}
            self.inv[key + "\0has"] = np.array([doc.get(key) is not None for doc in self.p])
        return self.inv[key]

    def has(self, key):
        self.inverted(key)
        return self.inv[key + "\0has"]

    def numeric(self, key):
        if key not in self.num:
            a = np.full(self.n, np.nan)
            for i, doc in enumerate(self.p):
                v = doc.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    a[i] = v
            self.num[key] = a
        return self.num[key]

    def mask_ids(self, ids):
        m = np.zeros(self.n, dtype=bool)
        m[ids] = True
        return m


def cond_mask(cols, c):
    if "must" in c or "should" in c or "must_not" in c:
        return filter_mask(cols, c)
    key = c["key"]
    if "match" in c:
        mt = c["match"]
        inv = cols.inverted(key)
        if "value" in mt:
            return cols.mask_ids(inv.get(mt["value"], np.zeros(0, dtype=np.int64)))
        if "any" in mt:
            m = np.zeros(cols.n, dtype=bool)
            for v in mt["any"]:
                m[inv.get(v, np.zeros(0, dtype=np.int64))] = True
            return m
        if "except" in mt:
            # Qdrant: passes if the field exists and some value is not in the list.
            ex = set(mt["except"])
            return np.array([any(x not in ex for x in (v if isinstance(v, list) else [v]))
                             if v is not None else False for v in (doc.get(key) for doc in cols.p)])
        raise ValueError(f"unsupported match {mt}")
    if "range" in c:
        a = cols.numeric(key)
        m = ~np.isnan(a)
        r = c["range"]
        with np.errstate(invalid="ignore"):
            if r.get("gt") is not None: m &= a > r["gt"]
            if r.get("gte") is not None: m &= a >= r["gte"]
            if r.get("lt") is not None: m &= a < r["lt"]
            if r.get("lte") is not None: m &= a <= r["lte"]
        return m
    raise ValueError(f"unsupported condition {c}")


def as_list(x):
    return x if isinstance(x, list) else [x]


def filter_mask(cols, f):
    m = np.ones(cols.n, dtype=bool)
    for c in as_list(f.get("must") or []):
        m &= cond_mask(cols, c)
    for c in as_list(f.get("must_not") or []):
        m &= ~cond_mask(cols, c)
    sh = as_list(f.get("should") or [])
    if sh:
        s = np.zeros(cols.n, dtype=bool)
        for c in sh:
            s |= cond_mask(cols, c)
        m &= s
    return m


# ---------------------------------------------------------------------------------------------
# Systems


def top_k_exact(base, ids, q, k, dense=False):
    s = (base @ q)[ids] if dense else base[ids] @ q
    if len(ids) > k:
        part = np.argpartition(-s, k)[:k]
    else:
        part = np.arange(len(ids))
    order = part[np.argsort(-s[part], kind="stable")]
    return ids[order]


def faiss_index(a, base):
    import faiss
    path = os.path.join(a.cache, "faiss-hnsw-m16-efc200.index")
    if os.path.exists(path):
        return faiss.read_index(path), None
    faiss.omp_set_num_threads(a.build_threads)
    idx = faiss.IndexHNSWFlat(base.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = 200
    t = time.perf_counter()
    idx.add(base)
    bt = time.perf_counter() - t
    faiss.write_index(idx, path + ".tmp")
    os.rename(path + ".tmp", path)
    return idx, bt


def hnswlib_index(a, base):
    import hnswlib
    path = os.path.join(a.cache, "hnswlib-m16-efc200.bin")
    p = hnswlib.Index(space="ip", dim=base.shape[1])
    if os.path.exists(path):
        p.load_index(path, max_elements=base.shape[0])
        return p, None
    p.init_index(max_elements=base.shape[0], ef_construction=200, M=16, random_seed=100)
    t = time.perf_counter()
    p.add_items(base, np.arange(base.shape[0]), num_threads=a.build_threads)
    bt = time.perf_counter() - t
    p.save_index(path + ".tmp")
    os.rename(path + ".tmp", path)
    return p, bt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="workload directory (base.npy, base.jsonl, queries.*, gt.npy)")
    ap.add_argument("--systems", default="bruteforce,faiss,hnswlib")
    ap.add_argument("--faiss-ef", default="64,128,256,512,1024")
    ap.add_argument("--hnswlib-c", default="1,2,4")
    ap.add_argument("--hnswlib-ef", default="64")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--reps", type=int, default=2, help="timed runs per query and configuration")
    ap.add_argument("--build-threads", type=int, default=os.cpu_count())
    ap.add_argument("--cache", help="where built graphs are cached (default: --data)")
    ap.add_argument("--max-queries", type=int, default=-1)
    ap.add_argument("--out", help="JSON lines output (default stdout)")
    a = ap.parse_args()
    a.cache = a.cache or a.data
    out = open(a.out, "w") if a.out else sys.stdout

    def emit(o):
        out.write(json.dumps(o, separators=(",", ":")) + "\n")
        out.flush()

    base = np.load(os.path.join(a.data, "base.npy"))
    base = base / np.linalg.norm(base, axis=1, keepdims=True).clip(1e-30)
    base = np.ascontiguousarray(base, dtype=np.float32)
    qv = np.load(os.path.join(a.data, "queries.npy")).astype(np.float32)
    qv = qv / np.linalg.norm(qv, axis=1, keepdims=True).clip(1e-30)
    gt = np.load(os.path.join(a.data, "gt.npy"))
    with open(os.path.join(a.data, "queries.jsonl")) as f:
        qmeta = [json.loads(x) for x in f]
    with open(os.path.join(a.data, "base.jsonl")) as f:
        payloads = [json.loads(x) for x in f]
    n, k = base.shape[0], a.k
    cols = Columns(payloads)
    sel_q = [i for i, m in enumerate(qmeta) if m["filter"] is not None]
    if a.max_queries >= 0:
        sel_q = [i for i in sel_q if i < a.max_queries]
    masks, idlists = {}, {}
    for i in sel_q:
        m = filter_mask(cols, qmeta[i]["filter"])
        if abs(m.mean() - qmeta[i]["selectivity"]) > 1e-9:
            sys.exit(f"query {i}: evaluated selectivity {m.mean()} != recorded {qmeta[i]['selectivity']}")
        g = gt[i, :k]
        if not m[g[g >= 0]].all():
            sys.exit(f"query {i}: a ground-truth neighbour fails the evaluated filter")
        masks[i] = m
        idlists[i] = np.flatnonzero(m)
    log(f"peers: {len(sel_q)} filtered queries, filters evaluated and checked")

    def record(system, config, i, got, lats):
        g = gt[i, :k]
        truth = set(int(x) for x in g if x >= 0)
        hits = len(truth.intersection(int(x) for x in got[:k]))
        emit({"type": "query", "system": system, "config": config, "qi": i, "kind": qmeta[i]["kind"],
              "corr": qmeta[i]["correlation"] or "none", "selectivity": qmeta[i]["selectivity"], "hits": hits,
              "possible": len(truth), "lat_us": [round(x * 1e6, 2) for x in lats]})
        return hits, len(truth)

    systems = a.systems.split(",")
    clock = time.perf_counter
    if "bruteforce" in systems:
        for variant in ("gather", "dense"):
            th = tp = 0
            for i in sel_q:
                ids, q = idlists[i], qv[i]
                lats = []
                for _ in range(a.reps):
                    t = clock()
                    got = top_k_exact(base, ids, q, k, dense=variant == "dense")
                    lats.append(clock() - t)
                h, p = record("bruteforce", variant, i, got, lats)
                th, tp = th + h, tp + p
            log(f"peers: bruteforce {variant} recall {th / max(tp, 1):.4f}")

    if "faiss" in systems:
        import faiss
        idx, bt = faiss_index(a, base)
        emit({"type": "build", "system": "faiss", "build_s": bt, "cached": bt is None})
        faiss.omp_set_num_threads(1)
        for ef in [int(x) for x in a.faiss_ef.split(",")]:
            idx.hnsw.efSearch = ef
            th = tp = 0
            for i in sel_q:
                bits = np.packbits(masks[i], bitorder="little")
                sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
                params = faiss.SearchParametersHNSW()
                params.sel = sel
                params.efSearch = ef
                q = qv[i:i + 1]
                lats = []
                for _ in range(a.reps):
                    t = clock()
                    _, I = idx.search(q, k, params=params)
                    lats.append(clock() - t)
                got = I[0][I[0] >= 0]
                h, p = record("faiss-hnsw-sel", f"ef{ef}", i, got, lats)
                th, tp = th + h, tp + p
                del sel, bits
            log(f"peers: faiss ef {ef} recall {th / max(tp, 1):.4f}")

    if "hnswlib" in systems:
        idx, bt = hnswlib_index(a, base)
        emit({"type": "build", "system": "hnswlib", "build_s": bt, "cached": bt is None})
        idx.set_num_threads(1)
        # When k' is capped at n, different c give the same search: measured once, reused.
        memo = {}
        for ef0 in [int(x) for x in a.hnswlib_ef.split(",")]:
            for c in [float(x) for x in a.hnswlib_c.split(",")]:
                th = tp = 0
                for i in sel_q:
                    m, q = masks[i], qv[i:i + 1]
                    kp = int(min(n, math.ceil(k / max(qmeta[i]["selectivity"], 1e-12) * c)))
                    efe = max(kp, ef0)
                    lats, got = [], np.zeros(0, dtype=np.int64)
                    if (i, kp, efe) in memo:
                        got, lats = memo[(i, kp, efe)]
                    for _ in range(a.reps - len(lats)):
                        t = clock()
                        idx.set_ef(efe)
                        try:
                            labels, _ = idx.knn_query(q, k=kp)
                            lab = labels[0]
                            got = lab[m[lab]][:k]
                        except RuntimeError:
                            # hnswlib refuses when the graph yields fewer than k' results;
                            # the query then returns nothing (counted as misses).
                            got = np.zeros(0, dtype=np.int64)
                        lats.append(clock() - t)
                    memo[(i, kp, efe)] = (got, lats)
                    h, p = record("hnswlib-postfilter", f"c{c:g},ef{ef0}", i, got, lats)
                    th, tp = th + h, tp + p
                log(f"peers: hnswlib c {c:g} ef {ef0} recall {th / max(tp, 1):.4f}")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
