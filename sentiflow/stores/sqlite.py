"""The embedded result store: one SQLite file (WAL mode), no server.

Threading model. ``sqlite3`` calls block, so every call runs in an anyio worker thread
(``anyio.to_thread.run_sync``), which works under asyncio and trio alike. The store owns two
connections: a *writer* and a *reader*, each behind its own ``CapacityLimiter(1)``. anyio's worker
threads are pooled, so consecutive calls may land on different threads; the limiter guarantees a
connection is never used by two threads at once (which is what ``check_same_thread`` would
otherwise police, hence it is off). One writer means SQLite never sees lock contention between our
own writes (SQLite allows a single writer anyway); a separate reader means WAL lets look-ups run
while a write transaction is in progress instead of queueing behind it. The exception is
``write_results``: a result write that is measured to take under ``inline_budget_s`` (a commit
whose fsync is fast, or NORMAL) runs on the event loop, still behind the writer's limiter,
because the thread's round trip through a busy loop costs several times the write itself
(sentiflow/runtime/offload.py); a write that overruns sends the next ones to the thread.
SQLite's automatic checkpoint (copying the WAL into the database and fsyncing both, 5-50 ms,
inside whichever commit crosses 1,000 pages) would stall the loop in such a write: it is off on
the writer, and a thread of the store's own checkpoints instead (sentiflow/stores/
sqlite_checkpointer.py).

Durability. Each ``write_results`` call is one ``BEGIN IMMEDIATE … COMMIT`` transaction: all or
nothing. ``synchronous=FULL`` (default) fsyncs the WAL at every commit, so a return means the
batch survives a power cut; ``NORMAL`` survives process crashes (SIGKILL) but may lose the last
commits on power loss, never corrupting the file. Any ``sqlite3`` error rolls the transaction
back and surfaces as :class:`StorageError` (:class:`StorageFullError` for disk full / size cap).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar

import anyio
import anyio.to_thread

from sentiflow.runtime.offload import Offloader
from sentiflow.stores.errors import (
    BatchNotFoundError,
    DuplicateBatchError,
    StorageClosedError,
    StorageError,
    StorageFullError,
)
from sentiflow.stores.records import (
    AspectSentiment,
    BatchJob,
    BatchState,
    BatchView,
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
    WebhookAttempt,
    webhook_state,
)
from sentiflow.stores.sqlite_checkpointer import WalCheckpointer
from sentiflow.stores.sqlite_drift import DRIFT_MIGRATION, DriftStoreMixin
from sentiflow.stores.sqlite_review import REVIEW_MIGRATION, ReviewStoreMixin

T = TypeVar("T")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
_SQLITE_FULL: Final = 13
_SQLITE_BUSY: Final = 5
#: How long a write in the writer thread waits for another process's lock (``sqlite3`` timeout).
BUSY_TIMEOUT_MS: Final = 30_000


class _WouldWaitError(Exception):
    """A write on the event loop found the database locked by another process: it must not
    wait there (the whole node would stall), so it is retried in the writer thread."""

#: Versioned schema: entry ``i`` migrates from ``user_version == i`` to ``i + 1``.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE results (
        request_id         TEXT PRIMARY KEY,
        text               TEXT NOT NULL,
        language_requested TEXT NOT NULL,
        source             TEXT NOT NULL,
        topic              TEXT,
        priority           TEXT NOT NULL,
        aspects_requested  INTEGER NOT NULL,
        received_at_us     INTEGER NOT NULL,
        sentiment          TEXT NOT NULL,
        confidence         REAL NOT NULL,
        model_used         TEXT NOT NULL,
        model_version      TEXT NOT NULL,
        language_detected  TEXT NOT NULL,
        latency_ms         REAL NOT NULL,
        created_at_us      INTEGER NOT NULL,
        tier               TEXT NOT NULL,
        needs_review       INTEGER NOT NULL,
        fast_confidence    REAL
    );
    CREATE INDEX results_created ON results (created_at_us);
    CREATE INDEX results_review ON results (created_at_us) WHERE needs_review = 1;
    CREATE TABLE aspects (
        result_id   TEXT NOT NULL,
        aspect_id   TEXT NOT NULL,
        aspect_name TEXT NOT NULL,
        sentiment   TEXT NOT NULL,
        confidence  REAL NOT NULL,
        span_start  INTEGER,
        span_end    INTEGER,
        PRIMARY KEY (result_id, aspect_id)
    ) WITHOUT ROWID;
    CREATE TABLE batches (
        batch_id      TEXT PRIMARY KEY,
        count         INTEGER NOT NULL,
        status        TEXT NOT NULL,
        priority      TEXT NOT NULL,
        webhook_url   TEXT,
        done          INTEGER NOT NULL,
        error         TEXT,
        created_at_us INTEGER NOT NULL,
        updated_at_us INTEGER NOT NULL
    );
    CREATE INDEX batches_status ON batches (status, created_at_us);
    CREATE TABLE batch_items (
        batch_id       TEXT NOT NULL,
        position       INTEGER NOT NULL,
        request_id     TEXT NOT NULL,
        text           TEXT NOT NULL,
        language       TEXT NOT NULL,
        source         TEXT NOT NULL,
        topic          TEXT,
        priority       TEXT NOT NULL,
        aspects        INTEGER NOT NULL,
        received_at_us INTEGER NOT NULL,
        PRIMARY KEY (batch_id, position)
    );
    CREATE TABLE webhook_attempts (
        id          INTEGER PRIMARY KEY,
        batch_id    TEXT NOT NULL,
        chunk_index INTEGER NOT NULL,
        chunk_count INTEGER NOT NULL,
        attempt     INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        status_code INTEGER,
        error       TEXT,
        duration_ms REAL NOT NULL,
        at_us       INTEGER NOT NULL
    );
    CREATE INDEX webhook_attempts_batch ON webhook_attempts (batch_id);
    """,
    DRIFT_MIGRATION,
    REVIEW_MIGRATION,
)

