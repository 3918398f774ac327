"""Post parsing and offset bookkeeping: pure code, no broker."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentiflow.api.schemas import ValidationLimits
from sentiflow.ingest.offsets import OffsetTracker, PartitionProgress
from sentiflow.ingest.posts import InvalidPostError, RecordId, parse_post
from tests.text_cases import BAD_TEXTS, ODD_GOOD_TEXTS, ids

WHERE = RecordId("twitter", 3, 42)
LIMITS = ValidationLimits(max_text_chars=20)


def test_defaults_are_deterministic_and_from_the_topic() -> None:
    req = parse_post(b'{"text": "great phone"}', WHERE, limits=LIMITS)
    assert req.request_id == "kafka.twitter.3.42"
    assert req.source == "twitter"
    assert req.priority == "standard"
    assert req.language == "auto"
    again = parse_post(b'{"text": "great phone"}', WHERE, limits=LIMITS)
    assert again.request_id == req.request_id


def test_fields_are_kept() -> None:
    body = {"text": "hola", "request_id": "abc-1", "language": "ES", "source": "reddit",
            "topic": "phones", "priority": "realtime", "aspects": True}
    req = parse_post(json.dumps(body).encode(), WHERE, limits=LIMITS)
    assert (req.request_id, req.language, req.source, req.topic, req.priority, req.aspects) == (
        "abc-1", "es", "reddit", "phones", "realtime", True)


@pytest.mark.parametrize(("value", "kind"), [
    (None, "empty"),
    (b"", "empty"),
    (b"\xff\xfe\x00", "not_utf8"),
    (b"{not json", "bad_json"),
    (b"[1, 2]", "not_object"),
    (b'"text"', "not_object"),
    (b'{"language": "en"}', "invalid_fields"),
    (b'{"text": 5}', "invalid_fields"),
    (b'{"text": "   "}', "invalid_fields"),
    (b'{"text": "' + b"x" * 21 + b'"}', "invalid_fields"),
    (b'{"text": "ok", "priority": "urgent"}', "invalid_fields"),
    (b'{"text": "ok", "request_id": "has space"}', "invalid_fields"),
    (b'{"text": "ok", "unknown": 1}', "invalid_fields"),
])
def test_bad_input_is_typed(value: bytes | None, kind: str) -> None:
    with pytest.raises(InvalidPostError) as info:
        parse_post(value, WHERE, limits=LIMITS)
    assert info.value.kind == kind
    assert info.value.detail


@pytest.mark.parametrize(("name", "text", "code"), BAD_TEXTS, ids=ids(BAD_TEXTS))
def test_bad_text_is_dead_lettered_with_the_models_reason(name: str, text: str,
                                                          code: str) -> None:
    """The decoder refuses what the API refuses, with the reason's code in the detail (which
    the reader puts in the dead letter's ``error`` header)."""
    with pytest.raises(InvalidPostError) as info:
        parse_post(json.dumps({"text": text}).encode(), WHERE, limits=ValidationLimits())
    assert info.value.kind == "invalid_fields"
    assert info.value.detail.startswith("text: ")
    assert f"({code})" in info.value.detail, info.value.detail


@pytest.mark.parametrize(("name", "text"), ODD_GOOD_TEXTS, ids=ids(ODD_GOOD_TEXTS))
def test_odd_but_real_text_becomes_a_post_unchanged(name: str, text: str) -> None:
    req = parse_post(json.dumps({"text": text}).encode(), WHERE, limits=ValidationLimits())
    assert req.text == text
    raw_utf8 = json.dumps({"text": text}, ensure_ascii=False).encode()
    assert parse_post(raw_utf8, WHERE, limits=ValidationLimits()).text == text


@pytest.mark.parametrize(("value", "reason"), [
    (b"[" * 100_000, "nested too deeply"),
    (b'{"text": "ok", "x": NaN}', "NaN"),
    (b'{"text": "ok", "n": ' + b"9" * 5000 + b"}", "digits"),
])
def test_json_the_parser_chokes_on_is_dead_lettered_not_raised(value: bytes,
                                                               reason: str) -> None:
    """A poison record that makes json.loads raise something other than JSONDecodeError
    (RecursionError, ValueError) must still become a dead letter: an exception escaping
    here would crash the reader, which would then re-read the same record forever."""
    with pytest.raises(InvalidPostError, match=reason) as info:
        parse_post(value, WHERE, limits=LIMITS)
    assert info.value.kind == "bad_json"


def test_commit_position_stops_at_the_first_gap() -> None:
    part = PartitionProgress()
    for offset in (10, 11, 12, 15):  # offsets need not be consecutive
        assert part.fetched(offset)
    assert not part.fetched(12)  # not past the last one: ignored
    part.done(12)
    assert part.advance() is None
    part.done(10)
    assert part.advance() == 11
    part.done(11)
    assert part.advance() == 13
    part.committed = 13
    assert part.advance() is None
    part.done(15)
    assert part.advance() == 16
    assert part.outstanding == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=60),
       st.randoms(use_true_random=False))
def test_never_commits_past_a_post_not_done(gaps: list[int], rnd: random.Random) -> None:
    offsets, offset = [], 0
    for gap in gaps:
        offset += gap
        offsets.append(offset)
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign(["p"])
    generation = None
    for o in offsets:
        generation = tracker.fetched("p", o)
        assert generation is not None
    assert generation is not None
    order = offsets[:]
    rnd.shuffle(order)
    done: set[int] = set()
    for o in order:
        assert tracker.done("p", o, generation)
        done.add(o)
        moved = tracker.to_commit()
        if "p" in moved:
            position, gen = moved["p"]
            # everything below the position is done
            assert all(x in done for x in offsets if x < position)
            tracker.committed("p", position, gen)
    assert tracker.outstanding() == 0
    assert tracker.to_commit() == {}


def test_revoked_partitions_ignore_stale_completions() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign(["a"])
    old = tracker.fetched("a", 5)
    assert old is not None
    tracker.revoke(["a"])
    tracker.assign(["a"])  # re-assigned: a new generation
    new = tracker.fetched("a", 5)
    assert new is not None
    assert new != old
    assert not tracker.done("a", 5, old)
    assert tracker.outstanding() == 1
    assert tracker.done("a", 5, new)
    assert tracker.to_commit() == {"a": (6, new)}
    assert tracker.fetched("b", 1) is None  # not assigned
