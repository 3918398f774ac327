"""Probability calibration of raw classifier scores, and the calibration error itself.

A linear classifier's scores are not probabilities; routing compares the confidence with a
threshold (0.75 by default), so the confidence must mean "right this often". Two maps are
fitted by minimising the negative log-likelihood on held-out (validation) rows:

* temperature scaling, ``softmax(s / T)``: one parameter, cannot change the argmax;
* vector scaling, ``softmax(a * s + c)``: a scale and an offset per class (six parameters),
  which also corrects per-class bias; it is used when it beats temperature on held-out NLL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

Floats = npt.NDArray[np.float32] | npt.NDArray[np.float64]
Kind = Literal["identity", "temperature", "vector"]


def softmax(scores: Floats) -> npt.NDArray[np.float32]:
    z = np.asarray(scores, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float32] = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def nll(probs: Floats, labels: npt.NDArray[np.int64]) -> float:
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.mean(np.log(p)))


def expected_calibration_error(probs: Floats, labels: npt.NDArray[np.int64], n_bins: int = 15
                               ) -> float:
    """ECE of the top-class confidence: sum over equal-width bins of |accuracy - confidence|
    weighted by the bin's share of rows."""
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


@dataclass(frozen=True, slots=True)
class Calibrator:
    """``softmax(scale * scores + offset)``; temperature scaling has ``scale = 1/T`` in every
    column and zero offset."""

    kind: Kind
    scale: tuple[float, ...]
    offset: tuple[float, ...]

    @classmethod
    def identity(cls, n_classes: int = 3) -> Calibrator:
        return cls("identity", (1.0,) * n_classes, (0.0,) * n_classes)

    def __call__(self, scores: Floats) -> npt.NDArray[np.float32]:
        a = np.asarray(self.scale, dtype=np.float32)
        c = np.asarray(self.offset, dtype=np.float32)
        return softmax(scores * a + c)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "scale": list(self.scale), "offset": list(self.offset)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Calibrator:
        kind = obj["kind"]
        if kind not in ("identity", "temperature", "vector"):
            raise ValueError(f"unknown calibrator kind {kind!r}")
        return cls(kind, tuple(float(x) for x in obj["scale"]),
                   tuple(float(x) for x in obj["offset"]))


def _fit(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], vector: bool
         ) -> tuple[npt.NDArray[np.float64], float]:
    k = scores.shape[1]
    rows = np.arange(len(labels))

    def loss(theta: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        if vector:
            a, c = theta[:k], theta[k:]
        else:
            a, c = np.full(k, theta[0]), np.zeros(k)
        z = scores * a + c
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = np.exp(logp)
        g = p.copy()
        g[rows, labels] -= 1.0  # d(-log p_y)/dz
        g /= len(labels)
        ga = (g * scores).sum(axis=0)
        value = float(-logp[rows, labels].mean())
        if vector:
            return value, np.concatenate([ga, g.sum(axis=0)])
        return value, np.array([ga.sum()])

    theta0 = np.concatenate([np.ones(k), np.zeros(k)]) if vector else np.ones(1)
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B")
    return np.asarray(res.x, dtype=np.float64), float(res.fun)


def fit_calibrator(scores: Floats, labels: npt.NDArray[np.int64],
                   kind: Literal["auto", "temperature", "vector"] = "auto") -> Calibrator:
    """Fit on held-out ``scores`` (n, k) and true ``labels``; "auto" keeps the map with the lower
    NLL on a held-back 30% of the rows, then refits it on all of them."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0:
        return Calibrator.identity(s.shape[1] if s.ndim == 2 else 3)
    k = s.shape[1]
    if kind == "auto":
        rng = np.random.default_rng(0)
        order = rng.permutation(len(y))
        cut = int(len(y) * 0.7)
        fit_idx, hold_idx = order[:cut], order[cut:]
        if len(hold_idx) < 30:
            kind = "temperature"
        else:
            losses: dict[str, float] = {}
            name: Literal["temperature", "vector"]
            for name in ("temperature", "vector"):
                cal = fit_calibrator(s[fit_idx], y[fit_idx], name)
                losses[name] = nll(cal(s[hold_idx]), y[hold_idx])
            kind = "vector" if losses["vector"] < losses["temperature"] else "temperature"
    theta, _ = _fit(s, y, vector=(kind == "vector"))
    if kind == "vector":
        return Calibrator("vector", tuple(theta[:k].tolist()), tuple(theta[k:].tolist()))
    return Calibrator("temperature", (float(theta[0]),) * k, (0.0,) * k)
