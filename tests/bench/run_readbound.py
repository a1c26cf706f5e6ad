#!/usr/bin/python3
"""The read bound of exact filtered scans: how fast one core can read the rows a filtered
query matches, next to numpy's gather of the same rows (the filtered benchmark's brute-force
baseline) and fanns' own scans.  Results: docs/benchmarks-readbound.md.

Why: in the filtered benchmark (run_filtered.py) the cells under 1% selectivity are answered
by scanning the match set, and the brute-force baseline scans it too, given the matching ids
for free.  Both read the same few hundred rows, scattered over the collection, once each; the
question this answers is how close to the floor both are, and so whether "2x the baseline"
is within reach of any scan of float32 rows on this machine.

For every filtered query of arxiv_like under 1% selectivity (the same data and queries as
run_filtered.py), the match set is evaluated here with bench_filtered_peers.py's evaluator
(checked against the ground truth as there), then:
  - bench_readbound (C, fanns' fanns_mem allocation and fanns_dist_dot kernel) reads exactly
    those rows, ascending, prefetching the whole of row i + ahead while row i is read, for
    ahead in 0, 2, 4, 8: "read" loads one float of every cache line (nothing but the loads), "dot" computes the
    scan's inner products; the floor of a cell is the best ahead's median ns per row;
  - numpy gathers and scores the same rows as the baseline does (base[ids] @ q, argpartition
    and sort of the 10 best), timed per query, in ns per row;
  - fanns: if a filtered-benchmark run's raw results are given (--fanns-raw, the run_filtered
    raw directory), fanns' whole-query latency per matched row at its fastest ef in the cell,
    counting only the queries it answered by a scan.
All single-threaded; the two programs run one after the other.

usage: run_readbound.py [--dims 384,768] [--reps 5] [--fanns-raw build/bench-filtered] [--out FILE]
"""
import argparse, collections, datetime, json, os, statistics, subprocess, sys, time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_filtered_peers as peers  # noqa: E402
import run_filtered as rf  # noqa: E402

SCAN_BUCKETS = ("<=0.1%", "0.1-1%")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def match_sets(data):
    """(base, queries, [(query index, cell, ids)]) for the filtered queries under 1%."""
    base = np.load(os.path.join(data, "base.npy"))
    base = base / np.linalg.norm(base, axis=1, keepdims=True).clip(1e-30)
    base = np.ascontiguousarray(base, dtype=np.float32)
    qv = np.load(os.path.join(data, "queries.npy")).astype(np.float32)
    qv = qv / np.linalg.norm(qv, axis=1, keepdims=True).clip(1e-30)
    gt = np.load(os.path.join(data, "gt.npy"))
    with open(os.path.join(data, "queries.jsonl")) as f:
        qmeta = [json.loads(x) for x in f]
    with open(os.path.join(data, "base.jsonl")) as f:
        cols = peers.Columns([json.loads(x) for x in f])
    out = []
    for i, m in enumerate(qmeta):
        if m["filter"] is None or rf.bucket(m["selectivity"]) not in SCAN_BUCKETS:
            continue
        mask = peers.filter_mask(cols, m["filter"])
        if abs(mask.mean() - m["selectivity"]) > 1e-9:
            sys.exit(f"query {i}: evaluated selectivity {mask.mean()} != recorded {m['selectivity']}")
        g = gt[i, :10]
        if not mask[g[g >= 0]].all():
            sys.exit(f"query {i}: a ground-truth neighbour fails the evaluated filter")
        cell = (m["kind"], rf.bucket(m["selectivity"]), m["correlation"] or "none")
        out.append((i, cell, np.flatnonzero(mask).astype(np.int32)))
    return base, qv, out


def numpy_gather(base, qv, sets, reps):
    """Median seconds of the baseline's gather per query (all queries in turn, reps times)."""
    lat = collections.defaultdict(list)
    for _ in range(reps):
        for i, _, ids in sets:
            t = time.perf_counter()
            peers.top_k_exact(base, ids, qv[i], 10)
            lat[i].append(time.perf_counter() - t)
    return {i: statistics.median(lat[i]) for i, _, ids in sets}


def fanns_scan(raw, sets):
    """fanns' median seconds per query per ef, for the queries it scanned."""
    path = raw + "-fanns.jsonl"
    if not os.path.exists(path):
        return {}, None
    want = {i: len(ids) for i, _, ids in sets}
    by_ef = collections.defaultdict(dict)
    for line in open(path):
        r = json.loads(line)
        if r.get("type") != "query" or r["qi"] not in want or "scan" not in r["strategy"]:
            continue
        by_ef[r["ef"]][r["qi"]] = statistics.median(r["lat_us"]) * 1e-6
    return by_ef, path


