"""Per-aspect sentiment: each mention is classified in its own context, never the whole post.

Two model families, compared on the ABSA held-out split (docs/aspects.md has the numbers):

* :class:`WindowedPolarity` -- any fast-tier :class:`~sentiflow.models.base.SentimentBackend`
  (the embedded default, a Hugging Face checkpoint) applied to the mention's clause
  (:func:`~sentiflow.models.aspects.text.clause`). Multilingual, needs no aspect data.
* :class:`TargetPolarity` -- a target-conditioned linear model trained on the ABSA train split:
  hashed features of the sentence's words weighted by their distance to the target, marked by
  side (left / right of the target), by clause membership and by negation scope, plus the
  target's own words. Calibrated on out-of-fold scores (:mod:`sentiflow.models.calibration`).

:class:`BlendPolarity` averages the two; :class:`LanguageRoutedPolarity` uses a trained model
for the languages it was trained on and the windowed backend everywhere else.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from sentiflow.models.aspects.text import clause, clause_bounds, sentence_bounds, tokenize
from sentiflow.models.base import LABELS, Probabilities, SentimentBackend
from sentiflow.models.calibration import Calibrator
from sentiflow.models.errors import ArtifactError

N_FEATURES: Final = 1 << 18
NEGATORS: Final = frozenset({"not", "n't", "no", "never", "nothing", "without", "hardly",
                             "nor", "neither", "cannot", "none"})
NEGATION_SCOPE: Final = 3


@dataclass(frozen=True, slots=True)
class AspectItem:
    """One mention to classify: the full text, the span, the language and its context."""

    text: str
    start: int
    end: int
    language: str
    #: Spans of the other aspects in the same text (a context does not grow over them).
    others: tuple[tuple[int, int], ...] = ()

    @property
    def context(self) -> str:
        return clause(self.text, self.start, self.end, self.language, self.others)


class PolarityModel(Protocol):
    @property
    def name(self) -> str: ...

    def predict_proba(self, items: Sequence[AspectItem]) -> Probabilities:
        """``(len(items), 3)`` calibrated probabilities in LABELS order."""
        ...


class WindowedPolarity:
    """A sentence-level backend applied to each mention's clause."""

    def __init__(self, backend: SentimentBackend | Callable[[], SentimentBackend]) -> None:
        self._source: Callable[[], SentimentBackend] = (
            backend if callable(backend) and not isinstance(backend, SentimentBackend)
            else (lambda: backend))

    @property
    def name(self) -> str:
        return f"window:{self._source().name}"

    def predict_proba(self, items: Sequence[AspectItem]) -> Probabilities:
        if not items:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        probs = self._source().predict_proba([i.context for i in items],
                                             [i.language for i in items])
        return np.asarray(probs, dtype=np.float32)


def target_features(item: AspectItem) -> list[tuple[str, float]]:
    """The target-conditioned features of one mention (see module docstring)."""
    text = item.text
    s_a, s_b = sentence_bounds(text, item.start, item.end)
    c_a, c_b = clause_bounds(text, item.start, item.end, item.language, others=item.others)
    tokens = tokenize(text[s_a:s_b])
    target = [k for k, t in enumerate(tokens)
              if s_a + t.start < item.end and item.start < s_a + t.end]
    first, last = (target[0], target[-1]) if target else (0, -1)
    feats: list[tuple[str, float]] = []
    negated_until = -1
    words = [t.text.lower() for t in tokens]
    clause_words: list[str] = []
    for k, w in enumerate(words):
        if w in NEGATORS:
            negated_until = k + NEGATION_SCOPE
        if first <= k <= last:
            feats.append((f"t:{w}", 1.0))
            continue
        marked = f"NEG_{w}" if k <= negated_until and w not in NEGATORS else w
        d = first - k if k < first else k - last
        weight = 1.0 / (1.0 + (d - 1) / 3.0)
        side = "L" if k < first else "R"
        feats.append((f"w:{marked}", weight))
        feats.append((f"{side}:{marked}", weight))
        if c_a <= s_a + tokens[k].start < c_b:
            feats.append((f"c:{marked}", 1.0))
            clause_words.append(marked)
    feats.extend((f"cb:{a}_{b}", 1.0) for a, b in itertools.pairwise(clause_words))
    return feats


def featurize(items: Sequence[AspectItem], n_features: int = N_FEATURES) -> sp.csr_matrix:
    """Sparse ``(len(items), n_features)`` matrix of :func:`target_features`."""
    from sklearn.feature_extraction import FeatureHasher

    hasher = FeatureHasher(n_features=n_features, input_type="pair", alternate_sign=False)
    matrix: sp.csr_matrix = hasher.transform(target_features(i) for i in items)
    return matrix


