"""The vector cache is derived from Milvus and can never disagree with it (issue: one store, one truth)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colpali_milvus import FilterError, IndexMismatchError, InvalidInputError, MilvusMultiVectorStore, maxsim
from colpali_milvus.store import lite
from helpers import unit_vectors
from targets import StoreTarget, store_target

DIM = 8
SRC = Path(__file__).parents[2] / "src"


def corpus(seed: int, n_pages: int = 6, n_vectors: int = 10) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit_vectors(rng, n_vectors, DIM) for _ in range(n_pages)]


def assert_scores_on(store: MilvusMultiVectorStore, page_id: str, vectors: np.ndarray) -> None:
    query = vectors[:3]
    hit = next(hit for hit in store.search(query, k=10) if hit.page_id == page_id)
    assert hit.score == pytest.approx(float(maxsim(query, [vectors])[0]), abs=1e-4)
    np.testing.assert_allclose(store.get_vectors([page_id])[page_id], vectors, atol=1e-6)


def test_two_stores_in_one_process_share_one_truth_across_restarts(lite_uri: str) -> None:
    """A notebook ingests with one store and serves with another; a replaced page is never scored stale."""
    pages = corpus(0)
    replacement = corpus(1, n_pages=1)[0]  # same vector count as the page it replaces
    ingest = MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM)
    serve = MilvusMultiVectorStore(lite_uri, collection_name="c")
    ingest.add(pages, ids=[f"p{i}" for i in range(6)])
    assert_scores_on(serve, "p2", pages[2])
    ingest.add([replacement], ids=["p2"])
    assert_scores_on(serve, "p2", replacement)
    serve.close()
    ingest.close()
    for _ in range(2):  # and after every restart, from the saved file or from Milvus
        with MilvusMultiVectorStore(lite_uri, collection_name="c") as reopened:
            assert_scores_on(reopened, "p2", replacement)


def test_one_database_by_a_relative_and_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pages = corpus(2)
    absolute = MilvusMultiVectorStore(str(tmp_path / "x.db"), collection_name="c", dim=DIM)
    relative = MilvusMultiVectorStore("./x.db", collection_name="c")
    assert absolute.uri == relative.uri
    absolute.add(pages, ids=[f"p{i}" for i in range(6)])
    relative.close()  # closing one must not break the other
    assert absolute.search(pages[4][:2], k=1)[0].page_id == "p4"
    absolute.close()


# Each damage takes the saved copy's folder (index.json, codes.bin, floats.bin).


def damage_index_empty(folder: Path) -> None:
    (folder / "index.json").write_bytes(b"")


def damage_index_truncated(folder: Path) -> None:
    data = (folder / "index.json").read_bytes()
    (folder / "index.json").write_bytes(data[: len(data) // 2])


def damage_index_garbage(folder: Path) -> None:
    (folder / "index.json").write_bytes(os.urandom(4096))


def edit_index(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    index = json.loads((folder / "index.json").read_bytes())
    change(index)
    (folder / "index.json").write_text(json.dumps(index))


def damage_version(folder: Path) -> None:
    edit_index(folder, lambda index: index.update(format_version=999))


def damage_digest(folder: Path) -> None:
    """A page recorded with another digest: the index no longer describes the committed pages."""
    edit_index(folder, lambda index: index["pages"][0].__setitem__(1, "0" * 32 + "-10"))


def damage_counts(folder: Path) -> None:
    """Page 0 claims fewer vectors than its codes hold."""
    edit_index(folder, lambda index: index["pages"][0].__setitem__(3, index["pages"][0][3] - 1))


def damage_block_width(folder: Path) -> None:
    """A block that claims narrower pages than it holds: a scan would read one page's codes as the next's."""
    edit_index(folder, lambda index: index["blocks"][0]["fields"]["width"].update(value=1))


def damage_codes_byte(folder: Path) -> None:
    codes = bytearray((folder / "codes.bin").read_bytes())
    codes[len(codes) // 2] ^= 0xFF
    (folder / "codes.bin").write_bytes(bytes(codes))


def damage_codes_truncated(folder: Path) -> None:
    codes = (folder / "codes.bin").read_bytes()
    (folder / "codes.bin").write_bytes(codes[:-7])


def damage_floats_truncated(folder: Path) -> None:
    floats = (folder / "floats.bin").read_bytes()
    (folder / "floats.bin").write_bytes(floats[: len(floats) // 2])


def damage_floats_missing(folder: Path) -> None:
    (folder / "floats.bin").unlink()


def damage_floats_swapped(folder: Path) -> None:
    """Same sizes, other numbers: found only when a page is read and hashed (then rebuilt, never raised)."""
    floats = np.fromfile(folder / "floats.bin", dtype=np.float32)
    floats[::-1].tofile(folder / "floats.bin")


@pytest.mark.parametrize(
    "damage",
    [
        damage_index_empty,
        damage_index_truncated,
        damage_index_garbage,
        damage_version,
        damage_digest,
        damage_counts,
        damage_block_width,
        damage_codes_byte,
        damage_codes_truncated,
        damage_floats_truncated,
        damage_floats_missing,
        damage_floats_swapped,
    ],
)
def test_a_damaged_saved_copy_is_ignored_and_rebuilt_never_raised(
    lite_uri: str, damage: Callable[[Path], None]
) -> None:
    pages = corpus(3)
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM) as store:
        store.add(pages, ids=[f"p{i}" for i in range(6)])
    folder = lite.cache_file(lite.normalise_uri(lite_uri), "c")
    assert folder is not None and (folder / "index.json").is_file()
    damage(folder)

    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        for i in (0, 5):
            assert_scores_on(store, f"p{i}", pages[i])
        assert store.search_path.loaded_from == "milvus"  # type: ignore[attr-defined]
        store.add([pages[0]], ids=["again"])  # writes work too
    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        assert_scores_on(store, "again", pages[0])
        assert store.search_path.loaded_from == "file"  # type: ignore[attr-defined]  # a good copy again


def test_the_saved_copy_is_committed_atomically_by_its_index(lite_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = corpus(4)
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM) as store:
        store.add(pages, ids=[f"p{i}" for i in range(6)])
    folder = lite.cache_file(lite.normalise_uri(lite_uri), "c")
    assert folder is not None
    good = (folder / "index.json").read_bytes()
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
        store.add([pages[1]], ids=["more"])
        assert not (folder / "index.json").exists()  # the first write withdrew the commit record
    assert len(synced) >= 4  # floats, codes, index and its folder
    assert (folder / "index.json").read_bytes() != good
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_add_racing_delete_of_the_same_page_ends_consistent(lite_uri: str, cache: bool) -> None:
    pages = corpus(5, n_pages=2)
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM, cache=cache) as store:
        for round_ in range(6):
            writer = threading.Thread(target=store.add, args=([pages[round_ % 2]],), kwargs={"ids": ["p"]})
            deleter = threading.Thread(target=store.delete, kwargs={"page_ids": ["p"]})
            writer.start()
            deleter.start()
            writer.join()
            deleter.join()
            found = [hit.page_id for hit in store.search(pages[0][:2], k=5)]
            assert found == (["p"] if store.count() == 1 else [])
            assert store.existing_page_ids(["p"]) == ({"p"} if store.count() == 1 else set())


BAD_PAGES = [
    ("metadata 2**64", {"metadata": {"n": 2**64}}, "64-bit"),
    ("page 2**63", {"metadata": {"page": 2**63}}, "64-bit"),
    ("nested 2**64", {"metadata": {"deep": {"list": [1, -(2**64)]}}}, "64-bit"),
    ("source None", {"metadata": {"source": None}}, "None"),
    ("page_label None", {"metadata": {"page_label": None}}, "None"),
    ("source int", {"metadata": {"source": 3}}, "str"),
    ("page str", {"metadata": {"page": "3"}}, "int"),
    ("ragged vectors", {"vectors": [[0.1] * DIM, [0.2] * (DIM - 1)]}, "numeric"),
    ("string vectors", {"vectors": [["a"] * DIM]}, "numeric"),
    ("object vectors", {"vectors": [[object()] * DIM]}, "numeric"),
    ("id with a NUL", {"id": "doc\x001"}, "page ids"),
    ("id of only whitespace", {"id": " \t"}, "page ids"),
    ("empty id", {"id": ""}, "page ids"),
    ("text not str", {"text": b"bytes"}, "text"),
]


@pytest.fixture(params=["lite-cache", "lite-ann", pytest.param("server", marks=pytest.mark.server)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    kind = "server" if request.param == "server" else "lite"
    for target in store_target(kind, request, tmp_path):
        with target.open("v", dim=DIM, cache=request.param == "lite-cache") as store:
            yield store


@pytest.mark.parametrize(("name", "bad", "message"), BAD_PAGES, ids=[case[0] for case in BAD_PAGES])
def test_bad_pages_are_refused_before_any_row_is_written(
    any_store: MilvusMultiVectorStore, name: str, bad: dict, message: str
) -> None:
    good = corpus(6, n_pages=1)[0]
    vectors = [good, bad.get("vectors", good)]
    metadatas = [{"page": 1}, bad.get("metadata", {"page": 2})]
    with pytest.raises(InvalidInputError, match=message):
        any_store.add(vectors, metadatas, ids=["good", bad.get("id", "second")], texts=["", bad.get("text", "")])
    info = any_store.info()
    assert (info.pages, info.vectors) == (0, 0)
    any_store.add([good], [{"page": 1}], ids=["good"])  # and the same page can be added afterwards
    assert any_store.search(good[:2], k=1)[0].page_id == "good"


def test_empty_filter_clauses_are_refused_and_delete_nothing(any_store: MilvusMultiVectorStore) -> None:
    any_store.add(corpus(7, n_pages=3), ids=["a", "b", "c"])
    for empty in ({}, {"$or": [{}]}, {"$and": [{}, {}]}):
        with pytest.raises(FilterError):
            any_store.delete(filter=empty)
        with pytest.raises(FilterError):
            any_store.search(corpus(8, n_pages=1)[0], k=3, filter=empty)
    assert any_store.count() == 3


def test_get_vectors_of_unknown_ids_leaves_them_out(any_store: MilvusMultiVectorStore) -> None:
    pages = corpus(9, n_pages=2)
    any_store.add(pages, ids=["a", "b"])
    assert any_store.get_vectors(["nope"]) == {}
    assert set(any_store.get_vectors(["nope", "b"])) == {"b"}


@pytest.mark.parametrize("cache", [False, True], ids=["ann", "cache"])
def test_k_pages_come_back_whenever_k_pages_match_however_uneven_the_pages(target: StoreTarget, cache: bool) -> None:
    """One huge page near the query takes every ANN hit of every query vector; k small pages still come back."""
    rng = np.random.default_rng(10)
    query = unit_vectors(rng, 4, DIM)
    huge = np.concatenate([query + rng.normal(scale=0.01, size=query.shape).astype(np.float32) for _ in range(40)])
    small = [unit_vectors(rng, 3, DIM) for _ in range(8)]
    with target.open("uneven", dim=DIM, cache=cache, candidates_per_vector=20, rerank_depth=4) as store:
        store.add([huge.astype(np.float32), *small], ids=["huge", *[f"s{i}" for i in range(8)]])
        for k in (1, 4, 9):
            hits = store.search(query, k=k)
            assert len(hits) == k
            assert hits[0].page_id == "huge"
        filtered = store.search(query, k=5, filter={"page_id": {"$ne": "huge"}})
        assert len(filtered) == 5


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {src!r})
    from colpali_milvus import MilvusMultiVectorStore
    vectors = np.load(sys.argv[3])
    with MilvusMultiVectorStore(sys.argv[1], collection_name=sys.argv[2], cache=False) as store:
        store.add([vectors], ids=["p1"])
        store.delete(page_ids=["p3"])
""")


