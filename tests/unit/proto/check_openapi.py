#!/usr/bin/env python3
"""check_openapi: proto/openapi.yaml and the server's router agree.

Checks, in order:
 1. The spec is laid out as its header says (paths two spaces in, methods four spaces in under
    `paths:`), every path has a method, operationIds are unique, and every
    `#/components/<section>/<name>` reference names a component that is defined.  The YAML is
    read with a small line parser so no YAML library is needed; when PyYAML happens to be
    installed the same facts are also read with it and must agree.
 2. A real fannsd, started on an ephemeral loopback port with a temporary data directory,
    routes every documented (method, path): with a collection `c` in place, `{collection_name}`
    -> c, `{id}` -> 1, `{field_name}` -> f and a `{}` body, the answer must not be the router's
    404 "no route" or 405, and it must be the documented kind of body (Qdrant's JSON envelope;
    `{title, version}` for GET /; text for the health probes).
 3. The other way round: every method of GET/PUT/POST/DELETE/PATCH that the spec does not
    document for a concrete documented path, and a list of Qdrant paths fanns does not serve,
    answer 404 or 405 with the JSON error envelope.

Usage: check_openapi.py --fannsd build/fannsd [--spec proto/openapi.yaml]
Exit status 0 when every check passes, 1 otherwise.  Python 3 standard library only.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PROBE_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")
SUBST = {"collection_name": "c", "id": "1", "field_name": "f"}
TEXT_PATHS = ("/healthz", "/livez", "/readyz", "/metrics")

# Paths Qdrant serves and fanns does not (yet): each must answer 404 or 405.
UNDOCUMENTED = [
    ("GET", "/telemetry"),
    ("GET", "/cluster"),
    ("GET", "/aliases"),
    ("POST", "/collections/aliases"),
    ("GET", "/collections/c/aliases"),
    ("GET", "/collections/c/snapshots"),
    ("POST", "/collections/c/facet"),
    ("POST", "/collections/c/points/batch"),
    ("PUT", "/collections/c/points/vectors"),
    ("POST", "/collections/c/points/vectors/delete"),
    ("POST", "/collections/c/points/search/groups"),
    ("POST", "/collections/c/points/query/groups"),
    ("POST", "/collections/c/points/recommend"),
    ("POST", "/collections/c/points/1/extra/more"),
    ("GET", "/fanns/anything"),
    ("OPTIONS", "/collections"),
]

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


# ---- 1. the spec, read line by line -------------------------------------------------------

def parse_spec(text):
    """Returns (ops, components, op_ids): ops maps each path to its list of upper-case methods,
    components maps a section (schemas, responses, parameters) to the set of names."""
    ops, components, op_ids = {}, {}, []
    top = None
    section = None
    path = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            top = line.split(":", 1)[0]
            continue
        if top == "paths":
            m = re.match(r"^  (/\S*):$", line)
            if m:
                path = m.group(1)
                if path in ops:
                    fail("spec line %d: path %s listed twice" % (n, path))
                ops[path] = []
                continue
            if indent == 2:
                fail("spec line %d: expected a path key (two spaces in): %r" % (n, line))
                continue
            m = re.match(r"^    (\w+):", line)
            if m and path is not None and m.group(1) in METHODS:
                ops[path].append(m.group(1).upper())
            elif m and m.group(1) not in ("parameters", "summary", "description", "servers"):
                fail("spec line %d: unexpected key under %s: %r" % (n, path, m.group(1)))
            m = re.match(r"^      operationId:\s*(\S+)$", line)
            if m:
                op_ids.append(m.group(1))
        elif top == "components":
            m = re.match(r"^  (\w+):$", line)
            if m:
                section = m.group(1)
                components.setdefault(section, set())
                continue
            m = re.match(r"^    (\w+):", line)
            if m and section:
                components[section].add(m.group(1))
    return ops, components, op_ids


def check_spec(text):
    ops, components, op_ids = parse_spec(text)
    if not ops:
        fail("spec: no paths found")
    for p, ms in ops.items():
        if not ms:
            fail("spec: path %s has no method" % p)
    dup = sorted({o for o in op_ids if op_ids.count(o) > 1})
    if dup:
        fail("spec: duplicate operationId %s" % ", ".join(dup))
    nops = sum(len(m) for m in ops.values())
    if len(op_ids) != nops:
        fail("spec: %d operations but %d operationIds" % (nops, len(op_ids)))
    for sect, name in set(re.findall(r"#/components/(\w+)/(\w+)", text)):
        if name not in components.get(sect, ()):
            fail("spec: reference to undefined #/components/%s/%s" % (sect, name))
    if not re.search(r"^openapi: 3\.0\.3$", text, re.M):
        fail("spec: missing `openapi: 3.0.3`")
    try:
        import yaml  # optional cross-check of the line parser
    except ImportError:
        yaml = None
    if yaml is not None:
        doc = yaml.safe_load(text)
        yops = {p: sorted(k.upper() for k in v if k in METHODS) for p, v in doc["paths"].items()}
        if yops != {p: sorted(m) for p, m in ops.items()}:
            fail("spec: the line parser and PyYAML disagree on paths/methods")
        for sect, names in components.items():
            if set(doc["components"].get(sect, {})) != names:
                fail("spec: the line parser and PyYAML disagree on components/%s" % sect)
    return ops


# ---- 2 and 3. the server ------------------------------------------------------------------

class Server:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="fanns-openapi-")
        portfile = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", "0", "--data-dir", os.path.join(self.dir, "data"),
             "--port-file", portfile, "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        self.port = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fannsd exited with %d; log in %s" % (self.proc.returncode, self.dir))
            try:
                with open(portfile) as f:
                    s = f.read().strip()
                if s:
                    self.port = int(s)
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        if not self.port:
            raise RuntimeError("fannsd did not write its port file within 30 s")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.getheader("Content-Type", ""), r.read()
            except (http.client.HTTPException, OSError):
                # The server closes the connection after some errors: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def stop(self):
        self.conn.close()
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("fannsd did not stop within 30 s of SIGTERM")
        else:
            rc = self.proc.returncode
        self.log.close()
        if rc not in (0, None):
            fail("fannsd exited with status %s (log kept in %s)" % (rc, self.dir))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def concrete(path):
    return re.sub(r"\{(\w+)\}", lambda m: SUBST.get(m.group(1), "x"), path)


def template_regex(path):
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$")


def is_router_miss(status, raw):
    """True when the answer is the router's own 404 (no route) or 405."""
    if status == 405:
        return True
    if status != 404:
        return False
    try:
        msg = json.loads(raw.decode())["status"]["error"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return True  # a 404 without the envelope is no handler's answer either
    return msg.startswith("Not found: no route")


def envelope_ok(status, raw):
    try:
        doc = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(doc, dict) or not isinstance(doc.get("time"), (int, float)):
        return False
    if status == 200:
        return doc.get("status") == "ok" and "result" in doc
    st = doc.get("status")
    return isinstance(st, dict) and isinstance(st.get("error"), str) and st["error"] != ""


def ensure_collection(srv):
    st, _, raw = srv.request("PUT", "/collections/c", {"vectors": {"size": 2, "distance": "Dot"}})
    if st not in (200, 409):
        raise RuntimeError("could not create collection c: %d %s" % (st, raw[:200]))


def check_server(srv, ops):
    templates = [(template_regex(p), set(ms)) for p, ms in ops.items()]
    ndoc = 0
    for path, methods in ops.items():
        for m in methods:
            if m in ("HEAD", "OPTIONS", "TRACE"):
                continue
            ensure_collection(srv)  # a documented DELETE may have dropped it
            url = concrete(path)
            st, ctype, raw = srv.request(m, url, {})
            ndoc += 1
            where = "%s %s (%s)" % (m, url, path)
            if is_router_miss(st, raw):
                fail("documented %s is not routed: %d %s" % (where, st, raw[:200]))
            elif path == "/":
                try:
                    doc = json.loads(raw.decode())
                except (ValueError, UnicodeDecodeError):
                    doc = None
                if st != 200 or not isinstance(doc, dict) or "title" not in doc or "version" not in doc:
                    fail("%s: expected 200 {title, version}, got %d %s" % (where, st, raw[:200]))
            elif path in TEXT_PATHS:
                if st != 200 or not ctype.startswith("text/plain"):
                    fail("%s: expected 200 text/plain, got %d %s" % (where, st, ctype))
            elif not ctype.startswith("application/json") or not envelope_ok(st, raw):
                fail("%s: answer is not Qdrant's JSON envelope: %d %s" % (where, st, raw[:200]))
    ensure_collection(srv)
    nrev = 0
    for path in ops:
        url = concrete(path)
        for m in PROBE_METHODS:
            if any(rx.match(url) and m in ms for rx, ms in templates):
                continue
            st, _, raw = srv.request(m, url, {})
            nrev += 1
            if st not in (404, 405) or not envelope_ok(st, raw):
                fail("undocumented %s %s answered %d %s (expected 404/405 with the error envelope)"
                     % (m, url, st, raw[:200]))
    for m, url in UNDOCUMENTED:
        if any(rx.match(url) and m in ms for rx, ms in templates):
            fail("%s %s is in the undocumented list but the spec documents it" % (m, url))
            continue
        st, _, raw = srv.request(m, url, {})
        nrev += 1
        if st not in (404, 405) or not envelope_ok(st, raw):
            fail("undocumented %s %s answered %d %s (expected 404/405)" % (m, url, st, raw[:200]))
    print("checked %d documented operations and %d undocumented method/path pairs" % (ndoc, nrev))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fannsd", default=os.environ.get("FANNSD", os.path.join(REPO, "build", "fannsd")))
    ap.add_argument("--spec", default=os.path.join(REPO, "proto", "openapi.yaml"))
    args = ap.parse_args()
    with open(args.spec, encoding="utf-8") as f:
        text = f.read()
    ops = check_spec(text)
    print("spec: %d paths, %d operations" % (len(ops), sum(len(m) for m in ops.values())))
    if not (os.path.isfile(args.fannsd) and os.access(args.fannsd, os.X_OK)):
        print("FATAL: fannsd binary not found or not executable: %s" % args.fannsd)
        return 2
    srv = Server(args.fannsd)
    try:
        check_server(srv, ops)
    finally:
        srv.stop()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
