"""The model families colpali-milvus can load, chosen from the checkpoint's own config.

A checkpoint's ``config.json`` names its ``model_type`` (``paligemma``, ``qwen2_vl``, ...). The
public vidore checkpoints are LoRA adapters: their folder holds ``adapter_config.json`` whose
``base_model_name_or_path`` points at the base checkpoint, whose config names the type. Names of
checkpoints are never parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colpali_milvus.errors import ModelError

__all__ = ["FAMILIES", "ModelFamily", "family_for_config", "read_checkpoint_config", "resolve_family"]


@dataclass(frozen=True, slots=True)
class ModelFamily:
    """One colpali-engine model family: which classes load it and from which config types."""

    name: str
    model_types: tuple[str, ...]
    model_class: str  # in colpali_engine.models
    processor_class: str  # in colpali_engine.models
    # PaliGemma's SDPA attention (transformers 5) gives a query other embeddings once it is padded
    # next to a longer one; such families embed queries one at a time so results never depend on
    # what else is in the batch. Pages are unaffected: their sequences all have one length.
    batch_queries: bool = True
    # The model attribute that the processor's ``get_n_patches`` takes to lay the page's image tokens
    # out on their patch grid (for similarity maps); ``None`` where colpali-milvus has not verified it.
    patch_grid_argument: str | None = None


FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        "colpali", ("paligemma",), "ColPali", "ColPaliProcessor", batch_queries=False, patch_grid_argument="patch_size"
    ),
    ModelFamily("colqwen2", ("qwen2_vl",), "ColQwen2", "ColQwen2Processor", patch_grid_argument="spatial_merge_size"),
    ModelFamily(
        "colqwen2.5", ("qwen2_5_vl",), "ColQwen2_5", "ColQwen2_5_Processor", patch_grid_argument="spatial_merge_size"
    ),
    ModelFamily("colidefics3", ("idefics3",), "ColIdefics3", "ColIdefics3Processor"),
    ModelFamily("colmodernvbert", ("modernvbert",), "ColModernVBert", "ColModernVBertProcessor"),
)

# Single-vector siblings share a model_type with a Col* family but cannot be searched by MaxSim.
_SINGLE_VECTOR_PREFIX = "Bi"


def family_for_config(config: Mapping[str, Any]) -> ModelFamily:
    """The family of a checkpoint, from its parsed ``config.json``."""
    architectures = [str(name) for name in config.get("architectures") or []]
    if any(name.startswith(_SINGLE_VECTOR_PREFIX) for name in architectures):
        raise ModelError(f"{architectures} is a single-vector model; colpali-milvus needs a multi-vector (Col*) one")
    model_type = config.get("model_type")
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
    raise ModelError(f"unsupported model_type {model_type!r}; supported families: {supported}")


def read_checkpoint_config(name_or_path: str, **hub_kwargs: Any) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint, following a LoRA adapter to its base model."""
    config = _read_json(name_or_path, "config.json", **hub_kwargs)
    if config is not None and "model_type" in config:
        return config
    adapter = _read_json(name_or_path, "adapter_config.json", **hub_kwargs)
    if adapter is None or not adapter.get("base_model_name_or_path"):
        raise ModelError(f"{name_or_path!r} has neither a config.json with a model_type nor an adapter_config.json")
    base = str(adapter["base_model_name_or_path"])
    base_config = _read_json(base, "config.json", **hub_kwargs)
    if base_config is None:
        raise ModelError(f"the base model {base!r} of adapter {name_or_path!r} has no config.json")
    return base_config


def resolve_family(name_or_path: str, **hub_kwargs: Any) -> ModelFamily:
    return family_for_config(read_checkpoint_config(name_or_path, **hub_kwargs))


def _read_json(name_or_path: str, filename: str, **hub_kwargs: Any) -> dict[str, Any] | None:
    """A JSON file from a local folder or a hub repository; ``None`` when it does not exist."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        path = local / filename
        return _parse(path) if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, RemoteEntryNotFoundError
    except ImportError as error:  # pragma: no cover - huggingface_hub ships with transformers
        raise ModelError("reading a hub checkpoint needs huggingface_hub (install colpali-milvus[colpali])") from error
    try:
        downloaded = hf_hub_download(name_or_path, filename, **hub_kwargs)
    except (EntryNotFoundError, RemoteEntryNotFoundError):
        return None
    except Exception as error:
        raise ModelError(
            f"cannot read {filename} of {name_or_path!r} (not a local folder; hub unreachable?)"
        ) from error
    return _parse(Path(downloaded))


def _parse(path: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot parse {path}") from error
    if not isinstance(parsed, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    return parsed
