"""Parse and check a completion's JSON answer (msgspec: decoding and validation in one pass).

Two layers: :func:`read_completion` takes the HTTP body apart (the message content and the
billed ``usage``; a body that is no chat completion raises :class:`NotACompletionError`, with the
usage when the body has one, so the tier still counts what the server billed), then
:func:`parse_verdicts` checks the content. The body is read here rather than through the
``openai`` client's models: those are built without validation, so a malformed body surfaced
as stray ``AttributeError`` / ``TypeError`` (or a string token count) deep in the tier.

A content that does not decode, misses a post id, repeats one, or uses a label outside
:data:`~sentiflow.models.llm.prompt.LLM_LABELS` raises :class:`InvalidLLMResponseError`: the
client retries it once, then counts a failure (the posts keep their fast-tier label, flagged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from sentiflow.models.llm.errors import InvalidLLMResponseError, NotACompletionError
from sentiflow.models.llm.pricing import TokenUsage

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
_Count = Annotated[int, msgspec.Meta(ge=0)]


class _Usage(msgspec.Struct, frozen=True):
    prompt_tokens: _Count
    completion_tokens: _Count


class _Message(msgspec.Struct, frozen=True):
    content: str | None = None


class _Choice(msgspec.Struct, frozen=True):
    message: _Message


@dataclass(frozen=True, slots=True)
class Completion:
    """What the tier needs of a chat completion: the first choice's content (None when the
    server returned no choice) and the billed usage (None when absent or unreadable)."""

    content: str | None
    usage: TokenUsage | None


def read_completion(body: bytes) -> Completion:
    """The content and usage of a chat-completion body; :class:`NotACompletionError` (with the
    usage, if any) for a body that is not one. A missing or malformed ``usage`` alone does not
    make the answer unusable: the caller estimates the cost instead."""
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise NotACompletionError(f"not a chat completion: body is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise NotACompletionError(
            f"not a chat completion: a JSON {type(payload).__name__}, not an object")
    usage: TokenUsage | None = None
    try:
        raw = msgspec.convert(payload.get("usage"), _Usage | None)
    except msgspec.ValidationError:
        raw = None
    if raw is not None:
        usage = TokenUsage(raw.prompt_tokens, raw.completion_tokens)
    try:
        choices = msgspec.convert(payload.get("choices"), list[_Choice])
    except msgspec.ValidationError as exc:
        raise NotACompletionError(f"not a chat completion: {exc}", usage=usage) from None
    return Completion(content=choices[0].message.content if choices else None, usage=usage)


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