class TargetPolarity:
    """Trained target-conditioned linear model (thread-safe: read-only arrays)."""

    FORMAT: Final = 1

    def __init__(self, weights: npt.NDArray[np.float32], bias: npt.NDArray[np.float32],
                 calibrator: Calibrator, languages: tuple[str, ...] = ("en",)) -> None:
        if weights.ndim != 2 or weights.shape[1] != len(LABELS) or bias.shape != (len(LABELS),):
            raise ArtifactError(f"target model weights {weights.shape} / bias {bias.shape}")
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float32)
        self.calibrator = calibrator
        self.languages = languages

    @property
    def name(self) -> str:
        return "target-linear"

    def raw_scores(self, items: Sequence[AspectItem]) -> npt.NDArray[np.float32]:
        if not items:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        x = featurize(items, self.weights.shape[0])
        scores: npt.NDArray[np.float32] = np.asarray(x @ self.weights, dtype=np.float32)
        return scores + self.bias

    def predict_proba(self, items: Sequence[AspectItem]) -> Probabilities:
        return self.calibrator(self.raw_scores(items))

    def save(self, folder: Path) -> None:
        np.savez_compressed(folder / "target.npz", weights=self.weights, bias=self.bias)
        meta = {"format": self.FORMAT, "labels": list(LABELS), "languages": list(self.languages),
                "calibrator": self.calibrator.to_json()}
        (folder / "target.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TargetPolarity:
        try:
            meta = json.loads((folder / "target.json").read_text())
            if meta["format"] != cls.FORMAT or tuple(meta["labels"]) != LABELS:
                raise ArtifactError(f"{folder}: unsupported target model format")
            with np.load(folder / "target.npz", allow_pickle=False) as data:
                weights, bias = data["weights"], data["bias"]
            return cls(weights, bias, Calibrator.from_json(meta["calibrator"]),
                       tuple(meta["languages"]))
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"{folder}: cannot load the target model: {exc}") from None


class BlendPolarity:
    """Mean of several models' probabilities, recalibrated (fitted on out-of-fold rows)."""

    def __init__(self, models: Sequence[PolarityModel], calibrator: Calibrator) -> None:
        self.models = tuple(models)
        self.calibrator = calibrator

    @property
    def name(self) -> str:
        return "blend(" + "+".join(m.name for m in self.models) + ")"

    def predict_proba(self, items: Sequence[AspectItem]) -> Probabilities:
        mean = np.mean([m.predict_proba(items) for m in self.models], axis=0)
        return self.calibrator(blend_scores(mean))


def blend_scores(mean_probs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Log-probabilities as the scores a calibrator maps (softmax(log p) == p)."""
    out: npt.NDArray[np.float32] = np.log(np.clip(mean_probs, 1e-6, 1.0)).astype(np.float32)
    return out


class LanguageRoutedPolarity:
    """``per_language[lang]`` where there is one, else ``default``; one batch call each."""

    def __init__(self, default: PolarityModel,
                 per_language: dict[str, PolarityModel] | None = None) -> None:
        self.default = default
        self.per_language = per_language or {}

    @property
    def name(self) -> str:
        routed = ",".join(f"{k}={v.name}" for k, v in sorted(self.per_language.items()))
        return f"{self.default.name}" + (f"[{routed}]" if routed else "")

    def predict_proba(self, items: Sequence[AspectItem]) -> Probabilities:
        out = np.zeros((len(items), len(LABELS)), dtype=np.float32)
        groups: dict[int, list[int]] = {}
        models: dict[int, PolarityModel] = {}
        for k, item in enumerate(items):
            model = self.per_language.get(item.language, self.default)
            groups.setdefault(id(model), []).append(k)
            models[id(model)] = model
        for key, rows in groups.items():
            out[rows] = models[key].predict_proba([items[r] for r in rows])
        return out


def fit_target(items: Sequence[AspectItem], labels: npt.NDArray[np.int64], *, c: float,
               balanced: bool) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Fit the linear model; returns (weights (n_features, 3), bias (3,)).

    A linear SVM (one-vs-rest, liblinear): 0.3 s on the ~4,800 training aspects where
    multinomial logistic regression (L-BFGS) took 10-45 s for no better cross-validated score;
    its margins become probabilities through the calibrator fitted on out-of-fold margins.
    Fitted on the hashed columns that occur only (unseen columns keep weight 0).
    """
    from sklearn.svm import LinearSVC

    x = featurize(items)
    used = np.unique(x.indices)
    clf = LinearSVC(C=c, class_weight="balanced" if balanced else None)
    clf.fit(x[:, used], labels)
    coef = np.asarray(clf.coef_, dtype=np.float32)
    intercept = np.asarray(clf.intercept_, dtype=np.float32)
    if len(clf.classes_) == 2:  # binary: one margin for classes_[1], its negation for [0]
        coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
    # A label absent from training keeps a very low score: it is never predicted.
    weights = np.zeros((x.shape[1], len(LABELS)), dtype=np.float32)
    bias = np.full(len(LABELS), -1e3, dtype=np.float32)
    for row, label in enumerate(clf.classes_):
        weights[used, int(label)] = coef[row]
        bias[int(label)] = intercept[row]
    return weights, bias


__all__ = ["AspectItem", "BlendPolarity", "LanguageRoutedPolarity", "PolarityModel",
           "TargetPolarity", "WindowedPolarity", "blend_scores", "featurize", "fit_target",
           "target_features"]
