"""Records the store tests write: every field set, varied, with non-ASCII text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sentiflow.stores import (
    AspectSentiment,
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123457, tzinfo=UTC)


def record(i: int, *, sentiment: str = "positive", aspects: int = 0,
           text: str | None = None) -> ResultRecord:
    rid = f"req-{i}"
    return ResultRecord(
        request=ClassificationRequest(request_id=rid, text=text or f"post number {i} é ✓",
                                      language="auto", source="twitter", topic="phones",
                                      priority="standard", aspects=aspects > 0,
                                      received_at=T0 + timedelta(microseconds=i)),
        result=ClassificationResult(
            request_id=rid, sentiment=sentiment,  # type: ignore[arg-type]
            confidence=0.5 + (i % 50) / 100, model_used="sentiflow-linear", model_version="v1",
            language_detected="en", latency_ms=1.25, created_at=T0 + timedelta(seconds=i),
            needs_review=i % 2 == 0, fast_confidence=0.4 if i % 3 == 0 else None,
            tier="fast",
            aspects=tuple(AspectSentiment(aspect_id=f"{rid}#{k}", result_id=rid,
                                          aspect_name=f"aspect{k}", sentiment="negative",
                                          confidence=0.9, text_span=(k, k + 3) if k else None)
                          for k in range(aspects)),
        ),
    )


def batch_requests(n: int, batch: str = "b1") -> list[ClassificationRequest]:
    return [ClassificationRequest(request_id=f"{batch}-{i}", text=f"t{i}", priority="batch",
                                  received_at=T0) for i in range(n)]


def result_for(q: ClassificationRequest) -> ResultRecord:
    return ResultRecord(request=q, result=ClassificationResult(
        request_id=q.request_id, sentiment="neutral", confidence=0.8, model_used="m",
        language_detected="en", latency_ms=2.0, created_at=T0))
