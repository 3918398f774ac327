"""Aspect extraction from the taxonomy's keyword lists, one compiled pattern per language.

Each language's terms become one alternation, longest term first (so "battery life" wins over
"battery" and "customer service" over "service"), wrapped in that language's morphology:

* word boundaries for spaced scripts (Devanagari vowel signs count as word characters);
* inflection suffixes: English / Romance plurals, German compounds and endings (``\\w*``:
  "Versand" finds "Versandkosten"), Indonesian / Malay ``-nya``, Hindi matras;
* Arabic proclitics (و ف ب ل ك and the article ال, e.g. "والشحن" for "شحن");
* Japanese and Chinese: plain substrings (no spaces to anchor on).

A text whose own language has no match (or no list) is also tried with the English list,
because reviews in every language borrow English product words ("packing", "customer service").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from sentiflow.models.aspects.taxonomy import Taxonomy
from sentiflow.models.aspects.text import UNSPACED
from sentiflow.models.aspects.types import AspectMention

_WORDCH: Final = r"\w\u0900-\u0963\u0966-\u097F"  # \w plus Devanagari marks (not dandas)
_SUFFIX: Final[dict[str, str]] = {
    "en": r"(?:s|es)?",
    "fr": r"(?:s|x)?",
    "es": r"(?:s|es)?",
    "pt": r"(?:s|es)?",
    "it": "",
    "de": r"\w*",
    "id": r"(?:nya)?",
    "ms": r"(?:nya)?",
    "hi": r"[\u093E-\u094D\u0902\u0903]*",
    "ar": r"(?:ه|ها|هم|ات|ي)?",
}
_PREFIX: Final[dict[str, str]] = {
    "ar": r"(?:و|ف)?(?:بال|كال|لل|ال|ب|ل|ك)?",
}
FALLBACK_LANGUAGE: Final = "en"


class KeywordExtractor:
    """Finds taxonomy terms in texts; thread-safe (compiled patterns are immutable)."""

    source: Final = "lexicon"

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self._lookup: dict[str, dict[str, str]] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}
        for language in taxonomy.languages():
            terms = taxonomy.terms(language)
            if terms:
                self._lookup[language] = terms
                self._patterns[language] = _compile(language, list(terms))

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._patterns)

    def extract(self, text: str, language: str) -> list[AspectMention]:
        """Mentions in ``text`` (ordered by offset, non-overlapping)."""
        found = self._match(text, language)
        if not found and language != FALLBACK_LANGUAGE:
            found = self._match(text, FALLBACK_LANGUAGE)
        return found

    def extract_batch(self, texts: Sequence[str], languages: Sequence[str]
                      ) -> list[list[AspectMention]]:
        return [self.extract(t, lang) for t, lang in zip(texts, languages, strict=True)]

    def category_of(self, term: str, language: str) -> str | None:
        """The category a free term (from a learned extractor) falls under: the category of
        the first list term found inside it, else None."""
        found = self.extract(term, language)
        return found[0].category if found else None

    def _match(self, text: str, language: str) -> list[AspectMention]:
        pattern = self._patterns.get(language)
        if pattern is None:
            return []
        lookup = self._lookup[language]
        out: list[AspectMention] = []
        for m in pattern.finditer(text):
            start, end = m.span("term")
            category = lookup.get(" ".join(m.group("base").lower().split()))
            if category is None:
                continue
            prev = out[-1] if out else None
            if prev is not None and prev.category == category and not text[prev.end:start].strip():
                # "产品质量", "product quality": one mention, not two of the same category
                out[-1] = AspectMention(prev.start, end, text[prev.start:end], category,
                                        "lexicon")
            else:
                out.append(AspectMention(start, end, text[start:end], category, "lexicon"))
        return out


def _term_regex(term: str) -> str:
    # Any run of whitespace in the text matches the single space of a multi-word term.
    return r"\s+".join(re.escape(part) for part in term.split())


def _compile(language: str, terms: list[str]) -> re.Pattern[str]:
    alternation = "|".join(_term_regex(t) for t in sorted(terms, key=len, reverse=True))
    if language in UNSPACED:
        return re.compile(f"(?P<term>(?P<base>{alternation}))", re.IGNORECASE)
    prefix = _PREFIX.get(language, "")
    suffix = _SUFFIX.get(language, "")
    return re.compile(
        rf"(?<![{_WORDCH}]){prefix}(?P<term>(?P<base>{alternation}){suffix})(?![{_WORDCH}])",
        re.IGNORECASE)
