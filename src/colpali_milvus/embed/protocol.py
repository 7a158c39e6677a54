"""What the index needs from an embedding model: two methods, no base class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from PIL import Image

    from colpali_milvus.explain import SimilarityMap

__all__ = ["MultiVectorEmbedder", "PatchExplainer", "embedder_name"]


@runtime_checkable
class MultiVectorEmbedder(Protocol):
    """Any late-interaction model: one ``(n_i, dim)`` float32 array per input, padding dropped.

    A ``model_name`` attribute, when present, is recorded in the collection and checked on reopen.
    """

    def embed_images(self, images: Sequence[Image.Image]) -> list[npt.NDArray[np.float32]]: ...

    def embed_queries(self, queries: Sequence[str]) -> list[npt.NDArray[np.float32]]: ...


@runtime_checkable
class PatchExplainer(Protocol):
    """An embedder that can say which patches of a page matched which query tokens (optional)."""

    def explain_page(self, query: str, image: Image.Image) -> SimilarityMap: ...


def embedder_name(embedder: MultiVectorEmbedder) -> str:
    """The model name an embedder reports, or its class name when it reports none."""
    name = getattr(embedder, "model_name", None)
    return str(name) if name else type(embedder).__qualname__
