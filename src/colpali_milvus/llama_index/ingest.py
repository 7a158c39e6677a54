"""LlamaIndex image documents and nodes into a :class:`ColPaliIndex`: ``add_documents(index, docs)``.

``ImageDocument``s of :class:`~colpali_milvus.llama_index.ColPaliPDFReader` (and ``ImageNode``s
of ``ColPaliRetriever``) carry the page image and ``source`` / ``page`` / ``page_label`` /
``doc_id`` / ``page_id`` in metadata: they become the very pages ``index.add_pdf`` stores, with
the same page ids, so adding the file again (either way) embeds nothing. Other readers' image
documents work when their image is at hand: ``image`` (base64 or bytes), ``image_path`` or a
``file://`` ``image_url`` (``ImageDocument``, ``ImageNode``, or any node with an
``image_resource``). A node without an image, or with a remote ``image_url`` only, is refused
(:class:`InvalidInputError`): a ColPali index finds pages by how they look.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from llama_index.core.schema import BaseNode, ImageNode, MetadataMode

from colpali_milvus.errors import DocumentError, InvalidInputError
from colpali_milvus.index import ColPaliIndex, Progress
from colpali_milvus.llama_index.nodes import RESERVED_METADATA_KEYS
from colpali_milvus.pages.external import ExternalPage, add_external_pages, external_page
from colpali_milvus.types import Page

__all__ = ["add_documents", "node_to_page"]


def add_documents(index: ColPaliIndex, documents: Iterable[BaseNode], *, progress: Progress | None = None) -> list[str]:
    """Embed and store image documents / nodes; returns their page ids (pages stored already are skipped).

    Every document is checked before anything is written. Documents that name their file version
    (``doc_id``, as the reader's do, or an image file) replace the pages of other versions of the
    same ``source`` once stored, as ``index.add_pdf`` does.
    """
    return add_external_pages(index, [_spec(document) for document in documents], progress=progress)


def node_to_page(node: BaseNode) -> Page:
    """The :class:`Page` an image document or node stands for (its image decoded, its metadata checked)."""
    return _spec(node).to_page()


def _spec(node: BaseNode) -> ExternalPage:
    if not isinstance(node, BaseNode):
        raise InvalidInputError(f"expected a LlamaIndex document or node, got {type(node).__name__}")
    metadata = node.metadata
    name = repr(node.node_id)
    encoded, path_text, url = _image_fields(node)
    data: bytes | None = None
    path: Path | None = None
    if encoded:
        data = _decode(encoded, name)
    elif path_text:
        path = Path(path_text)
    elif url:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise InvalidInputError(
                f"document {name}: its image is only at {parsed.scheme}:// URL; fetch it and set image= instead"
            )
        path = Path(url2pathname(parsed.path))
    else:
        raise InvalidInputError(
            f"document {name} carries no image (no image, image_path or image_url): a ColPali index finds "
            "pages by their image; read PDFs with ColPaliPDFReader"
        )
    if path is not None and not path.is_file():
        raise DocumentError(f"document {name}: image file {str(path)!r} not found")
    return external_page(
        name,
        data=data,
        path=path,
        data_label="its image data",
        metadata=metadata,
        text=node.get_content(metadata_mode=MetadataMode.NONE) or "",
        dropped_keys=RESERVED_METADATA_KEYS,
        default_source=metadata.get("file_path", ""),
    )


def _image_fields(node: BaseNode) -> tuple[str | bytes | None, str | None, str | None]:
    """``(data, path, url)`` of an ``ImageNode`` or of a node's ``image_resource``."""
    if isinstance(node, ImageNode):
        return node.image, node.image_path, node.image_url
    resource = getattr(node, "image_resource", None)
    if resource is None:
        return None, None, None
    path = getattr(resource, "path", None)
    url = getattr(resource, "url", None)
    return getattr(resource, "data", None), None if path is None else str(path), None if url is None else str(url)


def _decode(encoded: str | bytes, name: str) -> bytes:
    """Base64 (as LlamaIndex keeps images) or, failing that, raw image bytes."""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        if isinstance(encoded, bytes):
            return encoded
        raise InvalidInputError(f"document {name}: image is not valid base64") from error
