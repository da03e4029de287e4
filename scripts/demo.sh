#!/usr/bin/env bash
# The main demo: installs what it needs, then brings up a coordinator and a mesh behind NATs in
# network namespaces on this machine (scripts/demo/main.ts, run with the bench package's tsx).
# `--duration N` stops it N seconds after the mesh is up; otherwise Ctrl-C ends it. Needs root.
# The earlier in-memory demo of two WireGuard engines: node scripts/demo-engines.mjs
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
cd bench
exec node --import tsx ../scripts/demo/main.ts "$@"
