"""Where tests keep their stores: a Milvus Lite file, or collections on the real test server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Parametrize a fixture with this to run its tests on Milvus Lite and on the real test server.
BACKENDS = ["lite", pytest.param("server", marks=pytest.mark.server)]


@dataclass
class StoreTarget:
    """Where a test's stores live: a fresh Milvus Lite file, or uniquely named collections on the server."""

    kind: str  # "lite" or "server"
    uri: str
    prefix: str = ""

    def name(self, collection: str = "c") -> str:
        return f"{self.prefix}{collection}"

    def open(self, collection: str = "c", **kwargs: Any) -> Any:
        from colpali_milvus import MilvusMultiVectorStore

        return MilvusMultiVectorStore(self.uri, collection_name=self.name(collection), **kwargs)


def store_target(kind: str, request: pytest.FixtureRequest, folder: Path) -> Iterator[StoreTarget]:
    if kind == "lite":
        yield StoreTarget("lite", str(folder / "milvus.db"))
        return
    server = request.getfixturevalue("milvus_server")
    target = StoreTarget("server", server.uri, prefix=f"t{uuid.uuid4().hex[:12]}_")
    yield target
    if server.running:  # leave the shared server as we found it
        from pymilvus import MilvusClient

        client = MilvusClient(uri=server.uri)
        for name in client.list_collections():
            if name.startswith(target.prefix):
                client.drop_collection(name)
        client.close()
