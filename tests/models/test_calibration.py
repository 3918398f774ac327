from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from sentiflow.models.calibration import (
    Calibrator,
    expected_calibration_error,
    fit_calibrator,
    nll,
    softmax,
)


def _overconfident(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose softmax is far too sure: true logits scaled by 5."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, 3))
    p = softmax(logits)
    labels = np.array([rng.choice(3, p=row / row.sum()) for row in p.astype(np.float64)])
    return logits * 5.0, labels


def test_ece_of_perfectly_calibrated_and_of_overconfident() -> None:
    probs = np.array([[0.9, 0.05, 0.05]] * 10, dtype=np.float32)
    labels = np.array([0] * 9 + [1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-6)
    assert expected_calibration_error(probs, np.array([1] * 10)) == pytest.approx(0.9, abs=1e-6)


def test_temperature_recovers_the_scale() -> None:
    scores, labels = _overconfident()
    cal = fit_calibrator(scores, labels, "temperature")
    assert cal.kind == "temperature"
    assert 1 / cal.scale[0] == pytest.approx(5.0, rel=0.15)


def test_calibration_lowers_ece_and_nll_on_fresh_rows() -> None:
    scores, labels = _overconfident(seed=0)
    test_scores, test_labels = _overconfident(seed=1)
    kind: Literal["auto", "temperature", "vector"]
    for kind in ("temperature", "vector", "auto"):
        cal = fit_calibrator(scores, labels, kind)
        before = expected_calibration_error(softmax(test_scores), test_labels)
        after = expected_calibration_error(cal(test_scores), test_labels)
        assert after < before / 3
        assert nll(cal(test_scores), test_labels) < nll(softmax(test_scores), test_labels)


def test_vector_scaling_fixes_a_class_bias() -> None:
    scores, labels = _overconfident()
    biased = scores / 5.0 + np.array([2.0, 0.0, 0.0])
    cal = fit_calibrator(biased, labels, "vector")
    assert cal.offset[0] - cal.offset[1] == pytest.approx(-2.0, abs=0.3)


def test_calibrator_json_round_trip_and_identity() -> None:
    cal = Calibrator("vector", (1.0, 2.0, 3.0), (0.1, 0.2, 0.3))
    assert Calibrator.from_json(cal.to_json()) == cal
    s = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(Calibrator.identity()(s), softmax(s))
    with pytest.raises(ValueError, match="unknown"):
        Calibrator.from_json({"kind": "magic", "scale": [], "offset": []})