@pytest.mark.server
@pytest.mark.parametrize("held", [True, "codes"], ids=["floats", "codes"])
def test_a_cached_server_store_sees_other_processes_writes(target: StoreTarget, tmp_path: Path, held: object) -> None:
    if target.kind != "server":
        pytest.skip("servers only: a Lite file has one process")
    pages = corpus(11)
    replacement = corpus(12, n_pages=1)[0]
    np.save(tmp_path / "replacement.npy", replacement)
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(src=str(SRC)))
    with target.open("shared", dim=DIM, cache=held) as cached:
        cached.add(pages, ids=[f"p{i}" for i in range(6)])
        assert_scores_on(cached, "p1", pages[1])
        command = [sys.executable, str(script), target.uri, target.name("shared"), str(tmp_path / "replacement.npy")]
        subprocess.run(command, check=True, timeout=120, capture_output=True)
        assert_scores_on(cached, "p1", replacement)
        assert "p3" not in {hit.page_id for hit in cached.search(pages[3][:2], k=6)}
        assert cached.existing_page_ids(["p3", "p1"]) == {"p1"}


@pytest.mark.slow  # SIGKILLed subprocesses, ~13 s
def test_the_saved_cache_never_outlives_a_crash_in_delete_or_close(lite_uri: str) -> None:
    """Kill a process in delete() and in close(); the next open is whole and current."""
    pages = corpus(13)
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM) as store:
        store.add(pages, ids=[f"p{i}" for i in range(6)])
    script = Path(lite_uri).parent / "die.py"
    script.write_text(
        textwrap.dedent(f"""
            import os, signal, sys
            sys.path.insert(0, {str(SRC)!r})
            import colpali_milvus.store.connection as connection
            import colpali_milvus.store.cache as cache
            from colpali_milvus import MilvusMultiVectorStore
            where = sys.argv[1]
            if where == "delete":  # after the page rows go, before the vector rows do
                original = connection.MilvusConnection.delete_ids
                def delete_then_die(self, collections, ids):
                    original(self, collections[:1], ids)
                    os.kill(os.getpid(), signal.SIGKILL)
                connection.MilvusConnection.delete_ids = delete_then_die
            if where == "close":  # mid-way through saving the copy: codes written, index not yet
                original_write_codes = cache._write_codes
                def write_codes_then_die(*args):
                    original_write_codes(*args)
                    os.kill(os.getpid(), signal.SIGKILL)
                cache._write_codes = write_codes_then_die
            store = MilvusMultiVectorStore({lite_uri!r}, collection_name="c")
            store.search(store.get_vectors(["p0"])["p0"][:2], k=1)  # load the cache
            if where == "delete":
                store.delete(page_ids=["p2"])
            else:
                store.add([store.get_vectors(["p4"])["p4"][::-1].copy()], ids=["p4"])
                store.close()
        """)
    )
    for where in ("delete", "close"):
        result = subprocess.run([sys.executable, str(script), where], capture_output=True, timeout=180, check=False)
        assert result.returncode == -9, result.stderr.decode()[-2000:]
        with MilvusMultiVectorStore(lite_uri, collection_name="c") as store:
            survivors = store.page_ids()
            for page_id in survivors:
                vectors = store.get_vectors([page_id])[page_id]
                assert_scores_on(store, page_id, vectors)
            if where == "delete":
                assert "p2" not in survivors
            else:
                np.testing.assert_allclose(store.get_vectors(["p4"])["p4"], pages[4][::-1], atol=1e-6)
            assert store.search_path.loaded_from == "milvus"  # type: ignore[attr-defined]
        cache_dir = Path(f"{lite.normalise_uri(lite_uri)}.cache")
        assert [p.name for p in cache_dir.iterdir()] == ["c"]
        assert {p.name for p in (cache_dir / "c").iterdir()} == {"index.json", "codes.bin", "floats.bin"}


def test_a_store_that_fails_to_open_releases_the_lite_file(lite_uri: str) -> None:
    with MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM, model_name="m/one"):
        pass
    with pytest.raises(IndexMismatchError):
        MilvusMultiVectorStore(lite_uri, collection_name="c", dim=DIM + 1)
    with pytest.raises(IndexMismatchError):
        MilvusMultiVectorStore(lite_uri, collection_name="c", model_name="m/two")
    opener = f"import sys; sys.path.insert(0, {str(SRC)!r}); from colpali_milvus import MilvusMultiVectorStore; "
    opener += f"MilvusMultiVectorStore({lite_uri!r}, collection_name='c').close()"
    result = subprocess.run([sys.executable, "-c", opener], capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]  # no lock left behind in this process
