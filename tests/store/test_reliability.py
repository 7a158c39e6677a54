"""Failure modes of the store: locked Lite files, unreachable servers, secrets, concurrent use."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus import MilvusMultiVectorStore, StoreConnectionError, maxsim
from helpers import unit_vectors

SRC = Path(__file__).parents[2] / "src"


def test_a_second_process_gets_a_clear_error_naming_the_lock(lite_uri: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys
                sys.path.insert(0, {str(SRC)!r})
                from colpali_milvus import MilvusMultiVectorStore
                store = MilvusMultiVectorStore({lite_uri!r}, dim=8)
                print("ready", flush=True)
                sys.stdin.readline()
            """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with pytest.raises(StoreConnectionError, match="open in another process") as raised:
            MilvusMultiVectorStore(lite_uri, dim=8)
        assert time.monotonic() - started < 15  # an error, not a hang
        assert "LOCK" in str(raised.value)
    finally:
        holder.communicate("done\n", timeout=30)


def test_an_unreachable_server_fails_fast_without_leaking_the_token(caplog: pytest.LogCaptureFixture) -> None:
    secret = "root:s3cret-token-value"
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(StoreConnectionError) as raised:
        MilvusMultiVectorStore("http://127.0.0.1:9", token=secret, dim=8, timeout=5)
    assert time.monotonic() - started < 30
    assert "127.0.0.1:9" in str(raised.value)
    chain: list[str] = []
    seen: set[int] = set()
    error: BaseException | None = raised.value
    while error is not None and id(error) not in seen:  # grpc errors can chain in a cycle
        seen.add(id(error))
        chain.append(f"{error!s} {error!r}")
        error = error.__cause__ or error.__context__
    assert all(secret not in text for text in chain)
    assert secret not in caplog.text


def test_searches_from_threads_during_ingestion_see_only_whole_pages(lite_uri: str) -> None:
    rng = np.random.default_rng(11)
    pages = [unit_vectors(rng, 40, 16) for _ in range(24)]
    errors: list[BaseException] = []
    results: list[tuple[np.ndarray, list]] = []
    with MilvusMultiVectorStore(lite_uri, dim=16) as store:
        store.add(pages[:4], ids=[f"p{i}" for i in range(4)])
        done = threading.Event()

        def ingest() -> None:
            try:
                for start in range(4, 24, 4):
                    store.add(pages[start : start + 4], ids=[f"p{i}" for i in range(start, start + 4)])
            except BaseException as error:
                errors.append(error)
            finally:
                done.set()

        def search() -> None:
            try:
                while not done.is_set():
                    query = pages[int(rng.integers(0, 24))][:3]
                    results.append((query, store.search(query, k=5)))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=ingest), *(threading.Thread(target=search) for _ in range(3))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)

        assert not errors
        assert results
        assert store.count() == 24
        for query, hits in results:
            for hit in hits:  # every returned page was scored on all 40 of its vectors
                expected = maxsim(query, [pages[int(hit.page_id[1:])]])[0]
                assert hit.score == pytest.approx(float(expected), abs=1e-4)


def test_a_new_lite_collection_prints_nothing_that_looks_like_a_crash(tmp_path: Path) -> None:
    """Milvus Lite's in-process server logs a traceback for a call it does not implement (AllocTimestamp)."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SRC)!r})
        import numpy as np
        from colpali_milvus import MilvusMultiVectorStore
        with MilvusMultiVectorStore({str(tmp_path / "fresh.db")!r}, dim=8) as store:
            store.add([np.eye(8, dtype=np.float32)], ids=["p"])
            assert store.search(np.eye(8, dtype=np.float32)[:2], k=1)[0].page_id == "p"
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "not implemented" not in result.stderr.lower()
    assert "ERROR" not in result.stderr
