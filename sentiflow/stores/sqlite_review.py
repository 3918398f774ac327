"""SQLite side of the LLM tier (issue 7): the review queue, training labels, LLM spend.

A mixin of :class:`~sentiflow.stores.sqlite.SQLiteResultStore` (it uses the store's ``_read`` /
``_write`` transaction helpers and its result-row codec). The review queue is not a table of its
own: an *open* item is a result flagged ``needs_review`` (the partial index ``results_review``
serves the query), a *resolved* one is a result a person labelled (tier ``review``) joined with
its training label (who, when). So the queue can never disagree with the stored results.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sentiflow.stores.errors import ReviewConflictError, ReviewNotFoundError
from sentiflow.stores.records import (
    AspectLabel,
    LLMUsage,
    ResultRecord,
    ReviewItem,
    ReviewStatus,
    TrainingLabel,
)

T = TypeVar("T")

#: Appended to ``sqlite.MIGRATIONS``: both opinions on results, training labels, LLM spend.
REVIEW_MIGRATION: Final = """
    ALTER TABLE results ADD COLUMN fast_sentiment TEXT;
    ALTER TABLE results ADD COLUMN llm_sentiment TEXT;
    ALTER TABLE results ADD COLUMN llm_confidence REAL;
    ALTER TABLE results ADD COLUMN review_reason TEXT;
    CREATE INDEX results_reviewed ON results (created_at_us) WHERE tier = 'review';
    CREATE TABLE training_labels (
        request_id    TEXT NOT NULL,
        source        TEXT NOT NULL,
        text          TEXT NOT NULL,
        language      TEXT NOT NULL,
        label         TEXT NOT NULL,
        labeller      TEXT NOT NULL,
        created_at_us INTEGER NOT NULL,
        PRIMARY KEY (request_id, source)
    ) WITHOUT ROWID;
    CREATE INDEX training_labels_created ON training_labels (created_at_us);
    CREATE TABLE llm_usage (
        day               TEXT PRIMARY KEY,
        cost_usd          REAL NOT NULL,
        requests          INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        posts             INTEGER NOT NULL
    )
"""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LABEL_COLS: Final = ("request_id", "source", "text", "language", "label", "labeller",
                      "created_at_us")
_UPSERT_LABEL: Final = (
    f"INSERT INTO training_labels ({', '.join(_LABEL_COLS)}) "
    f"VALUES ({', '.join('?' for _ in _LABEL_COLS)}) ON CONFLICT (request_id, source) DO UPDATE "
    "SET text = excluded.text, language = excluded.language, label = excluded.label, "
    "labeller = excluded.labeller, created_at_us = excluded.created_at_us"
)
#: A person's label replaces the result's; the tier that was replaced keeps its opinion.
_RESOLVE: Final = """
    UPDATE results SET
        fast_sentiment = COALESCE(fast_sentiment, CASE WHEN tier = 'fast' THEN sentiment END),
        fast_confidence = COALESCE(fast_confidence, CASE WHEN tier = 'fast' THEN confidence END),
        llm_sentiment = COALESCE(llm_sentiment,
                                 CASE WHEN tier = 'llm' AND sentiment != 'mixed'
                                      THEN sentiment END),
        llm_confidence = COALESCE(llm_confidence, CASE WHEN tier = 'llm' THEN confidence END),
        sentiment = ?, confidence = 1.0, model_used = ?, tier = 'review', needs_review = 0
    WHERE request_id = ?