_RESULT_COLS: Final = (
    "request_id", "text", "language_requested", "source", "topic", "priority",
    "aspects_requested", "received_at_us", "sentiment", "confidence", "model_used",
    "model_version", "language_detected", "latency_ms", "created_at_us", "tier", "needs_review",
    "fast_confidence",
    # issue 7 (REVIEW_MIGRATION): both tiers' opinions and why a post needs review
    "fast_sentiment", "llm_sentiment", "llm_confidence", "review_reason",
)
_UPSERT_RESULT: Final = (
    f"INSERT INTO results ({', '.join(_RESULT_COLS)}) "
    f"VALUES ({', '.join('?' for _ in _RESULT_COLS)}) "
    "ON CONFLICT (request_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RESULT_COLS[1:])
)
_SELECT_RESULT: Final = f"SELECT {', '.join('r.' + c for c in _RESULT_COLS)} FROM results r"
_ASPECT_COLS: Final = ("result_id", "aspect_id", "aspect_name", "sentiment", "confidence",
                       "span_start", "span_end")
_INSERT_ASPECT: Final = (f"INSERT INTO aspects ({', '.join(_ASPECT_COLS)}) "
                         f"VALUES ({', '.join('?' for _ in _ASPECT_COLS)})")
_BATCH_COLS: Final = ("batch_id", "count", "status", "priority", "webhook_url", "done", "error",
                      "created_at_us", "updated_at_us")
_ITEM_COLS: Final = ("batch_id", "position", "request_id", "text", "language", "source", "topic",
                     "priority", "aspects", "received_at_us")
_ATTEMPT_COLS: Final = ("batch_id", "chunk_index", "chunk_count", "attempt", "outcome",
                        "status_code", "error", "duration_ms", "at_us")


def to_us(moment: datetime) -> int:
    """Exact microseconds since the epoch (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICRO


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def sqlite_path_from_url(url: str) -> Path:
    """``sqlite:////abs/file.db`` -> ``/abs/file.db`` (``sqlite:///rel.db`` -> ``rel.db``)."""
    scheme, sep, rest = url.partition("://")
    if scheme != "sqlite" or not sep or not rest.startswith("/") or len(rest) < 2:
        raise ValueError(f"not a sqlite file URL: {url!r} (expected sqlite:////path/to/file.db)")
    return Path(rest[1:])


