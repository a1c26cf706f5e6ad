#!/usr/bin/python3
"""test_bad_input: fannsd rejects bad requests with the right 4xx status and a Qdrant error
envelope, stays up, and leaves stored data untouched.

After every bad request the test checks: the status is the expected 4xx, the body is
{"status": {"error": "<non-empty>"}, "time": ...}, GET /readyz still answers 200 on a fresh
connection, and a scroll snapshot (ids, payloads, vectors) of a reference collection is
unchanged.

Usage: test_bad_input.py --fannsd build/fannsd [unittest options]
"""

import json
import os
import select
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fanns_harness as H  # noqa: E402

SERVER = None
C = None
REF = "ref"
DIM = 4
SNAPSHOT = None
MIB = 1024 * 1024


def setUpModule():
    global SERVER, C, SNAPSHOT
    SERVER = H.Server(H.ARGS.fannsd).start()
    C = SERVER.client()
    load_reference()
    SNAPSHOT = snapshot()


def reference_points():
    pts = [{"id": i, "vector": [1 + i, (i % 5) - 2, 0.5, -1.0 * (i % 3)],
            "payload": {"i": i, "city": ["a", "b", "c"][i % 3], "tags": ["t%d" % (i % 4)]}} for i in range(30)]
    pts += [{"id": "6f1b2a3c-0000-4000-8000-00000000000%d" % i, "vector": [0, 1, i, 1], "payload": {"u": i}}
            for i in range(3)]
    return pts


def load_reference():
    """Creates the reference collection whose content every bad request must leave alone, or
    puts its content back (upsert the originals, delete strangers) after a test changed it."""
    pts = reference_points()
    if not C.get("/collections/%s/exists" % REF)["exists"]:
        H.create_collection(C, REF, DIM, "Cosine")
    H.upsert(C, REF, pts)
    extra = set(r["id"] for r in H.scroll_all(C, REF, with_payload=False)) - set(p["id"] for p in pts)
    if extra:
        C.post("/collections/%s/points/delete?wait=true" % REF, {"points": sorted(extra, key=H.id_sort_key)})


def tearDownModule():
    try:
        if SERVER is not None and SERVER.proc is not None:
            assert SERVER.alive(), "fannsd died during the tests\n" + SERVER.log_tail()
            SERVER.stop()
    finally:
        if SERVER is not None:
            SERVER.cleanup()


def snapshot():
    recs = H.scroll_all(C, REF, with_payload=True, with_vector=True, page=100)
    return json.dumps(recs, sort_keys=True), H.count(C, REF), C.get("/collections/" + REF)["points_count"]


