"""Every Milvus Lite specific: which uris are Lite files, its file lock, its log noise, its cache file.

Milvus Lite is an embedded, one-process engine: a database is a local folder that one process locks.
Paths are resolved before use, so ``colpali.db``, ``./colpali.db`` and its absolute path are one
database to the lock counting, the shared vector cache and Milvus Lite's own server registry.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import threading
from os import PathLike
from pathlib import Path
from typing import Any

from colpali_milvus.errors import StoreConnectionError

__all__ = [
    "LITE_GRPC_OPTIONS",
    "LITE_LOCK_FILE",
    "Endpoint",
    "LiteFile",
    "RemoteServer",
    "cache_file",
    "collection_on_disk",
    "collection_open",
    "endpoint",
    "hold_lite_database",
    "is_lite_uri",
    "lite_file_locked",
    "normalise_uri",
    "release_decoding_buffers",
    "lite_database_held",
    "release_lite_database",
    "silence_lite_noise",
    "unload_collection",
]

LITE_LOCK_FILE = "LOCK"  # milvus_lite.db.LOCK_FILENAME: flock-ed by the process that owns the database

#: gRPC options of a client of Milvus Lite's in-process server: no keepalive pings. pymilvus pings
#: every 10 s, with or without calls in flight; Milvus Lite's server keeps gRPC's default policy (at
#: most one ping per 5 minutes without data, 2 strikes), so after 30-90 s of idling it answers
#: GOAWAY "too_many_pings" and the next request, or the next client of the same file, fails. A
#: loopback connection to this very process has no idle network path for a ping to keep open.
LITE_GRPC_OPTIONS: dict[str, Any] = {
    "grpc.keepalive_time_ms": 2**31 - 1,  # gRPC's "never"
    "grpc.keepalive_permit_without_calls": 0,
}


def is_lite_uri(uri: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*://", uri, flags=re.IGNORECASE)


def normalise_uri(uri: str | PathLike[str]) -> str:
    """A server uri as given; a Lite path made absolute with symlinks resolved (one name per database)."""
    text = str(uri)
    if is_lite_uri(text):
        return str(Path(text).expanduser().resolve())
    return text


class RemoteServer:
    """A Milvus server, cluster or Zilliz Cloud: reached over the network, shared by many processes."""

    embedded = False

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def client_options(self) -> dict[str, Any]:
        """Extra MilvusClient arguments for this endpoint."""
        return {}

    def connect_attempts(self) -> int:
        """How many times to try to connect before giving up."""
        return 1

    def index_options(self) -> dict[str, Any]:
        """Extra ``create_index`` arguments: a server keeps pymilvus's wait for the build (Milvus 2.3
        refuses to load a collection whose indexes changed while it was loaded)."""
        return {}

    def before_connect(self) -> None:
        pass

    def connect_failure(self) -> StoreConnectionError | None:
        """A clearer error than the client's for a failed connection, when there is one."""
        return None

    def connected(self) -> None:
        pass

    def closed(self) -> None:
        pass


class LiteFile:
    """Milvus Lite: an embedded database in a local folder, owned by one process at a time."""

    embedded = True

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def client_options(self) -> dict[str, Any]:
        return {"grpc_options": dict(LITE_GRPC_OPTIONS)}

    def connect_attempts(self) -> int:
        """Twice when this process serves the file: its loopback connection is reset, not refused."""
        return 2 if lite_database_held(self.uri) else 1

    def index_options(self) -> dict[str, Any]:
        """No wait: pymilvus polls the build, sleeping 0.5 s at least once (3.5 s of a new store's
        3.7 s), while Milvus Lite builds an index on an empty collection at once."""
        return {"sync": False}

    def before_connect(self) -> None:
        Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        silence_lite_noise()

    def connect_failure(self) -> StoreConnectionError | None:
        if lite_database_held(self.uri) or not lite_file_locked(Path(self.uri)):
            return None  # this process holds the lock: the client's own error says what went wrong
        return StoreConnectionError(
            f"the Milvus Lite database {self.uri} is open in another process (it holds "
            f"{Path(self.uri) / LITE_LOCK_FILE}); Milvus Lite allows one process per database: "
            "close the other process, or use a Milvus server for shared access"
        )

    def connected(self) -> None:
        hold_lite_database(self.uri)

    def closed(self) -> None:
        release_lite_database(self.uri)


Endpoint = LiteFile | RemoteServer


def endpoint(uri: str) -> Endpoint:
    """What ``uri`` (already normalised) points at."""
    return LiteFile(uri) if is_lite_uri(uri) else RemoteServer(uri)


def cache_file(uri: str, collection_name: str) -> Path | None:
    """The folder where a Lite store saves its serving copy between runs (``<file>.cache/<collection>/``).

    Only Lite gets one: one process owns a Lite file, so nothing can change it while the process
    runs; a server's collection may change under any saved copy.
    """
    return Path(f"{uri}.cache") / collection_name if is_lite_uri(uri) else None


