"""Milvus Lite connections: stores of one process share a file for as long as they like; a second process
gets one clear line, not Milvus Lite's traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pymilvus
import pytest
from pymilvus.exceptions import MilvusException

from colpali_milvus import MilvusMultiVectorStore, StoreConnectionError
from colpali_milvus.store import lite

DIM = 4


def open_store(uri: str) -> MilvusMultiVectorStore:
    return MilvusMultiVectorStore(uri, dim=DIM, model_name="test/lite-connection")


def test_a_second_process_gets_one_clear_line_and_no_traceback(tmp_path: Path) -> None:
    uri = str(tmp_path / "held.db")
    script = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(level=logging.WARNING)  # an application that logs, as most do
        from colpali_milvus import MilvusMultiVectorStore, StoreError
        try:
            MilvusMultiVectorStore(sys.argv[1], dim=4, model_name="test/lite-connection")
        except StoreError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(3)
        """
    )
    with open_store(uri):
        result = subprocess.run(
            [sys.executable, "-c", script, uri], capture_output=True, text=True, timeout=120, check=False
        )

    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[-1]], result.stderr  # only our line: no "Failed to start MilvusLite server", no traceback
    assert "is open in another process" in lines[0] and uri in lines[0]


def test_a_store_of_this_process_reconnects_instead_of_blaming_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "shared.db")
    real_client = pymilvus.MilvusClient
    failures = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        """The first connection fails as one over a loopback channel just reset (GOAWAY) did."""
        if not failures:
            failures.append(1)
            raise MilvusException(
                code=2, message="Fail connecting to server on 127.0.0.1:1, illegal connection params or server down"
            )
        return real_client(*args, **kwargs)

    with open_store(uri) as first:
        first.add([np.eye(DIM, dtype=np.float32)], ids=["page"])
        monkeypatch.setattr(pymilvus, "MilvusClient", fails_once)

        with open_store(uri) as second:
            assert second.count() == 1

        assert failures == [1]
        assert first.count() == 1


def test_a_failure_on_a_file_this_process_holds_never_blames_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "shared.db")

    def always_fails(*args: Any, **kwargs: Any) -> Any:
        raise MilvusException(code=2, message="server unavailable")

    with open_store(uri):
        monkeypatch.setattr(pymilvus, "MilvusClient", always_fails)
        with pytest.raises(StoreConnectionError) as error:
            open_store(uri)

    assert "another process" not in str(error.value)
    assert "cannot connect to Milvus" in str(error.value) and "server unavailable" in str(error.value)


def test_lite_clients_send_no_keepalive_pings() -> None:
    """What the idle test below shows end to end, in a second: Lite's endpoint asks for no keepalive."""
    options = lite.endpoint(str(Path("x.db").resolve())).client_options()["grpc_options"]

    assert options["grpc.keepalive_time_ms"] == 2**31 - 1
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert lite.endpoint("http://localhost:19530").client_options() == {}


@pytest.mark.slow
def test_stores_of_one_process_open_after_idling(tmp_path: Path) -> None:
    """pymilvus pings every 10 s; Milvus Lite's server took a third ping within 5 minutes as abuse.

    It answered GOAWAY "too_many_pings" after two idle spells of over 30 s (pymilvus's health check
    threshold), and the next store on the file failed, blamed on "another process".
    """
    uri = str(tmp_path / "idle.db")
    with open_store(uri) as first:
        first.add([np.eye(DIM, dtype=np.float32)], ids=["page"])
        for _ in range(2):
            time.sleep(33)
            with open_store(uri) as later:
                assert later.count() == 1
        assert first.count() == 1


def test_packed_writes_skip_pymilvus_text_check_only_while_they_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pymilvus checks each VARCHAR value a character at a time (80-85% of a packed insert): packed rows,
    whose text the store cut to size, skip it; every other insert, and any insert after, keeps it."""
    from pymilvus.client import entity_helper

    seen: list[bool] = []
    original = entity_helper.convert_to_str_array

    def spy(values: Any, field_info: Any, check: bool = True) -> Any:
        seen.append(check)
        return original(values, field_info, check)

    monkeypatch.setattr(entity_helper, "convert_to_str_array", spy)
    rng = np.random.default_rng(0)
    with open_store(str(tmp_path / "text.db")) as store:
        store.add([rng.standard_normal((3, DIM)).astype(np.float32)], [{"source": "a.pdf"}], ids=["p0"])
        assert entity_helper.CHECK_STR_ARRAY is True
        assert False in seen and True in seen  # packed rows unchecked; page rows (source, text, ...) checked
        seen.clear()

        def failing(*args: Any, **kwargs: Any) -> Any:
            raise MilvusException(message="refused")

        monkeypatch.setattr(store.connection._client, "insert", failing)
        with pytest.raises(Exception, match="refused"):
            store.add([rng.standard_normal((3, DIM)).astype(np.float32)], ids=["p1"])
        assert entity_helper.CHECK_STR_ARRAY is True  # restored when the write fails too
