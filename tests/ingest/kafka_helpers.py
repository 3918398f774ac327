"""Producing posts and reading topics back in the ingest tests (and the benchmark)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from sentiflow.config.settings import Settings, load_settings
from sentiflow.ingest.clients import ensure_topics
from tests.ingest.tansu import Tansu


async def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    await ensure_topics([bootstrap], topics)


async def produce(bootstrap: str, topic: str, values: Sequence[bytes | None],
                  keys: Sequence[bytes | None] | None = None) -> list[tuple[int, int]]:
    """Produce ``values`` (in order, round-robin over partitions when keys are None); returns
    each record's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=None if keys is None else keys[i])
                   for i, v in enumerate(values)]
        out = []
        for fut in futures:
            meta = await fut
            out.append((meta.partition, meta.offset))
        return out
    finally:
        await producer.stop()


def post(text: str, **fields: Any) -> bytes:
    return json.dumps({"text": text, **fields}).encode()


async def read_topic(bootstrap: str, topic: str, expected: int,
                     timeout: float = 20.0) -> list[Any]:  # noqa: ASYNC109
    """Read ``topic`` from the beginning until ``expected`` records arrived (or timeout)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        with anyio.move_on_after(timeout):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=200)
                for recs in batch.values():
                    records.extend(recs)
        # anything beyond ``expected`` that is already there (duplicates must show)
        batch = await consumer.getmany(timeout_ms=300)
        for recs in batch.values():
            records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets of every partition of every topic it has committed to
    (``{(topic, partition): offset}``). Read through a consumer that does not join the group
    (tansu does not answer the admin client's OffsetFetch version)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        out: dict[tuple[str, int], int] = {}
        for topic in await consumer.topics():
            for partition in consumer.partitions_for_topic(topic) or ():
                offset = await consumer.committed(TopicPartition(topic, partition))
                if offset is not None and offset >= 0:
                    out[(topic, partition)] = offset
        return out
    finally:
        await consumer.stop()


def stored_ids(results_url: str) -> list[str]:
    """Every request_id in the embedded result store (one row per id if writes are
    idempotent), read with the sqlite3 module so the check does not trust the store."""
    path = Path(results_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as db:
        table = _results_table(db)
        return [row[0] for row in db.execute(f"SELECT request_id FROM {table}")]


def _results_table(db: sqlite3.Connection) -> str:
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for candidate in ("results", "classification_results"):
        if candidate in names:
            return candidate
    raise AssertionError(f"no results table among {sorted(names)}")


def settings_factory(tmp_path: Path, broker: Tansu,
                     names: Callable[[str], str]) -> Callable[..., Settings]:
    """Node settings pointing at ``broker``, with fast group coordination (the fixture
    ``kafka_settings`` for the session broker; tests with a broker of their own call it
    directly); the returned function's kwargs are extra ``SENTIFLOW_<KEY>`` overrides."""

    def make(**env: str) -> Settings:
        environ = {
            "SENTIFLOW_NODE__HOME": str(tmp_path / "home"),
            "SENTIFLOW_DRIFT__ENABLED": "false",
            "SENTIFLOW_KAFKA__BOOTSTRAP_SERVERS": f'["{broker.bootstrap}"]',
            "SENTIFLOW_KAFKA__TOPICS": f'["{names("posts")}"]',
            "SENTIFLOW_KAFKA__GROUP_ID": names("group"),
            "SENTIFLOW_KAFKA__DEAD_LETTER_TOPIC": names("dlq"),
            "SENTIFLOW_KAFKA__SESSION_TIMEOUT_MS": "1000",
            "SENTIFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "200",
            "SENTIFLOW_KAFKA__COMMIT_INTERVAL_MS": "50",
            "SENTIFLOW_KAFKA__RETRY_BACKOFF_INITIAL_S": "0.05",
            "SENTIFLOW_KAFKA__RETRY_BACKOFF_MAX_S": "0.2",
        }
        environ.update({f"SENTIFLOW_{k}": v for k, v in env.items()})
        return load_settings(None, env=environ)

    return make
