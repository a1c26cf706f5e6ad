#!/usr/bin/python3
"""Benchmark driver for fanns's compressed vector codes (graph traversal over codes and flat
scans, both with float32 rescoring).

For each dataset (the arXiv-like workload from ../shared/workload/arxiv_like.py, cached under
<data-build-dir>/bench-data/ exactly as run_bench.py caches it, searched with its unfiltered
queries against their exact top-10), it runs in separate processes:
  bench_codecs   tests/bench/bench_codecs.c: for each codec config (F16, SQ8 per-dimension
                 and global ranges with int8 or float queries, centred BIN with 1/4/8-bit
                 queries, PQ at x16/x32/x64 through FAISS, optionally OPQ) train, encode all
                 vectors, then per query a flat scan over all codes, recall@10 of the raw
                 estimate and after exact float32 rescoring of the top k*s (s = 1, 2, 4, 8),
                 single-thread QPS of scan + rescoring
  bench_codecs --graph
                 the same program in graph mode: one fanns HNSW graph (index/hnsw.h, M=16,
                 ef_construction=200, built on all cores) per codec whose nodes hold the codes
                 (F16, SQ8 with int8 or float queries on the same graph, BIN with 4-bit
                 queries; PQ is not a graph codec), plus a float32 graph; per oversampling s
                 and ef: k*s candidates with beam max(ef, k*s), exact float32 rescoring,
                 recall@10 raw and rescored, single-thread QPS of traversal + rescoring
  hnswlib        tests/bench/bench_hnswlib.cpp (float32, M=16, ef_construction=200) at a sweep
                 of ef, for the reference single-thread QPS at recall 0.95, in the same run
Searches are single-threaded (OMP_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1 for the FAISS
training too); the hnswlib build uses all cores.

It then checks the issue's targets (int8 traversal + rescoring, binary on 768 dims, PQ at x16
or more), writes <out>/benchmarks-codecs.md, <out>/benchmarks-codecs.png (flat scans:
compression ratio vs recall@10) and <out>/benchmarks-codecs-graph.png (graphs: recall@10 vs
QPS), and keeps the raw results in <build-dir>/bench-codecs-results.json (datasets and modes
not re-run are kept: --graph-only re-runs the graph mode and keeps the stored flat results).

Usage:
  /usr/bin/python3 tests/bench/run_codecs.py                     # 100k x 384 and 100k x 768
  /usr/bin/python3 tests/bench/run_codecs.py --pq-train-n 20000 --data-build-dir build
  /usr/bin/python3 tests/bench/run_codecs.py --graph-only          # graphs only, flat kept
  /usr/bin/python3 tests/bench/run_codecs.py --quick --out /tmp/c  # tiny synthetic sanity run
"""
import argparse, datetime, json, math, os, subprocess, sys, threading, time
from types import SimpleNamespace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import run_bench  # noqa: E402  (dataset cache, hnswlib runner, machine info, QPS interpolation)

DEFAULT_CONFIGS = "f32,f16,sq8-q8,sq8-q32,sq8g-q8,sq8g-q32,bin-q1,bin-q4,bin-q8,pq16,pq32,pq64"
QUICK_CONFIGS = DEFAULT_CONFIGS + ",opq64"
GRAPH_CONFIGS = "f32,f16,sq8-q8,sq8-q32,bin-q4"
TARGET = 0.95


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def build(a):
    subprocess.run(["cmake", "-S", REPO, "-B", a.build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True,
                   stdout=subprocess.DEVNULL)
    for t in ("bench_codecs", "bench_hnswlib"):
        r = subprocess.run(["cmake", "--build", a.build_dir, "--target", t, "-j", str(os.cpu_count())])
        if r.returncode != 0:
            log(f"warning: building {t} failed")


def quick_dataset(a):
    """A tiny clustered unit-vector set with exact cosine top-10 (numpy brute force)."""
    path = os.path.join(a.out, "quick-data")
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(7)
    n, d, nq, c = 3000, 64, 50, 30
    cent = rng.standard_normal((c, d))
    lab = rng.integers(c, size=n + nq)
    x = cent[lab] + 0.6 * rng.standard_normal((n + nq, d)) + 0.8  # shared offset: anisotropic
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)
    base, q = x[:n], x[n:]
    gt = np.argsort(-(q @ base.T), axis=1, kind="stable")[:, :10].astype(np.int32)
    files = {k: os.path.join(path, f"{k}.npy") for k in ("base", "queries", "gt")}
    np.save(files["base"], base)
    np.save(files["queries"], q)
    np.save(files["gt"], gt)
    return dict(files, name=f"synthetic-n{n}-d{d}", dir=path, n=n, dim=d)


def run_codecs_bin(a, ds):
    exe = os.path.join(a.build_dir, "tests", "bench", "bench_codecs")
    if not os.path.exists(exe):
        sys.exit(f"{exe} not built")
    cmd = [exe, "--base", ds["base"], "--queries", ds["queries"], "--gt", ds["gt"], "--configs", a.configs,
           "--train-n", str(a.train_n), "--pq-train-n", str(a.pq_train_n), "--reps", str(a.reps),
           "--min-time", str(a.min_time), "--oversampling", a.oversampling]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    log(f"{ds['name']}: running bench_codecs ({a.configs}) ...")
    t0 = time.time()
    res = {"codecs": [], "errors": []}
    # stream stdout so progress shows; FAISS's k-means warnings on stderr go to a file
    errf = os.path.join(a.build_dir, "bench-codecs-stderr.txt")
    with open(errf, "w") as ef:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=ef, text=True, env=env)
        for line in p.stdout:
            if not line.startswith("{"):
                continue
            j = json.loads(line)
            if j["kind"] == "codec":
                res["codecs"].append(j)
                log(f"  {j['codec']:9s} {j['bytes_per_vector']:5d} B x{j['ratio']:<6.1f} train {j['train_s']:6.1f} s "
                    f"encode {j['encode_s']:5.1f} s  recall raw {j['recall_raw']:.3f} rescored "
                    + " ".join(f"x{s}:{r:.3f}" for s, r in zip(j["oversampling"], j["recall"]))
                    + f"  QPS x4 {j['qps'][2]:.0f}  ({time.time() - t0:.0f} s)")
            elif j["kind"] == "error":
                res["errors"].append(j["codec"])
            else:
                res[j["kind"]] = j
        rc = p.wait()
    if rc != 0:
        tail = [x for x in open(errf).read().splitlines() if not x.startswith("WARNING clustering")][-20:]
        log(f"bench_codecs exit {rc}:\n" + "\n".join(tail))
        res["exit"] = rc
    res["wall_s"] = round(time.time() - t0, 1)
    return res


