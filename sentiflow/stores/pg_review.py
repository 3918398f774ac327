"""PostgreSQL side of the LLM tier (issue 7): late results (and late aspect verdicts, issue 8),
the review queue, training labels, LLM spend. Schema: migrations/postgres/0002_review.sql.

A mixin of :class:`~sentiflow.stores.postgres.PostgresResultStore` (it runs its bodies through
the store's ``_run`` transaction helper). Same semantics as
:mod:`sentiflow.stores.sqlite_review`: the review queue is derived from the results (open =
``needs_review``, resolved = tier ``review`` joined with its training label), so it can never
disagree with them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sentiflow.stores.errors import ReviewConflictError, ReviewNotFoundError
from sentiflow.stores.pg_bulk import (
    RESULT_COLUMNS,
    SELECT_RESULT,
    UPSERT_UNNEST,
    Conn,
    Row,
    aspect_row,
    columns,
    record_from_row,
    replace_aspects,
    result_row,
    utc,
)
from sentiflow.stores.records import (
    AspectLabel,
    LLMUsage,
    ResultRecord,
    ReviewItem,
    ReviewStatus,
    TrainingLabel,
)

T = TypeVar("T")

_LABEL_COLS: Final = ("request_id", "source", "text", "language", "label", "labeller",
                      "created_at")
_UPSERT_LABEL: Final = (
    f"INSERT INTO training_labels ({', '.join(_LABEL_COLS)}) VALUES "
    f"({', '.join(f'${i}' for i in range(1, len(_LABEL_COLS) + 1))}) "
    "ON CONFLICT (request_id, source) DO UPDATE SET text = EXCLUDED.text, "
    "language = EXCLUDED.language, label = EXCLUDED.label, labeller = EXCLUDED.labeller, "
    "created_at = EXCLUDED.created_at")
#: A person's label replaces the result's; the tier that was replaced keeps its opinion.
_RESOLVE: Final = """
    UPDATE results SET
        fast_sentiment = COALESCE(fast_sentiment, CASE WHEN tier = 'fast' THEN sentiment END),
        fast_confidence = COALESCE(fast_confidence, CASE WHEN tier = 'fast' THEN confidence END),
        llm_sentiment = COALESCE(llm_sentiment,
                                 CASE WHEN tier = 'llm' AND sentiment <> 'mixed'
                                      THEN sentiment END),
        llm_confidence = COALESCE(llm_confidence, CASE WHEN tier = 'llm' THEN confidence END),
        sentiment = $1, confidence = 1.0, model_used = $2, tier = 'review', needs_review = false
    WHERE request_id = $3
