"""Scores of the aspect step on the ABSA held-out split.

* Extraction: precision / recall / F1 of aspect-term spans, pooled over sentences, under two
  matching rules -- ``exact`` (same start and end) and ``overlap`` (a predicted span counts as
  correct if it overlaps a gold span not yet matched; one-to-one). Only sentences with at least
  one gold aspect exist in the data, so precision is measured on such sentences only.
* Polarity given the gold aspect: accuracy, macro-F1 over (negative, neutral, positive) and the
  expected calibration error of the confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sentiflow.models.aspects.absa_data import AbsaSentence
from sentiflow.models.aspects.extraction import AspectExtractor
from sentiflow.models.aspects.polarity import AspectItem, PolarityModel
from sentiflow.models.calibration import expected_calibration_error
from sentiflow.models.evaluation import macro_f1

Span = tuple[int, int]
MatchRule = Literal["exact", "overlap"]


def prf(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]],
        rule: MatchRule = "exact") -> dict[str, float]:
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, predicted, strict=True):
        n_pred += len(p)
        n_gold += len(g)
        if rule == "exact":
            tp += len(set(g) & set(p))
            continue
        free = list(g)
        for a, b in p:
            hit = next((s for s in free if a < s[1] and s[0] < b), None)
            if hit is not None:
                free.remove(hit)
                tp += 1
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n_gold": float(n_gold),
            "n_predicted": float(n_pred)}


def extraction_report(extractor: AspectExtractor, sentences: Sequence[AbsaSentence]
                      ) -> dict[str, dict[str, float]]:
    gold = [[(a.start, a.end) for a in s.aspects] for s in sentences]
    pred = [[(m.start, m.end) for m in extractor.extract(s.text, s.language)]
            for s in sentences]
    return {"exact": prf(gold, pred, "exact"), "overlap": prf(gold, pred, "overlap")}


def gold_items(sentences: Sequence[AbsaSentence]) -> tuple[list[AspectItem],
                                                           npt.NDArray[np.int64]]:
    items = [AspectItem(s.text, a.start, a.end, s.language,
                        tuple((o.start, o.end) for o in s.aspects))
             for s in sentences for a in s.aspects]
    labels = np.array([a.label for s in sentences for a in s.aspects], dtype=np.int64)
    return items, labels


def polarity_scores(probs: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
                    ) -> dict[str, float]:
    pred = probs.argmax(axis=1)
    return {"n": float(len(labels)),
            "accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
            "macro_f1": macro_f1(labels, pred),
            "ece": expected_calibration_error(probs, labels)}


def polarity_report(model: PolarityModel, sentences: Sequence[AbsaSentence]
                    ) -> dict[str, Any]:
    items, labels = gold_items(sentences)
    return polarity_scores(model.predict_proba(items), labels)
