"""Milvus Lite specifics: which uris are Lite files, and the file lock of its one-process engine."""

from __future__ import annotations

import re
import threading
from os import PathLike
from pathlib import Path

__all__ = [
    "LITE_LOCK_FILE",
    "hold_lite_database",
    "is_lite_uri",
    "lite_file_locked",
    "normalise_uri",
    "release_lite_database",
]

LITE_LOCK_FILE = "LOCK"  # milvus_lite.db.LOCK_FILENAME: flock-ed by the process that owns the database


def is_lite_uri(uri: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*://", uri, flags=re.IGNORECASE)


def normalise_uri(uri: str | PathLike[str]) -> str:
    text = str(uri)
    if is_lite_uri(text):
        return str(Path(text).expanduser())
    return text


# Milvus Lite runs one in-process server per database and keeps its file lock until that server
# stops, which pymilvus never asks for. Stores count their users per database and stop the server
# when the last one closes, so that another process can open the file afterwards.
_lite_users: dict[str, int] = {}
_lite_users_lock = threading.Lock()


def hold_lite_database(uri: str) -> None:
    with _lite_users_lock:
        _lite_users[uri] = _lite_users.get(uri, 0) + 1


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
