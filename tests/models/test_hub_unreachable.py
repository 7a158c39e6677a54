"""ColPaliEmbedder with no hub: a hub id fails within seconds, a cached copy loads without retries.

Fresh processes (huggingface_hub reads its settings on import), the "hub" a closed loopback port,
the cache an empty folder or a tiny checkpoint laid out as huggingface_hub's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from colpali_milvus.embed.colpali import DEFAULT_MODEL

pytestmark = pytest.mark.models


def hub_env(hf_home: Path) -> dict[str, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # released: nothing listens there
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_")) and "proxy" not in key.lower()
    }
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="*")
    return env


LOAD = """
import json, time
import torch, colpali_engine.models  # imported before the clock starts
from colpali_milvus import ColPaliEmbedder, ModelError
result = {{}}
started = time.monotonic()
try:
    embedder = ColPaliEmbedder({name!r}, device="cpu", show_progress=False)
    result["dims"] = [list(v.shape) for v in embedder.embed_queries(["total revenue"])]
except ModelError as error:
    result["error"] = str(error)
result["seconds"] = time.monotonic() - started
print(json.dumps(result))
"""


def load(name: str, env: dict[str, str]) -> tuple[dict[str, object], str]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD.format(name=name)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_the_default_model_with_no_hub_and_no_cache_fails_within_seconds(tmp_path: Path) -> None:
    result, stderr = load(DEFAULT_MODEL, hub_env(tmp_path))
    message = str(result["error"])
    assert message.startswith(f"cannot load {DEFAULT_MODEL!r}: it is not a local folder, not in the local")
    assert "cannot be reached" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert "config.json" not in message
    assert float(str(result["seconds"])) < 5
    assert "Retrying" not in stderr


def test_a_cached_checkpoint_loads_when_the_hub_is_unreachable(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = tmp_path / "hub" / "models--org--tiny-colpali"
    shutil.copytree(tiny_checkpoints["colpali"], root / "snapshots" / commit)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)

    result, stderr = load("org/tiny-colpali", hub_env(tmp_path))
    assert "error" not in result, result
    assert result["dims"] and result["dims"][0][1] == 128  # type: ignore[index]
    assert "using the cached copy of 'org/tiny-colpali'" in stderr
    assert "Retrying" not in stderr
    assert float(str(result["seconds"])) < 60
