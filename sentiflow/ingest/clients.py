"""aiokafka clients built from :class:`~sentiflow.config.settings.KafkaSettings`.

One place maps the settings onto aiokafka's keyword arguments, so the readers, the benchmark and
the tests configure consumers and producers the same way. Consumers never auto-commit: offsets
are committed by the reader once posts are durable.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from sentiflow.config.settings import KafkaSettings


def consumer(settings: KafkaSettings, *, client_id: str, **overrides: Any) -> AIOKafkaConsumer:
    """A group consumer for ``settings.topics`` (subscribe it yourself, with a listener)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "group_id": settings.group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": settings.auto_offset_reset,
        "max_poll_records": settings.max_poll_records,
        "fetch_max_bytes": settings.fetch_max_bytes,
        "max_partition_fetch_bytes": settings.max_partition_fetch_bytes,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


def producer(settings: KafkaSettings, *, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica (dead letters and results must not be
    lost between the broker's ack and the offset commit that follows it)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "acks": "all",
        "linger_ms": 5,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def ensure_topics(bootstrap_servers: list[str], topics: dict[str, int]) -> None:
    """Create the topics (name -> partitions) that do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in topics.items()
                   if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()
