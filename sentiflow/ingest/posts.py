"""Kafka message -> ClassificationRequest, or a typed reason why not.

A post on a topic is a JSON object with the API's ClassificationRequest fields (``text`` required;
``request_id``, ``language``, ``source``, ``topic``, ``priority``, ``aspects`` optional). It is
validated by the API's own schema (:class:`~sentiflow.api.schemas.ClassifyRequest`, strict, with
the configured text limit and the models' text check, so empty text, lone surrogates, control
characters and binary junk are dead-lettered with the reason's code), so the API and the stream
accept exactly the same posts.

Defaults chosen for streams:

* ``request_id``: ``kafka.<topic>.<partition>.<offset>``: deterministic, so re-reading the same
  record after a crash or a rebalance upserts the same row instead of adding a new one;
* ``source``: the topic's name (``twitter``, ``reddit``, ``support``...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from sentiflow.api.schemas import (
    ClassifyRequest,
    ValidationLimits,
    error_body,
    reject_json_constant,
)
from sentiflow.stores.records import ClassificationRequest, utcnow

InvalidKind = Literal["empty", "not_utf8", "bad_json", "not_object", "invalid_fields"]


class InvalidPostError(ValueError):
    """The record can never become a post; it is dead-lettered at once (no retry)."""

    def __init__(self, kind: InvalidKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: InvalidKind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RecordId:
    """Where a record came from: enough to dead-letter it or to derive its request id."""

    topic: str
    partition: int
    offset: int

    def request_id(self) -> str:
        # REQUEST_ID_PATTERN allows [A-Za-z0-9._:-]; topic names are [A-Za-z0-9._-].
        return f"kafka.{self.topic}.{self.partition}.{self.offset}"


def parse_post(value: bytes | None, where: RecordId, *,
               limits: ValidationLimits) -> ClassificationRequest:
    """Validate one record's value; raises :class:`InvalidPostError` with the reason."""
    if not value:
        raise InvalidPostError("empty", "the record has no value")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPostError("not_utf8", f"value is not UTF-8: {exc.reason} at byte "
                                           f"{exc.start}") from None
    try:
        obj = json.loads(text, parse_constant=reject_json_constant)
    except json.JSONDecodeError as exc:
        raise InvalidPostError("bad_json", f"value is not JSON: {exc.msg} at line {exc.lineno} "
                                           f"column {exc.colno}") from None
    except RecursionError:  # a poison record must not crash (and so re-read) the reader
        raise InvalidPostError("bad_json", "value is not JSON: nested too deeply") from None
    except ValueError as exc:  # NaN / Infinity, integers too long to convert
        raise InvalidPostError("bad_json", f"value is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidPostError("not_object",
                               f"value is a JSON {type(obj).__name__}, expected an object")
    obj.setdefault("request_id", where.request_id())
    obj.setdefault("source", where.topic[:64])
    try:
        item = ClassifyRequest.model_validate(obj, context=limits)
    except ValidationError as exc:
        raise InvalidPostError("invalid_fields", error_body(exc).detail) from None
    return item.to_request(priority=item.priority, received_at=utcnow())
