"""Test helpers: a deterministic colour embedder, a hand-written PDF generator and a top-k check."""

from __future__ import annotations

import hashlib
import itertools
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
}


class ColourEmbedder:
    """A fake multi-vector model whose ranking is meaningful: colours in pages match colour words.

    A page becomes one vector per cell of a 4 x 4 grid (the cell's mean colour); a query becomes one
    vector per word: a colour word points at that colour, any other word at a direction no page
    uses. So "the red chart" retrieves the reddest page, through the real store and MaxSim.
    """

    model_name = "test/colour-embedder"
    dim = 16
    grid = 4

    def __init__(self) -> None:
        self.image_calls = 0
        self.query_calls = 0

    def embed_images(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        self.image_calls += 1
        return [self._page(image) for image in images]

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        self.query_calls += 1
        return [self._query(query) for query in queries]

    def _page(self, image: Image.Image) -> np.ndarray:
        cells = np.asarray(image.convert("RGB").resize((self.grid, self.grid), Image.Resampling.BOX), np.float32)
        rgb = cells.reshape(-1, 3) / 255.0  # (16, 3)
        vectors = np.zeros((rgb.shape[0], self.dim), np.float32)
        vectors[:, :3] = rgb - rgb.mean(axis=1, keepdims=True) * 0.9  # colour, not brightness
        vectors[:, 3] = 0.05
        return _normalise(vectors)

    def _query(self, query: str) -> np.ndarray:
        words = query.lower().split() or [""]
        vectors = np.zeros((len(words), self.dim), np.float32)
        for row, word in enumerate(words):
            if word in COLOURS:
                rgb = np.asarray(COLOURS[word], np.float32)
                vectors[row, :3] = rgb - rgb.mean() * 0.9
            else:
                slot = 4 + int(hashlib.sha256(word.encode()).hexdigest(), 16) % (self.dim - 4)
                vectors[row, slot] = 1.0
        return _normalise(vectors)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@dataclass
class PdfPage:
    """One page of a generated PDF: a coloured block (a "figure") and lines of text."""

    colour: tuple[float, float, float] = (1.0, 0.0, 0.0)
    lines: list[str] = field(default_factory=lambda: ["Hello"])
    width: float = 612.0  # points (US Letter)
    height: float = 792.0


def write_pdf(path: Path, pages: Sequence[PdfPage], *, roman_front_pages: int = 0) -> Path:
    """Write a real, valid multi-page PDF with a text layer and, optionally, /PageLabels.

    The first ``roman_front_pages`` pages are labelled i, ii, ... and numbering restarts at 1
    after them, as in a book, so labels differ from page numbers.
    """
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    pages_ref = len(pages) * 2 + 2  # font, then (content, page) per page, then /Pages
    page_refs = []
    for page in pages:
        r, g, b = page.colour
        text = "".join(
            f"BT /F1 14 Tf 72 {page.height - 72 - 20 * i:.0f} Td ({_escape(line)}) Tj ET\n"
            for i, line in enumerate(page.lines)
        )
        stream = (f"{r} {g} {b} rg 36 36 {page.width - 72:.0f} {page.height / 2:.0f} re f\n0 0 0 rg\n{text}").encode()
        compressed = zlib.compress(stream)
        content = add(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(compressed) + compressed + b"\nendstream"
        )
        page_refs.append(
            add(
                (
                    f"<< /Type /Page /Parent {pages_ref} 0 R /MediaBox [0 0 {page.width:.0f} {page.height:.0f}] "
                    f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
                ).encode()
            )
        )
    kids = " ".join(f"{ref} 0 R" for ref in page_refs)
    assert add(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode()) == pages_ref
    labels = ""
    if roman_front_pages:
        labels = f" /PageLabels << /Nums [0 << /S /r >> {roman_front_pages} << /S /D >>] >>"
    catalog = add(f"<< /Type /Catalog /Pages {pages_ref} 0 R{labels} >>".encode())

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def solid_image(colour: str, size: tuple[int, int] = (64, 80)) -> Image.Image:
    r, g, b = COLOURS[colour]
    return Image.new("RGB", size, (int(r * 255), int(g * 255), int(b * 255)))


#: How far a store's score may be from the exact (float64) MaxSim of the same vectors.
TOL = 1e-4


def assert_valid_top_k(hits: list[Any], reference: Mapping[str, float], k: int, context: str) -> None:
    """``hits`` are a top-k of ``reference`` (page id -> exact score), allowing any order among ties."""
    expected_n = min(k, len(reference))
    ids = [hit.page_id for hit in hits]
    assert len(ids) == expected_n, f"{context}: {len(ids)} hits, expected {expected_n}: {ids}"
    assert len(set(ids)) == len(ids), f"{context}: duplicate hits {ids}"
    for hit in hits:
        assert hit.page_id in reference, f"{context}: {hit.page_id} should not match"
        assert hit.score == pytest.approx(reference[hit.page_id], abs=TOL), f"{context}: score of {hit.page_id}"
    ranked = sorted(reference.values(), reverse=True)[:expected_n]
    if expected_n:
        kth = ranked[-1]
        for hit in hits:
            assert reference[hit.page_id] >= kth - TOL, f"{context}: {hit.page_id} is not in a top-{k}"
    scores = [hit.score for hit in hits]
    assert all(a >= b - TOL for a, b in itertools.pairwise(scores)), f"{context}: not best first: {scores}"
    assert sorted(scores, reverse=True) == pytest.approx(ranked, abs=TOL), f"{context}: scores"
