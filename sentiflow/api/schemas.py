"""Request and response bodies of the REST API (pydantic v2 models, the OpenAPI source).

Requests are strict (``extra="forbid"``, ``strict=True``): unknown fields, wrong JSON types
(``"aspects": "yes"``, ``"text": 5``) and text the models cannot classify (empty, too long, not
valid Unicode, binary junk: :func:`~sentiflow.models.preprocess.validate_text`) are rejected
with a ``ValidationError`` that :func:`error_body` turns into the API's ``{error, detail}`` 4xx
body. Limits that come from configuration (``api.max_text_chars``, ``api.max_batch_items``) are
passed at validation time as the pydantic *context*, so one model class serves every
configuration::

    limits = ValidationLimits.from_settings(settings.api)
    req = ClassifyRequest.model_validate(load_json(body), context=limits)

Without a context the defaults (5000 characters, 1000 items) apply.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from sentiflow.config.settings import ApiSettings
from sentiflow.models.errors import InputError
from sentiflow.models.preprocess import validate_text
from sentiflow.stores.records import (
    BatchState,
    BatchView,
    ClassificationRequest,
    ClassificationResult,
    Priority,
    WebhookStateName,
)

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
MAX_URL_CHARS = 2048

Sentiment = Literal["positive", "negative", "neutral", "mixed"]
AspectLabel = Literal["positive", "negative", "neutral"]
RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Configured size limits, passed as ``context=`` to ``model_validate*``."""

    max_text_chars: int = 5000
    max_batch_items: int = 1000

    @classmethod
    def from_settings(cls, api: ApiSettings) -> ValidationLimits:
        return cls(max_text_chars=api.max_text_chars, max_batch_items=api.max_batch_items)


def _limits(info: ValidationInfo) -> ValidationLimits:
    return info.context if isinstance(info.context, ValidationLimits) else ValidationLimits()


def new_request_id() -> str:
    return str(uuid.uuid4())


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassifyItem(_Request):
    """One text to classify (the shared fields of a single request and a batch item)."""

    text: str = Field(description="The post; 1..api.max_text_chars characters, not blank.",
                      min_length=1)
    language: str = Field(default="auto",
                          description='"auto" or an ISO-639-1 code such as "de".')
    request_id: RequestId = Field(default_factory=new_request_id,
                                  description="Caller's id (1..128 of [A-Za-z0-9._:-]); "
                                              "a UUID4 is generated when absent.")
    source: str = Field(default="api", min_length=1, max_length=64)
    topic: str | None = Field(default=None, min_length=1, max_length=128)
    aspects: bool = Field(default=False, description="Return per-aspect sentiment.")

    @field_validator("text", mode="before")
    @classmethod
    def _text_is_classifiable(cls, text: object, info: ValidationInfo) -> object:
        """The models' own check (:func:`~sentiflow.models.preprocess.validate_text`), so the
        API, batches, Kafka, ``replay`` and ``classify`` refuse exactly what the models cannot
        classify. It runs *before* pydantic's str parsing, which would refuse a lone surrogate
        with a vague "not a valid string"; non-strings are left to pydantic's type error."""
        if isinstance(text, str):
            try:
                validate_text(text, _limits(info).max_text_chars)
            except InputError as exc:
                raise PydanticCustomError(exc.code, "{detail} ({code})",
                                          {"detail": exc.detail, "code": exc.code}) from None
        return text

    @field_validator("language")
    @classmethod
    def _language_code(cls, language: str) -> str:
        code = language.strip().lower()
        if code != "auto" and not _LANGUAGE_RE.match(code):
            raise ValueError('must be "auto" or a two-letter ISO-639-1 code')
        return code

    def to_request(self, *, priority: Priority, received_at: datetime) -> ClassificationRequest:
        """The pipeline's record for this item."""
        return ClassificationRequest(
            request_id=self.request_id, text=self.text, language=self.language,
            source=self.source, topic=self.topic, priority=priority, aspects=self.aspects,
            received_at=received_at,
        )


class ClassifyRequest(ClassifyItem):
    """Body of ``POST /api/classify``."""

    priority: Priority = "standard"


class BatchRequest(_Request):
    """Body of ``POST /api/classify/batch``."""

    items: list[ClassifyItem] = Field(min_length=1,
                                      description="1..api.max_batch_items texts.")
    webhook_url: str | None = Field(default=None, description="http(s) URL results are "
                                    "POSTed to, signed; must not resolve to private addresses.")
    priority: Priority = "batch"

    @field_validator("items")
    @classmethod
    def _items_within_limits(cls, items: list[ClassifyItem],
                             info: ValidationInfo) -> list[ClassifyItem]:
        limit = _limits(info).max_batch_items
        if len(items) > limit:
            raise ValueError(f"{len(items)} items; the limit is {limit}")
        seen: set[str] = set()
        for item in items:
            if item.request_id in seen:
                raise ValueError(f"duplicate request_id {item.request_id!r}")
            seen.add(item.request_id)
        return items

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
            raise ValueError(f"must be an http(s) URL without spaces, at most {MAX_URL_CHARS} "
                             "characters")
        match = re.match(r"^(https?)://([^/?#]+)", url, flags=re.IGNORECASE)
        if match is None:
            raise ValueError("must be an absolute http:// or https:// URL")
        return url


