#!/usr/bin/python3
"""test_crash: acknowledged writes survive SIGKILL, and every write request is atomic.

Each round, two client threads stream write requests with wait=true into one collection:
upserts of 100 new points, upserts that rewrite all 100 points of an earlier batch with a new
version, and deletes of all 100 points of an earlier batch.  Each thread records which
requests were acknowledged (HTTP 200, status "completed").  At a seeded random moment
(0.5-3 s) the server gets SIGKILL; then it is started again on the same directory and:

  * every acknowledged write is there: points with their exact vector and payload, deleted
    points gone;
  * the one request per thread that was in flight at the kill is applied either entirely or
    not at all (all 100 points of a slot carry the same version);
  * nothing else is there.

Three rounds run on the same directory, so later rounds also check that recovery after a
crash leaves a server that keeps earlier data and accepts new writes.  The run ends with a
SIGTERM that must exit 0.

Usage: test_crash.py --fannsd build/fannsd [--seed N] [--rounds 3]
"""

import os
import random
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fanns_harness as H  # noqa: E402

COLL = "crash"
DIM = 16
BATCH = 100
SLOTS_PER_THREAD = 1 << 20   # slot s holds ids [s*BATCH, (s+1)*BATCH)


def slot_vectors(slot, version):
    """Deterministic vectors of a slot at a version; multiples of 1/8 are exact in float32."""
    rng = np.random.default_rng(slot * 1000003 + version)
    return (rng.integers(-800, 800, size=(BATCH, DIM)) / 8.0).tolist()


def slot_payloads(slot, version, thread):
    return [{"slot": slot, "v": version, "j": j, "t": thread, "tag": ["x", "s%d" % (slot % 7)],
             "pad": "p" * (50 + (slot * 31 + j) % 200)} for j in range(BATCH)]


def slot_ids(slot):
    return list(range(slot * BATCH, (slot + 1) * BATCH))


class Writer(threading.Thread):
    """Streams writes until the connection fails.  `model` maps slot -> acknowledged version
    (None = deleted); `inflight` is (slot, version) of the request that had no answer."""

    def __init__(self, server, thread_no, round_no, model, rnd):
        super().__init__(daemon=True)
        self.client = H.Client("127.0.0.1", server.port, timeout=H.scaled(30))
        self.thread_no = thread_no
        self.round_no = round_no
        self.model = model          # shared across rounds for this thread
        self.rnd = rnd
        self.inflight = None
        self.acked = 0
        self.error = None           # an unexpected HTTP answer (a test failure)
        self.base_slot = thread_no * SLOTS_PER_THREAD + round_no * 10000

    def run(self):
        k = 0
        try:
            while True:
                live = [s for s, v in self.model.items() if v is not None]
                op = self.rnd.random()
                if live and op < 0.15:
                    slot, version = self.rnd.choice(live), None
                    body = {"points": slot_ids(slot)}
                    path = "/collections/%s/points/delete?wait=true" % COLL
                    method = "POST"
                elif live and op < 0.40:
                    slot = self.rnd.choice(live)
                    version = self.model[slot] + 1
                    body = self.batch_body(slot, version)
                    path, method = "/collections/%s/points?wait=true" % COLL, "PUT"
                else:
                    slot, version = self.base_slot + k, 0
                    k += 1
                    body = self.batch_body(slot, version)
                    path, method = "/collections/%s/points?wait=true" % COLL, "PUT"
                self.inflight = (slot, version)
                try:
                    r = self.client.request(method, path, body=body)
                except OSError:
                    return              # the kill: this request stays in flight
                if r.status != 200 or not isinstance(r.json, dict) or r.json.get("status") != "ok" \
                        or (r.json.get("result") or {}).get("status") != "completed":
                    self.error = "%s %s slot %d: %s" % (method, path, slot, r.describe())
                    return
                self.model[slot] = version
                self.inflight = None
                self.acked += 1
        finally:
            self.client.close()

    def batch_body(self, slot, version):
        if self.rnd.random() < 0.5:
            return {"points": [{"id": i, "vector": v, "payload": p} for i, v, p in
                               zip(slot_ids(slot), slot_vectors(slot, version),
                                   slot_payloads(slot, version, self.thread_no))]}
        return {"batch": {"ids": slot_ids(slot), "vectors": slot_vectors(slot, version),
                          "payloads": slot_payloads(slot, version, self.thread_no)}}


class Reader(threading.Thread):
    """Searches while the writers write, until the kill.  Every hit must be a whole point: its
    vector is the one written together with its payload (no torn read of a half-applied
    write), and it passes the search's filter."""

    def __init__(self, server, rnd):
        super().__init__(daemon=True)
        self.client = H.Client("127.0.0.1", server.port, timeout=H.scaled(30))
        self.rnd = rnd
        self.searches = 0
        self.error = None

    def run(self):
        try:
            while True:
                k = self.rnd.randrange(7)
                body = {"vector": [self.rnd.uniform(-100, 100) for _ in range(DIM)], "limit": 20,
                        "with_payload": True, "with_vector": True,
                        "filter": {"must": [{"key": "tag", "match": {"value": "s%d" % k}}]}}
                try:
                    r = self.client.request("POST", "/collections/%s/points/search" % COLL, body=body)
                except OSError:
                    return
                if r.status != 200 or not isinstance(r.result, list):
                    self.error = "search during writes: %s" % r.describe()
                    return
                for h in r.result:
                    p = h.get("payload") or {}
                    if p.get("tag") != ["x", "s%d" % k]:
                        self.error = "search hit %r does not pass the filter tag=s%d" % (p, k)
                        return
                    want = slot_vectors(p["slot"], p["v"])[p["j"]]
                    if h.get("vector") != want or h["id"] != p["slot"] * BATCH + p["j"]:
                        self.error = "torn read: point %r has payload of slot %d version %d but another vector" \
                            % (h["id"], p["slot"], p["v"])
                        return
                self.searches += 1
        finally:
            self.client.close()