def run_graph_bin(a, ds):
    exe = os.path.join(a.build_dir, "tests", "bench", "bench_codecs")
    if not os.path.exists(exe):
        sys.exit(f"{exe} not built")
    cmd = [exe, "--graph", "--base", ds["base"], "--queries", ds["queries"], "--gt", ds["gt"],
           "--configs", a.graph_configs, "--train-n", str(a.train_n), "--reps", str(a.reps),
           "--min-time", str(a.min_time), "--ef", a.graph_efs, "--oversampling", a.graph_oversampling,
           "--bin-oversampling", a.graph_bin_oversampling, "--bin-ef", a.graph_bin_efs, "--m", "16", "--efc", "200", "--threads", "0"]
    log(f"{ds['name']}: running bench_codecs --graph ({a.graph_configs}) ...")
    t0 = time.time()
    res = {"graphs": [], "errors": []}
    errf = os.path.join(a.build_dir, "bench-codecs-graph-stderr.txt")
    with open(errf, "w") as ef:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=ef, text=True)
        for line in p.stdout:
            if not line.startswith("{"):
                continue
            j = json.loads(line)
            if j["kind"] == "graph":
                res["graphs"].append(j)
                best = max(j["points"], key=lambda x: x["recall"])
                log(f"  graph {j['codec']:8s} {j['bytes_per_vector']:5d} B build {j['build_s']:6.1f} s"
                    f"{' (reused)' if j['graph_reused'] else ''} index {j['index_bytes'] / 2**20:6.1f} MiB; best "
                    f"recall {best['recall']:.3f} (x{best['os']} beam {best['beam']})  ({time.time() - t0:.0f} s)")
            elif j["kind"] == "error":
                res["errors"].append(j["codec"])
            else:
                res[j["kind"]] = j
        rc = p.wait()
    if rc != 0:
        log(f"bench_codecs --graph exit {rc}:\n" + "\n".join(open(errf).read().splitlines()[-20:]))
        res["exit"] = rc
    res["wall_s"] = round(time.time() - t0, 1)
    return res


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a run is going."""

    def __init__(self, every=5.0):
        self.every, self.samples, self.stop_ev = every, [], threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            self.samples.append(os.getloadavg()[0])
            if self.stop_ev.wait(self.every):
                return

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join()

    def summary(self):
        x = self.samples or [os.getloadavg()[0]]
        return {"min": round(min(x), 2), "mean": round(sum(x) / len(x), 2), "max": round(max(x), 2), "samples": len(x)}


def run_hnswlib(a, ds):
    ns = SimpleNamespace(efs=a.hnsw_efs, reps=a.reps, min_time=a.min_time, build_dir=a.build_dir, churn=False)
    return run_bench.run_system(ns, "hnswlib", ds)


# ---------------------------------------------------------------------------------------------
# Analysis


def first_os_reaching(c, r):
    for s, rec, q in zip(c["oversampling"], c["recall"], c["qps"]):
        if rec >= r:
            return s, rec, q
    return None, None, None


def summarize(ds):
    r = ds["results"]
    h = r.get("hnswlib") or {}
    ref = None
    if h.get("search"):
        v, mark = run_bench.qps_at(h["search"], TARGET)
        ref = {"qps": v, "mark": mark}
    ds["ref"] = ref
    f32 = ds["dim"] * 4
    codecs = (r.get("codecs") or {}).get("codecs", [])
    for c in codecs:
        c["frac_of_f32"] = c["bytes_per_vector"] / f32
        s, rec, q = first_os_reaching(c, TARGET)
        c["os95"], c["recall95"], c["qps95"] = s, rec, q
        c["qps95_vs_hnswlib"] = q / ref["qps"] if q and ref and ref["qps"] else None
    t = {}
    by = {c["codec"]: c for c in codecs}

    def verdict(cands, recall_floor, max_frac, qps_factor):
        best = None
        for name in cands:
            c = by.get(name)
            if not c:
                continue
            for s, rec, q in zip(c["oversampling"], c["recall"], c["qps"]):
                if rec >= recall_floor:
                    ok_mem = c["frac_of_f32"] <= max_frac + 1e-12
                    ok_qps = qps_factor is None or (ref and ref["qps"] and q >= qps_factor * ref["qps"])
                    cand = {"codec": name, "os": s, "recall": rec, "qps": q, "frac": c["frac_of_f32"],
                            "mem_ok": ok_mem, "qps_ok": bool(ok_qps),
                            "qps_ratio": (q / ref["qps"]) if ref and ref["qps"] else None}
                    if best is None or (cand["mem_ok"], cand["qps_ok"], cand["qps"]) > \
                            (best["mem_ok"], best["qps_ok"], best["qps"]):
                        best = cand
                    break
        return best

    t["int8"] = verdict(["sq8-q8", "sq8g-q8"], TARGET, 0.3, 2.0)
    t["binary"] = verdict(["bin-q1", "bin-q4", "bin-q8"], TARGET, 1 / 24, None) if ds["dim"] >= 768 else "n/a"
    t["pq"] = verdict(["pq16", "pq32", "pq64", "opq16", "opq32", "opq64"], 0.9, 1 / 16, None)
    t["pq_all"] = [f"{n} x{s} ({rec:.3f})" for n in ("pq16", "pq32", "pq64", "opq16", "opq32", "opq64") if n in by
                   for s, rec in [first_os_reaching(by[n], 0.9)[:2]] if s]
    ds["targets"] = t


def graph_curves(g):
    """{oversampling: points sorted by beam} of one graph config."""
    cur = {}
    for p in g["points"]:
        cur.setdefault(p["os"], []).append(p)
    return {s: sorted(v, key=lambda p: p["beam"]) for s, v in sorted(cur.items())}


def summarize_graph(ds):
    """QPS at recall 0.95 per (graph config, oversampling) curve, ratios to hnswlib of the same
    run, and the graph-path verdicts on the targets."""
    r = ds["results"]
    gr = r.get("graph") or {}
    h = r.get("graph_hnswlib") or {}
    ref = None
    if h.get("search"):
        v, mark = run_bench.qps_at(h["search"], TARGET)
        ref = {"qps": v, "mark": mark}
    ds["graph_ref"] = ref
    rows = []
    for g in gr.get("graphs", []):
        for s, pts in graph_curves(g).items():
            # the curve's x is the beam actually used, max(ef, k*s)
            v, mark = run_bench.qps_at([dict(p, ef=p["beam"]) for p in pts], TARGET)
            b = max(pts, key=lambda p: p["recall"])
            rows.append({"codec": g["codec"], "family": g["family"], "query_bits": g["query_bits"], "os": s,
                         "bytes": g["bytes_per_vector"], "frac": g["vector_frac"], "qps95": v, "mark": mark,
                         "ratio": v / ref["qps"] if v and ref and ref["qps"] and not ref["mark"] else None,
                         "max_recall": b["recall"], "max_recall_beam": b["beam"], "points": pts})
    ds["graph_rows"] = rows
    t = {}
    if not rows:
        ds["graph_targets"] = t
        return

    def best(fams, frac_max, ratio_min):
        c = [x for x in rows if x["family"] in fams and x["qps95"]]
        if not c:
            return None
        # prefer rows meeting both bounds, then the fastest
        key = lambda x: (x["frac"] <= frac_max + 1e-12, ratio_min is None or (x["ratio"] or 0) >= ratio_min,
                         x["qps95"])
        x = max(c, key=key)
        return dict(x, mem_ok=x["frac"] <= frac_max + 1e-12,
                    qps_ok=ratio_min is None or (x["ratio"] is not None and x["ratio"] >= ratio_min))

    t["int8"] = best(("sq8",), 0.3, 2.0)
    t["binary"] = best(("bin",), 1 / 24, None)
    t["bin_max"] = max((x for x in rows if x["family"] == "bin"), key=lambda x: x["max_recall"], default=None)
    ds["graph_targets"] = t


# ---------------------------------------------------------------------------------------------
# Report


def plot(all_ds, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (apt-get install python3-matplotlib): no plot")
        return False
    dss = sorted(all_ds.values(), key=lambda d: (d["n"], d["dim"]))
    fig, axes = plt.subplots(1, len(dss), figsize=(6.2 * len(dss), 5), squeeze=False)
    colours = {"f32": "black", "f16": "tab:gray", "sq8": "tab:blue", "bin": "tab:red", "pq": "tab:green",
               "opq": "tab:olive"}
    for ax, ds in zip(axes[0], dss):
        seen = {}
        smax = 1
        for c in (ds["results"].get("codecs") or {}).get("codecs", []):
            col = colours.get(c["family"], "tab:purple")
            # configs sharing a ratio (sq8 variants, bin query precisions) are spread apart a little
            i = seen[round(c["ratio"], 2)] = seen.get(round(c["ratio"], 2), -1) + 1
            x = c["ratio"] * 1.07 ** i
            smax = max([smax] + c["oversampling"])
            rs = [c["recall_raw"]] + c["recall"]
            ax.plot([x] * len(rs), rs, color=col, alpha=0.35, linewidth=1)
            ax.plot([x], [c["recall_raw"]], marker="o", markerfacecolor="white", color=col, linestyle="none")
            i4 = c["oversampling"].index(4) if 4 in c["oversampling"] else -1
            ax.plot([x], [c["recall"][i4]], marker="o", color=col, linestyle="none")
            ax.annotate(c["codec"], (x, c["recall_raw"]), textcoords="offset points", xytext=(3, -10 - 7 * (i % 3)),
                        fontsize=7, color=col)
        ax.axhline(0.95, color="gray", linestyle="--", linewidth=0.8)
        ax.axhline(0.90, color="gray", linestyle=":", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("compression ratio vs float32 (log2)")
        ax.set_ylabel("recall@10 (flat scan)")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{ds['name']}: {ds['n']:,} x {ds['dim']}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.plot([], [], marker="o", markerfacecolor="white", color="gray", linestyle="none", label="raw (codes only)")
        ax.plot([], [], marker="o", color="gray", linestyle="none", label="rescored, oversampling x4")
        ax.plot([], [], color="gray", alpha=0.35, label=f"rescoring x1 .. x{smax}: range")
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_graph(all_ds, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (apt-get install python3-matplotlib): no plot")
        return False
    dss = sorted((d for d in all_ds.values() if (d["results"].get("graph") or {}).get("graphs")),
                 key=lambda d: (d["n"], d["dim"]))
    if not dss:
        return False
    fig, axes = plt.subplots(1, len(dss), figsize=(6.8 * len(dss), 5.6), squeeze=False)
    colours = {"f32": "black", "f16": "tab:gray", "sq8-q8": "tab:blue", "sq8-q32": "tab:cyan", "bin": "tab:red"}
    styles = {1: ("-", "o"), 2: ("--", "s"), 4: (":", "^"), 8: ("-.", "v"), 16: ((0, (5, 1)), "D"),
              32: ((0, (1, 1)), "x")}
    for ax, ds in zip(axes[0], dss):
        h = ds["results"].get("graph_hnswlib") or {}
        if h.get("search"):
            pts = sorted(h["search"], key=lambda p: p["ef"])
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], color="tab:orange", marker="*",
                    linewidth=2, label="hnswlib float32")
        for row in ds.get("graph_rows", []):
            col = colours.get(row["codec"], colours.get(row["family"], "tab:purple"))
            ls, mk = styles.get(row["os"], ("-", "."))
            pts = row["points"]
            lab = "fanns float32 graph" if row["family"] == "f32" else f"{row['codec']} x{row['os']}"
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], color=col, linestyle=ls, marker=mk,
                    markersize=4, linewidth=1.2, label=lab)
        ax.axvline(TARGET, color="gray", linestyle="--", linewidth=0.8)
        ref = ds.get("graph_ref")
        if ref and ref["qps"]:
            ax.axhline(2 * ref["qps"], color="tab:orange", linestyle=":", linewidth=0.8)
            ax.annotate("2x hnswlib @0.95", (0.5, 2 * ref["qps"]), xycoords=("axes fraction", "data"), fontsize=7,
                        color="tab:orange", textcoords="offset points", xytext=(0, 3))
        ax.set_yscale("log")
        ax.set_xlim(0.5, 1.002)
        ax.set_xlabel("recall@10 (after float32 rescoring)")
        ax.set_ylabel("queries per second, one thread (log)")
        ax.set_title(f"{ds['name']}: {ds['n']:,} x {ds['dim']}: graphs over codes", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def fmt(v, nd=0):
    return "n/a" if v is None else f"{v:,.{nd}f}"


def mib(b):
    return None if b is None else b / 2**20


def target_line(name, v, ds):
    if v == "n/a":
        return f"- {name}: not applicable at {ds['dim']} dims."
    if not v:
        return f"- {name}: **not met**: no configuration reaches the recall floor at oversampling up to x8."
    parts = [f"{v['codec']} at oversampling x{v['os']}: recall {v['recall']:.3f}",
             f"vector part {v['frac']:.3f} of float32 ({'within' if v['mem_ok'] else '**over**'} the bound)"]
    if "int8" in name:
        parts.append(f"flat-scan QPS {v['qps']:,.0f} = {fmt(v['qps_ratio'], 2)}x hnswlib float32 at 0.95 "
                     f"({'met' if v['qps_ok'] else '**not met** by a flat scan; see the graph section'})")
    ok = v["mem_ok"] and v["qps_ok"]
    return f"- {name}: {'**met**' if ok else '**not met**'} by a flat scan: " + "; ".join(parts) + "."


def graph_target_lines(ds):
    """The issue's targets as measured on the graph path (PQ: flat scan only)."""
    t, ft = ds.get("graph_targets") or {}, ds.get("targets") or {}
    ref = ds.get("graph_ref")
    L = []
    v = t.get("int8")
    name = "int8 traversal + rescoring (recall@10 >= 0.95, QPS >= 2x hnswlib float32 at 0.95, vector part <= 0.3x)"
    if not ds.get("graph_rows"):
        L.append(f"- {name}: graph mode not run.")
    elif not v:
        L.append(f"- {name}: **not met**: no int8 graph curve reaches recall {TARGET}.")
    else:
        ok = v["mem_ok"] and v["qps_ok"]
        L.append(f"- {name}: **{'met' if ok else 'not met'}**: {v['codec']} graph (query {v['query_bits']} bits) at "
                 f"oversampling x{v['os']}: {v['mark']}{v['qps95']:,.0f} QPS at recall {TARGET} = "
                 f"{v['mark']}{fmt(v['ratio'], 2)}x hnswlib's {fmt(ref and ref['qps'])} "
                 f"({'at least 2x' if v['qps_ok'] else '**below 2x**'}); vector part {v['frac']:.3f} of float32 "
                 f"({'within' if v['mem_ok'] else '**over**'} 0.3).")
    name = "binary + rescoring on 768 dims (recall@10 >= 0.95, vector part <= 1/24 = 0.042)"
    v, bm = t.get("binary"), t.get("bin_max")
    fb = ft.get("binary") if isinstance(ft.get("binary"), dict) else None
    flat = (f" The flat scan over the same codes reaches it: {fb['codec']} at x{fb['os']}, recall {fb['recall']:.3f}, "
            f"{fb['qps']:,.0f} QPS (stored flat results below)." if fb else "")
    if ds["dim"] < 768:
        if v:
            L.append(f"- binary (informative at {ds['dim']} dims; the target is for 768): {v['codec']} graph at "
                     f"x{v['os']}: {v['mark']}{v['qps95']:,.0f} QPS at recall {TARGET} "
                     f"({v['mark']}{fmt(v['ratio'], 2)}x hnswlib), vector part {v['frac']:.3f}.")
        elif bm:
            L.append(f"- binary (informative at {ds['dim']} dims): the graph does not reach {TARGET} at any ef tried; "
                     f"best {bm['max_recall']:.3f} ({bm['codec']} x{bm['os']}, beam {bm['max_recall_beam']}).")
    elif not ds.get("graph_rows"):
        L.append(f"- {name}: graph mode not run.")
    elif v:
        ok = v["mem_ok"]
        L.append(f"- {name}: **{'met' if ok else 'not met'}** on the graph: {v['codec']} at oversampling x{v['os']}: "
                 f"{v['mark']}{v['qps95']:,.0f} QPS at recall {TARGET} ({v['mark']}{fmt(v['ratio'], 2)}x hnswlib); "
                 f"vector part {v['frac']:.3f} of float32 ({'within' if ok else '**over**'} the bound).")
    elif bm:
        L.append(f"- {name}: **not met on the graph**: no binary curve reaches {TARGET} at any ef tried (best "
                 f"{bm['max_recall']:.3f}: {bm['codec']} x{bm['os']}, beam {bm['max_recall_beam']}); vector part "
                 f"{bm['frac']:.3f}." + flat)
    else:
        L.append(f"- {name}: binary graph not run.")
    pq = ft.get("pq")
    name = "PQ at x16 or more + rescoring (recall@10 >= 0.9)"
    if pq:
        L.append(f"- {name}: **{'met' if pq['mem_ok'] else 'not met'}** by the flat scan (PQ lives in FAISS and is not "
                 f"a graph codec): {pq['codec']} at x{pq['os']}: recall {pq['recall']:.3f}, vector part "
                 f"{pq['frac']:.3f}; all that reach 0.9: {', '.join(ft.get('pq_all') or [])}.")
    elif (ds["results"].get("codecs") or {}).get("codecs"):
        L.append(f"- {name}: **not met**: no PQ configuration reaches 0.9 in the flat scan.")
    return L


