"""The extraction step: which extractor runs for a text, and how their findings combine.

Modes (chosen per artifact by held-out F1, see :mod:`sentiflow.models.aspects.training`):

* ``lexicon``: the keyword lists only (every language);
* ``learned``: the CRF for the languages it was trained on, the lists elsewhere;
* ``union``: the CRF's terms plus the list matches that overlap none of them (the lists add
  categories the CRF's training domains never showed it, e.g. shipping).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from sentiflow.models.aspects.learned import CrfExtractor
from sentiflow.models.aspects.lexicon import KeywordExtractor
from sentiflow.models.aspects.types import AspectMention

ExtractionMode = Literal["lexicon", "learned", "union"]
EXTRACTION_MODES: tuple[ExtractionMode, ...] = ("lexicon", "learned", "union")


class AspectExtractor(Protocol):
    def extract(self, text: str, language: str) -> list[AspectMention]:
        """Mentions in ``text``, ordered by offset, non-overlapping."""
        ...


class CombinedExtractor:
    def __init__(self, lexicon: KeywordExtractor, crf: CrfExtractor | None = None,
                 mode: ExtractionMode = "lexicon") -> None:
        if mode != "lexicon" and crf is None:
            raise ValueError(f"extraction mode {mode!r} needs a trained CRF")
        self.lexicon = lexicon
        self.crf = crf
        self.mode = mode

    def extract(self, text: str, language: str) -> list[AspectMention]:
        if self.crf is None or self.mode == "lexicon" or language not in self.crf.languages:
            return self.lexicon.extract(text, language)
        learned = self.crf.extract(text, language)
        if self.mode == "learned":
            return learned
        return merge(learned, self.lexicon.extract(text, language))

    def extract_batch(self, texts: Sequence[str], languages: Sequence[str]
                      ) -> list[list[AspectMention]]:
        return [self.extract(t, lang) for t, lang in zip(texts, languages, strict=True)]


def merge(primary: Sequence[AspectMention], extra: Sequence[AspectMention]
          ) -> list[AspectMention]:
    """``primary`` plus the ``extra`` mentions that overlap none of it, by offset."""
    kept = [m for m in extra if not any(m.overlaps(p) for p in primary)]
    return sorted([*primary, *kept])
