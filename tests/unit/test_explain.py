"""Similarity map drawing on hand-made grids (no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colpali_milvus import InvalidInputError
from colpali_milvus.explain import SimilarityMap, overlay


def brightness(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    return float(np.asarray(image.crop(box).convert("L"), dtype=np.float32).mean())


def test_the_heatmap_is_brightest_where_the_grid_is_highest() -> None:
    page = Image.new("RGB", (300, 200), "white")
    grid = np.zeros((2, 3), np.float32)  # (rows, cols)
    grid[0, 2] = 1.0  # top-right patch

    heat = overlay(page, grid)

    assert heat.size == page.size
    top_right, bottom_left = brightness(heat, (220, 10, 290, 80)), brightness(heat, (10, 120, 80, 190))
    assert top_right > bottom_left + 40


def test_combined_uses_content_tokens_only_and_save_writes_pngs(tmp_path: Path) -> None:
    maps = np.zeros((3, 2, 2), np.float32)
    maps[0, 0, 0] = 5.0  # a special token: ignored by combined()
    maps[1, 1, 1] = 1.0
    maps[2, 0, 1] = 2.0
    similarity = SimilarityMap("q", ("<bos>", "rev", "enue"), maps, Image.new("RGB", (40, 40)), content_tokens=(1, 2))

    np.testing.assert_array_equal(similarity.combined(), [[0.0, 2.0], [0.0, 1.0]])
    assert similarity.grid == (2, 2)
    paths = similarity.save(tmp_path, "hit", per_token=True)
    assert [p.name for p in paths] == ["hit.png", "hit-01-rev.png", "hit-02-enue.png"]
    assert all(Image.open(p).size == (40, 40) for p in paths)


def test_bad_grids_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        SimilarityMap("q", ("a",), np.zeros((2, 2, 2), np.float32), Image.new("RGB", (4, 4)))
    with pytest.raises(InvalidInputError):
        overlay(Image.new("RGB", (4, 4)), np.zeros(3, np.float32))
    flat = overlay(Image.new("RGB", (8, 8), "white"), np.ones((2, 2), np.float32))  # no range: no crash
    assert flat.size == (8, 8)
