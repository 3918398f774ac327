"""Immutable records that flow into and out of storage.

They are msgspec Structs (frozen): cheap to build in the hot path, safe to share between actors,
and encodable to JSON / msgpack directly when a writer needs a wire format. Timestamps are
timezone-aware UTC ``datetime`` values.

``ResultRecord`` (request + result, aspects inside the result) is the unit every result writer
receives, so a writer never has to join two streams.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

import msgspec

Sentiment = Literal["positive", "negative", "neutral", "mixed"]
"""Overall sentiment of a post; ``mixed`` when its aspects disagree."""
AspectLabel = Literal["positive", "negative", "neutral"]
Priority = Literal["realtime", "standard", "batch"]
Tier = Literal["fast", "llm", "review"]
"""Which tier produced the final label: the fast model, the LLM, or a human review."""
BatchState = Literal["queued", "running", "completed", "failed"]
WebhookOutcome = Literal["delivered", "retrying", "gave_up", "rejected", "refused"]
"""``retrying``: this attempt failed and another follows; ``gave_up``: attempts exhausted;
``rejected``: the receiver answered a non-retryable status (4xx); ``refused``: the URL failed the
SSRF check or is otherwise unusable (nothing was sent)."""
WebhookStateName = Literal["none", "pending", "delivering", "delivered", "failed"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ClassificationRequest(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    text: str
    #: ``"auto"`` or the ISO-639-1 code the caller asserted.
    language: str = "auto"
    source: str = "api"
    topic: str | None = None
    priority: Priority = "standard"
    #: Whether per-aspect sentiment was asked for.
    aspects: bool = False
    received_at: datetime = msgspec.field(default_factory=utcnow)


class AspectSentiment(msgspec.Struct, frozen=True, kw_only=True):
    #: Stable across replays (e.g. ``f"{request_id}#{index}"``) so rewrites stay idempotent.
    aspect_id: str
    #: ``request_id`` of the result this aspect belongs to.
    result_id: str
    aspect_name: str
    sentiment: AspectLabel
    confidence: float
    #: Character offsets ``(start, end)`` of the aspect's mention in the text, if known.
    text_span: tuple[int, int] | None = None


class ClassificationResult(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    sentiment: Sentiment
    #: Calibrated confidence of ``sentiment`` in [0, 1].
    confidence: float
    model_used: str
    language_detected: str
    latency_ms: float
    created_at: datetime = msgspec.field(default_factory=utcnow)
    model_version: str = ""
    tier: Tier = "fast"
    #: Below the routing threshold and not (yet) settled by the LLM: a human should look.
    needs_review: bool = False
    #: The fast tier's confidence when a later tier replaced its label.
    fast_confidence: float | None = None
    aspects: tuple[AspectSentiment, ...] = ()
    #: The fast tier's label when a later tier (LLM, person) replaced it (issue 7).
    fast_sentiment: Sentiment | None = None
    #: The LLM's opinion, when it gave one (also kept when a person decided later).
    llm_sentiment: AspectLabel | None = None
    llm_confidence: float | None = None
    #: Why ``needs_review`` is set (``low_confidence``, ``llm_saturated``, ``llm_deadline``,
    #: ``llm_budget``, ...; see ``sentiflow.actors.escalation.ReviewReason``).
    review_reason: str | None = None


class ResultRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a result writer stores: the request as received and its final result."""

    request: ClassificationRequest
    result: ClassificationResult

    @property
    def request_id(self) -> str:
        return self.result.request_id


class BatchJob(msgspec.Struct, frozen=True, kw_only=True):
    batch_id: str
    count: int
    status: BatchState = "queued"
    priority: Priority = "batch"
    webhook_url: str | None = None
    done: int = 0
    error: str | None = None
    created_at: datetime = msgspec.field(default_factory=utcnow)
    updated_at: datetime = msgspec.field(default_factory=utcnow)


class WebhookAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP attempt to deliver one chunk of a batch's results."""

    batch_id: str
    chunk_index: int
    chunk_count: int
    #: 1 for the first try of this chunk.
    attempt: int
    outcome: WebhookOutcome
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0
    at: datetime = msgspec.field(default_factory=utcnow)


class WebhookState(msgspec.Struct, frozen=True, kw_only=True):
    """Delivery state of a batch's webhook, derived from its recorded attempts."""

    state: WebhookStateName
    attempts: int = 0
    chunks_total: int = 0
    chunks_delivered: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None


class BatchView(msgspec.Struct, frozen=True, kw_only=True):
    """A batch job with the results available so far (in submission order)."""

    job: BatchJob
    results: tuple[ResultRecord, ...]
    webhook: WebhookState


def webhook_state(job: BatchJob, attempts: list[WebhookAttempt]) -> WebhookState:
    """Summarise ``attempts`` (any order) into the batch's delivery state."""
    if job.webhook_url is None:
        return WebhookState(state="none")
    if not attempts:
        return WebhookState(state="pending")
    ordered = sorted(attempts, key=lambda a: (a.at, a.chunk_index, a.attempt))
    total = max(a.chunk_count for a in ordered)
    delivered = {a.chunk_index for a in ordered if a.outcome == "delivered"}
    failed = any(a.outcome in ("gave_up", "rejected", "refused") for a in ordered)
    errors = [a.error for a in ordered if a.error]
    if failed:
        state: WebhookStateName = "failed"
    elif len(delivered) >= total:
        state = "delivered"
    else:
        state = "delivering"
    return WebhookState(
        state=state,
        attempts=len(ordered),
        chunks_total=total,
        chunks_delivered=len(delivered),
        last_error=errors[-1] if errors else None,
        last_attempt_at=ordered[-1].at,
    )