def bench_gather(raw, sets):
    """The filtered benchmark's own brute-force gather: median seconds per query."""
    path = raw + "-peers-bruteforce.jsonl"
    if not os.path.exists(path):
        return {}
    want = {i for i, _, _ in sets}
    out = {}
    for line in open(path):
        r = json.loads(line)
        if r.get("type") == "query" and r["config"] == "gather" and r["qi"] in want:
            out[r["qi"]] = statistics.median(r["lat_us"]) * 1e-6
    return out


def run_dim(a, d):
    data = rf.dataset(a, a.n, d)
    log(f"readbound: {d} dims: evaluating the filters ...")
    base, qv, sets = match_sets(data)
    width = max(len(ids) for _, _, ids in sets)
    ids = np.full((len(sets), width), -1, dtype=np.int32)
    for r, (_, _, s) in enumerate(sets):
        ids[r, :len(s)] = s
    tmp = os.path.join(a.build_dir, f"readbound-ids-{d}.npy")
    np.save(tmp, ids)
    exe = os.path.join(a.build_dir, "tests", "bench", "bench_readbound")
    log(f"readbound: {len(sets)} queries, bench_readbound ...")
    t0 = time.time()
    p = subprocess.run([exe, os.path.join(data, "base.npy"), tmp, "--ahead", "0,2,4,8", "--reps", str(a.reps)],
                       check=True, capture_output=True, text=True)
    c_wall = time.time() - t0
    c = collections.defaultdict(dict)  # (mode, ahead) -> set -> ns/row
    for line in p.stdout.splitlines():
        r = json.loads(line)
        c[(r["mode"], r["ahead"])][r["set"]] = r["ns_per_row"]
    log("readbound: numpy gather ...")
    t0 = time.time()
    npy = numpy_gather(base, qv, sets, a.reps)
    np_wall = time.time() - t0
    raw = os.path.join(a.fanns_raw, f"arxiv-n{a.n}-d{d}") if a.fanns_raw else None
    fan, fan_path = fanns_scan(raw, sets) if raw else ({}, None)
    bg = bench_gather(raw, sets) if raw else {}
    cells = collections.defaultdict(list)
    for r, (i, cell, s) in enumerate(sets):
        cells[cell].append((r, i, len(s)))
    rows = []
    for cell in sorted(cells, key=lambda x: (x[0], rf.BUCKET_ORDER[x[1]], x[2])):
        members = cells[cell]
        floor = {}
        for mode in ("read", "dot"):
            best = None
            for ahead in (0, 2, 4, 8):
                v = statistics.median(c[(mode, ahead)][r] for r, _, _ in members)
                if best is None or v < best[0]:
                    best = (v, ahead)
            floor[mode] = best
        rows_q = {i: n for _, i, n in members}
        g = statistics.median(npy[i] * 1e9 / rows_q[i] for i in rows_q)
        g_us = statistics.median(npy[i] * 1e6 for i in rows_q)
        b = statistics.median(bg[i] * 1e9 / rows_q[i] for i in rows_q) if all(i in bg for i in rows_q) else None
        f = None  # (ns per row, us per query, ef) at the fastest ef that scanned every query
        for ef, per in sorted(fan.items()):
            if all(i in per for i in rows_q):
                v = (statistics.median(per[i] * 1e9 / rows_q[i] for i in rows_q), statistics.median(per[i] * 1e6 for i in rows_q), ef)
                if f is None or v[1] < f[1]:
                    f = v
        rows.append({"cell": cell, "q": len(members), "rows": statistics.mean(rows_q.values()),
                     "read": floor["read"], "dot": floor["dot"], "numpy": g, "numpy_us": g_us, "bench": b, "fanns": f})
    return {"dim": d, "n": a.n, "rows": rows, "c_wall": c_wall, "np_wall": np_wall, "fanns_raw": fan_path}


