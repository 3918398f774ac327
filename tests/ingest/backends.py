"""Test backends for the ingest tests (in-process and in subprocess nodes, the latter via
``classifier.model = "python:tests.ingest.backends:lexicon"``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sentiflow.models.base import Probabilities
from tests.node.backends import LexiconBackend


def lexicon() -> LexiconBackend:
    """Factory for subprocess nodes."""
    return LexiconBackend()


class SlowBackend(LexiconBackend):
    """Takes ``delay_s`` per model call (a busy node), so work is in flight when we stop it."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        time.sleep(self.delay_s)
        return super().predict_proba(texts, languages)


def slow_lexicon() -> LexiconBackend:
    """Factory for subprocess nodes: ~5 ms per model call, so a stream takes a few seconds
    and a node killed mid-stream has work in flight."""
    return SlowBackend(0.005)