"""
#: Column positions in ``sqlite._RESULT_COLS`` that these queries read.
_TEXT, _CREATED, _TIER, _SENTIMENT, _LANGUAGE_DETECTED = 1, 14, 15, 8, 12


def _us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _label_row(label: TrainingLabel) -> tuple[Any, ...]:
    return (label.request_id, label.source, label.text, label.language, label.label,
            label.labeller, _us(label.created_at))


def _label_from_row(row: Sequence[Any]) -> TrainingLabel:
    request_id, source, text, language, label, labeller, created = row
    return TrainingLabel(request_id=request_id, source=source, text=text, language=language,
                         label=label, labeller=labeller, created_at=_from_us(created))


def review_model_used(reviewer: str) -> str:
    """``model_used`` of a result a person decided."""
    return f"review:{reviewer}"


class ReviewStoreMixin:
    """Review-queue, training-label and LLM-spend methods of ``ResultStore`` on SQLite."""

    if TYPE_CHECKING:
        async def _write(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T: ...

    async def write_late_results(self, batch: Sequence[ResultRecord]) -> int:
        from sentiflow.stores import sqlite as codec  # the result-row codec lives there

        if not batch:
            return 0
        for rec in batch:
            if rec.request.request_id != rec.result.request_id:
                raise ValueError(f"request/result id mismatch: {rec.request.request_id!r}")
        upsert = codec._UPSERT_RESULT + " WHERE results.tier != 'review'"

        def body(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(upsert, [codec._result_row(rec) for rec in batch])
            return conn.total_changes - before

        return await self._write(f"writing {len(batch)} late results", body)

    async def write_late_aspects(self, batch: Sequence[ResultRecord]) -> int:
        from sentiflow.stores import sqlite as codec

        if not batch:
            return 0
        for rec in batch:
            if rec.request.request_id != rec.result.request_id:
                raise ValueError(f"request/result id mismatch: {rec.request.request_id!r}")
        latest = {rec.result.request_id: rec for rec in batch}  # the last one of an id wins
        upsert = codec._UPSERT_RESULT + " WHERE results.tier != 'review'"

        def body(conn: sqlite3.Connection) -> int:
            written = 0
            for rid, rec in latest.items():
                # 0 changes: the upsert's WHERE kept a person's label; its aspects stay too.
                if conn.execute(upsert, codec._result_row(rec)).rowcount != 1:
                    continue
                written += 1
                conn.execute("DELETE FROM aspects WHERE result_id = ?", (rid,))
                conn.executemany(codec._INSERT_ASPECT,
                                 [codec._aspect_row(a) for a in rec.result.aspects])
            return written

        return await self._write(f"writing {len(latest)} late aspect results", body)

    async def review_items(self, status: ReviewStatus, *, limit: int = 50) -> list[ReviewItem]:
        from sentiflow.stores import sqlite as codec

        if limit < 1:
            raise ValueError("limit must be >= 1")

        def body(conn: sqlite3.Connection) -> list[ReviewItem]:
            if status == "open":
                rows = conn.execute(
                    f"{codec._SELECT_RESULT} WHERE r.needs_review = 1 "
                    "ORDER BY r.created_at_us, r.request_id LIMIT ?", (limit,)).fetchall()
                return [ReviewItem(record=codec._record_from_row(r, ()), status="open")
                        for r in rows]
            rows = conn.execute(
                f"{codec._SELECT_RESULT.replace(' FROM results r', '')}, t.labeller, "
                "t.created_at_us FROM results r JOIN training_labels t "
                "ON t.request_id = r.request_id AND t.source = 'review' WHERE r.tier = 'review' "
                "ORDER BY t.created_at_us DESC, r.request_id LIMIT ?", (limit,)).fetchall()
            return [_resolved(codec._record_from_row(r[:-2], ()), r[-2], r[-1]) for r in rows]

        return await self._read(f"reading {status} review items", body)

    async def resolve_review(self, request_id: str, label: AspectLabel,
                             reviewer: str) -> ReviewItem:
        from sentiflow.stores import sqlite as codec

        now = _us(datetime.now(UTC))

        def body(conn: sqlite3.Connection) -> ReviewItem:
            select = f"{codec._SELECT_RESULT} WHERE r.request_id = ?"
            row = conn.execute(select, (request_id,)).fetchone()
            if row is None:
                raise ReviewNotFoundError(f"no result for request_id {request_id!r}")
            if row[_TIER] == "review":
                if row[_SENTIMENT] != label:
                    raise ReviewConflictError(request_id, row[_SENTIMENT])
                labelled = conn.execute(
                    "SELECT labeller, created_at_us FROM training_labels "
                    "WHERE request_id = ? AND source = 'review'", (request_id,)).fetchone()
                who, at = labelled if labelled is not None else (reviewer, now)
                return _resolved(codec._record_from_row(row, ()), who, at)
            conn.execute(_RESOLVE, (label, review_model_used(reviewer), request_id))
            conn.execute(_UPSERT_LABEL, (request_id, "review", row[_TEXT],
                                         row[_LANGUAGE_DETECTED], label, reviewer, now))
            updated = conn.execute(select, (request_id,)).fetchone()
            return _resolved(codec._record_from_row(updated, ()), reviewer, now)

        return await self._write(f"labelling {request_id!r}", body)

    async def add_training_labels(self, labels: Sequence[TrainingLabel]) -> None:
        if not labels:
            return
        rows = [_label_row(label) for label in labels]

        def body(conn: sqlite3.Connection) -> None:
            conn.executemany(_UPSERT_LABEL, rows)

        await self._write(f"adding {len(rows)} training labels", body)

    async def training_labels(self, since: datetime | None = None) -> list[TrainingLabel]:
        low = _us(since) if since is not None else -(2**62)

        def body(conn: sqlite3.Connection) -> list[TrainingLabel]:
            return [_label_from_row(r) for r in conn.execute(
                f"SELECT {', '.join(_LABEL_COLS)} FROM training_labels WHERE created_at_us >= ? "
                "ORDER BY created_at_us, request_id, source", (low,))]

        return await self._read("reading training labels", body)

    async def add_llm_usage(self, usage: LLMUsage) -> None:
        row = (usage.day.isoformat(), usage.cost_usd, usage.requests, usage.prompt_tokens,
               usage.completion_tokens, usage.posts)

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO llm_usage (day, cost_usd, requests, prompt_tokens, "
                "completion_tokens, posts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day) DO UPDATE "
                "SET cost_usd = cost_usd + excluded.cost_usd, "
                "requests = requests + excluded.requests, "
                "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = completion_tokens + excluded.completion_tokens, "
                "posts = posts + excluded.posts", row)

        await self._write(f"recording LLM usage of {usage.day}", body)

    async def llm_usage(self, day: date) -> LLMUsage:
        def body(conn: sqlite3.Connection) -> LLMUsage:
            row = conn.execute("SELECT cost_usd, requests, prompt_tokens, completion_tokens, "
                               "posts FROM llm_usage WHERE day = ?", (day.isoformat(),)).fetchone()
            if row is None:
                return LLMUsage(day=day)
            return LLMUsage(day=day, cost_usd=row[0], requests=row[1], prompt_tokens=row[2],
                            completion_tokens=row[3], posts=row[4])

        return await self._read(f"reading LLM usage of {day}", body)


def _resolved(record: ResultRecord, reviewer: str, at_us: int) -> ReviewItem:
    label = record.result.sentiment
    return ReviewItem(record=record, status="resolved",
                      label=None if label == "mixed" else label, reviewer=reviewer,
                      resolved_at=_from_us(at_us))
