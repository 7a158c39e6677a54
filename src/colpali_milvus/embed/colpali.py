"""ColPaliEmbedder: any colpali-engine multi-vector model behind the two-method embedder protocol."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from colpali_milvus._deps import require
from colpali_milvus.embed.registry import ModelFamily, family_for_config, model_source, resolve_family
from colpali_milvus.errors import InvalidInputError, ModelError

if TYPE_CHECKING:
    from PIL import Image

    from colpali_milvus.explain import SimilarityMap

__all__ = ["DEFAULT_MODEL", "ColPaliEmbedder"]

logger = logging.getLogger(__name__)

#: ColQwen2 v1.0: Apache-2.0 (base Qwen2-VL-2B), strong on ViDoRe, and dynamic resolution keeps
#: page aspect ratios (at most 768 vectors per page), which suits tall PDF pages.
DEFAULT_MODEL = "vidore/colqwen2-v1.0"

T = TypeVar("T")
FloatArray = npt.NDArray[np.float32]


class ColPaliEmbedder:
    """Embeds page images and queries with a ColPali-family checkpoint.

    The family (ColPali, ColQwen2, ColQwen2.5, ColIdefics3/ColSmol, ColModernVBert) is read from
    the checkpoint's config, and LoRA adapter checkpoints (like the public ``vidore/*`` ones) load
    onto their base model. Outputs are one ``(n_i, dim)`` float32 array per input with padding
    rows removed, whichever side the family pads.

    Args:
        model_name: a hub id or a local checkpoint folder.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``...; default: the best available.
        dtype: torch dtype; default bfloat16 on CUDA, float32 elsewhere.
        batch_size: pages per forward pass.
        query_batch_size: queries per forward pass.
        show_progress: progress bar over batches; ``None`` shows it on a terminal only.
        pool_factor: opt-in token pooling of pages (colpali-engine's hierarchical pooling): about
            ``n / pool_factor`` vectors per page instead of ``n``, so that many times fewer Milvus
            rows, bytes and MaxSim work, for some loss of recall (README "Scaling"). Queries are
            never pooled. ``None`` or 1: off.
        revision, token, local_files_only: passed to the hub when loading.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: Any = None,
        batch_size: int = 4,
        query_batch_size: int = 32,
        show_progress: bool | None = None,
        pool_factor: int | None = None,
        revision: str | None = None,
        token: str | None = None,
        local_files_only: bool = False,
    ) -> None:
        if batch_size <= 0 or query_batch_size <= 0:
            raise InvalidInputError("batch sizes must be positive")
        pool_factor = _pool_factor(pool_factor)  # checked before minutes of loading
        torch = require("torch", extra="colpali")
        models = require("colpali_engine.models", extra="colpali", package="colpali-engine")
        hub_kwargs: dict[str, Any] = {"local_files_only": local_files_only}
        if revision:
            hub_kwargs["revision"] = revision
        if token:
            hub_kwargs["token"] = token

        # A hub id that is neither cached nor downloadable fails here, at once, rather than after
        # minutes of retries; an unreachable hub with a cached copy loads that copy.
        if model_source(str(model_name), **hub_kwargs) == "cache":
            hub_kwargs["local_files_only"] = True
        family = resolve_family(str(model_name), **hub_kwargs)
        target = torch.device(device) if device else _best_device(torch)
        dtype = dtype or (torch.bfloat16 if target.type == "cuda" else torch.float32)
        try:
            model_class = getattr(models, family.model_class)
            processor_class = getattr(models, family.processor_class)
            model = model_class.from_pretrained(
                str(model_name), dtype=dtype, device_map=str(target), **hub_kwargs
            ).eval()
            _tie_unloaded_weights(model)
            processor = processor_class.from_pretrained(str(model_name), **hub_kwargs)
        except Exception as error:
            raise ModelError(f"cannot load {model_name!r} as {family.name}: {error}") from error
        self._attach(
            str(model_name), family, model, processor, batch_size, query_batch_size, show_progress, pool_factor
        )
        logger.info("loaded %s (%s) on %s as %s", self.model_name, family.name, self.device, self.dtype)

    @classmethod
    def from_loaded(
        cls,
        model: Any,
        processor: Any,
        *,
        model_name: str,
        batch_size: int = 4,
        query_batch_size: int = 32,
        show_progress: bool | None = None,
        pool_factor: int | None = None,
    ) -> ColPaliEmbedder:
        """Wrap a colpali-engine model and processor already in memory (quantised, sharded, fine-tuned...).

        The family still comes from the model's config; ``model_name`` is what the store records.
        """
        if batch_size <= 0 or query_batch_size <= 0:
            raise InvalidInputError("batch sizes must be positive")
        config = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(model.config)
        embedder = cls.__new__(cls)
        family = family_for_config(config)
        embedder._attach(
            model_name, family, model.eval(), processor, batch_size, query_batch_size, show_progress, pool_factor
        )
        return embedder

    def _attach(
        self,
        model_name: str,
        family: ModelFamily,
        model: Any,
        processor: Any,
        batch_size: int,
        query_batch_size: int,
        show_progress: bool | None,
        pool_factor: int | None,
    ) -> None:
        self.model_name = model_name
        self.family = family
        self.model = model
        self.processor = processor
        self.device = model.device
        self.dtype = model.dtype
        self.dim = int(getattr(model, "dim", 128))
        self.batch_size = batch_size
        self.query_batch_size = query_batch_size
        self.show_progress = show_progress
        self.pool_factor = _pool_factor(pool_factor)
        self._lock = threading.Lock()  # one forward pass at a time: safe under thread pools

    def __repr__(self) -> str:
        name, family, device = self.model_name, self.family.name, str(self.device)
        return f"{type(self).__name__}(model_name={name!r}, family={family!r}, device={device!r})"

    def embed_images(self, images: Sequence[Image.Image]) -> list[FloatArray]:
        """One ``(n_i, dim)`` array per image (any mode; converted to RGB)."""
        output: list[FloatArray] = []
        for batch in self._batches(images, self.batch_size, "Embedding pages"):
            inputs = self.processor.process_images([image.convert("RGB") for image in batch])
            output += self._pool(self._forward(inputs))
        return output

    def _pool(self, pages: list[FloatArray]) -> list[FloatArray]:
        """Hierarchical token pooling (colpali-engine's), when ``pool_factor`` asks for it."""
        if self.pool_factor is None:
            return pages
        torch = require("torch", extra="colpali")
        pooling = require("colpali_engine.compression.token_pooling", extra="colpali", package="colpali-engine")
        pooler = pooling.HierarchicalTokenPooler()
        pooled = pooler.pool_embeddings([torch.from_numpy(page) for page in pages], pool_factor=self.pool_factor)
        return [np.ascontiguousarray(page.numpy(), dtype=np.float32) for page in pooled]

    def embed_queries(self, queries: Sequence[str]) -> list[FloatArray]:
        """One ``(n_i, dim)`` array per query, with the family's query prefix and augmentation tokens."""
        if any(not isinstance(query, str) or not query.strip() for query in queries):
            raise InvalidInputError("queries must be non-empty strings")
        output: list[FloatArray] = []
        batch_size = self.query_batch_size if self.family.batch_queries else 1
        for batch in self._batches(queries, batch_size, "Embedding queries"):
            output += self._forward(self.processor.process_queries(texts=list(batch)))
        return output

    def explain_page(self, query: str, image: Image.Image) -> SimilarityMap:
        """Similarity of every query token to every image patch of a page (as colpali-engine's maps).

        Embeds the page once more, keeping the processor's image-token mask and patch grid that
        stored vectors do not carry.
        """
        from colpali_milvus.explain import SimilarityMap

        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        argument = self.family.patch_grid_argument
        if argument is None:
            raise ModelError(f"similarity maps are not supported for the {self.family.name} family yet")
        torch = require("torch", extra="colpali")
        image = image.convert("RGB")
        page_inputs = self.processor.process_images([image]).to(self.device)
        query_inputs = self.processor.process_queries(texts=[query]).to(self.device)
        with self._lock, torch.inference_mode():
            page_embeddings = self.model(**page_inputs)[0].float()  # (page_tokens, dim)
            query_embeddings = self.model(**query_inputs)[0].float()  # (query_tokens, dim)
        # The processor knows which tokens are image patches and how they tile the page.
        try:
            cols, rows = self.processor.get_n_patches(image.size, **{argument: self._vision_setting(argument)})
            patch_mask = self.processor.get_image_mask(page_inputs)[0]  # (page_tokens,)
        except AttributeError as error:
            raise ModelError(f"{self.model_name!r} cannot lay out its patches: {error}") from error
        patches = page_embeddings[patch_mask]  # (rows * cols, dim), row-major over the page
        if patches.shape[0] != rows * cols:
            raise ModelError(f"{patches.shape[0]} image tokens do not tile a {rows} x {cols} patch grid")
        keep = query_inputs["attention_mask"][0].bool()  # (query_tokens,)
        token_ids = query_inputs["input_ids"][0][keep].tolist()
        grid = torch.einsum("td,rcd->trc", query_embeddings[keep], patches.reshape(rows, cols, -1))
        grid = grid.cpu().numpy().astype(np.float32)  # (query_tokens, rows, cols)
        tokenizer = self.processor.tokenizer
        tokens = tuple(str(token) for token in tokenizer.convert_ids_to_tokens(token_ids))
        filler = {*tokenizer.all_special_tokens, str(getattr(self.processor, "query_augmentation_token", ""))}
        content = tuple(i for i, token in enumerate(tokens) if token not in filler and token.strip("▁Ġ "))
        return SimilarityMap(query=query, tokens=tokens, maps=grid, image=image, content_tokens=content)

    def _vision_setting(self, name: str) -> int:
        """A vision-tower setting: the model's property, else its config (ColPali's property looks
        for ``model.vision_tower``, which transformers 5 moved)."""
        try:
            return int(getattr(self.model, name))
        except AttributeError:
            return int(getattr(self.model.config.vision_config, name))

    def _forward(self, inputs: Any) -> list[FloatArray]:
        torch = require("torch", extra="colpali")
        inputs = inputs.to(self.device)
        with self._lock, torch.inference_mode():
            embeddings = self.model(**inputs)  # (batch, seq, dim), padding rows zero
        mask = inputs["attention_mask"].bool()  # (batch, seq); left or right padding alike
        return [row[keep].float().cpu().numpy() for row, keep in zip(embeddings, mask, strict=True)]

    def _batches(self, items: Sequence[T], size: int, description: str) -> Iterator[Sequence[T]]:
        starts: Iterable[int] = range(0, len(items), size)
        if len(items) > size:
            from tqdm.auto import tqdm

            disable = None if self.show_progress is None else not self.show_progress
            starts = tqdm(starts, desc=description, unit="batch", disable=disable)
        for start in starts:
            yield items[start : start + size]


