"""Fault test (issue 6 "Evidence"): the Kafka broker dies mid-stream (SIGKILL, or a SIGTERM
stop) and restarts on the same port with the same storage.

The broker is tansu on ``s3://`` storage in a local S3 server (moto, tests.ingest.s3), so its
topics, records and the group's committed offsets outlive the broker process, as Apache Kafka's
log directory would. While it is down the reader's fetches, heartbeats and commits fail; aiokafka
reconnects to the restarted broker on the same port and the group re-forms. Afterwards: every
record in Kafka (produced before the crash and after the restart) is in storage exactly once,
the group's committed offsets are the ends of the partitions, and nothing was dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from tests.ingest.backends import SlowBackend
from tests.ingest.kafka_helpers import (
    committed_offsets,
    create_topics,
    post,
    produce,
    read_topic,
    settings_factory,
    stored_ids,
)
from tests.ingest.s3 import S3Server
from tests.ingest.tansu import Tansu
from tests.ingest.test_reader import ends, expected_ids, reader_metrics, until

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

BEFORE, AFTER = 400, 200  # posts produced before the crash, and after the restart
DOWN_S = 1.5  # how long the broker stays dead


@pytest.mark.parametrize("crash", [True, False], ids=["sigkill", "sigterm"])
async def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
        crash: bool, durable_broker: Tansu, s3_server: S3Server, tmp_path: Path,
        names: Callable[[str], str], detector: LanguageDetector) -> None:
    broker = durable_broker
    # few posts in flight and a slow model: at the crash most posts are not fetched yet, so
    # the reader must fetch (and commit) through the restarted broker
    settings = settings_factory(tmp_path, broker, names)(
        KAFKA__MAX_IN_FLIGHT_POSTS="40", KAFKA__MAX_POLL_RECORDS="20",
        CLASSIFIER__MAX_BATCH="8", KAFKA__MAX_RETRIES="8", KAFKA__RETRY_BACKOFF_INITIAL_S="0.2",
        KAFKA__RETRY_BACKOFF_MAX_S="2")
    topic, group, dlq = (settings.kafka.topics[0], settings.kafka.group_id,
                         settings.kafka.dead_letter_topic)
    url = settings.storage.results_url
    await create_topics(broker.bootstrap, {topic: 2, dlq: 1})
    placed = await produce(broker.bootstrap, topic, [post(f"good {i}") for i in range(BEFORE)])
    bucket_objects = s3_server.object_count(broker.storage.removeprefix("s3://").strip("/"))
    assert bucket_objects > 0, "tansu wrote nothing to S3: the restart would prove nothing"

    async with open_node(settings, backends=[SlowBackend(0.02)], detector=detector) as node:
        await until(lambda: len(stored_ids(url)) >= 40, timeout=60, what="some posts stored")

        async def some_committed() -> bool:
            return sum((await committed_offsets(broker.bootstrap, group)).values()) > 0

        await until(some_committed, timeout=30, what="a first commit")
        committed_at_crash = await committed_offsets(broker.bootstrap, group)
        old_pid = broker.process.pid if broker.process else None
        stored_at_crash = len(set(stored_ids(url)))
        # SIGKILL is instant; on SIGTERM tansu drains its connections for ~5 s, then exits
        await anyio.to_thread.run_sync(broker.kill if crash else broker.stop)
        await anyio.sleep(DOWN_S)
        await anyio.to_thread.run_sync(broker.start)
        assert broker.process is not None
        assert broker.process.pid != old_pid
        assert stored_at_crash < BEFORE, "the stream was over before the crash: nothing tested"

        # the restarted broker remembers the group's commits (durable storage, not memory)
        remembered = await committed_offsets(broker.bootstrap, group)
        for tp, offset in committed_at_crash.items():
            assert remembered.get(tp, -1) >= offset

        placed += await produce(broker.bootstrap, topic,
                                [post(f"good {i}") for i in range(BEFORE, BEFORE + AFTER)])
        want = expected_ids(topic, placed)
        assert len(want) == BEFORE + AFTER  # the restarted broker continued the offsets
        await until(lambda: set(stored_ids(url)) >= want, timeout=120,
                    what="every post stored after the restart")

        async def all_committed() -> bool:
            committed = await committed_offsets(broker.bootstrap, group)
            return {k: v for k, v in committed.items() if k[0] == topic} == ends(topic, placed)

        await until(all_committed, timeout=60, what="offsets committed to the partition ends")
        assert reader_metrics(node)["dead_lettered"] == 0

    ids = stored_ids(url)
    assert len(ids) == len(set(ids)) == BEFORE + AFTER  # exactly once in storage
    # counts in Kafka == counts in storage: the topic, read back from the restarted broker
    records = await read_topic(broker.bootstrap, topic, expected=BEFORE + AFTER, timeout=30)
    assert len(records) == BEFORE + AFTER
    assert {f"kafka.{topic}.{r.partition}.{r.offset}" for r in records} == set(ids)
    assert await read_topic(broker.bootstrap, dlq, expected=0, timeout=1) == []
