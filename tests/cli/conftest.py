"""The CLI as users run it: a fresh process per command, exit status and stderr checked.

``cli`` runs the real ``colpali-milvus`` (``python -m colpali_milvus.cli``); ``fake_cli`` runs the same
main with the colour embedder in place of a checkpoint (see fake_model_cli.py), for commands that
would load weights. Both run in a scratch folder with none of the CLI's environment variables set
and the Hugging Face hub offline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from cli_types import Renders, Run

FAKE_MODEL_CLI = Path(__file__).with_name("fake_model_cli.py")


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("COLPALI_MILVUS_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"})
    env.update(extra or {})
    return env


def _runner(prefix: list[str], cwd: Path) -> Run:
    def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *map(str, args)],
            cwd=cwd,
            env=_environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The scratch folder commands run in (a relative --uri lands here)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def cli(workdir: Path) -> Run:
    """``colpali-milvus ARGS...`` in a fresh process: ``cli("info", "--json").returncode``."""
    return _runner([sys.executable, "-m", "colpali_milvus.cli"], workdir)


@pytest.fixture
def fake_cli(workdir: Path) -> Run:
    """The same CLI in a fresh process, with the colour embedder (dim 16) as every model."""
    return _runner([sys.executable, str(FAKE_MODEL_CLI)], workdir)


@pytest.fixture
def render_log(tmp_path: Path) -> tuple[dict[str, str], Renders]:
    """An environment whose ``pdftoppm`` logs each call (one per rendered page), and a counter of the calls."""
    import shutil

    real = shutil.which("pdftoppm")
    if real is None:
        pytest.skip("poppler (pdftoppm) is not installed")
    folder = tmp_path / "logging-bin"
    folder.mkdir()
    log = tmp_path / "renders.log"
    wrapper = folder / "pdftoppm"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)

    def renders() -> int:
        calls = log.read_text().splitlines() if log.exists() else []
        return sum(" -f " in f" {call} " for call in calls)  # pdf2image also asks `pdftoppm -v`

    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}, renders
