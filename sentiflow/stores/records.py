"""Immutable records that flow into and out of storage.

They are msgspec Structs (frozen): cheap to build in the hot path, safe to share between actors,
and encodable to JSON / msgpack directly when a writer needs a wire format. Timestamps are
timezone-aware UTC ``datetime`` values.

``ResultRecord`` (request + result, aspects inside the result) is the unit every result writer
receives, so a writer never has to join two streams.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
