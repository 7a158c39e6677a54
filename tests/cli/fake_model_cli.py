"""Run ``colpali-milvus`` with the colour embedder in place of a ColPali checkpoint: the real CLI, no weights.

    python tests/cli/fake_model_cli.py index docs/ --uri x.db

Loading a real (even a tiny) checkpoint costs seconds per process; this runs every line of the CLI
but the weights. Each model load is announced on stderr as ``fake model loaded: <name> ...``, so a
test can tell whether a command got that far.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers

import colpali_milvus.embed.colpali as colpali_module
from colpali_milvus.cli import main
from helpers import ColourEmbedder


class FakeColPaliEmbedder(ColourEmbedder):
    """ColPaliEmbedder's constructor over the colour embedder (dim 16)."""

    def __init__(
        self,
        model_name: str = colpali_module.DEFAULT_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 4,
        pool_factor: int | None = None,
        **_: Any,
    ) -> None:
        super().__init__()
        self.model_name = model_name  # type: ignore[misc]
        self.pool_factor = pool_factor
        print(f"fake model loaded: {model_name} pool_factor={pool_factor} device={device}", file=sys.stderr)


colpali_module.ColPaliEmbedder = FakeColPaliEmbedder  # type: ignore[misc,assignment]

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
