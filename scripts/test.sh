#!/usr/bin/env bash
# Runs every test: unit tests (seconds), then system tests in network namespaces (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
node scripts/run-tests.mjs "$@"
