#!/usr/bin/python3
"""test_api: every public REST endpoint of fannsd against the Qdrant v1.x shapes, black-box.

Starts one server on a temporary directory for most tests (each test uses its own collection),
computes expected search results by numpy brute force for every metric, checks every filter
condition over HTTP against predicates written out in Python, and finally (RestartTest) checks
that a SIGTERM + restart on the same directory restores collections, config, points and payloads.

Usage: test_api.py --fannsd build/fannsd [unittest options, e.g. -k Filter]
"""

import datetime
import json
import os
import random
import sys
import time
import unittest
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fanns_harness as H  # noqa: E402

SERVER = None
C = None


def setUpModule():
    global SERVER, C
    SERVER = H.Server(H.ARGS.fannsd).start()
    C = SERVER.client()


def tearDownModule():
    try:
        if SERVER is not None and SERVER.proc is not None:
            assert SERVER.alive(), "fannsd died during the tests\n" + SERVER.log_tail()
            SERVER.stop()
    finally:
        if SERVER is not None:
            SERVER.cleanup()


def U(i):
    """A deterministic UUID for test point i."""
    return str(uuid.UUID(int=(0x5A5A << 112) + i * 0x1000193 + 7))


# --- brute force -----------------------------------------------------------------------------

HIGHER_IS_BETTER = {"Cosine": True, "Dot": True, "Euclid": False, "Manhattan": False}


def normalise(v):
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v.astype(np.float64))
    return (v / n).astype(np.float32) if n > 0 else v


def scores(metric, base, q):
    """Scores of every row of base (float32 [n,d], as the client sent them) for query q."""
    b = base.astype(np.float64)
    q = np.asarray(q, dtype=np.float64)
    if metric == "Cosine":
        bn = b / np.linalg.norm(b, axis=1, keepdims=True)
        return bn @ (q / np.linalg.norm(q))
    if metric == "Dot":
        return b @ q
    if metric == "Euclid":
        return np.sqrt(((b - q) ** 2).sum(axis=1))
    if metric == "Manhattan":
        return np.abs(b - q).sum(axis=1)
    raise ValueError(metric)


def brute_topk(metric, base, ids, q, k, offset=0, mask=None, threshold=None):
    s = scores(metric, base, q)
    idx = np.arange(len(ids))
    if mask is not None:
        idx = idx[mask]
    hib = HIGHER_IS_BETTER[metric]
    if threshold is not None:
        idx = idx[s[idx] >= threshold] if hib else idx[s[idx] <= threshold]
    order = idx[np.argsort(-s[idx] if hib else s[idx], kind="stable")]
    sel = order[offset:offset + k]
    return [ids[i] for i in sel], [float(s[i]) for i in sel]


def vec_params(info):
    """(size, distance) of a collection's single unnamed vector from GET /collections/{c}."""
    v = info["config"]["params"]["vectors"]
    return v.get("size"), v.get("distance")


def close(a, b, tol=1e-4):
    return abs(a - b) <= tol * max(1.0, abs(b))


def check_scored(testcase, hits, want_ids, want_scores, what, with_payload=None, with_vector=None):
    """Asserts the hits have the expected ids in the expected order and scores within 1e-4."""
    testcase.assertIsInstance(hits, list, "%s: hits should be a list" % what)
    got_ids = [h.get("id") for h in hits]
    testcase.assertEqual(got_ids, want_ids, "%s: ids/order differ\n got scores %s\n want scores %s"
                         % (what, [h.get("score") for h in hits], want_scores))
    for h, s in zip(hits, want_scores):
        testcase.assertTrue(isinstance(h.get("score"), (int, float)) and close(h["score"], s),
                            "%s: id %r score %r, brute force %r" % (what, h["id"], h.get("score"), s))
        testcase.assertTrue(isinstance(h.get("version"), int) and not isinstance(h.get("version"), bool),
                            "%s: ScoredPoint.version must be an integer: %r" % (what, h))


# --- service ---------------------------------------------------------------------------------

class ServiceTest(unittest.TestCase):
    def test_root_version(self):
        r = C.request("GET", "/")
        self.assertEqual(r.status, 200, r.describe())
        self.assertIsInstance(r.json, dict, r.describe())
        # Qdrant answers GET / with a bare VersionInfo object (no envelope); the JS and Python
        # clients read `.version` from it.
        self.assertIsInstance(r.json.get("title"), str, r.describe())
        v = r.json.get("version")
        self.assertIsInstance(v, str, r.describe())
        parts = v.split(".")
        self.assertTrue(len(parts) >= 2 and parts[0] == "1" and parts[1].isdigit(),
                        "version should be 1.x.y to satisfy the Qdrant clients' check: %r" % v)

    def test_health(self):
        for path in ("/healthz", "/livez", "/readyz"):
            r = C.request("GET", path)
            self.assertEqual(r.status, 200, "%s: %s" % (path, r.describe()))
            self.assertTrue(len(r.raw) > 0, "%s: empty body" % path)

    def test_json_content_type(self):
        r = C.request("GET", "/collections")
        self.assertEqual(r.status, 200, r.describe())
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"),
                        "content-type: %r" % r.headers.get("content-type"))

    def test_pipelined_requests(self):
        # HTTP/1.1 pipelining: three requests written at once are answered in order.
        import socket
        H.create_collection(C, "pipe", 2, "Dot")
        H.upsert(C, "pipe", [{"id": 5, "vector": [1, 2], "payload": {"k": "v"}}])
        body = b'{"limit": 1}'
        reqs = (b"GET /collections/pipe/points/5 HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /collections/pipe/points/count HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\n\r\n{}"
                b"POST /collections/pipe/points/scroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        s = socket.create_connection(("127.0.0.1", SERVER.port), timeout=H.scaled(10))
        try:
            s.sendall(reqs)
            f = s.makefile("rb")
            results = []
            for _ in range(3):
                status = f.readline()
                self.assertTrue(status.startswith(b"HTTP/1.1 200"), "pipelined response: %r" % status)
                length = None
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""):
                        break
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                self.assertIsNotNone(length, "pipelined response without Content-Length")
                results.append(json.loads(f.read(length))["result"])
        finally:
            s.close()
        self.assertEqual(results[0]["id"], 5)
        self.assertEqual(results[1], {"count": 1})
        self.assertEqual([p["id"] for p in results[2]["points"]], [5])
        C.delete("/collections/pipe")

    def test_unknown_path_404(self):
        r = C.request("GET", "/no/such/endpoint")
        self.assertEqual(r.status, 404, r.describe())


