"""The model families colpali-milvus can load, chosen from the checkpoint's own config.

A checkpoint's ``config.json`` names its ``model_type`` (``paligemma``, ``qwen2_vl``, ...). The
public vidore checkpoints are LoRA adapters: their folder holds ``adapter_config.json`` whose
``base_model_name_or_path`` points at the base checkpoint, whose config names the type. Names of
checkpoints are never parsed.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from colpali_milvus.errors import ModelError

__all__ = [
    "FAMILIES",
    "ModelFamily",
    "family_for_config",
    "model_source",
    "read_checkpoint_config",
    "resolve_family",
]

logger = logging.getLogger(__name__)


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
    """The ``config.json`` of a checkpoint, following a LoRA adapter to its base model.

    A name that is not a local folder is a hub id, checked first by :func:`model_source`: when
    it is neither cached nor downloadable, :class:`ModelError` says so at once.
    """
    cache_only = model_source(name_or_path, **hub_kwargs) == "cache"
    config = _read_json(name_or_path, "config.json", cache_only=cache_only, **hub_kwargs)
    if config is not None and "model_type" in config:
        return config
    adapter = _read_json(name_or_path, "adapter_config.json", cache_only=cache_only, **hub_kwargs)
    if adapter is None or not adapter.get("base_model_name_or_path"):
        raise ModelError(f"{name_or_path!r} has neither a config.json with a model_type nor an adapter_config.json")
    base = str(adapter["base_model_name_or_path"])
    base_cache_only = model_source(base, **hub_kwargs) == "cache"
    base_config = _read_json(base, "config.json", cache_only=base_cache_only, **hub_kwargs)
    if base_config is None:
        raise ModelError(f"the base model {base!r} of adapter {name_or_path!r} has no config.json")
    return base_config


def resolve_family(name_or_path: str, **hub_kwargs: Any) -> ModelFamily:
    return family_for_config(read_checkpoint_config(name_or_path, **hub_kwargs))


# How long the one request to the hub may wait before the model counts as not downloadable.
_HUB_PROBE_TIMEOUT_S = 10.0
_CONFIG_FILES = ("config.json", "adapter_config.json")


def model_source(
    name_or_path: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    local_files_only: bool = False,
) -> Literal["folder", "hub", "cache"]:
    """Where a checkpoint loads from, decided fast: a local folder, the hub, or only the local cache.

    A hub id costs at most one request, without retries: ``"cache"`` when offline
    (``HF_HUB_OFFLINE``, ``local_files_only``) or when the hub cannot be reached but a copy is
    cached (load it with ``local_files_only=True``: each file the hub is asked for and cannot
    answer would otherwise cost retries). Raises :class:`ModelError` naming the model and the ways
    out when it is neither a folder, nor cached, nor downloadable, or when the hub has no such model.
    """
    if not _is_hub_id(name_or_path):
        return "folder"
    hub = _hub()
    try:
        cached = any(
            isinstance(hub.try_to_load_from_cache(name_or_path, filename, revision=revision), str)
            for filename in _CONFIG_FILES
        )
    except ValueError as error:  # huggingface_hub's HFValidationError: a path, or a malformed id
        raise ModelError(f"{name_or_path!r} is neither a local checkpoint folder nor a hub model id") from error
    if _offline(local_files_only=local_files_only):
        if cached:
            return "cache"
        raise _unavailable(name_or_path, "offline mode (HF_HUB_OFFLINE or local_files_only) and nothing is cached")
    url = hub.hf_hub_url(name_or_path, "config.json", revision=revision)
    probe: dict[str, Any] = {"token": token, "timeout": _HUB_PROBE_TIMEOUT_S}
    if "retry_on_errors" in inspect.signature(hub.get_hf_file_metadata).parameters:
        probe["retry_on_errors"] = False
    try:
        hub.get_hf_file_metadata(url, **probe)
    except hub.RepositoryNotFoundError as error:  # also gated and private repositories
        raise ModelError(
            f"{name_or_path!r} is not a local folder, and the hub at {_endpoint()} has no model of that name "
            "that this token may read (for a private or gated model, pass token= or set HF_TOKEN)"
        ) from error
    except hub.RevisionNotFoundError as error:
        raise ModelError(f"the hub has no revision {revision!r} of {name_or_path!r}") from error
    except hub.HfHubHTTPError:
        return "hub"  # it answered: no config.json (an adapter checkpoint), or an error the download retries
    except Exception as error:  # the network: refused, DNS, timeout, proxy
        reason = f"the hub at {_endpoint()} cannot be reached ({type(error).__name__}: {error})"
        if cached:
            logger.warning("%s; using the cached copy of %r", reason, name_or_path)
            return "cache"
        raise _unavailable(name_or_path, reason) from error
    return "hub"


def _is_hub_id(name_or_path: str) -> bool:
    return not Path(name_or_path).expanduser().is_dir()


def _offline(*, local_files_only: bool = False) -> bool:
    from huggingface_hub import constants

    is_offline = getattr(constants, "is_offline_mode", None)
    return bool(local_files_only or (is_offline() if callable(is_offline) else constants.HF_HUB_OFFLINE))


def _unavailable(name: str, reason: str) -> ModelError:
    return ModelError(
        f"cannot load {name!r}: it is not a local folder, not in the local Hugging Face cache "
        f"({_cache_dir()}), and cannot be downloaded: {reason}. Fix: pass the path of a local checkpoint "
        f"folder; or download the model once where the hub is reachable (`hf download {name}`) and set "
        "HF_HUB_OFFLINE=1 to load the cached copy; or check the network, proxy and HF_ENDPOINT."
    )


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _hub() -> Any:
    """The few huggingface_hub names used here, in one namespace."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError as error:  # pragma: no cover - huggingface_hub ships with transformers
        raise ModelError("reading a hub checkpoint needs huggingface_hub (install colpali-milvus[colpali])") from error
    return SimpleNamespace(
        try_to_load_from_cache=huggingface_hub.try_to_load_from_cache,
        hf_hub_url=huggingface_hub.hf_hub_url,
        hf_hub_download=huggingface_hub.hf_hub_download,
        get_hf_file_metadata=huggingface_hub.get_hf_file_metadata,
        EntryNotFoundError=errors.EntryNotFoundError,
        LocalEntryNotFoundError=errors.LocalEntryNotFoundError,
        RepositoryNotFoundError=errors.RepositoryNotFoundError,
        RevisionNotFoundError=errors.RevisionNotFoundError,
        HfHubHTTPError=errors.HfHubHTTPError,
    )


def _read_json(name_or_path: str, filename: str, *, cache_only: bool, **hub_kwargs: Any) -> dict[str, Any] | None:
    """A JSON file from a local folder, the local cache or the hub; ``None`` when it does not exist."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        path = local / filename
        return _parse(path) if path.is_file() else None
    hub = _hub()
    if cache_only:
        cached = hub.try_to_load_from_cache(name_or_path, filename, revision=hub_kwargs.get("revision"))
        return _parse(Path(cached)) if isinstance(cached, str) else None
    try:
        downloaded = hub.hf_hub_download(name_or_path, filename, **hub_kwargs)
    except hub.LocalEntryNotFoundError as error:  # not "no such file": the hub stopped answering
        raise _unavailable(name_or_path, f"{filename} could not be fetched") from error
    except hub.EntryNotFoundError:
        return None
    except Exception as error:
        raise ModelError(f"cannot read {filename} of {name_or_path!r} from the hub") from error
    return _parse(Path(downloaded))


def _parse(path: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot parse {path}") from error
    if not isinstance(parsed, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    return parsed
