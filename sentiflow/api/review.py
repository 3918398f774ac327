"""The human review queue over HTTP (issue 7): bodies, query parsing, record -> response.

``GET /api/review?status=open|resolved&limit=N`` lists items (open: oldest first, so the
queue drains in order; resolved: most recently labelled first). ``POST /api/review/{id}`` with
``{"label": "positive|negative|neutral", "reviewer": "..."}`` records a person's label: the
result becomes tier ``review`` and the label a retraining label. Labelling again with the same
label is idempotent (200, nothing changes); a different label for an already-labelled post is a
409 (a correction is a decision for whoever owns the data, not a race to the last write);
an unknown id is a 404. Any stored result may be labelled, flagged or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sentiflow.api.schemas import BodyNotJSONError, error_body, load_json
from sentiflow.stores.records import ReviewItem, ReviewStatus

MAX_LIMIT = 500
Label = Literal["positive", "negative", "neutral"]
Reviewer = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                            pattern=r"^[^\x00-\x1f\x7f]+$")]


class ReviewInputError(ValueError):
    """A bad query or body: rendered as a 4xx ``{error, detail}``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


class ReviewLabelRequest(BaseModel):
    """Body of ``POST /api/review/{request_id}``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    label: Label = Field(description="The person's label.")
    reviewer: Reviewer = Field(description="Who labelled (1..64 printable characters).")


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Opinion(_Response):
    sentiment: str
    confidence: float | None
    model: str


class ReviewItemOut(_Response):
    """One review-queue item: the post, its current result, and each tier's opinion."""

    request_id: str
    text: str
    language_detected: str
    source: str
    status: ReviewStatus
    #: Why it needs review (``low_confidence``, ``llm_saturated``, ``llm_budget``, ...).
    reason: str | None
    sentiment: str
    confidence: float
    tier: str
    model_used: str
    fast: Opinion | None
    llm: Opinion | None
    label: Label | None = None
    reviewer: str | None = None
    created_at: datetime
    resolved_at: datetime | None = None


class ReviewList(_Response):
    """Body of ``GET /api/review``."""

    status: ReviewStatus
    count: int
    items: list[ReviewItemOut]


def review_item_out(item: ReviewItem) -> ReviewItemOut:
    q, r = item.record.request, item.record.result
    fast: Opinion | None = None
    if r.fast_sentiment is not None:
        fast = Opinion(sentiment=r.fast_sentiment, confidence=r.fast_confidence,
                       model=r.model_version)
    elif r.tier == "fast":
        fast = Opinion(sentiment=r.sentiment, confidence=r.confidence, model=r.model_used)
    llm: Opinion | None = None
    if r.llm_sentiment is not None:
        llm = Opinion(sentiment=r.llm_sentiment, confidence=r.llm_confidence,
                      model=r.model_used if r.tier == "llm" else "llm")
    return ReviewItemOut(
        request_id=r.request_id, text=q.text, language_detected=r.language_detected,
        source=q.source, status=item.status, reason=r.review_reason, sentiment=r.sentiment,
        confidence=r.confidence, tier=r.tier, model_used=r.model_used, fast=fast, llm=llm,
        label=item.label, reviewer=item.reviewer, created_at=r.created_at,
        resolved_at=item.resolved_at)


def parse_review_query(args: Mapping[str, str]) -> tuple[ReviewStatus, int]:
    """``status`` (default open) and ``limit`` (default 50, 1..500) from the query string."""
    unknown = set(args) - {"status", "limit"}
    if unknown:
        raise ReviewInputError(422, "invalid_request",
                               f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    status = args.get("status", "open")
    if status not in ("open", "resolved"):
        raise ReviewInputError(422, "invalid_request", 'status: must be "open" or "resolved"')
    raw = args.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError:
        raise ReviewInputError(422, "invalid_request", "limit: must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ReviewInputError(422, "invalid_request", f"limit: must be in 1..{MAX_LIMIT}")
    return ("open" if status == "open" else "resolved"), limit


def parse_label(raw: str | bytes) -> ReviewLabelRequest:
    """The label body; 400 for invalid JSON, 422 for a bad label / reviewer (parsed like the
    classify bodies: :func:`~sentiflow.api.schemas.load_json`, then the schema)."""
    try:
        return ReviewLabelRequest.model_validate(load_json(raw))
    except BodyNotJSONError as exc:
        raise ReviewInputError(400, "invalid_json", exc.detail) from None
    except ValidationError as exc:
        body = error_body(exc)
        raise ReviewInputError(422, body.error, body.detail) from None