# --- collections -----------------------------------------------------------------------------

class CollectionTest(unittest.TestCase):
    def test_lifecycle(self):
        H.create_collection(C, "life", 4, "Dot")
        names = [x.get("name") for x in C.get("/collections")["collections"]]
        self.assertIn("life", names)
        self.assertEqual(C.get("/collections/life/exists"), {"exists": True})
        self.assertEqual(C.get("/collections/nope_never/exists"), {"exists": False})
        info = C.get("/collections/life")
        self.assertEqual(info.get("status"), "green", info)
        self.assertEqual(info.get("points_count"), 0, info)
        self.assertEqual(vec_params(info), (4, "Dot"), info)
        # Fields the Python client's pydantic model requires.
        for key in ("optimizer_status", "payload_schema", "segments_count", "config", "status"):
            self.assertIn(key, info, "collection info lacks %r: %s" % (key, info))
        self.assertEqual(info["optimizer_status"], "ok", info)
        self.assertIsInstance(info["payload_schema"], dict, info)
        for key in ("hnsw_config", "optimizer_config"):
            self.assertIsInstance(info["config"].get(key), dict, "config lacks %s: %s" % (key, info))
        for key in ("m", "ef_construct"):
            v = info["config"]["hnsw_config"].get(key)
            self.assertTrue(isinstance(v, int) and v > 0, "default hnsw_config.%s: %r" % (key, v))
        self.assertIs(C.delete("/collections/life"), True)
        self.assertEqual(C.get("/collections/life/exists"), {"exists": False})
        r = C.request("GET", "/collections/life")
        self.assertEqual(r.status, 404, r.describe())
        names = [x.get("name") for x in C.get("/collections")["collections"]]
        self.assertNotIn("life", names)

    def test_all_distances_and_config_stored(self):
        for dist in ("Cosine", "Euclid", "Dot", "Manhattan"):
            name = "cfg_" + dist.lower()
            H.create_collection(C, name, 7, dist,
                                hnsw_config={"m": 8, "ef_construct": 64},
                                optimizers_config={"indexing_threshold": 0},
                                quantization_config={"scalar": {"type": "int8", "quantile": 0.99,
                                                                "always_ram": True}})
            info = C.get("/collections/" + name)
            cfg = info["config"]
            self.assertEqual(vec_params(info), (7, dist), info)
            self.assertEqual(cfg["hnsw_config"].get("m"), 8, cfg)
            self.assertEqual(cfg["hnsw_config"].get("ef_construct"), 64, cfg)
            self.assertEqual(cfg["optimizer_config"].get("indexing_threshold"), 0, cfg)
            q = cfg.get("quantization_config")
            self.assertIsInstance(q, dict, "quantization_config not stored: %s" % cfg)
            self.assertEqual(q.get("scalar", {}).get("type"), "int8", cfg)
            C.delete("/collections/" + name)

    def test_duplicate_409(self):
        H.create_collection(C, "dup", 3, "Euclid")
        r = C.call("PUT", "/collections/dup", {"vectors": {"size": 3, "distance": "Euclid"}}, expect=409)
        self.assertIn("dup", r.json["status"]["error"])
        C.delete("/collections/dup")

    def test_delete_missing(self):
        # Qdrant answers 200 with result false for a collection that does not exist; 404 is
        # also acceptable.  Either way it must not be a success claiming deletion.
        r = C.request("DELETE", "/collections/never_was")
        if r.status == 200:
            H.check_ok_envelope(r, "DELETE missing")
            self.assertIs(r.json["result"], False, r.describe())
        else:
            self.assertEqual(r.status, 404, r.describe())
            H.check_error_envelope(r, "DELETE missing")

    def test_payload_index(self):
        H.create_collection(C, "pidx", 2, "Dot")
        H.upsert(C, "pidx", [{"id": 1, "vector": [1, 0], "payload": {"city": "x", "n": 3}}])
        res = C.put("/collections/pidx/index?wait=true", {"field_name": "city", "field_schema": "keyword"})
        H.check_update_result(res, True, "create keyword index")
        res = C.put("/collections/pidx/index?wait=true",
                    {"field_name": "n", "field_schema": {"type": "integer", "range": True, "lookup": True}})
        H.check_update_result(res, True, "create integer index")
        schema = C.get("/collections/pidx")["payload_schema"]
        self.assertEqual(schema.get("city", {}).get("data_type"), "keyword", schema)
        self.assertEqual(schema.get("n", {}).get("data_type"), "integer", schema)
        res = C.delete("/collections/pidx/index/city?wait=true")
        H.check_update_result(res, True, "delete index")
        schema = C.get("/collections/pidx")["payload_schema"]
        self.assertNotIn("city", schema)
        self.assertIn("n", schema)
        # Filtering on the indexed field still works.
        self.assertEqual(H.count(C, "pidx", {"must": [{"key": "n", "match": {"value": 3}}]}), 1)
        C.delete("/collections/pidx")


# --- points ----------------------------------------------------------------------------------

