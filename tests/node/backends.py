"""A controllable SentimentBackend for testing the pipeline's mechanics.

It is a real (if tiny) lexicon classifier, so results depend on the input, plus controls the
tests need: record every call, block until released, crash on a marker text. Accuracy is tested
with the embedded default model elsewhere; here the subject is the actor tree.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from sentiflow.models.base import Probabilities

POSITIVE = ("love", "great", "excellent", "amazing", "good", "gut", "bueno", "génial")
NEGATIVE = ("hate", "awful", "terrible", "bad", "schlecht", "malo", "horrible")


class LexiconBackend:
    def __init__(self, crash_marker: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.languages: list[list[str]] = []
        self.crash_marker = crash_marker
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    @property
    def name(self) -> str:
        return "lexicon"

    @property
    def version(self) -> str:
        return "t1"

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        self.entered.set()
        self.gate.wait(timeout=10)
        self.calls.append(list(texts))
        self.languages.append(list(languages))
        if self.crash_marker and any(self.crash_marker in t for t in texts):
            raise RuntimeError("model exploded")
        out = np.full((len(texts), 3), 0.1, dtype=np.float32)
        for i, text in enumerate(texts):
            lower = text.lower()
            pos = sum(w in lower for w in POSITIVE)
            neg = sum(w in lower for w in NEGATIVE)
            out[i] = (0.8, 0.1, 0.1) if neg > pos else (0.1, 0.1, 0.8) if pos > neg else \
                (0.3, 0.4, 0.3)
        return out


class LightweightLexicon(LexiconBackend):
    """The same classifier declaring itself lightweight (sentiflow.models.base.is_lightweight),
    recording the thread of every call."""

    lightweight = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        self.threads.append(threading.get_ident())
        return super().predict_proba(texts, languages)


class NormalizingLexicon(LexiconBackend):
    """The same classifier taking normalised input too
    (sentiflow.models.base.NormalizedInputBackend), recording which entry point each call took."""

    def __init__(self) -> None:
        super().__init__()
        self.normalized_calls: list[list[str]] = []

    def predict_proba_normalized(self, normalized: Sequence[str], languages: Sequence[str]
                                 ) -> Probabilities:
        self.normalized_calls.append(list(normalized))
        return super().predict_proba(normalized, languages)
