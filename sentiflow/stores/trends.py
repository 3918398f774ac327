"""The trend-store contract: sentiment counts per hour / day / week, filtered by source,
language and topic.

Trends are a *derived* view of the results: the result store (SQLite / PostgreSQL) is the
record of truth, the trend store keeps one event per classified post plus pre-aggregated hourly
counts so that a dashboard query over millions of posts answers in milliseconds. The
ClickHouse implementation (server over HTTP, or chDB embedded in the process: the same SQL) is
in :mod:`sentiflow.stores.clickhouse`; :func:`open_trend_store` picks it by URL.

This module holds the backend-neutral parts: the contract, the query and answer types and the
bucket arithmetic (windows, alignment, zero filling), so that the API and the tests share one
definition of "a bucket". All times are timezone-aware UTC; weeks start on Monday (ISO 8601).

Guarantees every implementation gives:

* ``write_results`` counts each ``request_id`` once: a record whose ``request_id`` is already
  stored (a replay after a crash, a redelivered Kafka message) is skipped, provided two writers
  do not insert the same ``request_id`` at the same instant (see docs/trends.md).
* Errors are :class:`~sentiflow.stores.errors.StorageError` types, never a driver's exception.
* Methods are safe to call concurrently from many tasks; blocking work runs in worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol, runtime_checkable

from sentiflow.stores.errors import StorageError, UnsupportedStoreURLError
from sentiflow.stores.records import ResultRecord, Sentiment

log = logging.getLogger("sentiflow.stores.trends")

Window = Literal["hourly", "daily", "weekly"]
WINDOWS: Final[tuple[Window, ...]] = ("hourly", "daily", "weekly")
SENTIMENTS: Final[tuple[Sentiment, ...]] = ("negative", "neutral", "positive", "mixed")

HOUR: Final = timedelta(hours=1)
STEP: Final[dict[Window, timedelta]] = {
    "hourly": HOUR, "daily": timedelta(days=1), "weekly": timedelta(weeks=1),
}
_EPOCH_MONDAY: Final = datetime(1970, 1, 5, tzinfo=UTC)  # the first Monday after the epoch


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive value is taken to be UTC already (drivers return naive UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def floor_to(moment: datetime, window: Window) -> datetime:
    """Start of the ``window`` bucket holding ``moment`` (UTC hour, UTC day, Monday 00:00 UTC)."""
    m = as_utc(moment)
    if window == "hourly":
        return m.replace(minute=0, second=0, microsecond=0)
    day = m.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "daily":
        return day
    return day - timedelta(days=(day - _EPOCH_MONDAY).days % 7)


def ceil_to_hour(moment: datetime) -> datetime:
    """The first whole hour at or after ``moment``."""
    floored = floor_to(moment, "hourly")
    return floored if floored == as_utc(moment) else floored + HOUR


def bucket_starts(window: Window, start: datetime, end: datetime) -> Iterator[datetime]:
    """Starts of the ``window`` buckets that overlap ``[start, end)``, in order."""
    step = STEP[window]
    current = floor_to(start, window)
    end = as_utc(end)
    while current < end:
        yield current
        current += step


def bucket_count(window: Window, start: datetime, end: datetime) -> int:
    """How many buckets :func:`bucket_starts` yields (without building them)."""
    first = floor_to(start, window)
    end = as_utc(end)
    if first >= end:
        return 0
    step = STEP[window]
    return -(-(end - first) // step)  # ceiling division of timedeltas


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendQuery:
    """One trend question. The range ``[start, end)`` is widened to whole hours (the rollup's
    resolution): ``start`` down, ``end`` up. Buckets are labelled by their start; the first and
    last bucket of a daily / weekly series count only the hours inside the range."""

    window: Window
    start: datetime
    end: datetime
    source: str | None = None
    language: str | None = None
    topic: str | None = None

    def __post_init__(self) -> None:
        start, end = floor_to(self.start, "hourly"), ceil_to_hour(self.end)
        if start >= end:
            raise ValueError("start must be before end")
        object.__setattr__(self, "start", start)  # frozen: normalised once, here
        object.__setattr__(self, "end", end)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendBucket:
    """Counts of one bucket. ``confidence_sum`` is the sum of the posts' calibrated
    confidences, so averages combine exactly across buckets and stores."""

    timestamp: datetime
    positive: int = 0
    negative: int = 0
    neutral: int = 0
    mixed: int = 0
    confidence_sum: float = 0.0

    @property
    def total(self) -> int:
        return self.positive + self.negative + self.neutral + self.mixed

    @property
    def avg_confidence(self) -> float | None:
        """Mean confidence of the bucket's posts; ``None`` for an empty bucket."""
        total = self.total
        return self.confidence_sum / total if total else None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendSeries:
    """The answer: one bucket per window step over the query's range, empty ones included."""

    query: TrendQuery
    buckets: tuple[TrendBucket, ...]


