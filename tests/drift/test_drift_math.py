"""The pure drift math: histograms, PSI / JS, the accuracy estimate and the trigger rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentiflow.models.drift import (
    Distribution,
    DriftRules,
    accuracy_estimate,
    assess,
    bin_edges,
    js_divergence,
    psi,
    relative_growth,
    summarize,
)

counts = st.lists(st.integers(0, 10_000), min_size=10, max_size=10).filter(lambda c: sum(c) > 0)


def population(n: int, low: float, high: float, seed: int, threshold: float = 0.75,
               bins: int = 10) -> Distribution:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(low, high, n)
    labels = rng.integers(0, 3, n)
    return summarize(conf, labels, threshold, bins)


def test_summarize_bins_labels_and_low_share() -> None:
    d = summarize([0.34, 0.5, 0.74, 0.75, 0.99, 1.0], [0, 1, 2, 2, -1, 0], 0.75, bins=4)
    assert bin_edges(4).tolist() == pytest.approx([1 / 3, 0.5, 2 / 3, 5 / 6, 1.0])
    assert d.confidence_counts == (1, 1, 2, 2)  # 0.5 opens bin 2; 1.0 is in the last bin
    assert d.label_counts == (2, 1, 2)  # -1 = unknown label: confidence only
    assert d.low_confidence == 3
    assert d.low_confidence_share == pytest.approx(0.5)
    assert accuracy_estimate(d) == pytest.approx(sum([0.34, 0.5, 0.74, 0.75, 0.99, 1.0]) / 6)
    assert accuracy_estimate(Distribution.empty(4)) is None
    with pytest.raises(ValueError):
        summarize([0.5], [3], 0.75, bins=4)
    with pytest.raises(ValueError):
        Distribution.empty(4).merge(Distribution.empty(5))


@given(counts, counts)
def test_psi_and_js_are_non_negative_symmetric_and_zero_on_identity(a: list[int],
                                                                     b: list[int]) -> None:
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert psi(a, b) >= 0
    assert math.isfinite(psi(a, b))
    assert psi(a, b) == pytest.approx(psi(b, a))  # PSI is the symmetric KL divergence
    js = js_divergence(a, b)
    assert 0.0 <= js <= 1.0 + 1e-12
    assert js == pytest.approx(js_divergence(b, a))


def test_psi_is_finite_with_empty_bins_and_large_for_a_real_shift() -> None:
    assert psi([100, 0, 0], [0, 0, 100]) > 5
    assert js_divergence([100, 0, 0], [0, 0, 100]) == pytest.approx(1.0)


def test_sampling_noise_stays_well_under_the_threshold() -> None:
    """Two samples of one population: PSI ~ (bins-1)(1/n+1/m), far below 0.10."""
    scores = [psi(population(1000, 0.34, 1.0, s).confidence_counts,
                  population(1000, 0.34, 1.0, s + 100).confidence_counts) for s in range(20)]
    assert max(scores) < 0.06, scores


def test_assess_without_reference_or_with_small_samples_gives_no_verdict() -> None:
    cur = population(1000, 0.34, 0.6, 1)
    none = assess(cur, None)
    assert not none.alert
    assert not none.retraining_triggered
    assert not none.enough_data
    small = assess(population(50, 0.34, 0.6, 1), population(1000, 0.6, 1.0, 2))
    assert small.drift_score > 0.10
    assert not small.alert
    assert not small.enough_data


def test_assess_alerts_on_shift_and_triggers_on_low_confidence_growth() -> None:
    ref = population(2000, 0.34, 1.0, 1)
    same = assess(population(2000, 0.34, 1.0, 2), ref)
    assert not same.alert
    assert not same.retraining_triggered
    shifted = assess(population(2000, 0.34, 0.8, 3), ref)
    assert shifted.alert
    assert shifted.drift_score > 0.10
    assert shifted.retraining_triggered
    assert shifted.low_confidence_growth is not None
    assert shifted.low_confidence_growth > 0.15
    assert any("drift_score" in r for r in shifted.reasons)
    # The growth rule is relative and configurable.
    lenient = assess(population(2000, 0.34, 0.8, 3), ref, DriftRules(low_confidence_growth=5))
    assert lenient.alert
    assert not lenient.retraining_triggered


def test_relative_growth_from_zero() -> None:
    assert relative_growth(0.0, 0.0) == 0.0
    assert relative_growth(0.0, 0.1) == math.inf
    assert relative_growth(0.5, 0.6) == pytest.approx(0.2)
