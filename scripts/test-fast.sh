#!/usr/bin/env bash
# The fast tier: every module (adapters, CLI, the store on Milvus Lite, the search kernels, eval, the README's
# bring-your-own-vector blocks) without the three marked tiers: `models` (tiny checkpoints), `server` (a real
# Milvus server) and `slow` (larger inputs, full-budget property tests). `.ci/run` still runs everything.
# Extra arguments go to pytest: bash scripts/test-fast.sh tests/store -x
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then
  source .venv/bin/activate
fi
exec python -m pytest -m "not slow and not server and not models" -q "$@"
