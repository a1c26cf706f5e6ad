"""fanns_harness: start, stop, crash and talk to a real fannsd for black-box integration tests.

The integration tests treat the server as a black box: they start build/fannsd on a fresh data
directory with an ephemeral loopback port (the server writes the port it bound into a port file),
wait until GET /readyz answers 200, talk Qdrant-style REST/JSON to it over one keep-alive
connection, and stop it with SIGTERM (expecting exit code 0) or crash it with SIGKILL and start
it again on the same directory.

Only the Python standard library is used here (numpy is used by some tests, not by the harness).

Environment:
  FANNSD                   path of the server binary if --fannsd is not given
  FANNS_TEST_TIME_SCALE    multiply every timeout (e.g. 3 under ASan); default 1
  FANNS_TEST_KEEP          if set, the temporary data directories are not deleted
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

TIME_SCALE = float(os.environ.get("FANNS_TEST_TIME_SCALE", "1") or "1")


def scaled(seconds):
    """A timeout scaled for slow (sanitizer) builds."""
    return seconds * TIME_SCALE


def parse_args(argv=None, extra=None):
    """Parses the common command line: --fannsd PATH [--shared-dir DIR].  Unknown arguments are
    returned so unittest can get its own.  `extra` is an optional function(parser) that adds
    test-specific options."""
    p = argparse.ArgumentParser(add_help=True)
    p.add_argument("--fannsd", default=os.environ.get("FANNSD", os.path.join(REPO, "build", "fannsd")),
                   help="path of the fannsd binary")
    if extra is not None:
        extra(p)
    args, rest = p.parse_known_args(argv)
    if not os.path.isfile(args.fannsd) or not os.access(args.fannsd, os.X_OK):
        sys.stderr.write("FATAL: fannsd binary not found or not executable: %s\n" % args.fannsd)
        sys.exit(2)
    return args, rest


class HttpResponse:
    """One HTTP response: status, headers (lower-case keys), raw body, parsed JSON (or None)."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.json = None
        self.json_error = None
        if raw:
            try:
                self.json = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                self.json_error = str(e)

    @property
    def result(self):
        return None if not isinstance(self.json, dict) else self.json.get("result")

    def describe(self):
        body = self.raw[:600].decode("utf-8", "replace")
        return "HTTP %d %s" % (self.status, body)


class Client:
    """A keep-alive HTTP/1.1 client for one server.  A request that fails because the server
    closed an idle kept-alive connection is retried once on a fresh connection."""

    def __init__(self, host, port, timeout=None, server=None):
        self.host = host
        self.port = port
        self.timeout = timeout if timeout is not None else scaled(60)
        self.conn = None
        self.server = server        # if set, a failed request reports the server's state

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connect(self):
        self.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def request(self, method, path, body=None, raw=None, headers=None):
        """Sends one request.  `body` is JSON-encoded; `raw` (bytes or str) is sent as is.
        Returns an HttpResponse."""
        hdrs = {"Connection": "keep-alive"}
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        elif raw is not None:
            data = raw.encode("utf-8") if isinstance(raw, str) else raw
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        for attempt in (0, 1):
            reused = self.conn is not None
            conn = self.conn if reused else self._connect()
            try:
                conn.request(method, path, body=data, headers=hdrs)
                r = conn.getresponse()
                payload = r.read()
                resp = HttpResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
                if (r.getheader("connection") or "").lower() == "close":
                    self.close()
                return resp
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as e:
                self.close()
                if attempt == 0 and reused:
                    continue
                self._report(method, path, data, e)
                raise
            except OSError as e:
                self.close()
                self._report(method, path, data, e)
                raise
        raise AssertionError("unreachable")

    def _report(self, method, path, data, e):
        if self.server is None:
            return
        time.sleep(0.2)
        proc = self.server.proc
        state = "running" if proc is not None and proc.poll() is None else \
            "EXITED with code %s" % (None if proc is None else proc.poll())
        sys.stderr.write("request %s %s (%d body bytes) failed: %r; fannsd is %s\n--- fannsd log tail ---\n%s\n"
                         % (method, path, len(data or b""), e, state, self.server.log_tail(40)))

    # JSON helpers ------------------------------------------------------------------------

    def call(self, method, path, body=None, expect=200):
        """Sends a request and asserts the HTTP status (an int or a tuple of ints) and, for a
        2xx, a Qdrant envelope with status "ok".  Returns the HttpResponse."""
        r = self.request(method, path, body=body)
        ok = expect if isinstance(expect, (tuple, list, set)) else (expect,)
        assert r.status in ok, "%s %s: expected HTTP %s, got %s (request body: %s)" % (
            method, path, expect, r.describe(), json.dumps(body)[:300] if body is not None else "-")
        if 200 <= r.status < 300:
            check_ok_envelope(r, "%s %s" % (method, path))
        else:
            check_error_envelope(r, "%s %s" % (method, path))
        return r

    def ok(self, method, path, body=None):
        """Sends a request that must succeed with 200 and returns its `result`."""
        return self.call(method, path, body, 200).json.get("result")

    def get(self, path):
        return self.ok("GET", path)

    def post(self, path, body=None):
        return self.ok("POST", path, body if body is not None else {})

    def put(self, path, body=None):
        return self.ok("PUT", path, body if body is not None else {})

    def delete(self, path, body=None):
        return self.ok("DELETE", path, body)


