"""SIGKILL an ingesting process at several points; every page is then whole or absent, and a re-run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from colpali_milvus import MilvusMultiVectorStore, maxsim
from colpali_milvus.store import packed
from helpers import unit_vectors

pytestmark = pytest.mark.slow  # six SIGKILLed subprocesses, ~40 s

SRC = Path(__file__).parents[2] / "src"
N_PAGES, N_VECTORS, DIM = 12, 30, 8

INGEST = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {src!r})
    import colpali_milvus.store.connection as connection
    from colpali_milvus import MilvusMultiVectorStore

    kill_after = int(sys.argv[2])  # insert requests allowed before the process kills itself; -1: never
    calls = 0
    original = connection.MilvusConnection.write_batch

    def insert_then_maybe_die(self, collection, batch, **kwargs):
        global calls
        if calls == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        calls += 1
        original(self, collection, batch, **kwargs)

    connection.MilvusConnection.write_batch = insert_then_maybe_die
    import colpali_milvus.store.packed as packed
    packed.PART_CHARS = 400  # 4 packed rows per page (1,280 characters of base64) ...
    packed._ROWS_PER_INSERT = 5  # ... in several requests, so kills land mid-page too ...
    packed.SHARD_ROWS = 10  # ... and a new shard every two pages, so kills land around shard changes
    pages = np.load(sys.argv[3])
    store = MilvusMultiVectorStore(sys.argv[1], collection_name="crash", dim={dim})
    for start in range(0, len(pages), 3):
        ids = [f"page{{i}}" for i in range(start, min(start + 3, len(pages)))]
        store.add(list(pages[start : start + 3]), [{{"page": int(i[4:]) + 1}} for i in ids], ids=ids)
    store.close()
""").format(src=str(SRC), dim=DIM)


# 4 adds of 3 pages (12 packed rows, in requests of <= 5, cut where a shard fills) + 1 page-row request
# each: kill before the first request, mid-page, around commit markers and shard changes, and late.
@pytest.mark.parametrize("kill_after", [0, 2, 3, 4, 9, 15])
def test_sigkill_leaves_whole_pages_and_a_rerun_completes(tmp_path: Path, kill_after: int) -> None:
    rng = np.random.default_rng(kill_after)
    pages = np.stack([unit_vectors(rng, N_VECTORS, DIM) for _ in range(N_PAGES)])
    np.save(tmp_path / "pages.npy", pages)
    script = tmp_path / "ingest.py"
    script.write_text(INGEST)
    uri = str(tmp_path / "crash.db")

    def ingest(kill: int) -> int:
        command = [sys.executable, str(script), uri, str(kill), str(tmp_path / "pages.npy")]
        return subprocess.run(command, capture_output=True, timeout=300, check=False).returncode

    assert ingest(kill_after) == -signal.SIGKILL

    with MilvusMultiVectorStore(uri, collection_name="crash") as store:
        survivors = store.page_ids()
        for page_id in survivors:  # whatever survived is whole
            np.testing.assert_allclose(store.get_vectors([page_id])[page_id], pages[int(page_id[4:])], atol=1e-6)
        for hit in store.search(pages[0][:2], k=N_PAGES):
            assert hit.page_id in survivors
            expected = maxsim(pages[0][:2], [pages[int(hit.page_id[4:])]])[0]
            assert hit.score == pytest.approx(float(expected), abs=1e-4)

    assert ingest(-1) == 0  # the same ingestion again, to the end
    with MilvusMultiVectorStore(uri, collection_name="crash", cache=False) as store:
        info = store.info()
        assert (info.pages, info.vectors) == (N_PAGES, N_PAGES * N_VECTORS)
        names = store._names
        first_parts = [  # nothing twice: one set of packed rows per page, whichever shard holds it
            row["page_id"]
            for shard in range(packed.shard_count(store.connection, names))
            for row in store.connection.query_all(names.packed_shard(shard), "part == 0", ["page_id"], primary="pk")
        ]
        assert sorted(first_parts) == sorted(f"page{i}" for i in range(N_PAGES))
    assert os.path.isdir(uri)
