"""KafkaReader against a real broker (tansu) and a real in-process node (embedded SQLite
store, the lexicon test model). asyncio only: aiokafka needs it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import pytest

from sentiflow.config.settings import Settings
from sentiflow.ingest.reader import ReaderStatus, StatusQuery
from sentiflow.ingest.wire import decode_result, parse_headers
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import Node, open_node
from sentiflow.runtime import ActorSnapshot
from sentiflow.stores.errors import StorageError
from sentiflow.stores.records import ResultRecord
from tests.ingest.backends import SlowBackend
from tests.ingest.kafka_helpers import (
    committed_offsets,
    create_topics,
    post,
    produce,
    read_topic,
    stored_ids,
)
from tests.ingest.tansu import Tansu
from tests.node.backends import LexiconBackend

pytestmark = pytest.mark.anyio

READER = "/root/ingest/reader-0"


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool],
                timeout: float = 20.0, what: str = "condition") -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def reader_metrics(node: Node, path: str = READER) -> dict[str, Any]:
    snap = node.snapshot().find(path)
    assert isinstance(snap, ActorSnapshot)
    return dict(snap.metrics)


async def status(node: Node, path: str = READER) -> ReaderStatus:
    result: ReaderStatus = await node.system.lookup(path).ask(StatusQuery(), timeout=5)
    return result


def expected_ids(topic: str, placed: Sequence[tuple[int, int]]) -> set[str]:
    return {f"kafka.{topic}.{p}.{o}" for p, o in placed}


def ends(topic: str, placed: Sequence[tuple[int, int]]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for p, o in placed:
        out[(topic, p)] = max(out.get((topic, p), 0), o + 1)
    return out


async def test_every_post_is_stored_once_then_committed(
        broker: Tansu, kafka_settings: Callable[..., Settings],
        detector: LanguageDetector) -> None:
    settings = kafka_settings()
    topic, group = settings.kafka.topics[0], settings.kafka.group_id
    await create_topics(broker.bootstrap, {topic: 3, settings.kafka.dead_letter_topic: 1})
    texts = [f"I love this phone {i}" if i % 2 else f"awful service {i}" for i in range(60)]
    placed = await produce(broker.bootstrap, topic, [post(t) for t in texts])
    custom = await produce(broker.bootstrap, topic,
                           [post("great", request_id="mine-1", priority="realtime")])
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        want = expected_ids(topic, placed) | {"mine-1"}
        await until(lambda: set(stored_ids(settings.storage.results_url)) >= want,
                    what="all posts stored")
        target = ends(topic, placed + custom)

        async def committed() -> bool:
            return await committed_offsets(broker.bootstrap, group) == target

        await until(committed, what="offsets committed")
        stored = await node.store.get_result(f"kafka.{topic}.{placed[1][0]}.{placed[1][1]}")
        assert stored is not None
        assert stored.request.source == topic
        assert stored.result.sentiment == "positive"
        assert reader_metrics(node)["durable"] == 61
    ids = stored_ids(settings.storage.results_url)
    assert len(ids) == len(set(ids)) == 61


async def test_restart_mid_stream_loses_and_duplicates_nothing(
        broker: Tansu, kafka_settings: Callable[..., Settings],
        detector: LanguageDetector) -> None:
    """Stop the node while posts are in flight (readers given no time to drain: nothing of
    theirs is committed past what is durable), start a new one on the same group and store."""
    settings = kafka_settings(KAFKA__SHUTDOWN_TIMEOUT_S="0.001", KAFKA__MAX_POLL_RECORDS="20",
                              CLASSIFIER__MAX_BATCH="8")
    topic, group = settings.kafka.topics[0], settings.kafka.group_id
    await create_topics(broker.bootstrap, {topic: 2, settings.kafka.dead_letter_topic: 1})
    placed = await produce(broker.bootstrap, topic, [post(f"good {i}") for i in range(300)])
    slow = SlowBackend(0.05)
    first_written = 0
    async with open_node(settings, backends=[slow], detector=detector) as node:
        await until(lambda: len(stored_ids(settings.storage.results_url)) >= 40,
                    what="some posts stored")
        first_written = reader_metrics(node)["durable"]
    assert first_written < 300, "the first node finished everything: nothing was tested"
    before = await committed_offsets(broker.bootstrap, group)
    async with open_node(settings, backends=[LexiconBackend()], detector=detector):
        await until(lambda: set(stored_ids(settings.storage.results_url))
                    >= expected_ids(topic, placed), what="all posts stored")

        async def committed() -> bool:
            return await committed_offsets(broker.bootstrap, group) == ends(topic, placed)

        await until(committed, what="offsets committed")
    ids = stored_ids(settings.storage.results_url)
    assert len(ids) == len(set(ids)) == 300
    assert sum(before.values()) < 300


async def test_backpressure_pauses_the_consumer_instead_of_buffering(
        broker: Tansu, kafka_settings: Callable[..., Settings],
        detector: LanguageDetector) -> None:
    settings = kafka_settings(KAFKA__MAX_IN_FLIGHT_POSTS="20", KAFKA__MAX_POLL_RECORDS="10",
                              CLASSIFIER__MAX_BATCH="4")
    topic = settings.kafka.topics[0]
    await create_topics(broker.bootstrap, {topic: 2, settings.kafka.dead_letter_topic: 1})
    placed = await produce(broker.bootstrap, topic, [post(f"fine {i}") for i in range(300)])
    model = LexiconBackend()
    model.gate.clear()  # the model blocks: nothing becomes durable
    async with open_node(settings, backends=[model], detector=detector) as node:
        try:
            await until(lambda: reader_metrics(node).get("pauses", 0) >= 1, what="a pause")
            state = await status(node)
            assert state.paused
            assert state.outstanding <= 20 + 10
            await anyio.sleep(0.5)  # stays paused: nothing more is fetched
            assert reader_metrics(node)["consumed"] <= 30
            assert (await status(node)).paused
        finally:
            model.gate.set()
        await until(lambda: len(stored_ids(settings.storage.results_url)) == 300,
                    what="all posts stored after the model unblocked")
        assert not (await status(node)).paused
    assert set(stored_ids(settings.storage.results_url)) == expected_ids(topic, placed)


async def test_bad_input_goes_to_the_dead_letter_topic(
        broker: Tansu, kafka_settings: Callable[..., Settings],
        detector: LanguageDetector) -> None:
    settings = kafka_settings(API__MAX_TEXT_CHARS="40")
    topic, dlq, group = (settings.kafka.topics[0], settings.kafka.dead_letter_topic,
                         settings.kafka.group_id)
    await create_topics(broker.bootstrap, {topic: 1, dlq: 1})
    bad: dict[bytes | None, str] = {
        None: "empty",
        b"\xff\xfe{": "not_utf8",
        b"{not json": "bad_json",
        b"[1, 2]": "not_object",
        b'{"language": "en"}': "invalid_fields",  # missing text
        post("x" * 41): "invalid_fields",  # oversize
        b'{"text": 5}': "invalid_fields",  # wrong type
        post("ok", priority="urgent"): "invalid_fields",
        post("bad \ud800 surrogate"): "invalid_fields",  # the models' text check
        post("\x01\x02\x03\x04\x05 junk"): "invalid_fields",
        b"[" * 5000: "bad_json",  # json.loads raises RecursionError, not JSONDecodeError
    }
    reasons: dict[bytes | None, str] = {post("bad \ud800 surrogate"): "(invalid_encoding)",
               post("\x01\x02\x03\x04\x05 junk"): "(invalid_encoding)",
               post("x" * 41): "(text_too_long)", b"[" * 5000: "nested too deeply"}
    values = [post("good one"), *bad, post("bad one")]
    placed = await produce(broker.bootstrap, topic, values,
                           keys=[f"k{i}".encode() for i in range(len(values))])
    async with open_node(settings, backends=[LexiconBackend()], detector=detector):
        letters = await read_topic(broker.bootstrap, dlq, expected=len(bad))

        async def committed() -> bool:
            return await committed_offsets(broker.bootstrap, group) == ends(topic, placed)

        await until(committed, what="offsets committed past the dead letters")
    assert len(letters) == len(bad)
    by_value = {rec.value: rec for rec in letters}
    for value, kind in bad.items():
        rec = by_value[value]  # the original bytes, unchanged
        headers = parse_headers(rec.headers)
        assert headers["kind"] == kind
        assert headers["error"]
        assert reasons.get(value, "") in headers["error"], headers
        assert headers["topic"] == topic
        assert headers["partition"] == "0"
        index = values.index(value)
        assert int(headers["offset"]) == placed[index][1]
        assert rec.key == f"k{index}".encode()
    assert set(stored_ids(settings.storage.results_url)) == {
        f"kafka.{topic}.0.{placed[0][1]}", f"kafka.{topic}.0.{placed[-1][1]}"}


async def test_a_post_the_model_fails_on_is_isolated_and_dead_lettered(
        broker: Tansu, kafka_settings: Callable[..., Settings],
        detector: LanguageDetector) -> None:
    settings = kafka_settings()
    topic, dlq = settings.kafka.topics[0], settings.kafka.dead_letter_topic
    await create_topics(broker.bootstrap, {topic: 1, dlq: 1})
    values = [post(f"nice {i}") for i in range(15)]
    values[7] = post("this one goes BOOM")
    placed = await produce(broker.bootstrap, topic, values)
    async with open_node(settings, backends=[LexiconBackend(crash_marker="BOOM")],
                         detector=detector) as node:
        letters = await read_topic(broker.bootstrap, dlq, expected=1)
        await until(lambda: len(stored_ids(settings.storage.results_url)) == 14,
                    what="the other posts stored")
        assert reader_metrics(node)["bisected"] >= 1
    assert len(letters) == 1
    assert letters[0].value == values[7]
    assert parse_headers(letters[0].headers)["kind"] == "unprocessable"
    assert f"kafka.{topic}.0.{placed[7][1]}" not in stored_ids(settings.storage.results_url)


async def test_storage_failures_are_retried_then_dead_lettered(
        broker: Tansu, kafka_settings: Callable[..., Settings], detector: LanguageDetector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = kafka_settings(KAFKA__MAX_RETRIES="3")
    topic, dlq = settings.kafka.topics[0], settings.kafka.dead_letter_topic
    await create_topics(broker.bootstrap, {topic: 1, dlq: 1})
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        original = node.store.write_results
        calls = Counter[str]()
        mode = {"fail": 2}  # first: two failures, then success

        async def flaky(batch: Sequence[ResultRecord]) -> None:
            calls["write"] += 1
            if mode["fail"] > 0:
                mode["fail"] -= 1
                raise StorageError("disk unavailable")
            await original(batch)

        monkeypatch.setattr(node.store, "write_results", flaky)
        first = await produce(broker.bootstrap, topic, [post("good day")])
        await until(lambda: len(stored_ids(settings.storage.results_url)) == 1,
                    what="stored after retries")
        assert reader_metrics(node)["retried"] == 2
        mode["fail"] = 100  # now it never recovers: 1 try + 3 retries, then the DLQ
        await produce(broker.bootstrap, topic, [post("bad day")])
        letters = await read_topic(broker.bootstrap, dlq, expected=1)
    assert len(letters) == 1
    headers = parse_headers(letters[0].headers)
    assert headers["kind"] == "pipeline"
    assert headers["attempts"] == "4"
    assert "storage unavailable" in headers["error"]
    assert stored_ids(settings.storage.results_url) == [f"kafka.{topic}.0.{first[0][1]}"]


async def test_results_topic_gets_each_result_after_the_write(
        broker: Tansu, kafka_settings: Callable[..., Settings], names: Callable[[str], str],
        detector: LanguageDetector) -> None:
    settings = kafka_settings(KAFKA__RESULTS_TOPIC=names("results"))
    topic, results = settings.kafka.topics[0], names("results")
    await create_topics(broker.bootstrap, {topic: 2, results: 1,
                                           settings.kafka.dead_letter_topic: 1})
    placed = await produce(broker.bootstrap, topic,
                           [post(f"I hate waiting {i}") for i in range(30)])
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        records = await read_topic(broker.bootstrap, results, expected=30)
        for rec in records:  # produced after the durable write: it is in the store
            decoded = decode_result(rec.value)
            assert rec.key == decoded.request_id.encode()
            assert await node.store.get_result(decoded.request_id) is not None
    decoded_ids = [decode_result(r.value).request_id for r in records]
    assert sorted(decoded_ids) == sorted(expected_ids(topic, placed))
    assert {decode_result(r.value).result.sentiment for r in records} == {"negative"}


async def test_two_readers_share_the_partitions(
        broker: Tansu, kafka_settings: Callable[..., Settings],
        detector: LanguageDetector) -> None:
    settings = kafka_settings(KAFKA__READERS="2")
    topic = settings.kafka.topics[0]
    await create_topics(broker.bootstrap, {topic: 4, settings.kafka.dead_letter_topic: 1})
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:

        async def both_assigned() -> bool:
            a = await status(node, "/root/ingest/reader-0")
            b = await status(node, "/root/ingest/reader-1")
            return bool(a.assigned) and bool(b.assigned) and \
                len(a.assigned) + len(b.assigned) == 4

        await until(both_assigned, what="both readers assigned")
        placed = await produce(broker.bootstrap, topic, [post(f"ok {i}") for i in range(80)])
        await until(lambda: set(stored_ids(settings.storage.results_url))
                    == expected_ids(topic, placed), what="all stored")
        assert reader_metrics(node, "/root/ingest/reader-0")["durable"] > 0
        assert reader_metrics(node, "/root/ingest/reader-1")["durable"] > 0
