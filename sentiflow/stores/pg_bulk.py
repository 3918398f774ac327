"""Rows and bulk upserts of result records for the PostgreSQL store (schema 0001_base.sql).

Three ways to upsert a batch of results are implemented because the cheapest one depends on the
batch size and had to be measured (``bench/bench_store.py --pg-methods``):

* ``unnest`` (default): one ``INSERT … SELECT FROM unnest($1::text[], …) ON CONFLICT DO UPDATE``
  statement with one array parameter per column: a single round trip and a single plan whatever
  the batch size;
* ``executemany``: the same upsert with one parameter row per result (asyncpg pipelines them);
* ``copy``: ``COPY`` into a per-connection temporary staging table, then one
  ``INSERT … SELECT … ON CONFLICT DO UPDATE`` from it.

All three take rows already deduplicated on ``request_id`` (``ON CONFLICT DO UPDATE`` refuses to
touch one row twice in a statement), and the caller runs them inside its transaction, followed by
:func:`replace_aspects`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from sentiflow.stores.errors import InvalidRecordError
from sentiflow.stores.records import (
    AspectSentiment,
    BatchJob,
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
)

if TYPE_CHECKING:  # the stubs' generics do not exist at run time
    #: A connection as the store gets it: plain (migrations) or borrowed from the pool.
    Conn: TypeAlias = (asyncpg.Connection[asyncpg.Record]
                       | PoolConnectionProxy[asyncpg.Record])
else:
    Conn = Any
#: A row as asyncpg returns it, or a tuple built here.
Row = Sequence[Any] | asyncpg.Record
WriteMethod = Literal["unnest", "executemany", "copy"]
WRITE_METHODS: Final[tuple[WriteMethod, ...]] = ("unnest", "executemany", "copy")

#: Column name and PostgreSQL type of ``results``, in row order.
RESULT_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("request_id", "text"), ("text", "text"), ("language_requested", "text"),
    ("source", "text"), ("topic", "text"), ("priority", "text"),
    ("aspects_requested", "boolean"), ("received_at", "timestamptz"), ("sentiment", "text"),
    ("confidence", "float8"), ("model_used", "text"), ("model_version", "text"),
    ("language_detected", "text"), ("latency_ms", "float8"), ("created_at", "timestamptz"),
    ("tier", "text"), ("needs_review", "boolean"), ("fast_confidence", "float8"),
    # 0002_review: both tiers' opinions and why a post needs review
    ("fast_sentiment", "text"), ("llm_sentiment", "text"), ("llm_confidence", "float8"),
    ("review_reason", "text"),
)
ASPECT_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("result_id", "text"), ("aspect_id", "text"), ("aspect_name", "text"),
    ("sentiment", "text"), ("confidence", "float8"), ("span_start", "int4"),
    ("span_end", "int4"),
)
BATCH_COLUMNS: Final = ("batch_id", "count", "status", "priority", "webhook_url", "done", "error",
                        "created_at", "updated_at")
ITEM_COLUMNS: Final = ("batch_id", "position", "request_id", "text", "language", "source",
                       "topic", "priority", "aspects", "received_at")
ATTEMPT_COLUMNS: Final = ("batch_id", "chunk_index", "chunk_count", "attempt", "outcome",
                          "status_code", "error", "duration_ms", "at")

_NAMES: Final = tuple(name for name, _ in RESULT_COLUMNS)
_ON_CONFLICT: Final = ("ON CONFLICT (request_id) DO UPDATE SET "
                       + ", ".join(f"{c} = EXCLUDED.{c}" for c in _NAMES[1:]))
#: The unnest upsert; callers may append a condition (``WHERE results.tier <> 'review'``).
UPSERT_UNNEST: Final = (
    f"INSERT INTO results ({', '.join(_NAMES)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(RESULT_COLUMNS, start=1))
    + f") {_ON_CONFLICT}")
_UPSERT_ROW: Final = (
    f"INSERT INTO results ({', '.join(_NAMES)}) VALUES ("
    + ", ".join(f"${i}" for i in range(1, len(_NAMES) + 1)) + f") {_ON_CONFLICT}")
_STAGE: Final = "sentiflow_results_stage"
_CREATE_STAGE: Final = (f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
                        "(LIKE results) ON COMMIT DELETE ROWS")
_UPSERT_FROM_STAGE: Final = (f"INSERT INTO results ({', '.join(_NAMES)}) "
                             f"SELECT {', '.join(_NAMES)} FROM {_STAGE} {_ON_CONFLICT}")
_DELETE_ASPECTS: Final = "DELETE FROM aspects WHERE result_id = ANY($1::text[])"
_INSERT_ASPECTS: Final = (
    f"INSERT INTO aspects ({', '.join(n for n, _ in ASPECT_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(ASPECT_COLUMNS, start=1)) + ")")
#: The result columns, prefixed with ``r.``, for SELECTs that join.
SELECT_RESULT: Final = ", ".join(f"r.{c}" for c in _NAMES)
SELECT_ASPECT: Final = ", ".join(f"a.{n}" for n, _ in ASPECT_COLUMNS)


def utc(moment: datetime) -> datetime:
    """Aware UTC datetime (naive values are taken as UTC, as the SQLite store does)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_text(row: Sequence[Any], what: str) -> None:
    for value in row:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidRecordError(f"{what}: text fields must not contain NUL characters "
                                       "(PostgreSQL cannot store them)")