def report(a, results):
    mi = rf.machine()
    md = ["# Read bound of filtered scans", "",
          f"Generated by `tests/bench/run_readbound.py` ({datetime.date.today().isoformat()}).", "",
          "How fast one core reads the rows a filtered query matches, against numpy's gather of the same "
          "rows (the filtered benchmark's brute-force baseline, `docs/benchmarks-filtered.md`) and fanns' own "
          "scans. Every filtered arxiv_like query under 1% selectivity; its match set evaluated and checked "
          "against the ground truth as in the baseline. Per cell, medians over its queries of ns per matched "
          "row (and, last, microseconds per query):", "",
          "- **read floor**: `bench_readbound` reads exactly those rows (ascending, the whole of row i + ahead "
          "prefetched while row i is read; the best ahead of 0, 2, 4, 8 shown), loading one float of every "
          "cache line: nothing but the loads, on fanns' allocator (2 MiB aligned, huge pages advised);",
          "- **dot floor**: the same with the scan's inner product (`fanns_dist_dot`), without the top-k heap "
          "and the match-set iteration;",
          "- **numpy here**: `base[ids] @ q`, argpartition and sort of the 10 best (the baseline's gather), per "
          "query, run by this harness right after the floors; **numpy in the benchmark**: the same gather as the "
          "filtered benchmark's brute-force baseline measured it, among all its queries (the reference of its "
          "targets; the two differ with what ran before them);",
          "- **fanns**: the whole query (filter evaluation, scan, top 10) per matched row, from the filtered "
          "benchmark's raw results at the fastest ef of the cell, where every query of the cell was scanned;",
          "- **2x needs**: half the benchmark's numpy time per row (this harness's when no benchmark results are "
          "given): what a scan must reach to be twice the baseline. Where it is below the floors, no scan of "
          "float32 rows can reach it on this machine.", "",
          "- Machine: {cpu} ({simd}), {cores} cores, Linux {kernel}; python {python}, numpy {np}; fanns commit "
          "{commit} plus the working tree.".format(np=mi["versions"]["numpy"], **mi),
          f"- Command: `/usr/bin/python3 tests/bench/run_readbound.py {' '.join(sys.argv[1:])}`.", ""]
    for res in results:
        md += [f"## {res['n']} x {res['dim']}", "",
               f"- bench_readbound {res['c_wall']:.1f} s wall, numpy {res['np_wall']:.1f} s wall"
               + (f"; fanns from `{os.path.relpath(res['fanns_raw'], rf.REPO)}`" if res["fanns_raw"] else "") + ".", "",
               "| cell | q | rows per query | read floor (ahead) | dot floor | numpy here | numpy in the benchmark "
               "| 2x needs | fanns | fanns / dot floor | numpy us per query here | fanns us per query (ef) |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["rows"]:
            k, b, corr = r["cell"]
            f, ref = r["fanns"], r["bench"] if r["bench"] is not None else r["numpy"]
            md.append(f"| {k} {b} {corr} | {r['q']} | {r['rows']:.0f} | {r['read'][0]:.0f} ({r['read'][1]}) | "
                      f"{r['dot'][0]:.0f} ({r['dot'][1]}) | {r['numpy']:.0f} | "
                      + (f"{r['bench']:.0f}" if r["bench"] is not None else "-") + f" | {ref / 2:.0f} | "
                      + (f"{f[0]:.0f} | {f[0] / r['dot'][0]:.2f} | {r['numpy_us']:.1f} | {f[1]:.1f} (ef{f[2]}) |"
                         if f else f"- | - | {r['numpy_us']:.1f} | - |"))
        md.append("")
    text = "\n".join(md)
    if a.notes and os.path.exists(a.notes):
        text += "\n" + open(a.notes).read()
    with open(a.out, "w") as f:
        f.write(text)
    log(f"readbound: wrote {a.out}")


def smoke(a):
    """Tiny synthetic data, every configuration, output checked (ctest bench.readbound.smoke)."""
    rng = np.random.default_rng(1)
    os.makedirs(a.smoke, exist_ok=True)
    base = rng.standard_normal((3000, 48)).astype(np.float32)
    sets = [np.sort(rng.choice(3000, size=int(sz), replace=False)).astype(np.int32) for sz in (5, 40, 300)]
    ids = np.full((len(sets), 300), -1, dtype=np.int32)
    for r, s in enumerate(sets):
        ids[r, :len(s)] = s
    np.save(os.path.join(a.smoke, "base.npy"), base)
    np.save(os.path.join(a.smoke, "ids.npy"), ids)
    exe = os.path.join(a.build_dir, "tests", "bench", "bench_readbound")
    p = subprocess.run([exe, os.path.join(a.smoke, "base.npy"), os.path.join(a.smoke, "ids.npy"), "--ahead", "0,4",
                        "--reps", "2"], check=True, capture_output=True, text=True)
    got = [json.loads(x) for x in p.stdout.splitlines()]
    keys = {(r["set"], r["mode"], r["ahead"]) for r in got}
    want = {(s, m, h) for s in range(len(sets)) for m in ("read", "dot") for h in (0, 4)}
    if keys != want or len(got) != len(want) or not all(r["ns_per_row"] > 0 for r in got):
        sys.exit(f"bench_readbound output unexpected: {p.stdout}")
    q = base[0] / np.linalg.norm(base[0])
    lat = numpy_gather(base, np.array([q]), [(0, None, s) for s in sets], 1)
    if not lat[0] > 0:
        sys.exit("numpy gather timing failed")
    log(f"readbound smoke: {len(got)} lines checked")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="384,768")
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--build-dir", default=os.path.join(rf.REPO, "build"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(rf.REPO), "shared"))
    ap.add_argument("--fanns-raw", help="run_filtered.py raw directory whose fanns results to compare")
    ap.add_argument("--notes", help="a markdown file appended to the report")
    ap.add_argument("--out", default=os.path.join(rf.REPO, "docs", "benchmarks-readbound.md"))
    ap.add_argument("--smoke", help="only check the harness on tiny synthetic data in this directory")
    a = ap.parse_args()
    if a.smoke:
        return smoke(a)
    results = [run_dim(a, int(d)) for d in a.dims.split(",")]
    report(a, results)


if __name__ == "__main__":
    main()