# -- drift watching, model versions, nightly audit (issue 9) ----------------------------------

ModelStatus = Literal["candidate", "active", "rejected", "retired"]
"""``candidate``: trained, not (yet) served; ``active``: served now; ``rejected``: its F1 was
worse than the active model's; ``retired``: was active, replaced by a promotion or rollback."""
AuditStatus = Literal["running", "completed"]


class DriftStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of one population of fast-tier results (see ``sentiflow.models.drift``)."""

    confidence_counts: tuple[int, ...]
    label_counts: tuple[int, ...] = (0, 0, 0)
    low_confidence: int = 0
    confidence_sum: float = 0.0


class DriftSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One day of the fast tier's output under one model version, judged against the
    reference window. Rewritten while the day is open (``final=False``), final once closed."""

    #: ``"<day>:<model_version>"``.
    snapshot_id: str
    day: date
    model_version: str
    #: When this snapshot was (re)written.
    timestamp: datetime = msgspec.field(default_factory=utcnow)
    final: bool = False
    count: int = 0
    #: Upper edges of ``confidence_histogram``'s bins (the first bin starts at 1/3).
    bin_edges: tuple[float, ...] = ()
    confidence_histogram: tuple[int, ...] = ()
    #: Percent (0-100) of posts under their routing threshold.
    low_confidence_pct: float = 0.0
    #: Mean calibrated confidence: the expected accuracy if calibration holds.
    accuracy_estimate: float | None = None
    #: PSI against the reference window: max over the confidence and label distributions.
    drift_score: float = 0.0
    psi_confidence: float = 0.0
    psi_labels: float = 0.0
    js_confidence: float = 0.0
    js_labels: float = 0.0
    reference_days: tuple[date, ...] = ()
    reference_low_confidence_pct: float | None = None
    #: Relative growth of the low-confidence share versus the reference (0.2 = +20 %).
    low_confidence_growth: float | None = None
    retraining_triggered: bool = False
    #: An alert was raised for this snapshot.
    alerted: bool = False
    reasons: tuple[str, ...] = ()
    stats: DriftStats = msgspec.field(default_factory=lambda: DriftStats(confidence_counts=()))
    per_language: dict[str, DriftStats] = msgspec.field(default_factory=dict)
    #: PSI of each language's confidence histogram against its own reference (if it has one).
    per_language_drift: dict[str, float] = msgspec.field(default_factory=dict)


class ModelVersionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A trained fast-tier model as the store knows it: quality and promotion history."""

    version_id: str
    model_type: str
    f1_score: float
    training_dataset_size: int = 0
    status: ModelStatus = "candidate"
    created_at: datetime = msgspec.field(default_factory=utcnow)
    promoted_at: datetime | None = None
    #: The version that was active when this one was evaluated, and its F1 on the same split.
    baseline_version: str | None = None
    baseline_f1: float | None = None
    extra_labels: int = 0
    reason: str = ""


class AuditLanguage(msgspec.Struct, frozen=True, kw_only=True):
    audited: int = 0
    agreed: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.audited if self.audited else None


class AuditRun(msgspec.Struct, frozen=True, kw_only=True):
    """The nightly LLM audit of one day (``run_id`` = the day, ISO format)."""

    run_id: str
    day: date
    share: float
    status: AuditStatus = "running"
    sampled: int = 0
    audited: int = 0
    agreed: int = 0
    #: LLM calls that failed (those posts are retried by a rerun).
    failed: int = 0
    per_language: dict[str, AuditLanguage] = msgspec.field(default_factory=dict)
    alerted: bool = False
    labels_stored: int = 0
    llm_model: str = ""
    started_at: datetime = msgspec.field(default_factory=utcnow)
    finished_at: datetime | None = None

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.audited if self.audited else None


class AuditItem(msgspec.Struct, frozen=True, kw_only=True):
    """One audited post: the fast tier's label and the LLM's."""

    run_id: str
    request_id: str
    language: str
    fast_label: str
    llm_label: str
    agreed: bool
    at: datetime = msgspec.field(default_factory=utcnow)


# -- LLM tier, review queue, training labels (issue 7) ----------------------------------------

ReviewStatus = Literal["open", "resolved"]
"""``open``: flagged ``needs_review`` and not labelled by a person; ``resolved``: labelled."""
TrainingLabelSource = Literal["review", "audit"]
"""Where a retraining label came from: a person's review, or the nightly LLM audit."""


class TrainingLabel(msgspec.Struct, frozen=True, kw_only=True):
    """A label for retraining the fast tier, keyed on ``(request_id, source)``."""

    request_id: str
    text: str
    #: Detected (or asserted) language of ``text``.
    language: str
    label: AspectLabel
    source: TrainingLabelSource
    #: Who gave it: the reviewer's name, or the LLM model for audit labels.
    labeller: str
    created_at: datetime = msgspec.field(default_factory=utcnow)


class ReviewItem(msgspec.Struct, frozen=True, kw_only=True):
    """A post in the human review queue: the stored record (both tiers' opinions inside the
    result) and, once resolved, the person's label."""

    record: ResultRecord
    status: ReviewStatus
    label: AspectLabel | None = None
    reviewer: str | None = None
    resolved_at: datetime | None = None


class LLMUsage(msgspec.Struct, frozen=True, kw_only=True):
    """LLM spend of one UTC day (persisted so the daily budget survives a restart)."""

    day: date
    cost_usd: float = 0.0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Posts the LLM answered.
    posts: int = 0