class PointsTest(unittest.TestCase):
    def setUp(self):
        self.name = "pts_" + self._testMethodName
        H.create_collection(C, self.name, 3, "Euclid")
        self.base = "/collections/" + self.name

    def tearDown(self):
        C.delete("/collections/" + self.name)

    def retrieve(self, ids, with_payload=True, with_vector=True):
        res = C.post(self.base + "/points", {"ids": ids, "with_payload": with_payload,
                                             "with_vector": with_vector})
        self.assertIsInstance(res, list, "retrieve should give a list of records: %r" % (res,))
        return {r["id"]: r for r in res}

    def test_both_upsert_forms_and_retrieve(self):
        u0, u1 = U(0), U(1)
        res = C.put(self.base + "/points?wait=true", {"points": [
            {"id": 1, "vector": [1, 2, 3], "payload": {"a": 1}},
            {"id": u0, "vector": [0.5, 0.25, -1], "payload": {"s": "x", "arr": [1, 2]}},
            {"id": 0, "vector": [0, 0, 1]},
        ]})
        H.check_update_result(res, True, "upsert points")
        res = C.put(self.base + "/points?wait=true", {"batch": {
            "ids": [2, u1, 3], "vectors": [[4, 5, 6], [7, 8, 9], [-1, -2, -3]],
            "payloads": [{"b": True}, {"c": None}, {}]}})
        H.check_update_result(res, True, "upsert batch")
        res = C.put(self.base + "/points?wait=true", {"batch": {"ids": [4], "vectors": [[1, 1, 1]]}})
        H.check_update_result(res, True, "upsert batch without payloads")

        got = self.retrieve([1, 2, 3, 4, u0, u1, 0, 999])
        self.assertEqual(set(got), {1, 2, 3, 4, u0, u1, 0},
                         "retrieve ids (a missing id is left out)")
        self.assertEqual(got[1]["payload"], {"a": 1})
        self.assertEqual(got[1]["vector"], [1.0, 2.0, 3.0])
        self.assertEqual(got[u0]["payload"], {"s": "x", "arr": [1, 2]})
        self.assertEqual(got[u0]["vector"], [0.5, 0.25, -1.0])
        self.assertEqual(got[2]["payload"], {"b": True})
        self.assertEqual(got[u1]["payload"], {"c": None})
        self.assertEqual(got[u1]["vector"], [7.0, 8.0, 9.0])
        self.assertIn(got[3]["payload"], ({}, None))
        self.assertIn(got[4]["payload"], ({}, None))
        self.assertEqual(got[0]["vector"], [0.0, 0.0, 1.0])

        # with_payload / with_vector false
        got = self.retrieve([1], with_payload=False, with_vector=False)
        self.assertIsNone(got[1].get("payload"), got)
        self.assertIsNone(got[1].get("vector"), got)

        # GET single point, int and uuid
        rec = C.get(self.base + "/points/2")
        self.assertEqual(rec["id"], 2)
        self.assertEqual(rec["payload"], {"b": True})
        self.assertEqual(rec["vector"], [4.0, 5.0, 6.0])
        rec = C.get(self.base + "/points/" + u1)
        self.assertEqual(rec["id"], u1)
        r = C.request("GET", self.base + "/points/12345")
        self.assertEqual(r.status, 404, r.describe())
        H.check_error_envelope(r, "GET missing point")
        r = C.request("GET", self.base + "/points/" + U(77))
        self.assertEqual(r.status, 404, r.describe())
        self.assertEqual(C.get(self.base)["points_count"], 7)

    def test_uuid_canonical_form(self):
        u = U(5)
        H.upsert(C, self.name, [{"id": u.upper(), "vector": [1, 1, 1], "payload": {"k": 1}}])
        got = self.retrieve([u])
        self.assertEqual(list(got), [u], "an upper-case UUID should be stored as its canonical lower-case form")
        H.upsert(C, self.name, [{"id": u, "vector": [2, 2, 2], "payload": {"k": 2}}])
        self.assertEqual(C.get(self.base)["points_count"], 1, "the same UUID in two spellings is one point")

    def test_full_uint64_ids(self):
        # Qdrant ids are uint64: values above 2^63 (beyond a signed 64-bit JSON integer) work.
        big = [2 ** 63, 2 ** 63 + 12345, 2 ** 64 - 1]
        H.upsert(C, self.name, [{"id": i, "vector": [k, 0, 0], "payload": {"k": k}} for k, i in enumerate(big)])
        got = self.retrieve(big)
        self.assertEqual(set(got), set(big))
        self.assertEqual(got[2 ** 64 - 1]["payload"], {"k": 2})
        self.assertEqual(C.get(self.base + "/points/%d" % (2 ** 64 - 1))["id"], 2 ** 64 - 1)
        self.assertEqual([r["id"] for r in H.scroll_all(C, self.name, page=2)], big)
        hits = C.post(self.base + "/points/search", {"vector": [2, 0, 0], "limit": 1, "params": {"exact": True}})
        self.assertEqual(hits[0]["id"], 2 ** 64 - 1)

    def test_overwrite_on_reupsert(self):
        H.upsert(C, self.name, [{"id": 7, "vector": [1, 1, 1], "payload": {"a": 1, "b": 2}}])
        H.upsert(C, self.name, [{"id": 7, "vector": [3, 2, 1], "payload": {"c": 3}}])
        got = self.retrieve([7])
        self.assertEqual(got[7]["payload"], {"c": 3}, "re-upsert replaces the whole payload")
        self.assertEqual(got[7]["vector"], [3.0, 2.0, 1.0])
        self.assertEqual(C.get(self.base)["points_count"], 1)
        hits = C.post(self.base + "/points/search", {"vector": [3, 2, 1], "limit": 1, "params": {"exact": True}})
        self.assertEqual(hits[0]["id"], 7)
        self.assertTrue(close(hits[0]["score"], 0.0), hits)

    def test_wait_false(self):
        res = C.put(self.base + "/points?wait=false", {"points": [
            {"id": i, "vector": [i, 0, 0], "payload": {"i": i}} for i in range(50)]})
        H.check_update_result(res, False, "upsert wait=false")
        deadline = time.monotonic() + H.scaled(10)
        while H.count(C, self.name) != 50:
            self.assertLess(time.monotonic(), deadline, "wait=false upsert never became visible")
            time.sleep(0.05)
        self.assertEqual(self.retrieve([49])[49]["payload"], {"i": 49})

    def test_payload_set_overwrite_delete(self):
        H.upsert(C, self.name, [{"id": i, "vector": [i, 1, 1],
                                 "payload": {"a": i, "b": 0, "g": i % 2, "o": {"x": 1}}} for i in range(1, 7)])
        res = C.post(self.base + "/points/payload?wait=true",
                     {"payload": {"b": 2, "c": {"d": 1}, "o": {"y": 2}}, "points": [1, 2]})
        H.check_update_result(res, True, "set payload")
        got = self.retrieve([1, 2, 3], with_vector=False)
        self.assertEqual(got[1]["payload"], {"a": 1, "b": 2, "g": 1, "c": {"d": 1}, "o": {"y": 2}},
                         "set payload merges top-level keys (a whole key's value is replaced)")
        self.assertEqual(got[3]["payload"], {"a": 3, "b": 0, "g": 1, "o": {"x": 1}}, "untouched point")

        res = C.put(self.base + "/points/payload?wait=true", {"payload": {"z": 9}, "points": [2]})
        H.check_update_result(res, True, "overwrite payload")
        self.assertEqual(self.retrieve([2], with_vector=False)[2]["payload"], {"z": 9})
        self.assertEqual(self.retrieve([2])[2]["vector"], [2.0, 1.0, 1.0], "payload ops keep the vector")

        res = C.post(self.base + "/points/payload/delete?wait=true", {"keys": ["a", "o"], "points": [1, 3]})
        H.check_update_result(res, True, "delete payload keys")
        got = self.retrieve([1, 3, 4], with_vector=False)
        self.assertEqual(got[1]["payload"], {"b": 2, "g": 1, "c": {"d": 1}})
        self.assertEqual(got[3]["payload"], {"b": 0, "g": 1})
        self.assertEqual(got[4]["payload"], {"a": 4, "b": 0, "g": 0, "o": {"x": 1}})

        # The same operations selected by a filter.
        even = {"must": [{"key": "g", "match": {"value": 0}}]}
        C.post(self.base + "/points/payload?wait=true", {"payload": {"even": True}, "filter": even})
        got = self.retrieve([4, 5, 6], with_vector=False)
        self.assertTrue(got[4]["payload"].get("even") is True and got[6]["payload"].get("even") is True, got)
        self.assertNotIn("even", got[5]["payload"])
        C.post(self.base + "/points/payload/delete?wait=true", {"keys": ["b"], "filter": even})
        got = self.retrieve([4, 5], with_vector=False)
        self.assertNotIn("b", got[4]["payload"])
        self.assertIn("b", got[5]["payload"])
        C.put(self.base + "/points/payload?wait=true", {"payload": {"only": 1}, "filter": even})
        got = self.retrieve([4, 6, 5], with_vector=False)
        self.assertEqual(got[4]["payload"], {"only": 1})
        self.assertEqual(got[6]["payload"], {"only": 1})
        self.assertEqual(got[5]["payload"], {"a": 5, "b": 0, "g": 1, "o": {"x": 1}})

    def test_delete_by_ids_and_filter(self):
        pts = [{"id": i, "vector": [i, 0, 1], "payload": {"g": i % 3}} for i in range(30)]
        pts += [{"id": U(i), "vector": [0, i, 1], "payload": {"g": 5}} for i in range(4)]
        H.upsert(C, self.name, pts)
        self.assertEqual(H.count(C, self.name), 34)
        res = C.post(self.base + "/points/delete?wait=true", {"points": [0, 1, U(0), 555]})
        H.check_update_result(res, True, "delete by ids")
        self.assertEqual(H.count(C, self.name), 31)
        self.assertEqual(self.retrieve([0, 1, U(0), 2]).keys(), {2})
        r = C.request("GET", self.base + "/points/0")
        self.assertEqual(r.status, 404, r.describe())
        res = C.post(self.base + "/points/delete?wait=true",
                     {"filter": {"must": [{"key": "g", "match": {"value": 2}}]}})
        H.check_update_result(res, True, "delete by filter")
        left = {p["id"] for p in H.scroll_all(C, self.name)}
        want = {i for i in range(2, 30) if i % 3 != 2} | {U(1), U(2), U(3)}
        self.assertEqual(left, want)
        self.assertEqual(C.get(self.base)["points_count"], len(want))
        # Deleted points are gone from search too.
        hits = C.post(self.base + "/points/search", {"vector": [2, 0, 1], "limit": 100, "params": {"exact": True}})
        self.assertEqual({h["id"] for h in hits}, want)
        # Re-inserting a deleted id works.
        H.upsert(C, self.name, [{"id": 0, "vector": [9, 9, 9], "payload": {"back": 1}}])
        self.assertEqual(self.retrieve([0])[0]["payload"], {"back": 1})

    def test_scroll_pagination_and_count(self):
        ids = list(range(0, 200, 3)) + [U(i) for i in range(9)] + [10 ** 12, 2 ** 53 + 1]
        rnd = random.Random(3)
        shuffled = ids[:]
        rnd.shuffle(shuffled)
        H.upsert(C, self.name, [{"id": i, "vector": [k, 1, 2], "payload": {"k": k % 4}}
                                for k, i in enumerate(shuffled)])
        for page in (1, 7, 16, 1000):
            recs = H.scroll_all(C, self.name, page=page)
            got = [r["id"] for r in recs]
            self.assertEqual(got, sorted(ids, key=H.id_sort_key),
                             "scroll page=%d must visit every point once, ints then UUIDs, in order" % page)
            self.assertTrue(all("payload" in r and isinstance(r["payload"], dict) for r in recs),
                            "scroll returns payloads by default")
            self.assertTrue(all(r.get("vector") is None for r in recs), "scroll omits vectors by default")
        # Paging with a filter.
        flt = {"must": [{"key": "k", "match": {"value": 1}}]}
        recs = H.scroll_all(C, self.name, filter=flt, page=5, with_vector=True)
        want = sorted([i for k, i in enumerate(shuffled) if k % 4 == 1], key=H.id_sort_key)
        self.assertEqual([r["id"] for r in recs], want)
        self.assertTrue(all(isinstance(r.get("vector"), list) and len(r["vector"]) == 3 for r in recs))
        # An offset that is not a stored id starts at the next id.
        res = C.post(self.base + "/points/scroll", {"offset": 4, "limit": 2, "with_payload": False})
        self.assertEqual([p["id"] for p in res["points"]], [6, 9])
        self.assertEqual(res["next_page_offset"], 12)
        self.assertEqual(H.count(C, self.name), len(ids))
        self.assertEqual(H.count(C, self.name, flt), len(want))
        H.count(C, self.name, flt, exact=False)   # accepted; an estimate may differ
        res = C.post(self.base + "/points/count", {})
        self.assertEqual(res, {"count": len(ids)})


