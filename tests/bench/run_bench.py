#!/usr/bin/python3
"""Benchmark driver for fanns's HNSW index against hnswlib, FAISS and brute force.

For each dataset (the arXiv-like workload from ../shared/workload/arxiv_like.py, cached
under <build>/bench-data/), every system runs in its own process so peak memory is per
system:
  fanns     tests/bench/bench_hnsw.c, index/hnsw.c in-process
  hnswlib   tests/bench/bench_hnswlib.cpp, Debian's hnswlib headers, -O3 -march=native
  faiss     tests/bench/bench_faiss.py, IndexHNSWFlat (python3-faiss)
  exact     tests/bench/bench_faiss.py --exact, numpy brute force one query per call
  http      build/fannsd on a temporary data directory: upsert, wait for status green,
            recall per hnsw_ef, then throughput with wrk over 2 x cores keep-alive connections
All HNSW builds use M=16, ef_construction=200 and all cores; searches are single-threaded
over the workload's unfiltered queries (filter == null), whose exact top-10 is in gt.npy.

With --churn, fanns then deletes a seeded random half of the points, re-inserts them at the
freed offsets and measures recall again at every ef, next to the fresh build's.

Each system's recall -> QPS curve is interpolated (log QPS linear in recall between measured
points) to give QPS at recall 0.90, 0.95 and 0.98, and ratios against hnswlib are printed.
Results are merged into <out>/bench-results.json (datasets not re-run are kept) and
<out>/benchmarks.md plus one plot per dataset are rewritten from it.

Usage:
  /usr/bin/python3 tests/bench/run_bench.py                      # 100k x 384 and 100k x 768
  /usr/bin/python3 tests/bench/run_bench.py --sizes 1000000 --dims 384 --efs 32,64,128,256,384,512,768,1024 \
      --http-efs 128,384,768          # 1M: recall 0.95 needs ef about 600 (about 85 min)
  /usr/bin/python3 tests/bench/run_bench.py --quick --out /tmp/b  # 20k x 128 sanity run
"""
import argparse, datetime, importlib.util, json, math, os, platform, shutil, signal, subprocess, sys, tempfile, time
import http.client

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARGETS = (0.90, 0.95, 0.98)
SYSTEMS = ("fanns", "hnswlib", "faiss", "exact")
DEFAULT_EFS = "16,32,64,96,128,192,256,384"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Build and data


