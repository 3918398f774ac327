"""Fault tests (issue 6 "Evidence"): PostgreSQL restarted under a running stream.

The server is a private cluster of this test (tests.pg), so the shared server is not disturbed.
While it is down the sink's writes fail, the readers retry the submissions with backoff
(``kafka.max_retries``); once it is back everything is written exactly once and committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

from sentiflow.config.settings import Settings
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from tests.ingest.backends import SlowBackend
from tests.ingest.kafka_helpers import committed_offsets, create_topics, post, produce, read_topic
from tests.ingest.tansu import Tansu
from tests.ingest.test_reader import reader_metrics
from tests.ingest.test_scale_out import stored
from tests.pg import PrivateCluster, private_pg, private_pg_cluster  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


async def test_postgres_restart_mid_stream_loses_and_duplicates_nothing(
        broker: Tansu, kafka_settings: Callable[..., Settings], detector: LanguageDetector,
        private_pg: PrivateCluster) -> None:  # noqa: F811
    dsn = private_pg.create_database()
    settings = kafka_settings(STORAGE__RESULTS_URL=dsn, KAFKA__MAX_RETRIES="8",
                              KAFKA__RETRY_BACKOFF_INITIAL_S="0.2",
                              KAFKA__RETRY_BACKOFF_MAX_S="2", KAFKA__MAX_POLL_RECORDS="20",
                              CLASSIFIER__MAX_BATCH="8")
    topic, group, dlq = (settings.kafka.topics[0], settings.kafka.group_id,
                         settings.kafka.dead_letter_topic)
    await create_topics(broker.bootstrap, {topic: 2, dlq: 1})
    placed = await produce(broker.bootstrap, topic, [post(f"good {i}") for i in range(600)])
    want = {f"kafka.{topic}.{p}.{o}" for p, o in placed}
    async with open_node(settings, backends=[SlowBackend(0.01)], detector=detector) as node:
        deadline = time.monotonic() + 30
        while len(await stored(dsn)) < 60:
            assert time.monotonic() < deadline, "nothing stored"
            await anyio.sleep(0.05)
        # ~1-3 s down; in a worker thread so the node keeps running meanwhile
        await anyio.to_thread.run_sync(private_pg.restart)
        deadline = time.monotonic() + 90
        while set(await stored(dsn)) < want:
            assert time.monotonic() < deadline, "not every post was stored after the restart"
            await anyio.sleep(0.2)
        ends: dict[tuple[str, int], int] = {}
        for p, o in placed:
            ends[(topic, p)] = max(ends.get((topic, p), 0), o + 1)
        while (await committed_offsets(broker.bootstrap, group)) != ends:
            assert time.monotonic() < deadline, "offsets not committed"
            await anyio.sleep(0.2)
        # the outage was felt: writes failed and the reader resubmitted
        assert reader_metrics(node)["retried"] > 0
    ids = await stored(dsn)
    assert len(ids) == len(set(ids)) == 600
    assert await read_topic(broker.bootstrap, dlq, expected=0, timeout=1) == []