# --- search / query --------------------------------------------------------------------------

class SearchTest(unittest.TestCase):
    N, D = 300, 16

    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(11)
        cls.base = rng.normal(size=(cls.N, cls.D)).astype(np.float32)
        # A few exact duplicates of directions would create ties; random normals have none.
        cls.ids = list(range(1000, 1000 + cls.N - 20)) + [U(i) for i in range(20)]
        cls.groups = np.array([i % 3 for i in range(cls.N)])
        cls.queries = rng.normal(size=(6, cls.D)).astype(np.float32)
        for metric in HIGHER_IS_BETTER:
            name = "s_" + metric.lower()
            H.create_collection(C, name, cls.D, metric)
            for s in range(0, cls.N, 100):
                C.put("/collections/%s/points?wait=true" % name, {"batch": {
                    "ids": cls.ids[s:s + 100],
                    "vectors": cls.base[s:s + 100].tolist(),
                    "payloads": [{"g": int(cls.groups[i]), "i": i} for i in range(s, min(s + 100, cls.N))]}})

    @classmethod
    def tearDownClass(cls):
        for metric in HIGHER_IS_BETTER:
            C.delete("/collections/s_" + metric.lower())

    def test_exact_search_every_metric(self):
        for metric in HIGHER_IS_BETTER:
            name = "s_" + metric.lower()
            for qi, q in enumerate(self.queries):
                want_ids, want_s = brute_topk(metric, self.base, self.ids, q, 10)
                hits = C.post("/collections/%s/points/search" % name,
                              {"vector": q.tolist(), "limit": 10, "params": {"exact": True},
                               "with_payload": True})
                check_scored(self, hits, want_ids, want_s, "%s search q%d" % (metric, qi))
                for h in hits:
                    i = self.ids.index(h["id"])
                    self.assertEqual(h.get("payload"), {"g": int(self.groups[i]), "i": i})
                res = C.post("/collections/%s/points/query" % name,
                             {"query": q.tolist(), "limit": 10, "params": {"exact": True}})
                self.assertIsInstance(res, dict, "query result should be {points: [...]}")
                check_scored(self, res.get("points"), want_ids, want_s, "%s query q%d" % (metric, qi))
                res = C.post("/collections/%s/points/query" % name,
                             {"query": {"nearest": q.tolist()}, "limit": 10, "params": {"exact": True}})
                check_scored(self, res.get("points"), want_ids, want_s, "%s query-nearest q%d" % (metric, qi))

    def test_query_default_limit_is_10(self):
        res = C.post("/collections/s_dot/points/query", {"query": self.queries[0].tolist(),
                                                        "params": {"exact": True}})
        want_ids, want_s = brute_topk("Dot", self.base, self.ids, self.queries[0], 10)
        check_scored(self, res["points"], want_ids, want_s, "query without limit")

    def test_approximate_search_recall(self):
        for metric in HIGHER_IS_BETTER:
            name = "s_" + metric.lower()
            found = 0
            all_s = None
            for qi, q in enumerate(self.queries):
                want_ids, _ = brute_topk(metric, self.base, self.ids, q, 10)
                hits = C.post("/collections/%s/points/search" % name,
                              {"vector": q.tolist(), "limit": 10, "params": {"hnsw_ef": 128}})
                self.assertEqual(len(hits), 10)
                found += len(set(h["id"] for h in hits) & set(want_ids))
                all_s = scores(metric, self.base, q)
                for h in hits:   # whatever is returned carries its true score, in order
                    self.assertTrue(close(h["score"], float(all_s[self.ids.index(h["id"])])), (metric, h))
                sc = [h["score"] for h in hits]
                self.assertEqual(sc, sorted(sc, reverse=HIGHER_IS_BETTER[metric]), "%s: hits not ordered" % metric)
            recall = found / (10.0 * len(self.queries))
            self.assertGreaterEqual(recall, 0.9, "%s: recall@10 %.2f on 300 points" % (metric, recall))

    def test_offset_threshold_filter(self):
        for metric in HIGHER_IS_BETTER:
            name = "s_" + metric.lower()
            q = self.queries[1]
            want_ids, want_s = brute_topk(metric, self.base, self.ids, q, 5, offset=5)
            for ep in ("search", "query"):
                body = {"limit": 5, "offset": 5, "params": {"exact": True}}
                body["vector" if ep == "search" else "query"] = q.tolist()
                res = C.post("/collections/%s/points/%s" % (name, ep), body)
                hits = res if ep == "search" else res["points"]
                check_scored(self, hits, want_ids, want_s, "%s %s offset" % (metric, ep))

            # score_threshold halfway between the 7th and the 8th best: exactly 7 results.
            _, top = brute_topk(metric, self.base, self.ids, q, 8)
            thr = (top[6] + top[7]) / 2
            want_ids, want_s = brute_topk(metric, self.base, self.ids, q, 50, threshold=thr)
            self.assertEqual(len(want_ids), 7)
            for ep in ("search", "query"):
                body = {"limit": 50, "score_threshold": thr, "params": {"exact": True}}
                body["vector" if ep == "search" else "query"] = q.tolist()
                res = C.post("/collections/%s/points/%s" % (name, ep), body)
                hits = res if ep == "search" else res["points"]
                check_scored(self, hits, want_ids, want_s, "%s %s score_threshold" % (metric, ep))

            flt = {"must": [{"key": "g", "match": {"value": 1}}]}
            mask = self.groups == 1
            want_ids, want_s = brute_topk(metric, self.base, self.ids, q, 10, mask=mask)
            for exact in (True, False):
                hits = C.post("/collections/%s/points/search" % name,
                              {"vector": q.tolist(), "limit": 10, "filter": flt,
                               "params": {"exact": exact, "hnsw_ef": 256}})
                if exact:
                    check_scored(self, hits, want_ids, want_s, "%s filtered search" % metric)
                else:
                    self.assertTrue(all(self.groups[self.ids.index(h["id"])] == 1 for h in hits),
                                    "%s: approximate filtered search returned a point outside the filter" % metric)
                    self.assertGreaterEqual(len(set(h["id"] for h in hits) & set(want_ids)), 8,
                                            "%s: filtered approximate recall" % metric)
            res = C.post("/collections/%s/points/query" % name,
                         {"query": q.tolist(), "limit": 10, "filter": flt, "params": {"exact": True}})
            check_scored(self, res["points"], want_ids, want_s, "%s filtered query" % metric)

    def test_with_payload_and_vector(self):
        for metric in HIGHER_IS_BETTER:
            name = "s_" + metric.lower()
            q = self.queries[2]
            hits = C.post("/collections/%s/points/search" % name,
                          {"vector": q.tolist(), "limit": 3, "with_vector": True, "with_payload": False,
                           "params": {"exact": True}})
            for h in hits:
                i = self.ids.index(h["id"])
                want = normalise(self.base[i]) if metric == "Cosine" else self.base[i]
                v = h.get("vector")
                self.assertIsInstance(v, list, "%s: with_vector gave %r" % (metric, h))
                self.assertTrue(np.allclose(np.array(v, dtype=np.float64), want, atol=1e-5),
                                "%s: returned vector differs (Cosine vectors are returned normalised)" % metric)
                self.assertIsNone(h.get("payload"), "with_payload false: %r" % h)
            res = C.post("/collections/%s/points/query" % name,
                         {"query": q.tolist(), "limit": 3, "with_vector": True, "with_payload": True,
                          "params": {"exact": True}})
            for h in res["points"]:
                i = self.ids.index(h["id"])
                self.assertEqual(h.get("payload"), {"g": int(self.groups[i]), "i": i})
                self.assertEqual(len(h.get("vector") or []), self.D)
            # The query endpoint does not return payloads unless asked (Qdrant default false).
            res = C.post("/collections/%s/points/query" % name, {"query": q.tolist(), "limit": 2})
            for h in res["points"]:
                self.assertIsNone(h.get("payload"), "query returns no payload by default: %r" % h)
                self.assertIsNone(h.get("vector"), "query returns no vector by default: %r" % h)

    def test_payload_selector(self):
        q = self.queries[3]
        hits = C.post("/collections/s_dot/points/search",
                      {"vector": q.tolist(), "limit": 3, "with_payload": ["i"], "params": {"exact": True}})
        for h in hits:
            self.assertEqual(list((h.get("payload") or {}).keys()), ["i"], "with_payload [\"i\"]: %r" % h)
        hits = C.post("/collections/s_dot/points/search",
                      {"vector": q.tolist(), "limit": 3, "with_payload": {"exclude": ["i"]},
                       "params": {"exact": True}})
        for h in hits:
            self.assertEqual(list((h.get("payload") or {}).keys()), ["g"], "with_payload exclude: %r" % h)

    def test_search_empty_collection(self):
        H.create_collection(C, "s_empty", 4, "Cosine")
        self.assertEqual(C.post("/collections/s_empty/points/search", {"vector": [1, 0, 0, 0], "limit": 5}), [])
        self.assertEqual(C.post("/collections/s_empty/points/query", {"query": [1, 0, 0, 0]}), {"points": []})
        C.delete("/collections/s_empty")


