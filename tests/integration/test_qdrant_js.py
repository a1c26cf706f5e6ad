#!/usr/bin/python3
"""test_qdrant_js: runs js/test_qdrant_js.mjs (the official Qdrant JavaScript client) against a
fresh fannsd.  Installs the pinned client first through setup.sh (a no-op when present).
Fails, never skips, when node or the client cannot be had.

Usage: test_qdrant_js.py --fannsd build/fannsd
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fanns_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    args, _ = H.parse_args(sys.argv[1:])
    node = shutil.which("node")
    if node is None:
        sys.stderr.write("FATAL: node is not installed; the Qdrant JS client test needs it\n")
        sys.exit(2)
    subprocess.run(["sh", os.path.join(HERE, "setup.sh")], check=True)
    srv = H.Server(args.fannsd)
    try:
        srv.start()
        r = subprocess.run([node, os.path.join(HERE, "js", "test_qdrant_js.mjs"), srv.url],
                           cwd=os.path.join(HERE, "js"), timeout=H.scaled(120))
        if r.returncode != 0:
            sys.stderr.write("node test failed (exit %d)\n--- fannsd log tail ---\n%s\n"
                             % (r.returncode, srv.log_tail(40)))
            sys.exit(1)
        srv.stop()
    finally:
        srv.cleanup()


if __name__ == "__main__":
    main()
