"""Retraining with the store's labels, and the Retrainer actor that runs it inside a node.

:func:`retrain_from_store` is what ``sentiflow retrain`` and the actor share: gather the
retraining labels (LLM audit labels and human review labels, ``store.training_labels()``),
retrain / evaluate / maybe promote in a worker thread (:func:`sentiflow.models.retraining.retrain`),
and record the outcome as ModelVersion records in the store. The actor runs one retraining at a
time (its mailbox is the queue) and then asks the ModelReloader to swap the promoted model in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec

from sentiflow.actors.drift import RetrainRequest
from sentiflow.actors.model_reloader import Reload
from sentiflow.models.dataset import DataError
from sentiflow.models.retraining import (
    PromotionEvent,
    RetrainOutcome,
    examples_from_labels,
    retrain,
)
from sentiflow.models.training import TrainConfig
from sentiflow.runtime import Actor, ActorNotFound
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import ModelVersionRecord, utcnow

log = logging.getLogger("sentiflow.actors.retrainer")


@dataclass(frozen=True, slots=True)
class RetrainOptions:
    data_dir: Path
    models_dir: Path
    config: TrainConfig | None = None
    tolerance: float = 0.0
    promote: bool = True


async def record_promotion(store: ResultStore, event: PromotionEvent) -> None:
    """Mirror a pointer move into the store: the new version active, the old one retired."""
    known = {v.version_id: v for v in await store.model_versions()}
    now = utcnow()
    if event.previous and event.previous in known:
        await store.record_model_version(
            msgspec_replace(known[event.previous], status="retired"))
    target = known.get(event.version_id)
    if target is not None:
        await store.record_model_version(
            msgspec_replace(target, status="active", promoted_at=now))


def msgspec_replace(record: ModelVersionRecord, **changes: object) -> ModelVersionRecord:
    return msgspec.structs.replace(record, **changes)


async def retrain_from_store(store: ResultStore, options: RetrainOptions, reason: str
                             ) -> RetrainOutcome:
    labels = await store.training_labels()
    extra = examples_from_labels([(lab.text, lab.label, lab.language) for lab in labels])
    log.info("retraining (%s) with %d extra labels", reason, len(extra))
    outcome = await anyio.to_thread.run_sync(
        lambda: retrain(options.data_dir, options.models_dir, extra, config=options.config,
                        tolerance=options.tolerance, promote_if_better=options.promote,
                        progress=False, reason=reason))
    v = outcome.candidate
    await store.record_model_version(ModelVersionRecord(
        version_id=v.version_id, model_type=v.model_type, f1_score=outcome.candidate_f1,
        training_dataset_size=v.training_dataset_size,
        status="candidate" if outcome.acceptable else "rejected",
        baseline_version=outcome.baseline_version, baseline_f1=outcome.baseline_f1,
        extra_labels=outcome.extra_labels, reason=f"{reason}: {outcome.reason}"))
    if outcome.promoted:
        await record_promotion(store, PromotionEvent(
            "promote", v.version_id, outcome.baseline_version, v.created_at, outcome.reason))
    log.warning("retrained %s: %s (%s)", v.version_id,
                "promoted" if outcome.promoted else "not promoted", outcome.reason)
    return outcome


class Retrainer(Actor[RetrainRequest]):
    def __init__(self, store: ResultStore, options: RetrainOptions, reloader_path: str) -> None:
        self._store = store
        self._options = options
        self._reloader_path = reloader_path

    async def started(self) -> None:
        self._runs = self.context.metrics.counter("retrain_runs")
        self._promotions = self.context.metrics.counter("promotions")
        #: Candidates worse than the active model (kept the active one): the drift that asked
        #: for the retraining is not repaired, so operators watch this beside the alerts.
        self._rejections = self.context.metrics.counter("rejections")
        self._failures = self.context.metrics.counter("retrain_failures")

    async def receive(self, message: RetrainRequest) -> RetrainOutcome | None:
        self._runs.inc()
        try:
            outcome = await retrain_from_store(self._store, self._options, message.reason)
        except (DataError, OSError, ValueError) as exc:
            # Missing data or a full disk: a restart would not help; log and keep serving.
            self._failures.inc()
            log.error("retraining failed (%s): %s", message.reason, exc)
            return None
        if not outcome.acceptable:
            self._rejections.inc()
        if outcome.promoted:
            self._promotions.inc()
            try:
                await self.context.lookup(self._reloader_path).ask(Reload(), timeout=120)
            except ActorNotFound:
                log.warning("no model reloader at %s; the node serves the new model after a "
                            "restart", self._reloader_path)
        return outcome
