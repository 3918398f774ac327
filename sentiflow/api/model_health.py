"""``GET /api/model/health`` and ``GET /api/model/drift?days=N``: the fast tier's health from
real data (the served model, its measured F1, the drift watcher's snapshots).

The live view comes from the DriftWatcher (an ``ask`` that also checkpoints today's snapshot);
if it is disabled or busy past a short timeout, the latest stored snapshot answers instead, so
the endpoint never hangs on the actor.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, request

from sentiflow.actors.drift import CurrentSnapshots
from sentiflow.api.schemas import ErrorBody, error_body
from sentiflow.config.tree import DRIFT
from sentiflow.node import Node
from sentiflow.runtime import ActorError
from sentiflow.stores.records import DriftSnapshot, ModelVersionRecord, utcnow

log = logging.getLogger("sentiflow.api.model_health")

JSON = dict[str, Any]
LIVE_TIMEOUT_S = 2.0


class DriftQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=7, ge=1, le=365, description="Days of history, today included")


class SnapshotSummary(BaseModel):
    snapshot_id: str
    day: date
    final: bool
    count: int
    accuracy_estimate: float | None


class ModelHealth(BaseModel):
    """The seed's health fields plus where each came from."""

    active_model: str
    model_version: str
    #: Macro-F1 (mean over languages) on the held-out split, measured when it was trained.
    f1_score: float | None
    #: Percent of today's (else the latest day's) posts under the routing threshold.
    low_confidence_pct: float | None
    drift_score: float | None
    #: When the served model was trained.
    last_retrained: datetime | None
    retraining_triggered: bool
    accuracy_estimate: float | None
    snapshot: SnapshotSummary | None


class DriftPoint(BaseModel):
    snapshot_id: str
    day: date
    model_version: str
    final: bool
    timestamp: datetime
    count: int
    bin_edges: list[float]
    confidence_histogram: list[int]
    label_counts: dict[str, int]
    low_confidence_pct: float
    accuracy_estimate: float | None
    drift_score: float
    psi_confidence: float
    psi_labels: float
    js_confidence: float
    js_labels: float
    reference_days: list[date]
    reference_low_confidence_pct: float | None
    low_confidence_growth: float | None
    retraining_triggered: bool
    alerted: bool
    reasons: list[str]
    per_language: dict[str, dict[str, float]]
    per_language_drift: dict[str, float]

    @classmethod
    def of(cls, s: DriftSnapshot) -> DriftPoint:
        labels = ("negative", "neutral", "positive")
        return cls(
            snapshot_id=s.snapshot_id, day=s.day, model_version=s.model_version, final=s.final,
            timestamp=s.timestamp, count=s.count, bin_edges=list(s.bin_edges),
            confidence_histogram=list(s.confidence_histogram),
            label_counts=dict(zip(labels, s.stats.label_counts, strict=False)),
            low_confidence_pct=s.low_confidence_pct, accuracy_estimate=s.accuracy_estimate,
            drift_score=s.drift_score, psi_confidence=s.psi_confidence, psi_labels=s.psi_labels,
            js_confidence=s.js_confidence, js_labels=s.js_labels,
            reference_days=list(s.reference_days),
            reference_low_confidence_pct=s.reference_low_confidence_pct,
            low_confidence_growth=s.low_confidence_growth,
            retraining_triggered=s.retraining_triggered, alerted=s.alerted,
            reasons=list(s.reasons),
            per_language={
                lang: {"count": sum(st.confidence_counts),
                       "low_confidence_pct": round(100 * st.low_confidence
                                                   / max(1, sum(st.confidence_counts)), 3)}
                for lang, st in s.per_language.items()},
            per_language_drift=dict(s.per_language_drift))


class DriftHistory(BaseModel):
    days: int
    snapshots: list[DriftPoint]


async def _live_snapshots(node: Node) -> list[DriftSnapshot]:
    if not node.settings.drift.enabled:
        return []
    try:
        answer = await node.system.lookup(DRIFT).ask(CurrentSnapshots(), timeout=LIVE_TIMEOUT_S)
    except ActorError as exc:  # not found, timed out, crashed, stopping
        log.info("live drift view unavailable (%r); using stored snapshots", exc)
        return []
    return list(answer or [])


