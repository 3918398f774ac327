"""The ClickHouse trend store on chDB (the real engine, embedded): rollups against a brute-force
count, daily / weekly from hourly, filters, empty ranges, replays, schema versioning.

The brute force below buckets events with its own arithmetic (``weekday()``), not the module's
``floor_to``, so a shared bug cannot hide. The HTTP path to a ClickHouse server is not covered
(no modern server is installable here; docs/trends.md).
"""

from __future__ import annotations

import random
import socket
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentiflow.stores.clickhouse import ClickHouseTrendStore
from sentiflow.stores.clickhouse.schema import MIGRATIONS, Migration
from sentiflow.stores.errors import StorageClosedError, StorageError, UnsupportedStoreURLError
from sentiflow.stores.records import (
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
    Sentiment,
)
from sentiflow.stores.trends import (
    STEP,
    TrendQuery,
    TrendSeries,
    TrendStore,
    Window,
    bucket_count,
    bucket_starts,
    floor_to,
    open_trend_store,
    opened_trend_store,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday
SOURCES = ("twitter", "reddit", "support")
LANGS = ("en", "de", "es")
TOPICS = (None, "launch", "billing")
LABELS: tuple[Sentiment, ...] = ("negative", "neutral", "positive", "mixed")


def event(i: int, ts: datetime, *, source: str = "api", language: str = "en",
          topic: str | None = None, sentiment: Sentiment = "positive",
          confidence: float = 0.9) -> ResultRecord:
    rid = f"ev-{i}"
    return ResultRecord(
        request=ClassificationRequest(request_id=rid, text=f"post {i}", source=source,
                                      topic=topic, received_at=ts),
        result=ClassificationResult(request_id=rid, sentiment=sentiment, confidence=confidence,
                                    model_used="lexicon", language_detected=language,
                                    latency_ms=1.0))


def random_events(n: int, seed: int = 7, days: int = 20) -> list[ResultRecord]:
    rng = random.Random(seed)
    return [event(i, T0 + timedelta(seconds=rng.randrange(days * 86400)),
                  source=rng.choice(SOURCES), language=rng.choice(LANGS),
                  topic=rng.choice(TOPICS), sentiment=rng.choice(LABELS),
                  confidence=round(rng.uniform(0.34, 1.0), 3))
            for i in range(n)]


def brute_bucket(ts: datetime, window: Window) -> datetime:
    hour = ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if window == "hourly":
        return hour
    day = hour.replace(hour=0)
    return day if window == "daily" else day - timedelta(days=day.weekday())


def brute_force(records: Sequence[ResultRecord], q: TrendQuery
                ) -> dict[datetime, tuple[Counter[str], float]]:
    out: dict[datetime, tuple[Counter[str], float]] = defaultdict(lambda: (Counter(), 0.0))
    for r in records:
        ts = r.request.received_at
        if not q.start <= ts < q.end:
            continue
        if q.source is not None and r.request.source != q.source:
            continue
        if q.language is not None and r.result.language_detected != q.language:
            continue
        if q.topic is not None and (r.request.topic or "") != q.topic:
            continue
        key = brute_bucket(ts, q.window)
        counts, conf = out[key]
        counts[r.result.sentiment] += 1
        out[key] = (counts, conf + r.result.confidence)
    return out


def assert_matches(series: TrendSeries, expected: dict[datetime, tuple[Counter[str], float]]
                   ) -> None:
    got = {b.timestamp: b for b in series.buckets}
    assert set(expected) <= set(got), "a non-empty bucket is missing from the answer"
    for ts, bucket in got.items():
        counts, conf = expected.get(ts, (Counter(), 0.0))
        assert (bucket.positive, bucket.negative, bucket.neutral, bucket.mixed) == (
            counts["positive"], counts["negative"], counts["neutral"], counts["mixed"]), ts
        assert bucket.total == sum(counts.values())
        assert bucket.confidence_sum == pytest.approx(conf, abs=1e-3)
        if bucket.total:
            assert bucket.avg_confidence == pytest.approx(conf / bucket.total, abs=1e-4)
        else:
            assert bucket.avg_confidence is None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ClickHouseTrendStore]:
    async with await ClickHouseTrendStore.open(f"chdb://{tmp_path}/trends") as s:
        yield s