class AspectOut(_Response):
    aspect: str
    sentiment: AspectLabel
    confidence: Confidence
    #: ``[start, end)`` character offsets of the aspect's mention in the text.
    text_span: tuple[int, int] | None = None


class ClassifyResponse(_Response):
    """Body of a ``POST /api/classify`` answer and of ``GET /api/results/{id}``."""

    request_id: str
    sentiment: Sentiment
    confidence: Confidence
    model_used: str
    aspects: list[AspectOut] = Field(default_factory=list)
    language_detected: str
    latency_ms: float = Field(ge=0.0)

    @classmethod
    def from_result(cls, result: ClassificationResult) -> Self:
        return cls(
            request_id=result.request_id, sentiment=result.sentiment,
            confidence=result.confidence, model_used=result.model_used,
            aspects=[AspectOut(aspect=a.aspect_name, sentiment=a.sentiment,
                               confidence=a.confidence, text_span=a.text_span)
                     for a in result.aspects],
            language_detected=result.language_detected, latency_ms=result.latency_ms,
        )


class BatchAccepted(_Response):
    """202 body of ``POST /api/classify/batch``."""

    batch_id: str
    count: int = Field(ge=1)
    status: Literal["queued"] = "queued"
    estimated_completion_ms: float = Field(ge=0.0)


class WebhookDelivery(_Response):
    url: str | None
    state: WebhookStateName
    attempts: int = 0
    chunks_total: int = 0
    chunks_delivered: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None


class BatchStatus(_Response):
    """Body of ``GET /api/batches/{id}``: progress and the results available so far."""

    batch_id: str
    status: BatchState
    count: int
    done: int
    error: str | None = None
    results: list[ClassifyResponse]
    webhook: WebhookDelivery

    @classmethod
    def from_view(cls, view: BatchView) -> Self:
        job, hook = view.job, view.webhook
        # The stored counter can lag the results (posts in flight when a node stopped were
        # written by its drain after the job's task was cancelled): never show fewer done
        # than the results listed.
        return cls(
            batch_id=job.batch_id, status=job.status, count=job.count,
            done=max(job.done, len(view.results)),
            error=job.error,
            results=[ClassifyResponse.from_result(r.result) for r in view.results],
            webhook=WebhookDelivery(url=job.webhook_url, state=hook.state,
                                    attempts=hook.attempts, chunks_total=hook.chunks_total,
                                    chunks_delivered=hook.chunks_delivered,
                                    last_error=hook.last_error,
                                    last_attempt_at=hook.last_attempt_at),
        )


class ErrorBody(_Response):
    """Every 4xx / 5xx body: a short stable code and a sentence for people."""

    error: str = Field(description="Stable machine-readable code, e.g. 'invalid_request'.")
    detail: str


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


#: At most this many problems are spelled out in one ``detail`` (a batch of 1000 bad items
#: would otherwise answer with a 100 kB sentence); the rest are counted.
MAX_LISTED_PROBLEMS = 20


def error_body(exc: ValidationError, code: str = "invalid_request") -> ErrorBody:
    """``{error, detail}`` for a failed validation, naming each field (``items[3].text: …``)
    and, for text the models refuse, the reason's code (``text: … (invalid_encoding)``).

    The offending values are not echoed (they may be large or not printable).
    """
    problems = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "json_invalid":
            msg = "body is not valid JSON"
        problems.append(f"{_loc(tuple(err['loc']))}: {msg}")
    if len(problems) > MAX_LISTED_PROBLEMS:
        more = len(problems) - MAX_LISTED_PROBLEMS
        problems = [*problems[:MAX_LISTED_PROBLEMS], f"and {more} more problems"]
    return ErrorBody(error=code, detail="; ".join(problems) or "invalid request")


class BodyNotJSONError(ValueError):
    """A request body that is not a JSON document (400 ``invalid_json``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def reject_json_constant(name: str) -> object:
    """``parse_constant`` for :func:`json.loads`: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes | str) -> object:
    """Parse a request body with Python's json module, not pydantic's parser.

    ``"\\ud800"`` (a lone surrogate escape) is valid JSON *syntax*; pydantic's parser calls the
    whole body invalid JSON, which hides the real reason (the text is not valid Unicode, a 422
    from :func:`~sentiflow.models.preprocess.validate_text`) behind a 400. Python's parser
    returns the surrogate and lets the one text check name it. The Kafka decoder and
    ``replay`` parse with the same module. NaN / Infinity (not JSON), non-UTF-8 bytes, nesting
    deeper than the parser's recursion limit and integers too long to convert are all
    :class:`BodyNotJSONError`.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise BodyNotJSONError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text, parse_constant=reject_json_constant)
    except json.JSONDecodeError as exc:
        raise BodyNotJSONError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} "
                               f"column {exc.colno}") from None
    except RecursionError:
        raise BodyNotJSONError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN / Infinity, integers over sys.get_int_max_str_digits()
        raise BodyNotJSONError(f"body is not valid JSON: {exc}") from None


def json_schemas() -> dict[str, Any]:
    """JSON Schemas of every body, keyed by model name (for the OpenAPI document)."""
    models: tuple[type[BaseModel], ...] = (ClassifyRequest, ClassifyResponse, BatchRequest,
                                           BatchAccepted, BatchStatus, ErrorBody)
    return {m.__name__: m.model_json_schema() for m in models}
