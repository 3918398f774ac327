"""Held-out evaluation: macro-F1 per language, confusion matrix, ECE, confidence routing.

Works with any :class:`~sentiflow.models.base.SentimentBackend`. Languages are *detected*
(as in production) unless ``use_true_language`` is set, so language-ID mistakes count against
the model the way they would in the running system.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.metrics import confusion_matrix, f1_score

from sentiflow.models.base import LABELS, SentimentBackend
from sentiflow.models.calibration import expected_calibration_error
from sentiflow.models.dataset import Example, Split, languages, load_split
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.preprocess import normalize_batch

UMSAB_LANGUAGES: Final = ("ar", "de", "en", "es", "fr", "hi", "it", "pt")
DEFAULT_THRESHOLDS: Final = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9)
ROUTING_THRESHOLD: Final = 0.75


def macro_f1(labels: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]) -> float:
    if len(labels) == 0:
        return float("nan")
    return float(f1_score(labels, predicted, average="macro", labels=[0, 1, 2],
                          zero_division=0))


def coverage_curve(probs: npt.NDArray[np.float32], labels: npt.NDArray[np.int64],
                   thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> list[dict[str, float]]:
    """For each threshold: share of rows whose confidence reaches it, and their quality."""
    conf = probs.max(axis=1)
    pred = probs.argmax(axis=1)
    rows = []
    for t in thresholds:
        keep = conf >= t
        n = int(keep.sum())
        rows.append({"threshold": float(t), "coverage": float(keep.mean()) if len(conf) else 0.0,
                     "n": n,
                     "macro_f1": macro_f1(labels[keep], pred[keep]) if n else float("nan"),
                     "accuracy": float((pred[keep] == labels[keep]).mean()) if n
                     else float("nan")})
    return rows


def report(probs: npt.NDArray[np.float32], labels: npt.NDArray[np.int64],
           langs: Sequence[str], thresholds: Sequence[float] = DEFAULT_THRESHOLDS
           ) -> dict[str, Any]:
    """Everything `sentiflow eval` prints, as a JSON-ready dict (languages = true languages)."""
    lang_arr = np.asarray(langs)
    pred = probs.argmax(axis=1)
    per_language: dict[str, dict[str, float]] = {}
    for lang in sorted(set(langs)):
        m = lang_arr == lang
        per_language[lang] = {"n": int(m.sum()), "macro_f1": macro_f1(labels[m], pred[m]),
                              "accuracy": float((pred[m] == labels[m]).mean()),
                              "ece": expected_calibration_error(probs[m], labels[m])}
    f1s = [v["macro_f1"] for v in per_language.values()]
    umsab = [per_language[lg]["macro_f1"] for lg in UMSAB_LANGUAGES if lg in per_language]
    return {
        "n": len(labels),
        "macro_f1_mean_over_languages": float(np.mean(f1s)) if f1s else float("nan"),
        "umsab_macro_f1": float(np.mean(umsab)) if len(umsab) == len(UMSAB_LANGUAGES)
        else None,
        "macro_f1_pooled": macro_f1(labels, pred),
        "accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
        "ece": expected_calibration_error(probs, labels),
        "per_language": per_language,
        "confusion_matrix": {"labels": list(LABELS), "rows_true_cols_predicted":
                             confusion_matrix(labels, pred, labels=[0, 1, 2]).tolist()},
        "coverage": coverage_curve(probs, labels, thresholds),
    }


def load_eval_set(data_dir: Path, split: Split = "test", only: Sequence[str] | None = None
                  ) -> tuple[list[Example], dict[str, str]]:
    """Rows and, per language, where they came from (a test file, valid, carved from train)."""
    rows: list[Example] = []
    origins: dict[str, str] = {}
    for lang in only or languages(data_dir):
        part, source = load_split(data_dir, lang, split)
        rows.extend(part)
        origins[lang] = source.origin
    return rows, origins


def predict_examples(backend: SentimentBackend, rows: Sequence[Example],
                     detector: LanguageDetector | None, use_true_language: bool = False,
                     batch_size: int = 512) -> tuple[npt.NDArray[np.float32], list[str]]:
    """Probabilities for ``rows`` and the language each was classified under."""
    texts = [r.text for r in rows]
    if use_true_language:
        langs = [r.language for r in rows]
    else:
        det = detector or LanguageDetector()
        langs = [g.language for g in det.detect_batch_normalized(normalize_batch(texts))]
    parts = [backend.predict_proba(texts[i:i + batch_size], langs[i:i + batch_size])
             for i in range(0, len(texts), batch_size)]
    probs = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.float32)
    return probs, langs


def evaluate(backend: SentimentBackend, data_dir: Path, split: Split = "test",
             detector: LanguageDetector | None = None, use_true_language: bool = False,
             thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    rows, origins = load_eval_set(data_dir, split)
    probs, used = predict_examples(backend, rows, detector, use_true_language)
    labels = np.array([r.label for r in rows], dtype=np.int64)
    out = report(probs, labels, [r.language for r in rows], thresholds)
    out["split"] = split
    out["split_origin"] = origins
    out["language_source"] = "true" if use_true_language else "detected"
    out["langid_accuracy"] = float(np.mean([u == r.language for u, r in zip(used, rows,
                                                                            strict=True)]))
    out["model"] = {"name": backend.name, "version": backend.version}
    return out
