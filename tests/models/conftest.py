from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("colpali_engine", reason="the colpali extra is not installed")

from models.tiny import build_colpali, build_colqwen2, build_lora_adapter


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny ColPali, ColQwen2 and a LoRA adapter over the ColPali, saved like hub checkpoints."""
    root = tmp_path_factory.mktemp("checkpoints")
    colpali = build_colpali(root / "colpali")
    return {
        "colpali": colpali,
        "colqwen2": build_colqwen2(root / "colqwen2"),
        "colpali-lora": build_lora_adapter(colpali, root / "colpali-lora"),
    }