def result_row(record: ResultRecord) -> tuple[Any, ...]:
    q, r = record.request, record.result
    if q.request_id != r.request_id:
        raise InvalidRecordError(
            f"request/result id mismatch: {q.request_id!r} != {r.request_id!r}")
    row = (r.request_id, q.text, q.language, q.source, q.topic, q.priority, q.aspects,
           utc(q.received_at), r.sentiment, r.confidence, r.model_used, r.model_version,
           r.language_detected, r.latency_ms, utc(r.created_at), r.tier, r.needs_review,
           r.fast_confidence, r.fast_sentiment, r.llm_sentiment, r.llm_confidence,
           r.review_reason)
    _check_text(row, f"result {r.request_id!r}")
    return row


def aspect_row(a: AspectSentiment) -> tuple[Any, ...]:
    start, end = a.text_span if a.text_span is not None else (None, None)
    row = (a.result_id, a.aspect_id, a.aspect_name, a.sentiment, a.confidence, start, end)
    _check_text(row, f"aspect {a.aspect_id!r}")
    return row


def batch_rows(job: BatchJob, requests: Sequence[ClassificationRequest]
               ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The ``batches`` row and the ``batch_items`` rows of a new job."""
    job_row = (job.batch_id, job.count, job.status, job.priority, job.webhook_url, job.done,
               job.error, utc(job.created_at), utc(job.updated_at))
    _check_text(job_row, f"batch {job.batch_id!r}")
    items = [(job.batch_id, i, q.request_id, q.text, q.language, q.source, q.topic, q.priority,
              q.aspects, utc(q.received_at)) for i, q in enumerate(requests)]
    for item in items:
        _check_text(item, f"batch item {item[2]!r}")
    return job_row, items


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Transpose rows into one list per column (the ``unnest`` parameters)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]


def latest_per_request(batch: Sequence[ResultRecord]) -> list[ResultRecord]:
    """One record per ``request_id``, the last one given (in first-seen order)."""
    latest: dict[str, ResultRecord] = {}
    for record in batch:
        latest[record.result.request_id] = record
    return list(latest.values())


async def upsert_results(conn: Conn, rows: Sequence[tuple[Any, ...]],
                         method: WriteMethod = "unnest") -> None:
    """Upsert ``rows`` (from :func:`result_row`, unique ids) inside the caller's transaction."""
    if not rows:
        return
    if method == "unnest":
        await conn.execute(UPSERT_UNNEST, *columns(rows, len(RESULT_COLUMNS)))
    elif method == "executemany":
        await conn.executemany(_UPSERT_ROW, rows)
    else:
        await conn.execute(_CREATE_STAGE)
        await conn.copy_records_to_table(_STAGE, records=rows, columns=_NAMES)
        await conn.execute(_UPSERT_FROM_STAGE)


async def replace_aspects(conn: Conn, result_ids: Sequence[str],
                          rows: Sequence[tuple[Any, ...]]) -> None:
    """Drop the stored aspects of ``result_ids`` and insert ``rows`` (same transaction)."""
    await conn.execute(_DELETE_ASPECTS, list(result_ids))
    if rows:
        await conn.execute(_INSERT_ASPECTS, *columns(rows, len(ASPECT_COLUMNS)))


def record_from_row(row: Row, aspects: tuple[AspectSentiment, ...]) -> ResultRecord:
    """A :class:`ResultRecord` from the ``SELECT_RESULT`` columns (in order)."""
    (request_id, text, language, source, topic, priority, aspects_requested, received_at,
     sentiment, confidence, model_used, model_version, language_detected, latency_ms,
     created_at, tier, needs_review, fast_confidence, fast_sentiment, llm_sentiment,
     llm_confidence, review_reason) = row[:len(RESULT_COLUMNS)]
    return ResultRecord(
        request=ClassificationRequest(
            request_id=request_id, text=text, language=language, source=source, topic=topic,
            priority=priority, aspects=aspects_requested, received_at=received_at,
        ),
        result=ClassificationResult(
            request_id=request_id, sentiment=sentiment, confidence=confidence,
            model_used=model_used, model_version=model_version,
            language_detected=language_detected, latency_ms=latency_ms, created_at=created_at,
            tier=tier, needs_review=needs_review, fast_confidence=fast_confidence,
            aspects=aspects, fast_sentiment=fast_sentiment, llm_sentiment=llm_sentiment,
            llm_confidence=llm_confidence, review_reason=review_reason,
        ),
    )


def aspect_from_row(row: Row) -> AspectSentiment:
    """An :class:`AspectSentiment` from the ``SELECT_ASPECT`` columns (in order)."""
    result_id, aspect_id, name, sentiment, confidence, start, end = row
    span = (start, end) if start is not None and end is not None else None
    return AspectSentiment(aspect_id=aspect_id, result_id=result_id, aspect_name=name,
                           sentiment=sentiment, confidence=confidence, text_span=span)


def job_from_row(row: Row) -> BatchJob:
    batch_id, count, status, priority, url, done, error, created, updated = row
    return BatchJob(batch_id=batch_id, count=count, status=status, priority=priority,
                    webhook_url=url, done=done, error=error, created_at=created,
                    updated_at=updated)
