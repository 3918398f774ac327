"""The PostgreSQL result store: an asyncpg connection pool behind the ``ResultStore`` contract.

Same semantics as :class:`~sentiflow.stores.sqlite.SQLiteResultStore` (see ``interface.py``):
idempotent upserts on ``request_id`` (last write wins, aspects replaced), one transaction per
call, return == committed with ``synchronous_commit`` as the server has it (``on`` by default:
durable on disk), errors surfaced as :mod:`sentiflow.stores.errors` types only.

Connection loss. Every call runs in its own transaction on a pooled connection. If the
connection turns out to be dead (the server restarted, a proxy dropped it) *before* COMMIT was
sent, nothing can have been committed, so the call expires the whole pool (the other idle
connections are as dead) and runs once more on a fresh connection: after a PostgreSQL restart the
node carries on without a single failed call. A failure while COMMIT is in flight is ambiguous and
surfaces as :class:`StorageError` (the writer retries; upserts make that safe). While the server
is down each call fails fast with :class:`StorageError`; the pool reconnects on the next call
once it is back.

asyncpg needs asyncio: :meth:`PostgresResultStore.open` refuses to run under trio.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar

import anyio
import asyncpg
import sniffio

from sentiflow.stores.errors import (
    BatchNotFoundError,
    DuplicateBatchError,
    StorageClosedError,
    StorageError,
    StorageFullError,
    UnsupportedStoreURLError,
)
from sentiflow.stores.pg_bulk import (
    ATTEMPT_COLUMNS,
    BATCH_COLUMNS,
    ITEM_COLUMNS,
    RESULT_COLUMNS,
    SELECT_ASPECT,
    SELECT_RESULT,
    Conn,
    WriteMethod,
    aspect_from_row,
    aspect_row,
    batch_rows,
    job_from_row,
    record_from_row,
    replace_aspects,
    result_row,
    upsert_results,
    utc,
)
from sentiflow.stores.pg_drift import PgDriftMixin
from sentiflow.stores.pg_migrations import apply_migrations
from sentiflow.stores.pg_review import PgReviewMixin
from sentiflow.stores.pg_url import redact_url
from sentiflow.stores.records import (
    AspectSentiment,
    BatchJob,
    BatchState,
    BatchView,
    ClassificationRequest,
    ResultRecord,
    WebhookAttempt,
    webhook_state,
)

T = TypeVar("T")
Body = Callable[[Conn], Awaitable[T]]
Isolation = Literal["read_committed", "repeatable_read"]

log = logging.getLogger("sentiflow.stores.postgres")

#: SQLSTATE classes / codes meaning "this connection (or the server) is gone", not "bad SQL".
_CONNECTION_SQLSTATES: Final = ("08", "57P01", "57P02", "57P03")
_DISK_FULL: Final = "53100"
#: deadlock_detected, serialization_failure: the server rolled the transaction back; retry.
_CONFLICTS: Final = ("40P01", "40001")
_CONFLICT_RETRIES: Final = 3

_SELECT_RESULT_WITH_ASPECTS: Final = (
    f"SELECT {SELECT_RESULT}, {SELECT_ASPECT} FROM results r "
    "LEFT JOIN aspects a ON a.result_id = r.request_id "
    "WHERE r.request_id = $1 ORDER BY a.aspect_id")
_SELECT_BATCH_RESULTS: Final = (
    f"SELECT {SELECT_RESULT}, {SELECT_ASPECT}, b.position FROM batch_items b "
    "JOIN results r ON r.request_id = b.request_id "
    "LEFT JOIN aspects a ON a.result_id = r.request_id "
    "WHERE b.batch_id = $1 ORDER BY b.position, a.aspect_id")
#: Where the aspect columns start in the joined rows above (after the result columns).
_ASPECT_AT: Final = len(RESULT_COLUMNS)


def _is_connection_error(exc: BaseException) -> bool:
    """The connection or the server is gone (a fresh connection may work), as opposed to a
    statement error or a timeout (the server is there but slow)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith(_CONNECTION_SQLSTATES)
    return isinstance(exc, (asyncpg.ConnectionDoesNotExistError, OSError))


