"""Similarity maps: which patches of a page matched which words of the question, as PNG heatmaps.

The maps come from the embedder (:meth:`ColPaliEmbedder.explain_page`, colpali-engine's
interpretability maps); this module only holds and draws them, with numpy and Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import InvalidInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["SimilarityMap"]

# Perceptually ordered colours (a coarse "inferno"): low similarity dark, high bright.
_COLOURS = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SimilarityMap:
    """Per query token, the similarity to each image patch of one page.

    ``maps`` has shape ``(n_tokens, rows, cols)``: row-major over the page's patch grid, so
    ``maps[t, r, c]`` is token ``t`` against the patch in grid row ``r``, column ``c``. ``tokens``
    are the query's tokens as the model saw them; ``content_tokens`` indexes the ones that carry
    the question (not special, padding or augmentation tokens).
    """

    query: str
    tokens: tuple[str, ...]
    maps: npt.NDArray[np.float32]
    image: Image.Image
    content_tokens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.maps.ndim != 3 or self.maps.shape[0] != len(self.tokens):
            raise InvalidInputError(f"maps must be (n_tokens, rows, cols) for {len(self.tokens)} tokens")

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of the patch grid."""
        return int(self.maps.shape[1]), int(self.maps.shape[2])

    def combined(self) -> npt.NDArray[np.float32]:
        """``(rows, cols)``: each patch's best similarity to any word of the question."""
        selected = list(self.content_tokens) or list(range(len(self.tokens)))
        return self.maps[selected].max(axis=0)  # type: ignore[no-any-return]

    def heatmap(self, token: int | None = None, *, alpha: float = 0.55) -> Image.Image:
        """The page with the (token's, else the combined) similarity drawn over it, same size as the page."""
        grid = self.combined() if token is None else self.maps[token]
        return overlay(self.image, grid, alpha=alpha)

    def save(self, folder: str | Path, stem: str = "similarity", *, per_token: bool = False) -> list[Path]:
        """Write the combined heatmap (and one per content token) as PNG files; returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{stem}.png"]
        self.heatmap().save(paths[0])
        if per_token:
            for index in self.content_tokens:
                safe = "".join(c if c.isalnum() else "_" for c in self.tokens[index])[:24]
                path = folder / f"{stem}-{index:02d}-{safe}.png"
                self.heatmap(index).save(path)
                paths.append(path)
        return paths


def overlay(image: Image.Image, grid: npt.NDArray[np.float32], *, alpha: float = 0.55) -> Image.Image:
    """Blend a ``(rows, cols)`` grid of scores, normalised to its own range, over ``image``."""
    from PIL import Image

    if grid.ndim != 2 or grid.size == 0:
        raise InvalidInputError(f"expected a non-empty (rows, cols) grid, got shape {grid.shape}")
    low, high = float(grid.min()), float(grid.max())
    scaled = (grid - low) / (high - low) if high > low else np.zeros_like(grid)
    # Bilinear upsampling of the patch grid to the page size, then the colour scale.
    field = Image.fromarray(scaled.astype(np.float32), mode="F").resize(image.size, Image.Resampling.BILINEAR)
    values = np.clip(np.asarray(field), 0.0, 1.0) * (len(_COLOURS) - 1)  # (height, width)
    lower = np.floor(values).astype(np.int64)
    upper = np.minimum(lower + 1, len(_COLOURS) - 1)
    weight = (values - lower)[..., None]  # (height, width, 1)
    colours = _COLOURS[lower] * (1 - weight) + _COLOURS[upper] * weight  # (height, width, 3)
    heat = Image.fromarray(colours.astype(np.uint8), mode="RGB")
    return Image.blend(image.convert("RGB"), heat, alpha)
