"""Batch jobs end to end: a webhook that never succeeds, completion estimates, and resuming
unfinished jobs after a restart of the node on the same store.

Real Hypercorn on a free port in front of a node (like tests/node/test_http_api.py), asyncio
only (Quart and Hypercorn run on asyncio).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from sentiflow.actors.batch_jobs import BusyThroughput
from sentiflow.api.schemas import BatchStatus
from sentiflow.config.settings import Settings
from sentiflow.models.base import Probabilities
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import PRIOR_THROUGHPUT, open_node
from sentiflow.stores.factory import open_result_store
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import BatchJob, BatchView, ClassificationRequest
from tests.api.webhook_receiver import receiver
from tests.net import free_port, serving
from tests.node.backends import LexiconBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SlowBackend(LexiconBackend):
    """The lexicon model at a known speed: each model call takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        time.sleep(self.seconds)
        return super().predict_proba(texts, languages)


@asynccontextmanager
async def served(settings: Settings, detector: LanguageDetector,
                 backend: LexiconBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with open_node(settings, backends=[backend], detector=detector) as node, \
            serving(node) as client:
        yield client


def items(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"text": f"great product {i}" if i % 2 else f"awful service {i}",
             "request_id": f"{prefix}-{i}"} for i in range(n)]


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/api/classify/batch", json=body)
    assert r.status_code == 202, r.text
    accepted: dict[str, Any] = r.json()
    return accepted


