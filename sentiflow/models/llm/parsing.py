"""Parse and check a completion's JSON answer (msgspec: decoding and validation in one pass).

A response that does not decode, misses a post id, repeats one, or uses a label outside
:data:`~sentiflow.models.llm.prompt.LLM_LABELS` raises :class:`InvalidLLMResponseError`: the
client retries it once, then counts a failure (the posts keep their fast-tier label, flagged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from sentiflow.models.llm.errors import InvalidLLMResponseError

Label = Literal["negative", "neutral", "positive"]
_Confidence = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class _Aspect(msgspec.Struct, frozen=True):
    aspect: str
    sentiment: Label
    confidence: _Confidence


class _Result(msgspec.Struct, frozen=True):
    id: str
    sentiment: Label
    confidence: _Confidence
    aspects: list[_Aspect] = msgspec.field(default_factory=list)


class _Answer(msgspec.Struct, frozen=True):
    results: list[_Result]


_DECODER = msgspec.json.Decoder(_Answer)


@dataclass(frozen=True, slots=True)
class AspectVerdict:
    aspect: str
    sentiment: Label
    confidence: float


@dataclass(frozen=True, slots=True)
class LLMVerdict:
    """The LLM's opinion of one post."""

    sentiment: Label
    confidence: float
    aspects: tuple[AspectVerdict, ...] = ()


def parse_verdicts(content: str | None, ids: Sequence[str]) -> dict[str, LLMVerdict]:
    """The verdict for every id in ``ids`` from the completion's ``content``."""
    if not content:
        raise InvalidLLMResponseError("empty completion")
    try:
        answer = _DECODER.decode(content)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidLLMResponseError(f"completion does not match the schema: {exc}") from None
    out: dict[str, LLMVerdict] = {}
    for result in answer.results:
        if result.id in out:
            raise InvalidLLMResponseError(f"post id {result.id!r} answered twice")
        out[result.id] = LLMVerdict(
            sentiment=result.sentiment, confidence=result.confidence,
            aspects=tuple(AspectVerdict(a.aspect, a.sentiment, a.confidence)
                          for a in result.aspects))
    missing = [i for i in ids if i not in out]
    if missing:
        raise InvalidLLMResponseError(f"no answer for post ids {missing[:5]}")
    extra = set(out) - set(ids)
    if extra:
        raise InvalidLLMResponseError(f"answers for unknown post ids {sorted(extra)[:5]}")
    return out
