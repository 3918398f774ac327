"""Auditor: runs the nightly LLM audit (:mod:`sentiflow.audit`) of the previous UTC day.

A runtime timer, not cron: every ``poll_s`` the actor checks the (injectable) clock, and once
it is past ``drift.audit_time`` it audits yesterday, unless that day's run already completed
(the store remembers, so a restart does not repeat it). ``AuditDay`` runs any day on demand.
The audit runs inside ``receive``: one at a time, and the ticks that queue meanwhile only find
the day already done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import anyio

from sentiflow.alerts import AlertSink
from sentiflow.audit import Judge, run_audit
from sentiflow.config.settings import DriftSettings
from sentiflow.runtime import Actor, Priority
from sentiflow.stores.errors import StorageError
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import AuditRun, utcnow

log = logging.getLogger("sentiflow.actors.auditor")


@dataclass(frozen=True, slots=True)
class AuditDay:
    """Audit ``day`` now (ask: answers the AuditRun)."""

    day: date


@dataclass(frozen=True, slots=True)
class AuditTick:
    """Timer tick: audit yesterday if it is time and not done yet."""


class Auditor(Actor[AuditDay | AuditTick]):
    def __init__(self, store: ResultStore, judge: Judge, settings: DriftSettings,
                 alerter: AlertSink, *, clock: Callable[[], datetime] = utcnow,
                 poll_s: float = 60.0, batch_size: int = 16, source: str = "sentiflow") -> None:
        self._store = store
        self._judge = judge
        self._settings = settings
        self._alerter = alerter
        self._clock = clock
        self._poll_s = poll_s
        self._batch_size = batch_size
        self._source = source
        hh, mm = settings.audit_time.split(":")
        self._at = timedelta(hours=int(hh), minutes=int(mm))
        self._completed: set[date] = set()

    async def started(self) -> None:
        self._runs = self.context.metrics.counter("audit_runs")
        self._alerts = self.context.metrics.counter("audit_alerts")
        self._failures = self.context.metrics.counter("audit_failures")
        self.context.start_soon(self._ticker)

    async def _ticker(self) -> None:
        while True:
            await self.context.ref.tell(AuditTick(), priority=Priority.REALTIME)
            await anyio.sleep(self._poll_s)

    async def receive(self, message: AuditDay | AuditTick) -> AuditRun | None:
        if isinstance(message, AuditDay):
            return await self._audit(message.day)
        now = self._clock()
        midnight = datetime.combine(now.date(), datetime.min.time(), now.tzinfo)
        yesterday = now.date() - timedelta(days=1)
        if now - midnight < self._at or yesterday in self._completed:
            return None
        return await self._audit(yesterday)

    async def _audit(self, day: date) -> AuditRun | None:
        self._runs.inc()
        try:
            before = await self._store.get_audit_run(day.isoformat())
            run = await run_audit(self._store, self._judge, day,
                                  share=self._settings.audit_share,
                                  min_agreement=self._settings.audit_min_agreement,
                                  alerter=self._alerter, batch_size=self._batch_size,
                                  source=self._source)
        except StorageError as exc:
            self._failures.inc()
            log.error("audit of %s failed: %s (retried at the next tick)", day, exc)
            return None
        if run.status == "completed":
            self._completed.add(day)
            self._completed = {d for d in self._completed if d >= day - timedelta(days=7)}
        if run.alerted and (before is None or before.status != "completed"):
            self._alerts.inc()  # a rerun of a finished day does not count (or page) again
        return run
