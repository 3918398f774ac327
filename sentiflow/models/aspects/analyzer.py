"""The aspect step for a batch of texts: extract, then classify each mention in its context.

Two separate calls by design (extraction never decides sentiment): the extractor proposes
mentions, then the polarity model scores all mentions of the batch in one call.
An :class:`AspectAnalyzer` is used by one thread at a time (the CRF tagger inside is not
re-entrant); the actor pool builds one per worker (:class:`AspectModels.analyzer`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sentiflow.models.aspects.extraction import CombinedExtractor, ExtractionMode
from sentiflow.models.aspects.learned import CrfModel
from sentiflow.models.aspects.lexicon import KeywordExtractor
from sentiflow.models.aspects.polarity import (
    AspectItem,
    LanguageRoutedPolarity,
    PolarityModel,
    WindowedPolarity,
)
from sentiflow.models.aspects.taxonomy import Taxonomy
from sentiflow.models.aspects.types import AspectMention, AspectPrediction
from sentiflow.models.base import LABELS, SentimentBackend
from sentiflow.models.langid import UND

DEFAULT_MAX_ASPECTS = 10


class AspectAnalyzer:
    def __init__(self, extractor: CombinedExtractor, polarity: PolarityModel,
                 max_aspects: int = DEFAULT_MAX_ASPECTS) -> None:
        self.extractor = extractor
        self.polarity = polarity
        self.max_aspects = max_aspects

    @property
    def name(self) -> str:
        return f"aspects[{self.extractor.mode}|{self.polarity.name}]"

    def extract(self, texts: Sequence[str], languages: Sequence[str]
                ) -> list[list[AspectMention]]:
        """Step 1: mentions per text (at most ``max_aspects``, first ones kept)."""
        return [self.extractor.extract(t, _lang(lang))[: self.max_aspects]
                for t, lang in zip(texts, languages, strict=True)]

    def classify(self, texts: Sequence[str], languages: Sequence[str],
                 mentions: Sequence[Sequence[AspectMention]]) -> list[list[AspectPrediction]]:
        """Step 2: sentiment of each mention in its own context, one model call in all."""
        items = [AspectItem(text, m.start, m.end, _lang(lang),
                            tuple((o.start, o.end) for o in found))
                 for text, lang, found in zip(texts, languages, mentions, strict=True)
                 for m in found]
        probs = self.polarity.predict_proba(items)
        out: list[list[AspectPrediction]] = []
        row = 0
        for found in mentions:
            preds = []
            for m in found:
                p = probs[row]
                k = int(np.argmax(p))
                preds.append(AspectPrediction(
                    mention=m, sentiment=LABELS[k], confidence=float(p[k]),
                    probabilities=(float(p[0]), float(p[1]), float(p[2])),
                    context=items[row].context))
                row += 1
            out.append(preds)
        return out

    def analyze(self, texts: Sequence[str], languages: Sequence[str]
                ) -> list[list[AspectPrediction]]:
        return self.classify(texts, languages, self.extract(texts, languages))


def _lang(language: str) -> str:
    return language if language and language != UND else "en"


@dataclass(frozen=True)
class AspectModels:
    """Everything loaded once and shared read-only: taxonomy, lists, trained models."""

    taxonomy: Taxonomy
    crf: CrfModel | None = None
    extraction_mode: ExtractionMode = "lexicon"
    #: language -> factory of the trained polarity model to use for it (given the backend).
    trained_polarity: dict[str, Callable[[SentimentBackend | Callable[[], SentimentBackend]],
                                         PolarityModel]] = field(default_factory=dict)
    version: str = "lexicon"
    lexicon: KeywordExtractor = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lexicon", KeywordExtractor(self.taxonomy))

    def analyzer(self, backend: SentimentBackend | Callable[[], SentimentBackend],
                 max_aspects: int = DEFAULT_MAX_ASPECTS) -> AspectAnalyzer:
        """A new analyser (own CRF tagger) whose windowed model reads ``backend``."""
        crf = self.crf.extractor(self.lexicon) if self.crf is not None else None
        mode: ExtractionMode = self.extraction_mode if crf is not None else "lexicon"
        window = WindowedPolarity(backend)
        per_language = {lang: make(backend) for lang, make in self.trained_polarity.items()}
        return AspectAnalyzer(CombinedExtractor(self.lexicon, crf, mode),
                              LanguageRoutedPolarity(window, per_language), max_aspects)
