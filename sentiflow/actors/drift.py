"""DriftWatcher: a ResultSink listener that keeps the fast tier's daily confidence and label
histograms (overall and per language), writes a DriftSnapshot per day and model version, and
raises alerts / retraining requests when a closed day drifted.

Flow. The sink hands it every durably written batch of records. Each record counts towards
``(day it was classified (UTC), fast-tier model version)``; a model promoted mid-day starts a
new population, because a new model's confidence distribution is not comparable with the old
one's. Every ``drift.checkpoint_s`` the open days are written as non-final snapshots (a restart
resumes from them, losing at most one checkpoint of counts: the watcher is a statistical
observer, never on a post's path) and days before today (by the injectable clock) are closed:
their final snapshot is judged against the reference window, an alert goes out past the drift
threshold, and retraining is requested past the low-confidence growth (when
``drift.auto_retrain``). ``CloseDay`` and ``CurrentSnapshots`` do the same on demand.

Reference window: the final snapshots of the ``drift.reference_days`` days before, for the same
model version, excluding days that alerted or triggered retraining (an anomalous day must not
become the new normal, or the day after a shift would be judged against the shift).

Confidence and label are the fast tier's own: ``fast_confidence`` / ``fast_sentiment`` when a
later tier (LLM, review) replaced the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import anyio
import numpy as np

from sentiflow.alerts import Alert, AlertSink
from sentiflow.config.settings import DriftSettings, RouterSettings
from sentiflow.models.base import LABELS
from sentiflow.models.drift import (
    Distribution,
    DriftAssessment,
    DriftRules,
    assess,
    bin_edges,
    merge_all,
    merge_by_key,
    psi,
    summarize,
)
from sentiflow.runtime import Actor, ActorNotFound, Priority
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import DriftSnapshot, DriftStats, ResultRecord, utcnow

log = logging.getLogger("sentiflow.actors.drift")

Key = tuple[date, str]  # (day, model version)
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Timer tick: persist open days, close finished ones."""


@dataclass(frozen=True, slots=True)
class CloseDay:
    """Close ``day`` now (ask: answers the final snapshots written)."""

    day: date


@dataclass(frozen=True, slots=True)
class CurrentSnapshots:
    """Write and answer the open days' snapshots (ask; the health API's live view)."""


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    """Drift watcher -> retrainer: please retrain (why, for the log and the version record)."""

    reason: str


DriftCommand = Checkpoint | CloseDay | CurrentSnapshots


def to_stats(d: Distribution) -> DriftStats:
    return DriftStats(confidence_counts=d.confidence_counts, label_counts=d.label_counts,
                      low_confidence=d.low_confidence, confidence_sum=d.confidence_sum)


def to_distribution(s: DriftStats) -> Distribution:
    return Distribution(confidence_counts=s.confidence_counts, label_counts=s.label_counts,
                        low_confidence=s.low_confidence, confidence_sum=s.confidence_sum)


@dataclass(slots=True)
class _Population:
    overall: Distribution
    languages: dict[str, Distribution] = field(default_factory=dict)
    dirty: bool = True


@dataclass(frozen=True, slots=True)
class _Reference:
    days: tuple[date, ...]
    overall: Distribution | None
    languages: dict[str, Distribution]


def summarize_records(records: Sequence[ResultRecord], router: RouterSettings,
                      bins: int) -> Distribution:
    """The fast tier's view of ``records`` as one :class:`Distribution`."""
    confidences = np.empty(len(records), dtype=np.float64)
    labels = np.full(len(records), -1, dtype=np.int64)
    thresholds = np.empty(len(records), dtype=np.float64)
    for i, rec in enumerate(records):
        r = rec.result
        fast = r.tier == "fast"
        confidences[i] = r.confidence if fast or r.fast_confidence is None else r.fast_confidence
        label = r.sentiment if fast else r.fast_sentiment
        if label in LABELS:
            labels[i] = LABELS.index(label)
        thresholds[i] = router.threshold_for(r.language_detected)
    return summarize(confidences, labels, thresholds, bins)


