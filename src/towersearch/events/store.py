"""The search-event store of the live service: what each search showed, and what shoppers did next.

One SQLite database file (the standard library's :mod:`sqlite3`, no server, no extra dependency) holds::

    searches     one row per request: search_id (uuid4 hex, the handle given to the client), kind ("search" or
                 "suggest"), the query as typed and normalised, mode, session_id, timestamp, how many items it
                 showed
    impressions  what each request showed, one row per item with its 1-based position: product ids for kind
                 "search", the suggestion texts for kind "suggest" (the request's kind tells them apart)
    events       what shoppers did on a search's results: product_id, event (click, add_to_cart, purchase),
                 position, session_id, timestamp

``PRAGMA application_id`` marks the file as an event store and ``PRAGMA user_version`` holds its schema version
(:data:`SCHEMA_VERSION`); opening any other file, or a store written by a newer towersearch, raises
:class:`~towersearch.errors.ArtifactError` and leaves the file untouched.

Guarantees:

* **Durable.** The database runs in WAL mode with ``synchronous=FULL``: every write method is one transaction and
  returns only after its COMMIT, whose write-ahead log has then been flushed to disk, so an acknowledged write
  survives a crash of the process, the operating system or the machine (on a disk that honours flushes).
  ``durable=False`` uses ``synchronous=NORMAL`` instead (faster; a commit still survives a crash of the process,
  but the last ones may be lost when the machine loses power).
* **All or nothing.** :meth:`EventStore.add_events` checks the whole batch against the store and stores it in one
  transaction; one bad item raises :class:`EventError`, naming the item and the field, and nothing is stored.
* **Thread-safe.** Each thread gets its own connection (created on first use, closed by :meth:`EventStore.close`),
  so reads run concurrently: in WAL mode a reader never waits for the writer, and sees the last committed state.
  SQLite admits one writer at a time; writers of one process queue on a lock (fair hand-over, no polling), take the
  database's write lock with ``BEGIN IMMEDIATE`` (so no transaction ever has to upgrade a read lock and deadlock),
  and wait up to ``timeout`` seconds for a writer in another process (the CLI purging or exporting, say). One
  connection behind a lock would be simpler but would make every analytics read wait for the writes.

Timestamps are stored as ISO-8601 UTC text, ``YYYY-MM-DDTHH:MM:SSZ``, which sorts as time does; input in any
ISO-8601 form is converted (a time without an offset is taken as UTC). Time windows (``since`` inclusive,
``until`` exclusive) select searches by their own timestamp, with all their impressions and events.

The store is where the training log comes from: :meth:`EventStore.iter_log_events` and
:meth:`EventStore.export_log` give the search log format of :mod:`towersearch.data.log`, aggregated.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from towersearch.data.io import LoadReport, RowErrors
from towersearch.data.log import write_log
from towersearch.data.schema import POSITIVE_EVENTS, LogEvent, normalize_query
from towersearch.errors import ArtifactError, ConfigError, DataError

SCHEMA_VERSION = 1
"""The schema version this code writes and reads (``PRAGMA user_version``)."""
APPLICATION_ID = int.from_bytes(b"TSev", "big")
"""``PRAGMA application_id`` of an event store: the bytes ``TSev``."""
SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""
KINDS = ("search", "suggest")
"""What :meth:`EventStore.record_search` records: a search (products shown) or an autocomplete request."""
SHOPPER_EVENTS = POSITIVE_EVENTS
"""The events :meth:`EventStore.add_events` accepts: ``click``, ``add_to_cart``, ``purchase``."""
EVENT_FIELDS = ("search_id", "product_id", "event", "position", "session_id", "timestamp")
"""The keys an item of :meth:`EventStore.add_events` may have; the first three are required."""

_SCHEMA = (
    """CREATE TABLE searches (
        id INTEGER PRIMARY KEY,
        search_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('search', 'suggest')),
        query TEXT NOT NULL,
        query_norm TEXT NOT NULL,
        mode TEXT,
        session_id TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        shown INTEGER NOT NULL
    )""",
    "CREATE INDEX searches_kind_time ON searches (kind, timestamp)",
    """CREATE TABLE impressions (
        search INTEGER NOT NULL REFERENCES searches (id) ON DELETE CASCADE,
        position INTEGER NOT NULL CHECK (position >= 1),
        item TEXT NOT NULL,
        PRIMARY KEY (search, position)
    ) WITHOUT ROWID""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        search INTEGER NOT NULL REFERENCES searches (id) ON DELETE CASCADE,
        product_id TEXT NOT NULL,
        event TEXT NOT NULL CHECK (event IN ('click', 'add_to_cart', 'purchase')),
        position INTEGER CHECK (position >= 1),
        session_id TEXT NOT NULL,
        timestamp TEXT NOT NULL
    )""",
    "CREATE INDEX events_search ON events (search, event)",
)
_CHUNK = 500  # ids per IN (...) list, well below SQLite's limit on bound variables
_PURGE_BATCH = 5000  # searches deleted per transaction


class EventError(DataError):
    """An event or search the store cannot accept; the service answers it with 422.

    The message starts with where the problem is: ``events[3].search_id: unknown search 'ab12…'`` for an item of a
    batch, ``query: empty query`` for an argument.

    Args:
        message: What is wrong and, where useful, what is allowed.
        index: The 0-based index of the bad item in the batch, if the error is about one.
        field: The field (or argument) the error is about.
        reason: A short machine-readable key (``"unknown_search"``, ``"not_shown"``, ``"unknown_event"``, …).
    """

    def __init__(
        self, message: str, *, index: int | None = None, field: str | None = None, reason: str = "invalid"
    ) -> None:
        self.index = index
        super().__init__(message, field=field, reason=reason)

    def _format(self) -> str:
        where = f"events[{self.index}]" if self.index is not None else ""
        if self.field is not None:
            where = f"{where}.{self.field}" if where else self.field
        return f"{where}: {self.message}" if where else self.message


def is_event_store(path: str | Path) -> bool:
    """Whether ``path`` is a file that starts like an SQLite database, so it is read as an event store, not a table.

    This only reads the 16-byte header; :class:`EventStore` checks the rest when it opens the file.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def format_timestamp(moment: datetime) -> str:
    """``moment`` as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"


def parse_timestamp(value: str | datetime) -> str:
    """An ISO-8601 time (text or datetime) in the store's form, ``YYYY-MM-DDTHH:MM:SSZ`` in UTC.

    A time without an offset is taken as UTC; fractions of a second are dropped.

    Raises:
        ValueError: ``value`` is not an ISO-8601 time.
    """
    if isinstance(value, datetime):
        return format_timestamp(value)
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 time as text, got {type(value).__name__}")
    try:
        return format_timestamp(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):
        raise ValueError(f"{_show(value)} is not an ISO-8601 time such as 2026-01-31T12:00:00Z") from None


def parse_window(
    since: str | datetime | None = None, until: str | datetime | None = None
) -> tuple[str | None, str | None]:
    """A time window (``since`` inclusive, ``until`` exclusive; None = open) in the store's timestamp form.

    Raises:
        EventError: a bound is not an ISO-8601 time, or ``until`` is not after ``since``.
    """
    bounds = []
    for name, value in (("since", since), ("until", until)):
        try:
            bounds.append(None if value is None else parse_timestamp(value))
        except ValueError as exc:
            raise EventError(str(exc), field=name, reason="bad_timestamp") from None
    if bounds[0] is not None and bounds[1] is not None and bounds[1] <= bounds[0]:
        raise EventError(f"{bounds[1]} is not after since ({bounds[0]})", field="until", reason="bad_window")
    return bounds[0], bounds[1]


def window_condition(since: str | None, until: str | None, column: str = "s.timestamp") -> tuple[str, list[str]]:
    """SQL conditions (`` AND …``, or "") and their parameters selecting ``column`` within a parsed window."""
    sql, params = "", []
    if since is not None:
        sql += f" AND {column} >= ?"
        params.append(since)
    if until is not None:
        sql += f" AND {column} < ?"
        params.append(until)
    return sql, params


def _show(value: Any, limit: int = 40) -> str:
    """``repr(value)``, shortened to about ``limit`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class PendingSearch:
    """A checked search, with its ``search_id``, ready for :meth:`EventStore.write_searches`."""

    search_id: str
    kind: str
    query: str
    query_norm: str
    mode: str | None
    session_id: str
    timestamp: str
    items: tuple[str, ...]


def prepare_search(
    query: str,
    product_ids: Sequence[str],
    *,
    kind: str = "search",
    mode: str | None = None,
    session_id: str = "",
    timestamp: str | None = None,
) -> PendingSearch:
    """Check one search (or autocomplete request) and give it a new ``search_id``; nothing is written.

    Args:
        query: The query (or prefix) as typed; it is also kept normalised
            (:func:`~towersearch.data.schema.normalize_query`), which the log export uses.
        product_ids: What was shown, in order: product ids (kind "search"), suggestion texts (kind "suggest");
            empty when nothing was found.
        kind: ``"search"`` or ``"suggest"``.
        mode: The retrieval mode that answered (``"hybrid"``, ``"ranked"``, …), if any.
        session_id: The shopper's session.
        timestamp: ISO-8601 time of the request; now when None.

    Raises:
        EventError: an empty query, an unknown kind, an empty or non-text item, a bad mode, session or time.
    """
    if kind not in KINDS:
        raise EventError(f"unknown kind {_show(kind)}; allowed: {', '.join(KINDS)}", field="kind")
    if not isinstance(query, str):
        raise EventError(f"expected text, got {_show(query)}", field="query")
    normalized = normalize_query(query)
    if not normalized:
        raise EventError("empty query", field="query", reason="empty_query")
    if isinstance(product_ids, str | bytes) or not isinstance(product_ids, Sequence):
        raise EventError("must be a list of texts", field="product_ids")
    for position, item in enumerate(product_ids, start=1):
        if not isinstance(item, str) or not item.strip():
            raise EventError(f"expected a non-empty text, got {_show(item)}", field=f"product_ids[{position - 1}]")
    if mode is not None and not isinstance(mode, str):
        raise EventError(f"expected text, got {_show(mode)}", field="mode")
    if not isinstance(session_id, str):
        raise EventError(f"expected text, got {_show(session_id)}", field="session_id")
    try:
        stamp = format_timestamp(datetime.now(UTC)) if timestamp is None else parse_timestamp(timestamp)
    except ValueError as exc:
        raise EventError(str(exc), field="timestamp", reason="bad_timestamp") from None
    return PendingSearch(uuid.uuid4().hex, kind, query, normalized, mode, session_id, stamp, tuple(product_ids))


class EventStore:
    """The search-event store in one SQLite file (see the module docstring for tables and guarantees).

    Use it as a context manager, or call :meth:`close` when done; any thread may call any method.

    Args:
        path: The database file; created, with its folder, when missing (unless ``create`` is False). SQLite keeps
            two companion files beside it while it is open (``-wal``, ``-shm``).
        retention_days: How long :meth:`purge` keeps a search, in days; None keeps everything.
        durable: ``synchronous=FULL`` (True: a commit is on disk when a method returns) or ``NORMAL`` (False:
            faster, and a commit survives a crash of the process, but not necessarily of the machine).
        create: Create a new store when ``path`` does not exist; when False, a missing file is an error.
        timeout: Seconds a write waits for another process's write to finish before it fails.

    Raises:
        ArtifactError: ``path`` is not an event store (another file, another SQLite database), was written by a
            newer towersearch, or is missing and ``create`` is False.
        ConfigError: ``retention_days`` is not None or a whole number ≥ 1, or ``timeout`` is negative.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        retention_days: int | None = 90,
        durable: bool = True,
        create: bool = True,
        timeout: float = 30.0,
    ) -> None:
        if retention_days is not None and (
            isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1
        ):
            raise ConfigError(f"retention_days must be None or a whole number >= 1, got {retention_days!r}")
        if timeout < 0:
            raise ConfigError(f"timeout must be >= 0 seconds, got {timeout!r}")
        self.path = Path(path)
        self.retention_days = retention_days
        self.durable = durable
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the list of connections
        self._write_lock = threading.Lock()  # one writer at a time in this process
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._open(create)

    # -- connections -------------------------------------------------------------------------------------------

    def _open(self, create: bool) -> None:
        """Check the file, create the schema on first open, and keep the connection for this thread."""
        if self.path.is_dir():
            raise ArtifactError(f"{self.path} is a folder, not a towersearch event store")
        if self.path.exists():
            if self.path.stat().st_size > 0 and not is_event_store(self.path):
                raise ArtifactError(f"{self.path} is not a towersearch event store (not an SQLite database)")
        elif not create:
            raise ArtifactError(f"no event store at {self.path}")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            if not self._check(conn):
                # WAL before the schema, and only for a file this store owns: never switch someone else's database.
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise ArtifactError(f"{self.path}: SQLite could not switch to WAL mode (got {mode!r})")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if not self._check(conn):  # another process may have created it meanwhile
                        for statement in _SCHEMA:
                            conn.execute(statement)
                        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            else:
                conn.execute("PRAGMA journal_mode=WAL")  # a no-op unless someone switched the mode
            self._configure(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise ArtifactError(f"{self.path} cannot be opened as a towersearch event store: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._local.conn = conn
        self._connections.append(conn)

    def _check(self, conn: sqlite3.Connection) -> bool:
        """True for an event store this code reads, False for an empty database; raises for anything else."""
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise ArtifactError(
                    f"{self.path} is an event store of schema version {version}, written by a newer towersearch; "
                    f"this one reads up to version {SCHEMA_VERSION}: upgrade towersearch"
                )
            if version < 1:
                raise ArtifactError(f"{self.path} is an event store without a schema version: the file is damaged")
            return True
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app == 0 and version == 0 and objects == 0:
            return False
        raise ArtifactError(f"{self.path} is an SQLite database but not a towersearch event store")

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise ArtifactError(f"the event store {self.path} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            try:
                self._configure(conn)
            except sqlite3.Error as exc:
                conn.close()
                raise ArtifactError(f"{self.path}: {exc}") from exc
            with self._lock:
                if self._closed:
                    conn.close()
                    raise ArtifactError(f"the event store {self.path} is closed")
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed (and, when durable, on disk) when the block ends, rolled back on error."""
        conn = self._connection()
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise ArtifactError(f"event store {self.path}: cannot start a write: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise ArtifactError(f"event store {self.path}: {exc}") from exc
                raise

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction on this thread's connection: every query in the block sees the same committed state.

        For readers in this package (:mod:`towersearch.events.analytics`); writers are not blocked meanwhile.
        """
        conn = self._connection()
        if conn.in_transaction:  # nested: the outer block's snapshot
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        except sqlite3.Error as exc:
            raise ArtifactError(f"event store {self.path}: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection; call it once the threads using the store are done."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------------------------

    def record_search(
        self,
        query: str,
        product_ids: Sequence[str],
        *,
        kind: str = "search",
        mode: str | None = None,
        session_id: str = "",
        timestamp: str | None = None,
    ) -> str:
        """Store one search, or one autocomplete request, with what it showed; returns its new ``search_id``.

        Each shown item is an impression at its 1-based position. Clients send the ``search_id`` back with their
        events (:meth:`add_events`). The arguments are those of :func:`prepare_search`; the service records through
        a :class:`~towersearch.events.recorder.SearchRecorder`, which commits many searches at once.

        Raises:
            EventError: an empty query, an unknown kind, an empty or non-text item, a bad mode, session or time.
        """
        pending = prepare_search(query, product_ids, kind=kind, mode=mode, session_id=session_id, timestamp=timestamp)
        self.write_searches([pending])
        return pending.search_id

    def write_searches(self, searches: Sequence[PendingSearch]) -> None:
        """Store searches made by :func:`prepare_search`, in one transaction."""
        if not searches:
            return
        with self._transaction() as conn:
            for s in searches:
                row = conn.execute(
                    "INSERT INTO searches (search_id, kind, query, query_norm, mode, session_id, timestamp, shown)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (s.search_id, s.kind, s.query, s.query_norm, s.mode, s.session_id, s.timestamp, len(s.items)),
                ).lastrowid
                conn.executemany(
                    "INSERT INTO impressions (search, position, item) VALUES (?, ?, ?)",
                    [(row, position, item) for position, item in enumerate(s.items, start=1)],
                )

    def add_events(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Store a batch of shopper events, all or none; returns how many were stored.

        Each item is a mapping with ``search_id``, ``product_id`` and ``event`` (one of :data:`SHOPPER_EVENTS`),
        and optionally ``position`` (1-based; when absent, where the search showed the product), ``session_id``
        (when absent, the search's) and ``timestamp`` (ISO-8601; when absent, now). For a search of kind "search"
        the product must be one the search showed; events on a "suggest" request are not checked that way.

        Args:
            events: The batch, in the order the client sent it; error messages count its items from 0.

        Raises:
            EventError: the first bad item (``.index``) and field (``.field``): an unknown or missing field, an
                unknown search, a product that search did not show, an unknown event, a position that is not a
                whole number ≥ 1, a time that is not ISO-8601. Nothing of the batch is stored.
        """
        if isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
            raise EventError("expected a list of events", reason="bad_batch")
        items = list(events)
        if not items:
            return 0
        now = format_timestamp(datetime.now(UTC))
        ids = {i.get("search_id") for i in items if isinstance(i, Mapping) and isinstance(i.get("search_id"), str)}
        with self._transaction() as conn:  # checked inside the transaction: a purge cannot slip in between
            searches = self._lookup(conn, ids)
            rows = [_event_row(index, item, searches, now) for index, item in enumerate(items)]
            conn.executemany(
                "INSERT INTO events (search, product_id, event, position, session_id, timestamp)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    @staticmethod
    def _lookup(conn: sqlite3.Connection, search_ids: Iterable[str]) -> dict[str, _Search]:
        """The stored searches among ``search_ids``, each with where it showed each item."""
        found: dict[str, _Search] = {}
        by_row: dict[int, _Search] = {}
        wanted = sorted(search_ids)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row, search_id, kind, session_id in conn.execute(
                f"SELECT id, search_id, kind, session_id FROM searches WHERE search_id IN ({marks})", chunk
            ):
                found[search_id] = by_row[row] = _Search(row, kind, session_id, {})
        rows = sorted(by_row)
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row, item, position in conn.execute(
                f"SELECT search, item, MIN(position) FROM impressions WHERE search IN ({marks}) GROUP BY search, item",
                chunk,
            ):
                by_row[row].shown[item] = position
        return found

    def purge(self, now: datetime | None = None) -> int:
        """Delete the searches older than ``retention_days`` (with their impressions and events); returns how many.

        Nothing is deleted when ``retention_days`` is None. The store never purges by itself: call this from a
        scheduled job or at start-up. It deletes in transactions of a few thousand searches, so concurrent writes
        wait for one of those at most, and an interrupted purge leaves whole searches, never half of one.

        Args:
            now: The current time (a naive datetime is UTC); the real time when None.
        """
        if self.retention_days is None:
            return 0
        cutoff = format_timestamp((now or datetime.now(UTC)) - timedelta(days=self.retention_days))
        # In transactions of at most _PURGE_BATCH searches, so that the service's writes never wait long. kind IN
        # (...) lets SQLite use the (kind, timestamp) index; impressions and events go by ON DELETE CASCADE.
        sql = (
            "DELETE FROM searches WHERE id IN (SELECT id FROM searches"
            " WHERE kind IN ('search', 'suggest') AND timestamp < ? LIMIT ?)"
        )
        deleted = 0
        while True:
            with self._transaction() as conn:
                batch = conn.execute(sql, (cutoff, _PURGE_BATCH)).rowcount
            deleted += batch
            if batch < _PURGE_BATCH:
                return deleted

    # -- reading -----------------------------------------------------------------------------------------------

    def get_search(self, search_id: str) -> dict[str, Any] | None:
        """One stored search with what it showed and its events, as a JSON-ready dict; None when unknown."""
        with self.snapshot() as conn:
            row = conn.execute(
                "SELECT id, kind, query, query_norm, mode, session_id, timestamp FROM searches WHERE search_id = ?",
                (search_id,),
            ).fetchone()
            if row is None:
                return None
            items = conn.execute("SELECT item FROM impressions WHERE search = ? ORDER BY position", (row[0],))
            shown = [item for (item,) in items]
            names = ("product_id", "event", "position", "session_id", "timestamp")
            rows = conn.execute(f"SELECT {', '.join(names)} FROM events WHERE search = ? ORDER BY id", (row[0],))
            events = [dict(zip(names, values, strict=True)) for values in rows]
        keys = ("kind", "query", "normalized_query", "mode", "session_id", "timestamp")
        return {"search_id": search_id, **dict(zip(keys, row[1:], strict=True)), "shown": shown, "events": events}

    def counts(self) -> dict[str, int]:
        """How many searches, autocomplete requests, impressions and events the store holds."""
        with self.snapshot() as conn:
            kinds = dict(conn.execute("SELECT kind, count(*) FROM searches GROUP BY kind").fetchall())
            impressions = conn.execute("SELECT count(*) FROM impressions").fetchone()[0]
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return {
            "searches": kinds.get("search", 0),
            "suggests": kinds.get("suggest", 0),
            "impressions": impressions,
            "events": events,
        }

    def iter_log_events(
        self, *, since: str | datetime | None = None, until: str | datetime | None = None
    ) -> Iterator[LogEvent]:
        """The search log of the searches in a time window, aggregated, as :class:`~towersearch.data.LogEvent`.

        One event per (normalised query, product_id, event) with ``count`` = how often it happened: impressions
        from what kind "search" searches showed, click / add_to_cart / purchase from the events on them.
        Autocomplete requests are left out (what they showed are texts, not products). The rows carry no position,
        session or time, since each stands for many; they come sorted by query, product and event (impression,
        click, add_to_cart, purchase).

        Args:
            since: Only searches at or after this time (ISO-8601); None = from the start.
            until: Only searches before this time; None = up to now.

        Raises:
            EventError: a bound is not an ISO-8601 time, or ``until`` is not after ``since``.
        """
        condition, params = window_condition(*parse_window(since, until))
        sql = f"""
            SELECT s.query_norm, i.item, 'impression', 0, COUNT(*)
            FROM searches s JOIN impressions i ON i.search = s.id
            WHERE s.kind = 'search'{condition}
            GROUP BY s.query_norm, i.item
            UNION ALL
            SELECT s.query_norm, e.product_id, e.event,
                CASE e.event WHEN 'click' THEN 1 WHEN 'add_to_cart' THEN 2 ELSE 3 END, COUNT(*)
            FROM searches s JOIN events e ON e.search = s.id
            WHERE s.kind = 'search'{condition}
            GROUP BY s.query_norm, e.product_id, e.event
            ORDER BY 1, 2, 4
        """
        with self.snapshot() as conn:
            rows = conn.execute(sql, params + params).fetchall()  # read at once: no read transaction left open
        return (LogEvent(query=q, product_id=p, event=e, count=n) for q, p, e, _, n in rows)

    def export_log(
        self, out_path: str | Path, *, since: str | datetime | None = None, until: str | datetime | None = None
    ) -> int:
        """Write the aggregated search log (:meth:`iter_log_events`) atomically; returns the number of rows.

        The file's format follows its suffix (CSV, TSV, JSON Lines, Parquet), as
        :func:`~towersearch.data.log.write_log` writes it; :func:`~towersearch.data.log.load_log` reads it back.

        Raises:
            EventError: a bad window (see :meth:`iter_log_events`).
            DataError: an unknown file suffix.
        """
        return write_log(self.iter_log_events(since=since, until=until), out_path)


class _Search:
    """A stored search, as :meth:`EventStore.add_events` checks events against it."""

    __slots__ = ("row", "kind", "session_id", "shown")

    def __init__(self, row: int, kind: str, session_id: str, shown: dict[str, int]) -> None:
        self.row = row
        self.kind = kind
        self.session_id = session_id
        self.shown = shown  # item -> first position


def _event_row(index: int, item: Any, searches: Mapping[str, _Search], now: str) -> tuple[Any, ...]:
    """The ``events`` row of one batch item, or an :class:`EventError` naming its first bad field."""
    if not isinstance(item, Mapping):
        raise EventError(f"expected an object with {', '.join(EVENT_FIELDS[:3])}", index=index, reason="bad_item")
    unknown = sorted(str(key) for key in item if key not in EVENT_FIELDS)
    if unknown:
        raise EventError(
            f"unknown field; allowed: {', '.join(EVENT_FIELDS)}", index=index, field=unknown[0], reason="unknown_field"
        )

    def required(field: str) -> str:
        value = item.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise EventError("missing", index=index, field=field, reason="missing_field")
        if not isinstance(value, str):
            raise EventError(f"expected text, got {_show(value)}", index=index, field=field, reason="bad_type")
        return value

    search_id = required("search_id")
    search = searches.get(search_id)
    if search is None:
        raise EventError(f"unknown search {_show(search_id)}", index=index, field="search_id", reason="unknown_search")
    product_id = required("product_id")
    if search.kind == "search" and product_id not in search.shown:
        raise EventError(
            f"product {_show(product_id)} was not shown by search {_show(search_id)}",
            index=index,
            field="product_id",
            reason="not_shown",
        )
    event = required("event")
    if event not in SHOPPER_EVENTS:
        hint = " (impressions are recorded with the search)" if event == "impression" else ""
        raise EventError(
            f"unknown event {_show(event)}; allowed: {', '.join(SHOPPER_EVENTS)}{hint}",
            index=index,
            field="event",
            reason="unknown_event",
        )
    position = item.get("position")
    if position is None:
        position = search.shown.get(product_id)
    elif isinstance(position, bool) or not isinstance(position, int) or position < 1:
        raise EventError(
            f"expected a whole number >= 1, got {_show(position)}", index=index, field="position", reason="bad_position"
        )
    session_id = item.get("session_id")
    if session_id is None:
        session_id = search.session_id
    elif not isinstance(session_id, str):
        raise EventError(f"expected text, got {_show(session_id)}", index=index, field="session_id", reason="bad_type")
    timestamp = item.get("timestamp")
    try:
        timestamp = now if timestamp is None else parse_timestamp(timestamp)
    except ValueError as exc:
        raise EventError(str(exc), index=index, field="timestamp", reason="bad_timestamp") from None
    return (search.row, product_id, event, position, session_id, timestamp)


def load_store_log(
    path: str | Path, *, product_ids: Container[str] | None = None, skip_bad_rows: bool = False
) -> tuple[list[LogEvent], LoadReport]:
    """The search log held by the event store at ``path``, as :func:`~towersearch.data.load_log` reads a log file.

    Raises:
        ArtifactError: ``path`` is not an event store.
        DataError: (without ``skip_bad_rows``) an event about a product the catalogue no longer has.
    """
    report = LoadReport(path=str(path))
    errors = RowErrors(report, skip_bad_rows)
    events: list[LogEvent] = []
    with EventStore(path, create=False) as store:
        for event in store.iter_log_events():
            report.rows += 1
            if product_ids is not None and event.product_id not in product_ids:
                errors(
                    DataError(
                        f"unknown product {event.product_id!r}: not in the catalogue (removed since it was shown?); "
                        "--skip-bad-rows leaves such events out",
                        path=path,
                        field="product_id",
                        reason="unknown_product",
                    )
                )
                continue
            events.append(event)
    report.loaded = len(events)
    return events, report
