"""The only module that talks to pymilvus: connect and close, retries, error translation, paging, batches.

pymilvus errors become :class:`~colpali_milvus.errors.StoreError` here and nowhere else. Every read
of many rows pages by primary key, so no read passes a server's 16,384-row query window.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from os import PathLike
from typing import Any, NoReturn, TypeVar

import numpy as np
import numpy.typing as npt

from colpali_milvus.errors import StoreConnectionError, StoreError
from colpali_milvus.store import lite
from colpali_milvus.store.filters import compile_filter, join_clauses, string_literal
from colpali_milvus.store.schema import FieldSpec

__all__ = ["QUERY_WINDOW", "MilvusConnection", "in_ids", "redact_uri"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A Milvus server returns at most this many rows per query (offset + limit); Lite has no cap, but
# one code path for both keeps the behaviour the same everywhere.
QUERY_WINDOW = 16_384
INSERT_BATCH_ROWS = 4_096
ID_BATCH = 1_000  # ids per `in [...]` expression
PARALLEL_READS = 3  # requests in flight at once: the server works on one while the client decodes another
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 8.0


class MilvusConnection:
    """One client to Milvus Lite, a server or Zilliz Cloud, with the plumbing every request needs.

    ``retry_timeout``: how long (seconds) a request that failed because the server could not be
    reached, or is still reloading after a restart, is retried with exponential backoff. Milvus
    Lite runs in-process, so it is never retried there.
    """

    def __init__(
        self,
        uri: str | PathLike[str],
        *,
        token: str | None = None,
        db_name: str | None = None,
        timeout: float | None = None,
        retry_timeout: float = 30.0,
    ) -> None:
        self.uri = lite.normalise_uri(uri)
        self._endpoint = lite.endpoint(self.uri)
        self.is_lite = self._endpoint.embedded
        self.db_name = db_name or ""
        self.retry_timeout = 0.0 if self._endpoint.embedded else float(retry_timeout)  # Lite runs in-process
        self.closed = False
        self._reload_names: tuple[str, ...] = ()
        self._load_on_first_use: set[str] = set()
        self._client = self._connect(token, timeout)

    @property
    def display_uri(self) -> str:
        """The uri without credentials, safe to log and show."""
        return redact_uri(self.uri)

    @property
    def identity(self) -> tuple[str, str]:
        """Which database this is, the same for every spelling of its uri (Lite paths are resolved)."""
        return (self.uri, self.db_name)

    def reload_on_recovery(self, *collections: str) -> None:
        """Collections to ask a restarted server to load while a request is retried."""
        self._reload_names = collections

    # -- requests -----------------------------------------------------------------------------

    def call(self, operation: str, request: Callable[[], T]) -> T:
        """Run one pymilvus request with its errors translated; retry it while the server is unavailable.

        A server that restarts or fails over refuses connections for seconds, then reloads its
        collections for a few more; such faults are retried with exponential backoff until
        ``retry_timeout`` is spent, then raised. Every request sent through here is safe to repeat:
        reads and deletes are idempotent, page rows are upserted, and a vector row written twice is
        read once.
        """
        deadline = time.monotonic() + self.retry_timeout
        backoff = _FIRST_BACKOFF_S
        attempt = 1
        while True:
            try:
                with self.translate(operation):
                    return request()
            except StoreError as error:
                recovering = _is_recovering(error.__cause__)
                if not (recovering or isinstance(error, StoreConnectionError)) or time.monotonic() + backoff > deadline:
                    raise
                logger.warning("attempt %d failed (%s); retrying in %.1f s", attempt, error, backoff)
                time.sleep(backoff)
                backoff = min(2 * backoff, _MAX_BACKOFF_S)
                attempt += 1
                if recovering:
                    self._reload()

    @contextmanager
    def translate(self, operation: str) -> Iterator[None]:
        """Translate pymilvus and transport errors into the library's StoreError tree."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as error:
            message = getattr(error, "message", None) or str(error)
            error_type = StoreConnectionError if _looks_like_connection_error(error) else StoreError
            raise error_type(f"Milvus could not {operation} at {self.display_uri}: {message}") from error
        except (ConnectionError, TimeoutError, OSError) as error:
            raise StoreConnectionError(f"Milvus could not {operation} at {self.display_uri}: {error}") from error

    def query(
        self,
        collection: str,
        where: str,
        fields: Sequence[str],
        limit: int,
        *,
        consistency: str | None = None,
        smallest_keys: bool = False,
    ) -> list[dict[str, Any]]:
        """At most ``limit`` matching rows; with ``smallest_keys``, those of the smallest primary keys."""
        options = {**_consistency(consistency), **(_SMALLEST_KEYS if smallest_keys else {})}
        self._loaded(collection)
        return self.call(
            "query",
            lambda: list(
                self._client.query(collection, filter=where, output_fields=list(fields), limit=limit, **options)
            ),
        )

    def iter_rows(
        self,
        collection: str,
        where: str,
        fields: Sequence[str],
        *,
        primary: str,
        consistency: str | None = None,
        window: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Matching rows in batches of at most ``window`` rows (default: a query window; wide rows want
        fewer), in primary key order."""
        window = window or QUERY_WINDOW

        def fetch(where_in_window: str, ordered: bool) -> tuple[list[dict[str, Any]], None]:
            fields_read = list({primary, *fields})
            batch = self.query(
                collection, where_in_window, fields_read, window, consistency=consistency, smallest_keys=ordered
            )
            return sorted(batch, key=lambda row: row[primary]), None

        for batch, _ in _by_primary_key(where, primary, fetch, window, short_may_end=self.is_lite):
            yield batch

    def iter_vector_rows(
        self,
        collection: str,
        where: str,
        fields: Sequence[str],
        vector_field: str,
        *,
        primary: str,
        consistency: str | None = None,
    ) -> Iterator[tuple[list[dict[str, Any]], npt.NDArray[np.float32]]]:
        """Like :meth:`iter_rows`, with the float vectors of each batch as one ``(rows, dim)`` array.

        Rows are in the order the server returned them (row ``i`` owns ``vectors[i]``).
        """

        self._loaded(collection)

        def fetch(window: str, ordered: bool) -> tuple[list[dict[str, Any]], npt.NDArray[np.float32]]:
            fields_read = [primary, *fields]
            columns = partial(self._query_columns, collection, window, fields_read, vector_field, consistency, ordered)
            return self.call("query", columns)

        return _by_primary_key(where, primary, fetch, short_may_end=self.is_lite)

    def _query_columns(
        self, collection: str, where: str, fields: list[str], vector_field: str, consistency: str | None, ordered: bool
    ) -> tuple[list[dict[str, Any]], npt.NDArray[np.float32]]:
        result = self._client.query(
            collection,
            filter=where,
            output_fields=list(dict.fromkeys([*fields, vector_field])),
            limit=QUERY_WINDOW,
            strict_float32=True,
            **_consistency(consistency),
            **(_SMALLEST_KEYS if ordered else {}),
        )
        columns = _columns(result, fields, vector_field)
        if columns is not None:
            return columns
        # Not the result type we know how to read column-wise: read it row by row (slower).
        rows = [dict(row) for row in result]
        vectors = np.array([row.pop(vector_field) for row in rows], dtype=np.float32)
        return rows, vectors

    def query_all(
        self, collection: str, where: str, fields: Sequence[str], *, primary: str, consistency: str | None = None
    ) -> list[dict[str, Any]]:
        batches = self.iter_rows(collection, where, fields, primary=primary, consistency=consistency)
        return [row for batch in batches for row in batch]

    def count(self, collection: str, where: str = "") -> int:
        self._loaded(collection)
        result = self.call(
            "count rows", lambda: self._client.query(collection, filter=where, output_fields=["count(*)"])
        )
        return int(result[0]["count(*)"])

    def search(
        self,
        collection: str,
        data: list[list[float]],
        *,
        field: str,
        limit: int,
        where: str,
        params: dict[str, Any],
        consistency: str | None = None,
    ) -> list[list[dict[str, Any]]]:
        self._loaded(collection)
        return self.call(
            "search",
            lambda: [
                list(hits)
                for hits in self._client.search(
                    collection,
                    data=data,
                    anns_field=field,
                    limit=limit,
                    filter=where,
                    output_fields=["page_id"],
                    search_params=params,
                    **_consistency(consistency),
                )
            ],
        )

    def insert(self, collection: str, rows: Iterable[dict[str, Any]], *, upsert: bool = False) -> None:
        """Write rows in batches of INSERT_BATCH_ROWS (upserted: a retried write leaves one row)."""
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == INSERT_BATCH_ROWS:
                self.write_batch(collection, batch, upsert=upsert)
                batch = []
        if batch:
            self.write_batch(collection, batch, upsert=upsert)

    def write_batch(
        self, collection: str, batch: list[dict[str, Any]], *, upsert: bool = False, text_checked: bool = False
    ) -> None:
        """Write one request's rows. ``text_checked``: every VARCHAR value is known to fit its column
        (pymilvus's own check, one character at a time, is then skipped)."""
        self._loaded(collection)
        write = self._client.upsert if upsert else self._client.insert
        with _unchecked_text() if text_checked else contextlib.nullcontext():
            self.call("upsert" if upsert else "insert", lambda: write(collection, batch))

    def delete_ids(self, collections: Sequence[str], page_ids: Sequence[str]) -> None:
        """Delete every row of these pages, collection by collection in the order given."""
        for batch in batches(list(page_ids), ID_BATCH):
            where = in_ids(batch)
            for collection in collections:
                self._loaded(collection)
                self.call("delete", partial(self._client.delete, collection, filter=where))

    # -- collections --------------------------------------------------------------------------

    def has_collection(self, name: str) -> bool:
        if self.is_lite and not self.db_name:
            on_disk = lite.collection_on_disk(self.uri, name)  # asking Lite would open every collection
            if on_disk is not None:
                return on_disk
        return bool(self.call("look up the collection", lambda: self._client.has_collection(name)))

    def create_collection(self, name: str, fields: Sequence[FieldSpec], dim: int, *, auto_id: bool) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=auto_id, enable_dynamic_field=False)
        for spec in fields:
            params = dict(spec.params)
            if spec.kind.endswith("_VECTOR"):
                params.setdefault("dim", dim)
            schema.add_field(spec.name, getattr(DataType, spec.kind), is_primary=spec.is_primary, **params)
        self.call(
            "create the collection",
            lambda: self._client.create_collection(name, schema=schema, consistency_level="Strong"),
        )

    def create_index(
        self,
        collection: str,
        field_name: str,
        index_type: str,
        *,
        metric_type: str | None = None,
        params: dict[str, Any] | None = None,
        index_name: str | None = None,
    ) -> bool:
        """Build an index; ``False`` when this Milvus refuses that index type (other errors raise)."""
        from pymilvus.exceptions import MilvusException

        index_params = self._client.prepare_index_params()
        extra: dict[str, Any] = {"index_name": index_name} if index_name else {}
        if metric_type:
            extra["metric_type"] = metric_type
        index_params.add_index(field_name=field_name, index_type=index_type, params=dict(params or {}), **extra)
        try:
            self._client.create_index(collection, index_params, **self._endpoint.index_options())
        except MilvusException as error:
            logger.debug("%s index on %s.%s refused: %s", index_type, collection, field_name, error)
            return False
        return True

    def load(self, *collections: str, on_first_use: bool = False) -> None:
        """Load the collections now, or (``on_first_use``) just before the first request that reads or writes one.

        Milvus Lite reads all of a collection's rows into this process when it first opens it (~2 MB
        per ColPali page as per-vector rows): a process that never touches a collection never pays.
        """
        if on_first_use:
            self._load_on_first_use.update(collections)
            return
        self._load_on_first_use.difference_update(collections)
        for collection in collections:
            self.call("load the collection", partial(self._client.load_collection, collection))
        if self.is_lite:  # once, after all of them: trimming walks the whole heap
            lite.release_decoding_buffers()

    def unload(self, *collections: str) -> None:
        """Milvus Lite: let the collections' rows leave this process's memory until they are used again.

        A no-op on a server, which holds its collections itself.
        """
        if not self.is_lite:
            return
        # No bookkeeping: the next request finds the collection closed and loads it (``_loaded``)
        unloaded = [name for name in collections if lite.unload_collection(self.uri, name, self.db_name)]
        if unloaded:
            lite.release_decoding_buffers()

    def _loaded(self, collection: str) -> None:
        # On Lite, also a collection another store of this process created or unloaded since
        if collection in self._load_on_first_use or (
            self.is_lite and lite.collection_open(self.uri, collection, self.db_name) is False
        ):
            self.load(collection)

    def properties(self, collection: str) -> dict[str, str]:
        description = self.call("read the collection settings", lambda: self._client.describe_collection(collection))
        return {str(key): str(value) for key, value in (description.get("properties") or {}).items()}

    def set_properties(self, collection: str, properties: dict[str, str]) -> None:
        self.call(
            "record the collection settings",
            lambda: self._client.alter_collection_properties(collection, properties=properties),
        )

    def describe_index(self, collection: str, index_name: str) -> dict[str, Any]:
        try:
            description = self.call("describe the index", lambda: self._client.describe_index(collection, index_name))
        except StoreError:
            return {}
        return dict(description or {})

    def list_indexes(self, collection: str) -> list[str]:
        return [str(name) for name in self.call("list the indexes", lambda: self._client.list_indexes(collection))]

    def flush(self, collection: str) -> None:
        self._loaded(collection)
        self.call("flush", lambda: self._client.flush(collection))

    def drop(self, collection: str) -> None:
        self._load_on_first_use.discard(collection)
        if self.has_collection(collection):
            self.call("drop the collection", lambda: self._client.drop_collection(collection))

    def server_version(self) -> tuple[int, int]:
        """``(major, minor)`` of a Milvus server; Milvus Lite and unknown versions count as current."""
        if self._endpoint.embedded:
            return (99, 0)
        version = str(self.call("read the server version", self._client.get_server_version))
        match = re.match(r"v?(\d+)\.(\d+)", version)
        return (int(match.group(1)), int(match.group(2))) if match else (99, 0)

    def close(self) -> None:
        """Close the client and, for Milvus Lite, release the file for other processes (once)."""
        if self.closed:
            return
        self.closed = True
        try:
            with self.translate("close the connection"):
                self._client.close()
        finally:
            self._endpoint.closed()

    # -- internals ----------------------------------------------------------------------------

    def _connect(self, token: str | None, timeout: float | None) -> Any:
        from pymilvus import MilvusClient

        kwargs: dict[str, Any] = {"uri": self.uri}
        if token:
            kwargs["token"] = token
        if self.db_name:
            kwargs["db_name"] = self.db_name
        if timeout is not None:
            kwargs["timeout"] = timeout
        kwargs.update(self._endpoint.client_options())
        self._endpoint.before_connect()
        attempts = self._endpoint.connect_attempts()
        for attempt in range(1, attempts + 1):
            try:
                client = MilvusClient(**kwargs)
                break
            except Exception as error:
                if attempt == attempts:
                    self._connect_failed(error, token)
                logger.info(
                    "connecting to %s failed (%s); reconnecting", self.display_uri, _scrub_text(str(error), token)
                )
                time.sleep(_FIRST_BACKOFF_S)
        self._endpoint.connected()
        return client

    def _connect_failed(self, error: Exception, token: str | None) -> NoReturn:
        """Raise the clearest error for a connection that could not be made."""
        clearer = self._endpoint.connect_failure()
        if clearer is not None:
            raise clearer from None
        message = _scrub_text(getattr(error, "message", None) or str(error), token)
        raise StoreConnectionError(
            f"cannot connect to Milvus at {self.display_uri}: {type(error).__name__}: {message}"
        ) from _scrub(error, token)

    def _reload(self) -> None:
        """Ask a restarted server to load the collections (it reloads them by itself, this only hurries it)."""
        from pymilvus.exceptions import MilvusException

        for name in self._reload_names:
            try:
                self._client.load_collection(name)
            except MilvusException as error:
                logger.debug("reloading %s: %s", name, error)


# A query's rows come in segment (insertion) order, so a window cut at the limit is not the smallest
# keys, and paging past its largest key would skip rows. The query-iterator flag makes Milvus (2.3
# servers and Milvus Lite alike) return the smallest keys of the match, in order. It costs a 2.3.5
# server ~200 ms per request whatever the consistency level (a plain query of one page's 1,030 rows:
# ~9 ms), so a match that fits one window is read without it (see _by_primary_key).
_SMALLEST_KEYS = {"iterator": "True", "reduce_stop_for_best": "True"}


def _by_primary_key(
    where: str,
    primary: str,
    fetch: Callable[[str, bool], tuple[list[dict[str, Any]], T]],
    window: int | None = None,
    *,
    short_may_end: bool = False,
) -> Iterator[tuple[list[dict[str, Any]], T]]:
    """Every row matching ``where``: in one plain query when they fit a window, else a window at a time.

    ``fetch(where, ordered)`` answers at most ``window`` rows; ``ordered``: the window of the
    *smallest* matching keys (see ``_SMALLEST_KEYS``), and each window starts past the last key read.
    A plain query answers min(limit, matches) rows, so a short first answer is the whole match;
    a full one is dropped and the match paged through in key order.

    ``short_may_end``: a key-ordered window shorter than the limit is the last (Milvus Lite). A 2.3
    server under ``reduce_stop_for_best`` stops merging its segments' rows at the end of one
    segment's, so it answers short windows while more rows match (measured after an index build:
    958 of a page's 1,030 rows, or none of a page later in the window); there only an empty window ends.
    """
    limit = window or QUERY_WINDOW
    rows, extra = fetch(where, False)
    if len(rows) < limit:
        if rows:
            yield rows, extra
        return
    last: Any = None
    while True:
        bound = "" if last is None else f"{primary} > {_scalar_literal(last)}"
        rows, extra = fetch(join_clauses(where, bound), True)
        if not rows:
            return
        yield rows, extra
        if short_may_end and len(rows) < limit:
            return
        last = max(row[primary] for row in rows)


_text_check_lock = threading.Lock()


@contextmanager
def _unchecked_text() -> Iterator[None]:
    """pymilvus 3 without its client-side VARCHAR check, for rows whose text the caller has checked.

    The check (``entity_helper.convert_to_str_array``) is handed each row's string and loops over it
    a character at a time in Python: ~3 ms per 64 KB packed row, 80-85% of a packed insert (measured:
    352 rows of 32 ColPali pages took 1.0-1.4 s with it, 0.15-0.22 s without). The server checks the
    length again. One writer at a time holds the switch, so no other insert finds it left off.
    """
    try:
        from pymilvus.client import entity_helper
    except ImportError:  # pragma: no cover - another pymilvus layout: keep its check
        yield
        return
    if not hasattr(entity_helper, "CHECK_STR_ARRAY"):  # pragma: no cover - a pymilvus without the switch
        yield
        return
    with _text_check_lock:
        saved = entity_helper.CHECK_STR_ARRAY
        entity_helper.CHECK_STR_ARRAY = False
        try:
            yield
        finally:
            entity_helper.CHECK_STR_ARRAY = saved


def _consistency(level: str | None) -> dict[str, str]:
    """Request options for a consistency level (``None``: the collection's own, Strong)."""
    return {} if level is None else {"consistency_level": level}


def _columns(
    result: Any, fields: Sequence[str], vector_field: str
) -> tuple[list[dict[str, Any]], npt.NDArray[np.float32]] | None:
    """A query result's scalar fields as rows and its float vectors as one array, without decoding
    the vectors row by row (pymilvus's per-row decoding costs ~40 us a row: seconds for a few pages).

    Reads pymilvus's column buffers; returns ``None`` for any result that is not laid out as
    expected (another pymilvus version, nullable or dynamic fields), and the caller reads rows.
    """
    lazy = getattr(result, "_lazy_field_data", None)
    if not isinstance(result, list) or lazy is None:
        return None
    n = len(result)
    try:
        vector_column = None
        strings: dict[str, list[str]] = {}
        for field_data in lazy:
            if len(field_data.valid_data) or getattr(field_data, "is_dynamic", False):
                return None
            if field_data.field_name == vector_field and field_data.vectors.WhichOneof("data") == "float_vector":
                dim = int(field_data.vectors.dim)
                vector_column = np.asarray(field_data.vectors.float_vector.data, dtype=np.float32).reshape(n, dim)
            elif field_data.field_name in fields and field_data.scalars.WhichOneof("data") == "string_data":
                strings[field_data.field_name] = list(field_data.scalars.string_data.data)
            else:
                return None
        if vector_column is None or any(len(values) != n for values in strings.values()):
            return None
        rows = []
        for i in range(n):
            row = {name: value for name, value in list.__getitem__(result, i).items() if name in fields}
            for name, values in strings.items():
                row[name] = values[i]
            if len(row) != len(fields):
                return None
            rows.append(row)
    except (AttributeError, TypeError, ValueError):
        return None
    return rows, vector_column


def _scalar_literal(value: Any) -> str:
    if isinstance(value, str):
        return string_literal(value)  # a page id may hold line breaks, quotes, backslashes
    return str(int(value))


def in_ids(page_ids: Sequence[str]) -> str:
    """``page_id in [...]``, escaped."""
    return compile_filter({"page_id": {"$in": list(page_ids)}})


def batches(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def redact_uri(uri: str) -> str:
    """The uri without any ``user:password@`` part."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", uri)


def _looks_like_connection_error(error: Exception) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("unavailable", "connect", "deadline", "timeout", "closed"))


# What a Milvus server answers while it recovers from a restart: collections and shard leaders come
# back a few seconds after the server accepts connections again.
_RECOVERING = ("not loaded", "no available shard", "shard leader", "not ready", "channel not available", "recovering")


def _is_recovering(error: BaseException | None) -> bool:
    text = str(error).lower() if error is not None else ""
    return any(phrase in text for phrase in _RECOVERING)


def _scrub(error: BaseException, token: str | None) -> BaseException:
    """Replace an exception whose message contains the token by one that does not."""
    if token and token in str(error):
        return StoreConnectionError(_scrub_text(str(error), token))
    return error


def _scrub_text(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