async def test_rollup_matches_brute_force_for_every_window_and_filter(
        store: ClickHouseTrendStore) -> None:
    records = random_events(3000)
    for i in range(0, len(records), 700):  # several inserts, as the writer makes them
        assert await store.write_results(records[i:i + 700]) == len(records[i:i + 700])
    start, end = T0 + timedelta(hours=5, minutes=30), T0 + timedelta(days=17, hours=3)
    filters: list[dict[str, str | None]] = [
        {}, {"source": "twitter"}, {"language": "de"}, {"topic": "launch"},
        {"source": "reddit", "language": "es", "topic": "billing"}, {"source": "nowhere"},
    ]
    for window in ("hourly", "daily", "weekly"):
        for f in filters:
            q = TrendQuery(window=window, start=start, end=end, **f)
            series = await store.query(q)
            assert [b.timestamp for b in series.buckets] == list(
                bucket_starts(window, q.start, q.end))
            assert_matches(series, brute_force(records, q))
            raw = await store.query(q, from_raw=True)
            assert [(b.timestamp, b.total) for b in raw.buckets] == [
                (b.timestamp, b.total) for b in series.buckets]


async def test_daily_and_weekly_are_sums_of_hourly(store: ClickHouseTrendStore) -> None:
    await store.write_results(random_events(1500, seed=3))
    start, end = T0, T0 + timedelta(weeks=3)
    hourly = await store.query(TrendQuery(window="hourly", start=start, end=end))
    for window in ("daily", "weekly"):
        coarse = await store.query(TrendQuery(window=window, start=start, end=end))
        for b in coarse.buckets:
            inside = [h for h in hourly.buckets
                      if floor_to(h.timestamp, window) == b.timestamp]
            assert b.positive == sum(h.positive for h in inside)
            assert b.negative == sum(h.negative for h in inside)
            assert b.total == sum(h.total for h in inside)
            assert b.confidence_sum == pytest.approx(sum(h.confidence_sum for h in inside))
    assert sum(b.total for b in hourly.buckets) == 1500


async def test_empty_store_and_empty_ranges_give_zero_buckets(
        store: ClickHouseTrendStore) -> None:
    q = TrendQuery(window="daily", start=T0, end=T0 + timedelta(days=3))
    empty = await store.query(q)
    assert [b.timestamp for b in empty.buckets] == [T0 + timedelta(days=d) for d in range(3)]
    assert all(b.total == 0 and b.avg_confidence is None for b in empty.buckets)
    await store.write_results([event(1, T0 + timedelta(days=10))])
    assert all(b.total == 0 for b in (await store.query(q)).buckets)
    later = TrendQuery(window="hourly", start=T0 + timedelta(days=10),
                       end=T0 + timedelta(days=10, hours=2))
    assert [b.total for b in (await store.query(later)).buckets] == [1, 0]


