"""API request/response schemas: limits, strictness, and fuzzing (never a non-validation error)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sentiflow.api.schemas import (
    BatchRequest,
    BatchStatus,
    BodyNotJSONError,
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
    ValidationLimits,
    error_body,
    json_schemas,
    load_json,
)
from sentiflow.stores.records import (
    AspectSentiment,
    BatchJob,
    BatchView,
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
    WebhookState,
)

LIMITS = ValidationLimits(max_text_chars=50, max_batch_items=3)


def test_defaults_and_normalisation() -> None:
    req = ClassifyRequest.model_validate_json(b'{"text": "great phone", "language": "DE"}')
    assert (req.language, req.source, req.topic, req.priority, req.aspects) == \
        ("de", "api", None, "standard", False)
    assert uuid.UUID(req.request_id).version == 4
    other = ClassifyRequest.model_validate({"text": "x"})
    assert other.request_id != req.request_id


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"text": ""}, "text:"),
        ({"text": "   \n"}, "text: text is empty or only whitespace (empty_text)"),
        ({"text": "x" * 51}, "text: text has 51 characters, the limit is 50 (text_too_long)"),
        ({"text": "a\x00b"}, "NUL character (invalid_encoding)"),
        ({"text": "\ud800"}, "text: text contains a lone UTF-16 surrogate"),
        ({"text": 5}, "text: Input should be a valid string"),
        ({"text": "ok", "aspects": "yes"}, "aspects: Input should be a valid boolean"),
        ({"text": "ok", "priority": "urgent"}, "priority:"),
        ({"text": "ok", "language": "english"}, "language: must be \"auto\" or a two-letter"),
        ({"text": "ok", "request_id": "has space"}, "request_id:"),
        ({"text": "ok", "request_id": "x" * 129}, "request_id:"),
        ({"text": "ok", "colour": "blue"}, "colour: unknown field"),
        ({}, "text: Field required"),
        ([], "body:"),
    ],
)
def test_bad_single_requests_are_rejected_with_the_field_named(body: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        ClassifyRequest.model_validate(body, context=LIMITS)
    err = error_body(info.value)
    assert err.error == "invalid_request"
    assert fragment in err.detail


def test_limits_come_from_context_or_defaults() -> None:
    ClassifyRequest.model_validate({"text": "x" * 5000})
    with pytest.raises(ValidationError):
        ClassifyRequest.model_validate({"text": "x" * 5001})
    ClassifyRequest.model_validate({"text": "x" * 6000},
                                   context=ValidationLimits(max_text_chars=6000))


def test_batch_request_rules() -> None:
    ok = BatchRequest.model_validate_json(json.dumps(
        {"items": [{"text": "a", "request_id": "r1"}, {"text": "b"}],
         "webhook_url": "https://hooks.example.com/x?y=1"}), context=LIMITS)
    assert ok.priority == "batch"
    assert [i.text for i in ok.items] == ["a", "b"]
    cases = [
        ({"items": []}, "items:"),
        ({"items": [{"text": "a"}] * 4}, "items: 4 items; the limit is 3"),
        ({"items": [{"text": "a", "request_id": "d"}, {"text": "b", "request_id": "d"}]},
         "duplicate request_id 'd'"),
        ({"items": [{"text": "a"}, {"text": ""}]}, "items[1].text:"),
        ({"items": [{"text": "a", "priority": "realtime"}]}, "items[0].priority: unknown field"),
        ({"items": [{"text": "a"}], "webhook_url": "ftp://x/y"}, "webhook_url:"),
        ({"items": [{"text": "a"}], "webhook_url": "https:// x"}, "webhook_url:"),
        ({"items": [{"text": "a"}], "webhook_url": "/relative"}, "webhook_url:"),
    ]
    for body, fragment in cases:
        with pytest.raises(ValidationError) as info:
            BatchRequest.model_validate(body, context=LIMITS)
        assert fragment in error_body(info.value).detail, (body, error_body(info.value))


def test_invalid_json_is_a_validation_error() -> None:
    for raw in (b"", b"{", b'{"text": "a",}', b"\xff\xfe", b'{"text": "\\ud800"}'):
        with pytest.raises(ValidationError) as info:
            ClassifyRequest.model_validate_json(raw)
        assert error_body(info.value).detail


def test_response_built_from_a_stored_result() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    result = ClassificationResult(
        request_id="r1", sentiment="mixed", confidence=0.8, model_used="m",
        language_detected="de", latency_ms=3.5, created_at=now,
        aspects=(AspectSentiment(aspect_id="r1#0", result_id="r1", aspect_name="shipping",
                                 sentiment="negative", confidence=0.7, text_span=(4, 12)),))
    resp = ClassifyResponse.from_result(result)
    assert resp.model_dump(mode="json") == {
        "request_id": "r1", "sentiment": "mixed", "confidence": 0.8, "model_used": "m",
        "aspects": [{"aspect": "shipping", "sentiment": "negative", "confidence": 0.7,
                     "text_span": [4, 12]}],
        "language_detected": "de", "latency_ms": 3.5}
    job = BatchJob(batch_id="b", count=2, status="running", done=1, webhook_url="https://x/y")
    view = BatchView(job=job, results=(ResultRecord(
        request=ClassificationRequest(request_id="r1", text="t"), result=result),),
        webhook=WebhookState(state="delivering", attempts=2, chunks_total=2,
                             chunks_delivered=1))
    status = BatchStatus.from_view(view)
    assert (status.status, status.done, status.count) == ("running", 1, 2)
    assert status.results == [resp]
    assert (status.webhook.url, status.webhook.state) == ("https://x/y", "delivering")


def test_openapi_schemas_are_generated() -> None:
    schemas = json_schemas()
    assert schemas["ClassifyRequest"]["additionalProperties"] is False
    assert "text" in schemas["ClassifyRequest"]["required"]
    assert set(schemas) >= {"ClassifyResponse", "BatchRequest", "BatchAccepted", "BatchStatus",
                            "ErrorBody"}
    assert ErrorBody(error="x", detail="y").model_dump() == {"error": "x", "detail": "y"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
field_values = st.one_of(json_values, st.sampled_from(
    ["auto", "en", "EN", "xx1", "realtime", "batch", "standard", "", " ", "r-1", "http://a/b",
     "https://127.0.0.1/x"]))
request_like = st.fixed_dictionaries({}, optional={
    k: field_values for k in
    ("text", "language", "request_id", "source", "topic", "priority", "aspects", "extra")})
batch_like = st.fixed_dictionaries({}, optional={
    "items": st.lists(request_like | json_values, max_size=5),
    "webhook_url": field_values, "priority": field_values})


def accepted_or_rejected_cleanly(validate: Callable[[], object]) -> None:
    """Run ``validate``: success or a ValidationError with a usable body; anything else fails."""
    problem: ErrorBody | None = None
    try:
        validate()
    except ValidationError as exc:
        problem = error_body(exc)
    assert problem is None or problem.detail


@settings(max_examples=200, deadline=None)
@given(value=json_values | request_like | batch_like)
def test_arbitrary_json_is_accepted_or_rejected_cleanly(value: Any) -> None:
    raw = json.dumps(value)
    for model in (ClassifyRequest, BatchRequest):
        accepted_or_rejected_cleanly(partial(model.model_validate, value, context=LIMITS))
        accepted_or_rejected_cleanly(partial(model.model_validate_json, raw, context=LIMITS))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_are_accepted_or_rejected_cleanly(raw: bytes) -> None:
    accepted_or_rejected_cleanly(
        partial(ClassifyRequest.model_validate_json, raw, context=LIMITS))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | st.from_regex(rb"\A[\[{\"\\u0-9a-fA-FN]{0,60}\Z"))
def test_load_json_refuses_non_json_with_its_own_error(raw: bytes) -> None:
    """Anything that is not a JSON document is a BodyNotJSONError (400), never another
    exception, whatever the bytes (lone surrogate escapes are JSON: they parse)."""
    detail = "body is not"
    try:
        load_json(raw)
    except BodyNotJSONError as exc:
        detail = exc.detail
    assert detail.startswith("body is not")


def test_load_json_edge_cases() -> None:
    assert load_json(b'{"text": "a\\ud800b"}') == {"text": "a\ud800b"}
    for raw, reason in [(b"[" * 100_000, "nested too deeply"), (b'{"a": NaN}', "NaN"),
                        (b"1" * 5000, "digits"), (b"\xff{}", "not UTF-8"), (b"", "not valid")]:
        with pytest.raises(BodyNotJSONError, match=reason):
            load_json(raw)


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Cn"),
                                  exclude_characters="\ufffd"), min_size=1, max_size=50)
       .filter(lambda t: bool(t.strip())),
       rid=st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z"),
       language=st.sampled_from(["auto", "en", "de", "ja"]))
def test_valid_requests_round_trip(text: str, rid: str, language: str) -> None:
    body = json.dumps({"text": text, "request_id": rid, "language": language})
    req = ClassifyRequest.model_validate_json(body, context=LIMITS)
    assert (req.text, req.request_id, req.language) == (text, rid, language)
    record = req.to_request(priority=req.priority, received_at=datetime.now(UTC))
    assert (record.text, record.request_id) == (text, rid)
