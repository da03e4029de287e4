#!/usr/bin/env bash
# The main demo. Installs what it needs, then runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
node scripts/demo-engines.mjs
