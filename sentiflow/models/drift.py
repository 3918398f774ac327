"""Drift math: confidence / label histograms, PSI and Jensen-Shannon, a label-free accuracy
estimate and the trigger rules. Pure numpy, no event loop, no I/O.

A :class:`Distribution` summarises one population of fast-tier results (a day, a language, a
reference window) as counts, so populations merge by addition and persist as a few integers.
:func:`assess` compares a current population with a reference one and says whether that is
drift worth an alert and whether the low-confidence share grew enough to retrain.

Why PSI for ``drift_score`` (and JS only reported): the configured alert threshold (0.10) is the
conventional Population Stability Index boundary (< 0.10 stable, 0.10-0.25 moderate shift,
> 0.25 major shift), so 0.10 means what operators expect. PSI is the symmetric KL divergence
(``sum (p - q) * ln(p / q)``); its sampling noise on an unchanged population is about
``(bins - 1) * (1/n + 1/m)`` (0.02 at 1,000 posts a day and 10 bins), well under the threshold.
Jensen-Shannon divergence (base 2, bounded in [0, 1], defined on empty bins) is about PSI / 5.5
for small shifts, so at a 0.10 threshold it would stay quiet until the distribution had moved
massively; it is stored beside PSI for charts that want a bounded scale. PSI needs non-empty
bins: counts get additive (Jeffreys, +0.5) smoothing first.

Accuracy without labels: for a calibrated model the expected accuracy equals the mean
confidence of its top class (that is what calibration means), so :func:`accuracy_estimate` is
the mean confidence. Under real drift calibration itself degrades (models tend to stay
over-confident on unfamiliar input), so treat the estimate as an upper bound whose *drop* is
the signal; the nightly LLM audit measures real agreement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

N_LABELS: Final = 3
#: The top-class probability of a 3-class model is at least 1/3: bins cover [1/3, 1].
CONFIDENCE_FLOOR: Final = 1.0 / N_LABELS
#: Additive smoothing (counts) applied to every bin before PSI.
PSI_SMOOTHING: Final = 0.5


def bin_edges(bins: int) -> npt.NDArray[np.float64]:
    """Equal-width confidence bin edges over [1/3, 1]."""
    if bins < 2:
        raise ValueError("bins must be >= 2")
    return np.linspace(CONFIDENCE_FLOOR, 1.0, bins + 1)


@dataclass(frozen=True, slots=True)
class Distribution:
    """Counts describing one population of fast-tier results."""

    #: Posts per confidence bin (see :func:`bin_edges`).
    confidence_counts: tuple[int, ...]
    #: Posts per predicted label, in ``LABELS`` order (negative, neutral, positive).
    label_counts: tuple[int, ...] = (0, 0, 0)
    #: Posts under their routing threshold.
    low_confidence: int = 0
    #: Sum of confidences (for the exact mean, which the histogram only approximates).
    confidence_sum: float = 0.0

    @classmethod
    def empty(cls, bins: int) -> Distribution:
        return cls(confidence_counts=(0,) * bins, label_counts=(0,) * N_LABELS)

    @property
    def count(self) -> int:
        return sum(self.confidence_counts)

    @property
    def bins(self) -> int:
        return len(self.confidence_counts)

    @property
    def low_confidence_share(self) -> float:
        """Share (0-1) of posts under their threshold; 0 for an empty population."""
        return self.low_confidence / self.count if self.count else 0.0

    def merge(self, other: Distribution) -> Distribution:
        if other.bins != self.bins:
            raise ValueError(f"cannot merge {other.bins}-bin and {self.bins}-bin histograms")
        return Distribution(
            confidence_counts=tuple(a + b for a, b in zip(self.confidence_counts,
                                                          other.confidence_counts, strict=True)),
            label_counts=tuple(a + b for a, b in zip(self.label_counts, other.label_counts,
                                                     strict=True)),
            low_confidence=self.low_confidence + other.low_confidence,
            confidence_sum=self.confidence_sum + other.confidence_sum,
        )


def summarize(confidences: Sequence[float] | npt.NDArray[np.floating],
              labels: Sequence[int] | npt.NDArray[np.integer],
              thresholds: float | Sequence[float] | npt.NDArray[np.floating],
              bins: int) -> Distribution:
    """Histogram ``confidences`` (top-class probabilities) and ``labels`` (indices into
    ``LABELS``; a negative index = label unknown, counted in the confidence histogram only);
    a post is low-confidence when its confidence is under its threshold."""
    conf = np.clip(np.asarray(confidences, dtype=np.float64), CONFIDENCE_FLOOR, 1.0)
    lab = np.asarray(labels, dtype=np.int64)
    if conf.shape != lab.shape:
        raise ValueError(f"{conf.shape[0]} confidences but {lab.shape[0]} labels")
    if lab.size and lab.max() >= N_LABELS:
        raise ValueError(f"labels must be < {N_LABELS}")
    edges = bin_edges(bins)
    # Interior edges only: the last bin is closed at 1.0.
    index = np.searchsorted(edges[1:-1], conf, side="right")
    low = conf < np.asarray(thresholds, dtype=np.float64)
    return Distribution(
        confidence_counts=tuple(int(c) for c in np.bincount(index, minlength=bins)),
        label_counts=tuple(int(c) for c in np.bincount(lab[lab >= 0], minlength=N_LABELS)),
        low_confidence=int(np.count_nonzero(low)),
        confidence_sum=float(conf.sum()),
    )


def _proportions(counts: Sequence[int] | npt.NDArray[np.floating],
                 smoothing: float) -> npt.NDArray[np.float64]:
    arr = np.asarray(counts, dtype=np.float64) + smoothing
    total = arr.sum()
    if total <= 0:
        raise ValueError("empty histogram")
    return np.asarray(arr / total, dtype=np.float64)


def psi(reference: Sequence[int], current: Sequence[int],
        smoothing: float = PSI_SMOOTHING) -> float:
    """Population Stability Index between two count histograms (same bins), with additive
    smoothing so empty bins stay finite. 0 = identical; >= 0 always."""
    if len(reference) != len(current):
        raise ValueError("histograms must have the same bins")
    p = _proportions(reference, smoothing)
    q = _proportions(current, smoothing)
    return float(np.sum((q - p) * np.log(q / p)))


def js_divergence(reference: Sequence[int], current: Sequence[int]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two count histograms."""
    if len(reference) != len(current):
        raise ValueError("histograms must have the same bins")
    p = _proportions(reference, 0.0)
    q = _proportions(current, 0.0)
    m = (p + q) / 2

    def kl(a: npt.NDArray[np.float64]) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def accuracy_estimate(distribution: Distribution) -> float | None:
    """Expected accuracy from calibrated confidence alone (mean top-class confidence)."""
    if distribution.count == 0:
        return None
    return distribution.confidence_sum / distribution.count


