"""ClickHouse trend store through clickhouse-connect: a server over HTTP(S), or chDB embedded
in this process (``chdb://`` URLs), with one set of SQL for both.

Threading model. clickhouse-connect's clients are synchronous, so every call runs in an anyio
worker thread (works under asyncio and trio). The store owns two clients, a *writer* and a
*reader*, each behind its own ``CapacityLimiter(1)``: an API query never waits behind an insert
on the same handle. With chDB both handles share the process's one engine (chDB allows one
data directory per process; opening another directory while this store is open fails with a
:class:`StorageError`). Server URLs use ``trends.database``, not a path in the URL.

Idempotency. ``write_results`` drops in-batch duplicates, asks ``trend_seen`` which of the
batch's ids are already counted, and inserts only the others in one INSERT (the two
materialised views update the hourly rollup and ``trend_seen`` from that same insert). So a
replayed ``request_id`` is skipped. The check and the insert are not one transaction: two
writers inserting the same new id at the same instant both count it (docs/trends.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, Self, TypeVar
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread
import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sentiflow.stores.clickhouse.schema import (
    MIGRATIONS,
    SCHEMA_TABLE,
    Migration,
    check_database_name,
    pending,
)
from sentiflow.stores.errors import (
    StorageClosedError,
    StorageError,
    StorageFullError,
    UnsupportedStoreURLError,
)
from sentiflow.stores.records import ResultRecord, Sentiment
from sentiflow.stores.trends import SENTIMENTS, TrendQuery, TrendSeries, Window, zero_filled

T = TypeVar("T")

EVENT_COLUMNS: Final = ("request_id", "ts", "source", "language", "topic", "sentiment",
                        "confidence", "model_used", "tier", "needs_review")
#: Ids per look-up in ``trend_seen`` (bounded so a query's parameters stay small on HTTP).
SEEN_CHUNK: Final = 2000

_BUCKET_SQL: Final[dict[Window, str]] = {
    "hourly": "{hour}",
    "daily": "toStartOfDay({hour})",
    "weekly": "toDateTime(toMonday({hour}), 'UTC')",
}
_MAX_ERROR_CHARS: Final = 400
_NO_SPACE = re.compile(r"NOT_ENOUGH_SPACE|No space left on device", re.IGNORECASE)


def client_factory(url: str) -> Callable[[], Client]:
    """A function that opens one clickhouse-connect client for ``url``.

    ``chdb://memory`` / ``chdb:///:memory:`` is an in-memory engine, ``chdb:///abs/dir`` (any
    number of leading slashes) a data directory; ``clickhouse://``, ``http://`` and
    ``https://`` URLs go to a server over HTTP (``clickhouse://`` means http, port 8123).
    """
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        location = parts.netloc or ("/" + parts.path.lstrip("/"))
        if location in ("memory", ":memory:", "/:memory:", "/"):
            return lambda: clickhouse_connect.get_client(interface="chdb")
        if not location.startswith("/"):
            raise UnsupportedStoreURLError(
                f"chdb URL must name an absolute directory or memory, got {url!r}")
        return lambda: clickhouse_connect.get_client(interface="chdb", path=location)
    if parts.scheme in ("clickhouse", "http", "https"):
        secure = parts.scheme == "https"
        host = parts.hostname or "localhost"
        port = parts.port or (8443 if secure else 8123)
        user = unquote(parts.username) if parts.username else "default"
        password = unquote(parts.password) if parts.password else ""
        return lambda: clickhouse_connect.get_client(
            host=host, port=port, username=user, password=password, secure=secure)
    raise UnsupportedStoreURLError(f"no trend store for URL scheme {parts.scheme!r}")


def storage_error(exc: BaseException) -> StorageError:
    """The storage-layer error for a driver / OS failure."""
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > _MAX_ERROR_CHARS:  # server errors echo the whole query, ids included
        text = text[:_MAX_ERROR_CHARS] + " …"
    return StorageFullError(text) if _NO_SPACE.search(text) else StorageError(text)


def event_row(record: ResultRecord) -> list[Any]:
    """The ``trend_events`` row of ``record`` (columns in :data:`EVENT_COLUMNS` order)."""
    request, result = record.request, record.result
    return [result.request_id, request.received_at, request.source, result.language_detected,
            request.topic or "", result.sentiment, float(result.confidence), result.model_used,
            result.tier, bool(result.needs_review)]


class ClickHouseTrendStore:
    """:class:`~sentiflow.stores.trends.TrendStore` on ClickHouse / chDB. Build with
    :meth:`open`."""

    def __init__(self, writer: Client, reader: Client, database: str) -> None:
        self._writer, self._reader, self._db = writer, reader, database
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)
        self._closed = False

    @property
    def database(self) -> str:
        return self._db

    @classmethod
    async def open(cls, url: str, *, database: str = "sentiflow",
                   migrations: Sequence[Migration] = MIGRATIONS) -> Self:
        """Connect, create the database if needed and apply pending ``migrations`` (all of
        them; tests pass a prefix to build an older schema)."""
        try:
            db = check_database_name(database)
        except ValueError as exc:
            raise UnsupportedStoreURLError(str(exc)) from None
        connect = client_factory(url)

        def start() -> tuple[Client, Client]:
            writer = connect()
            try:
                migrate(writer, db, migrations)
                return writer, connect()
            except BaseException:
                writer.close()
                raise

        try:
            writer, reader = await anyio.to_thread.run_sync(start)
        except (ClickHouseError, OSError) as exc:
            raise storage_error(exc) from exc
        return cls(writer, reader, db)

    async def _run(self, fn: Callable[[], T], limiter: anyio.CapacityLimiter) -> T:
        if self._closed:
            raise StorageClosedError("trend store is closed")

        def guarded() -> T:
            if self._closed:
                raise StorageClosedError("trend store is closed")
            try:
                return fn()
            except (ClickHouseError, OSError) as exc:
                raise storage_error(exc) from exc

        return await anyio.to_thread.run_sync(guarded, limiter=limiter)

    async def write_results(self, records: Sequence[ResultRecord], *,
                            dedup: bool = True) -> int:
        """Insert the records not counted yet; ``dedup=False`` skips the ``trend_seen``
        look-up (benchmarks measure its cost that way; a replay then counts twice)."""
        if not records:
            return 0
        return await self._run(lambda: self._write(records, dedup), self._write_limiter)

    def _write(self, records: Sequence[ResultRecord], dedup: bool) -> int:
        latest = {r.request_id: r for r in records}  # in-batch replays: the last one counts
        seen = self._already_counted(list(latest)) if dedup else set()
        rows = [event_row(r) for rid, r in latest.items() if rid not in seen]
        if rows:
            self._writer.insert(f"{self._db}.trend_events", rows, column_names=EVENT_COLUMNS)
        return len(rows)

    def _already_counted(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), SEEN_CHUNK):
            chunk = ids[i:i + SEEN_CHUNK]
            result = self._writer.query(
                f"SELECT request_id FROM {self._db}.trend_seen "
                f"WHERE request_id IN {{ids:Array(String)}}", parameters={"ids": chunk})
            found.update(str(row[0]) for row in result.result_rows)
        return found

    async def query(self, query: TrendQuery, *, from_raw: bool = False) -> TrendSeries:
        """Answer ``query`` from the hourly rollup (``from_raw=True``: by grouping the raw
        events instead, the slow path the rollup exists to avoid; benchmarks compare them)."""
        sql, params = self.query_sql(query, from_raw=from_raw)
        rows = await self._run(lambda: self._reader.query(sql, parameters=params).result_rows,
                               self._read_limiter)
        typed: list[tuple[datetime, Sentiment, int, float]] = [
            (row[0], _sentiment(row[1]), int(row[2]), float(row[3])) for row in rows]
        return zero_filled(query, typed)

    def query_sql(self, query: TrendQuery, *, from_raw: bool = False) -> tuple[str, dict[str, Any]]:
        """The SQL and parameters answering ``query`` (public for EXPLAIN and benchmarks)."""
        if from_raw:
            table, time_col = "trend_events", "ts"
            hour, events, conf = "toStartOfHour(ts)", "count()", "sum(toFloat64(confidence))"
        else:
            table, time_col = "trend_hourly", "hour"
            hour, events, conf = "hour", "sum(events)", "sum(confidence_sum)"
        bucket = _BUCKET_SQL[query.window].format(hour=hour)
        where = [f"{time_col} >= {{start:DateTime('UTC')}}",
                 f"{time_col} < {{end:DateTime('UTC')}}"]
        params: dict[str, Any] = {"start": query.start, "end": query.end}
        for column in ("source", "language", "topic"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = {{{column}:String}}")
                params[column] = value
        sql = (f"SELECT {bucket} AS bucket, sentiment, {events} AS n, {conf} AS c "
               f"FROM {self._db}.{table} WHERE {' AND '.join(where)} "
               f"GROUP BY bucket, sentiment ORDER BY bucket")
        return sql, params

    async def explain(self, query: TrendQuery) -> str:
        """The engine's plan for answering ``query`` (``EXPLAIN indexes = 1``): which table or
        projection it reads and how many granules its indexes leave."""
        sql, params = self.query_sql(query)
        rows = await self._run(
            lambda: self._reader.query(f"EXPLAIN indexes = 1 {sql}", parameters=params)
            .result_rows, self._read_limiter)
        return "\n".join(str(row[0]) for row in rows)

    async def execute(self, sql: str) -> None:
        """Run one statement on the writer handle (maintenance, bulk loads in benchmarks)."""
        await self._run(lambda: self._writer.command(sql), self._write_limiter)

    async def row_count(self, table: str) -> int:
        """Rows in one of this store's tables (``trend_events``, ``trend_hourly``, …)."""
        check_database_name(table)
        return int(await self._run(
            lambda: self._reader.query(f"SELECT count() FROM {self._db}.{table}")
            .result_rows[0][0], self._read_limiter))

    async def applied_migrations(self) -> list[tuple[int, str]]:
        """``(version, name)`` of every applied schema migration, in order."""
        rows = await self._run(
            lambda: self._reader.query(f"SELECT version, name FROM {self._db}.trend_schema "
                                       "ORDER BY version").result_rows, self._read_limiter)
        return [(int(v), str(n)) for v, n in rows]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await anyio.to_thread.run_sync(self._reader.close, limiter=self._read_limiter)
        await anyio.to_thread.run_sync(self._writer.close, limiter=self._write_limiter)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def migrate(client: Client, database: str,
            migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Create ``database`` and apply the pending migrations in order; the versions applied."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(SCHEMA_TABLE.format(db=database))
    applied = {int(row[0]) for row in
               client.query(f"SELECT version FROM {database}.trend_schema").result_rows}
    done = []
    for migration in pending(applied, migrations):
        for statement in migration.statements:
            client.command(statement.format(db=database))
        client.insert(f"{database}.trend_schema", [[migration.version, migration.name]],
                      column_names=("version", "name"))
        done.append(migration.version)
    return done


def _sentiment(value: object) -> Sentiment:
    for label in SENTIMENTS:
        if value == label:
            return label
    raise StorageError(f"unexpected sentiment {value!r} in the trend store")
