"""The serving copy's files: floats appended and read through a map, codes and index saved and read back.

A saved copy must come back exactly (the same pages, the same certified answers) or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from colpali_milvus.search.maxsim import maxsim
from colpali_milvus.store.cache import PageVectorCache
from colpali_milvus.store.float_file import DamagedCopyError, FloatFile
from colpali_milvus.store.rows import vector_digest

DIM = 8


def page(seed: int, rows: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)


def row_of(vectors: np.ndarray) -> dict[str, Any]:
    return {"digest": vector_digest(vectors), "n_vectors": vectors.shape[0]}


def test_a_float_file_hands_back_what_was_put_and_forgets_what_was_removed(tmp_path: Path) -> None:
    floats = FloatFile(tmp_path / "floats.bin", DIM)
    pages = {f"p{i}": page(i, i + 1) for i in range(5)}
    for page_id, vectors in pages.items():
        floats.put(page_id, vectors)
        np.testing.assert_array_equal(floats.get(page_id), vectors)  # readable at once, map grown
    floats.remove(["p1", "p3"])
    with pytest.raises(KeyError):
        floats.get("p1")
    compact = floats.compacted()
    assert compact.size == compact.live_nbytes == sum(pages[p].nbytes for p in ("p0", "p2", "p4"))
    for page_id in ("p0", "p2", "p4"):
        np.testing.assert_array_equal(compact.get(page_id), pages[page_id])
    compact.close()


def test_a_page_read_back_by_another_process_is_checked_against_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "floats.bin"
    writer = FloatFile(path, DIM)
    writer.put("a", page(1, 3))
    writer.put("b", page(2, 4))
    extents, size = writer.extents(), writer.size
    writer.close()
    data = bytearray(path.read_bytes())
    data[extents["b"].offset] ^= 0x01  # one bit of page b
    path.write_bytes(bytes(data))

    reader = FloatFile(path, DIM, extents, size)
    np.testing.assert_array_equal(reader.get("a"), page(1, 3))
    with pytest.raises(DamagedCopyError, match="'b'"):
        reader.get("b")
    with pytest.raises(ValueError, match="shorter"):
        FloatFile(path, DIM, extents, size + 1)


def test_bytes_past_the_recorded_end_are_cut_off_when_reopened(tmp_path: Path) -> None:
    path = tmp_path / "floats.bin"
    writer = FloatFile(path, DIM)
    writer.put("a", page(1, 3))
    extents, size = writer.extents(), writer.size
    writer.put("b", page(2, 3))  # written after the record: a crashed session's tail
    writer.close()
    reopened = FloatFile(path, DIM, extents, size)
    assert path.stat().st_size == size
    reopened.put("c", page(3, 2))
    np.testing.assert_array_equal(reopened.get("c"), page(3, 2))
    reopened.close()


class SavedCopyMachine(RuleBasedStateMachine):
    """Puts, replacements, removals, saves and reopens of a copy with a folder, against a dict of pages."""

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, np.ndarray] = {}
        self.seed = 0

    @initialize(folder=st.integers(0, 2**31))
    def start(self, folder: int) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix=f"saved-copy-{folder}-"))
        self.cache = PageVectorCache(DIM, self.root / "copy")

    @rule(page_id=st.sampled_from([f"p{i}" for i in range(12)]), rows=st.integers(1, 40))
    def put(self, page_id: str, rows: int) -> None:
        self.seed += 1
        vectors = page(self.seed, rows)
        self.cache.put(page_id, vectors, row_of(vectors))
        self.model[page_id] = vectors

    @rule(page_ids=st.lists(st.sampled_from([f"p{i}" for i in range(12)]), max_size=4))
    def remove(self, page_ids: list[str]) -> None:
        self.cache.remove(page_ids)
        for page_id in page_ids:
            self.model.pop(page_id, None)

    @rule()
    def save_and_reopen(self) -> None:
        self.cache.save()
        reopened = PageVectorCache(DIM, self.root / "copy")
        assert reopened.load({page_id: row_of(vectors) for page_id, vectors in self.model.items()})
        self.cache = reopened

    @rule()
    def a_stale_record_is_refused(self) -> None:
        self.cache.save()
        rows = {page_id: row_of(vectors) for page_id, vectors in self.model.items()}
        rows["not-committed"] = row_of(page(0, 1))
        assert not PageVectorCache(DIM, self.root / "copy").load(rows)

    @invariant()
    def answers_equal_exhaustive_search(self) -> None:
        if not hasattr(self, "cache"):
            return
        assert set(self.cache.ids()) == set(self.model)
        if not self.model:
            return
        query = page(10_000 + self.seed, 3)
        ids, scores, _ = self.cache.top_k(query, 3)
        ids_all = list(self.model)
        exact = maxsim(query, [self.model[page_id] for page_id in ids_all]).astype(np.float64)
        reference = sorted(exact, reverse=True)[: len(ids)]
        np.testing.assert_allclose(scores, reference, atol=1e-4)
        for page_id, score in zip(ids, scores, strict=True):
            assert score == pytest.approx(float(exact[ids_all.index(page_id)]), abs=1e-4)
        for page_id, vectors in self.cache.vectors_of(ids_all).items():
            np.testing.assert_array_equal(vectors, self.model[page_id])


SavedCopyMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_saved_copy_machine = SavedCopyMachine.TestCase


def test_a_new_float_file_never_changes_arrays_handed_out_from_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "floats.bin"
    old = FloatFile(path, DIM)
    old.put("a", page(1, 50))
    handed_out = old.get("a")
    old.close()
    new = FloatFile(path, DIM)  # a rebuild starts the file again
    new.put("b", page(2, 3))
    np.testing.assert_array_equal(handed_out, page(1, 50))  # the old inode, not the emptied one
    with pytest.raises(DamagedCopyError, match="closed"):
        old.get("a")  # a closed file is an error, never an anonymous map of zeros
    new.close()


def test_a_float_file_that_cannot_grow_leaves_the_copy_in_memory_and_unsaved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PageVectorCache(DIM, tmp_path / "copy")
    pages = {f"p{i}": page(i, 5 + i) for i in range(4)}
    for page_id in ("p0", "p1"):
        cache.put(page_id, pages[page_id], row_of(pages[page_id]))

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FloatFile, "put", full_disk)
    for page_id in ("p2", "p3"):
        cache.put(page_id, pages[page_id], row_of(pages[page_id]))
    assert cache.folder is None
    for page_id, vectors in cache.vectors_of(list(pages)).items():
        np.testing.assert_array_equal(vectors, pages[page_id])
    ids, _, _ = cache.top_k(pages["p3"][:2], 1)
    assert ids == ["p3"]
    cache.save()  # nothing to save to: not an error
    assert not (tmp_path / "copy" / "index.json").exists()