def _pool_factor(pool_factor: int | None) -> int | None:
    """A checked pool factor; ``None`` when pooling is off (``None`` or 1)."""
    if pool_factor is None:
        return None
    if not isinstance(pool_factor, int) or isinstance(pool_factor, bool) or pool_factor < 1:
        raise InvalidInputError(f"pool_factor must be a positive integer, got {pool_factor!r}")
    return pool_factor if pool_factor > 1 else None


def _tie_unloaded_weights(model: Any) -> None:
    """Tie output embeddings that the checkpoint leaves unloaded (on the meta device).

    ColPali checkpoints omit PaliGemma's ``lm_head`` (tied to the token embeddings, never used
    for retrieval), and ColPali's own ``tie_weights`` does not reach it; tying restores the real
    model so that every parameter lives on the target device.
    """
    if not any(parameter.is_meta for parameter in model.parameters()):
        return
    for module in model.modules():
        if module is not model and hasattr(module, "tie_weights") and hasattr(module, "get_output_embeddings"):
            module.tie_weights()
    unloaded = [name for name, parameter in model.named_parameters() if parameter.is_meta]
    if unloaded:
        raise ModelError(f"the checkpoint left these weights unloaded: {unloaded[:5]}")


def _best_device(torch: Any) -> Any:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
