#!/usr/bin/python3
"""test_quantization: compressed vector codes in collections, end to end over HTTP.

Collections are created without a graph (indexing_threshold 0), so every search is a scan and
runs on the codes once a codec is trained.  Checked against numpy brute force on clustered
data (4000 x 64):
  - exact: true and params.quantization.ignore: true return exactly the float32 results;
  - the default search (codes, then float32 rescoring) returns true scores and high recall,
    more with oversampling, and rescore: false returns code estimates;
  - filtered scans on codes return only passing points;
  - scalar (int8), product (FAISS PQ), binary and float16 codecs report the code size the
    docs promise in GET /collections/{c}?fanns=true;
  - a codebook survives a restart (reloaded, not retrained; same estimates);
  - PATCH to another codec retrains in the background while searches stay correct, writes
    made meanwhile are encoded with the new codec, and "Disabled" drops the codes;
  - bad params.quantization and quantization_config values get 400;
  - vectors.on_disk: true keeps no float32 vectors in RAM (memory report 0, codes unchanged)
    and answers exactly like the same data in RAM: exact, quantized+rescored and filtered
    searches, retrieve and scroll with vectors; it survives a restart, and PATCHing on_disk
    moves the vectors into RAM and back.

Usage: test_quantization.py --fannsd build/fannsd [-k Name]
"""

import os
import sys
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fanns_harness as H  # noqa: E402

# fannsd inherits this: FAISS's OpenMP k-means (product quantization) is ten times slower with
# libgomp's default busy-waiting threads on a shared two-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

N, D, NQ, K = 4000, 64, 30, 10
SCORE_EPS = 1e-4


def dataset(seed=7):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, D)).astype(np.float32) * 2.0
    lab = rng.integers(0, 40, N)
    x = centres[lab] + rng.standard_normal((N, D)).astype(np.float32)
    q = centres[rng.integers(0, 40, NQ)] + rng.standard_normal((NQ, D)).astype(np.float32)
    return x.astype(np.float32), q.astype(np.float32)


def true_scores(x, q, metric):
    if metric == "Cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q)
        return xn @ qn, True
    if metric == "Dot":
        return x @ q, True
    return np.sqrt(((x - q) ** 2).sum(axis=1)), False


def topk(scores, higher, k=K):
    order = np.argsort(-scores if higher else scores, kind="stable")
    return order[:k]


class QuantizationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.x, cls.q = dataset()
        cls.server = H.Server(H.ARGS.fannsd)
        cls.server.start()
        cls.c = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server.alive():
                cls.server.stop()
        finally:
            cls.server.cleanup()

    # helpers -------------------------------------------------------------------------------

    def make(self, name, metric, qcfg=None, payload=False, on_disk=None):
        body = {"optimizers_config": {"indexing_threshold": 0}}
        if qcfg is not None:
            body["quantization_config"] = qcfg
        if on_disk is None:
            H.create_collection(self.c, name, D, metric, **body)
        else:
            body["vectors"] = {"size": D, "distance": metric, "on_disk": on_disk}
            self.c.put("/collections/%s" % name, body)
        for a in range(0, N, 1000):
            pts = []
            for i in range(a, min(N, a + 1000)):
                p = {"id": i, "vector": self.x[i].tolist()}
                if payload:
                    p["payload"] = {"g": int(i % 10)}
                pts.append(p)
            H.upsert(self.c, name, pts)

    def info(self, name):
        return self.c.get("/collections/%s?fanns=true" % name)

    def wait_ready(self, name, codec, timeout=60):
        deadline = time.monotonic() + H.scaled(timeout)
        while time.monotonic() < deadline:
            inf = self.info(name)
            fq = inf["fanns"]["quantization"]
            if fq["status"] == "ready" and fq["active_codec"] == codec and inf["status"] == "green":
                return inf
            time.sleep(0.05)
        self.fail("codec %s of %s not ready: %r" % (codec, name, self.info(name)["fanns"]))

    def search(self, name, q, params=None, limit=K, flt=None):
        body = {"query": q.tolist(), "limit": limit, "params": dict(params or {}, explain=True)}
        if flt is not None:
            body["filter"] = flt
        r = self.c.post("/collections/%s/points/query" % name, body)
        return r["points"], r["explain"]

    def check_exact(self, name, metric, params):
        for qi in range(NQ):
            s, higher = true_scores(self.x, self.q[qi], metric)
            want = topk(s, higher)
            pts, ex = self.search(name, self.q[qi], params)
            self.assertNotIn("quantization", ex, "%s: an exact search used codes: %r" % (params, ex))
            got = [p["id"] for p in pts]
            kth = s[want[-1]]
            for pid, w in zip(got, want):
                if pid != w:  # only ties may differ
                    self.assertAlmostEqual(float(s[pid]), float(kth), delta=1e-5)
            for p in pts:
                self.assertAlmostEqual(p["score"], float(s[p["id"]]), delta=SCORE_EPS)

    def recall(self, name, metric, params=None, check_scores=True, flt_mod=None):
        hits = 0
        for qi in range(NQ):
            s, higher = true_scores(self.x, self.q[qi], metric)
            flt = None
            if flt_mod is not None:
                mask = (np.arange(N) % 10) < flt_mod
                s = np.where(mask, s, -np.inf if higher else np.inf)
                flt = {"must": [{"key": "g", "range": {"lt": flt_mod}}]}
            want = set(topk(s, higher).tolist())
            pts, ex = self.search(name, self.q[qi], params, flt=flt)
            self.assertIn("quantization", ex, "search did not use the codes: %r" % (ex,))
            self.assertEqual(len(pts), K)
            for p in pts:
                if flt_mod is not None:
                    self.assertLess(p["id"] % 10, flt_mod, "a point failing the filter was returned")
                if check_scores:
                    self.assertAlmostEqual(p["score"], float(s[p["id"]]), delta=SCORE_EPS,
                                           msg="rescored score is not the float32 score")
            hits += len(want & {p["id"] for p in pts})
        return hits / (NQ * K)

    # tests -----------------------------------------------------------------------------------

    def test_scalar_exact_rescore_oversampling_filter(self):
        self.make("sq", "Cosine", {"scalar": {"type": "int8"}}, payload=True)
        inf = self.wait_ready("sq", "sq8")
        fq = inf["fanns"]["quantization"]
        self.assertEqual(fq["code_size"], D)
        self.assertEqual(fq["trained_points"], N)  # 256 -> 1000 -> 2000 -> 4000: the last sample is everything
        mem = inf["fanns"]["memory"]
        self.assertGreaterEqual(mem["bytes_per_vector"]["codes"], D)
        self.assertGreaterEqual(mem["bytes_per_vector"]["vectors"], 4 * D)
        self.assertGreater(mem["process_resident_bytes"], 0)
        # Plain GET keeps Qdrant's shape (no extension object).
        self.assertNotIn("fanns", self.c.get("/collections/sq"))

        self.check_exact("sq", "Cosine", {"exact": True})
        self.check_exact("sq", "Cosine", {"quantization": {"ignore": True}})
        r1 = self.recall("sq", "Cosine")
        r4 = self.recall("sq", "Cosine", {"quantization": {"oversampling": 4}})
        rno = self.recall("sq", "Cosine", {"quantization": {"rescore": False}}, check_scores=False)
        rf = self.recall("sq", "Cosine", {"quantization": {"oversampling": 2}}, flt_mod=3)
        sys.stderr.write("sq8 recall@10: rescored %.3f, oversampling 4 %.3f, no rescoring %.3f, filtered 30%% x2 %.3f\n"
                         % (r1, r4, rno, rf))
        self.assertGreaterEqual(r1, 0.85)
        self.assertGreaterEqual(r4, 0.98)
        self.assertGreaterEqual(r4, r1)
        self.assertGreaterEqual(rno, 0.6)
        self.assertGreaterEqual(rf, 0.95)
        pts, ex = self.search("sq", self.q[0], {"quantization": {"rescore": False, "oversampling": 3}})
        self.assertEqual(ex["quantization"], {"codec": "sq8", "candidates": 3 * K, "rescored": False})
        s, _ = true_scores(self.x, self.q[0], "Cosine")
        self.assertTrue(any(abs(p["score"] - float(s[p["id"]])) > 1e-6 for p in pts),
                        "rescore=false should return code estimates, not float32 scores")

    def test_codebook_survives_restart(self):
        self.make("persist", "Dot", {"scalar": {"type": "int8", "quantile": 0.99}})
        before = self.wait_ready("persist", "sq8")["fanns"]["quantization"]
        est_before = [self.search("persist", self.q[i], {"quantization": {"rescore": False}})[0] for i in range(5)]
        self.server.restart()
        self.__class__.c = self.server.client()
        after = self.wait_ready("persist", "sq8")["fanns"]["quantization"]
        self.assertEqual(after["codebook_checksum"], before["codebook_checksum"])
        self.assertEqual(after["trained_points"], before["trained_points"])
        log = self.server.log_tail(400)
        self.assertIn("loaded the sq8 codebook of persist", log)
        self.assertNotIn("codes of persist ready (64 B per vector, trained on", log.split("loaded the sq8 codebook of persist")[0])
        est_after = [self.search("persist", self.q[i], {"quantization": {"rescore": False}})[0] for i in range(5)]
        self.assertEqual(est_before, est_after, "code estimates changed across the restart")

    def test_patch_retrains_in_background(self):
        self.make("patch", "Euclid", {"scalar": {"type": "int8"}})
        self.wait_ready("patch", "sq8")
        self.c.call("PATCH", "/collections/patch", {"quantization_config": {"product": {"compression": "x16"}}})
        # Overwrite 500 points while the new codec trains: they must be encoded with it.
        rng = np.random.default_rng(99)
        newv = (self.x[:500] + rng.standard_normal((500, D)).astype(np.float32)).astype(np.float32)
        H.upsert(self.c, "patch", [{"id": i, "vector": newv[i].tolist()} for i in range(500)], wait=False)
        self.x_patch = self.x.copy()
        self.x_patch[:500] = newv
        # Searches stay correct while the codec changes.
        deadline = time.monotonic() + H.scaled(60)
        seen = set()
        while time.monotonic() < deadline:
            inf = self.info("patch")
            seen.add((inf["status"], inf["fanns"]["quantization"]["status"], inf["fanns"]["quantization"]["active_codec"]))
            pts, ex = self.search("patch", self.q[1], {"exact": True})
            s, _ = true_scores(self.x_patch, self.q[1], "Euclid")
            s_old, _ = true_scores(self.x, self.q[1], "Euclid")
            for p in pts:  # the unwaited upsert may or may not be applied yet
                self.assertTrue(abs(p["score"] - float(s[p["id"]])) < SCORE_EPS or
                                abs(p["score"] - float(s_old[p["id"]])) < SCORE_EPS)
            pts, ex = self.search("patch", self.q[1])
            for p in pts:
                self.assertTrue(abs(p["score"] - float(s[p["id"]])) < SCORE_EPS or
                                abs(p["score"] - float(s_old[p["id"]])) < SCORE_EPS)
            if inf["fanns"]["quantization"]["active_codec"] == "pq" and inf["status"] == "green":
                break
            time.sleep(0.02)
        sys.stderr.write("states seen during the PATCH: %r\n" % sorted(seen))
        inf = self.wait_ready("patch", "pq")
        self.assertEqual(inf["fanns"]["quantization"]["code_size"], D * 4 // 16)
        self.assertEqual(inf["config"]["quantization_config"], {"product": {"compression": "x16"}})
        self.x, saved = self.x_patch, self.x
        try:
            r = self.recall("patch", "Euclid", {"quantization": {"oversampling": 4}})
            sys.stderr.write("pq x16 recall@10 with oversampling 4: %.3f\n" % r)
            self.assertGreaterEqual(r, 0.8)
            # The overwritten points carry codes of their new vectors: each finds itself first
            # on code estimates alone.
            for i in (3, 77, 499):
                pts, ex = self.search("patch", newv[i], {"quantization": {"rescore": False}}, limit=1)
                self.assertEqual(pts[0]["id"], i)
            # Binary next, then off.
            self.c.call("PATCH", "/collections/patch", {"quantization_config": {"binary": {}}})
            inf = self.wait_ready("patch", "bin")
            self.assertEqual(inf["fanns"]["quantization"]["code_size"], 8 * ((D + 63) // 64) + 12)
            rb = self.recall("patch", "Euclid", {"quantization": {"oversampling": 8}})
            sys.stderr.write("binary recall@10 with oversampling 8: %.3f\n" % rb)
            self.assertGreaterEqual(rb, 0.7)
            self.c.call("PATCH", "/collections/patch", {"quantization_config": "Disabled"})
            inf = self.info("patch")
            self.assertEqual(inf["fanns"]["quantization"]["status"], "none")
            self.assertIsNone(inf["fanns"]["quantization"]["active_codec"])
            self.assertEqual(inf["fanns"]["memory"]["bytes"]["codes"], 0)
            self.assertIsNone(inf["config"]["quantization_config"])
            pts, ex = self.search("patch", self.q[0])
            self.assertEqual(ex["strategy"], "exact_scan")
            self.check_exact("patch", "Euclid", {})
        finally:
            self.x = saved

    def test_float16_datatype(self):
        H.create_collection(self.c, "f16", D, "Cosine", optimizers_config={"indexing_threshold": 0})
        self.c.call("DELETE", "/collections/f16")
        self.c.put("/collections/f16", {"vectors": {"size": D, "distance": "Cosine", "datatype": "float16"},
                                        "optimizers_config": {"indexing_threshold": 0}})
        for a in range(0, N, 1000):
            H.upsert(self.c, "f16", [{"id": i, "vector": self.x[i].tolist()} for i in range(a, min(N, a + 1000))])
        inf = self.wait_ready("f16", "f16")
        self.assertEqual(inf["fanns"]["quantization"]["code_size"], 2 * D)
        r = self.recall("f16", "Cosine")
        self.assertGreaterEqual(r, 0.99)

    def same_answers(self, a, b, metric):
        """Collections a and b hold the same points: every read answers the same."""
        flt = {"must": [{"key": "g", "range": {"lt": 3}}]}
        for qi in range(0, NQ, 3):
            for params, f in (({"exact": True}, None), ({}, None), ({"quantization": {"oversampling": 2}}, flt),
                              ({"quantization": {"rescore": False}}, None)):
                body = {"query": self.q[qi].tolist(), "limit": K, "params": params, "with_vector": True,
                        "with_payload": True}
                if f is not None:
                    body["filter"] = f
                ra = self.c.post("/collections/%s/points/query" % a, body)["points"]
                rb = self.c.post("/collections/%s/points/query" % b, body)["points"]
                self.assertEqual([(p["id"], p["score"], p["vector"], p["payload"]) for p in ra],
                                 [(p["id"], p["score"], p["vector"], p["payload"]) for p in rb], "params %r" % (params,))
                if "rescore" not in params.get("quantization", {}):  # float32 scores, read from disk in b
                    s, _ = true_scores(self.x, self.q[qi], metric)
                    for p in rb:
                        self.assertAlmostEqual(p["score"], float(s[p["id"]]), delta=SCORE_EPS)
        ids = list(range(0, N + 20, 37))
        ga = self.c.post("/collections/%s/points" % a, {"ids": ids, "with_vector": True})
        gb = self.c.post("/collections/%s/points" % b, {"ids": ids, "with_vector": True})
        self.assertEqual(ga, gb)
        for p in gb:  # the vectors read back from disk are the ones written
            self.assertTrue(np.allclose(p["vector"], self.x[p["id"]], atol=1e-6))
        sa = self.c.post("/collections/%s/points/scroll" % a, {"limit": 700, "with_vector": True, "offset": 100})
        sb = self.c.post("/collections/%s/points/scroll" % b, {"limit": 700, "with_vector": True, "offset": 100})
        self.assertEqual(sa, sb)
        self.assertEqual(self.c.post("/collections/%s/points/count" % b, {"filter": flt}),
                         self.c.post("/collections/%s/points/count" % a, {"filter": flt}))

    def test_on_disk_vectors(self):
        self.make("od_ram", "Euclid", {"scalar": {"type": "int8", "always_ram": True}}, payload=True)
        self.make("od_disk", "Euclid", {"scalar": {"type": "int8", "always_ram": True}}, payload=True, on_disk=True)
        ram = self.wait_ready("od_ram", "sq8")
        disk = self.wait_ready("od_disk", "sq8")
        self.assertIs(disk["config"]["params"]["vectors"]["on_disk"], True)
        mr, md = ram["fanns"]["memory"]["bytes"], disk["fanns"]["memory"]["bytes"]
        sys.stderr.write("on_disk memory: %r (in RAM: %r)\n" % (md, mr))
        self.assertEqual(md["vectors"], 0, "on_disk vectors must not be counted in RAM")
        self.assertGreaterEqual(mr["vectors"], N * D * 4)
        self.assertEqual(md["codes"], mr["codes"])
        self.assertGreater(md["codes"], 0)
        # In-RAM vector bytes of the on-disk collection: only the codes (int8: d + 4 for Euclid).
        self.assertLessEqual(md["codes"] + md["vectors"], 0.3 * mr["vectors"])
        self.assertEqual(disk["fanns"]["quantization"]["codebook_checksum"],
                         ram["fanns"]["quantization"]["codebook_checksum"])
        self.check_exact("od_disk", "Euclid", {"exact": True})
        r = self.recall("od_disk", "Euclid", {"quantization": {"oversampling": 4}})
        self.assertGreaterEqual(r, 0.98)
        self.same_answers("od_ram", "od_disk", "Euclid")

        # Restart: still on disk, same answers.
        self.server.restart()
        self.__class__.c = self.server.client()
        disk = self.wait_ready("od_disk", "sq8")
        self.wait_ready("od_ram", "sq8")
        mem = disk["fanns"]["memory"]
        self.assertEqual(mem["bytes"]["vectors"], 0)
        self.assertGreater(mem["process_anonymous_bytes"], 0)
        self.assertLessEqual(mem["process_anonymous_bytes"], mem["process_resident_bytes"])
        self.same_answers("od_ram", "od_disk", "Euclid")

        # PATCH on_disk false loads the vectors into RAM; true drops them again.
        self.c.call("PATCH", "/collections/od_disk", {"vectors": {"": {"on_disk": False}}})
        inf = self.info("od_disk")
        self.assertIs(inf["config"]["params"]["vectors"]["on_disk"], False)
        self.assertEqual(inf["fanns"]["memory"]["bytes"]["vectors"], mr["vectors"])
        self.same_answers("od_ram", "od_disk", "Euclid")
        self.c.call("PATCH", "/collections/od_disk", {"vectors": {"on_disk": True}})
        inf = self.info("od_disk")
        self.assertEqual(inf["fanns"]["memory"]["bytes"]["vectors"], 0)
        # Writes and deletes on disk, the same on both.
        rng = np.random.default_rng(5)
        newv = (self.x[:300] + rng.standard_normal((300, D)).astype(np.float32)).astype(np.float32)
        saved = self.x
        self.x = self.x.copy()
        self.x[:300] = newv
        try:
            for name in ("od_ram", "od_disk"):
                H.upsert(self.c, name, [{"id": i, "vector": newv[i].tolist(), "payload": {"g": i % 10}} for i in range(300)])
                self.c.post("/collections/%s/points/delete?wait=true" % name, {"points": list(range(1000, 1100))})
            self.same_answers("od_ram", "od_disk", "Euclid")
        finally:
            self.x = saved

    def test_bad_input(self):
        H.create_collection(self.c, "bad", D, "Manhattan")
        # Wrong types are format errors (400); a value out of range is a validation error,
        # 422 as for every other range check (Qdrant's validator answers the same way).
        for params, status in (({"quantization": {"oversampling": 0.5}}, 422), ({"quantization": {"oversampling": "2"}}, 400),
                               ({"quantization": {"rescore": "yes"}}, 400), ({"quantization": {"ignore": 1}}, 400),
                               ({"quantization": {"oversample": 2}}, 400), ({"quantization": 3}, 400)):
            r = self.c.call("POST", "/collections/bad/points/query", {"query": [0.0] * D, "limit": 3, "params": params},
                            expect=status)
            self.assertIn("quantization", r.json["status"]["error"])
        self.c.call("PUT", "/collections/bad2", {"vectors": {"size": 4, "distance": "Manhattan"},
                                                "quantization_config": {"binary": {}}}, expect=422)
        self.c.call("PATCH", "/collections/bad", {"quantization_config": {"binary": {}}}, expect=422)
        self.c.call("PATCH", "/collections/bad", {"quantization_config": {"scalar": {"type": "int8",
                                                                                     "fanns_training_sample": 10}}},
                    expect=422)
        self.c.call("PATCH", "/collections/bad", {"quantization_config": {"scalar": {"type": "int4"}}}, expect=400)
        self.c.call("PATCH", "/collections/bad", {"quantization_config": "Disabled"})
        self.c.call("GET", "/collections/bad?fanns=maybe", expect=400)


if __name__ == "__main__":
    H.run_unittest()