def collection_on_disk(uri: str, name: str) -> bool | None:
    """Whether the Milvus Lite database ``uri`` holds collection ``name``, read from its folder.

    Asking Milvus Lite instead (``has_collection``, ``list_collections``) makes it open every
    collection it names, reading all of its rows into this process: seconds and gigabytes for the
    vectors a serving process never needs. ``None`` when the folder is not laid out as Milvus Lite 3
    lays it out (``<db>/collections/<name>/schema.json``): the caller asks Milvus Lite then.
    """
    try:
        from milvus_lite.db import COLLECTIONS_DIRNAME, SCHEMA_FILENAME
    except ImportError:  # pragma: no cover - another Milvus Lite: ask it
        return None
    root = Path(uri) / str(COLLECTIONS_DIRNAME)
    if not root.is_dir():
        return None
    return (root / name / str(SCHEMA_FILENAME)).is_file()


# Milvus Lite runs one in-process server per database and keeps its file lock until that server
# stops, which pymilvus never asks for. Stores count their users per database and stop the server
# when the last one closes, so that another process can open the file afterwards.
_lite_users: dict[str, int] = {}
_lite_users_lock = threading.Lock()


def hold_lite_database(uri: str) -> None:
    with _lite_users_lock:
        _lite_users[uri] = _lite_users.get(uri, 0) + 1


def lite_database_held(uri: str) -> bool:
    """Whether a store of this process has the Lite database ``uri`` open (so this process holds its lock)."""
    with _lite_users_lock:
        return uri in _lite_users


def release_lite_database(uri: str) -> None:
    with _lite_users_lock:
        remaining = _lite_users.get(uri, 1) - 1
        if remaining > 0:
            _lite_users[uri] = remaining
            return
        _lite_users.pop(uri, None)
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # pragma: no cover - another Milvus Lite version: the lock lasts until exit
        return
    server_manager_instance.release_server(uri)


def _open_collections(uri: str) -> dict[Any, Any] | None:
    """Milvus Lite's own table of the collections its in-process server for ``uri`` has open."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # pragma: no cover - another Milvus Lite
        return None
    entry = getattr(server_manager_instance, "_servers", {}).get(os.path.abspath(uri))
    opened = getattr(entry[1], "_collections", None) if entry else None
    return opened if isinstance(opened, dict) else None


def collection_open(uri: str, name: str, database: str = "") -> bool | None:
    """Whether this process's Milvus Lite server for ``uri`` has collection ``name`` open and loaded
    (``None``: cannot tell)."""
    from milvus_lite.db import DEFAULT_DATABASE_NAME

    opened = _open_collections(uri)
    if opened is None:
        return None
    collection = opened.get((database or DEFAULT_DATABASE_NAME, name))
    return collection is not None and getattr(collection, "load_state", "loaded") == "loaded"


def unload_collection(uri: str, name: str, database: str = "") -> bool:
    """Close collection ``name`` of this process's Milvus Lite database ``uri``, so its rows leave memory.

    Milvus Lite keeps every collection a request has touched open, with all of its rows in memory,
    until its server stops (releasing a collection keeps them); stopping the server would drop the
    file lock. Closing one collection flushes it as a shutdown does, and the next request on it
    opens it again from disk, as a restarted process would. ``False`` where nothing was open (or
    this Milvus Lite keeps its collections otherwise: the rows then stay until the store closes).
    """
    from milvus_lite.db import DEFAULT_DATABASE_NAME

    opened = _open_collections(uri)
    if opened is None:
        return False
    collection = opened.pop((database or DEFAULT_DATABASE_NAME, name), None)
    if collection is None:
        return False
    collection.close()
    return True


def lite_file_locked(database: Path) -> bool:
    """Whether another process holds the lock of a Milvus Lite database (a folder with a LOCK file)."""
    lock = database / LITE_LOCK_FILE
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: cannot tell, report the generic error
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


class _UnimplementedCallFilter(logging.Filter):
    """Drops the gRPC server's tracebacks for calls Milvus Lite does not implement.

    pymilvus asks for a timestamp (``AllocTimestamp``) while waiting for an index; Milvus Lite's
    in-process server answers "not implemented", pymilvus carries on correctly, but gRPC logs a
    full traceback at ERROR level that reads like a crash.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, NotImplementedError) and "not implemented" in record.getMessage().lower())


class _LockedDatabaseFilter(logging.Filter):
    """Drops Milvus Lite's traceback for a database whose lock another process holds.

    ``milvus_lite.server_manager`` logs the whole ``DataDirLockedError`` traceback (20 lines) at
    ERROR level before pymilvus fails; the store then raises its own one-line error saying which
    file is locked and what to do, so the traceback only buries it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ != "DataDirLockedError"


_noise_filters = {"grpc._server": _UnimplementedCallFilter(), "milvus_lite.server_manager": _LockedDatabaseFilter()}


def silence_lite_noise() -> None:
    """Install the filters above on their loggers (once)."""
    for name, noise_filter in _noise_filters.items():
        logger = logging.getLogger(name)
        if noise_filter not in logger.filters:
            logger.addFilter(noise_filter)


def release_decoding_buffers() -> None:
    """Hand back the memory Milvus Lite's Parquet reads leave behind in this process.

    Milvus Lite 3 reads a collection's Parquet files through pyarrow, whose allocator keeps the
    decoding buffers (measured: 200-300 MB per 200 ColPali pages) until asked; glibc likewise keeps
    freed heap. Called after loading, so the process holds what it uses, not what it once decoded.
    """
    try:
        import pyarrow
    except ImportError:  # not Milvus Lite 3's engine: nothing of ours to hand back
        pass
    else:
        pyarrow.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
