"""The TrendsWriter on a real chDB store: batching, retries, giving up without crashing, and as
the sink's listener in a running node (classified posts show up in trends exactly once, even
when replayed, and nothing pending is lost at shutdown). Both anyio backends."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import pytest

from sentiflow.actors.messages import LANE
from sentiflow.actors.trends_writer import TrendsWriter
from sentiflow.config.settings import Settings
from sentiflow.config.tree import TRENDS
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from sentiflow.runtime import ActorSnapshot, ActorSystem, HistogramSnapshot
from sentiflow.stores.clickhouse import ClickHouseTrendStore
from sentiflow.stores.errors import StorageError
from sentiflow.stores.records import (
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
    Sentiment,
)
from sentiflow.stores.trends import TrendQuery, TrendSeries
from tests.node.backends import LexiconBackend

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 2, tzinfo=UTC)
WEEK = TrendQuery(window="weekly", start=T0, end=T0 + timedelta(weeks=1))


def record(i: int, sentiment: Sentiment = "positive") -> ResultRecord:
    rid = f"w-{i}"
    return ResultRecord(
        request=ClassificationRequest(request_id=rid, text="t", received_at=T0),
        result=ClassificationResult(request_id=rid, sentiment=sentiment, confidence=0.8,
                                    model_used="m", language_detected="en", latency_ms=1.0))


class FlakyTrends:
    """A real store behind a switch: the next ``failures`` writes raise StorageError."""

    def __init__(self, inner: ClickHouseTrendStore, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0

    async def write_results(self, records: Sequence[ResultRecord]) -> int:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise StorageError("injected: server unreachable")
        return await self.inner.write_results(records)

    async def query(self, query: TrendQuery) -> TrendSeries:
        return await self.inner.query(query)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def chdb(tmp_path: Path) -> AsyncIterator[ClickHouseTrendStore]:
    async with await ClickHouseTrendStore.open(f"chdb://{tmp_path}/trends") as store:
        yield store


def metrics(system: ActorSystem, path: str) -> dict[str, object]:
    snap = system.snapshot().find(path)
    assert isinstance(snap, ActorSnapshot), path
    return dict(snap.metrics)


async def wait_for(predicate: Callable[[], object], within: float = 10.0) -> None:
    """Poll ``predicate`` (actor metrics have no change notification to wait on)."""
    with anyio.fail_after(within):
        while True:
            if predicate():
                return
            await anyio.sleep(0.01)


async def total(store: ClickHouseTrendStore | FlakyTrends, query: TrendQuery = WEEK) -> int:
    return sum(b.total for b in (await store.query(query)).buckets)


async def test_writer_batches_by_size_and_time(chdb: ClickHouseTrendStore) -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(partial(TrendsWriter, chdb, max_batch=25, max_wait_s=0.05),
                                 "trends", capacity=16)
        for k in range(3):  # 30 records: one size-triggered flush (>= 25), then the timer's
            await ref.tell([record(10 * k + i) for i in range(10)])
        await wait_for(lambda: metrics(system, "/trends").get("inserted") == 30)
        m = metrics(system, "/trends")
        assert m["duplicates"] == 0
        sizes = m["insert_batch_size"]
        assert isinstance(sizes, HistogramSnapshot)
        assert sizes.count == 1  # 30 records arrived before either trigger fired: one insert
        assert await total(chdb) == 30
        await ref.tell([record(5), record(99)])  # one replayed id, one new
        await wait_for(lambda: metrics(system, "/trends").get("inserted") == 31)
        assert metrics(system, "/trends")["duplicates"] == 1
        assert await total(chdb) == 31


async def test_writer_retries_failed_inserts(chdb: ClickHouseTrendStore) -> None:
    flaky = FlakyTrends(chdb, failures=3)
    async with ActorSystem() as system:
        ref = await system.spawn(partial(TrendsWriter, flaky, max_batch=10, max_wait_s=0.0,
                                         max_attempts=5, backoff_initial_s=0.01),
                                 "trends", capacity=16)
        await ref.tell([record(i) for i in range(10)])
        await wait_for(lambda: metrics(system, "/trends").get("inserted") == 10)
        m = metrics(system, "/trends")
        assert (m["insert_failures"], m["dropped"], flaky.calls) == (3, 0, 4)
        assert await total(chdb) == 10


async def test_writer_gives_up_on_a_batch_without_crashing(chdb: ClickHouseTrendStore) -> None:
    flaky = FlakyTrends(chdb, failures=2)
    async with ActorSystem() as system:
        ref = await system.spawn(partial(TrendsWriter, flaky, max_batch=10, max_wait_s=0.0,
                                         max_attempts=2, backoff_initial_s=0.01),
                                 "trends", capacity=16)
        await ref.tell([record(i) for i in range(10)])
        await wait_for(lambda: metrics(system, "/trends").get("dropped") == 10)
        await ref.tell([record(100 + i) for i in range(4)])  # the store is back
        await wait_for(lambda: metrics(system, "/trends").get("inserted") == 4)
        snap = system.snapshot().find("/trends")
        assert isinstance(snap, ActorSnapshot)
        assert snap.restarts == 0
        assert await total(chdb) == 4


def req(i: int, text: str, source: str, topic: str | None) -> ClassificationRequest:
    return ClassificationRequest(request_id=f"n-{i}", text=text, source=source, topic=topic)


TEXTS = ("I love this, it is great", "This is awful and bad", "a table and a chair",
         "Das Essen war wirklich schlecht")


async def test_classified_posts_appear_in_trends_once(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    settings = make_settings(TRENDS__WRITER_MAX_WAIT_MS="5")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        assert node.trends is not None
        requests = [req(i, TEXTS[i % 4], ("twitter", "support")[i % 2],
                        "launch" if i % 3 == 0 else None) for i in range(40)]
        results = await node.entry.classify(requests, lane=LANE["standard"], timeout=10)
        now = datetime.now(UTC)
        today = TrendQuery(window="hourly", start=now - timedelta(hours=1),
                           end=now + timedelta(hours=1))
        trends = node.trends

        async def counted() -> int:
            return sum(b.total for b in (await trends.query(today)).buckets)

        with anyio.fail_after(10):
            while True:
                if await counted() == 40:
                    break
                await anyio.sleep(0.02)
        series = await trends.query(today)
        expected = Counter(r.sentiment for r in results)
        got = Counter({s: sum(getattr(b, s) for b in series.buckets)
                       for s in ("positive", "negative", "neutral", "mixed")})
        assert +got == expected
        conf = sum(b.confidence_sum for b in series.buckets)
        assert conf == pytest.approx(sum(r.confidence for r in results), abs=1e-3)
        by_source = await trends.query(TrendQuery(window="daily", start=today.start,
                                                  end=today.end, source="twitter"))
        assert sum(b.total for b in by_source.buckets) == 20
        by_topic = await trends.query(TrendQuery(window="daily", start=today.start,
                                                 end=today.end, topic="launch"))
        assert sum(b.total for b in by_topic.buckets) == 14
        by_language = await trends.query(TrendQuery(window="daily", start=today.start,
                                                    end=today.end, language="de"))
        assert sum(b.total for b in by_language.buckets) == 10

        # The same posts again (a client retry, a Kafka redelivery): stored again, counted once.
        await node.entry.classify(requests[:15], lane=LANE["standard"], timeout=10)
        await wait_for(lambda: metrics(node.system, TRENDS).get("duplicates") == 15)
        assert await counted() == 40


async def test_pending_events_are_flushed_at_shutdown(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    settings = make_settings(TRENDS__WRITER_MAX_WAIT_MS="60000", TRENDS__WRITER_MAX_BATCH="1000")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        await node.entry.classify([req(i, TEXTS[i % 4], "api", None) for i in range(12)],
                                  lane=LANE["standard"], timeout=10)
        assert metrics(node.system, TRENDS).get("inserted", 0) == 0  # still collecting
    async with await ClickHouseTrendStore.open(settings.storage.trends_url) as reopened:
        now = datetime.now(UTC)
        q = TrendQuery(window="daily", start=now - timedelta(days=1), end=now + timedelta(hours=1))
        assert await total(reopened, q) == 12


async def test_trends_can_be_disabled(make_settings: Callable[..., Settings],
                                      detector: LanguageDetector) -> None:
    settings = make_settings(TRENDS__ENABLED="false")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        assert node.trends is None
        assert node.snapshot().find(TRENDS) is None
        (result,) = await node.entry.classify([req(1, TEXTS[0], "api", None)],
                                              lane=LANE["standard"], timeout=10)
        assert result.sentiment == "positive"


async def test_a_slow_writer_slows_the_sink_instead_of_losing_events(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    # One insert per sink flush and room for one queued flush: the writer (an insert takes
    # milliseconds) falls behind the sink at once. With a dropping hand-off most events would
    # be lost; with the backpressured one every event is counted.
    settings = make_settings(TRENDS__WRITER_MAILBOX_SIZE="1", TRENDS__WRITER_MAX_BATCH="1",
                             TRENDS__WRITER_MAX_WAIT_MS="0", STORAGE__WRITER_MAX_BATCH="1",
                             STORAGE__SQLITE_SYNCHRONOUS="NORMAL", CLASSIFIER__MAX_BATCH="1")
    n = 120
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(partial(node.entry.classify, [req(i, TEXTS[i % 4], "api", None)],
                                      lane=LANE["standard"], timeout=30))
        await wait_for(lambda: metrics(node.system, TRENDS).get("inserted") == n, within=30)
        assert metrics(node.system, TRENDS)["dropped"] == 0
