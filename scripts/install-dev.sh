#!/usr/bin/env bash
# Development install: a virtual environment with everything the tests and the benchmarks need.
#
#   bash scripts/install-dev.sh                     # creates ./.venv
#   VENV=/some/where bash scripts/install-dev.sh
#   TORCH_BUILD=cpu bash scripts/install-dev.sh     # CPU builds from PyTorch's CPU index (where reachable)
#
# It is `pip install -e ".[all,bench,test]"`, with torch and torchvision installed first as a pair
# built for each other. torchvision is not optional (transformers 5's Qwen2-VL processors, which
# colpali-engine imports, need it), and a torchvision built for another torch fails on import
# ("operator torchvision::nms does not exist"). Left to itself, pip can mix builds: on this project's
# machines a CPU torch 2.13.0 wheel lies on disk and pip prefers it, while the only torchvision 0.28.0
# it can reach is PyPI's CUDA build.
#
#   x86_64 (default)        PyPI's builds, torch 2.13.0 + torchvision 0.28.0 (`===` refuses the local
#                           +cpu build of the same number). They are CUDA builds and run on the CPU:
#                           PyPI has no CPU torchvision for x86_64, so on a machine that reaches only
#                           PyPI (this project's CI) no CPU pair is installable.
#   x86_64, TORCH_BUILD=cpu CPU builds of the same pair from PyTorch's CPU index (about 2 GB less);
#                           fails where that index cannot be reached
#   aarch64                 PyPI's torch 2.9.1 + torchvision 0.24.1 (CPU builds there)
#
# Each pair is inside colpali-engine 0.3.18's torch<2.14, so everything installs with its declared
# requirements and `pip check` passes (checked at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_BUILD="${TORCH_BUILD:-auto}"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip

install_cuda_pair() {
  "${PIP[@]}" install --quiet "torch===2.13.0" "torchvision==0.28.0"
}

install_cpu_pair() {  # quiet: on a machine without the CPU index its failure is expected and handled
  local log
  log="$(mktemp)"
  if "${PIP[@]}" install --quiet --retries 1 --timeout 30 --extra-index-url "$CPU_INDEX" \
      "torch==2.13.0+cpu" "torchvision==0.28.0+cpu" >"$log" 2>&1; then
    rm -f "$log"
    return 0
  fi
  echo "install-dev: no CPU torchvision 0.28.0+cpu is installable here ($CPU_INDEX unreachable?):" >&2
  grep -v "is ignored: it is neither" "$log" | grep -m 1 -E "^(ERROR|WARNING)" | cut -c 1-240 | sed 's/^/    /' >&2 || true
  rm -f "$log"
  return 1
}

case "$(uname -m):$TORCH_BUILD" in
  aarch64:* | arm64:*)
    "${PIP[@]}" install --quiet "torch==2.9.1" "torchvision==0.24.1" ;;
  *:cuda)
    install_cuda_pair ;;
  *:cpu)
    install_cpu_pair || exit 1 ;;
  *:auto)
    install_cuda_pair ;;
  *)
    echo "install-dev: TORCH_BUILD must be auto, cpu or cuda, not '$TORCH_BUILD'" >&2
    exit 2 ;;
esac

# Everything else, with its declared requirements; the torch pair above already satisfies them.
"${PIP[@]}" install --quiet -e ".[all,bench,test]"

"${PIP[@]}" check
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version

import torch
import torchvision.ops  # its compiled operators load only into the torch they were built for

from colpali_milvus._deps import require

require("colpali_engine.models", extra="colpali", package="colpali-engine")
import langchain_core, llama_index.core, pymilvus  # noqa: E401,F401

build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
names = ("torchvision", "transformers", "colpali-engine", "pymilvus")
print(f"torch {torch.__version__} ({build} build), " + ", ".join(f"{name} {version(name)}" for name in names))
PY
