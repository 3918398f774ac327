"""Operational alerts (drift, audit disagreement): one log line, a metric, and a pager.

:class:`Alerter` always writes a structured WARNING log line (so an alert is never silent, even
with no pager configured), then hands the alert to each configured channel (PagerDuty Events v2,
:mod:`sentiflow.delivery.pagerduty`). A channel failure is logged and reported back, never
raised: a broken pager must not crash the actor that noticed the drift. The caller counts
alerts in its actor metrics (``drift_alerts``), which ``/metrics`` exports.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

log = logging.getLogger("sentiflow.alerts")

Severity = Literal["critical", "error", "warning", "info"]


class AlertDeliveryError(RuntimeError):
    """A channel could not deliver an alert (after its own retries)."""


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # "drift", "audit_agreement"
    summary: str
    #: Same key = same incident: PagerDuty folds repeats (e.g. a rerun of the same day) into one.
    dedup_key: str
    severity: Severity = "warning"
    component: str = "fast-tier"
    source: str = "sentiflow"
    details: Mapping[str, object] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class AlertChannel(Protocol):
    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver or raise :class:`AlertDeliveryError`."""
        ...


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    delivered: tuple[str, ...]
    failed: tuple[str, ...]


class AlertSink(Protocol):
    """Where the drift watcher and the auditor send alerts (an :class:`Alerter`, or a test's
    recorder)."""

    async def send(self, alert: Alert) -> AlertOutcome: ...


class Alerter:
    def __init__(self, channels: Sequence[AlertChannel] = ()) -> None:
        self.channels = tuple(channels)

    async def send(self, alert: Alert) -> AlertOutcome:
        log.warning("ALERT %s [%s] %s dedup_key=%s details=%s", alert.kind, alert.severity,
                    alert.summary, alert.dedup_key,
                    json.dumps(dict(alert.details), default=str, sort_keys=True))
        delivered: list[str] = []
        failed: list[str] = []
        for channel in self.channels:
            try:
                await channel.send(alert)
            except AlertDeliveryError as exc:
                log.error("alert %s not delivered to %s: %s", alert.dedup_key, channel.name, exc)
                failed.append(channel.name)
            else:
                delivered.append(channel.name)
        return AlertOutcome(tuple(delivered), tuple(failed))
