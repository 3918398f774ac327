"""Training the embedded default model and publishing it as a versioned artifact.

One function does the whole job (:func:`train_default`): read every language's train split
(plus optional extra labelled rows), fit idf and a linear classifier on hashed n-grams, fit the
calibration map on the validation splits, evaluate on the held-out test splits, and save the
artifact with its :class:`~sentiflow.models.versioning.ModelVersion` record.

The classifier is scikit-learn's ``SGDClassifier`` (hinge loss, averaged weights): on ~35k
posts x 1M hashed features it trains in ~20 s on one core and scored as well as LinearSVC and
logistic regression in our comparison (docs/models.md), which took 3x-20x longer.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from sentiflow import __version__
from sentiflow.models.calibration import (
    Calibrator,
    expected_calibration_error,
    fit_calibrator,
    softmax,
)
from sentiflow.models.dataset import Example, fingerprint, load_all
from sentiflow.models.embedded import MODEL_TYPE, EmbeddedLinearBackend, load_version
from sentiflow.models.errors import ModelNotFoundError
from sentiflow.models.evaluation import UMSAB_LANGUAGES, load_eval_set, report
from sentiflow.models.features import FeatureConfig, HashedNgramFeaturizer
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.langid_head import LanguageHead, choose_min_confidence, fit_language_head
from sentiflow.models.preprocess import normalize_batch
from sentiflow.models.versioning import (
    ModelVersion,
    check_version_id,
    new_version_id,
    prepare_version_dir,
    set_active,
)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    alpha: float = 2e-5  # L2 strength of the SGD classifier
    epochs: int = 15
    calibration: Literal["auto", "temperature", "vector"] = "auto"
    seed: int = 0


@dataclass(frozen=True, slots=True)
class TrainResult:
    backend: EmbeddedLinearBackend
    version: ModelVersion
    path: Path
    evaluation: dict[str, object]


Progress = Callable[[str], None]


def fit_linear(rows: Sequence[Example], config: TrainConfig, progress: bool = False
               ) -> tuple[HashedNgramFeaturizer, np.ndarray, np.ndarray]:
    """Featurise ``rows`` and fit the classifier; returns (featuriser, weights*idf, bias)."""
    from sklearn.linear_model import SGDClassifier

    texts = normalize_batch([r.text for r in rows])
    langs = [r.language for r in rows]
    y = np.array([r.label for r in rows], dtype=np.int64)
    featurizer = HashedNgramFeaturizer(config.features)
    featurizer.fit_idf(texts, langs)
    x = featurizer.transform(texts, langs)
    clf = SGDClassifier(loss="hinge", alpha=config.alpha, average=True,
                        random_state=config.seed)
    classes = np.arange(3)
    for _ in tqdm(range(config.epochs), desc="fit", unit="epoch", disable=not progress,
                  leave=False):
        clf.partial_fit(x, y, classes=classes)
    coef = np.asarray(clf.coef_, dtype=np.float32)  # (3, n_features)
    assert featurizer.idf is not None
    weights = (coef.T * featurizer.idf[:, None]).astype(np.float32)
    return featurizer, weights, np.asarray(clf.intercept_, dtype=np.float32)


def train_default(data_dir: Path, models_dir: Path, *, version_id: str | None = None,
                  extra_labels: Sequence[Example] = (), force: bool = False,
                  activate: bool = True, progress: bool = True,
                  config: TrainConfig | None = None,
                  detector: LanguageDetector | None = None) -> TrainResult:
    """Train, calibrate, evaluate and save a new version (see module docstring).

    Raises :class:`~sentiflow.models.errors.VersionExistsError` when ``version_id`` exists and
    ``force`` is false, before any work is done.
    """
    config = config or TrainConfig()
    vid = check_version_id(version_id) if version_id else new_version_id(MODEL_TYPE)
    def prepare_dir() -> Path:
        return (prepare_version_dir(models_dir, vid, force))
    # Fail early on an existing version, before spending a minute training.
    if (models_dir / vid).exists() and not force:
        prepare_dir()
    det = detector or LanguageDetector()
    started = time.perf_counter()
    steps = tqdm(total=5, desc="train", unit="step", disable=not progress)

    steps.set_postfix_str("reading data")
    train_rows, _ = load_all(data_dir, "train")
    train_rows = [*train_rows, *extra_labels]
    steps.update()

    steps.set_postfix_str(f"fitting on {len(train_rows)} texts")
    featurizer, weights, bias = fit_linear(train_rows, config, progress)
    valid_rows, _ = load_eval_set(data_dir, "valid")
    head = train_language_head(det, train_rows, valid_rows)
    det = det.with_head(head)
    placeholder = ModelVersion(vid, MODEL_TYPE, len(train_rows), float("nan"), "")
    backend = EmbeddedLinearBackend(featurizer, weights, bias, Calibrator.identity(),
                                    placeholder, det, head)
    steps.update()

    steps.set_postfix_str("calibrating on valid")
    calibrator = _fit_calibration(backend, valid_rows, det, config)
    steps.update()

    steps.set_postfix_str("evaluating on test")
    test_rows, origins = load_eval_set(data_dir, "test")
    raw = _raw_scores(backend, test_rows, det)
    labels = np.array([r.label for r in test_rows], dtype=np.int64)
    evaluation = report(calibrator(raw), labels, [r.language for r in test_rows])
    evaluation["split_origin"] = origins
    ece_before = expected_calibration_error(softmax(raw), labels)
    steps.update()

    steps.set_postfix_str("saving")
    version = version_record(vid, MODEL_TYPE, train_rows, len(extra_labels), evaluation,
                             ece_before, calibrator.kind, time.perf_counter() - started)
    backend = EmbeddedLinearBackend(featurizer, weights, bias, calibrator, version, det, head)
    path = prepare_dir()
    backend.save(path)
    if activate:
        set_active(models_dir, vid)
    steps.update()
    steps.close()
    return TrainResult(backend, version, path, evaluation)


def train_language_head(detector: LanguageDetector, train_rows: Sequence[Example],
                        valid_rows: Sequence[Example]) -> LanguageHead | None:
    """The language-ID head on the training texts' gold languages, its fastText threshold
    chosen on the valid texts (sentiflow.models.langid_head); None for single-language data."""
    def prepared(rows: Sequence[Example]) -> tuple[list[str], list[str]]:
        texts, langs = [], []
        for row, norm in zip(rows, normalize_batch([r.text for r in rows]), strict=True):
            if (text := detector.prepare(norm)) is not None:
                texts.append(text)
                langs.append(row.language)
        return texts, langs

    texts, langs = prepared(train_rows)
    head = fit_language_head(texts, langs)
    if head is None:
        return None
    valid_texts, valid_langs = prepared(valid_rows)
    fallback = [detector.detect_fasttext(t).language for t in valid_texts]
    head.min_confidence = choose_min_confidence(head, valid_texts, valid_langs, fallback)
    return head


def version_record(version_id: str, model_type: str, train_rows: Sequence[Example],
                   extra_labels: int, evaluation: dict[str, Any], ece_before: float,
                   calibration: str, seconds: float) -> ModelVersion:
    """The :class:`ModelVersion` of a trained model from its held-out ``report``."""
    umsab = evaluation["umsab_macro_f1"]
    return ModelVersion(
        version_id=version_id, model_type=model_type, training_dataset_size=len(train_rows),
        f1_score=round(float(evaluation["macro_f1_mean_over_languages"]), 4),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        umsab_f1=round(float(umsab), 4) if umsab is not None else None,
        per_language_f1={k: round(v["macro_f1"], 4)
                         for k, v in evaluation["per_language"].items()},
        ece_before=round(ece_before, 4), ece_after=round(float(evaluation["ece"]), 4),
        calibration=calibration, data_fingerprint=fingerprint(train_rows),
        extra_labels=extra_labels, training_seconds=round(seconds, 1),
        sentiflow_version=__version__)


def _raw_scores(backend: EmbeddedLinearBackend, rows: Sequence[Example],
                detector: LanguageDetector) -> np.ndarray:
    """Scores under *detected* languages, as the running system will see them."""
    if not rows:
        return np.zeros((0, 3), dtype=np.float32)
    normalized = normalize_batch([r.text for r in rows])
    langs = [g.language for g in detector.detect_batch_normalized(normalized)]
    return backend.raw_scores(normalized, langs)


def _fit_calibration(backend: EmbeddedLinearBackend, rows: Sequence[Example],
                     detector: LanguageDetector, config: TrainConfig) -> Calibrator:
    raw = _raw_scores(backend, rows, detector)
    labels = np.array([r.label for r in rows], dtype=np.int64)
    return fit_calibrator(raw, labels, config.calibration)


def load_or_train_default(models_dir: Path, data_dir: Path, progress: bool = True,
                          detector: LanguageDetector | None = None) -> EmbeddedLinearBackend:
    """The active embedded model; trains (and activates) one first when none exists."""
    try:
        return load_version(models_dir, detector=detector)
    except ModelNotFoundError:
        return train_default(data_dir, models_dir, progress=progress, detector=detector).backend


__all__ = ["UMSAB_LANGUAGES", "TrainConfig", "TrainResult", "fit_linear",
           "load_or_train_default", "train_default"]
