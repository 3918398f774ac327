"""The ``mixed`` rule: when does a post's overall label become ``mixed``?

A post is ``mixed`` when at least one aspect is positive and another negative, each with a
calibrated confidence of at least ``min_confidence`` (default 0.6). Its confidence is then the
smaller of the two strongest opposing confidences ("both opposing findings hold at least this
surely"). Neutral aspects never make a post mixed, and one confident aspect against a doubtful
one does not either: the fast tier's overall label then stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sentiflow.models.aspects.types import AspectPrediction

DEFAULT_MIN_CONFIDENCE = 0.6


@dataclass(frozen=True, slots=True)
class MixedVerdict:
    mixed: bool
    #: Confidence of ``mixed`` (0.0 when not mixed).
    confidence: float = 0.0


def mixed_verdict(aspects: Sequence[AspectPrediction],
                  min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> MixedVerdict:
    best = {"positive": 0.0, "negative": 0.0}
    for a in aspects:
        if a.sentiment in best and a.confidence >= min_confidence:
            best[a.sentiment] = max(best[a.sentiment], a.confidence)
    if best["positive"] > 0.0 and best["negative"] > 0.0:
        return MixedVerdict(True, min(best["positive"], best["negative"]))
    return MixedVerdict(False)
