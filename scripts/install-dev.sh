#!/usr/bin/env bash
# Development install: a virtual environment with everything the test suite needs.
#
#   bash scripts/install-dev.sh            # creates ./.venv
#   VENV=/some/where bash scripts/install-dev.sh
#
# Why not just `pip install -e ".[all,test]"`? colpali-engine 0.3.18 declares torch<2.14, yet it is
# the only release that works with transformers 5, and on machines whose pip is capped at
# torch 2.14.1 (like our CI) the only torch that pairs with a working torchvision is 2.14.1.
# So torch is pinned first and colpali-engine is installed without its torch pin. On an ordinary
# machine `pip install "colpali-milvus[all]"` resolves a torch < 2.14 by itself and needs none of this.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip

case "$(uname -m)" in
  x86_64) TORCH=("torch==2.14.1" "torchvision==0.29.1") ;;
  *)      TORCH=("torch==2.9.1" "torchvision==0.24.1") ;;  # CPU wheels for aarch64
esac
"${PIP[@]}" install --quiet "${TORCH[@]}"
"${PIP[@]}" install --quiet --no-deps "colpali-engine==0.3.18"
# colpali-engine's own requirements, minus the torch pin, then the project with its other extras.
"${PIP[@]}" install --quiet \
  "transformers>=5.3,<6" "peft>=0.18,<0.21" scipy requests tqdm \
  -e ".[langchain,llama-index,test]"
"$VENV/bin/python" - <<'PY'
import colpali_engine, torch, torchvision, transformers, pymilvus, langchain_core, llama_index.core
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, transformers {transformers.__version__}, "
      f"colpali-engine {colpali_engine.__version__ if hasattr(colpali_engine, '__version__') else '0.3.18'}, "
      f"pymilvus {pymilvus.__version__}")
PY
