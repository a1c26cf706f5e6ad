#!/bin/sh
# setup.sh: installs what the integration tests need beyond the Debian packages, i.e. the
# pinned official Qdrant JavaScript client (js/package-lock.json) into js/node_modules.
# Idempotent: returns at once when the pinned client is already installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/js"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "setup.sh: node and npm are required for the JS client test (apt-get install nodejs npm)" >&2
    exit 1
fi
want=$(sed -n 's/.*"@qdrant\/js-client-rest": *"\([^"]*\)".*/\1/p' package.json | head -n 1)
have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' node_modules/@qdrant/js-client-rest/package.json 2>/dev/null | head -n 1 || true)
if [ -n "$want" ] && [ "$want" = "$have" ] && [ -d node_modules/undici ]; then
    exit 0
fi
npm ci --no-audit --no-fund