def check_ok_envelope(r, what):
    assert r.json is not None, "%s: response is not JSON (%s): %s" % (what, r.json_error, r.describe())
    assert isinstance(r.json, dict), "%s: envelope is not an object: %s" % (what, r.describe())
    assert r.json.get("status") == "ok", "%s: status is not \"ok\": %s" % (what, r.describe())
    assert "result" in r.json, "%s: envelope has no result: %s" % (what, r.describe())
    t = r.json.get("time")
    assert isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0, \
        "%s: envelope time is not a non-negative number: %s" % (what, r.describe())


def check_error_envelope(r, what):
    assert r.json is not None, "%s: error response is not JSON (%s): %s" % (what, r.json_error, r.describe())
    assert isinstance(r.json, dict), "%s: envelope is not an object: %s" % (what, r.describe())
    st = r.json.get("status")
    assert isinstance(st, dict) and isinstance(st.get("error"), str) and st["error"].strip(), \
        "%s: error envelope lacks a non-empty status.error: %s" % (what, r.describe())
    t = r.json.get("time")
    assert isinstance(t, (int, float)) and not isinstance(t, bool), \
        "%s: error envelope time is not a number: %s" % (what, r.describe())


class Server:
    """One fannsd process on a data directory it may share with later instances.

        s = Server(fannsd); s.start(); c = s.client(); ...; s.stop()
        s.kill(); s.start()      # crash and recover on the same directory
    """

    def __init__(self, fannsd, data_dir=None, extra_args=(), name="fannsd"):
        self.fannsd = os.path.abspath(fannsd)
        self.tmp = tempfile.mkdtemp(prefix="fanns-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.extra_args = list(extra_args)
        self.name = name
        self.proc = None
        self.port = None
        self.log_path = None
        self.log_file = None
        self.starts = 0
        self._clients = []

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=None):
        assert self.proc is None, "server already running"
        timeout = timeout if timeout is not None else scaled(30)
        self.starts += 1
        port_file = os.path.join(self.tmp, "port.%d" % self.starts)
        self.log_path = os.path.join(self.tmp, "fannsd.%d.log" % self.starts)
        self.log_file = open(self.log_path, "wb")
        cmd = [self.fannsd, "--host", "127.0.0.1", "--port", "0", "--data-dir", self.data_dir,
               "--port-file", port_file] + self.extra_args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        self.port = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self._fail("fannsd exited with code %d during start-up" % rc)
            if self.port is None and os.path.exists(port_file):
                try:
                    with open(port_file) as f:
                        txt = f.read().strip()
                    if txt:
                        self.port = int(txt)
                except ValueError:
                    self.port = None
            if self.port is not None:
                try:
                    c = Client("127.0.0.1", self.port, timeout=scaled(5))
                    r = c.request("GET", "/readyz")
                    c.close()
                    if r.status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.02)
        self._fail("fannsd not ready within %.0f s (port=%s)" % (timeout, self.port))

    def client(self, timeout=None):
        assert self.port is not None, "server not started"
        c = Client("127.0.0.1", self.port, timeout, server=self)
        self._clients.append(c)
        return c

    def _close_clients(self):
        for c in self._clients:
            c.close()
        self._clients = []

    def log_tail(self, n=60):
        if not self.log_path or not os.path.exists(self.log_path):
            return "(no log)"
        with open(self.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def _fail(self, msg):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        raise AssertionError("%s\n--- fannsd log tail (%s) ---\n%s" % (msg, self.log_path, self.log_tail()))

    def stop(self, timeout=None):
        """SIGTERM, wait, and assert a clean exit (code 0)."""
        assert self.proc is not None, "server not running"
        timeout = timeout if timeout is not None else scaled(30)
        self._close_clients()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._fail("fannsd did not exit within %.0f s of SIGTERM" % timeout)
        self.log_file.close()
        self.proc = None
        if rc != 0:
            raise AssertionError("fannsd exited with code %d after SIGTERM (expected 0)\n--- log tail ---\n%s"
                                 % (rc, self.log_tail()))

    def kill(self):
        """SIGKILL: a crash.  The data directory is left as the process left it."""
        assert self.proc is not None, "server not running"
        self._close_clients()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log_file.close()
        self.proc = None

    def restart(self):
        """Graceful stop (asserting exit 0), then start on the same data directory."""
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        """Kills a still-running server (without failing) and removes the temporary directory."""
        self._close_clients()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.log_file is not None and not self.log_file.closed:
            self.log_file.close()
        if os.environ.get("FANNS_TEST_KEEP"):
            sys.stderr.write("keeping %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        try:
            if et is None and self.proc is not None:
                self.stop()
        finally:
            self.cleanup()
        return False


# Small helpers shared by the tests -------------------------------------------------------------

def create_collection(c, name, size, distance, **extra):
    body = {"vectors": {"size": size, "distance": distance}}
    body.update(extra)
    res = c.put("/collections/%s" % name, body)
    assert res is True, "PUT /collections/%s: result should be true, got %r" % (name, res)


def upsert(c, name, points, wait=True):
    res = c.put("/collections/%s/points?wait=%s" % (name, "true" if wait else "false"), {"points": points})
    check_update_result(res, wait)
    return res


def check_update_result(res, wait=True, what="update"):
    assert isinstance(res, dict), "%s: result should be an UpdateResult object, got %r" % (what, res)
    op = res.get("operation_id")
    assert isinstance(op, int) and not isinstance(op, bool) and op >= 0, \
        "%s: operation_id should be a uint64, got %r" % (what, res)
    want = "completed" if wait else "acknowledged"
    assert res.get("status") == want, "%s: status should be %r, got %r" % (what, want, res)


def scroll_all(c, name, filter=None, with_payload=True, with_vector=False, page=64):
    """Scrolls a whole collection (or a filtered part) page by page; returns the records in
    the order the server gave them and checks the cursor protocol on the way."""
    out = []
    offset = None
    for _ in range(1000000):
        body = {"limit": page, "with_payload": with_payload, "with_vector": with_vector}
        if filter is not None:
            body["filter"] = filter
        if offset is not None:
            body["offset"] = offset
        res = c.post("/collections/%s/points/scroll" % name, body)
        assert isinstance(res, dict) and isinstance(res.get("points"), list), \
            "scroll: result should be {points, next_page_offset}, got %r" % (res,)
        assert "next_page_offset" in res, "scroll: result lacks next_page_offset: %r" % (res,)
        assert len(res["points"]) <= page, "scroll returned %d points for limit %d" % (len(res["points"]), page)
        out.extend(res["points"])
        offset = res["next_page_offset"]
        if offset is None:
            return out
        assert res["points"], "scroll: an empty page with a non-null next_page_offset %r" % (offset,)
    raise AssertionError("scroll did not terminate")


def id_sort_key(pid):
    """Qdrant's point id order: all integer ids (ascending) before all UUIDs (by their bytes,
    which is the order of their lower-case hex text)."""
    if isinstance(pid, int):
        return (0, pid, "")
    return (1, 0, str(pid).replace("-", "").lower())


def count(c, name, filter=None, exact=True):
    body = {"exact": exact}
    if filter is not None:
        body["filter"] = filter
    res = c.post("/collections/%s/points/count" % name, body)
    assert isinstance(res, dict) and isinstance(res.get("count"), int), "count: bad result %r" % (res,)
    return res["count"]


def run_unittest(extra=None):
    """Entry point for the unittest-based scripts: parses our options, leaves the rest to
    unittest.  Returns the parsed args (also stored as fanns_harness.ARGS)."""
    import unittest
    global ARGS
    ARGS, rest = parse_args(sys.argv[1:], extra)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


ARGS = None
