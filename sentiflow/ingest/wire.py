"""What the ingest side writes to Kafka: dead letters and results.

Dead letters keep the original record *byte for byte* (value and key) so that they can be
inspected and replayed as they were; the reason travels in headers, the convention Kafka Connect
uses for its dead-letter queues. Results are the stored record (request + result) as JSON, keyed
by request_id so that a compacted results topic keeps the latest result per post.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from sentiflow.ingest.posts import RecordId
from sentiflow.stores.records import ResultRecord

HEADER_PREFIX = "sentiflow.dlq."


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record that will not be classified, and why."""

    origin: RecordId
    value: bytes | None
    key: bytes | None
    #: ``empty`` / ``bad_json`` / ... for unparseable input, ``pipeline`` / ``unprocessable``
    #: for posts the pipeline failed on.
    kind: str
    error: str
    attempts: int = 0

    def headers(self) -> list[tuple[str, bytes]]:
        fields = {
            "kind": self.kind,
            "error": self.error[:4000],
            "topic": self.origin.topic,
            "partition": str(self.origin.partition),
            "offset": str(self.origin.offset),
            "attempts": str(self.attempts),
        }
        return [(HEADER_PREFIX + k, v.encode()) for k, v in fields.items()]


def parse_headers(headers: object) -> dict[str, str]:
    """The dead-letter headers of a consumed record, without the prefix (for tools, tests)."""
    out: dict[str, str] = {}
    if isinstance(headers, list | tuple):
        for item in headers:
            key, value = item
            if isinstance(key, str) and key.startswith(HEADER_PREFIX) and isinstance(
                    value, bytes):
                out[key.removeprefix(HEADER_PREFIX)] = value.decode("utf-8", "replace")
    return out


_encoder = msgspec.json.Encoder()


def result_value(record: ResultRecord) -> bytes:
    """The results-topic value: ``{"request": {...}, "result": {...}}`` as UTF-8 JSON."""
    return _encoder.encode(record)


def decode_result(value: bytes) -> ResultRecord:
    return msgspec.json.decode(value, type=ResultRecord)