# --- filters ---------------------------------------------------------------------------------

CITIES = ["Berlin", "London", "Paris", "Tokyo"]
TAGS = ["a", "b", "c", "d", "e"]


def parse_dt(s):
    d = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d


def make_filter_points():
    rnd = random.Random(1234)
    pts = []
    ids = list(range(1, 81)) + [U(100 + i) for i in range(8)]
    t0 = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    for k, pid in enumerate(ids):
        p = {"city": rnd.choice(CITIES),
             "tags": rnd.sample(TAGS, rnd.randint(0, 4)),
             "price": round(rnd.uniform(0, 100), 2),
             "flag": rnd.random() < 0.5,
             "meta": {"a": {"b": rnd.randint(0, 4)}, "s": rnd.choice(["u", "v"])},
             "items": [{"name": rnd.choice("xyz"), "qty": rnd.randint(0, 5)} for _ in range(rnd.randint(0, 3))],
             "nums": [rnd.randint(0, 9) for _ in range(rnd.randint(0, 3))]}
        if k % 7 != 3:
            p["n"] = rnd.randint(0, 9)
        dt = t0 + datetime.timedelta(seconds=rnd.randint(0, 3 * 365 * 86400))
        form = k % 3
        if form == 0:
            p["date"] = dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif form == 1:
            p["date"] = dt.astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()
        else:
            p["date"] = dt.strftime("%Y-%m-%dT%H:%M:%S") + ".250Z"
        m = k % 5
        if m == 1:
            p["maybe"] = None
        elif m == 2:
            p["maybe"] = []
        elif m == 3:
            p["maybe"] = "v"
        elif m == 4:
            p["maybe"] = ["w"]
        pts.append({"id": pid, "vector": [rnd.uniform(-1, 1) for _ in range(4)], "payload": p})
    return pts


