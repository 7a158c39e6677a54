"""LazyEmbedder: an embedder whose weights load on its first embedding call, not when the index opens.

An existing collection records the model name, vector size and pool factor, so an index can open
it, claim it and tell which pages are stored already without the weights; an ingestion that finds
every page stored then never loads them (``colpali-milvus index`` run again on an unchanged folder).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from colpali_milvus.embed.protocol import MultiVectorEmbedder, PatchExplainer
from colpali_milvus.errors import IndexMismatchError, InvalidInputError, ModelError

if TYPE_CHECKING:
    from PIL import Image

    from colpali_milvus.explain import SimilarityMap

__all__ = ["LazyEmbedder"]

logger = logging.getLogger(__name__)


class LazyEmbedder:
    """Stands for an embedder until it is needed: ``load()`` runs once, on the first embedding call.

    ``model_name``, ``pool_factor`` and ``dim`` are known without loading (what the index records
    in, and checks against, its collection); the loaded embedder must report the same ``dim``, or
    loading fails with :class:`~colpali_milvus.errors.IndexMismatchError`. Loading is thread safe and
    happens at most once; a load that fails is tried again on the next call. Any other attribute
    (``family``, ``device``, ``model``...) is read from the loaded embedder, loading it.

    Args:
        load: builds the real embedder (e.g. ``lambda: ColPaliEmbedder(name)``).
        model_name: the name the loaded embedder will report.
        dim: the vector size it will give (``None``: not known before loading).
        pool_factor: its token-pooling factor (``None`` or 1: no pooling).
    """

    def __init__(
        self,
        load: Callable[[], MultiVectorEmbedder],
        *,
        model_name: str,
        dim: int | None = None,
        pool_factor: int | None = None,
    ) -> None:
        if not callable(load):
            raise InvalidInputError(f"load must be callable, got {type(load).__name__}")
        self._load = load
        self.model_name = model_name
        self.dim = dim
        self.pool_factor = pool_factor if pool_factor is not None and pool_factor > 1 else None
        self._embedder: MultiVectorEmbedder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the weights have been loaded."""
        return self._embedder is not None

    def load(self) -> MultiVectorEmbedder:
        """The real embedder, loaded on the first call."""
        with self._lock:
            if self._embedder is None:
                logger.info("loading %s: a page or query needs embedding", self.model_name)
                embedder = self._load()
                dim = getattr(embedder, "dim", None)
                if self.dim is not None and dim is not None and int(dim) != self.dim:
                    raise IndexMismatchError(
                        f"the collection holds {self.dim}-d vectors; {self.model_name!r} gives {dim}-d"
                    )
                self._embedder = embedder
            return self._embedder

    def embed_images(self, images: Sequence[Image.Image]) -> list[npt.NDArray[np.float32]]:
        return self.load().embed_images(images)

    def embed_queries(self, queries: Sequence[str]) -> list[npt.NDArray[np.float32]]:
        return self.load().embed_queries(queries)

    def explain_page(self, query: str, image: Image.Image) -> SimilarityMap:
        embedder = self.load()
        if not isinstance(embedder, PatchExplainer):
            raise ModelError(f"{type(embedder).__name__} cannot draw similarity maps (no explain_page)")
        return embedder.explain_page(query, image)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this object lacks: those of the real embedder.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __repr__(self) -> str:
        state = repr(self._embedder) if self._embedder is not None else "not loaded"
        return f"{type(self).__name__}(model_name={self.model_name!r}, {state})"