def _primary_code(exc: BaseException | None) -> int | None:
    """SQLite's primary result code of a ``sqlite3`` error (extended codes keep it in the low
    byte), or None for anything else."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _storage_error(exc: sqlite3.Error, what: str) -> StorageError:
    if _primary_code(exc) == _SQLITE_FULL or "full" in str(exc).lower():
        return StorageFullError(f"{what}: storage full ({exc})")
    return StorageError(f"{what}: {exc}")


def _in_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T],
                    begin: str = "BEGIN IMMEDIATE") -> T:
    """Run ``body`` in one transaction; roll back on any error (COMMIT failures included)."""
    conn.execute(begin)
    try:
        value = body(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            # If even ROLLBACK fails the connection is broken; SQLite's journal recovers on open.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return value


def _result_row(record: ResultRecord) -> tuple[Any, ...]:
    q, r = record.request, record.result
    if q.request_id != r.request_id:
        raise ValueError(f"request/result id mismatch: {q.request_id!r} != {r.request_id!r}")
    return (
        r.request_id, q.text, q.language, q.source, q.topic, q.priority, int(q.aspects),
        to_us(q.received_at), r.sentiment, r.confidence, r.model_used, r.model_version,
        r.language_detected, r.latency_ms, to_us(r.created_at), r.tier, int(r.needs_review),
        r.fast_confidence,
        r.fast_sentiment, r.llm_sentiment, r.llm_confidence, r.review_reason,
    )


def _aspect_row(a: AspectSentiment) -> tuple[Any, ...]:
    start, end = a.text_span if a.text_span is not None else (None, None)
    return (a.result_id, a.aspect_id, a.aspect_name, a.sentiment, a.confidence, start, end)


def _record_from_row(row: Sequence[Any], aspects: tuple[AspectSentiment, ...]) -> ResultRecord:
    (request_id, text, language, source, topic, priority, aspects_requested, received_at,
     sentiment, confidence, model_used, model_version, language_detected, latency_ms,
     created_at, tier, needs_review, fast_confidence) = row[:18]
    fast_sentiment, llm_sentiment, llm_confidence, review_reason = row[18:22]
    return ResultRecord(
        request=ClassificationRequest(
            request_id=request_id, text=text, language=language, source=source, topic=topic,
            priority=priority, aspects=bool(aspects_requested), received_at=from_us(received_at),
        ),
        result=ClassificationResult(
            request_id=request_id, sentiment=sentiment, confidence=confidence,
            model_used=model_used, model_version=model_version,
            language_detected=language_detected, latency_ms=latency_ms,
            created_at=from_us(created_at), tier=tier, needs_review=bool(needs_review),
            fast_confidence=fast_confidence, aspects=aspects,
            fast_sentiment=fast_sentiment, llm_sentiment=llm_sentiment,
            llm_confidence=llm_confidence, review_reason=review_reason,
        ),
    )


def _aspect_from_row(row: Sequence[Any]) -> AspectSentiment:
    result_id, aspect_id, name, sentiment, confidence, start, end = row
    span = (start, end) if start is not None and end is not None else None
    return AspectSentiment(aspect_id=aspect_id, result_id=result_id, aspect_name=name,
                           sentiment=sentiment, confidence=confidence, text_span=span)


def _job_from_row(row: Sequence[Any]) -> BatchJob:
    batch_id, count, status, priority, url, done, error, created, updated = row
    return BatchJob(batch_id=batch_id, count=count, status=status, priority=priority,
                    webhook_url=url, done=done, error=error, created_at=from_us(created),
                    updated_at=from_us(updated))


def _connect(path: Path, synchronous: str, max_pages: int | None) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (one transaction per call).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    if max_pages is not None:
        conn.execute(f"PRAGMA max_page_count={int(max_pages)}")
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        def apply(c: sqlite3.Connection, script: str = script, target: int = target) -> None:
            for statement in filter(str.strip, script.split(";")):
                c.execute(statement)
            c.execute(f"PRAGMA user_version={target}")
        _in_transaction(conn, apply)


class SQLiteResultStore(DriftStoreMixin, ReviewStoreMixin):
    """:class:`~sentiflow.stores.interface.ResultStore` on one SQLite file. Use :meth:`open`."""

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection,
                 *, inline_budget_s: float = 0.0, checkpointer: WalCheckpointer | None = None
                 ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        #: Checkpoints in a thread of its own (the writer's automatic checkpoint is off).
        self.checkpointer = checkpointer
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)
        #: Runs result writes on the loop while they are cheap (module docstring).
        self.result_writes = Offloader(inline_budget_s, limiter=self._write_limiter)
        self._closed = False

    @classmethod
    async def open(
        cls, path: Path, *, synchronous: Literal["NORMAL", "FULL"] = "FULL",
        max_pages: int | None = None, inline_budget_s: float = 0.0,
        checkpoint_interval_s: float = 1.0,
    ) -> SQLiteResultStore:
        """Open (creating and migrating if needed) the store at ``path``.

        ``max_pages`` caps the database size in pages (SQLite ``max_page_count``); past it
        writes fail with :class:`StorageFullError`, exactly as on a full disk.
        ``inline_budget_s``: result writes measured under it run on the event loop (0: never).
        ``checkpoint_interval_s``: how soon after writes the checkpointer thread runs.
        """

        def connect() -> SQLiteResultStore:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = _connect(path, synchronous, max_pages)
            reader: sqlite3.Connection | None = None
            try:
                _migrate(writer)
                writer.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
                reader = _connect(path, synchronous, None)
                reader.execute("PRAGMA query_only=ON")
                checkpointer = WalCheckpointer(partial(_connect, path, synchronous, None),
                                               interval_s=checkpoint_interval_s)
            except BaseException:
                writer.close()
                if reader is not None:
                    reader.close()
                raise
            return cls(path, writer, reader, inline_budget_s=inline_budget_s,
                       checkpointer=checkpointer)

        try:
            return await anyio.to_thread.run_sync(connect)
        except sqlite3.Error as exc:
            raise _storage_error(exc, f"opening {path}") from exc
        except OSError as exc:
            raise StorageError(f"opening {path}: {exc}") from exc

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _call(self, write: bool, what: str, fn: Callable[[sqlite3.Connection], T],
                    offload: Offloader | None = None, cost: int = 1) -> T:
        if self._closed:
            raise StorageClosedError(f"{what}: store is closed")
        conn, limiter = ((self._writer, self._write_limiter) if write
                         else (self._reader, self._read_limiter))

        checkpointer = self.checkpointer if write else None

        def run() -> T:
            if self._closed:
                raise StorageClosedError(f"{what}: store is closed")
            try:
                value = fn(conn)
            except sqlite3.Error as exc:
                raise _storage_error(exc, what) from exc
            if checkpointer is not None:
                checkpointer.wrote()
            return value

        def run_without_waiting() -> T:
            """``run`` on the event loop: a lock held by another process (a CLI on the same
            file) raises _WouldWaitError at once instead of blocking the loop for the busy
            timeout."""
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                return run()
            except StorageError as exc:
                if _primary_code(exc.__cause__) == _SQLITE_BUSY:
                    raise _WouldWaitError from exc
                raise
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

        if offload is not None:
            try:
                return await offload.run(run, cost=cost, on_loop=run_without_waiting)
            except _WouldWaitError:
                pass
        return await anyio.to_thread.run_sync(run, limiter=limiter)

    async def _write(self, what: str, body: Callable[[sqlite3.Connection], T],
                     offload: Offloader | None = None, cost: int = 1) -> T:
        return await self._call(True, what, partial(_in_transaction, body=body), offload, cost)

    async def _read(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(False, what, partial(_in_transaction, body=body, begin="BEGIN"))

    # -- results -----------------------------------------------------------------------------

    async def write_results(self, batch: Sequence[ResultRecord]) -> None:
        if not batch:
            return
        for rec in batch:  # validate before touching the database
            if rec.request.request_id != rec.result.request_id:
                raise ValueError(f"request/result id mismatch: {rec.request.request_id!r} != "
                                 f"{rec.result.request_id!r}")

        def body(conn: sqlite3.Connection) -> None:
            # Rows are built here, in the write call (the worker thread unless inlined).
            rows = [_result_row(rec) for rec in batch]
            ids = [(row[0],) for row in rows]
            # A request_id listed twice: its last record wins, aspects included.
            latest = {rec.result.request_id: rec for rec in batch}
            aspects = [_aspect_row(a) for rec in latest.values() for a in rec.result.aspects]
            conn.executemany(_UPSERT_RESULT, rows)
            conn.executemany("DELETE FROM aspects WHERE result_id = ?", ids)
            if aspects:
                conn.executemany(_INSERT_ASPECT, aspects)

        await self._write(f"writing {len(batch)} results", body, self.result_writes,
                          cost=len(batch))

    async def get_result(self, request_id: str) -> ResultRecord | None:
        def body(conn: sqlite3.Connection) -> ResultRecord | None:
            row = conn.execute(f"{_SELECT_RESULT} WHERE r.request_id = ?",
                               (request_id,)).fetchone()
            if row is None:
                return None
            aspect_rows = conn.execute(
                f"SELECT {', '.join(_ASPECT_COLS)} FROM aspects WHERE result_id = ? "
                "ORDER BY aspect_id", (request_id,)).fetchall()
            return _record_from_row(row, tuple(_aspect_from_row(a) for a in aspect_rows))

        return await self._read(f"reading result {request_id!r}", body)

    # -- batches -----------------------------------------------------------------------------

    async def create_batch(self, job: BatchJob, requests: Sequence[ClassificationRequest]) -> None:
        if len(requests) != job.count:
            raise ValueError(f"batch {job.batch_id!r}: count={job.count} but "
                             f"{len(requests)} requests given")
        job_row = (job.batch_id, job.count, job.status, job.priority, job.webhook_url, job.done,
                   job.error, to_us(job.created_at), to_us(job.updated_at))
        items = [(job.batch_id, i, q.request_id, q.text, q.language, q.source, q.topic,
                  q.priority, int(q.aspects), to_us(q.received_at))
                 for i, q in enumerate(requests)]

        def body(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(f"INSERT INTO batches ({', '.join(_BATCH_COLS)}) "
                             f"VALUES ({', '.join('?' for _ in _BATCH_COLS)})", job_row)
            except sqlite3.IntegrityError:
                raise DuplicateBatchError(f"batch {job.batch_id!r} already exists") from None
            conn.executemany(f"INSERT INTO batch_items ({', '.join(_ITEM_COLS)}) "
                             f"VALUES ({', '.join('?' for _ in _ITEM_COLS)})", items)

        await self._write(f"creating batch {job.batch_id!r}", body)

    async def update_batch_progress(
        self, batch_id: str, *, done: int, status: BatchState | None = None,
        error: str | None = None,
    ) -> None:
        if done < 0:
            raise ValueError("done must be >= 0")
        now = to_us(datetime.now(UTC))

        def body(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE batches SET done = MIN(count, MAX(done, ?)), "
                "status = COALESCE(?, status), error = COALESCE(?, error), updated_at_us = ? "
                "WHERE batch_id = ?", (done, status, error, now, batch_id))
            if cur.rowcount == 0:
                raise BatchNotFoundError(f"no batch {batch_id!r}")

        await self._write(f"updating batch {batch_id!r}", body)

    async def get_batch(self, batch_id: str) -> BatchView | None:
        def body(conn: sqlite3.Connection) -> BatchView | None:
            row = conn.execute(f"SELECT {', '.join(_BATCH_COLS)} FROM batches WHERE batch_id = ?",
                               (batch_id,)).fetchone()
            if row is None:
                return None
            job = _job_from_row(row)
            result_rows = conn.execute(
                f"{_SELECT_RESULT} JOIN batch_items b ON b.request_id = r.request_id "
                "WHERE b.batch_id = ? ORDER BY b.position", (batch_id,)).fetchall()
            aspects: dict[str, list[AspectSentiment]] = {}
            for a in conn.execute(
                    f"SELECT {', '.join('a.' + c for c in _ASPECT_COLS)} FROM aspects a "
                    "JOIN batch_items b ON b.request_id = a.result_id "
                    "WHERE b.batch_id = ? ORDER BY a.result_id, a.aspect_id", (batch_id,)):
                aspects.setdefault(a[0], []).append(_aspect_from_row(a))
            attempts = [
                WebhookAttempt(batch_id=r[0], chunk_index=r[1], chunk_count=r[2], attempt=r[3],
                               outcome=r[4], status_code=r[5], error=r[6], duration_ms=r[7],
                               at=from_us(r[8]))
                for r in conn.execute(
                    f"SELECT {', '.join(_ATTEMPT_COLS)} FROM webhook_attempts "
                    "WHERE batch_id = ? ORDER BY id", (batch_id,))
            ]
            results = tuple(_record_from_row(r, tuple(aspects.get(r[0], ())))
                            for r in result_rows)
            return BatchView(job=job, results=results, webhook=webhook_state(job, attempts))

        return await self._read(f"reading batch {batch_id!r}", body)

    async def pending_requests(self, batch_id: str) -> list[ClassificationRequest]:
        def body(conn: sqlite3.Connection) -> list[ClassificationRequest]:
            rows = conn.execute(
                "SELECT b.request_id, b.text, b.language, b.source, b.topic, b.priority, "
                "b.aspects, b.received_at_us FROM batch_items b "
                "LEFT JOIN results r ON r.request_id = b.request_id "
                "WHERE b.batch_id = ? AND r.request_id IS NULL ORDER BY b.position",
                (batch_id,)).fetchall()
            return [ClassificationRequest(request_id=r[0], text=r[1], language=r[2], source=r[3],
                                          topic=r[4], priority=r[5], aspects=bool(r[6]),
                                          received_at=from_us(r[7])) for r in rows]

        return await self._read(f"reading pending items of {batch_id!r}", body)

    async def unfinished_batches(self) -> list[BatchJob]:
        def body(conn: sqlite3.Connection) -> list[BatchJob]:
            return [_job_from_row(r) for r in conn.execute(
                f"SELECT {', '.join(_BATCH_COLS)} FROM batches "
                "WHERE status IN ('queued', 'running') ORDER BY created_at_us")]

        return await self._read("listing unfinished batches", body)

    async def record_webhook_attempt(self, attempt: WebhookAttempt) -> None:
        row = (attempt.batch_id, attempt.chunk_index, attempt.chunk_count, attempt.attempt,
               attempt.outcome, attempt.status_code, attempt.error, attempt.duration_ms,
               to_us(attempt.at))

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(f"INSERT INTO webhook_attempts ({', '.join(_ATTEMPT_COLS)}) "
                         f"VALUES ({', '.join('?' for _ in _ATTEMPT_COLS)})", row)

        await self._write(f"recording webhook attempt for {attempt.batch_id!r}", body)

    async def iter_results(self, start: datetime, end: datetime, *, page_size: int = 500
                           ) -> AsyncIterator[list[ResultRecord]]:
        """Results created in ``[start, end)`` in pages (keyset on created_at, request_id).
        Aspects are not loaded: the readers of whole days (audit, drift) do not use them."""
        key = (to_us(start), "")  # request ids are never empty
        stop = to_us(end)
        while True:
            def body(conn: sqlite3.Connection, key: tuple[int, str] = key) -> list[Any]:
                return conn.execute(
                    f"{_SELECT_RESULT} WHERE (r.created_at_us, r.request_id) > (?, ?) "
                    "AND r.created_at_us < ? ORDER BY r.created_at_us, r.request_id LIMIT ?",
                    (*key, stop, page_size)).fetchall()

            rows = await self._read("reading results by day", body)
            if not rows:
                return
            yield [_record_from_row(r, ()) for r in rows]
            key = (rows[-1][14], rows[-1][0])  # created_at_us, request_id

    # -- lifecycle ---------------------------------------------------------------------------

    async def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` verdict (``"ok"`` when the file is sound)."""
        def body(conn: sqlite3.Connection) -> str:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

        return await self._call(False, "integrity check", body)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Each limiter admits one caller: closing through it waits for the in-flight call.
        await anyio.to_thread.run_sync(self._reader.close, limiter=self._read_limiter)
        await anyio.to_thread.run_sync(self._writer.close, limiter=self._write_limiter)
        if self.checkpointer is not None:  # the last connection: it checkpoints on closing
            await anyio.to_thread.run_sync(self.checkpointer.close)

