#!/usr/bin/python3
"""test_workload: the arXiv-like filtered workload end to end over HTTP, checked against its
exact ground truth.

Generates the workload with ../shared/workload/arxiv_like.py (20000 x 128, 200 queries, seed 1,
cosine), loads it into a Cosine collection through PUT /points (batches of 500, wait=true, ids =
row numbers, payloads from base.jsonl), then sends every query to POST /points/query with its
filter and params.exact=true and compares the returned ids with gt.npy.  A returned id set may
differ from the ground truth only by ties: every differing id must score within 1e-5 of the
k-th score.  Every returned point must also pass the query's filter and carry its true score.
A second pass without `exact` measures recall@10 of the approximate path and requires the
mean to reach --min-recall.

Usage: test_workload.py --fannsd build/fannsd [--shared-dir ../shared] [--min-recall 0.9]
  The shared directory also comes from FANNS_SHARED_DIR; default <repo>/../shared.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import shutil

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fanns_harness as H  # noqa: E402

COLL = "arxiv"
TIE_EPS = 1e-5
SCORE_EPS = 1e-4


# A small evaluator for the filter kinds the generator writes (match value/any/except, range,
# must/should/must_not), used only to check that returned points pass their filter.
def field_values(payload, key):
    v = payload
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            return []
        v = v[part]
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def cond_ok(payload, cond):
    if any(k in cond for k in ("must", "should", "must_not", "min_should")):
        return filter_ok(payload, cond)
    vals = field_values(payload, cond["key"])
    if "match" in cond:
        m = cond["match"]
        if "value" in m:
            return any(x == m["value"] and type(x) is type(m["value"]) for x in vals)
        if "any" in m:
            return any(x in m["any"] for x in vals)
        if "except" in m:
            return any(x not in m["except"] for x in vals)
    if "range" in cond:
        r = cond["range"]
        nums = [x for x in vals if isinstance(x, (int, float)) and not isinstance(x, bool)]
        return any(("gt" not in r or x > r["gt"]) and ("gte" not in r or x >= r["gte"])
                   and ("lt" not in r or x < r["lt"]) and ("lte" not in r or x <= r["lte"]) for x in nums)
    raise ValueError("condition kind not handled by the test's evaluator: %r" % cond)


def filter_ok(payload, flt):
    if flt is None:
        return True
    must = flt.get("must") or []
    should = flt.get("should") or []
    must_not = flt.get("must_not") or []
    if isinstance(must, dict):
        must = [must]
    if isinstance(should, dict):
        should = [should]
    if isinstance(must_not, dict):
        must_not = [must_not]
    return (all(cond_ok(payload, c) for c in must)
            and (not should or any(cond_ok(payload, c) for c in should))
            and not any(cond_ok(payload, c) for c in must_not))


def main():
    def extra(p):
        p.add_argument("--shared-dir", default=os.environ.get("FANNS_SHARED_DIR",
                                                              os.path.join(H.REPO, "..", "shared")))
        p.add_argument("--n", type=int, default=20000)
        p.add_argument("--dim", type=int, default=128)
        p.add_argument("--queries", type=int, default=200)
        p.add_argument("--batch", type=int, default=500)
        p.add_argument("--min-recall", type=float, default=0.9,
                       help="required mean recall@10 of the approximate (HNSW) pass")
    args, _ = H.parse_args(sys.argv[1:], extra)
    gen = os.path.join(os.path.abspath(args.shared_dir), "workload", "arxiv_like.py")
    if not os.path.isfile(gen):
        sys.stderr.write("FATAL: workload generator not found at %s (set FANNS_SHARED_DIR or --shared-dir)\n" % gen)
        sys.exit(2)

    work = tempfile.mkdtemp(prefix="fanns-workload-")
    srv = H.Server(args.fannsd)
    try:
        out = os.path.join(work, "wl")
        t0 = time.monotonic()
        subprocess.run([sys.executable, gen, "--n", str(args.n), "--dim", str(args.dim),
                        "--queries", str(args.queries), "--seed", "1", "--no-text", out],
                       check=True, stdout=subprocess.DEVNULL)
        base = np.load(os.path.join(out, "base.npy"))
        queries = np.load(os.path.join(out, "queries.npy"))
        gt = np.load(os.path.join(out, "gt.npy"))
        gt_dist = np.load(os.path.join(out, "gt_dist.npy"))
        with open(os.path.join(out, "base.jsonl")) as f:
            payloads = [json.loads(line) for line in f]
        with open(os.path.join(out, "queries.jsonl")) as f:
            qmeta = [json.loads(line) for line in f]
        assert len(payloads) == base.shape[0] and len(qmeta) == queries.shape[0]
        print("generated %d x %d, %d queries in %.1f s" % (base.shape + (len(qmeta), time.monotonic() - t0)),
              flush=True)

        srv.start()
        c = srv.client(timeout=H.scaled(120))
        H.create_collection(c, COLL, base.shape[1], "Cosine")
        t0 = time.monotonic()
        for s in range(0, base.shape[0], args.batch):
            e = min(s + args.batch, base.shape[0])
            res = c.put("/collections/%s/points?wait=true" % COLL, {"batch": {
                "ids": list(range(s, e)), "vectors": base[s:e].tolist(), "payloads": payloads[s:e]}})
            H.check_update_result(res, True, "upsert %d-%d" % (s, e))
        t_up = time.monotonic() - t0
        print("upserted %d points in %.2f s (%.0f points/s)" % (base.shape[0], t_up, base.shape[0] / t_up),
              flush=True)
        info = c.get("/collections/" + COLL)
        assert info["points_count"] == base.shape[0], "points_count %r" % info["points_count"]

        bn = base / np.linalg.norm(base, axis=1, keepdims=True)
        failures = []
        t0 = time.monotonic()
        for qi, q in enumerate(queries):
            flt = qmeta[qi]["filter"]
            body = {"query": q.tolist(), "limit": 10, "params": {"exact": True}, "with_payload": False}
            if flt is not None:
                body["filter"] = flt
            pts = c.post("/collections/%s/points/query" % COLL, body)["points"]
            want = [int(x) for x in gt[qi] if x >= 0]
            got = [p["id"] for p in pts]
            true_s = bn @ (q / np.linalg.norm(q))
            why = []
            if len(got) != len(want):
                why.append("returned %d points, ground truth has %d" % (len(got), len(want)))
            for p in pts:
                if not isinstance(p["id"], int) or not 0 <= p["id"] < base.shape[0]:
                    why.append("unknown id %r" % p["id"])
                    continue
                if abs(p["score"] - true_s[p["id"]]) > SCORE_EPS:
                    why.append("id %d score %.6f, true %.6f" % (p["id"], p["score"], true_s[p["id"]]))
                if not filter_ok(payloads[p["id"]], flt):
                    why.append("id %d does not pass the filter" % p["id"])
            sc = [p["score"] for p in pts]
            if sc != sorted(sc, reverse=True):
                why.append("scores not in descending order")
            if want and not why:
                kth = 1.0 - float(gt_dist[qi][len(want) - 1])
                for i in set(got) - set(want):
                    if abs(true_s[i] - kth) > TIE_EPS:
                        why.append("id %d (score %.6f) not in ground truth (k-th score %.6f)" % (i, true_s[i], kth))
                for i in set(want) - set(got):
                    if abs(true_s[i] - kth) > TIE_EPS:
                        why.append("ground-truth id %d (score %.6f) missing (k-th score %.6f)" % (i, true_s[i], kth))
            if why:
                failures.append("query %d (%s, selectivity %s): %s; got %s want %s" % (
                    qi, qmeta[qi]["kind"], qmeta[qi]["selectivity"], "; ".join(why[:4]), got, want))
        t_q = time.monotonic() - t0
        print("exact: %d queries in %.2f s (%.0f QPS over HTTP, one connection)" % (len(qmeta), t_q, len(qmeta) / t_q),
              flush=True)
        if failures:
            print("%d of %d exact queries FAILED:" % (len(failures), len(qmeta)))
            for f in failures[:30]:
                print("  " + f)
            sys.exit(1)

        # The same exact queries from 4 connections at once give the same answers.
        import threading
        serial = {}
        for qi in range(0, len(qmeta), 4):
            body = {"query": queries[qi].tolist(), "limit": 10, "params": {"exact": True}}
            if qmeta[qi]["filter"] is not None:
                body["filter"] = qmeta[qi]["filter"]
            serial[qi] = (body, [(p["id"], p["score"]) for p in c.post("/collections/%s/points/query" % COLL, body)["points"]])
        errors = []

        def worker(t):
            wc = H.Client("127.0.0.1", srv.port, timeout=H.scaled(120))
            try:
                for rep in range(2):
                    for qi in sorted(serial)[t::4]:
                        body, want = serial[qi]
                        r = wc.request("POST", "/collections/%s/points/query" % COLL, body=body)
                        got = [(p["id"], p["score"]) for p in r.json["result"]["points"]] if r.status == 200 else r.describe()
                        if got != want:
                            errors.append("parallel query %d: %s, serial %s" % (qi, got, want))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("parallel worker %d: %r" % (t, e))
            finally:
                wc.close()
        t0 = time.monotonic()
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("parallel: %d queries on 4 connections in %.2f s" % (2 * len(serial), time.monotonic() - t0), flush=True)
        assert not errors, "\n".join(errors[:10])

        # Stored vectors at scale: scroll everything back with vectors (normalised for Cosine).
        t0 = time.monotonic()
        recs = H.scroll_all(c, COLL, with_payload=True, with_vector=True, page=5000)
        assert [r["id"] for r in recs] == list(range(base.shape[0])), "scroll of the whole collection"
        got_v = np.array([r["vector"] for r in recs], dtype=np.float32)
        err = float(np.abs(got_v - bn).max())
        assert err < 1e-5, "stored vectors differ from the normalised input by up to %g" % err
        bad = [r["id"] for r in recs if r["payload"] != payloads[r["id"]]]
        assert not bad, "payloads differ for ids %s" % bad[:10]
        print("scrolled back %d points with vectors and payloads in %.2f s" % (len(recs), time.monotonic() - t0),
              flush=True)

        # Approximate pass: recall@10 per query kind.
        per_kind = {}
        t0 = time.monotonic()
        for qi, q in enumerate(queries):
            flt = qmeta[qi]["filter"]
            body = {"query": q.tolist(), "limit": 10, "with_payload": False}
            if flt is not None:
                body["filter"] = flt
            pts = c.post("/collections/%s/points/query" % COLL, body)["points"]
            want = set(int(x) for x in gt[qi] if x >= 0)
            for p in pts:
                assert filter_ok(payloads[p["id"]], flt), "approximate query %d returned id %d outside its filter" \
                    % (qi, p["id"])
            if want:
                per_kind.setdefault(qmeta[qi]["kind"], []).append(len(want & {p["id"] for p in pts}) / len(want))
        t_a = time.monotonic() - t0
        allr = [r for v in per_kind.values() for r in v]
        mean = sum(allr) / len(allr)
        print("approximate: %d queries in %.2f s (%.0f QPS), mean recall@10 %.3f; by kind: %s" % (
            len(qmeta), t_a, len(qmeta) / t_a, mean,
            ", ".join("%s %.3f" % (k, sum(v) / len(v)) for k, v in sorted(per_kind.items()))), flush=True)
        assert mean >= args.min_recall, "mean recall@10 %.3f below %.2f" % (mean, args.min_recall)

        # Filtered graph walks.  A second collection with payload indexes (so match sets are
        # exact and reach the walk as bitsets), its graph built at once and a full-scan
        # threshold of 1 KB, so the planner chooses between the scan and the walks by cost
        # alone.  Every hit must pass its filter, and each filter kind must keep its recall.
        gcoll = COLL + "_graph"
        H.create_collection(c, gcoll, base.shape[1], "Cosine",
                            hnsw_config={"m": 16, "ef_construct": 100, "full_scan_threshold": 1},
                            optimizers_config={"indexing_threshold": 1})
        for field, schema in (("categories", "keyword"), ("authors", "keyword"), ("license", "keyword"),
                              ("year", "integer")):
            c.put("/collections/%s/index?wait=true" % gcoll, {"field_name": field, "field_schema": schema})
        for s in range(0, base.shape[0], args.batch):
            e = min(s + args.batch, base.shape[0])
            res = c.put("/collections/%s/points?wait=true" % gcoll, {"batch": {
                "ids": list(range(s, e)), "vectors": base[s:e].tolist(), "payloads": payloads[s:e]}})
            H.check_update_result(res, True, "upsert %d-%d" % (s, e))
        deadline = time.monotonic() + H.scaled(300)
        while c.get("/collections/" + gcoll)["status"] != "green":
            assert time.monotonic() < deadline, "graph collection not green"
            time.sleep(0.2)
        # Block links: the frequent values of the keyword and integer indexes are linked by the
        # time the collection is green, and walks on them use the links.
        blocks = c.get("/collections/%s?fanns=true" % gcoll)["fanns"]["block_links"]
        assert blocks["blocks"] > 0 and blocks["links"] > 0, "no block links: %s" % blocks
        strategies, per_kind, with_links = {}, {}, 0
        for qi, q in enumerate(queries):
            flt = qmeta[qi]["filter"]
            if flt is None:
                continue
            r = c.post("/collections/%s/points/query" % gcoll, {
                "query": q.tolist(), "limit": 10, "filter": flt, "params": {"hnsw_ef": 64, "explain": True}})
            st = r["explain"]["strategy"]
            strategies[st] = strategies.get(st, 0) + 1
            with_links += r["explain"].get("block_links", False) is True
            want = set(int(x) for x in gt[qi] if x >= 0)
            for p in r["points"]:
                assert filter_ok(payloads[p["id"]], flt), "%s query %d returned id %d outside its filter" % (
                    st, qi, p["id"])
            if want:
                per_kind.setdefault(qmeta[qi]["kind"], []).append(len(want & {p["id"] for p in r["points"]}) / len(want))
        print("graph collection: strategies %s; recall@10 by kind: %s" % (
            strategies, ", ".join("%s %.3f" % (k, sum(v) / len(v)) for k, v in sorted(per_kind.items()))), flush=True)
        assert strategies.get("hnsw_acorn", 0) > 0, "no query walked the matching subgraph: %s" % strategies
        assert with_links > 0, "no walk used block links (%s)" % blocks
        for k, v in per_kind.items():
            assert sum(v) / len(v) >= args.min_recall, "kind %s: recall@10 %.3f through the graph" % (k, sum(v) / len(v))
        # Filters that exclude the query's own neighbourhood (NOT the query's archive): the
        # probe finds no match around the query, and at a small hnsw_ef the wide two-hop walk
        # (16 x ef) costs less than scanning the matches, so it answers them.
        wide, wrec = 0, []
        for qi, q in enumerate(queries):
            if qmeta[qi]["kind"] != "cat_not":
                continue
            flt = qmeta[qi]["filter"]
            r = c.post("/collections/%s/points/query" % gcoll, {
                "query": q.tolist(), "limit": 10, "filter": flt, "params": {"hnsw_ef": 16, "explain": True}})
            wide += r["explain"]["strategy"] == "hnsw_acorn_wide"
            for p in r["points"]:
                assert filter_ok(payloads[p["id"]], flt), "cat_not query %d returned id %d outside its filter" % (
                    qi, p["id"])
            want = set(int(x) for x in gt[qi] if x >= 0)
            if want:
                wrec.append(len(want & {p["id"] for p in r["points"]}) / len(want))
        if wrec:
            print("cat_not at hnsw_ef 16: %d of %d by the wide walk, recall@10 %.3f" % (
                wide, len(wrec), sum(wrec) / len(wrec)), flush=True)
            assert wide > 0, "no cat_not query took the wide walk"
            assert sum(wrec) / len(wrec) >= 0.8, "cat_not at hnsw_ef 16: recall@10 %.3f" % (sum(wrec) / len(wrec))
        srv.stop()
    finally:
        srv.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print("test_workload: OK")


if __name__ == "__main__":
    main()
