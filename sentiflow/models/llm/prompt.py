"""The prompt and the JSON schema of the LLM tier's chat completions.

Several posts go into one completion (a requests/min limit, not tokens, is what binds first at
~10 % escalation of 72 M posts/day), each under an opaque id, as JSON in the user message (so a
post's text cannot break out of its slot). The answer is constrained by ``response_format``
``json_schema`` (strict) to ``{"results": [{"id", "sentiment", "confidence"[, "aspects"]}]}``;
servers that ignore the schema are still checked by :mod:`~sentiflow.models.llm.parsing`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

LLM_LABELS: Final = ("negative", "neutral", "positive")

SYSTEM_PROMPT: Final = (
    "You are a careful multilingual sentiment analyst. For every post in the user's JSON, "
    "decide the overall sentiment the author expresses: negative, neutral or positive. Judge "
    "the text in its own language; sarcasm counts as what it means. Give a confidence in [0, 1] "
    "that your label is right. When a post has an \"aspects\" list, also give the sentiment of "
    "each listed aspect as expressed in the post (an empty list means: find the aspects the "
    "post talks about yourself, at most 5). Answer only with JSON matching the schema, one "
    "result per post id, nothing else."
)


@dataclass(frozen=True, slots=True)
class LLMPost:
    """One post to judge. ``aspects``: None = no aspects wanted; ``()`` = find them;
    names = judge exactly these aspects."""

    id: str
    text: str
    language: str = "und"
    aspects: tuple[str, ...] | None = None


def _aspect_schema() -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "aspect": {"type": "string"},
                "sentiment": {"type": "string", "enum": list(LLM_LABELS)},
                "confidence": {"type": "number"},
            },
            "required": ["aspect", "sentiment", "confidence"],
            "additionalProperties": False,
        },
    }


def response_schema(with_aspects: bool) -> dict[str, Any]:
    """JSON schema of the answer (strict-mode compatible: every property required)."""
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "sentiment": {"type": "string", "enum": list(LLM_LABELS)},
            "confidence": {"type": "number"},
        },
        "required": ["id", "sentiment", "confidence"],
        "additionalProperties": False,
    }
    if with_aspects:
        item["properties"]["aspects"] = _aspect_schema()
        item["required"].append("aspects")
    return {
        "type": "object",
        "properties": {"results": {"type": "array", "items": item}},
        "required": ["results"],
        "additionalProperties": False,
    }


def response_format(with_aspects: bool) -> dict[str, Any]:
    """The ``response_format`` argument of ``chat.completions.create``."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "sentiment_with_aspects" if with_aspects else "sentiment",
            "strict": True,
            "schema": response_schema(with_aspects),
        },
    }


def wants_aspects(posts: Sequence[LLMPost]) -> bool:
    return any(p.aspects is not None for p in posts)


def build_messages(posts: Sequence[LLMPost]) -> list[dict[str, str]]:
    """System + user messages for one completion judging ``posts`` (ids must be unique)."""
    if not posts:
        raise ValueError("no posts to judge")
    if len({p.id for p in posts}) != len(posts):
        raise ValueError("post ids must be unique within a request")
    payload = []
    for post in posts:
        entry: dict[str, Any] = {"id": post.id, "language": post.language, "text": post.text}
        if post.aspects is not None:
            entry["aspects"] = list(post.aspects)
        payload.append(entry)
    user = json.dumps({"posts": payload}, ensure_ascii=False, separators=(",", ":"))
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def estimate_prompt_tokens(messages: Sequence[dict[str, str]], *, with_aspects: bool) -> int:
    """A deliberately high estimate of the prompt's tokens (UTF-8 bytes / 2, plus message and
    schema overhead): tokenisers average 3-4.5 bytes per token across our languages, so the
    budget's reservation before a call is rarely below what the call then costs."""
    size = sum(len(m["content"].encode()) for m in messages)
    schema = len(json.dumps(response_schema(with_aspects)))
    return math.ceil((size + schema) / 2) + 8 * len(messages)


def max_completion_tokens(posts: Sequence[LLMPost], per_post: int) -> int:
    """``max_tokens`` for a completion over ``posts``: ``per_post`` each, and again per aspect
    (found aspects count as 3)."""
    total = 16
    for post in posts:
        aspects = 0 if post.aspects is None else (len(post.aspects) or 3)
        total += per_post * (1 + aspects)
    return total
