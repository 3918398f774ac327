"""``GET /api/trends``: its query parameters and its answer (pydantic models, the OpenAPI source).

::

    GET /api/trends?window=daily&source=twitter&language=en&topic=launch
                   &start=2026-11-01&end=2026-11-08T00:00:00Z
    {"window": "daily", "start": "2026-11-01T00:00:00Z", "end": "2026-11-08T00:00:00Z",
     "source": "twitter", "language": "en", "topic": "launch",
     "buckets": [{"timestamp": "2026-11-01T00:00:00Z", "positive": 12, "negative": 3,
                  "neutral": 5, "mixed": 0, "total": 20, "avg_confidence": 0.84}, …]}

Parameters: ``window`` (``hourly`` default, ``daily``, ``weekly``), ``start`` / ``end`` (ISO
8601 date or date-time; without a zone they are UTC; default: the last 24 hours / 30 days /
12 weeks up to the next whole hour, starting on a bucket boundary), ``source`` /
``language`` / ``topic`` (exact match; absent = all). The range is ``[start, end)`` widened
to whole hours; one bucket per window step, empty buckets included (``avg_confidence``
null). Unknown or repeated parameters, a bad window, an unparseable date, ``start >= end`` or
more than ``trends.max_buckets`` buckets: 422.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from sentiflow.stores.trends import (
    TrendQuery,
    TrendSeries,
    Window,
    as_utc,
    bucket_count,
    ceil_to_hour,
    floor_to,
)

#: Range answered when ``start`` is not given: this much before ``end``.
DEFAULT_SPAN: dict[Window, timedelta] = {
    "hourly": timedelta(hours=24), "daily": timedelta(days=30), "weekly": timedelta(weeks=12),
}
Label = Annotated[str, Field(min_length=1, max_length=128)]


class TrendsParams(BaseModel):
    """The query string of ``GET /api/trends`` (validated in pydantic's lax mode: every value
    arrives as a string)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Window = "hourly"
    start: datetime | None = Field(default=None, description="ISO 8601; UTC if no zone.")
    end: datetime | None = Field(default=None, description="ISO 8601; UTC if no zone.")
    source: Label | None = None
    language: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    topic: Label | None = None

    def to_query(self, *, now: datetime, max_buckets: int) -> TrendQuery:
        """The store query; raises ``ValidationError`` when the range is empty or too wide."""
        end = as_utc(self.end) if self.end is not None else ceil_to_hour(now)
        start = (as_utc(self.start) if self.start is not None
                 else floor_to(end - DEFAULT_SPAN[self.window], self.window))
        if start >= end:
            raise _error("range", "start must be before end")
        count = bucket_count(self.window, start, end)
        if count > max_buckets:
            raise _error("range", f"{count} {self.window} buckets requested; at most "
                                  f"{max_buckets} per request (narrow start..end or use a "
                                  f"wider window)")
        return TrendQuery(window=self.window, start=start, end=end, source=self.source,
                          language=self.language, topic=self.topic)

    @classmethod
    def from_args(cls, args: Mapping[str, Sequence[str]]) -> Self:
        """Validate a multi-valued query string (``{name: [values]}``); a repeated parameter
        is an error rather than silently taking one of the values."""
        repeated = sorted(name for name, values in args.items() if len(values) > 1)
        if repeated:
            raise _error(repeated[0], "given more than once")
        return cls.model_validate({name: values[0] for name, values in args.items() if values})


def _error(field: str, message: str) -> ValidationError:
    detail: InitErrorDetails = {
        "type": PydanticCustomError("trends_query", message),
        "loc": (field,), "input": None,
    }
    return ValidationError.from_exception_data("TrendsParams", [detail])


class TrendBucketOut(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: datetime = Field(description="Start of the bucket (UTC).")
    positive: int = Field(ge=0)
    negative: int = Field(ge=0)
    neutral: int = Field(ge=0)
    mixed: int = Field(ge=0)
    total: int = Field(ge=0)
    avg_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Mean calibrated confidence; null if empty.")


class TrendsResponse(BaseModel):
    """Body of ``GET /api/trends``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Window
    start: datetime
    end: datetime
    source: str | None = None
    language: str | None = None
    topic: str | None = None
    buckets: list[TrendBucketOut]

    @classmethod
    def from_series(cls, series: TrendSeries) -> Self:
        q = series.query
        return cls(
            window=q.window, start=q.start, end=q.end, source=q.source, language=q.language,
            topic=q.topic,
            buckets=[TrendBucketOut(
                timestamp=b.timestamp, positive=b.positive, negative=b.negative,
                neutral=b.neutral, mixed=b.mixed, total=b.total,
                avg_confidence=_clamped(b.avg_confidence)) for b in series.buckets])


def _clamped(value: float | None) -> float | None:
    """Float sums can land a hair outside [0, 1] (e.g. 1.0000000002); the mean cannot."""
    return None if value is None else min(1.0, max(0.0, round(value, 6)))


def utcnow() -> datetime:
    return datetime.now(UTC)


def openapi_parameters() -> list[dict[str, Any]]:
    """The query parameters as OpenAPI parameter objects, from :class:`TrendsParams`."""
    schema = TrendsParams.model_json_schema()
    return [{"name": name, "in": "query", "required": False, "schema": prop,
             **({"description": prop["description"]} if "description" in prop else {})}
            for name, prop in schema["properties"].items()]
