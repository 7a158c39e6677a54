"""A hub id that is neither cached nor downloadable fails at once, naming the model and the fix.

Each case runs in a fresh process, since huggingface_hub reads its endpoint, cache and offline
settings when it is imported. The "hub" is a closed port on loopback (nothing else is ever
contacted); the cache is an empty folder, or one laid out as huggingface_hub lays out its own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub", reason="huggingface_hub comes with the colpali extra")

MODEL = "vidore/colqwen2-v1.0"


def closed_loopback_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hub_env(hf_home: Path, *, offline: bool = False) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_")) and "proxy" not in key.lower()
    }
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{closed_loopback_port()}",
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="*",
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def run(code: str, env: dict[str, str]) -> tuple[dict[str, object], str, float]:
    """Run ``code`` (which sets ``result``) in a fresh interpreter; its result, stderr and wall time."""
    script = f"import json\nresult = {{}}\n{code}\nprint(json.dumps(result))\n"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr, elapsed


RESOLVE = """
import time
from colpali_milvus.embed.registry import resolve_family
from colpali_milvus.errors import ModelError
started = time.monotonic()
try:
    result["family"] = resolve_family({name!r}{kwargs})
    result["family"] = result["family"].name
except ModelError as error:
    result["error"] = str(error)
result["seconds"] = time.monotonic() - started
"""


def cache_repo(hf_home: Path, repo_id: str, files: dict[str, dict[str, object]]) -> None:
    """Lay out ``files`` as huggingface_hub's cache holds a download of ``repo_id`` at ``main``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for name, content in files.items():
        (snapshot / name).write_text(json.dumps(content))


def test_unreachable_hub_and_empty_cache_fail_at_once(tmp_path: Path) -> None:
    result, stderr, _ = run(RESOLVE.format(name=MODEL, kwargs=""), hub_env(tmp_path))
    message = str(result["error"])
    assert message.startswith(f"cannot load {MODEL!r}: it is not a local folder, not in the local Hugging Face cache")
    assert "cannot be downloaded: the hub at http://127.0.0.1:" in message
    assert "cannot be reached" in message
    for way_out in ("local checkpoint folder", "HF_HUB_OFFLINE=1", "HF_ENDPOINT"):
        assert way_out in message
    assert float(str(result["seconds"])) < 5
    assert "Retrying" not in stderr  # one request, no backoff


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "local_files_only"])
def test_offline_with_nothing_cached_says_so(tmp_path: Path, how: str) -> None:
    kwargs = ", local_files_only=True" if how == "local_files_only" else ""
    result, _, _ = run(RESOLVE.format(name=MODEL, kwargs=kwargs), hub_env(tmp_path, offline=how == "HF_HUB_OFFLINE"))
    message = str(result["error"])
    assert message.startswith(f"cannot load {MODEL!r}: it is not a local folder, not in the local Hugging Face cache")
    assert "offline mode" in message
    assert float(str(result["seconds"])) < 5


@pytest.mark.parametrize("offline", [False, True], ids=["hub-unreachable", "offline"])
def test_a_cached_adapter_and_base_resolve_without_the_hub(tmp_path: Path, offline: bool) -> None:
    cache_repo(tmp_path, "org/adapter", {"adapter_config.json": {"base_model_name_or_path": "org/base"}})
    cache_repo(tmp_path, "org/base", {"config.json": {"model_type": "paligemma", "architectures": ["ColPali"]}})
    result, stderr, _ = run(RESOLVE.format(name="org/adapter", kwargs=""), hub_env(tmp_path, offline=offline))
    assert result.get("family") == "colpali", result
    assert float(str(result["seconds"])) < 5
    assert "Retrying" not in stderr
    if not offline:
        assert "using the cached copy of 'org/adapter'" in stderr


@pytest.mark.parametrize("name", ["/no/such/folder", "./my-model", "a/b/c"])
def test_a_missing_folder_is_not_mistaken_for_an_unreachable_hub(tmp_path: Path, name: str) -> None:
    result, _, _ = run(RESOLVE.format(name=name, kwargs=""), hub_env(tmp_path))
    assert result["error"] == f"{name!r} is neither a local checkpoint folder nor a hub model id"