def fc(key, **cond):
    d = {"key": key}
    d.update(cond)
    return d


def dt_in(p, lo=None, hi=None, lo_incl=True, hi_incl=False):
    d = parse_dt(p["date"])
    if lo is not None and (d < parse_dt(lo) or (d == parse_dt(lo) and not lo_incl)):
        return False
    if hi is not None and (d > parse_dt(hi) or (d == parse_dt(hi) and not hi_incl)):
        return False
    return True


# (name, filter, predicate(payload, id)).  Each predicate spells out the Qdrant semantics.
FILTERS = [
    ("match keyword", {"must": [fc("city", match={"value": "Berlin"})]},
     lambda p, i: p["city"] == "Berlin"),
    ("match keyword in array", {"must": [fc("tags", match={"value": "b"})]},
     lambda p, i: "b" in p["tags"]),
    ("match int", {"must": [fc("n", match={"value": 3})]},
     lambda p, i: p.get("n") == 3),
    ("match bool", {"must": [fc("flag", match={"value": True})]},
     lambda p, i: p["flag"] is True),
    ("match bool false", {"must": [fc("flag", match={"value": False})]},
     lambda p, i: p["flag"] is False),
    ("match any keyword", {"must": [fc("city", match={"any": ["London", "Tokyo"]})]},
     lambda p, i: p["city"] in ("London", "Tokyo")),
    ("match any in array", {"must": [fc("tags", match={"any": ["a", "e"]})]},
     lambda p, i: bool({"a", "e"} & set(p["tags"]))),
    ("match any int", {"must": [fc("n", match={"any": [1, 2, 3]})]},
     lambda p, i: p.get("n") in (1, 2, 3)),
    ("match except keyword", {"must": [fc("city", match={"except": ["Berlin", "Paris"]})]},
     lambda p, i: p["city"] not in ("Berlin", "Paris")),
    ("match except array (some element outside the list)",
     {"must": [fc("tags", match={"except": ["a", "b"]})]},
     lambda p, i: any(t not in ("a", "b") for t in p["tags"])),
    ("match except int (field present)", {"must": [fc("n", match={"except": [0, 1, 2]})]},
     lambda p, i: "n" in p and p["n"] not in (0, 1, 2)),
    ("string value does not match an int field", {"must": [fc("n", match={"value": "3"})]},
     lambda p, i: False),
    ("range int", {"must": [fc("n", range={"gte": 3, "lt": 7})]},
     lambda p, i: "n" in p and 3 <= p["n"] < 7),
    ("range float", {"must": [fc("price", range={"gt": 20.5, "lte": 70})]},
     lambda p, i: 20.5 < p["price"] <= 70),
    ("range on array (any element)", {"must": [fc("nums", range={"gte": 8})]},
     lambda p, i: any(x >= 8 for x in p["nums"])),
    ("datetime range", {"must": [fc("date", range={"gte": "2021-01-01T00:00:00Z", "lt": "2022-06-01T00:00:00Z"})]},
     lambda p, i: dt_in(p, "2021-01-01T00:00:00Z", "2022-06-01T00:00:00Z")),
    ("datetime range with offset", {"must": [fc("date", range={"gt": "2021-06-01T12:00:00+02:00"})]},
     lambda p, i: dt_in(p, "2021-06-01T12:00:00+02:00", lo_incl=False)),
    ("datetime range lte", {"must": [fc("date", range={"lte": "2020-09-30T23:59:59Z"})]},
     lambda p, i: dt_in(p, None, "2020-09-30T23:59:59Z", hi_incl=True)),
    ("values_count gte", {"must": [fc("tags", values_count={"gte": 2})]},
     lambda p, i: len(p["tags"]) >= 2),
    ("values_count gt/lt", {"must": [fc("nums", values_count={"gt": 0, "lt": 3})]},
     lambda p, i: 0 < len(p["nums"]) < 3),
    ("is_empty", {"must": [{"is_empty": {"key": "maybe"}}]},
     lambda p, i: "maybe" not in p or p["maybe"] is None or p["maybe"] == []),
    ("is_null", {"must": [{"is_null": {"key": "maybe"}}]},
     lambda p, i: "maybe" in p and p["maybe"] is None),
    ("not is_empty", {"must_not": [{"is_empty": {"key": "maybe"}}]},
     lambda p, i: p.get("maybe") not in (None, [])),
    ("has_id", {"must": [{"has_id": [1, 5, 9, U(101), 9999]}]},
     lambda p, i: i in (1, 5, 9, U(101))),
    ("must_not has_id", {"must_not": [{"has_id": list(range(1, 41))}]},
     lambda p, i: not (isinstance(i, int) and i <= 40)),
    ("dotted path", {"must": [fc("meta.a.b", match={"value": 2})]},
     lambda p, i: p["meta"]["a"]["b"] == 2),
    ("dotted path keyword", {"must": [fc("meta.s", match={"value": "u"})]},
     lambda p, i: p["meta"]["s"] == "u"),
    ("array path []", {"must": [fc("items[].name", match={"value": "z"})]},
     lambda p, i: any(it["name"] == "z" for it in p["items"])),
    ("array path [] range", {"must": [fc("items[].qty", range={"gte": 4})]},
     lambda p, i: any(it["qty"] >= 4 for it in p["items"])),
    ("flat [] paths may match different elements",
     {"must": [fc("items[].name", match={"value": "x"}), fc("items[].qty", range={"gte": 3})]},
     lambda p, i: any(it["name"] == "x" for it in p["items"]) and any(it["qty"] >= 3 for it in p["items"])),
    ("nested (same element)",
     {"must": [{"nested": {"key": "items", "filter": {"must": [fc("name", match={"value": "x"}),
                                                               fc("qty", range={"gte": 3})]}}}]},
     lambda p, i: any(it["name"] == "x" and it["qty"] >= 3 for it in p["items"])),
    ("must_not", {"must_not": [fc("city", match={"value": "Berlin"})]},
     lambda p, i: p["city"] != "Berlin"),
    ("should", {"should": [fc("city", match={"value": "Paris"}), fc("flag", match={"value": True})]},
     lambda p, i: p["city"] == "Paris" or p["flag"]),
    ("must + should + must_not",
     {"must": [fc("price", range={"gte": 10})],
      "should": [fc("tags", match={"value": "a"}), fc("tags", match={"value": "c"})],
      "must_not": [fc("city", match={"value": "Tokyo"})]},
     lambda p, i: p["price"] >= 10 and ("a" in p["tags"] or "c" in p["tags"]) and p["city"] != "Tokyo"),
    ("min_should",
     {"min_should": {"conditions": [fc("flag", match={"value": True}), fc("tags", match={"value": "b"}),
                                    fc("n", range={"gte": 5})], "min_count": 2}},
     lambda p, i: (p["flag"] + ("b" in p["tags"]) + (p.get("n", -1) >= 5)) >= 2),
    ("nested filters, depth 3",
     {"must": [{"should": [{"must": [fc("city", match={"value": "London"}), fc("flag", match={"value": False})]},
                           {"must_not": [fc("price", range={"lt": 80})]}]}],
      "must_not": [{"must": [fc("meta.s", match={"value": "v"}), fc("n", range={"lt": 2})]}]},
     lambda p, i: ((p["city"] == "London" and not p["flag"]) or p["price"] >= 80)
     and not (p["meta"]["s"] == "v" and p.get("n", 99) < 2)),
    ("must as a single condition object (Qdrant accepts one or many)",
     {"must": fc("city", match={"value": "Paris"}), "must_not": fc("flag", match={"value": True})},
     lambda p, i: p["city"] == "Paris" and not p["flag"]),
    ("empty filter", {}, lambda p, i: True),
    ("missing field matches nothing", {"must": [fc("no_such_field", match={"value": "x"})]},
     lambda p, i: False),
    ("must_not on a missing field matches everything", {"must_not": [fc("no_such_field", match={"value": "x"})]},
     lambda p, i: True),
]