class DriftWatcher(Actor[Sequence[ResultRecord] | DriftCommand]):
    def __init__(self, store: ResultStore, settings: DriftSettings, router: RouterSettings,
                 alerter: AlertSink, *, clock: Clock = utcnow, retrainer_path: str | None = None,
                 source: str = "sentiflow") -> None:
        self._store = store
        self._settings = settings
        self._router = router
        self._alerter = alerter
        self._clock = clock
        self._retrainer_path = retrainer_path
        self._source = source
        self._rules = DriftRules(drift_threshold=settings.drift_threshold,
                                 low_confidence_growth=settings.low_confidence_growth,
                                 min_samples=settings.min_samples)
        self._bins = settings.bins
        self._open: dict[Key, _Population] = {}
        self._closed: set[Key] = set()
        self._references: dict[Key, _Reference] = {}
        self._fast_version = ""

    async def started(self) -> None:
        m = self.context.metrics
        self._observed = m.counter("observed")
        self._late = m.counter("late_records")
        self._alerts = m.counter("drift_alerts")
        self._triggers = m.counter("retraining_triggered")
        self._written = m.counter("snapshots_written")
        await self._restore()
        self.context.start_soon(self._ticker)

    async def _restore(self) -> None:
        """Resume today's and yesterday's counts from their last checkpoint."""
        since = self._clock().date() - timedelta(days=1)
        for snap in await self._store.drift_snapshots(since=since):
            key = (snap.day, snap.model_version)
            if snap.final:
                self._closed.add(key)
                self._open.pop(key, None)
            elif key not in self._closed and len(snap.stats.confidence_counts) == self._bins:
                self._open[key] = _Population(
                    to_distribution(snap.stats),
                    {k: to_distribution(v) for k, v in snap.per_language.items()}, dirty=False)

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(self._settings.checkpoint_s)
            await self.context.ref.tell(Checkpoint(), priority=Priority.REALTIME)

    async def receive(self, message: Sequence[ResultRecord] | DriftCommand
                      ) -> list[DriftSnapshot] | None:
        if isinstance(message, Checkpoint):
            await self._checkpoint()
            return None
        if isinstance(message, CloseDay):
            return await self._close_day(message.day)
        if isinstance(message, CurrentSnapshots):
            return await self._persist_open(only_dirty=False)
        self._observe(message)
        return None

    # -- counting ------------------------------------------------------------------------------

    def _observe(self, records: Sequence[ResultRecord]) -> None:
        groups: dict[Key, list[ResultRecord]] = {}
        for rec in records:
            r = rec.result
            if r.tier == "fast":
                self._fast_version = r.model_version
            version = r.model_version if r.tier == "fast" else self._fast_version
            groups.setdefault((r.created_at.date(), version), []).append(rec)
        for key, recs in groups.items():
            if key in self._closed:
                self._late.inc(len(recs))
                continue
            by_language: dict[str, list[ResultRecord]] = {}
            for rec in recs:
                by_language.setdefault(rec.result.language_detected or "und", []).append(rec)
            pop = self._open.get(key)
            if pop is None:
                pop = self._open[key] = _Population(Distribution.empty(self._bins))
            pop.overall = pop.overall.merge(summarize_records(recs, self._router, self._bins))
            for lang, part in by_language.items():
                current = pop.languages.get(lang, Distribution.empty(self._bins))
                pop.languages[lang] = current.merge(
                    summarize_records(part, self._router, self._bins))
            pop.dirty = True
            self._observed.inc(len(recs))

    # -- snapshots -------------------------------------------------------------------------------

    async def _reference(self, key: Key) -> _Reference:
        cached = self._references.get(key)
        if cached is not None:
            return cached
        day, version = key
        past = await self._store.drift_snapshots(
            since=day - timedelta(days=self._settings.reference_days),
            until=day - timedelta(days=1))
        usable = [s for s in past if s.final and s.model_version == version
                  and not s.alerted and not s.retraining_triggered
                  and len(s.stats.confidence_counts) == self._bins]
        ref = _Reference(
            days=tuple(s.day for s in usable),
            overall=merge_all([to_distribution(s.stats) for s in usable], self._bins)
            if usable else None,
            languages=merge_by_key([{k: to_distribution(v) for k, v in s.per_language.items()}
                                    for s in usable], self._bins))
        self._references[key] = ref
        return ref

    async def _build(self, key: Key, pop: _Population, final: bool
                     ) -> tuple[DriftSnapshot, DriftAssessment]:
        day, version = key
        ref = await self._reference(key)
        verdict = assess(pop.overall, ref.overall, self._rules)
        per_language_drift = {
            lang: round(psi(ref.languages[lang].confidence_counts, dist.confidence_counts), 4)
            for lang, dist in sorted(pop.languages.items())
            if lang in ref.languages and min(dist.count, ref.languages[lang].count)
            >= self._rules.min_samples}
        ref_share = verdict.reference_low_confidence_share
        snapshot = DriftSnapshot(
            snapshot_id=f"{day.isoformat()}:{version}", day=day, model_version=version,
            timestamp=self._clock(), final=final, count=pop.overall.count,
            bin_edges=tuple(round(float(e), 4) for e in bin_edges(self._bins)[1:]),
            confidence_histogram=pop.overall.confidence_counts,
            low_confidence_pct=round(100 * pop.overall.low_confidence_share, 3),
            accuracy_estimate=(round(verdict.accuracy_estimate, 4)
                               if verdict.accuracy_estimate is not None else None),
            drift_score=round(verdict.drift_score, 4),
            psi_confidence=round(verdict.psi_confidence, 4),
            psi_labels=round(verdict.psi_labels, 4),
            js_confidence=round(verdict.js_confidence, 4),
            js_labels=round(verdict.js_labels, 4),
            reference_days=ref.days,
            reference_low_confidence_pct=(round(100 * ref_share, 3)
                                          if ref_share is not None else None),
            low_confidence_growth=(round(verdict.low_confidence_growth, 4)
                                   if verdict.low_confidence_growth is not None
                                   and np.isfinite(verdict.low_confidence_growth) else None),
            retraining_triggered=verdict.retraining_triggered,
            alerted=final and verdict.alert,
            reasons=verdict.reasons,
            stats=to_stats(pop.overall),
            per_language={k: to_stats(v) for k, v in sorted(pop.languages.items())},
            per_language_drift=per_language_drift,
        )
        return snapshot, verdict

    async def _persist_open(self, only_dirty: bool) -> list[DriftSnapshot]:
        written = []
        for key, pop in sorted(self._open.items()):
            if only_dirty and not pop.dirty:
                continue
            snapshot, _ = await self._build(key, pop, final=False)
            await self._store.write_drift_snapshot(snapshot)
            self._written.inc()
            pop.dirty = False
            written.append(snapshot)
        return written

    async def _checkpoint(self) -> None:
        today = self._clock().date()
        for day in sorted({d for d, _ in self._open if d < today}):
            await self._close_day(day)
        await self._persist_open(only_dirty=True)

    async def _close_day(self, day: date) -> list[DriftSnapshot]:
        out = []
        for key in sorted(k for k in self._open if k[0] == day):
            pop = self._open[key]
            snapshot, verdict = await self._build(key, pop, final=True)
            await self._store.write_drift_snapshot(snapshot)
            self._written.inc()
            del self._open[key]
            self._closed.add(key)
            out.append(snapshot)
            log.info("drift snapshot %s: %d posts, drift_score %.3f, low-confidence %.1f%% "
                     "(reference %s), retraining_triggered=%s", snapshot.snapshot_id,
                     snapshot.count, snapshot.drift_score, snapshot.low_confidence_pct,
                     snapshot.reference_low_confidence_pct, snapshot.retraining_triggered)
            if verdict.alert:
                await self._alert(snapshot)
            if verdict.retraining_triggered:
                await self._trigger(snapshot)
        # A newly final day may belong to other populations' reference windows.
        self._references.clear()
        self._closed = {k for k in self._closed if k[0] >= day - timedelta(days=2)}
        return out

    async def _alert(self, s: DriftSnapshot) -> None:
        self._alerts.inc()
        await self._alerter.send(Alert(
            kind="drift", severity="warning", component="fast-tier", source=self._source,
            dedup_key=f"sentiflow-drift-{s.snapshot_id}",
            summary=(f"sentiment drift on {s.day} (model {s.model_version}): drift_score "
                     f"{s.drift_score:.3f} > {self._settings.drift_threshold:g}; "
                     f"low-confidence {s.low_confidence_pct:.1f}% (reference "
                     f"{s.reference_low_confidence_pct}%)"),
            details={"snapshot_id": s.snapshot_id, "drift_score": s.drift_score,
                     "psi_confidence": s.psi_confidence, "psi_labels": s.psi_labels,
                     "low_confidence_pct": s.low_confidence_pct,
                     "reference_low_confidence_pct": s.reference_low_confidence_pct,
                     "accuracy_estimate": s.accuracy_estimate, "posts": s.count,
                     "reference_days": [d.isoformat() for d in s.reference_days],
                     "per_language_drift": s.per_language_drift,
                     "reasons": list(s.reasons)}))

    async def _trigger(self, s: DriftSnapshot) -> None:
        self._triggers.inc()
        if not self._settings.auto_retrain or self._retrainer_path is None:
            log.warning("retraining triggered by %s (auto_retrain off: run `sentiflow retrain`)",
                        s.snapshot_id)
            return
        try:
            retrainer = self.context.lookup(self._retrainer_path)
        except ActorNotFound:
            log.error("retraining triggered by %s but no retrainer at %s", s.snapshot_id,
                      self._retrainer_path)
            return
        if not retrainer.try_tell(RetrainRequest(f"drift {s.snapshot_id}: "
                                                 + "; ".join(s.reasons))):
            log.warning("retrainer busy; retraining request from %s dropped", s.snapshot_id)

    async def stopped(self) -> None:
        """Write the open days' counts so a restart resumes from them."""
        with anyio.CancelScope(shield=True):
            try:
                await self._persist_open(only_dirty=True)
            except Exception as exc:  # best effort on the way down
                log.warning("drift checkpoint on stop failed: %r", exc)
