#!/usr/bin/env bash
# The capture module (client/): its npm packages installed from the lock file (only when the lock
# changed), type-checked and built (`dist/capture.js`, one ES module for pages), and with `test`
# its unit tests (node's own runner). Needs Node.js 20 or newer (`scripts/install-deps.sh`
# installs Debian's nodejs and npm when node is missing).
#
#   scripts/client.sh build | test
set -euo pipefail
cd "$(dirname "$0")/../client"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm not found: run scripts/install-deps.sh (Debian's nodejs and npm)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "node $(node --version) is too old: the capture module needs Node.js 20 or newer" >&2
  exit 1
fi
# npm records the installed tree in node_modules/.package-lock.json: newer than the lock file
# means the lock has not changed since.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
if [ "${1:-build}" = test ]; then
  npm test --silent
fi