def zero_filled(query: TrendQuery,
                rows: Sequence[tuple[datetime, Sentiment, int, float]]) -> TrendSeries:
    """A dense series from sparse ``(bucket_start, sentiment, count, confidence_sum)`` rows.

    Rows may come in any order and repeat a ``(bucket, sentiment)`` pair (they are added).
    """
    counts: dict[datetime, dict[str, int]] = {}
    sums: dict[datetime, float] = {}
    for bucket, sentiment, n, conf in rows:
        key = as_utc(bucket)
        per = counts.setdefault(key, dict.fromkeys(SENTIMENTS, 0))
        per[sentiment] += int(n)
        sums[key] = sums.get(key, 0.0) + float(conf)
    buckets = []
    for start in bucket_starts(query.window, query.start, query.end):
        per = counts.get(start, {})
        buckets.append(TrendBucket(
            timestamp=start, positive=per.get("positive", 0), negative=per.get("negative", 0),
            neutral=per.get("neutral", 0), mixed=per.get("mixed", 0),
            confidence_sum=sums.get(start, 0.0)))
    return TrendSeries(query=query, buckets=tuple(buckets))


@runtime_checkable
class TrendStore(Protocol):
    async def write_results(self, records: Sequence[ResultRecord]) -> int:
        """Store one trend event per record whose ``request_id`` is not stored yet; return
        how many were new (the rest were replays and are not counted again)."""
        ...

    async def query(self, query: TrendQuery) -> TrendSeries:
        """Counts per bucket over the query's range (zero-filled), answered from the rollup."""
        ...

    async def close(self) -> None:
        """Release the backend; later calls raise ``StorageClosedError``."""
        ...


async def open_trend_store(url: str, *, database: str = "sentiflow") -> TrendStore:
    """Open the trend store ``url`` names (``chdb:///abs/dir``, ``chdb://memory``,
    ``clickhouse://user:pw@host:8123``, ``http(s)://…``) and bring its schema up to date."""
    scheme = url.partition("://")[0]
    if scheme not in ("chdb", "clickhouse", "http", "https"):
        raise UnsupportedStoreURLError(f"no trend store for URL scheme {scheme!r}")
    from sentiflow.stores.clickhouse import ClickHouseTrendStore  # the driver loads on demand

    return await ClickHouseTrendStore.open(url, database=database)


@asynccontextmanager
async def opened_trend_store(url: str | None, *, database: str = "sentiflow",
                             required: bool = False) -> AsyncIterator[TrendStore | None]:
    """The open trend store for the node's lifetime, closed at exit; ``None`` when ``url`` is
    ``None`` (trends disabled).

    Trends are derived data, so by default a store that cannot be opened (a chDB directory
    locked by another process, a server down at start) is logged as an error and the node runs
    without trends (``GET /api/trends`` answers 503) rather than not at all; ``required=True``
    raises the :class:`StorageError` instead.
    """
    if url is None:
        yield None
        return
    try:
        store = await open_trend_store(url, database=database)
    except StorageError as exc:
        if required:
            raise
        log.error("trend store %s unavailable; running without trends: %s", url, exc)
        yield None
        return
    try:
        yield store
    finally:
        await store.close()


__all__ = [
    "SENTIMENTS",
    "STEP",
    "WINDOWS",
    "TrendBucket",
    "TrendQuery",
    "TrendSeries",
    "TrendStore",
    "Window",
    "as_utc",
    "bucket_count",
    "bucket_starts",
    "ceil_to_hour",
    "floor_to",
    "open_trend_store",
    "opened_trend_store",
    "zero_filled",
]
