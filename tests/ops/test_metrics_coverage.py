"""GET /metrics covers every actor and tier of a node with its Kafka readers, trends, drift
watching and aspect workers on, with values that match what the node did.

In-process node (the lexicon test model, which can be held on a gate to back work up), real
Hypercorn, real tansu broker, real chDB trend store. The LLM tier's families are asserted in
tests/llm. asyncio only: aiokafka and Quart need it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentiflow.config.settings import load_settings
from sentiflow.config.tree import DRIFT, ROUTER, SINK, TRENDS
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import Node, open_node
from sentiflow.runtime import ActorSnapshot, GaugeSnapshot, SupervisorSnapshot
from tests.ingest.kafka_helpers import create_topics, post, produce
from tests.ingest.tansu import Tansu
from tests.net import free_port, serving
from tests.node.backends import LexiconBackend
from tests.ops.conftest import kafka_env

pytestmark = pytest.mark.anyio

READER = "/root/ingest/reader-0"
CLASSIFIER = "/root/pipeline/classifier-0"
KAFKA_POSTS = 20
API_POSTS = 10
MAX_IN_FLIGHT = 4

#: {family name: {sample name + sorted labels: value}}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} not on /metrics"
    return samples[key]


def gauge(node: Node, path: str, name: str) -> float | None:
    snap = node.snapshot().find(path)
    metric = snap.metrics.get(name) if isinstance(snap, ActorSnapshot) else None
    return metric.value if isinstance(metric, GaugeSnapshot) else None


async def until(check: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.05)


async def test_every_actor_and_tier_is_on_metrics(tmp_path: Path, kafka_broker: Tansu,
                                                  detector: LanguageDetector) -> None:
    run = f"metrics{os.getpid()}-{time.monotonic_ns()}"
    settings = load_settings(None, env={
        "SENTIFLOW_NODE__HOME": str(tmp_path / "home"),
        "SENTIFLOW_NODE__DATA_DIR": str(tmp_path / "no-data"),
        "SENTIFLOW_API__PORT": str(free_port()), "SENTIFLOW_API__RATE_LIMIT_PER_SECOND": "0",
        "SENTIFLOW_STORAGE__SQLITE_SYNCHRONOUS": "NORMAL",
        "SENTIFLOW_TRENDS__ENABLED": "true", "SENTIFLOW_DRIFT__ENABLED": "true",
        "SENTIFLOW_ASPECTS__ENABLED": "true",
        "SENTIFLOW_KAFKA__MAX_IN_FLIGHT_POSTS": str(MAX_IN_FLIGHT),
        **kafka_env(kafka_broker, run)})
    topic = settings.kafka.topics[0]
    await create_topics(kafka_broker.bootstrap, {topic: 2, settings.kafka.dead_letter_topic: 1})
    model = LexiconBackend()
    async with open_node(settings, backends=[model], detector=detector) as node, \
            serving(node) as client:
        await until(lambda: gauge(node, READER, "assigned_partitions") == 2,
                    "the reader's partitions")

        # Backed up: the model holds its batch, so Kafka posts pile up past the in-flight
        # limit; the reader pauses and the lag counts every post not yet durable.
        model.gate.clear()
        await produce(kafka_broker.bootstrap, topic,
                      [post(f"great phone {i}") for i in range(KAFKA_POSTS)])
        await until(lambda: gauge(node, READER, "paused") == 1
                    and gauge(node, READER, "lag") == KAFKA_POSTS, "paused with lag", 8)
        backed_up = await scrape(client)
        model.gate.set()
        assert value(backed_up, "sentiflow_actor_paused", path=READER) == 1
        assert value(backed_up, "sentiflow_actor_lag", path=READER) == KAFKA_POSTS
        assert value(backed_up, "sentiflow_actor_in_flight", path=READER) >= MAX_IN_FLIGHT

        for i in range(API_POSTS):
            r = await client.post("/api/classify", json={
                "text": f"the battery is awful but the screen is great {i}",
                "aspects": i == 0})
            assert r.status_code == 200, r.text
        total = KAFKA_POSTS + API_POSTS
        await until(lambda: gauge(node, READER, "lag") == 0
                    and gauge(node, READER, "paused") == 0, "the lag back to 0")

        def counter(path: str, name: str) -> int:
            snap = node.snapshot().find(path)
            got = snap.metrics.get(name, 0) if isinstance(snap, ActorSnapshot) else 0
            return got if isinstance(got, int) else 0

        await until(lambda: counter(TRENDS, "inserted") == total
                    and counter(DRIFT, "observed") == total, "trends and drift to catch up")
        samples = await scrape(client)
        snapshot = node.snapshot()

    # Every actor: mailbox, throughput (messages processed), latency histogram, restarts.
    actors = [n for n in snapshot.walk() if isinstance(n, ActorSnapshot)]
    supervisors = [n for n in snapshot.walk() if isinstance(n, SupervisorSnapshot)]
    assert {READER, CLASSIFIER, ROUTER, SINK, TRENDS, DRIFT} <= {a.path for a in actors}
    for actor in actors:
        path = actor.path
        assert value(samples, "sentiflow_actor_mailbox_capacity", path=path) > 0, path
        assert value(samples, "sentiflow_actor_mailbox_depth", path=path) >= 0, path
        assert value(samples, "sentiflow_actor_messages_processed_total", path=path) >= 0
        assert value(samples, "sentiflow_actor_restarts_total", path=path) == 0, path
        assert value(samples, "sentiflow_actor_running", path=path, state="running") == 1
        assert value(samples, "sentiflow_actor_processing_seconds_count", path=path) == \
            value(samples, "sentiflow_actor_messages_processed_total", path=path), path
    for sup in supervisors:
        assert value(samples, "sentiflow_supervisor_running", path=sup.path,
                     state="running") == 1
        assert value(samples, "sentiflow_supervisor_max_restarts", path=sup.path,
                     strategy=sup.strategy) > 0
    # The stages every post went through did work, and their timing was observed.
    languages = [a.path for a in actors if a.path.rsplit("/", 1)[-1].startswith("language-")]
    for path in (CLASSIFIER, ROUTER, SINK, TRENDS, DRIFT):
        assert value(samples, "sentiflow_actor_processing_seconds_count", path=path) > 0, path
        assert value(samples, "sentiflow_actor_processing_seconds_sum", path=path) > 0, path
    assert sum(value(samples, "sentiflow_actor_messages_processed_total", path=p)
               for p in languages) > 0

    # Batch sizes: every post was in exactly one classifier batch, sink write, trend insert.
    assert value(samples, "sentiflow_actor_batch_size_sum", path=CLASSIFIER) == total
    assert value(samples, "sentiflow_actor_batch_size_count", path=CLASSIFIER) >= 2
    assert value(samples, "sentiflow_actor_posts_total", path=CLASSIFIER) == total
    assert value(samples, "sentiflow_actor_inference_s_count", path=CLASSIFIER) == \
        value(samples, "sentiflow_actor_batch_size_count", path=CLASSIFIER)
    assert value(samples, "sentiflow_actor_write_batch_size_sum", path=SINK) == total
    assert value(samples, "sentiflow_actor_written_total", path=SINK) == total
    assert value(samples, "sentiflow_actor_latency_s_count", path=SINK) == total
    assert value(samples, "sentiflow_actor_confidence_count", path=SINK) == total
    assert value(samples, "sentiflow_actor_low_confidence_total", path=ROUTER) >= 0

    # Kafka reader: counters, levels back to rest, the backed-up phase seen above.
    assert value(samples, "sentiflow_actor_consumed_total", path=READER) == KAFKA_POSTS
    assert value(samples, "sentiflow_actor_durable_total", path=READER) == KAFKA_POSTS
    assert value(samples, "sentiflow_actor_dead_lettered_total", path=READER) == 0
    assert value(samples, "sentiflow_actor_pauses_total", path=READER) >= 1
    assert value(samples, "sentiflow_actor_commits_total", path=READER) >= 1
    assert value(samples, "sentiflow_actor_produce_to_durable_s_count", path=READER) == \
        KAFKA_POSTS
    assert value(samples, "sentiflow_actor_poll_size_sum", path=READER) == KAFKA_POSTS
    for name, expected in (("lag", 0), ("paused", 0), ("in_flight", 0), ("connected", 1),
                           ("assigned_partitions", 2)):
        assert value(samples, f"sentiflow_actor_{name}", path=READER) == expected, name

    # Trends writer, drift watcher, aspect workers.
    assert value(samples, "sentiflow_actor_inserted_total", path=TRENDS) == total
    assert value(samples, "sentiflow_actor_insert_batch_size_sum", path=TRENDS) == total
    assert value(samples, "sentiflow_actor_insert_s_count", path=TRENDS) >= 1
    assert value(samples, "sentiflow_actor_dropped_total", path=TRENDS) == 0
    assert value(samples, "sentiflow_actor_observed_total", path=DRIFT) == total
    aspect_workers = [a.path for a in actors
                      if a.path.rsplit("/", 1)[-1].startswith("aspects-")]
    assert aspect_workers
    assert sum(value(samples, "sentiflow_actor_posts_analysed_total", path=p)
               for p in aspect_workers if ("sentiflow_actor_posts_analysed_total",
                                           (("path", p),)) in samples) == 1

    # The node and its HTTP API.
    assert value(samples, "sentiflow_node_ready") == 1
    assert value(samples, "sentiflow_node_uptime_seconds") > 0
    assert value(samples, "sentiflow_dead_letters_total") == 0
    assert value(samples, "sentiflow_http_requests_total", route="/api/classify",
                 status="200") == API_POSTS
    assert value(samples, "sentiflow_http_request_seconds_count",
                 route="/api/classify") == API_POSTS
