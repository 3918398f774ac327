"""Retraining the embedded fast tier, promotion only when it is not worse, and rollback.

:func:`retrain` trains a candidate on the base data plus extra labelled rows (LLM audit labels
and human review labels, gathered by the caller), evaluates the candidate *and* the active model
on the same held-out split in the same way (detected languages, calibrated probabilities), and
promotes the candidate only if its macro-F1 (mean over languages) is not lower than the active
model's. Both are re-measured rather than trusting the F1 recorded at the active model's
training time, because the held-out split or the language detector may have changed since.

Promotion moves the ``ACTIVE`` pointer (atomic rename) and appends to ``history.jsonl`` in the
models folder; :func:`rollback` moves the pointer back to the version that was active before
(or to a named one). Running nodes notice the pointer and hot-swap
(:mod:`sentiflow.actors.model_reloader`). Plain synchronous code, no event loop.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Literal

from sentiflow.models.base import LABELS
from sentiflow.models.dataset import Example
from sentiflow.models.embedded import EmbeddedLinearBackend, load_version
from sentiflow.models.errors import ModelNotFoundError
from sentiflow.models.evaluation import evaluate
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.training import TrainConfig, train_default
from sentiflow.models.versioning import (
    ModelVersion,
    active_version_id,
    check_version_id,
    list_versions,
    set_active,
)

HISTORY_FILE: Final = "history.jsonl"
F1_KEY: Final = "macro_f1_mean_over_languages"

EventKind = Literal["promote", "rollback"]


class RollbackError(RuntimeError):
    """There is nothing to roll back to (no recorded predecessor, unknown version)."""


@dataclass(frozen=True, slots=True)
class PromotionEvent:
    """One change of the ``ACTIVE`` pointer made by this module."""

    kind: EventKind
    version_id: str
    previous: str | None
    at: str  # ISO 8601 UTC
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    candidate: ModelVersion
    candidate_f1: float
    baseline_version: str | None
    baseline_f1: float | None
    #: F1 not worse than the active model's (within ``tolerance``).
    acceptable: bool
    promoted: bool
    reason: str
    extra_labels: int
    path: Path


def examples_from_labels(rows: Sequence[tuple[str, str, str]]) -> list[Example]:
    """``(text, label, language)`` rows (labels by name) -> training examples; rows whose label
    is not one of ``LABELS`` (e.g. ``mixed``) are skipped."""
    return [Example(text, LABELS.index(label), language or "und")
            for text, label, language in rows if label in LABELS and text.strip()]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def promotion_history(models_dir: Path) -> list[PromotionEvent]:
    path = models_dir / HISTORY_FILE
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            events.append(PromotionEvent(**json.loads(line)))
    return events


def _append_history(models_dir: Path, event: PromotionEvent) -> None:
    with (models_dir / HISTORY_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(event)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _current(models_dir: Path) -> str | None:
    try:
        return active_version_id(models_dir)
    except ModelNotFoundError:
        return None


def promote(models_dir: Path, version_id: str, reason: str = "",
            kind: EventKind = "promote") -> PromotionEvent:
    """Make ``version_id`` the active version and record it."""
    previous = _current(models_dir)
    set_active(models_dir, version_id)
    event = PromotionEvent(kind, version_id, previous, _now(), reason)
    _append_history(models_dir, event)
    return event


def rollback(models_dir: Path, to: str | None = None) -> PromotionEvent:
    """Re-activate ``to``, or by default the version that was active before the promotion of
    the current one."""
    current = _current(models_dir)
    if to is None:
        # The predecessor of the promotion that activated the current version: repeated
        # rollbacks walk further back through promotions, never forward (use ``to`` for that).
        target = next((e.previous for e in reversed(promotion_history(models_dir))
                       if e.kind == "promote" and e.version_id == current and e.previous),
                      None)
        if target is None:
            known = ", ".join(v.version_id for v in list_versions(models_dir))
            raise RollbackError(f"no recorded predecessor of {current!r}; name one with --to "
                                f"(known: {known})")
    else:
        target = check_version_id(to)
    if target == current:
        raise RollbackError(f"{target!r} is already active")
    try:
        return promote(models_dir, target, reason=f"rollback from {current}", kind="rollback")
    except ModelNotFoundError as exc:
        raise RollbackError(str(exc)) from None


def retrain(data_dir: Path, models_dir: Path, extra: Sequence[Example] = (), *,
            config: TrainConfig | None = None, version_id: str | None = None,
            tolerance: float = 0.0, promote_if_better: bool = True, progress: bool = False,
            detector: LanguageDetector | None = None, reason: str = "retrain") -> RetrainOutcome:
    """Train a candidate, compare it with the active model, promote it if not worse.

    ``tolerance`` is how much lower the candidate's F1 may be and still count as "not worse"
    (default 0: equal or better).
    """
    det = detector or LanguageDetector()
    baseline_id = _current(models_dir)
    baseline: EmbeddedLinearBackend | None = None
    if baseline_id is not None:
        baseline = load_version(models_dir, baseline_id, detector=det)
    trained = train_default(data_dir, models_dir, version_id=version_id, extra_labels=extra,
                            activate=False, progress=progress, config=config, detector=det)
    candidate_f1 = float(evaluate(trained.backend, data_dir, "test", detector=det)[F1_KEY])
    baseline_f1 = (float(evaluate(baseline, data_dir, "test", detector=det)[F1_KEY])
                   if baseline is not None else None)
    vid = trained.version.version_id
    better = baseline_f1 is None or candidate_f1 + tolerance >= baseline_f1
    if baseline_f1 is None:
        why = f"F1 {candidate_f1:.4f}; no active model"
    elif better:
        why = f"F1 {candidate_f1:.4f} >= active {baseline_id} {baseline_f1:.4f}"
    else:
        why = f"F1 {candidate_f1:.4f} < active {baseline_id} {baseline_f1:.4f}: kept the active"
    promoted = better and promote_if_better
    if promoted:
        promote(models_dir, vid, reason=f"{reason}: {why}")
    elif better:
        why += " (promotion disabled)"
    return RetrainOutcome(candidate=trained.version, candidate_f1=candidate_f1,
                          baseline_version=baseline_id, baseline_f1=baseline_f1,
                          acceptable=better, promoted=promoted, reason=why, extra_labels=len(extra),
                          path=trained.path)


__all__ = ["HISTORY_FILE", "PromotionEvent", "RetrainOutcome", "RollbackError",
           "examples_from_labels", "promote", "promotion_history", "retrain", "rollback"]
