#!/usr/bin/python3
"""Server-level benchmark of fanns's vector codecs: memory and recall through fannsd itself.

tests/bench/run_codecs.py measures the codecs in-process (index/codec.c, index/hnsw.c); this
script measures what a deployment gets.  For each configuration it starts a fresh fannsd on a
temporary data directory, creates one collection (Cosine, m=16, ef_construct=100, as Qdrant's
defaults), upserts the arXiv-like base vectors over HTTP, waits until the collection is green
with its codec ready, and then records:
  - GET /collections/{c}?fanns=true: bytes per vector of codes, float32 vectors in RAM, graph
    links and payload indexes, and whether the codes are the graph's own (codes_in_graph);
  - the process's resident and anonymous memory (VmRSS, RssAnon from /proc);
  - recall@10 of POST /points/search over the unfiltered queries (exact top-10 from the
    workload) for several (hnsw_ef, oversampling) settings, with the requests' mean latency on
    one connection.
The "vector part in RAM" is (codes + float32 vectors kept in RAM) per point, divided by the
float32 vector (4 x dim bytes): the quantity issue targets are stated in.  Configurations:
  float32          vectors in RAM, no quantization (the reference)
  float32-ondisk   vectors.on_disk, no quantization
  int8, binary, pq-x16, pq-x32, float16   each with vectors.on_disk (codes in RAM, float32 read
                   from LMDB's map for rescoring)
Results go to <out>/server-codecs-results.json and <out>/benchmarks-server-codecs.md.

Usage:
  /usr/bin/python3 tests/bench/run_server_codecs.py                       # 100k x 768
  /usr/bin/python3 tests/bench/run_server_codecs.py --dims 384 --configs int8,binary
  /usr/bin/python3 tests/bench/run_server_codecs.py --quick --out /tmp/sc  # 20k x 128
"""
import argparse, datetime, json, os, shutil, signal, subprocess, sys, tempfile, time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import run_bench  # noqa: E402  (dataset cache, HTTP client, machine info)

CONFIGS = {
    "float32": {"on_disk": False, "q": None},
    "float32-ondisk": {"on_disk": True, "q": None},
    "float16": {"on_disk": True, "q": None, "datatype": "float16"},
    "int8": {"on_disk": True, "q": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}},
    "binary": {"on_disk": True, "q": {"binary": {"always_ram": True}}},
    "pq-x16": {"on_disk": True, "q": {"product": {"compression": "x16", "always_ram": True}}},
    "pq-x32": {"on_disk": True, "q": {"product": {"compression": "x32", "always_ram": True}}},
}
# (hnsw_ef, oversampling) per config: oversampling 1 shows the codes alone, the larger ones the
# rescoring the codec needs.
SETTINGS = {
    "float32": [(64, 1), (128, 1)],
    "float32-ondisk": [(64, 1), (128, 1)],
    "float16": [(64, 1), (128, 1)],
    "int8": [(64, 1), (64, 2), (128, 2)],
    "binary": [(128, 1), (128, 8), (256, 16), (512, 32)],
    "pq-x16": [(128, 1), (128, 4), (256, 8)],
    "pq-x32": [(128, 1), (256, 8), (512, 16)],
}
log = run_bench.log


def status_kb(pid, key):
    v = run_bench.proc_status(pid, key)
    return v if v is not None else 0