class FilterTest(unittest.TestCase):
    NAME = "filters"

    @classmethod
    def setUpClass(cls):
        H.create_collection(C, cls.NAME, 4, "Euclid")
        cls.points = make_filter_points()
        H.upsert(C, cls.NAME, cls.points)
        cls.payload = {p["id"]: p["payload"] for p in cls.points}

    @classmethod
    def tearDownClass(cls):
        C.delete("/collections/" + cls.NAME)

    def expected(self, pred):
        return sorted([i for i, p in self.payload.items() if pred(p, i)], key=H.id_sort_key)

    def check_filters(self):
        vecs = np.array([p["vector"] for p in self.points], dtype=np.float32)
        ids = [p["id"] for p in self.points]
        q = np.array([0.1, -0.2, 0.3, 0.05], dtype=np.float32)
        failures = []
        for name, flt, pred in FILTERS:
            want = self.expected(pred)
            got = [r["id"] for r in H.scroll_all(C, self.NAME, filter=flt, with_payload=False, page=25)]
            if got != want:
                failures.append("%s: scroll got %d ids, want %d; missing %s; extra %s; filter %s" % (
                    name, len(got), len(want), sorted(set(want) - set(got), key=H.id_sort_key)[:8],
                    sorted(set(got) - set(want), key=H.id_sort_key)[:8], flt))
                continue
            n = H.count(C, self.NAME, flt)
            if n != len(want):
                failures.append("%s: count %d, want %d" % (name, n, len(want)))
            mask = np.array([i in set(want) for i in ids])
            w_ids, w_s = brute_topk("Euclid", vecs, ids, q, 5, mask=mask)
            hits = C.post("/collections/%s/points/search" % self.NAME,
                          {"vector": q.tolist(), "filter": flt, "limit": 5, "params": {"exact": True}})
            if [h["id"] for h in hits] != w_ids:
                failures.append("%s: filtered search %s, want %s" % (name, [h["id"] for h in hits], w_ids))
        self.assertFalse(failures, "%d of %d filters wrong:\n  " % (len(failures), len(FILTERS))
                         + "\n  ".join(failures))

    def test_filters_unindexed(self):
        # Sanity of the data set: every filter except the deliberately empty ones selects
        # something and not everything, so each check can fail.
        for name, flt, pred in FILTERS:
            n = len(self.expected(pred))
            if name not in ("empty filter", "missing field matches nothing",
                            "must_not on a missing field matches everything",
                            "string value does not match an int field"):
                self.assertTrue(0 < n < len(self.payload), "test data: filter %r selects %d" % (name, n))
        self.check_filters()

    def test_filters_indexed(self):
        # The same filters with payload indexes on the fields: results must not change.
        for field, schema in (("city", "keyword"), ("tags", "keyword"), ("n", "integer"), ("price", "float"),
                              ("flag", "bool"), ("date", "datetime"), ("meta.a.b", "integer"),
                              ("items[].name", "keyword")):
            C.put("/collections/%s/index?wait=true" % self.NAME, {"field_name": field, "field_schema": schema})
        try:
            self.check_filters()
        finally:
            for field in ("city", "tags", "n", "price", "flag", "date", "meta.a.b", "items[].name"):
                C.delete("/collections/%s/index/%s?wait=true" % (self.NAME, field))


