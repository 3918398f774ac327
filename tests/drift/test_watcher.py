"""DriftWatcher as an actor: per-day populations by the injected clock, day close, reference
window, PagerDuty alert, restart resume. Synthetic confidences; both anyio backends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from sentiflow.actors.drift import CloseDay, CurrentSnapshots, DriftWatcher
from sentiflow.alerts import Alerter
from sentiflow.config.settings import DriftSettings, RouterSettings
from sentiflow.delivery.pagerduty import alerter_from_settings
from sentiflow.runtime import ActorSystem
from sentiflow.stores.records import (
    ClassificationRequest,
    ClassificationResult,
    DriftSnapshot,
    ResultRecord,
    Sentiment,
)
from sentiflow.stores.sqlite import SQLiteResultStore
from tests.api.webhook_receiver import receiver

pytestmark = pytest.mark.anyio
LABELS: tuple[Sentiment, ...] = ("negative", "neutral", "positive")
DAY1 = datetime(2026, 5, 1, 12, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def records(day: datetime, n: int, low: float, high: float, seed: int, prefix: str,
            tier: str = "fast") -> list[ResultRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i, (c, lab) in enumerate(zip(rng.uniform(low, high, n), rng.integers(0, 3, n),
                                     strict=True)):
        rid = f"{prefix}-{i}"
        out.append(ResultRecord(
            request=ClassificationRequest(request_id=rid, text="t"),
            result=ClassificationResult(
                request_id=rid, sentiment=LABELS[lab], confidence=float(c), model_used="m:v1",
                model_version="v1", language_detected="en" if i % 2 else "es",
                latency_ms=1.0, created_at=day + timedelta(seconds=i), tier=tier,  # type: ignore[arg-type]
                fast_confidence=float(c) if tier != "fast" else None,
                fast_sentiment=LABELS[lab] if tier != "fast" else None)))
    return out


async def feed(system: ActorSystem, batch: Sequence[ResultRecord]) -> None:
    ref = system.lookup("/drift")
    for i in range(0, len(batch), 200):
        await ref.tell(batch[i:i + 200])


async def test_day_close_reference_alert_and_quiet_day(tmp_path: Path) -> None:
    clock = Clock(DAY1)
    async with receiver() as pager, httpx.AsyncClient() as http, \
            await SQLiteResultStore.open(tmp_path / "r.db") as store:
        settings = DriftSettings(checkpoint_s=0.02, min_samples=100,
                                 alert_webhook_url=pager.url,
                                 pagerduty_routing_key=SecretStr("routing-key-123"))
        alerter = alerter_from_settings(settings, http)
        async with ActorSystem() as system:
            await system.spawn(lambda: DriftWatcher(store, settings, RouterSettings(), alerter,
                                                    clock=clock, source="node-a"), "drift")
            drift = system.lookup("/drift")
            await feed(system, records(DAY1, 1000, 0.34, 1.0, 1, "d1"))
            live: list[DriftSnapshot] = await drift.ask(CurrentSnapshots())
            assert [s.count for s in live] == [1000]
            assert not live[0].final
            # Day 2 by the clock: the ticker closes day 1 (no reference yet: no verdict).
            clock.now = DAY1 + timedelta(days=1)
            with anyio.fail_after(5):
                while not (snaps := await store.drift_snapshots()) or not snaps[0].final:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            assert snaps[0].reasons == ("no reference window yet",)
            # Day 2 drifts (confidence collapses), closed on demand.
            await feed(system, records(clock.now, 1000, 0.34, 0.7, 2, "d2"))
            (day2,) = await drift.ask(CloseDay(clock.now.date()))
            assert day2.final
            assert day2.alerted
            assert day2.retraining_triggered
            assert day2.drift_score > 0.10
            assert day2.reference_days == (DAY1.date(),)
            # Day 3 in distribution: judged against day 1 only (day 2 was anomalous).
            clock.now = DAY1 + timedelta(days=2)
            await feed(system, records(clock.now, 1000, 0.34, 1.0, 3, "d3"))
            (day3,) = await drift.ask(CloseDay(clock.now.date()))
            assert day3.reference_days == (DAY1.date(),)
            assert not day3.alerted
            assert not day3.retraining_triggered
            assert day3.drift_score < 0.10
            assert set(day3.per_language_drift) == {"en", "es"}
            metrics = system.snapshot().find("/drift").metrics  # type: ignore[union-attr]
            assert metrics["drift_alerts"] == 1
            assert metrics["retraining_triggered"] == 1
        assert len(pager.received) == 1
        event = json.loads(pager.received[0].body)
        assert event["routing_key"] == "routing-key-123"
        assert event["event_action"] == "trigger"
        assert event["dedup_key"] == f"sentiflow-drift-{day2.snapshot_id}"
        assert event["payload"]["severity"] == "warning"
        assert event["payload"]["source"] == "node-a"
        assert event["payload"]["custom_details"]["drift_score"] == day2.drift_score


async def test_restart_resumes_the_open_day_and_ignores_closed_ones(tmp_path: Path) -> None:
    clock = Clock(DAY1)
    settings = DriftSettings(checkpoint_s=60, min_samples=10)
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store:
        async with ActorSystem() as system:
            await system.spawn(lambda: DriftWatcher(store, settings, RouterSettings(), Alerter(),
                                                    clock=clock), "drift")
            await feed(system, records(DAY1 - timedelta(days=1), 50, 0.34, 1.0, 1, "old"))
            await system.lookup("/drift").ask(CloseDay((DAY1 - timedelta(days=1)).date()))
            await feed(system, records(DAY1, 300, 0.34, 1.0, 2, "a"))
        # stopped() checkpointed the open day; a new instance resumes its counts.
        async with ActorSystem() as system:
            await system.spawn(lambda: DriftWatcher(store, settings, RouterSettings(), Alerter(),
                                                    clock=clock), "drift")
            await feed(system, records(DAY1, 200, 0.34, 1.0, 3, "b"))
            # A late record for the closed day is counted as late, not reopening it.
            await feed(system, records(DAY1 - timedelta(days=1), 5, 0.34, 1.0, 4, "late"))
            (snap,) = await system.lookup("/drift").ask(CurrentSnapshots())
            assert snap.count == 500
            assert snap.day == DAY1.date()
            assert system.snapshot().find("/drift").metrics["late_records"] == 5  # type: ignore[union-attr]
        closed = [s for s in await store.drift_snapshots(until=(DAY1 - timedelta(days=1)).date())]
        assert [(s.final, s.count) for s in closed] == [(True, 50)]


async def test_later_tiers_count_with_their_fast_confidence(tmp_path: Path) -> None:
    clock = Clock(DAY1)
    settings = DriftSettings(checkpoint_s=60)
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store, ActorSystem() as system:
        await system.spawn(lambda: DriftWatcher(store, settings, RouterSettings(), Alerter(),
                                                clock=clock), "drift")
        await feed(system, records(DAY1, 10, 0.9, 0.95, 1, "f"))
        await feed(system, records(DAY1, 10, 0.4, 0.5, 2, "l", tier="llm"))
        (snap,) = await system.lookup("/drift").ask(CurrentSnapshots())
        assert snap.count == 20
        assert sum(snap.stats.label_counts) == 20
        assert snap.low_confidence_pct == pytest.approx(50.0)
        assert date.fromisoformat(snap.snapshot_id.split(":")[0]) == DAY1.date()