async def wait_batch(client: httpx.AsyncClient, batch_id: str, until: Callable[[Any], bool],
                     timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
    with anyio.fail_after(timeout):
        while True:
            status: dict[str, Any] = (await client.get(f"/api/batches/{batch_id}")).json()
            if until(status):
                return status
            await anyio.sleep(0.01)


def completed(status: dict[str, Any]) -> bool:
    return bool(status["status"] == "completed")


def test_busy_throughput_leaves_idle_time_out() -> None:
    meter = BusyThroughput()
    assert meter.rate == 0.0  # nothing measured: the node falls back to its prior
    meter.busy(100.0)
    meter.done(50, 100.5)
    meter.done(50, 101.0)  # 100 posts in 1 busy second
    meter.idle()
    meter.done(10, 500.0)  # a completion while idle (no mark) is not a sample
    meter.busy(3600.0)  # an hour later
    meter.done(100, 3601.0)
    assert meter.rate == pytest.approx(100.0)  # not 210 posts / 3501 s


async def test_a_batch_whose_webhook_never_succeeds_stays_retrievable(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    secret = "s3cret-for-tests"
    # Every POST fails (500, Retry-After 1 s capped at backoff_max_s = 0.5 s, so the delivery
    # stays visibly in progress for ~1 s); 3 attempts per chunk.
    async with receiver(script=[(500, {"Retry-After": "1"})] * 10, default=500) as hook:
        settings = make_settings(API__PORT=str(free_port()), WEBHOOK__SECRET=secret,
                                 WEBHOOK__ALLOW_HOSTS='["127.0.0.1"]', WEBHOOK__CHUNK_SIZE="10",
                                 WEBHOOK__MAX_ATTEMPTS="3", WEBHOOK__BACKOFF_INITIAL_S="0.5",
                                 WEBHOOK__BACKOFF_MAX_S="0.5")
        async with served(settings, detector, LexiconBackend()) as client:
            sent = items("w", 25)
            accepted = await submit(client, {"items": sent, "webhook_url": hook.url})
            batch_id = accepted["batch_id"]
            # While the webhook is being retried, the results are already there.
            during = await wait_batch(client, batch_id,
                                      lambda s: s["webhook"]["attempts"] >= 1)
            assert during["status"] == "running"
            assert during["webhook"]["state"] == "delivering"
            assert during["done"] == 25
            assert [x["request_id"] for x in during["results"]] == [i["request_id"]
                                                                    for i in sent]
            final = await wait_batch(client, batch_id, completed)
            again = (await client.get(f"/api/batches/{batch_id}")).json()
            assert again == final  # retrievable, unchanged, after delivery gave up
    assert final["count"] == final["done"] == 25
    assert final["error"] is None
    assert [x["request_id"] for x in final["results"]] == [i["request_id"] for i in sent]
    sentiments = [x["sentiment"] for x in final["results"]]
    assert sentiments == ["positive" if i % 2 else "negative" for i in range(25)]
    webhook = final["webhook"]
    assert webhook["url"] == hook.url
    assert webhook["state"] == "failed"
    assert webhook["attempts"] == 3
    assert (webhook["chunks_total"], webhook["chunks_delivered"]) == (3, 0)
    assert "500" in webhook["last_error"]
    assert webhook["last_attempt_at"] is not None
    posts = [x for x in hook.received if x.method == "POST"]
    assert len(posts) == 3  # chunk 0, three times; later chunks are not sent after a failure
    assert {p.headers["x-sentiflow-delivery"] for p in posts} == {f"{batch_id}:0"}


async def test_estimate_grows_with_the_queue_ahead(make_settings: Callable[..., Settings],
                                                   detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    settings = make_settings(API__PORT=str(free_port()), CLASSIFIER__MAX_BATCH="10")
    async with served(settings, detector, backend) as client:
        backend.gate.clear()  # nothing completes: every job stays in the queue
        try:
            a = await submit(client, {"items": items("a", 40)})
            b = await submit(client, {"items": items("b", 40)})
            c = await submit(client, {"items": items("c", 80)})
        finally:
            backend.gate.set()
        ea, eb, ec = (x["estimated_completion_ms"] for x in (a, b, c))
        per_post_ms = 1000.0 / PRIOR_THROUGHPUT  # nothing measured yet: the prior rate
        # Ahead of each job: the posts of the jobs before it, plus the few submissions (a
        # job's chunks of 10) waiting at the detectors at that moment.
        assert ea == pytest.approx(40 * per_post_ms)  # an idle node: just its own posts
        assert (40 + 40) * per_post_ms <= eb <= (40 + 40 + 4) * per_post_ms
        assert (40 + 40 + 80) * per_post_ms <= ec <= (40 + 40 + 80 + 8) * per_post_ms
        assert ea < eb < ec
        for job in (a, b, c):
            await wait_batch(client, job["batch_id"], completed)


async def test_estimate_uses_the_measured_batch_throughput(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    # One classifier, 5 posts per model call, 20 ms per call: at most ~250 posts/s, a quarter
    # of the prior, so an estimate from the prior would be ~4x too short.
    settings = make_settings(API__PORT=str(free_port()), CLASSIFIER__MAX_BATCH="5")
    async with served(settings, detector, SlowBackend(0.02)) as client:
        first = await submit(client, {"items": items("m1", 100)})
        assert first["estimated_completion_ms"] == pytest.approx(100 * 1000 / PRIOR_THROUGHPUT)
        started = time.perf_counter()
        await wait_batch(client, first["batch_id"], completed)
        observed_ms = (time.perf_counter() - started) * 1000  # what 100 posts really took
        await anyio.sleep(1.0)  # idle time must not dilute the measured rate
        second = await submit(client, {"items": items("m2", 100)})
        estimate = second["estimated_completion_ms"]
        assert 0.5 * observed_ms <= estimate <= 1.5 * observed_ms, (estimate, observed_ms)
        assert estimate > 2.5 * first["estimated_completion_ms"]
        await wait_batch(client, second["batch_id"], completed)


async def wait_view(store: ResultStore, until: Callable[[BatchView], bool]) -> BatchView:
    with anyio.fail_after(20):
        while True:
            view = await store.get_batch("job")
            if view is not None and until(view):
                return view
            await anyio.sleep(0.01)


def requests(n: int) -> list[ClassificationRequest]:
    return [ClassificationRequest(request_id=f"r-{i:03d}", text=f"great product {i}"
                                  if i % 2 else f"awful service {i}", priority="batch")
            for i in range(n)]


async def test_an_unfinished_batch_resumes_after_a_restart_and_finishes_exactly_once(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    n = 200
    sent = requests(n)
    async with receiver() as hook:
        settings = make_settings(CLASSIFIER__MAX_BATCH="5", WEBHOOK__SECRET="s3cret-for-tests",
                                 WEBHOOK__ALLOW_HOSTS='["127.0.0.1"]',
                                 WEBHOOK__CHUNK_SIZE="50")
        first = SlowBackend(0.02)  # 40 chunks of 5 at ~20 ms each: ~1 s for the whole job
        async with open_node(settings, backends=[first], detector=detector) as node:
            await node.store.create_batch(BatchJob(batch_id="job", count=n,
                                                   webhook_url=hook.url), sent)
            await node.start_batch("job", n)
            await wait_view(node.store, lambda v: v.job.done >= 20)
        # Stopped mid-job (the node drained what was in flight). What is left to do?
        store = await open_result_store(settings.storage.results_url)
        try:
            view = await store.get_batch("job")
            pending = await store.pending_requests("job")
            unfinished = [j.batch_id for j in await store.unfinished_batches()]
        finally:
            await store.close()
        assert view is not None
        assert view.job.status == "running"
        assert unfinished == ["job"]
        assert 0 < len(pending) < n, len(pending)
        assert len(view.results) == n - len(pending)
        # In-flight chunks were written by the drain after the job's task was cancelled: the
        # stored counter may lag, the API's progress does not.
        assert view.job.done <= len(view.results)
        assert BatchStatus.from_view(view).done == len(view.results)
        assert hook.received == []  # the webhook waits for the whole job

        second = LexiconBackend()
        async with open_node(settings, backends=[second], detector=detector) as node:
            view = await wait_view(node.store, lambda v: v.job.status == "completed")
    assert view.job.done == n
    assert [r.request.request_id for r in view.results] == [r.request_id for r in sent]
    # The restarted node classified exactly what was left, each post once.
    resumed = Counter(text for call in second.calls for text in call)
    assert set(resumed.values()) == {1}
    assert set(resumed) == {r.text for r in pending}
    # ... and delivered the whole job, each result once, in order.
    delivered = [x["request_id"] for post in hook.received if post.method == "POST"
                 for x in json.loads(post.body)["results"]]
    assert delivered == [r.request_id for r in sent]
    assert view.webhook.state == "delivered"