def verify(c, models, inflights, what):
    """Checks the stored points against the acknowledged model plus the in-flight requests.
    Returns the models updated with whatever the in-flight requests turned out to have done."""
    recs = H.scroll_all(c, COLL, with_payload=True, with_vector=True, page=1000)
    stored = {}
    for r in recs:
        slot = r["id"] // BATCH
        stored.setdefault(slot, {})[r["id"]] = r
    failures = []
    known = set()
    for t, model in enumerate(models):
        infl = inflights[t]
        for slot in set(model) | ({infl[0]} if infl else set()):
            known.add(slot)
            acked = model.get(slot, None)
            got = stored.get(slot, {})
            versions = {r["payload"].get("v") for r in got.values()}
            allowed = [acked]
            if infl and infl[0] == slot:
                allowed.append(infl[1])
            if not got:
                state = None
            elif len(got) == BATCH and len(versions) == 1:
                state = versions.pop()
            else:
                failures.append("%s: slot %d half written: %d of %d points, versions %s (acked %r, in flight %r)"
                                % (what, slot, len(got), BATCH, sorted(versions, key=str), acked, infl))
                continue
            if state not in allowed:
                failures.append("%s: slot %d holds version %r, acknowledged %r, in flight %r"
                                % (what, slot, state, acked, infl))
                continue
            if state is not None:
                vecs = slot_vectors(slot, state)
                pays = slot_payloads(slot, state, t)
                for j, pid in enumerate(slot_ids(slot)):
                    r = got.get(pid)
                    if r is None or r["payload"] != pays[j] or r.get("vector") != vecs[j]:
                        failures.append("%s: point %d differs from version %r (payload %s)"
                                        % (what, pid, state, None if r is None else str(r["payload"])[:100]))
                        break
            model[slot] = state
    extra = set(stored) - known
    if extra:
        failures.append("%s: points of slots never written: %s" % (what, sorted(extra)[:10]))
    n = H.count(c, COLL)
    if n != len(recs):
        failures.append("%s: count %d but scroll found %d points" % (what, n, len(recs)))
    assert not failures, "\n".join(failures[:20])
    return len(recs)


def main():
    def extra(p):
        p.add_argument("--seed", type=int, default=int(os.environ.get("FANNS_TEST_SEED", "20240611")))
        p.add_argument("--rounds", type=int, default=3)
    args, _ = H.parse_args(sys.argv[1:], extra)
    rnd = random.Random(args.seed)
    print("test_crash: seed %d, %d rounds" % (args.seed, args.rounds), flush=True)
    srv = H.Server(args.fannsd)
    models = [{}, {}]
    try:
        srv.start()
        c = srv.client()
        H.create_collection(c, COLL, DIM, "Euclid")
        for rnd_no in range(args.rounds):
            writers = [Writer(srv, t, rnd_no, models[t], random.Random(rnd.random())) for t in range(2)]
            reader = Reader(srv, random.Random(rnd.random()))
            for w in writers:
                w.start()
            reader.start()
            delay = rnd.uniform(0.5, 3.0) * H.TIME_SCALE
            time.sleep(delay)
            for w in writers:
                assert w.is_alive() or w.error is None, "writer failed before the kill: %s" % w.error
            srv.kill()
            reader.join(H.scaled(60))
            assert not reader.is_alive(), "reader thread did not stop after the kill"
            assert reader.error is None, "round %d: %s" % (rnd_no, reader.error)
            for w in writers:
                w.join(H.scaled(60))
                assert not w.is_alive(), "writer thread did not stop after the kill"
                assert w.error is None, "round %d: unexpected answer before the kill: %s" % (rnd_no, w.error)
            srv.start()
            c = srv.client()
            n = verify(c, models, [w.inflight for w in writers], "round %d" % rnd_no)
            print("round %d: killed after %.2f s; acknowledged %s writes; in flight %s; %d points stored; "
                  "%d searches during the writes" % (rnd_no, delay, [w.acked for w in writers],
                                                     [w.inflight for w in writers], n, reader.searches), flush=True)
            assert sum(w.acked for w in writers) > 0, "round %d: no write was acknowledged before the kill" % rnd_no
            # The recovered collection keeps its config and answers searches.
            info = c.get("/collections/" + COLL)
            v = info["config"]["params"]["vectors"]
            assert (v.get("size"), v.get("distance")) == (DIM, "Euclid"), info
            assert info["points_count"] == n, "points_count %r, stored %d" % (info["points_count"], n)
            hits = c.post("/collections/%s/points/search" % COLL, {"vector": [0.0] * DIM, "limit": 5})
            assert len(hits) == min(5, n), hits
        srv.stop()
        # And a clean restart after the last crash recovery changes nothing.
        srv.start()
        c = srv.client()
        verify(c, models, [None, None], "after the final clean restart")
        srv.stop()
    finally:
        srv.cleanup()
    print("test_crash: OK")


if __name__ == "__main__":
    main()
