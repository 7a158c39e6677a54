"""Sources of pages: PDFs rendered by poppler, image files, and the on-disk page image store."""

from colpali_milvus.pages.image_store import PageImageStore
from colpali_milvus.pages.images import IMAGE_SUFFIXES, read_image
from colpali_milvus.pages.pdf import DEFAULT_DPI, DEFAULT_MAX_PIXELS, read_pdf

__all__ = ["DEFAULT_DPI", "DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "PageImageStore", "read_image", "read_pdf"]