def _storage_error(exc: BaseException, what: str) -> StorageError:
    if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate == _DISK_FULL:
        return StorageFullError(f"{what}: storage full ({exc})")
    if _is_connection_error(exc):
        return StorageError(f"{what}: database unavailable ({type(exc).__name__}: {exc})")
    if isinstance(exc, TimeoutError):
        return StorageError(f"{what}: timed out waiting for the database")
    return StorageError(f"{what}: {type(exc).__name__}: {exc}")


_DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError,
                         asyncpg.InternalClientError, OSError, TimeoutError)


async def _reset_connection(conn: Conn) -> None:
    """Pool reset on release: only end a transaction a cancelled call left open.

    asyncpg's default reset (``RESET ALL``, ``UNLISTEN *``, …) costs a round trip per call; this
    store never changes session state on pooled connections, so rolling back is all it needs.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresResultStore(PgDriftMixin, PgReviewMixin):
    """:class:`~sentiflow.stores.interface.ResultStore` on PostgreSQL. Use :meth:`open`.

    The core (results, batches, webhooks) is here; each later subsystem's methods live in a
    mixin of its own (``pg_review``, ``pg_drift``) that runs its queries through :meth:`_run`.
    """

    def __init__(self, url: str, pool: asyncpg.Pool, *,
                 write_method: WriteMethod = "unnest") -> None:
        self.url = redact_url(url)
        self._pool = pool
        self._write_method: WriteMethod = write_method
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = 10, connect_timeout_s: float = 10.0,
        command_timeout_s: float | None = 30.0, write_method: WriteMethod = "unnest",
    ) -> PostgresResultStore:
        """Connect to ``url`` (``postgresql://user@host:port/db``), apply pending migrations
        under an advisory lock, and open a pool of up to ``pool_size`` connections."""
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = "none"
        if library != "asyncio":
            raise UnsupportedStoreURLError(
                f"the PostgreSQL store needs the asyncio event loop (asyncpg), not {library}")
        shown = redact_url(url)
        try:
            conn = await asyncpg.connect(url, timeout=connect_timeout_s)
        except ValueError as exc:  # asyncpg's DSN parser
            raise UnsupportedStoreURLError(f"bad PostgreSQL URL {shown}: {exc}") from None
        except _DRIVER_ERRORS as exc:
            raise _storage_error(exc, f"connecting to {shown}") from exc
        try:
            applied = await apply_migrations(conn)
        except StorageError:
            raise
        except _DRIVER_ERRORS as exc:
            raise _storage_error(exc, f"migrating {shown}") from exc
        finally:
            await conn.close()
        if applied:
            log.info("applied migrations %s to %s", applied, shown)
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=pool_size, timeout=connect_timeout_s,
                command_timeout=command_timeout_s, reset=_reset_connection,
                server_settings={"application_name": "sentiflow"})
        except _DRIVER_ERRORS as exc:
            raise _storage_error(exc, f"connecting to {shown}") from exc
        return cls(url, pool, write_method=write_method)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(self, what: str, body: Body[T], *, readonly: bool = False,
                   isolation: Isolation = "read_committed") -> T:
        """``body`` in one transaction, retried when the server rolled it back whole and a new
        try can succeed: once on a fresh connection if the connection was found dead before
        COMMIT was sent (nothing can have been written then), and up to
        ``_CONFLICT_RETRIES`` times after a deadlock or serialization failure."""
        conflicts = 0
        for attempt in range(1, _CONFLICT_RETRIES + 3):
            if self._closed:
                raise StorageClosedError(f"{what}: store is closed")
            committing = False
            try:
                async with self._pool.acquire() as conn:
                    tx = conn.transaction(isolation=isolation, readonly=readonly)
                    await tx.start()
                    try:
                        value = await body(conn)
                    except BaseException:
                        if not conn.is_closed():
                            await tx.rollback()
                        raise
                    committing = True
                    await tx.commit()
                    return value
            except _DRIVER_ERRORS as exc:
                if self._closed:
                    raise StorageClosedError(f"{what}: store is closed") from exc
                if attempt == 1 and not committing and _is_connection_error(exc):
                    log.warning("%s: connection lost (%s); retrying on a fresh connection",
                                what, exc)
                    await self._pool.expire_connections()
                    continue
                if (isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _CONFLICTS
                        and conflicts < _CONFLICT_RETRIES):
                    conflicts += 1
                    await anyio.sleep(random.uniform(0, 0.01 * conflicts))
                    continue
                raise _storage_error(exc, what) from exc
        raise StorageError(f"{what}: gave up after {_CONFLICT_RETRIES + 2} attempts")

    # -- results -----------------------------------------------------------------------------

    async def write_results(self, batch: Sequence[ResultRecord]) -> None:
        if not batch:
            return
        # Encode (and validate) every record before touching the database; the last record of
        # a request_id wins (ON CONFLICT DO UPDATE must not touch a row twice in one statement).
        latest: dict[str, tuple[tuple[Any, ...], ResultRecord]] = {}
        for rec in batch:
            row = result_row(rec)
            latest[row[0]] = (row, rec)
        # Rows go in request_id order (byte order, as the "C" collation): concurrent writers of
        # overlapping batches then lock rows in one order and cannot deadlock each other.
        ordered = sorted(latest.items())
        rows = [row for _, (row, _rec) in ordered]
        ids = [rid for rid, _ in ordered]
        aspects = sorted(aspect_row(a) for _, (_row, rec) in ordered for a in rec.result.aspects)

        async def body(conn: Conn) -> None:
            await upsert_results(conn, rows, self._write_method)
            await replace_aspects(conn, ids, aspects)

        await self._run(f"writing {len(batch)} results", body)

    async def get_result(self, request_id: str) -> ResultRecord | None:
        async def body(conn: Conn) -> ResultRecord | None:
            rows = await conn.fetch(_SELECT_RESULT_WITH_ASPECTS, request_id)
            records = _records_from_joined(rows)
            return records[0] if records else None

        return await self._run(f"reading result {request_id!r}", body, readonly=True)

    # -- batches -----------------------------------------------------------------------------

    async def create_batch(self, job: BatchJob, requests: Sequence[ClassificationRequest]) -> None:
        if len(requests) != job.count:
            raise ValueError(f"batch {job.batch_id!r}: count={job.count} but "
                             f"{len(requests)} requests given")
        job_row, items = batch_rows(job, requests)

        async def body(conn: Conn) -> None:
            status = await conn.execute(
                f"INSERT INTO batches ({', '.join(BATCH_COLUMNS)}) VALUES ("
                + ", ".join(f"${i}" for i in range(1, len(BATCH_COLUMNS) + 1))
                + ") ON CONFLICT (batch_id) DO NOTHING", *job_row)
            if status.endswith(" 0"):
                raise DuplicateBatchError(f"batch {job.batch_id!r} already exists")
            if items:
                await conn.copy_records_to_table("batch_items", records=items,
                                                 columns=ITEM_COLUMNS)

        await self._run(f"creating batch {job.batch_id!r}", body)

    async def update_batch_progress(
        self, batch_id: str, *, done: int, status: BatchState | None = None,
        error: str | None = None,
    ) -> None:
        if done < 0:
            raise ValueError("done must be >= 0")
        now = datetime.now(UTC)

        async def body(conn: Conn) -> None:
            result = await conn.execute(
                "UPDATE batches SET done = LEAST(count, GREATEST(done, $1)), "
                "status = COALESCE($2, status), error = COALESCE($3, error), updated_at = $4 "
                "WHERE batch_id = $5", done, status, error, now, batch_id)
            if result.endswith(" 0"):
                raise BatchNotFoundError(f"no batch {batch_id!r}")

        await self._run(f"updating batch {batch_id!r}", body)

    async def get_batch(self, batch_id: str) -> BatchView | None:
        async def body(conn: Conn) -> BatchView | None:
            row = await conn.fetchrow(
                f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches WHERE batch_id = $1", batch_id)
            if row is None:
                return None
            job = job_from_row(row)
            results = _records_from_joined(await conn.fetch(_SELECT_BATCH_RESULTS, batch_id))
            attempts = [
                WebhookAttempt(batch_id=r[0], chunk_index=r[1], chunk_count=r[2], attempt=r[3],
                               outcome=r[4], status_code=r[5], error=r[6], duration_ms=r[7],
                               at=r[8])
                for r in await conn.fetch(
                    f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM webhook_attempts "
                    "WHERE batch_id = $1 ORDER BY id", batch_id)
            ]
            return BatchView(job=job, results=tuple(results),
                             webhook=webhook_state(job, attempts))

        # One snapshot for the three queries: the view is consistent with itself.
        return await self._run(f"reading batch {batch_id!r}", body, readonly=True,
                               isolation="repeatable_read")

    async def pending_requests(self, batch_id: str) -> list[ClassificationRequest]:
        async def body(conn: Conn) -> list[ClassificationRequest]:
            rows = await conn.fetch(
                "SELECT b.request_id, b.text, b.language, b.source, b.topic, b.priority, "
                "b.aspects, b.received_at FROM batch_items b "
                "WHERE b.batch_id = $1 AND NOT EXISTS "
                "(SELECT 1 FROM results r WHERE r.request_id = b.request_id) "
                "ORDER BY b.position", batch_id)
            return [ClassificationRequest(request_id=r[0], text=r[1], language=r[2], source=r[3],
                                          topic=r[4], priority=r[5], aspects=r[6],
                                          received_at=r[7]) for r in rows]

        return await self._run(f"reading pending items of {batch_id!r}", body, readonly=True)

    async def unfinished_batches(self) -> list[BatchJob]:
        async def body(conn: Conn) -> list[BatchJob]:
            return [job_from_row(r) for r in await conn.fetch(
                f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches "
                "WHERE status IN ('queued', 'running') ORDER BY created_at")]

        return await self._run("listing unfinished batches", body, readonly=True)

    async def record_webhook_attempt(self, attempt: WebhookAttempt) -> None:
        row = (attempt.batch_id, attempt.chunk_index, attempt.chunk_count, attempt.attempt,
               attempt.outcome, attempt.status_code, attempt.error, attempt.duration_ms,
               utc(attempt.at))

        async def body(conn: Conn) -> None:
            await conn.execute(
                f"INSERT INTO webhook_attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ("
                + ", ".join(f"${i}" for i in range(1, len(ATTEMPT_COLUMNS) + 1)) + ")", *row)

        await self._run(f"recording webhook attempt for {attempt.batch_id!r}", body)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Let in-flight calls finish (bounded), then drop whatever is left.
        with anyio.move_on_after(10):
            await self._pool.close()
            return
        self._pool.terminate()


def _records_from_joined(rows: Sequence[asyncpg.Record]) -> list[ResultRecord]:
    """Group ``results LEFT JOIN aspects`` rows into records.

    Rows arrive ordered by result; a result's rows are consecutive and share their key: the
    column after the aspect columns when present (the batch position: a batch may list one
    request_id twice), else the request_id.
    """
    end = _ASPECT_AT + 7
    grouped: list[tuple[Any, Any, list[AspectSentiment]]] = []
    for row in rows:
        key = row[end] if len(row) > end else row[0]
        if not grouped or grouped[-1][0] != key:
            grouped.append((key, row, []))
        if row[_ASPECT_AT + 1] is not None:  # aspect_id: NULL when the LEFT JOIN found none
            grouped[-1][2].append(aspect_from_row(row[_ASPECT_AT:end]))
    return [record_from_row(head, tuple(aspects)) for _, head, aspects in grouped]
