"""Building simulated days for the drift tests: real posts from ../shared/data classified by a
real embedded model, as ``ResultRecord``s the way the sink hands them to the DriftWatcher."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sentiflow.alerts import Alert, AlertOutcome
from sentiflow.models.embedded import EmbeddedLinearBackend
from sentiflow.stores.records import (
    ClassificationRequest,
    ClassificationResult,
    DriftSnapshot,
    ResultRecord,
)
from tests.drift.conftest import data_dir, read_rows


class RecordingAlerter:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def send(self, alert: Alert) -> AlertOutcome:
        self.alerts.append(alert)
        return AlertOutcome((), ())


def rows(lang: str, start: int, stop: int, split: str = "test") -> list[str]:
    return [r["text"] for r in read_rows(data_dir() / "sentiment" / lang / f"{split}.csv")
            [start:stop]]


def labelled_rows(lang: str, start: int, stop: int, split: str = "test"
                  ) -> list[tuple[str, str]]:
    """``(text, gold label)`` pairs of one language's split."""
    return [(r["text"], r["label"])
            for r in read_rows(data_dir() / "sentiment" / lang / f"{split}.csv")[start:stop]]


def review_sentences(domain: str, start: int, stop: int) -> list[str]:
    """Distinct sentences of the SemEval-2014 ``laptop`` / ``restaurant`` reviews (English
    product reviews: a domain the sentiment model never trained on)."""
    path = data_dir() / "absa" / domain / "train.jsonl"
    with path.open(encoding="utf-8") as fh:
        texts = list(dict.fromkeys(json.loads(line)["text"] for line in fh if line.strip()))
    return texts[start:stop]


def classify(backend: EmbeddedLinearBackend, texts: list[str], day: datetime, tag: str
             ) -> list[ResultRecord]:
    """Fast-tier records of ``texts``, classified by ``backend``, one second apart from ``day``."""
    out = []
    for i, (text, p) in enumerate(zip(texts, backend.classify(texts), strict=True)):
        rid = f"{tag}-{i}"
        out.append(ResultRecord(
            request=ClassificationRequest(request_id=rid, text=text),
            result=ClassificationResult(
                request_id=rid, sentiment=p.label, confidence=p.confidence,
                model_used=f"{backend.name}:{backend.version}",
                model_version=backend.version, language_detected=p.language, latency_ms=0.1,
                created_at=day + timedelta(seconds=i))))
    return out


def show(label: str, s: DriftSnapshot) -> None:
    print(f"{label}: posts={s.count} low_confidence={s.low_confidence_pct:.1f}% "
          f"(reference {s.reference_low_confidence_pct}%) growth={s.low_confidence_growth} "
          f"drift_score={s.drift_score:.3f} (PSI conf {s.psi_confidence:.3f}, labels "
          f"{s.psi_labels:.3f}; JS conf {s.js_confidence:.3f}) accuracy~{s.accuracy_estimate} "
          f"alert={s.alerted} retrain={s.retraining_triggered}")
