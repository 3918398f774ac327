"""The ingest branch of the supervision tree: ``/root/ingest`` with ``reader-<i>`` children.

Readers are independent consumers of one group, so one_for_one: a crashed reader restarts
alone (with backoff, it usually crashed because the broker went away) and re-reads from its last
commit. Too many crashes escalate to the root like any other branch.
"""

from __future__ import annotations

from functools import partial

from sentiflow.actors.entry import PipelineEntry
from sentiflow.api.schemas import ValidationLimits
from sentiflow.config.settings import Settings
from sentiflow.ingest.reader import KafkaReader
from sentiflow.supervisors import Backoff, ChildSpec, Restart, Strategy, SupervisorSpec

INGEST = "ingest"


def reader_name(index: int) -> str:
    return f"reader-{index}"


def ingest_spec(settings: Settings, entry: PipelineEntry) -> SupervisorSpec:
    """One KafkaReader per ``kafka.readers``; call only when ``settings.kafka.enabled``."""
    kafka = settings.kafka
    limits = ValidationLimits.from_settings(settings.api)
    readers = [
        ChildSpec(reader_name(i),
                  partial(KafkaReader, kafka, entry, limits=limits,
                          client_id=f"sentiflow-{settings.node.name}-{reader_name(i)}"),
                  restart=Restart.PERMANENT, mailbox_capacity=64,
                  # stopped() waits shutdown_timeout_s for in-flight posts, then commits
                  shutdown=kafka.shutdown_timeout_s + 15.0)
        for i in range(kafka.readers)
    ]
    return SupervisorSpec(children=readers, strategy=Strategy.ONE_FOR_ONE, max_restarts=10,
                          period=60.0, backoff=Backoff(initial=0.5, maximum=10.0))