class BadInputTest(unittest.TestCase):
    def state_after(self, what):
        """Returns a list of problems: server down, /readyz not 200, reference data changed.
        Changed data is reloaded so that one failure does not cascade into later tests."""
        if not SERVER.alive():
            return ["%s: fannsd died\n%s" % (what, SERVER.log_tail())]
        fresh = H.Client("127.0.0.1", SERVER.port, timeout=H.scaled(10))
        try:
            r = fresh.request("GET", "/readyz")
        finally:
            fresh.close()
        problems = []
        if r.status != 200:
            problems.append("%s: /readyz after the bad request: %s" % (what, r.describe()))
        snap = snapshot()
        if snap != SNAPSHOT:
            load_reference()
            problems.append("%s: the bad request changed stored points (count %d -> %d); reference reloaded"
                            % (what, SNAPSHOT[1], snap[1]))
        return problems

    def after_bad(self, what):
        """The server is up and the reference data is unchanged."""
        problems = self.state_after(what)
        self.assertFalse(problems, "\n".join(problems))

    def bad(self, method, path, body=None, raw=None, expect=(400,), what=None):
        what = what or "%s %s %s" % (method, path, (raw if raw is not None else json.dumps(body))[:120])
        if isinstance(expect, int):
            expect = (expect,)
        r = C.request(method, path, body=body, raw=raw)
        problems = self.state_after(what)
        self.assertIn(r.status, expect, "%s: expected HTTP %s, got %s%s" % (
            what, expect, r.describe(), "".join("\n  " + p for p in problems)))
        H.check_error_envelope(r, what)
        self.assertFalse(problems, "\n".join(problems))
        return r

    # --- malformed JSON ----------------------------------------------------------------------

    def test_malformed_json(self):
        p = "/collections/%s/points" % REF
        self.bad("PUT", p + "?wait=true", raw='{"points": [')
        self.bad("PUT", p + "?wait=true", raw='{"points": [{"id": 1, "vector": [1,2,3,4]}]}}')
        self.bad("POST", p + "/search", raw="not json at all")
        self.bad("POST", p + "/search", raw="")
        self.bad("POST", p + "/search", raw='{"vector": [1,2,3,4], "limit": 3,}')
        self.bad("POST", p + "/search", raw='[1, 2, 3]')
        self.bad("POST", p + "/search", raw='"a string"')
        self.bad("PUT", "/collections/newc", raw='{"vectors": {"size": 4, "distance": "Cosine"')
        self.bad("POST", p + "/scroll", raw=b'{"limit": 2, "x": "\xff\xfe"}')
        self.assertFalse(C.get("/collections/newc/exists")["exists"])

    def test_deeply_nested_json(self):
        p = "/collections/%s/points/search" % REF
        # 100000 nested arrays must be refused, not overflow a stack.
        self.bad("POST", p, raw="[" * 100000 + "]" * 100000, expect=(400, 413, 422))
        # A valid but deep filter: accepted or refused with 400/422, never a crash.
        f = {"must": [{"key": "i", "match": {"value": 1}}]}
        for _ in range(300):
            f = {"must": [f]}
        r = C.request("POST", p, body={"vector": [1, 0, 0, 0], "limit": 3, "filter": f})
        self.assertIn(r.status, (200, 400, 422), r.describe())
        if r.status == 200:
            self.assertEqual([h["id"] for h in r.json["result"]], [1], "deep filter with one match")
        else:
            H.check_error_envelope(r, "deep filter")
        self.after_bad("deep filter")

    # --- vectors -----------------------------------------------------------------------------

    def test_wrong_dimension(self):
        p = "/collections/%s/points" % REF
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 1, "vector": [1, 2, 3]}]}, expect=422)
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 100, "vector": [1, 2, 3, 4]},
                                                      {"id": 101, "vector": [1, 2, 3, 4, 5]}]}, expect=422,
                 what="a batch with one bad vector is rejected whole")
        self.bad("PUT", p + "?wait=true", {"batch": {"ids": [100, 101], "vectors": [[1, 2, 3, 4], [1, 2]]}},
                 expect=422)
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 100, "vector": []}]}, expect=(400, 422))
        self.bad("POST", p + "/search", {"vector": [1, 2, 3], "limit": 3}, expect=422)
        self.bad("POST", p + "/search", {"vector": [1, 2, 3, 4, 5], "limit": 3}, expect=422)
        self.bad("POST", "/collections/%s/points/query" % REF, {"query": [1, 2], "limit": 3}, expect=422)
        self.bad("POST", "/collections/%s/points/query" % REF, {"query": {"nearest": [1, 2, 3, 4, 5, 6]}},
                 expect=422)

    def test_non_finite_and_non_numeric_vectors(self):
        p = "/collections/%s/points" % REF
        for lit in ("NaN", "Infinity", "-Infinity", "nan", "inf"):
            self.bad("PUT", p + "?wait=true",
                     raw='{"points": [{"id": 1, "vector": [%s, 0, 0, 1]}]}' % lit, expect=400)
            self.bad("POST", p + "/search", raw='{"vector": [0, %s, 0, 1], "limit": 3}' % lit, expect=400)
        # 1e999 overflows a double: not a finite float.
        self.bad("PUT", p + "?wait=true", raw='{"points": [{"id": 1, "vector": [1e999, 0, 0, 1]}]}',
                 expect=(400, 422))
        # 1e39 is a finite double but not a finite float32.
        self.bad("PUT", p + "?wait=true", raw='{"points": [{"id": 1, "vector": [1e39, 0, 0, 1]}]}',
                 expect=(400, 422))
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 1, "vector": ["1", 0, 0, 1]}]}, expect=(400, 422))
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 1, "vector": [None, 0, 0, 1]}]}, expect=(400, 422))
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 1, "vector": [True, 0, 0, 1]}]}, expect=(400, 422))
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 1, "vector": "1,2,3,4"}]}, expect=(400, 422))
        self.bad("POST", p + "/search", {"vector": [0, "x", 0, 1], "limit": 3}, expect=(400, 422))
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 1}]}, expect=(400, 422),
                 what="point without a vector")

    # --- ids ---------------------------------------------------------------------------------

    def test_bad_ids(self):
        p = "/collections/%s/points" % REF
        for bad_id in ("not-a-uuid", "6f1b2a3c-0000-4000-8000-0000000000zz", "", "123", -1, 1.5, None, [1], {}):
            self.bad("PUT", p + "?wait=true", {"points": [{"id": bad_id, "vector": [1, 2, 3, 4]}]}, expect=400,
                     what="upsert with id %r" % (bad_id,))
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 2 ** 64, "vector": [1, 2, 3, 4]}]}, expect=400,
                 what="id 2^64 (above uint64)")
        self.bad("POST", p, {"ids": ["not-a-uuid"]}, expect=400)
        self.bad("POST", p + "/delete?wait=true", {"points": [1, "zzz"]}, expect=400,
                 what="delete with one invalid id deletes nothing")
        r = C.request("GET", p + "/not-a-uuid")
        self.assertIn(r.status, (400, 404), r.describe())
        H.check_error_envelope(r, "GET invalid id")
        self.after_bad("GET invalid id")

    # --- collections -------------------------------------------------------------------------

    def test_unknown_collection(self):
        base = "/collections/no_such_coll"
        self.bad("GET", base, expect=404)
        self.bad("PUT", base + "/points?wait=true", {"points": [{"id": 1, "vector": [1, 2, 3, 4]}]}, expect=404)
        self.bad("POST", base + "/points/search", {"vector": [1, 2, 3, 4], "limit": 3}, expect=404)
        self.bad("POST", base + "/points/query", {"query": [1, 2, 3, 4]}, expect=404)
        self.bad("POST", base + "/points/scroll", {"limit": 3}, expect=404)
        self.bad("POST", base + "/points/count", {}, expect=404)
        self.bad("POST", base + "/points", {"ids": [1]}, expect=404)
        self.bad("GET", base + "/points/1", expect=404)
        self.bad("POST", base + "/points/delete?wait=true", {"points": [1]}, expect=404)
        self.bad("POST", base + "/points/payload?wait=true", {"payload": {"a": 1}, "points": [1]}, expect=404)
        self.bad("PUT", base + "/index?wait=true", {"field_name": "a", "field_schema": "keyword"}, expect=404)
        self.bad("GET", "/collections/%s/points/999999" % REF, expect=404, what="unknown point")
        self.assertFalse(C.get(base + "/exists")["exists"], "a 404 must not create the collection")

    def test_collection_exists(self):
        r = self.bad("PUT", "/collections/" + REF, {"vectors": {"size": DIM, "distance": "Cosine"}}, expect=409)
        self.assertIn(REF, r.json["status"]["error"])
        self.bad("PUT", "/collections/" + REF, {"vectors": {"size": 8, "distance": "Dot"}}, expect=409,
                 what="re-create with another config does not change the collection")
        v = C.get("/collections/" + REF)["config"]["params"]["vectors"]
        self.assertEqual((v.get("size"), v.get("distance")), (DIM, "Cosine"))

    def test_bad_collection_config(self):
        c = "/collections/badcfg"
        self.bad("PUT", c, {"vectors": {"size": 4, "distance": "Hamming"}}, expect=422)
        self.bad("PUT", c, {"vectors": {"size": 4, "distance": "cosine"}}, expect=(400, 422),
                 what="distance names are case-sensitive as in Qdrant")
        self.bad("PUT", c, {"vectors": {"size": 0, "distance": "Dot"}}, expect=422)
        self.bad("PUT", c, {"vectors": {"size": -3, "distance": "Dot"}}, expect=(400, 422))
        self.bad("PUT", c, {"vectors": {"size": 70000, "distance": "Dot"}}, expect=(400, 422),
                 what="dimension above Qdrant's 65536 maximum")
        self.bad("PUT", c, {"vectors": {"size": "4", "distance": "Dot"}}, expect=(400, 422))
        self.bad("PUT", c, {"vectors": {"distance": "Dot"}}, expect=(400, 422))
        self.bad("PUT", c, {}, expect=(400, 422))
        self.bad("PUT", c, {"vectors": {"size": 4, "distance": "Dot"}, "hnsw_config": {"m": "many"}},
                 expect=(400, 422))
        self.assertFalse(C.get(c + "/exists")["exists"], "a rejected create must not create the collection")
        self.bad("PUT", "/collections/" + "x" * 300, {"vectors": {"size": 4, "distance": "Dot"}},
                 expect=(400, 422), what="collection name over 255 bytes")

    # --- limits and ranges -------------------------------------------------------------------

    def test_bad_limits(self):
        p = "/collections/%s/points" % REF
        self.bad("POST", p + "/search", {"vector": [1, 2, 3, 4], "limit": 0}, expect=422)
        self.bad("POST", p + "/query", {"query": [1, 2, 3, 4], "limit": 0}, expect=422)
        self.bad("POST", p + "/scroll", {"limit": 0}, expect=422)
        # Qdrant's serde refuses a negative usize with 400; 422 is the project's choice too.
        self.bad("POST", p + "/search", {"vector": [1, 2, 3, 4], "limit": -1}, expect=(400, 422))
        self.bad("POST", p + "/query", {"query": [1, 2, 3, 4], "limit": -5}, expect=(400, 422))
        self.bad("POST", p + "/scroll", {"limit": -1}, expect=(400, 422))
        self.bad("POST", p + "/search", {"vector": [1, 2, 3, 4], "limit": 3, "offset": -1}, expect=(400, 422))
        self.bad("POST", p + "/search", {"vector": [1, 2, 3, 4], "limit": "ten"}, expect=(400, 422))
        self.bad("POST", p + "/search", {"vector": [1, 2, 3, 4]}, expect=(400, 422),
                 what="legacy search without the required limit")
        self.bad("POST", p + "/search", {"limit": 3}, expect=(400, 422), what="search without a vector")

    # --- body size ---------------------------------------------------------------------------

    def raw_exchange(self, head, body_len, chunk=1 << 20):
        """Sends `head` (request line + headers) and then up to body_len bytes, stopping as soon
        as the server answers or closes.  Returns (status, headers, body bytes)."""
        s = socket.create_connection(("127.0.0.1", SERVER.port), timeout=H.scaled(20))
        try:
            s.sendall(head)
            sent = 0
            filler = b" " * chunk
            deadline = time.monotonic() + H.scaled(60)
            answered = False
            while sent < body_len and time.monotonic() < deadline:
                rd, _, _ = select.select([s], [], [], 0.05 if sent else 0.5)
                if rd:
                    answered = True
                    break
                try:
                    s.sendall(filler[:min(chunk, body_len - sent)])
                except (BrokenPipeError, ConnectionResetError):
                    answered = True
                    break
                sent += min(chunk, body_len - sent)
            data = b""
            s.settimeout(H.scaled(20))
            while True:
                try:
                    b = s.recv(65536)
                except ConnectionResetError:
                    break
                except socket.timeout:
                    break
                if not b:
                    break
                data += b
                if b"\r\n\r\n" in data:
                    hdr, _, rest = data.partition(b"\r\n\r\n")
                    cl = [ln for ln in hdr.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                    if cl and len(rest) >= int(cl[0].split(b":")[1]):
                        break
            return data, sent, answered
        finally:
            s.close()

    def parse_raw(self, data, what):
        self.assertTrue(data.startswith(b"HTTP/1."), "%s: no HTTP response (got %r)" % (what, data[:200]))
        hdr, _, body = data.partition(b"\r\n\r\n")
        status = int(hdr.split(b" ")[1])
        r = H.HttpResponse(status, {}, body)
        return r

    def test_oversized_body_413(self):
        size = 40 * MIB
        head = ("PUT /collections/%s/points?wait=true HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (REF, size)).encode()
        data, sent, answered = self.raw_exchange(head, size)
        r = self.parse_raw(data, "40 MiB body")
        self.assertEqual(r.status, 413, "40 MiB body (sent %d bytes before the answer): %s" % (sent, r.describe()))
        H.check_error_envelope(r, "413")
        self.after_bad("413")
        # A chunked body that grows past the cap is refused too.
        head = ("PUT /collections/%s/points?wait=true HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n" % REF).encode()
        s = socket.create_connection(("127.0.0.1", SERVER.port), timeout=H.scaled(20))
        data = b""
        try:
            s.sendall(head)
            piece = b" " * MIB
            chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
            for _ in range(40):
                rd, _, _ = select.select([s], [], [], 0)
                if rd:
                    break
                try:
                    s.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
            else:
                try:
                    s.sendall(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
            s.settimeout(H.scaled(20))
            while True:
                try:
                    b = s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not b:
                    break
                data += b
                if b"\r\n\r\n" in data and b"}" in data.partition(b"\r\n\r\n")[2]:
                    break
        finally:
            s.close()
        r = self.parse_raw(data, "chunked 40 MiB body")
        self.assertEqual(r.status, 413, r.describe())
        self.after_bad("chunked 413")

    def test_body_under_cap_accepted(self):
        # About 4 MiB of valid JSON (padding inside a payload string) is accepted.
        c = "/collections/bigbody"
        H.create_collection(C, "bigbody", DIM, "Dot")
        body = {"points": [{"id": i, "vector": [1, 2, 3, 4], "payload": {"pad": "x" * (MIB // 2)}} for i in range(8)]}
        res = C.put(c + "/points?wait=true", body)
        H.check_update_result(res, True, "4 MiB upsert")
        self.assertEqual(H.count(C, "bigbody"), 8)
        C.delete(c)

    def test_many_idle_connections(self):
        # 300 idle connections (some with half a request) do not stop the server answering.
        socks = []
        try:
            for i in range(300):
                s = socket.create_connection(("127.0.0.1", SERVER.port), timeout=H.scaled(10))
                if i % 3 == 0:
                    s.sendall(b"POST /collections/%s/points/count HTTP/1.1\r\nContent-Length: 100\r\n\r\n{" % REF.encode())
                socks.append(s)
            self.assertEqual(H.count(C, REF), SNAPSHOT[1])
        finally:
            for s in socks:
                s.close()
        self.after_bad("300 idle connections")

    def test_garbage_http(self):
        for junk in (b"GARBAGE\r\n\r\n", b"\x00\x01\x02\x03\r\n\r\n",
                     b"POST /collections HTTP/1.1\r\nContent-Length: abc\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", SERVER.port), timeout=H.scaled(10))
            try:
                s.sendall(junk)
                data = b""
                while True:
                    try:
                        b = s.recv(65536)
                    except (ConnectionResetError, socket.timeout):
                        break
                    if not b:
                        break
                    data += b
            finally:
                s.close()
            # The server answers 400 (or 505 for an unknown HTTP version) or just closes.
            if data:
                self.assertTrue(data.startswith(b"HTTP/1.1 400") or data.startswith(b"HTTP/1.1 505")
                                or data.startswith(b"HTTP/1.0 400"), "junk %r got %r" % (junk, data[:100]))
            self.after_bad("junk %r" % junk)

    # --- filters -----------------------------------------------------------------------------

    def test_filter_on_missing_field(self):
        p = "/collections/%s/points" % REF
        flt = {"must": [{"key": "no_such_field", "match": {"value": "x"}}]}
        self.assertEqual(H.count(C, REF, flt), 0)
        self.assertEqual(C.post(p + "/search", {"vector": [1, 0, 0, 0], "limit": 5, "filter": flt}), [])
        self.assertEqual(C.post(p + "/scroll", {"filter": flt})["points"], [])
        self.after_bad("filter on a missing field")

    def test_bad_filters(self):
        p = "/collections/%s/points" % REF
        bad_filters = [
            ("filter is a string", "abc", (400,)),
            ("filter is a list", [{"key": "i", "match": {"value": 1}}], (400,)),
            ("unknown key in filter", {"must": [], "bogus": []}, (400,)),
            ("must holds a number", {"must": [5]}, (400,)),
            ("match value is an object", {"must": [{"key": "i", "match": {"value": {"x": 1}}}]}, (400, 422)),
            ("match value is a float", {"must": [{"key": "i", "match": {"value": 1.5}}]}, (400, 422)),
            ("match with two kinds", {"must": [{"key": "i", "match": {"value": 1, "any": [2]}}]}, (400, 422)),
            ("match any mixes types", {"must": [{"key": "i", "match": {"any": [1, "a"]}}]}, (400, 422)),
            ("range bound is not a number or datetime", {"must": [{"key": "i", "range": {"gt": "abc"}}]},
             (400, 422)),
            ("range bound is an object", {"must": [{"key": "i", "range": {"gt": {}}}]}, (400, 422)),
            ("condition without any predicate", {"must": [{"key": "i"}]}, (400, 422)),
            ("condition key is not a string", {"must": [{"key": 5, "match": {"value": 1}}]}, (400, 422)),
            ("has_id with a bad id", {"must": [{"has_id": ["zz"]}]}, (400,)),
            ("nested without filter", {"must": [{"nested": {"key": "items"}}]}, (400, 422)),
            ("min_should without conditions", {"min_should": {"min_count": 1}}, (400, 422)),
            ("values_count with a string", {"must": [{"key": "tags", "values_count": {"gte": "x"}}]}, (400, 422)),
        ]
        for what, flt, expect in bad_filters:
            self.bad("POST", p + "/search", {"vector": [1, 0, 0, 0], "limit": 3, "filter": flt}, expect=expect,
                     what="search: " + what)
            self.bad("POST", p + "/count", {"filter": flt}, expect=expect, what="count: " + what)
        self.bad("POST", p + "/delete?wait=true", {"filter": {"must": [{"key": "i", "match": {"value": {}}}]}},
                 expect=(400, 422), what="delete with a bad filter deletes nothing")
        self.bad("POST", p + "/delete?wait=true", {}, expect=(400, 422), what="delete without points or filter")
        self.bad("POST", p + "/payload?wait=true", {"payload": {"x": 1}, "filter": {"bogus": 1}},
                 expect=(400, 422), what="set payload with a bad filter")

    def test_unknown_fields(self):
        p = "/collections/%s/points" % REF
        # Qdrant refuses unknown keys in a filter (serde deny_unknown_fields) ...
        self.bad("POST", p + "/scroll", {"filter": {"must": [], "mustt": []}}, expect=400)
        # ... but ignores unknown top-level request keys; refusing them (400/422) is also fine.
        r = C.request("POST", p + "/search", body={"vector": [1, 0, 0, 0], "limit": 3, "limitt": 9})
        self.assertIn(r.status, (200, 400, 422), r.describe())
        if r.status == 200:
            H.check_ok_envelope(r, "unknown top-level key")
            self.assertEqual(len(r.json["result"]), 3)
        else:
            H.check_error_envelope(r, "unknown top-level key")
        self.after_bad("unknown top-level key")

    # --- other payload / op errors -------------------------------------------------------------

    def test_bad_payload_ops(self):
        p = "/collections/%s/points" % REF
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 1, "vector": [1, 2, 3, 4], "payload": [1, 2]}]},
                 expect=(400, 422), what="payload is a list")
        self.bad("PUT", p + "?wait=true", {"points": [{"id": 1, "vector": [1, 2, 3, 4], "payload": "x"}]},
                 expect=(400, 422), what="payload is a string")
        self.bad("PUT", p + "?wait=true", {"points": {"id": 1}}, expect=(400, 422))
        self.bad("PUT", p + "?wait=true", {"batch": {"ids": [1, 2], "vectors": [[1, 2, 3, 4]]}}, expect=(400, 422),
                 what="batch ids and vectors of different lengths")
        self.bad("PUT", p + "?wait=true", {"batch": {"ids": [1], "vectors": [[1, 2, 3, 4]], "payloads": [{}, {}]}},
                 expect=(400, 422), what="batch payloads of another length")
        self.bad("PUT", p + "?wait=true", {}, expect=(400, 422), what="upsert without points or batch")
        self.bad("POST", p + "/payload?wait=true", {"payload": {"a": 1}}, expect=(400, 422),
                 what="set payload without points or filter")
        self.bad("POST", p + "/payload?wait=true", {"payload": 5, "points": [1]}, expect=(400, 422))
        self.bad("POST", p + "/payload/delete?wait=true", {"keys": "a", "points": [1]}, expect=(400, 422))
        self.bad("PUT", "/collections/%s/index?wait=true" % REF, {"field_name": "i", "field_schema": "banana"},
                 expect=(400, 422))
        self.bad("PUT", "/collections/%s/index?wait=true" % REF, {"field_schema": "keyword"}, expect=(400, 422))
        self.bad("PUT", p + "?wait=maybe", {"points": [{"id": 1, "vector": [1, 2, 3, 4]}]}, expect=(400, 422),
                 what="wait=maybe")

    def test_wrong_method(self):
        for method, path in (("DELETE", "/collections/%s/points/search" % REF),
                             ("PUT", "/collections/%s/points/search" % REF),
                             ("PATCH", "/collections/%s/points/scroll" % REF),
                             ("POST", "/collections/%s/exists" % REF),
                             ("DELETE", "/collections/%s/points" % REF),
                             ("PUT", "/healthz")):
            self.bad(method, path, raw="{}", expect=(404, 405), what="%s %s" % (method, path))


if __name__ == "__main__":
    H.run_unittest()