@dataclass(frozen=True, slots=True)
class DriftRules:
    """When a shift is worth an alert, and when it is worth retraining."""

    #: ``drift_score`` (PSI) above this raises an alert.
    drift_threshold: float = 0.10
    #: Relative growth of the low-confidence share above this triggers retraining.
    low_confidence_growth: float = 0.15
    #: Neither rule fires on fewer posts than this (today's or the reference's): small samples
    #: make noisy histograms, and a false page at 3 a.m. costs more than a late one.
    min_samples: int = 200


@dataclass(frozen=True, slots=True)
class DriftAssessment:
    """A current population judged against a reference."""

    count: int
    reference_count: int
    #: max(PSI of the confidence histogram, PSI of the predicted-label distribution).
    drift_score: float
    psi_confidence: float
    psi_labels: float
    js_confidence: float
    js_labels: float
    low_confidence_share: float
    reference_low_confidence_share: float | None
    #: (current share - reference share) / reference share; ``None`` without a reference.
    low_confidence_growth: float | None
    accuracy_estimate: float | None
    reference_accuracy_estimate: float | None
    #: Both populations reach ``min_samples``: the verdicts below may be true.
    enough_data: bool
    alert: bool
    retraining_triggered: bool
    reasons: tuple[str, ...] = field(default=())


