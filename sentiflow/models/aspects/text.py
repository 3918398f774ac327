"""Tokens with character offsets, sentence / clause boundaries: the text geometry that
extraction and per-aspect classification share.

Why hand-written: the rules are a few regular expressions per language, and every offset must
point into the caller's original text (the API returns ``text_span``), which NLP toolkits that
normalise the text first do not guarantee.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

#: Scripts written without spaces between words: matching and windows work on characters.
UNSPACED: Final = frozenset({"ja", "zh"})

_TOKEN = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"[.!?;。！？；\n]+")
_CLAUSE_PUNCT = re.compile(r"[,，、،:：]")

#: Contrastive / concessive connectives: a clause about one aspect ends where one begins.
CONTRAST: Final[dict[str, tuple[str, ...]]] = {
    "en": ("but", "although", "though", "however", "whereas", "while", "yet", "except"),
    "de": ("aber", "jedoch", "doch", "obwohl", "allerdings", "während", "sondern"),
    "fr": ("mais", "cependant", "pourtant", "bien que", "alors que", "par contre", "sauf"),
    "es": ("pero", "sin embargo", "aunque", "mientras que", "sino", "excepto"),
    "it": ("ma", "però", "tuttavia", "anche se", "mentre", "invece"),
    "pt": ("mas", "porém", "contudo", "embora", "enquanto", "entretanto"),
    "id": ("tapi", "tetapi", "namun", "meskipun", "walaupun", "sedangkan", "padahal"),
    "ms": ("tapi", "tetapi", "namun", "walaupun", "manakala", "sedangkan"),
    "ar": ("لكن", "ولكن", "لكنّ", "بينما", "رغم", "إلا أن"),
    "hi": ("लेकिन", "पर", "परंतु", "मगर", "जबकि", "किंतु"),
    "ja": ("しかし", "でも", "けど", "けれど", "ですが", "だが", "が、", "のに"),
    "zh": ("但是", "但", "可是", "不过", "然而", "却", "而"),
}


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Words (``\\w+`` with inner hyphens / apostrophes) and single punctuation marks."""
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


@lru_cache(maxsize=32)
def _contrast_re(language: str) -> re.Pattern[str] | None:
    words = CONTRAST.get(language)
    if not words:
        return None
    alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    if language in UNSPACED:
        return re.compile(alternation)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


def _cuts(text: str, language: str) -> list[int]:
    """Offsets where a clause ends (after punctuation) or begins (at a connective)."""
    cuts = {0, len(text)}
    cuts.update(m.end() for m in _SENTENCE_END.finditer(text))
    cuts.update(m.end() for m in _CLAUSE_PUNCT.finditer(text))
    pattern = _contrast_re(language)
    if pattern is not None:
        cuts.update(m.start() for m in pattern.finditer(text))
    return sorted(cuts)


def _units(segment: str, language: str) -> int:
    """Length of a segment in words (characters for unspaced scripts), connectives not
    counted: "The food, however," is still too short to judge the food by."""
    pattern = _contrast_re(language)
    if pattern is not None:
        segment = pattern.sub(" ", segment)
    if language in UNSPACED:
        return sum(1 for ch in segment if ch.isalnum())
    return len(_WORD.findall(segment))


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """``[a, b)`` of the sentence holding ``text[start:end]``."""
    a = 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() <= start:
            a = m.end()
        elif m.start() >= end:
            return a, m.end()
    return a, len(text)


def clause_bounds(text: str, start: int, end: int, language: str,
                  min_units: int = 3, others: Sequence[tuple[int, int]] = ()
                  ) -> tuple[int, int]:
    """``[a, b)`` of the clause holding the span ``[start, end)``, grown forward (then
    backward) while it has fewer than ``min_units`` words, never across a sentence end and
    never over another aspect mention (``others``: that clause is about the other aspect).

    "The food, which was above average, but ..." -> "The food, which was above average";
    "great product, but shipping took forever" -> "but shipping took forever".
    """
    s_a, s_b = sentence_bounds(text, start, end)
    cuts = [c for c in _cuts(text, language) if s_a <= c <= s_b]
    cuts = sorted({s_a, s_b, *cuts})
    # the segment [cuts[i], cuts[i+1]) holding `start`
    i = max(k for k in range(len(cuts) - 1) if cuts[k] <= start) if len(cuts) > 1 else 0
    j = i + 1
    while j < len(cuts) and cuts[j] < end:  # a span that crosses a cut keeps both sides
        j += 1
    need = min_units * (2 if language in UNSPACED else 1)
    def free(a: int, b: int) -> bool:
        return not any(a <= o_start < b for o_start, _ in others if o_start != start)

    while _units(text[cuts[i]:cuts[j]], language) < need:
        if j < len(cuts) - 1 and free(cuts[j], cuts[j + 1]):
            j += 1
        elif i > 0 and free(cuts[i - 1], cuts[i]):
            i -= 1
        else:
            break
    return cuts[i], cuts[j]


def clause(text: str, start: int, end: int, language: str,
           others: Sequence[tuple[int, int]] = ()) -> str:
    """The clause text for the span (stripped); the span's own text when all else is blank."""
    a, b = clause_bounds(text, start, end, language, others=others)
    out = text[a:b].strip(" \t\n,，、;；")
    return out or text[start:end]