# --- restart ---------------------------------------------------------------------------------

class RestartTest(unittest.TestCase):
    def test_restart_restores_everything(self):
        srv = H.Server(H.ARGS.fannsd)
        try:
            srv.start()
            c = srv.client()
            rng = np.random.default_rng(5)
            H.create_collection(c, "r_cos", 8, "Cosine", hnsw_config={"m": 12, "ef_construct": 80})
            H.create_collection(c, "r_man", 5, "Manhattan")
            pts = [{"id": i, "vector": rng.normal(size=8).tolist(), "payload": {"i": i, "t": ["x", str(i % 4)]}}
                   for i in range(120)]
            pts += [{"id": U(i), "vector": rng.normal(size=8).tolist(), "payload": {"u": i}} for i in range(5)]
            H.upsert(c, "r_cos", pts)
            c.put("/collections/r_man/points?wait=true", {"batch": {
                "ids": list(range(40)), "vectors": rng.normal(size=(40, 5)).tolist(),
                "payloads": [{"k": i % 2} for i in range(40)]}})
            c.post("/collections/r_cos/points/delete?wait=true", {"points": [3, 4, U(2)]})
            c.post("/collections/r_cos/points/payload?wait=true", {"payload": {"extra": True}, "points": [5]})
            c.put("/collections/r_cos/index?wait=true", {"field_name": "i", "field_schema": "integer"})

            def snapshot(cl):
                names = sorted(x["name"] for x in cl.get("/collections")["collections"])
                info = {}
                for n in ("r_cos", "r_man"):
                    g = cl.get("/collections/" + n)
                    info[n] = (g["points_count"], g["config"]["params"], g["config"]["hnsw_config"].get("m"),
                               g["config"]["hnsw_config"].get("ef_construct"), sorted(g["payload_schema"]))
                recs = {n: H.scroll_all(cl, n, with_vector=True) for n in ("r_cos", "r_man")}
                q = rng_q.tolist()
                hits = cl.post("/collections/r_cos/points/search",
                               {"vector": q, "limit": 10, "params": {"exact": True}})
                return names, info, recs, [(h["id"], round(h["score"], 5)) for h in hits]

            rng_q = np.random.default_rng(9).normal(size=8)
            before = snapshot(c)
            self.assertEqual(before[1]["r_cos"][0], 122)
            self.assertEqual(before[1]["r_cos"][2:4], (12, 80))
            srv.restart()
            c = srv.client()
            after = snapshot(c)
            self.assertEqual(after[0], before[0], "collections after restart")
            self.assertEqual(after[1], before[1], "collection info/config after restart")
            for n in ("r_cos", "r_man"):
                self.assertEqual(after[2][n], before[2][n], "%s: points/payloads/vectors after restart" % n)
            self.assertEqual(after[3], before[3], "search results after restart")
            # And the server keeps working: writes after the restart are kept across another one.
            H.upsert(c, "r_man", [{"id": 1000, "vector": [1, 2, 3, 4, 5], "payload": {"late": 1}}])
            srv.restart()
            c = srv.client()
            self.assertEqual(c.get("/collections/r_man/points/1000")["payload"], {"late": 1})
            self.assertEqual(c.get("/collections/r_cos/points/5")["payload"], {"i": 5, "t": ["x", "1"], "extra": True})
            srv.stop()
        finally:
            srv.cleanup()


if __name__ == "__main__":
    H.run_unittest()