def graph_section(ds):
    r, gm = ds["results"], ds.get("graph_meta") or {}
    gr = r.get("graph") or {}
    info = gr.get("info") or {}
    m = gm.get("machine") or ds["machine"]
    h = r.get("graph_hnswlib") or {}
    ref = ds.get("graph_ref")
    ld = gm.get("load") or {}
    L = [f"### Graphs: {ds['name']}: {ds['n']:,} vectors x {ds['dim']} dims", "",
         f"- Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; 1-minute load "
         f"average sampled every 5 s during this dataset's run: min {ld.get('min', '?')}, mean {ld.get('mean', '?')}, "
         f"max {ld.get('max', '?')} (the machine is shared with other jobs; hnswlib ran under the same load)",
         f"- Kernels selected at run time: distance {info.get('dist_isa', '?')}; codecs {info.get('codec_isa', '?')}",
         f"- Graphs: M=16, ef_construction=200, built on {info.get('threads', '?')} threads; codecs trained on "
         f"{info.get('train_n', '?')} vectors (strided sample); searches single-threaded",
         f"- Queries: {info.get('nq', '?')} unfiltered, k=10; date {gm.get('date', '?')}; bench_codecs --graph wall time "
         f"{gr.get('wall_s', '?')} s",
         f"- Command: `{gm.get('command', '?').replace(REPO + os.sep, '')}`", ""]
    if ref:
        pts = ", ".join(f"ef {p['ef']}: {p['recall']:.3f} / {p['qps']:,.0f}" for p in h["search"])
        L += [f"hnswlib float32 reference (same run): **{ref['mark']}{fmt(ref['qps'])} QPS at recall {TARGET}** "
              f"(recall / QPS per ef: {pts}; build {h['build']['build_s']:.1f} s on {h['build']['threads']} threads, "
              f"index {fmt(mib(h['build']['index_bytes']), 0)} MiB).", ""]
    else:
        L += ["hnswlib reference: not run.", ""]
    L += ["Per graph: bytes of one code (the in-RAM vector part per point), that relative to float32, the whole",
          "index (graph links + codes, `fanns_hnsw_memory`), training, encoding (all vectors, one thread) and",
          "build time, and per oversampling the QPS at recall 0.95 interpolated between beams (`>=` when even",
          "the smallest beam is above 0.95), its ratio to hnswlib's, and the best recall reached.", "",
          "| graph | query bits | bytes/vec | vs float32 | index MiB | train s | encode s | build s | oversampling "
          "| QPS @0.95 | vs hnswlib @0.95 | best recall (beam) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    byname = {g["codec"]: g for g in gr.get("graphs", [])}
    for row in ds.get("graph_rows", []):
        g = byname[row["codec"]]
        build_s = f"{g['build_s']:.1f}" + (" (same graph)" if g["graph_reused"] else "")
        L.append(f"| {row['codec']} | {row['query_bits']} | {row['bytes']} | {row['frac']:.3f} | "
                 f"{mib(g['index_bytes']):.1f} | {g['train_s']:.2f} | {g['encode_s']:.2f} | {build_s} | x{row['os']} | "
                 + (f"{row['mark']}{row['qps95']:,.0f} | {row['mark']}{fmt(row['ratio'], 2)} |" if row["qps95"]
                    else "not reached | - |") + f" {row['max_recall']:.3f} ({row['max_recall_beam']}) |")
    if gr.get("errors"):
        L += ["", "Failed graph configurations: " + ", ".join(gr["errors"]) + "."]
    efs = sorted({p["ef"] for row in ds.get("graph_rows", []) for p in row["points"]})
    L += ["", "Every point: recall@10 raw (the graph's own top 10 by estimated distance) -> after rescoring the",
          "k*s candidates with float32, and single-thread QPS (traversal + rescoring, best pass). Columns are the",
          "ef asked for; the beam is max(ef, k*s), so small ef at large oversampling collapse into one point",
          "(shown once, at the first such ef).", "",
          "| graph | os | " + " | ".join(f"ef {e}" for e in efs) + " |", "|---|---:|" + "---|" * len(efs)]
    for row in ds.get("graph_rows", []):
        by = {p["ef"]: p for p in row["points"]}
        L.append(f"| {row['codec']} | x{row['os']} | " + " | ".join(
            (f"{by[e]['recall_raw']:.3f}->{by[e]['recall']:.3f} / {by[e]['qps']:,.0f}" if e in by else "")
            for e in efs) + " |")
    L += ["", "Resident memory: the process's RSS after each graph (it also holds the float32 base and query",
          "arrays used for rescoring and recall, and one graph at a time), and the growth while the graph was built:",
          "", "| graph | RSS growth during build MiB | process RSS MiB |", "|---|---:|---:|"]
    for g in gr.get("graphs", []):
        L.append(f"| {g['codec']} | " + ("(same graph)" if g["graph_reused"] else f"{mib(g['rss_graph_delta_bytes']):.0f}")
                 + f" | {mib(g['rss_bytes']):.0f} |")
    mem = gr.get("memory") or {}
    L += ["", f"bench_codecs --graph peak RSS {fmt(mib(mem.get('peak_rss_bytes')), 0)} MiB; RSS after loading the data "
              f"{fmt(mib(info.get('rss_after_load_bytes')), 0)} MiB.", ""]
    return L


def graph_notes(dss):
    """Observations on the graph runs, written from the data."""
    N = []
    runs = [(d, {g["codec"]: g for g in (d["results"].get("graph") or {}).get("graphs", [])}) for d in dss]
    runs = [(d, g) for d, g in runs if g]
    if not runs:
        return N
    bt = "; ".join(f"{d['dim']} dims: " + ", ".join(f"{n} {g['build_s']:.0f} s" for n, g in gs.items()
                                                     if not g["graph_reused"]) for d, gs in runs)
    N.append("Graph build times differ by codec (2 threads, shared machine): " + bt + ". Construction compares "
             "the inserted float vector with codes decoded to floats (the neighbour-selection heuristic decodes "
             "every code it compares), so a code's decode cost adds to its build time on top of the smaller "
             "nodes' memory traffic; searches do not decode, they run on the codes with the prepared query.")
    sat = []
    for d, gs in runs:
        for name in ("sq8-q8", "f16", "bin-q4"):
            g = gs.get(name)
            if g:
                top = max((p for p in g["points"] if p["os"] == 1), key=lambda p: p["beam"], default=None)
                if top:
                    sat.append(f"{name} {top['recall_raw']:.3f} at {d['dim']} dims")
    diffs = []
    for d, gs in runs:
        f = {p["ef"]: p["recall"] for p in (gs.get("f32") or {}).get("points", [])}
        for name in ("f16", "sq8-q8"):
            q = {p["ef"]: p["recall"] for p in (gs.get(name) or {}).get("points", []) if p["os"] == 2}
            common = [e for e in q if e in f and e >= 64]
            if common:
                diffs.append((max(f[e] - q[e] for e in common), name, d["dim"]))
    track = ""
    if diffs:
        worst = max(diffs)
        track = (" Graph quality: at every ef >= 64 the rescored recall of the f16 and sq8-q8 graphs at x2 is at "
                 f"most {max(worst[0], 0):.3f} below the float32 graph's at the same ef (worst: {worst[1]} at "
                 f"{worst[2]} dims), i.e. building on codes " +
                 ("did not visibly degrade the graph." if worst[0] <= 0.01 else "cost some graph quality."))
    if sat:
        N.append("The raw recall (codes only, no rescoring) levels off as the beam grows, at the codec's own "
                 "accuracy (largest beam, x1: " + ", ".join(sat) + "): past that point a wider beam does not "
                 "help and only oversampling does." + track)
    N.append("At oversampling x32 every ef up to 320 gives the same beam (max(ef, k*s) = 320), so the binary x32 "
             "curve of this run is one point and its QPS at 0.95 is a lower bound (`>=`: a narrower beam cannot "
             "be asked for at x32). `run_codecs.py --graph-bin-efs 16,...,256,384,512` measures a longer curve.")
    N.append("\"RSS growth during build\" can read 0 when the allocator re-uses the memory the previous graph "
             "freed; the index MiB column (`fanns_hnsw_memory`) is the graph's own size.")
    return N


def write_markdown(all_ds, a, path):
    dss = sorted(all_ds.values(), key=lambda d: (d["n"], d["dim"]))
    L = ["# Benchmarks: compressed vector codes (graphs over codes and flat scans, float32 rescoring)", "",
         "Written by `tests/bench/run_codecs.py` (do not edit by hand; re-run it). Workload: the arXiv-like",
         "generator in `../shared/workload/arxiv_like.py` (unit vectors, anisotropic, clustered by topic),",
         "its unfiltered queries (`filter == null`) against the exact cosine top-10 from `gt.npy`.",
         "Everything is measured in-process by `tests/bench/bench_codecs.c` (one process per dataset and mode,",
         "searches on one thread), next to hnswlib float32 (M=16, ef_construction=200) run in the same session.",
         "\"vector part\" is the bytes the codes take per vector relative to float32 (the in-RAM vector part);",
         "the float32 vectors needed for rescoring are assumed to be outside RAM (on disk / in LMDB).", "",
         "## Targets", "",
         "The issue's targets, checked on the real path: graph traversal over the codes (`index/hnsw.h` with",
         "`params.codec`) + float32 rescoring; PQ, which is not a graph codec, by the flat scan.", ""]
    for ds in dss:
        L += [f"{ds['name']} ({ds['n']:,} x {ds['dim']}):", ""] + graph_target_lines(ds) + [""]
    L += ["## Graph traversal over codes", "",
          "What is measured (`bench_codecs --graph`): one fanns HNSW graph per codec, its nodes holding the codes",
          "instead of float32 vectors (M=16, ef_construction=200, built with `fanns_hnsw_insert_many` on all",
          "cores; construction searches on the codes against the float vector being inserted). `f32` is the",
          "same graph code with float32 nodes, the same-binary reference. `f16` half precision (float query);",
          "`sq8-q8` 8-bit per-dimension scalar codes with the query quantised to int8 (the integer u8 x i8",
          "kernel), `sq8-q32` the **same graph** re-opened with float queries; `bin-q4` centred 1-bit codes",
          "with RaBitQ-style scaling and a 4-bit query. For each oversampling s and ef, a query asks the graph",
          "for k*s candidates with beam max(ef, k*s) (estimated distances on the codes), rescores them with",
          "exact float32 distances (`index/distance.h`) and keeps the best 10. QPS is whole single-thread",
          "passes over the queries (best pass) of traversal + rescoring; recall@10 comes from an untimed pass.",
          "QPS at recall 0.95 is interpolated (log QPS linear in recall) between consecutive beams of one",
          "(graph, oversampling) curve, as `benchmarks.md` does for hnswlib.", "",
          "![recall@10 vs QPS, graphs over codes](benchmarks-codecs-graph.png)", ""]
    for ds in dss:
        if (ds["results"].get("graph") or {}).get("graphs"):
            L += graph_section(ds)
    L += ["## Flat scans over codes", ""]
    flat_note = [ds for ds in dss if ds.get("flat_date")]
    if flat_note:
        L += ["These results come from an earlier run than the graph section (" +
              "; ".join(f"{d['name']}: {d['flat_date']}" for d in flat_note) +
              "), stored in the results file and re-used with `--graph-only`: a flat run over every codec",
              "(PQ training included) costs several more minutes per dataset on this shared machine. Their",
              "\"vs hnswlib\" ratios use the hnswlib reference of that earlier run.", ""]
    L += ["What is measured (`tests/bench/bench_codecs.c`, one process, one thread): each codec is trained on a",
         "strided sample of the base vectors and encodes all of them. Every query then scans **all** codes",
         "(a flat scan, no graph), keeps the best k*s_max by estimated distance, and reports recall@10 of",
         "the estimated top 10 (\"raw\") and of the exact float32 re-ranking of the first k*s candidates",
         "(oversampling s = 1, 2, 4, ...; rescoring uses `index/distance.h`). QPS is whole passes over the",
         "queries (best pass), charging every oversampling the same scan plus its own rescoring.",
         "Codecs: `f32` is the exact float32 flat scan (reference); `f16` half precision; `sq8` 8-bit scalar",
         "quantization with per-dimension ranges (`sq8`) or one global range like Qdrant (`sq8g`), queried",
         "with int8 queries (`-q8`, the integer u8 x i8 kernel) or float queries (`-q32`); `bin` centred",
         "1-bit codes with RaBitQ-style scaling, queried by Hamming distance (`-q1`) or with a 4/8-bit query",
         "(`-q4`, `-q8`); `pqN` FAISS product quantization (8-bit sub-quantizers) at compression xN, its",
         "distances by the standard asymmetric table scan (tables recovered from the FAISS decoder and",
         "checked against decode); `opqN` the same after a learned rotation (OPQ).",
         "The codec's own state (ranges, centre, codebooks) is listed separately and is independent of the",
         "number of points.", "",
         "A flat scan touches every code, so it is not expected to beat a float32 HNSW graph on QPS at 100k",
         "points; these numbers say what each code costs per vector and how much recall it keeps. The flat-scan",
         "recall after rescoring is close to an upper bound for a graph search that gathers the same number of",
         "candidates from the same codes.", ""]
    L += ["![compression ratio vs recall@10](benchmarks-codecs.png)", ""]
    for ds in dss:
        r, m = ds["results"], ds["machine"]
        cr = r.get("codecs") or {}
        if not cr.get("codecs"):
            continue
        info = cr.get("info") or {}
        h = r.get("hnswlib") or {}
        ref = ds.get("ref")
        L += [f"### Flat: {ds['name']}: {ds['n']:,} vectors x {ds['dim']} dims", "",
              f"- Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; 1-minute load "
              f"average at the start {m.get('loadavg_at_start', '?')}, at the end {ds.get('loadavg_at_end', '?')} "
              "(the machine is shared: absolute QPS are depressed by other work; hnswlib ran under the same load)",
              f"- Kernels selected at run time: distance {info.get('dist_isa', '?')}; codecs {info.get('codec_isa', '?')}",
              f"- Training sample: {info.get('train_n', '?')} vectors for SQ8/BIN, {info.get('pq_train_n', '?')} for "
              "PQ/OPQ (0 = all; a strided sample; FAISS trains 256 centroids per sub-quantizer, single-threaded)",
              f"- Queries: {info.get('nq', '?')} unfiltered, k=10; date {ds['date']}; bench_codecs wall time "
              f"{cr.get('wall_s', '?')} s",
              f"- Command: `{ds['command'].replace(REPO + os.sep, '')}`", ""]
        if ref:
            pts = ", ".join(f"ef {p['ef']}: {p['recall']:.3f} / {p['qps']:,.0f}" for p in h["search"])
            L += [f"hnswlib float32 reference: **{ref['mark']}{fmt(ref['qps'])} QPS at recall {TARGET}** "
                  f"(single thread; recall / QPS per ef: {pts}; build {h['build']['build_s']:.1f} s on "
                  f"{h['build']['threads']} threads, index {fmt(mib(h['build']['index_bytes']), 0)} MiB).", ""]
        else:
            L += ["hnswlib reference: not run.", ""]
        oss = sorted({s for c in cr.get("codecs", []) for s in c["oversampling"]})
        L += ["Recall@10 raw and after rescoring at oversampling x1, x2, ...; QPS single thread (scan + rescoring).", "",
              "| codec | bytes/vec | ratio | train s | encode s | recall raw | " + " | ".join(f"x{s}" for s in oss) +
              " | QPS raw | QPS x4 | first s >= 0.95 | QPS there | vs hnswlib @0.95 |",
              "|---|" + "---:|" * (5 + len(oss) + 5)]
        for c in cr.get("codecs", []):
            rec = dict(zip(c["oversampling"], c["recall"]))
            qps = dict(zip(c["oversampling"], c["qps"]))
            name = c["codec"] + (f" ({c['factory']})" if c.get("factory") else "")
            L.append(f"| {name} | {c['bytes_per_vector']} | {c['ratio']:.1f} | {c['train_s']:.2f} | "
                     f"{c['encode_s']:.2f} | {c['recall_raw']:.3f} | " +
                     " | ".join(f"{rec[s]:.3f}" if s in rec else "-" for s in oss) +
                     f" | {c['qps_raw']:,.0f} | {qps.get(4, 0):,.0f} | " +
                     (f"x{c['os95']} | {c['qps95']:,.0f} | {fmt(c['qps95_vs_hnswlib'], 2)} |" if c["os95"]
                      else "none | - | - |"))
        if cr.get("errors"):
            L += ["", "Failed configurations: " + ", ".join(cr["errors"]) + "."]
        L += ["", "Memory: the codes of all points (the in-RAM vector part), the codec's own state (serialized size),",
              "and the process's resident set after encoding, which also holds the float32 base and query arrays",
              "used for rescoring and recall (one codec's codes at a time):", "",
              "| codec | codes MiB | vs float32 | codec state KiB | process RSS MiB |",
              "|---|---:|---:|---:|---:|"]
        for c in cr.get("codecs", []):
            L.append(f"| {c['codec']} | {mib(c['bytes_per_vector'] * c['n']):.1f} | {c['frac_of_f32']:.3f} | "
                     f"{c['codec_state_bytes'] / 1024:.1f} | {mib(c['rss_bytes']):.0f} |")
        mem = cr.get("memory") or {}
        L += ["", f"bench_codecs peak RSS {fmt(mib(mem.get('peak_rss_bytes')), 0)} MiB; RSS after loading the data "
                  f"{fmt(mib(info.get('rss_after_load_bytes')), 0)} MiB.", ""]
        fam = {}
        for c in cr.get("codecs", []):
            if c["os95"] and c["family"] != "f32":
                f = "pq" if c["family"] == "opq" else c["family"]
                if f not in fam or c["qps95"] > fam[f]["qps95"]:
                    fam[f] = c
        if fam:
            L += ["Fastest configuration of each family that reaches recall 0.95 in this flat scan (at the first",
                  "oversampling that does):", "",
                  "| family | config | bytes/vec | oversampling | recall | QPS | vs f32 flat scan QPS |",
                  "|---|---|---:|---:|---:|---:|---:|"]
            f32 = next((c for c in cr.get("codecs", []) if c["family"] == "f32"), None)
            for f in ("f16", "sq8", "bin", "pq"):
                c = fam.get(f)
                if c:
                    L.append(f"| {f} | {c['codec']} | {c['bytes_per_vector']} | x{c['os95']} | {c['recall95']:.3f} | "
                             f"{c['qps95']:,.0f} | {fmt(c['qps95'] / f32['qps'][0] if f32 else None, 2)} |")
            L.append("")
        t = ds.get("targets") or {}
        L += ["#### Targets, flat scan only", ""]
        L.append(target_line("int8 traversal + rescoring (recall >= 0.95, QPS >= 2x hnswlib float32, vector part "
                             "<= 0.3x)", t.get("int8"), ds))
        L.append(target_line("binary + rescoring on 768 dims (recall >= 0.95, vector part <= 1/24)",
                             t.get("binary"), ds))
        L.append(target_line("PQ at x16 or more + rescoring (recall >= 0.9)", t.get("pq"), ds))
        if t.get("pq_all"):
            L.append("  PQ configurations reaching 0.9 (first oversampling that does): " + ", ".join(t["pq_all"]) + ".")
        L.append("")
    notes = list(a.notes) + graph_notes(dss)
    ran_opq = any(c["family"] == "opq" for ds in all_ds.values()
                  for c in (ds["results"].get("codecs") or {}).get("codecs", []))
    if not ran_opq:
        notes.append("OPQ (`opq16`, `opq32`, `opq64`: a learned rotation before PQ) is supported by bench_codecs but "
                     "not in this run: FAISS trains it with 50 rotation iterations, minutes per configuration at "
                     "these sizes on one thread. Add it with `--configs`; the smoke test runs `opq64`.")
    notes.append("bench_codecs' peak RSS is far above its resident set after encoding because of FAISS 1.7.3's PQ "
                 "encode of all points in one call, which can build a distance table of up to points x 256 x M "
                 "floats (pq64 alone at 384 dims: 2.6 GB peak, 0.17 GB after encoding). It is transient and "
                 "shrinks with smaller encode batches; the in-RAM vector part is the codes column.")
    notes.append("Recall comes from the first pass over the queries; QPS is the best of at least two passes, "
                 "single-threaded, on a machine shared with other jobs (see the load averages).")
    L += ["## Notes", ""] + [f"- {x}" for x in notes] + [""]
    with open(path, "w") as fh:
        fh.write("\n".join(L))


# ---------------------------------------------------------------------------------------------


def code_bytes(family, d):
    return {"f32": 4 * d, "f16": 2 * d, "sq8": d, "bin": (d + 63) // 64 * 8 + 12}.get(family)


def check_graph(ds, a):
    """Graph-mode sanity: every config ran, sizes are right, and the invariants that hold
    exactly for one search: rescoring k of k candidates changes nothing, and at a fixed beam a
    longer candidate prefix cannot lose neighbours after exact rescoring."""
    bad = []
    gr = ds["results"].get("graph") or {}
    got = {g["codec"]: g for g in gr.get("graphs", [])}
    for w in a.graph_configs.split(","):
        if w not in got:
            bad.append(f"{ds['name']}: graph {w} missing")
    if gr.get("errors") or gr.get("exit"):
        bad.append(f"bench_codecs --graph errors {gr.get('errors')} exit {gr.get('exit')}")
    for g in got.values():
        name = f"graph {g['codec']}"
        if not g["graph_ok"]:
            bad.append(f"{name}: fanns_hnsw_check failed")
        if g["bytes_per_vector"] != code_bytes(g["family"], ds["dim"]):
            bad.append(f"{name}: {g['bytes_per_vector']} bytes per vector")
        if not g["index_bytes"] >= g["n"] * g["bytes_per_vector"]:
            bad.append(f"{name}: index {g['index_bytes']} bytes cannot hold {g['n']} codes")
        pts = g["points"]
        if not pts or not all(0 <= p["recall"] <= 1 and 0 <= p["recall_raw"] <= 1 and p["qps"] > 0 for p in pts):
            bad.append(f"{name}: bad points {pts}")
            continue
        for p in pts:
            if p["os"] == 1 and abs(p["recall"] - p["recall_raw"]) > 1e-9:
                bad.append(f"{name}: rescoring 10 of 10 candidates changed recall at beam {p['beam']}")
        # same ef, beam == ef for both: the same search, the candidates of the smaller s a prefix
        same = {}
        for p in pts:
            if p["beam"] == p["ef"]:
                same.setdefault(p["ef"], []).append(p)
        for ef, ps in same.items():
            ps.sort(key=lambda p: p["os"])
            if any(y["recall"] < x["recall"] - 1e-9 for x, y in zip(ps, ps[1:])):
                bad.append(f"{name}: recall falls with more oversampling at ef {ef}: {[p['recall'] for p in ps]}")
        top = max(p["recall"] for p in pts)
        floor = {"f32": 0.95, "f16": 0.95, "sq8": 0.95}.get(g["family"])
        if floor and top < floor:
            bad.append(f"{name}: best recall {top} < {floor}")
    if not a.skip_hnswlib:
        h = ds["results"].get("graph_hnswlib")
        if not h or h.get("error") or not h.get("search"):
            bad.append(f"{ds['name']}: hnswlib (graph run) missing or failed")
    return bad


def check(ran, a):
    """--check: outputs exist, parse and make sense (the bench.codecs.smoke test)."""
    bad = []
    want = a.configs.split(",") if not a.graph_only else []
    for ds in ran:
        if not a.no_graph:
            bad += check_graph(ds, a)
        cr = ds["results"].get("codecs") or {}
        got = {c["codec"]: c for c in cr.get("codecs", [])}
        for w in want:
            if w not in got:
                bad.append(f"{ds['name']}: {w} missing")
        for c in got.values():
            d = ds["dim"]
            expect = {"f32": 4 * d, "f16": 2 * d, "sq8": d, "bin": (d + 63) // 64 * 8 + 12}.get(c["family"])
            if c["family"] in ("pq", "opq"):
                expect = 4 * d // int(c["codec"].lstrip("opq"))
            if c["bytes_per_vector"] != expect:
                bad.append(f"{c['codec']}: {c['bytes_per_vector']} bytes per vector, expected {expect}")
            rs = [c["recall_raw"]] + c["recall"]
            if not all(0.0 <= x <= 1.0 for x in rs) or not all(q > 0 for q in c["qps"] + [c["qps_raw"]]):
                bad.append(f"{c['codec']}: bad values {c}")
            # exact rescoring of a growing candidate prefix cannot lose neighbours
            if any(y < x - 1e-9 for x, y in zip(c["recall"], c["recall"][1:])):
                bad.append(f"{c['codec']}: recall falls with more oversampling {c['recall']}")
            if c["recall"][0] + 1e-9 < c["recall_raw"]:
                bad.append(f"{c['codec']}: rescoring at x1 lowered recall")
            if c["family"] in ("pq", "opq") and not c["adc_check_max_err"] <= 1e-3:
                bad.append(f"{c['codec']}: ADC tables disagree with decode")
        if "f32" in got and got["f32"]["recall_raw"] < 0.999:
            bad.append(f"f32 flat scan recall {got['f32']['recall_raw']} (must be exact)")
        if "f16" in got and got["f16"]["recall"][-1] < 0.99:
            bad.append(f"f16 rescored recall {got['f16']['recall'][-1]} < 0.99")
        if "sq8-q8" in got and got["sq8-q8"]["recall"][-1] < 0.95:
            bad.append(f"sq8-q8 rescored recall {got['sq8-q8']['recall'][-1]} < 0.95")
        if not a.graph_only and (cr.get("errors") or cr.get("exit")):
            bad.append(f"bench_codecs errors {cr.get('errors')} exit {cr.get('exit')}")
        if not a.skip_hnswlib:
            h = ds["results"].get("hnswlib")
            if not h or h.get("error") or not h.get("search"):
                bad.append(f"{ds['name']}: hnswlib missing or failed")
    for f in ("benchmarks-codecs.md",) + (("benchmarks-codecs.png",) if a.plotted else ()) + \
            (("benchmarks-codecs-graph.png",) if a.plotted_graph else ()):
        if not os.path.exists(os.path.join(a.out, f)):
            bad.append(f"{f} missing")
    md = open(os.path.join(a.out, "benchmarks-codecs.md")).read()
    for ds in ran:
        if ds["name"] not in md:
            bad.append(f"benchmarks-codecs.md lacks {ds['name']}")
    if bad:
        log("CHECK FAILED:\n  " + "\n  ".join(bad))
        return False
    log("check: ok")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"), help="where bench_codecs/bench_hnswlib are")
    ap.add_argument("--data-build-dir", default=None,
                    help="build dir whose bench-data/ caches the workloads (default --build-dir)")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"),
                    help="the shared folder holding workload/arxiv_like.py (default <repo>/../shared)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs"), help="where benchmarks-codecs.md/.png go")
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--dims", default="384,768")
    ap.add_argument("--queries", type=int, default=1000, help="queries generated (a tenth are unfiltered)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="bench_codecs configs (add opq16,opq32,opq64: slow)")
    ap.add_argument("--train-n", type=int, default=65536, help="SQ8/BIN training sample (0 = all)")
    ap.add_argument("--pq-train-n", type=int, default=65536, help="PQ/OPQ training sample (0 = all)")
    ap.add_argument("--hnsw-efs", default="16,24,32,48,64,96,128,192,256")
    ap.add_argument("--graph-only", action="store_true",
                    help="run only the graph mode (and hnswlib); keep the stored flat-scan results")
    ap.add_argument("--no-graph", action="store_true", help="run only the flat scans")
    ap.add_argument("--graph-configs", default=GRAPH_CONFIGS, help="bench_codecs --graph configs")
    ap.add_argument("--graph-efs", default="16,24,32,48,64,96,128,192,256")
    ap.add_argument("--graph-oversampling", default="1,2,4")
    ap.add_argument("--graph-bin-oversampling", default="1,2,4,8,16,32",
                    help="oversampling for binary graphs (1-bit codes need more candidates)")
    ap.add_argument("--graph-bin-efs", default=None,
                    help="ef for binary graphs (default --graph-efs; at x32 every ef up to 320 is one beam, "
                         "so add e.g. 384,512 for a curve there)")
    ap.add_argument("--oversampling", default="1,2,4,8,16,32",
                    help="rescoring candidates per result (binary codes need more than 8)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--skip-hnswlib", action="store_true")
    ap.add_argument("--note", action="append", dest="notes", default=[], help="a line for the Notes section")
    ap.add_argument("--quick", action="store_true", help="3000 x 64 synthetic data, every config, seconds")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--check", action="store_true", help="verify outputs are sane; exit 1 if not")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the .md and .png from the saved results without running anything")
    a = ap.parse_args()
    a.build_dir, a.out = os.path.abspath(a.build_dir), os.path.abspath(a.out)
    a.data_build_dir = os.path.abspath(a.data_build_dir or a.build_dir)
    if a.quick:
        a.configs = a.configs if a.configs != DEFAULT_CONFIGS else QUICK_CONFIGS
        a.hnsw_efs, a.reps, a.min_time = "16,64", 1, 0.0
        a.graph_efs, a.graph_bin_oversampling, a.graph_bin_efs = "16,64", "1,2,4,8,16", "16,64,256"
    a.graph_bin_efs = a.graph_bin_efs or a.graph_efs
    if a.graph_only and a.no_graph:
        sys.exit("--graph-only and --no-graph exclude each other")
    os.makedirs(a.out, exist_ok=True)
    if not a.no_build and not a.report_only:
        build(a)
    results_path = os.path.join(a.out if a.quick else a.build_dir, "bench-codecs-results.json")
    all_ds = {}
    if os.path.exists(results_path) and not a.quick:
        with open(results_path) as f:
            all_ds = json.load(f).get("datasets", {})
    if a.report_only:
        for ds in all_ds.values():
            summarize(ds)
            summarize_graph(ds)
        plot(all_ds, os.path.join(a.out, "benchmarks-codecs.png"))
        plot_graph(all_ds, os.path.join(a.out, "benchmarks-codecs-graph.png"))
        write_markdown(all_ds, a, os.path.join(a.out, "benchmarks-codecs.md"))
        log(f"rewrote {os.path.join(a.out, 'benchmarks-codecs.md')} from {results_path}")
        return
    command = "/usr/bin/python3 tests/bench/run_codecs.py " + " ".join(sys.argv[1:])
    if a.quick:
        infos = [quick_dataset(a)]
    else:
        dns = SimpleNamespace(build_dir=a.data_build_dir, shared=a.shared, queries=a.queries, seed=a.seed)
        infos = [run_bench.dataset(dns, a.n, int(d)) for d in a.dims.split(",")]
    ran = []
    now = lambda: datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for info in infos:
        old = all_ds.get(info["name"])
        if a.graph_only and old:
            ds = old  # keep the stored flat results and their metadata
            ds["flat_date"] = ds.get("date")
        else:
            ds = {"name": info["name"], "n": info["n"], "dim": info["dim"], "machine": run_bench.machine_info(),
                  "command": command.strip(), "date": now(), "results": {}}
            if old and a.no_graph:  # keep the stored graph results
                for key in ("graph", "graph_hnswlib"):
                    if key in old["results"]:
                        ds["results"][key] = old["results"][key]
                if "graph_meta" in old:
                    ds["graph_meta"] = old["graph_meta"]
        if not a.graph_only:
            ds["results"]["codecs"] = run_codecs_bin(a, info)
        if not a.no_graph:
            gm = {"machine": run_bench.machine_info(), "date": now(), "command": command.strip()}
            with LoadSampler() as ls:
                ds["results"]["graph"] = run_graph_bin(a, info)
                h = None if a.skip_hnswlib else run_hnswlib(a, info)
            gm["load"] = ls.summary()
            ds["graph_meta"] = gm
            ds["results"]["graph_hnswlib"] = h
            if not a.graph_only:
                ds["results"]["hnswlib"] = h  # one hnswlib run serves both modes
        elif not a.skip_hnswlib:
            ds["results"]["hnswlib"] = run_hnswlib(a, info)
        if not a.graph_only:
            ds["loadavg_at_end"] = round(os.getloadavg()[0], 2)
        summarize(ds)
        summarize_graph(ds)
        ref, gref = ds.get("ref"), ds.get("graph_ref")
        log(f"== {ds['name']}: hnswlib QPS at {TARGET}: flat run {fmt(ref and ref['qps'])}, graph run "
            f"{fmt(gref and gref['qps'])}; flat targets: " + json.dumps(ds["targets"]))
        for row in ds.get("graph_rows", []):
            log(f"   graph {row['codec']:8s} x{row['os']:<2d} QPS@{TARGET} {row['mark']}{fmt(row['qps95'])} "
                f"(x{fmt(row['ratio'], 2)} hnswlib), best recall {row['max_recall']:.3f}")
        all_ds[ds["name"]] = ds
        ran.append(ds)
        with open(results_path, "w") as f:
            json.dump({"datasets": all_ds}, f, indent=1)
    a.plotted = plot(all_ds, os.path.join(a.out, "benchmarks-codecs.png"))
    a.plotted_graph = plot_graph(all_ds, os.path.join(a.out, "benchmarks-codecs-graph.png"))
    write_markdown(all_ds, a, os.path.join(a.out, "benchmarks-codecs.md"))
    log(f"wrote {os.path.join(a.out, 'benchmarks-codecs.md')}")
    if a.check and not check(ran, a):
        sys.exit(1)


if __name__ == "__main__":
    main()