def _served(node: Node) -> tuple[str, str, Any]:
    backend = node.holders[0]() if node.holders else None
    if backend is None:
        return f"{node.model.name}:{node.model.version}", node.model.version, None
    return f"{backend.name}:{backend.version}", backend.version, backend


def _trained_at(backend: Any, record: ModelVersionRecord | None) -> datetime | None:
    version = getattr(backend, "model_version", None)
    created = getattr(version, "created_at", None)
    if isinstance(created, str):
        try:
            return datetime.fromisoformat(created)
        except ValueError:
            pass
    return record.created_at if record is not None else None


def model_blueprint(node: Node) -> Blueprint:
    bp = Blueprint("model_health", __name__)

    @bp.get("/api/model/health")
    async def health() -> tuple[JSON, int]:
        active, version, backend = _served(node)
        records = {r.version_id: r for r in await node.store.model_versions()}
        record = records.get(version)
        f1 = getattr(getattr(backend, "model_version", None), "f1_score", None)
        if not isinstance(f1, float) or f1 != f1:  # NaN: unknown
            f1 = record.f1_score if record is not None else None
        live = [s for s in await _live_snapshots(node) if s.count]
        candidates = live or await node.store.drift_snapshots(
            since=utcnow().date() - timedelta(days=node.settings.drift.reference_days))
        current = [s for s in candidates if s.model_version == version] or candidates
        snap = max(current, key=lambda s: (s.day, s.timestamp)) if current else None
        body = ModelHealth(
            active_model=active, model_version=version, f1_score=f1,
            low_confidence_pct=snap.low_confidence_pct if snap else None,
            drift_score=snap.drift_score if snap else None,
            last_retrained=_trained_at(backend, record),
            retraining_triggered=snap.retraining_triggered if snap else False,
            accuracy_estimate=snap.accuracy_estimate if snap else None,
            snapshot=SnapshotSummary(snapshot_id=snap.snapshot_id, day=snap.day, final=snap.final,
                                     count=snap.count, accuracy_estimate=snap.accuracy_estimate)
            if snap else None)
        return body.model_dump(mode="json"), 200

    @bp.get("/api/model/drift")
    async def drift() -> tuple[JSON, int]:
        try:
            query = DriftQuery.model_validate(dict(request.args))
        except ValidationError as exc:
            body: ErrorBody = error_body(exc, "invalid_request")
            return body.model_dump(), 422
        await _live_snapshots(node)  # checkpoint today so the history ends now
        since = utcnow().date() - timedelta(days=query.days - 1)
        snaps = await node.store.drift_snapshots(since=since)
        history = DriftHistory(days=query.days, snapshots=[DriftPoint.of(s) for s in snaps])
        return history.model_dump(mode="json"), 200

    return bp


def add_openapi(document: dict[str, Any]) -> None:
    """Describe the two routes (and their bodies) in the node's OpenAPI document."""
    from pydantic.json_schema import models_json_schema

    ref = "#/components/schemas/{model}"
    _, schemas = models_json_schema([(ModelHealth, "serialization"),
                                     (DriftHistory, "serialization")], ref_template=ref)
    document.setdefault("components", {}).setdefault("schemas", {}).update(
        schemas.get("$defs", {}))

    def body(model: type[BaseModel]) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": {
            "$ref": ref.format(model=model.__name__)}}}}

    error = {"description": "Error", **body(ErrorBody)}
    document.setdefault("paths", {}).update({
        "/api/model/health": {"get": {
            "summary": "Served model, its F1, today's low-confidence share and drift score",
            "responses": {"200": {"description": "Model health", **body(ModelHealth)},
                          "401": error, "429": error}}},
        "/api/model/drift": {"get": {
            "summary": "Daily drift snapshots (histograms, PSI, triggers) for charts",
            "parameters": [{"name": "days", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 365,
                                       "default": 7}}],
            "responses": {"200": {"description": "Snapshot history", **body(DriftHistory)},
                          "401": error, "422": error, "429": error}}},
    })