def build(a):
    # Configure every time: cheap, and it picks up index/hnsw.c once it exists.
    subprocess.run(["cmake", "-S", REPO, "-B", a.build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True,
                       stdout=subprocess.DEVNULL)
    targets = ["bench_hnswlib", "fannsd"]
    if os.path.exists(os.path.join(REPO, "index", "hnsw.c")):
        targets.append("bench_hnsw")
    for t in targets:
        r = subprocess.run(["cmake", "--build", a.build_dir, "--target", t, "-j", str(os.cpu_count())])
        if r.returncode != 0:
            log(f"warning: building {t} failed; that system will be skipped")


def dataset(a, n, d):
    """Generates (once) and returns the cache directory of an n x d workload, plus the
    unfiltered queries and their ground truth written next to it."""
    name = f"arxiv-n{n}-d{d}-q{a.queries}-s{a.seed}"
    root = os.path.join(a.build_dir, "bench-data")
    path = os.path.join(root, name)
    if not os.path.exists(os.path.join(path, "gt.npy")):
        gen = os.path.join(a.shared, "workload", "arxiv_like.py")
        if not os.path.exists(gen):
            sys.exit(f"workload generator not found: {gen} (set --shared)")
        tmp = path + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(root, exist_ok=True)
        log(f"generating {name} ...")
        subprocess.run([sys.executable, gen, "--n", str(n), "--dim", str(d), "--queries", str(a.queries), "--k", "10",
                        "--seed", str(a.seed), tmp], check=True)
        os.rename(tmp, path)
    uq, ugt = os.path.join(path, "bench-unfiltered-queries.npy"), os.path.join(path, "bench-unfiltered-gt.npy")
    if not os.path.exists(ugt):
        with open(os.path.join(path, "queries.jsonl")) as f:
            sel = [i for i, line in enumerate(f) if json.loads(line)["filter"] is None]
        np.save(uq, np.load(os.path.join(path, "queries.npy"))[sel])
        np.save(ugt, np.load(os.path.join(path, "gt.npy"))[sel])
    return {"name": f"arxiv-n{n}-d{d}", "dir": path, "n": n, "dim": d, "base": os.path.join(path, "base.npy"),
            "queries": uq, "gt": ugt}


# ---------------------------------------------------------------------------------------------
# In-process systems


def have_faiss():
    return importlib.util.find_spec("faiss") is not None


def run_system(a, sysname, ds):
    common = ["--base", ds["base"], "--queries", ds["queries"], "--gt", ds["gt"], "--ef", a.efs, "--m", "16",
              "--efc", "200", "--reps", str(a.reps), "--min-time", str(a.min_time)]
    if sysname == "fanns":
        cmd = [os.path.join(a.build_dir, "tests", "bench", "bench_hnsw")] + common + ["--threads", "0",
                                                                                      "--mt-threads", str(os.cpu_count())]
        if a.churn:
            cmd.append("--churn")
    elif sysname == "hnswlib":
        cmd = [os.path.join(a.build_dir, "tests", "bench", "bench_hnswlib")] + common + ["--threads", "0"]
    elif sysname == "faiss":
        cmd = [sys.executable, os.path.join(HERE, "bench_faiss.py")] + common + ["--threads", "0"]
    else:
        cmd = [sys.executable, os.path.join(HERE, "bench_faiss.py"), "--exact"] + common
    if sysname in ("faiss", "exact") and not have_faiss():
        log(f"{sysname}: python3-faiss not installed, skipped")
        return None
    if not cmd[0].endswith("python3") and not os.path.exists(cmd[0]):
        log(f"{sysname}: {cmd[0]} not built, skipped")
        return None
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    log(f"{ds['name']}: running {sysname} ...")
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        log(f"{sysname} failed (exit {r.returncode}):\n{r.stderr[-4000:]}")
        return {"error": f"exit {r.returncode}: {r.stderr.strip()[-500:]}"}
    res = {"build": None, "search": [], "memory": None}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            if j["kind"] in ("search", "churn"):
                res.setdefault(j["kind"], []).append(j)
            else:
                res[j["kind"]] = j
    b = res["build"]
    log(f"  {sysname}: build {b['build_s']:.1f} s; " +
        ", ".join(f"ef {p['ef']}: {p['recall']:.3f}/{p['qps']:.0f}" for p in res["search"]) +
        f"; peak RSS {res['memory']['peak_rss_bytes'] / 2**20:.0f} MiB ({time.time() - t0:.0f} s)")
    if res.get("churn"):
        log("  fanns after churn: " + ", ".join(f"ef {p['ef']}: {p['recall']:.3f} (fresh {p['fresh_recall']:.3f})"
                                                for p in res["churn"]))
    return res


# ---------------------------------------------------------------------------------------------
# fanns over HTTP


class Client:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = self.c.getresponse()
        raw = r.read()
        doc = json.loads(raw) if raw else None
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: {raw[:300]!r}")
        return doc


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# Requests are formatted once, in init: formatting an 8 KB request in Lua for every request
# cost wrk about 5 us of the CPU it shares with the server.
WRK_LUA = r"""
local reqs = {}
local idx = 0
init = function(args)
  for line in io.lines("%(bodies)s") do
    reqs[#reqs + 1] = wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, line)
  end
  idx = math.random(#reqs)
end
request = function()
  idx = idx %% #reqs + 1
  return reqs[idx]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"lat_mean_us":%%.1f,"lat_p50_us":%%d,"lat_p99_us":%%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99)))
end
"""


def run_http(a, ds, efs):
    fannsd = a.fannsd or os.path.join(a.build_dir, "fannsd")
    wrk = shutil.which("wrk")
    if not os.path.exists(fannsd):
        log("http: fannsd not built, skipped")
        return None
    if not wrk:
        log("http: wrk not installed (apt-get install wrk), skipped")
        return None
    cores = os.cpu_count()
    tmp = tempfile.mkdtemp(prefix="fanns-bench-")
    portf = os.path.join(tmp, "port")
    proc = subprocess.Popen([fannsd, "--host", "127.0.0.1", "--port", "0", "--port-file", portf, "--data-dir",
                             os.path.join(tmp, "data"), "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "fannsd.log"), "w"))
    res = {"search": []}
    try:
        for _ in range(200):
            if os.path.exists(portf) and open(portf).read().strip():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"fannsd exited with {proc.returncode}")
            time.sleep(0.05)
        port = int(open(portf).read().strip())
        cl = Client(port)
        coll = "/collections/bench"
        cl.call("PUT", coll, {"vectors": {"size": ds["dim"], "distance": "Cosine"},
                              "hnsw_config": {"m": 16, "ef_construct": 200}})
        base = np.load(ds["base"], mmap_mode="r")
        n = base.shape[0]
        log(f"{ds['name']}: http: upserting {n} points ...")
        t0 = time.perf_counter()
        for s in range(0, n, 512):
            rows = np.asarray(base[s:s + 512], dtype=np.float32).tolist()
            body = {"points": [{"id": s + i, "vector": v} for i, v in enumerate(rows)]}
            cl.call("PUT", coll + "/points?wait=true", body)
        res["upsert_s"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        info = None
        while time.perf_counter() - t1 < a.green_timeout:
            info = cl.call("GET", coll)["result"]
            if info.get("status") == "green":
                break
            time.sleep(0.2)
        res["green_after_upsert_s"] = round(time.perf_counter() - t1, 3)
        res["status"] = info.get("status")
        res["points_count"] = info.get("points_count")
        res["indexed_vectors_count"] = info.get("indexed_vectors_count")
        if res["status"] != "green":
            raise RuntimeError(f"collection not green after {a.green_timeout} s: {info.get('status')}")

        q = np.load(ds["queries"]).astype(np.float32)
        gt = np.load(ds["gt"])
        path = coll + "/points/search"
        for ef in efs:
            bodies = [json.dumps({"vector": v, "limit": 10, "params": {"hnsw_ef": ef}}) for v in q.tolist()]
            hits = possible = 0
            t0 = time.perf_counter()
            for b, g in zip(bodies, gt):
                got = [p["id"] for p in cl.call("POST", path, b.encode())["result"]]
                g = set(int(x) for x in g[:10] if x >= 0)
                possible += len(g)
                hits += len(g.intersection(got))
            seq_qps = len(bodies) / (time.perf_counter() - t0)
            bf = os.path.join(tmp, "bodies.txt")
            with open(bf, "w") as f:
                f.write("\n".join(bodies) + "\n")
            lua = os.path.join(tmp, "search.lua")
            with open(lua, "w") as f:
                f.write(WRK_LUA % {"bodies": bf, "path": path})
            conns = 2 * cores
            r = subprocess.run([wrk, "-t", str(a.wrk_threads), "-c", str(conns), "-d", f"{a.http_duration}s", "-s",
                                lua, f"http://127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=a.http_duration + 120)
            line = [x for x in r.stdout.splitlines() if x.startswith("WRKJSON ")]
            if r.returncode != 0 or not line:
                raise RuntimeError(f"wrk failed: {r.stdout[-1000:]} {r.stderr[-1000:]}")
            w = json.loads(line[0][len("WRKJSON "):])
            errors = w["connect"] + w["read"] + w["write"] + w["status"] + w["timeout"]
            p = {"ef": ef, "recall": round(hits / possible if possible else 1.0, 4), "nq": len(bodies),
                 "seq_qps": round(seq_qps, 1), "rps": round(w["requests"] / (w["duration_us"] / 1e6), 1),
                 "connections": conns, "wrk_threads": a.wrk_threads, "duration_s": a.http_duration,
                 "requests": w["requests"], "errors": errors, "lat_p50_ms": round(w["lat_p50_us"] / 1000, 3),
                 "lat_p99_ms": round(w["lat_p99_us"] / 1000, 3)}
            res["search"].append(p)
            log(f"  http ef {ef}: recall {p['recall']:.3f}, {p['rps']:.0f} req/s over {conns} connections "
                f"(p50 {p['lat_p50_ms']} ms, p99 {p['lat_p99_ms']} ms, errors {errors}); one connection "
                f"{p['seq_qps']:.0f} req/s")
        res["peak_rss_bytes"] = proc_status(proc.pid, "VmHWM")
        res["rss_bytes"] = proc_status(proc.pid, "VmRSS")
    except Exception as e:  # reported in the results, never silently dropped
        log(f"http failed: {e}")
        res["error"] = str(e)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------------------
# Analysis


def qps_at(points, r, key="qps"):
    """QPS at recall r: log QPS linear in recall between consecutive ef points.  Returns
    (value, mark): mark '>=' when even the smallest ef exceeds r (the true value is higher),
    (None, '') when no measured ef reaches r."""
    pts = sorted(points, key=lambda p: p["ef"])
    if not pts:
        return None, ""
    if pts[0]["recall"] >= r:
        return pts[0][key], ">="
    for x, y in zip(pts, pts[1:]):
        if x["recall"] < r <= y["recall"]:
            t = (r - x["recall"]) / (y["recall"] - x["recall"])
            return math.exp(math.log(x[key]) + t * (math.log(y[key]) - math.log(x[key]))), ""
    return None, ""


def ratio(x, y):
    return None if x is None or y is None or y == 0 else x / y


def fmt(v, nd=0, suffix=""):
    if v is None:
        return "n/a"
    return f"{v:,.{nd}f}{suffix}"


def summarize(ds):
    """Adds the derived numbers (QPS at targets, ratios) to a dataset's results."""
    r = ds["results"]
    out = {"qps_at": {}, "ratios": {}}
    for s in SYSTEMS:
        x = r.get(s)
        if x and "search" in x and x["search"]:
            if s == "exact":
                out["qps_at"][s] = {str(t): [x["search"][0]["qps"], ""] for t in TARGETS}
            else:
                out["qps_at"][s] = {str(t): list(qps_at(x["search"], t)) for t in TARGETS}
    h = out["qps_at"].get("hnswlib")
    hb = (r.get("hnswlib") or {}).get("build")
    hm = (r.get("hnswlib") or {}).get("memory")
    for s in ("fanns", "faiss"):
        q = out["qps_at"].get(s)
        x = r.get(s) or {}
        if not q or not h or not x.get("build") or not hb:
            continue
        out["ratios"][s] = {
            "qps": {t: ratio(q[t][0], h[t][0]) for t in q},
            "build": ratio(x["build"]["build_s"], hb["build_s"]),
            "peak_rss": ratio(x["memory"]["peak_rss_bytes"], hm["peak_rss_bytes"]),
            "index_bytes": ratio(x["build"]["index_bytes"], hb["index_bytes"]),
        }
    hp = r.get("http")
    f = r.get("fanns")
    if hp and hp.get("search") and f and f.get("search"):
        cores = ds["machine"]["cores"]
        by_ef = {p["ef"]: p for p in f["search"]}
        out["http_vs_inproc"] = {str(p["ef"]): ratio(p["rps"], by_ef[p["ef"]]["qps"] * cores)
                                 for p in hp["search"] if p["ef"] in by_ef}
    ds["derived"] = out
    return out


def print_summary(ds):
    d = ds["derived"]
    log(f"\n== {ds['name']} ==")
    for s, q in d["qps_at"].items():
        log(f"  {s:8s} QPS@recall " + "  ".join(f"{t}: {m}{fmt(v)}" for t, (v, m) in q.items()))
    for s, x in d["ratios"].items():
        log(f"  {s}/hnswlib: QPS " + "  ".join(f"@{t} {fmt(v, 2)}" for t, v in x["qps"].items()) +
            f"; build time {fmt(x['build'], 2)}; peak RSS {fmt(x['peak_rss'], 2)}; index bytes {fmt(x['index_bytes'], 2)}")
    if d.get("http_vs_inproc"):
        log("  http req/s / (in-process QPS x cores): " +
            "  ".join(f"ef {e}: {fmt(v, 2)}" for e, v in d["http_vs_inproc"].items()))


# ---------------------------------------------------------------------------------------------
# Report


def machine_info():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / 2**30, 1), "kernel": platform.release(),
            "loadavg_at_start": round(os.getloadavg()[0], 2)}


def plot(ds, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (apt-get install python3-matplotlib): no plot")
        return False
    r = ds["results"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    styles = {"fanns": ("tab:red", "o"), "hnswlib": ("tab:blue", "s"), "faiss": ("tab:green", "^")}
    for s, (c, mk) in styles.items():
        x = r.get(s)
        if x and x.get("search"):
            pts = sorted(x["search"], key=lambda p: p["ef"])
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], color=c, marker=mk, label=f"{s} (in-process)")
            if s == "fanns":
                for p in pts:
                    ax.annotate(str(p["ef"]), (p["recall"], p["qps"]), textcoords="offset points", xytext=(4, 4),
                                fontsize=7, color=c)
    x = r.get("exact")
    if x and x.get("search"):
        p = x["search"][0]
        ax.plot([p["recall"]], [p["qps"]], color="black", marker="*", markersize=12, linestyle="none",
                label="exact (brute force)")
    hp = r.get("http")
    if hp and hp.get("search"):
        pts = sorted(hp["search"], key=lambda p: p["ef"])
        cores = ds["machine"]["cores"]
        ax.plot([p["recall"] for p in pts], [p["rps"] / cores for p in pts], color="tab:red", linestyle="--",
                marker="x", label=f"fanns over HTTP (req/s / {cores} cores)")
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (one thread)")
    ax.set_title(f"{ds['name']}: {ds['n']:,} x {ds['dim']}, cosine, M=16, ef_construction=200")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_name(ds):
    return f"bench-hnsw-{ds['dim']}.png" if ds["n"] == 100000 else f"bench-hnsw-{ds['dim']}-n{ds['n']}.png"


def mib(b):
    return None if b is None else b / 2**20


def write_markdown(all_ds, out):
    L = ["# Benchmarks: fanns HNSW against hnswlib and FAISS", "",
         "Written by `tests/bench/run_bench.py` (do not edit by hand; re-run it). Workload: the arXiv-like",
         "generator in `../shared/workload/arxiv_like.py` (unit vectors, anisotropic, clustered by topic),",
         "searched with its unfiltered queries (`filter == null`) against the exact top-10 from `gt.npy`.",
         "Every HNSW index is built with M=16, ef_construction=200 on all cores; queries run on one",
         "thread, one query per call (FAISS: one call over all queries with one OpenMP thread, which it",
         "runs as a loop). QPS is the best of repeated whole passes (median in parentheses). Each system",
         "runs in its own process, so peak RSS is per system; it includes the loaded base vectors",
         "(\"RSS after load\" is the process right after loading them).",
         "",
         "QPS at a target recall is interpolated between measured ef values (log QPS linear in recall);",
         "`>=` means even the smallest ef measured exceeds the target. Ratios are against hnswlib;",
         "above 1 means faster (QPS) or bigger/slower (build time, memory).",
         "",
         "fanns over HTTP: `fannsd` on a fresh data directory, collection created with",
         "`hnsw_config {m: 16, ef_construct: 200}`, points upserted in batches of 512 with `wait=true`,",
         "then `GET /collections/{name}` polled until `status` is green. Recall is measured per",
         "`params.hnsw_ef` over one connection; throughput with `wrk` (keep-alive, 2 x cores",
         "connections, POST /points/search requests formatted once and cycled by a Lua script) on",
         "the same machine, so the load generator competes with the server for the cores. It is",
         "compared with the in-process single-thread QPS times the number of cores.", ""]
    for ds in sorted(all_ds.values(), key=lambda d: (d["n"], d["dim"])):
        r, d, m = ds["results"], ds["derived"], ds["machine"]
        isa = ((r.get("fanns") or {}).get("build") or {}).get("isa", "n/a")
        fb = (r.get("faiss") or {}).get("build") or {}
        L += [f"## {ds['name']}: {ds['n']:,} vectors x {ds['dim']} dims", "",
              f"- Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; "
              f"1-minute load average when the run started: {m.get('loadavg_at_start', '?')}",
              f"- fanns distance kernels (ISA selected at run time): {isa}",
              f"- Versions: hnswlib {ds.get('versions', {}).get('hnswlib', '?')} (Debian headers, g++ -O3 -march=native), "
              f"FAISS {fb.get('faiss_version', '?')} (python3-faiss, compile options: {fb.get('faiss_compile_options', '?')})",
              f"- Date: {ds['date']}",
              f"- Command: `{ds['command']}`",
              f"- Queries: {ds.get('nq', '?')} unfiltered, k=10", ""]
        L += [f"![recall vs QPS, {ds['name']}]({plot_name(ds)})", ""]
        L += ["### QPS at target recall (single thread)", "",
              "| system | " + " | ".join(f"QPS @ {t}" for t in TARGETS) + " | " +
              " | ".join(f"ratio @ {t}" for t in TARGETS) + " |",
              "|---|" + "---:|" * (2 * len(TARGETS))]
        for s in SYSTEMS:
            q = d["qps_at"].get(s)
            if not q:
                continue
            rat = d["ratios"].get(s, {}).get("qps", {}) if s != "hnswlib" else {str(t): 1.0 for t in TARGETS}
            L.append(f"| {s} | " + " | ".join(f"{q[str(t)][1]}{fmt(q[str(t)][0])}" for t in TARGETS) + " | " +
                     " | ".join(fmt(rat.get(str(t)), 2) if s != "exact" else "-" for t in TARGETS) + " |")
        L += ["", "### Build and memory", "",
              "| system | build threads | build time (s) | build ratio | index bytes (MiB) | peak RSS (MiB) | RSS after load (MiB) | peak RSS ratio |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for s in ("fanns", "hnswlib", "faiss"):
            x = r.get(s)
            if not x or "build" not in x:
                if x and x.get("error"):
                    L.append(f"| {s} | failed: {x['error'][:120]} | | | | | | |")
                continue
            rt = d["ratios"].get(s, {}) if s != "hnswlib" else {"build": 1.0, "peak_rss": 1.0}
            L.append(f"| {s} | {x['build']['threads']} | {x['build']['build_s']:.1f} | {fmt(rt.get('build'), 2)} | "
                     f"{fmt(mib(x['build']['index_bytes']), 1)} | {fmt(mib(x['memory']['peak_rss_bytes']), 0)} | "
                     f"{fmt(mib(x['memory']['rss_after_load_bytes']), 0)} | {fmt(rt.get('peak_rss'), 2)} |")
        L += ["", "### Recall and QPS per ef (single thread; best pass, median in parentheses)", "",
              "| ef | " + " | ".join(s for s in ("fanns", "hnswlib", "faiss") if (r.get(s) or {}).get("search")) + " |",
              "|---:|" + "---|" * sum(1 for s in ("fanns", "hnswlib", "faiss") if (r.get(s) or {}).get("search"))]
        efs = sorted({p["ef"] for s in ("fanns", "hnswlib", "faiss") for p in (r.get(s) or {}).get("search", [])})
        for ef in efs:
            cells = []
            for s in ("fanns", "hnswlib", "faiss"):
                pts = (r.get(s) or {}).get("search")
                if not pts:
                    continue
                p = next((p for p in pts if p["ef"] == ef), None)
                cells.append("" if not p else f"{p['recall']:.3f} / {p['qps']:,.0f} ({p['qps_median']:,.0f})")
            L.append(f"| {ef} | " + " | ".join(cells) + " |")
        x = r.get("exact")
        if x and x.get("search"):
            p = x["search"][0]
            L += ["", f"Exact brute force (numpy/OpenBLAS matrix-vector product, one query per call, one thread): recall {p['recall']:.3f}, "
                      f"{p['qps']:,.0f} QPS ({p['qps_median']:,.0f} median); peak RSS "
                      f"{fmt(mib(x['memory']['peak_rss_bytes']), 0)} MiB."]
        ch = (r.get("fanns") or {}).get("churn")
        if ch:
            c0 = ch[0]
            drop = max(p["fresh_recall"] - p["recall"] for p in ch)
            verdict = (f"largest recall drop against the fresh build: {drop:.3f}" if drop > 0
                       else "recall is nowhere below the fresh build's")
            L += ["", "### fanns after churn (delete and re-insert half of the points)", "",
                  f"After the measurements above, {c0['churned']:,} points (a seeded random half) were deleted and the "
                  f"same vectors inserted again at the freed offsets ({c0['reinsert_s']:.1f} s on "
                  f"{r['fanns']['build']['threads']} threads); graph check after churn: "
                  f"{'passed' if c0.get('graph_ok') else 'FAILED'}; {verdict}.", "",
                  "| ef | recall, fresh build | recall after churn | difference | QPS after churn (median) |",
                  "|---:|---:|---:|---:|---|"]
            for p in ch:
                L.append(f"| {p['ef']} | {p['fresh_recall']:.3f} | {p['recall']:.3f} | "
                         f"{p['recall'] - p['fresh_recall']:+.3f} | {p['qps']:,.0f} ({p['qps_median']:,.0f}) |")
        hp = r.get("http")
        L += ["", "### fanns over HTTP", ""]
        if not hp:
            L.append("Not run (`--skip-http`, or fannsd/wrk missing).")
        else:
            if hp.get("error"):
                L.append(f"**Failed:** {hp['error']}")
                L.append("")
            if "upsert_s" in hp:
                L.append(f"Upsert of {ds['n']:,} points (batches of 512, wait=true): {hp['upsert_s']:.1f} s "
                         f"({ds['n'] / hp['upsert_s']:,.0f} points/s); status green "
                         f"{hp.get('green_after_upsert_s', 0):.1f} s after the last upsert "
                         f"(indexed_vectors_count {hp.get('indexed_vectors_count')}); server peak RSS "
                         f"{fmt(mib(hp.get('peak_rss_bytes')), 0)} MiB.")
                L.append("")
            if hp.get("search"):
                L += ["`in-process all cores` is the index searched by one thread per core at once in",
                      "`bench_hnsw` (`--mt-threads`): what this machine's cores give together, which is less than",
                      "single-thread QPS x cores when the cores share caches, memory bandwidth or a physical core.", "",
                      "| hnsw_ef | recall | req/s (wrk) | connections | p50 ms | p99 ms | errors | req/s one connection | in-process QPS x cores | ratio | in-process all cores | ratio to it |",
                      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
                f = {p["ef"]: p for p in (r.get("fanns") or {}).get("search", [])}
                for p in hp["search"]:
                    ip = f.get(p["ef"])
                    ipc = ip["qps"] * m["cores"] if ip else None
                    mt = ip.get("mt_qps") if ip else None
                    L.append(f"| {p['ef']} | {p['recall']:.3f} | {p['rps']:,.0f} | {p['connections']} | {p['lat_p50_ms']} | "
                             f"{p['lat_p99_ms']} | {p['errors']} | {p['seq_qps']:,.0f} | {fmt(ipc)} | "
                             f"{fmt(ratio(p['rps'], ipc), 2)} | {fmt(mt)} | {fmt(ratio(p['rps'], mt), 2)} |")
        L.append("")
    with open(os.path.join(out, "benchmarks.md"), "w") as fh:
        fh.write("\n".join(L))


# ---------------------------------------------------------------------------------------------


def check(all_ds, ran, a):
    """--check: the outputs exist, parse and make sense (used by the bench.smoke test)."""
    bad = []
    for ds in ran:
        r = ds["results"]
        for s in SYSTEMS:
            x = r.get(s)
            if x is None:
                continue
            if x.get("error"):
                bad.append(f"{ds['name']}/{s}: {x['error']}")
                continue
            if not x.get("build") or not x.get("memory") or not x.get("search"):
                bad.append(f"{ds['name']}/{s}: incomplete output")
                continue
            for p in x["search"]:
                if not (0.0 <= p["recall"] <= 1.0 and p["qps"] > 0):
                    bad.append(f"{ds['name']}/{s}: bad point {p}")
            best = max(p["recall"] for p in x["search"])
            floor = 0.99 if s == "exact" else 0.9
            if best < floor:
                bad.append(f"{ds['name']}/{s}: best recall {best} < {floor}")
            if x["memory"]["peak_rss_bytes"] <= 0 or x["build"]["build_s"] < 0:
                bad.append(f"{ds['name']}/{s}: bad build/memory line")
            if x["build"].get("graph_ok") is False:
                bad.append(f"{ds['name']}/{s}: graph check failed after the build")
            if s == "fanns" and a.churn:
                ch = x.get("churn") or []
                if len(ch) != len(x["search"]) or any(not p.get("graph_ok") for p in ch):
                    bad.append(f"{ds['name']}/fanns: churn missing or graph check failed after it: {ch}")
        hp = r.get("http")
        if hp is not None:
            if hp.get("error"):
                bad.append(f"{ds['name']}/http: {hp['error']}")
            elif not hp.get("search") or max(p["recall"] for p in hp["search"]) < 0.9 or \
                    any(p["errors"] or p["rps"] <= 0 for p in hp["search"]):
                bad.append(f"{ds['name']}/http: bad results {hp.get('search')}")
        if not os.path.exists(os.path.join(a.out, plot_name(ds))):
            bad.append(f"{ds['name']}: plot missing")
    md = open(os.path.join(a.out, "benchmarks.md")).read()
    for ds in ran:
        if ds["name"] not in md:
            bad.append(f"benchmarks.md lacks {ds['name']}")
    expected = ["hnswlib"] if os.path.exists(os.path.join(a.build_dir, "tests", "bench", "bench_hnswlib")) else []
    if os.path.exists(os.path.join(a.build_dir, "tests", "bench", "bench_hnsw")):
        expected.append("fanns")
    if not a.skip_faiss and have_faiss():
        expected += ["faiss", "exact"]
    for ds in ran:
        for s in expected:
            if s in a.systems and ds["results"].get(s) is None:
                bad.append(f"{ds['name']}: {s} did not run")
    if bad:
        log("CHECK FAILED:\n  " + "\n  ".join(bad))
        return False
    log("check: ok")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"),
                    help="the shared folder holding workload/arxiv_like.py (default <repo>/../shared)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs"), help="where benchmarks.md, plots and results go")
    ap.add_argument("--sizes", default="100000", help="comma-separated base sizes")
    ap.add_argument("--dims", default="384,768", help="comma-separated dimensions")
    ap.add_argument("--queries", type=int, default=1000, help="queries generated (a tenth are unfiltered)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--efs", default=DEFAULT_EFS)
    ap.add_argument("--http-efs", default=None, help="hnsw_ef values over HTTP (default: --efs)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed passes per ef, at least")
    ap.add_argument("--http-duration", type=int, default=10, help="seconds of wrk load per hnsw_ef")
    ap.add_argument("--fannsd", default=None, help="server binary (default <build-dir>/fannsd)")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--green-timeout", type=float, default=3600)
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="subset of " + ",".join(SYSTEMS))
    ap.add_argument("--quick", action="store_true", help="20k x 128, few ef values, short runs (sanity check)")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-faiss", action="store_true", help="skip the FAISS HNSW and exact baselines")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in --build-dir")
    ap.add_argument("--check", action="store_true", help="verify outputs parse and are sane; exit 1 if not")
    ap.add_argument("--churn", action="store_true",
                    help="fanns: then delete and re-insert half of the points and measure recall again")
    a = ap.parse_args()
    if a.quick:
        a.sizes, a.dims, a.efs = "20000", "128", "16,32,64,128"
        a.http_efs = a.http_efs or "16,128"
        a.reps, a.min_time, a.http_duration = 3, 0.1, 1
    a.systems = a.systems.split(",")
    if a.skip_faiss:
        a.systems = [s for s in a.systems if s not in ("faiss", "exact")]
    a.build_dir, a.out = os.path.abspath(a.build_dir), os.path.abspath(a.out)
    os.makedirs(a.out, exist_ok=True)
    if not a.no_build:
        build(a)

    results_path = os.path.join(a.out, "bench-results.json")
    all_ds = {}
    if os.path.exists(results_path):
        with open(results_path) as f:
            all_ds = json.load(f).get("datasets", {})
    hnswlib_version = "?"
    try:
        hnswlib_version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libhnswlib-dev"], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True).stdout.strip() or "?"
    except OSError:
        pass
    command = "/usr/bin/python3 tests/bench/run_bench.py " + " ".join(sys.argv[1:])
    ran = []
    for n in [int(x) for x in a.sizes.split(",")]:
        for d in [int(x) for x in a.dims.split(",")]:
            info = dataset(a, n, d)
            ds = {"name": info["name"], "n": n, "dim": d, "machine": machine_info(), "command": command.strip(),
                  "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "versions": {"hnswlib": hnswlib_version}, "nq": int(np.load(info["gt"]).shape[0]), "results": {}}
            for s in SYSTEMS:
                if s in a.systems:
                    ds["results"][s] = run_system(a, s, info)
            if not a.skip_http:
                efs = [int(x) for x in (a.http_efs or a.efs).split(",")]
                ds["results"]["http"] = run_http(a, info, efs)
            summarize(ds)
            print_summary(ds)
            all_ds[ds["name"]] = ds
            ran.append(ds)
            with open(results_path, "w") as f:
                json.dump({"datasets": all_ds}, f, indent=1)
            plot(ds, os.path.join(a.out, plot_name(ds)))
            write_markdown(all_ds, a.out)
    log(f"wrote {os.path.join(a.out, 'benchmarks.md')}")
    if a.check and not check(all_ds, ran, a):
        sys.exit(1)


if __name__ == "__main__":
    main()