def run_config(a, ds, name):
    cfg = CONFIGS[name]
    fannsd = a.fannsd or os.path.join(a.build_dir, "fannsd")
    tmp = tempfile.mkdtemp(prefix="fanns-sc-")
    portf = os.path.join(tmp, "port")
    proc = subprocess.Popen([fannsd, "--host", "127.0.0.1", "--port", "0", "--port-file", portf, "--data-dir",
                             os.path.join(tmp, "data"), "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "fannsd.log"), "w"))
    res = {"config": name, "search": []}
    try:
        for _ in range(200):
            if os.path.exists(portf) and open(portf).read().strip():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"fannsd exited with {proc.returncode}")
            time.sleep(0.05)
        cl = run_bench.Client(int(open(portf).read().strip()))
        coll = "/collections/bench"
        vectors = {"size": ds["dim"], "distance": "Cosine", "on_disk": cfg["on_disk"]}
        if cfg.get("datatype"):
            vectors["datatype"] = cfg["datatype"]
        body = {"vectors": vectors, "hnsw_config": {"m": 16, "ef_construct": 100}}
        if cfg["q"]:
            body["quantization_config"] = cfg["q"]
        cl.call("PUT", coll, body)
        base = np.load(ds["base"], mmap_mode="r")
        n = base.shape[0]
        log(f"{ds['name']}/{name}: upserting {n} points ...")
        t0 = time.perf_counter()
        for s in range(0, n, 512):
            rows = np.asarray(base[s:s + 512], dtype=np.float32).tolist()
            cl.call("PUT", coll + "/points?wait=true", {"points": [{"id": s + i, "vector": v} for i, v in enumerate(rows)]})
        res["upsert_s"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        info = ext = None
        while time.perf_counter() - t1 < a.green_timeout:
            info = cl.call("GET", coll)["result"]
            ext = cl.call("GET", coll + "?fanns=true")["result"].get("fanns", {})
            q = ext.get("quantization", {})
            if info.get("status") == "green" and (not cfg["q"] or q.get("status") == "ready"):
                break
            time.sleep(0.5)
        res["ready_after_upsert_s"] = round(time.perf_counter() - t1, 2)
        if info.get("status") != "green":
            raise RuntimeError(f"not green after {a.green_timeout} s")
        time.sleep(1.0)  # let the allocator settle after the build threads finish
        ext = cl.call("GET", coll + "?fanns=true")["result"]["fanns"]
        res["fanns"] = ext
        res["rss_bytes"] = status_kb(proc.pid, "VmRSS")
        res["rss_anon_bytes"] = status_kb(proc.pid, "RssAnon")
        res["peak_rss_bytes"] = status_kb(proc.pid, "VmHWM")
        qv = np.load(ds["queries"]).astype(np.float32)[:a.nq]
        gt = np.load(ds["gt"])[:a.nq]
        for v in qv[:50].tolist():  # warm-up: first touches of the map and the graph
            cl.call("POST", coll + "/points/search", {"vector": v, "limit": 10})
        for ef, os_ in SETTINGS[name]:
            params = {"hnsw_ef": ef}
            if cfg["q"]:
                params["quantization"] = {"rescore": True, "oversampling": os_}
            hits = possible = 0
            t0 = time.perf_counter()
            for v, g in zip(qv.tolist(), gt):
                got = [p["id"] for p in cl.call("POST", coll + "/points/search",
                                                {"vector": v, "limit": 10, "params": params})["result"]]
                g = set(int(x) for x in g[:10] if x >= 0)
                possible += len(g)
                hits += len(g.intersection(got))
            dt = time.perf_counter() - t0
            p = {"ef": ef, "oversampling": os_, "recall": round(hits / possible, 4), "mean_ms": round(dt / len(qv) * 1e3, 3)}
            res["search"].append(p)
            log(f"  ef {ef} x{os_}: recall {p['recall']:.3f}, {p['mean_ms']} ms per request")
        res["peak_rss_bytes"] = status_kb(proc.pid, "VmHWM")
    except Exception as e:  # reported, never silently dropped
        log(f"{name} failed: {e}")
        res["error"] = str(e)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def vector_part(r, dim):
    m = r["fanns"]["memory"]["bytes_per_vector"]
    return (m["codes"] + m["vectors"]) / (4.0 * dim)


def vp_text(v):
    return "0 (on disk)" if v == 0 else f"{v:.3f} (1/{1 / v:.1f})"


def write_markdown(all_ds, out):
    L = ["# Codecs through the server: memory and recall", "",
         "Generated by `tests/bench/run_server_codecs.py`; numbers come from a running `fannsd` (HTTP",
         "upsert of the whole base set, then `GET /collections/{c}?fanns=true` and `/proc` for memory,",
         "`POST /points/search` for recall@10 against the workload's exact top-10).  The in-process",
         "codec and graph measurements, with hnswlib as the reference, are in",
         "[benchmarks-codecs.md](benchmarks-codecs.md).", "",
         "**Vector part in RAM** = (codes + float32 vectors kept in RAM) per point / (4 x dim).  With",
         "`on_disk` the float32 vectors stay in LMDB's memory map and are read for rescoring only; a",
         "collection whose graph holds codes keeps them only there (`codes_in_graph`), so the codes",
         "are not counted twice.  Graph = links and node headers, without the codes.  Anonymous RSS",
         "is the process's private memory (the map's file pages are not in it).", ""]
    for ds in all_ds.values():
        d = ds["dim"]
        L += [f"## {ds['name']} ({ds['n']:,} points x {d}, {ds['nq']} queries)", "",
              f"Run {ds['date']} on {ds['machine']['cpu']} ({ds['machine']['cores']} cores), load average "
              f"{ds['machine']['loadavg_at_start']} at start.  Command: `{ds['command']}`.", "",
              "| config | code B/vec | float32 in RAM B/vec | graph B/vec | codes in graph | vector part in RAM | anon RSS MiB | RSS MiB | upsert s | ready after s |",
              "|---|---:|---:|---:|:-:|---:|---:|---:|---:|---:|"]
        for r in ds["results"]:
            if r.get("error"):
                L.append(f"| {r['config']} | failed: {r['error'][:80]} |||||||||")
                continue
            m = r["fanns"]["memory"]
            b = m["bytes_per_vector"]
            L.append(f"| {r['config']} | {b['codes']:.1f} | {b['vectors']:.1f} | {b['graph']:.1f} | "
                     f"{'yes' if m.get('codes_in_graph') else 'no'} | {vp_text(vector_part(r, d))} | "
                     f"{r['rss_anon_bytes'] / 2**20:.0f} | {r['rss_bytes'] / 2**20:.0f} | {r['upsert_s']:.0f} | {r['ready_after_upsert_s']:.0f} |")
        by = {r["config"]: r for r in ds["results"] if not r.get("error")}

        def best(name, floor):
            pts = [p for p in by.get(name, {}).get("search", []) if p["recall"] >= floor]
            return min(pts, key=lambda p: (p["oversampling"], p["ef"])) if pts else None
        L += ["", "Against the targets (vector part in RAM, and recall@10 with rescoring through the server):", ""]
        for name, limit, floor, what in (("int8", 0.3, 0.95, "int8: vector part <= 0.3"),
                                         ("binary", 1 / 24, 0.95, "binary: vector part <= 1/24, recall >= 0.95"),
                                         ("pq-x16", None, 0.9, "PQ x16: recall >= 0.9"),
                                         ("pq-x32", None, 0.9, "PQ x32: recall >= 0.9")):
            r = by.get(name)
            if not r:
                continue
            vp = vector_part(r, d)
            b = best(name, floor)
            ok = (limit is None or vp <= limit) and b is not None
            L.append(f"- {what}: vector part {vp:.3f}; " +
                     (f"recall {b['recall']:.3f} at hnsw_ef {b['ef']}, oversampling {b['oversampling']}" if b else
                      f"recall below {floor} at every setting measured") + (" (met)" if ok else " (not met)"))
        L += ["", "Recall@10 through `POST /points/search` (rescoring on, the given oversampling).  The",
              "latency column is one connection's mean round trip and depends on what else ran on the",
              "machine (load average above); speed comparisons are in benchmarks-codecs.md.", "",
              "| config | hnsw_ef | oversampling | recall@10 | ms per request (one connection) |", "|---|---:|---:|---:|---:|"]
        for r in ds["results"]:
            for p in r.get("search", []):
                L.append(f"| {r['config']} | {p['ef']} | {p['oversampling']} | {p['recall']:.3f} | {p['mean_ms']} |")
        L.append("")
    with open(os.path.join(out, "benchmarks-server-codecs.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"))
    ap.add_argument("--out", default=os.path.join(REPO, "docs"))
    ap.add_argument("--fannsd", default=None)
    ap.add_argument("--size", type=int, default=100000)
    ap.add_argument("--dims", default="768")
    ap.add_argument("--queries", type=int, default=1000, help="queries generated (a tenth are unfiltered)")
    ap.add_argument("--nq", type=int, default=1000, help="unfiltered queries used (at most what exists)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--green-timeout", type=float, default=3600)
    ap.add_argument("--quick", action="store_true", help="20k x 128 (sanity run)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the markdown from the results file")
    ap.add_argument("--check", action="store_true", help="exit 1 unless every config ran and reported memory")
    a = ap.parse_args()
    if a.quick:
        a.size, a.dims = 20000, "128"
    a.build_dir, a.out = os.path.abspath(a.build_dir), os.path.abspath(a.out)
    os.makedirs(a.out, exist_ok=True)
    rpath = os.path.join(a.out, "server-codecs-results.json")
    all_ds = json.load(open(rpath)).get("datasets", {}) if os.path.exists(rpath) else {}
    ok = True
    if a.report_only:
        write_markdown(all_ds, a.out)
        return
    for d in [int(x) for x in a.dims.split(",")]:
        info = run_bench.dataset(a, a.size, d)
        ds = {"name": info["name"], "n": a.size, "dim": d, "machine": run_bench.machine_info(),
              "command": "/usr/bin/python3 tests/bench/run_server_codecs.py " + " ".join(sys.argv[1:]),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "nq": int(min(a.nq, np.load(info["gt"]).shape[0])), "results": []}
        for name in a.configs.split(","):
            r = run_config(a, info, name)
            ds["results"].append(r)
            ok = ok and not r.get("error") and "fanns" in r and bool(r["search"])
        all_ds[ds["name"]] = ds
        with open(rpath, "w") as f:
            json.dump({"datasets": all_ds}, f, indent=1)
        write_markdown(all_ds, a.out)
    log(f"wrote {os.path.join(a.out, 'benchmarks-server-codecs.md')}")
    if a.check and not ok:
        log("CHECK FAILED: a configuration did not complete")
        sys.exit(1)


if __name__ == "__main__":
    main()