async def test_range_is_half_open_on_whole_hours(store: ClickHouseTrendStore) -> None:
    await store.write_results([
        event(1, T0 + timedelta(hours=1)),                        # exactly at start
        event(2, T0 + timedelta(hours=2, minutes=59, seconds=59)),
        event(3, T0 + timedelta(hours=3)),                        # exactly at end: excluded
    ])
    q = TrendQuery(window="hourly", start=T0 + timedelta(hours=1, minutes=20),
                   end=T0 + timedelta(hours=2, minutes=10))
    assert (q.start, q.end) == (T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert [b.total for b in (await store.query(q)).buckets] == [1, 1]


async def test_replayed_request_ids_are_counted_once(store: ClickHouseTrendStore) -> None:
    first = random_events(400, seed=11)
    assert await store.write_results(first) == 400
    # A replay of part of it (as after a crash before the Kafka commit), mixed with new ones.
    replay = first[100:300] + [event(10_000 + i, T0 + timedelta(hours=i)) for i in range(5)]
    assert await store.write_results(replay) == 5
    # The same id twice within one batch counts once, the last version wins.
    dup = [event(20_000, T0, sentiment="negative"), event(20_000, T0, sentiment="positive")]
    assert await store.write_results(dup) == 1
    q = TrendQuery(window="weekly", start=T0, end=T0 + timedelta(weeks=4))
    series = await store.query(q)
    assert sum(b.total for b in series.buckets) == 406
    assert_matches(series, brute_force(
        [*first, *replay[200:], dup[1]], q))


async def test_timestamps_in_other_zones_are_bucketed_in_utc(
        store: ClickHouseTrendStore) -> None:
    plus5 = timezone(timedelta(hours=5))
    # 2026-11-03 02:30 at +05:00 is 2026-11-02 21:30 UTC: Monday's bucket, not Tuesday's.
    await store.write_results([event(1, datetime(2026, 11, 3, 2, 30, tzinfo=plus5))])
    q = TrendQuery(window="daily", start=T0, end=T0 + timedelta(days=2))
    assert [b.total for b in (await store.query(q)).buckets] == [1, 0]


async def test_schema_is_versioned_and_data_survives_reopening(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/trends"
    async with await ClickHouseTrendStore.open(url) as store:
        await store.write_results(random_events(50))
    async with await ClickHouseTrendStore.open(url) as store:
        assert await store.applied_migrations() == [(m.version, m.name) for m in MIGRATIONS]
        q = TrendQuery(window="weekly", start=T0, end=T0 + timedelta(weeks=4))
        assert sum(b.total for b in (await store.query(q)).buckets) == 50
        assert await store.write_results(random_events(50)) == 0  # still known after reopen


async def test_separate_databases_do_not_mix(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/trends"
    async with await ClickHouseTrendStore.open(url, database="tenant_a") as a, \
            await ClickHouseTrendStore.open(url, database="tenant_b") as b:
        await a.write_results([event(1, T0)])
        q = TrendQuery(window="daily", start=T0, end=T0 + timedelta(days=1))
        assert [x.total for x in (await a.query(q)).buckets] == [1]
        assert [x.total for x in (await b.query(q)).buckets] == [0]


async def test_errors_are_storage_errors(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedStoreURLError):
        await open_trend_store("mysql://localhost/x")
    with pytest.raises(UnsupportedStoreURLError):
        await open_trend_store("chdb://relative-dir")
    with pytest.raises(UnsupportedStoreURLError):
        await ClickHouseTrendStore.open(f"chdb://{tmp_path}/t", database="x; DROP TABLE y")
    store: TrendStore = await open_trend_store(f"chdb://{tmp_path}/t")
    assert isinstance(store, TrendStore)
    await store.close()
    with pytest.raises(StorageClosedError):
        await store.write_results([event(1, T0)])
    with pytest.raises(StorageClosedError):
        await store.query(TrendQuery(window="hourly", start=T0, end=T0 + timedelta(hours=1)))
    await store.close()  # idempotent


async def test_unreachable_server_is_a_storage_error_without_credentials() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StorageError) as caught:
        await open_trend_store(f"clickhouse://sentiflow:hunter2-secret@127.0.0.1:{port}")
    assert "hunter2" not in str(caught.value)
    assert str(port) in str(caught.value)


async def test_unopenable_store_degrades_to_none_unless_required(tmp_path: Path) -> None:
    # chDB hosts one data directory per process: while one is open, another cannot be.
    async with await ClickHouseTrendStore.open(f"chdb://{tmp_path}/first"):
        async with opened_trend_store(f"chdb://{tmp_path}/second") as degraded:
            assert degraded is None
        with pytest.raises(StorageError):
            async with opened_trend_store(f"chdb://{tmp_path}/second", required=True):
                pass
    async with opened_trend_store(None) as disabled:
        assert disabled is None


def test_query_rejects_empty_ranges() -> None:
    with pytest.raises(ValueError, match="before end"):
        TrendQuery(window="hourly", start=T0, end=T0)
    # Same hour after widening is fine: [10:00, 11:00).
    q = TrendQuery(window="hourly", start=T0 + timedelta(minutes=10),
                   end=T0 + timedelta(minutes=20))
    assert q.end - q.start == timedelta(hours=1)


@given(start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                          timezones=st.just(UTC)),
       hours=st.integers(min_value=1, max_value=24 * 400),
       window=st.sampled_from(["hourly", "daily", "weekly"]))
def test_bucket_arithmetic(start: datetime, hours: int, window: Window) -> None:
    end = start + timedelta(hours=hours)
    starts = list(bucket_starts(window, start, end))
    step = STEP[window]
    assert len(starts) == bucket_count(window, start, end)
    assert starts[0] <= start < starts[0] + step
    assert all(brute_bucket(s, window) == s for s in starts)
    assert all(b - a == step for a, b in pairwise(starts))
    assert starts[-1] < end <= starts[-1] + step


async def test_older_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/trends"
    records = random_events(500, seed=5)
    async with await ClickHouseTrendStore.open(url, migrations=MIGRATIONS[:1]) as v1:
        assert await v1.applied_migrations() == [(1, MIGRATIONS[0].name)]
        await v1.write_results(records)
    async with await ClickHouseTrendStore.open(url) as latest:
        assert [v for v, _ in await latest.applied_migrations()] == [m.version for m in MIGRATIONS]
        q = TrendQuery(window="daily", start=T0, end=T0 + timedelta(days=20), source="reddit",
                       language="es")
        assert_matches(await latest.query(q), brute_force(records, q))


SYNTHETIC = """
INSERT INTO sentiflow.trend_events
    (request_id, ts, source, language, topic, sentiment, confidence, model_used, tier,
     needs_review)
SELECT concat('s-', toString(number)),
       toDateTime64('2026-11-02 00:00:00', 3, 'UTC') + toIntervalSecond(number * 7),
       ['twitter', 'reddit', 'support', 'api'][1 + number % 4],
       ['en', 'de', 'es', 'fr', 'it', 'pt'][1 + intDiv(number, 4) % 6],
       ['', 'launch', 'billing', 'shipping'][1 + intDiv(number, 24) % 4],
       ['negative', 'neutral', 'positive'][1 + number % 3], 0.7, 'm', 'fast', false
FROM numbers(250000)
"""


@pytest.mark.parametrize("migrations", [MIGRATIONS[:1], MIGRATIONS], ids=["v1", "latest"])
async def test_filtered_queries_read_the_projection(tmp_path: Path,
                                                    migrations: Sequence[Migration]) -> None:
    async with await ClickHouseTrendStore.open(f"chdb://{tmp_path}/t",
                                               migrations=migrations) as store:
        await store.execute(SYNTHETIC)  # ~20 days, 24 combinations an hour: a real rollup
        q = TrendQuery(window="daily", start=T0, end=T0 + timedelta(days=20), source="reddit",
                       language="de")
        plan = await store.explain(q)
        assert ("ReadFromMergeTree (by_filters)" in plan) == (len(migrations) > 1), plan
        unfiltered = await store.explain(TrendQuery(window="daily", start=T0,
                                                    end=T0 + timedelta(days=2)))
        assert "ReadFromMergeTree (sentiflow.trend_hourly)" in unfiltered
        rollup, raw = await store.query(q), await store.query(q, from_raw=True)
        assert [b.total for b in rollup.buckets] == [b.total for b in raw.buckets]
        assert sum(b.total for b in rollup.buckets) > 10_000
