"""State shared by every store object on one collection in this process.

Two store objects on the same collection (a notebook that ingests with one and serves a retriever
with another, or the same Lite file opened by a relative and an absolute path) share one write
lock, so their writes reach Milvus and the in-process copy in the same order, and one copy of the
pages, so neither can serve what the other replaced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from colpali_milvus.store.packed import ShardTail

__all__ = ["SharedCollection", "attach", "detach"]

Key = tuple[str, str, str]  # (resolved uri, database, collection name)


@dataclass(eq=False)
class SharedCollection:
    key: Key
    write_lock: threading.RLock = field(default_factory=threading.RLock)
    users: int = 0
    cache_state: Any = None  # the CachedPath's state, created by the first cached store
    shard_tail: ShardTail = field(default_factory=ShardTail)  # where packed rows go next (sharded layout)


_registry: dict[Key, SharedCollection] = {}
_registry_lock = threading.Lock()


def attach(key: Key) -> SharedCollection:
    with _registry_lock:
        shared = _registry.setdefault(key, SharedCollection(key))
        shared.users += 1
        return shared


def detach(shared: SharedCollection) -> bool:
    """Release one user; ``True`` when it was the last (the shared state is then forgotten)."""
    with _registry_lock:
        shared.users -= 1
        if shared.users > 0:
            return False
        if _registry.get(shared.key) is shared:
            del _registry[shared.key]
        return True