"""
_SELECT_ONE: Final = f"SELECT {SELECT_RESULT} FROM results r WHERE r.request_id = $1"
_N_RESULT: Final = len(RESULT_COLUMNS)


def review_model_used(reviewer: str) -> str:
    """``model_used`` of a result a person decided (as on SQLite)."""
    return f"review:{reviewer}"


def _label_from_row(row: Row) -> TrainingLabel:
    request_id, source, text, language, label, labeller, created = row
    return TrainingLabel(request_id=request_id, source=source, text=text, language=language,
                         label=label, labeller=labeller, created_at=created)


def _resolved(record: ResultRecord, reviewer: str, at: datetime) -> ReviewItem:
    label = record.result.sentiment
    return ReviewItem(record=record, status="resolved",
                      label=None if label == "mixed" else label, reviewer=reviewer,
                      resolved_at=at)


class PgReviewMixin:
    """Review-queue, training-label and LLM-spend methods of ``ResultStore`` on PostgreSQL."""

    if TYPE_CHECKING:
        async def _run(self, what: str, body: Callable[[Conn], Awaitable[T]], *,
                       readonly: bool = False, isolation: Any = "read_committed") -> T: ...

    async def write_late_results(self, batch: Sequence[ResultRecord]) -> int:
        if not batch:
            return 0
        latest = {row[0]: row for row in map(result_row, batch)}  # validates; last one wins
        params = columns(list(latest.values()), _N_RESULT)
        upsert = UPSERT_UNNEST + " WHERE results.tier <> 'review'"

        async def body(conn: Conn) -> int:
            status = await conn.execute(upsert, *params)
            return int(status.rsplit(" ", 1)[-1])

        return await self._run(f"writing {len(batch)} late results", body)

    async def write_late_aspects(self, batch: Sequence[ResultRecord]) -> int:
        if not batch:
            return 0
        latest = {rec.result.request_id: rec for rec in batch}  # the last one of an id wins
        # request_id order, as write_results: concurrent writers lock rows in one order.
        ordered = sorted(latest.items())
        params = columns([result_row(rec) for _, rec in ordered], _N_RESULT)  # validates
        aspect_rows = {rid: [aspect_row(a) for a in rec.result.aspects] for rid, rec in ordered}
        upsert = UPSERT_UNNEST + " WHERE results.tier <> 'review' RETURNING request_id"

        async def body(conn: Conn) -> int:
            # Only the rows the upsert wrote get new aspects (a person's label keeps its own).
            written = sorted(r[0] for r in await conn.fetch(upsert, *params))
            await replace_aspects(conn, written,
                                  sorted(a for rid in written for a in aspect_rows[rid]))
            return len(written)

        return await self._run(f"writing {len(latest)} late aspect results", body)

    async def review_items(self, status: ReviewStatus, *, limit: int = 50) -> list[ReviewItem]:
        if limit < 1:
            raise ValueError("limit must be >= 1")

        async def body(conn: Conn) -> list[ReviewItem]:
            if status == "open":
                rows = await conn.fetch(
                    f"SELECT {SELECT_RESULT} FROM results r WHERE r.needs_review "
                    "ORDER BY r.created_at, r.request_id LIMIT $1", limit)
                return [ReviewItem(record=record_from_row(r, ()), status="open") for r in rows]
            rows = await conn.fetch(
                f"SELECT {SELECT_RESULT}, t.labeller, t.created_at FROM results r "
                "JOIN training_labels t ON t.request_id = r.request_id AND t.source = 'review' "
                "WHERE r.tier = 'review' ORDER BY t.created_at DESC, r.request_id LIMIT $1",
                limit)
            return [_resolved(record_from_row(r, ()), r[_N_RESULT], r[_N_RESULT + 1])
                    for r in rows]

        return await self._run(f"reading {status} review items", body, readonly=True)

    async def resolve_review(self, request_id: str, label: AspectLabel,
                             reviewer: str) -> ReviewItem:
        now = datetime.now(UTC)

        async def body(conn: Conn) -> ReviewItem:
            # FOR UPDATE: two reviewers labelling the same post at once are serialised.
            row = await conn.fetchrow(_SELECT_ONE + " FOR UPDATE", request_id)
            if row is None:
                raise ReviewNotFoundError(f"no result for request_id {request_id!r}")
            current = record_from_row(row, ())
            if current.result.tier == "review":
                if current.result.sentiment != label:
                    raise ReviewConflictError(request_id, current.result.sentiment)
                labelled = await conn.fetchrow(
                    "SELECT labeller, created_at FROM training_labels "
                    "WHERE request_id = $1 AND source = 'review'", request_id)
                who, at = (labelled[0], labelled[1]) if labelled is not None else (reviewer, now)
                return _resolved(current, who, at)
            await conn.execute(_RESOLVE, label, review_model_used(reviewer), request_id)
            await conn.execute(_UPSERT_LABEL, request_id, "review", current.request.text,
                               current.result.language_detected, label, reviewer, now)
            updated = await conn.fetchrow(_SELECT_ONE, request_id)
            assert updated is not None  # locked above
            return _resolved(record_from_row(updated, ()), reviewer, now)

        return await self._run(f"labelling {request_id!r}", body)

    async def add_training_labels(self, labels: Sequence[TrainingLabel]) -> None:
        if not labels:
            return
        rows = [(lb.request_id, lb.source, lb.text, lb.language, lb.label, lb.labeller,
                 utc(lb.created_at)) for lb in labels]

        async def body(conn: Conn) -> None:
            await conn.executemany(_UPSERT_LABEL, rows)  # one row at a time: duplicates allowed

        await self._run(f"adding {len(rows)} training labels", body)

    async def training_labels(self, since: datetime | None = None) -> list[TrainingLabel]:
        async def body(conn: Conn) -> list[TrainingLabel]:
            rows = await conn.fetch(
                f"SELECT {', '.join(_LABEL_COLS)} FROM training_labels "
                "WHERE $1::timestamptz IS NULL OR created_at >= $1 "
                "ORDER BY created_at, request_id, source",
                utc(since) if since is not None else None)
            return [_label_from_row(r) for r in rows]

        return await self._run("reading training labels", body, readonly=True)

    async def add_llm_usage(self, usage: LLMUsage) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO llm_usage (day, cost_usd, requests, prompt_tokens, "
                "completion_tokens, posts) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (day) DO UPDATE SET "
                "cost_usd = llm_usage.cost_usd + EXCLUDED.cost_usd, "
                "requests = llm_usage.requests + EXCLUDED.requests, "
                "prompt_tokens = llm_usage.prompt_tokens + EXCLUDED.prompt_tokens, "
                "completion_tokens = llm_usage.completion_tokens + EXCLUDED.completion_tokens, "
                "posts = llm_usage.posts + EXCLUDED.posts",
                usage.day, usage.cost_usd, usage.requests, usage.prompt_tokens,
                usage.completion_tokens, usage.posts)

        await self._run(f"recording LLM usage of {usage.day}", body)

    async def llm_usage(self, day: date) -> LLMUsage:
        async def body(conn: Conn) -> LLMUsage:
            row = await conn.fetchrow(
                "SELECT cost_usd, requests, prompt_tokens, completion_tokens, posts "
                "FROM llm_usage WHERE day = $1", day)
            if row is None:
                return LLMUsage(day=day)
            return LLMUsage(day=day, cost_usd=row[0], requests=row[1], prompt_tokens=row[2],
                            completion_tokens=row[3], posts=row[4])

        return await self._run(f"reading LLM usage of {day}", body, readonly=True)