def relative_growth(reference_share: float, current_share: float) -> float:
    """Relative growth of a share; from zero, any increase counts as infinite growth."""
    if reference_share > 0:
        return (current_share - reference_share) / reference_share
    return float("inf") if current_share > 0 else 0.0


def assess(current: Distribution, reference: Distribution | None,
           rules: DriftRules = DriftRules()) -> DriftAssessment:
    """Compare ``current`` with ``reference`` (``None``: no history yet, so no verdicts)."""
    accuracy = accuracy_estimate(current)
    if reference is None or reference.count == 0 or current.count == 0:
        return DriftAssessment(
            count=current.count, reference_count=reference.count if reference else 0,
            drift_score=0.0, psi_confidence=0.0, psi_labels=0.0, js_confidence=0.0,
            js_labels=0.0, low_confidence_share=current.low_confidence_share,
            reference_low_confidence_share=None, low_confidence_growth=None,
            accuracy_estimate=accuracy, reference_accuracy_estimate=None,
            enough_data=False, alert=False, retraining_triggered=False,
            reasons=("no reference window yet" if current.count else "no posts",))
    psi_c = psi(reference.confidence_counts, current.confidence_counts)
    psi_l = psi(reference.label_counts, current.label_counts)
    score = max(psi_c, psi_l)
    growth = relative_growth(reference.low_confidence_share, current.low_confidence_share)
    enough = min(current.count, reference.count) >= rules.min_samples
    reasons: list[str] = []
    alert = enough and score > rules.drift_threshold
    if alert:
        which = "confidence" if psi_c >= psi_l else "predicted-label"
        reasons.append(f"drift_score {score:.3f} > {rules.drift_threshold:g} "
                       f"({which} distribution)")
    retrain = enough and growth > rules.low_confidence_growth
    if retrain:
        reasons.append(f"low-confidence share {reference.low_confidence_share:.1%} -> "
                       f"{current.low_confidence_share:.1%} (+{growth:.1%} > "
                       f"{rules.low_confidence_growth:.0%})")
    if not enough:
        reasons.append(f"fewer than {rules.min_samples} posts: no verdict")
    return DriftAssessment(
        count=current.count, reference_count=reference.count, drift_score=score,
        psi_confidence=psi_c, psi_labels=psi_l,
        js_confidence=js_divergence(reference.confidence_counts, current.confidence_counts),
        js_labels=js_divergence(reference.label_counts, current.label_counts),
        low_confidence_share=current.low_confidence_share,
        reference_low_confidence_share=reference.low_confidence_share,
        low_confidence_growth=growth, accuracy_estimate=accuracy,
        reference_accuracy_estimate=accuracy_estimate(reference), enough_data=enough,
        alert=alert, retraining_triggered=retrain, reasons=tuple(reasons))


def merge_all(distributions: Sequence[Distribution], bins: int) -> Distribution:
    total = Distribution.empty(bins)
    for d in distributions:
        total = total.merge(d)
    return total


def merge_by_key(parts: Sequence[Mapping[str, Distribution]], bins: int
                 ) -> dict[str, Distribution]:
    """Merge per-key (e.g. per-language) distributions."""
    out: dict[str, Distribution] = {}
    for part in parts:
        for key, dist in part.items():
            out[key] = out.get(key, Distribution.empty(bins)).merge(dist)
    return out


__all__ = [
    "CONFIDENCE_FLOOR",
    "Distribution",
    "DriftAssessment",
    "DriftRules",
    "accuracy_estimate",
    "assess",
    "bin_edges",
    "js_divergence",
    "merge_all",
    "merge_by_key",
    "psi",
    "relative_growth",
    "summarize",
]
