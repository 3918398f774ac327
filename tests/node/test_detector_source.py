"""The language stage's detector follows the served model (sentiflow/node.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sentiflow.models.holder import ModelHolder
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import _detector_source


@dataclass
class _Carrying:
    """A backend that carries its own detector, as the embedded model does."""

    detector: LanguageDetector
    name: str = "carrying"
    version: str = "v1"

    def predict_proba(self, texts: list[str], languages: list[str]) -> np.ndarray:
        return np.full((len(texts), 3), 1 / 3, dtype=np.float32)


@dataclass
class _Bare:
    name: str = "bare"
    version: str = "v1"

    def predict_proba(self, texts: list[str], languages: list[str]) -> np.ndarray:
        return np.full((len(texts), 3), 1 / 3, dtype=np.float32)


def test_follows_a_hot_swap_and_loads_one_detector_for_bare_backends() -> None:
    base = LanguageDetector()
    first, second = base.with_head(None), base.with_head(None)
    holder = ModelHolder(_Carrying(first))  # type: ignore[arg-type]
    current = _detector_source(holder, None)
    assert current() is first
    holder.swap(_Carrying(second, version="v2"))  # type: ignore[arg-type]
    assert current() is second  # a promoted model brings its detector (and head) along
    holder.swap(_Bare())  # type: ignore[arg-type]
    assert current() is current()  # one fastText detector, loaded once
    assert isinstance(current(), LanguageDetector)
    assert _detector_source(holder, base)() is base  # an explicit detector always wins
