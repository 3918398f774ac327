"""The embedded default backend: hashed n-gram features, a linear model, calibrated softmax.

It needs nothing but numpy at serving time, trains offline in about a minute (see
:mod:`sentiflow.models.training`) and scores a batch with a few vectorised numpy operations
(:mod:`sentiflow.models.features`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from sentiflow.models.base import LABELS, Label, Probabilities
from sentiflow.models.calibration import Calibrator
from sentiflow.models.errors import ArtifactError
from sentiflow.models.features import FeatureConfig, HashedNgramFeaturizer
from sentiflow.models.langid import UND, LanguageDetector
from sentiflow.models.langid_head import LanguageHead
from sentiflow.models.preprocess import DEFAULT_MAX_LENGTH, normalize_batch, validate_batch
from sentiflow.models.versioning import (
    METADATA_FILE,
    WEIGHTS_FILE,
    ModelVersion,
    active_version_id,
    read_metadata,
    version_dir,
)

MODEL_TYPE: Final = "sentiflow-linear"
ARTIFACT_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class Prediction:
    label: Label
    confidence: float  # max calibrated probability
    language: str
    probabilities: tuple[float, float, float]  # in LABELS order


class EmbeddedLinearBackend:
    """:class:`~sentiflow.models.base.SentimentBackend` over a trained linear model.

    ``weights`` is ``(2**bits, 3)`` with idf already folded in (see ``features.scores``).
    Not re-entrant (the featuriser caches power tables); one thread at a time, as the
    protocol allows.
    """

    #: Pure numpy, ~100 us for a lone text: small batches may run on the event loop
    #: (:func:`sentiflow.models.base.is_lightweight`).
    lightweight: Final = True

    def __init__(self, featurizer: HashedNgramFeaturizer, weights: npt.NDArray[np.float32],
                 bias: npt.NDArray[np.float32], calibrator: Calibrator, version: ModelVersion,
                 detector: LanguageDetector | None = None,
                 language_head: LanguageHead | None = None) -> None:
        if weights.shape != (featurizer.n_features, len(LABELS)) or bias.shape != (len(LABELS),):
            raise ArtifactError(f"weights {weights.shape} / bias {bias.shape} do not match "
                                f"{featurizer.n_features} features x {len(LABELS)} classes")
        self.featurizer = featurizer
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.bias = bias.astype(np.float32)
        self._table = featurizer.score_table(self.weights)
        self.calibrator = calibrator
        self.model_version = version
        #: Trained with this model (sentiflow.models.langid_head); the detector asks it first.
        self.language_head = language_head
        if detector is not None and language_head is not None:
            detector = detector.with_head(language_head)
        self._detector = detector

    @property
    def name(self) -> str:
        return MODEL_TYPE

    @property
    def version(self) -> str:
        return self.model_version.version_id

    @property
    def detector(self) -> LanguageDetector:
        if self._detector is None:
            self._detector = LanguageDetector(head=self.language_head)
        return self._detector

    # --- scoring -------------------------------------------------------------------------
    def raw_scores(self, normalized: Sequence[str], languages: Sequence[str]
                   ) -> npt.NDArray[np.float32]:
        """Uncalibrated linear scores for already-normalised texts."""
        occ = self.featurizer.occurrences(normalized, languages)
        return self.featurizer.scores(occ, self._table, self.bias)

    def scores(self, texts: Sequence[str], languages: Sequence[str]) -> npt.NDArray[np.float32]:
        """Uncalibrated scores of raw texts; an empty or ``und`` language is detected here."""
        return self._scores_normalized(normalize_batch(texts), languages)

    def _scores_normalized(self, normalized: Sequence[str], languages: Sequence[str]
                           ) -> npt.NDArray[np.float32]:
        if len(normalized) != len(languages):
            raise ValueError("languages must align with texts")
        langs = self.detector.resolve(
            normalized, [lang if lang and lang != UND else None for lang in languages])
        return self.raw_scores(normalized, langs)

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        """Calibrated probabilities; an empty or ``und`` language is detected here."""
        return self.calibrator(self.scores(texts, languages))

    def predict_proba_normalized(self, normalized: Sequence[str], languages: Sequence[str]
                                 ) -> Probabilities:
        """:meth:`predict_proba` of texts already through ``normalize_batch`` (the pipeline's
        language stage normalises "auto" posts; :class:`~sentiflow.models.base.
        NormalizedInputBackend`)."""
        return self.calibrator(self._scores_normalized(normalized, languages))

    def classify(self, texts: Sequence[object], languages: Sequence[str | None] | None = None,
                 max_length: int = DEFAULT_MAX_LENGTH) -> list[Prediction]:
        """Validate, detect languages the caller did not give, predict: the full fast path.

        Raises an :class:`~sentiflow.models.errors.InputError` subtype for bad input.
        """
        valid = validate_batch(texts, max_length)
        normalized = normalize_batch(valid)
        langs = self.detector.resolve(normalized, languages)
        probs = self.calibrator(self.raw_scores(normalized, langs))
        # Plain Python floats in one conversion: indexing numpy scalars per text costs ~1 us each.
        rows: list[list[float]] = probs.tolist()
        tops: list[int] = probs.argmax(axis=1).tolist()
        return [Prediction(LABELS[k], p[k], lang, (p[0], p[1], p[2]))
                for k, p, lang in zip(tops, rows, langs, strict=True)]

    # --- persistence ---------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write ``weights.npz`` and ``model.json`` into an existing version folder."""
        arrays: dict[str, Any] = {"weights": self.weights, "bias": self.bias}
        if self.featurizer.idf is not None:
            arrays["idf"] = self.featurizer.idf
        meta: dict[str, Any] = {
            "format": ARTIFACT_FORMAT, "model_type": MODEL_TYPE, "labels": list(LABELS),
            "features": self.featurizer.config.to_json(),
            "calibrator": self.calibrator.to_json(), "version": self.model_version.to_json()}
        if self.language_head is not None:
            arrays.update(self.language_head.arrays())
            meta["language_head"] = self.language_head.meta()
        np.savez(folder / WEIGHTS_FILE, **arrays)
        (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path, detector: LanguageDetector | None = None
             ) -> EmbeddedLinearBackend:
        meta = read_metadata(folder, MODEL_TYPE, ARTIFACT_FORMAT)
        meta_path, weights_path = folder / METADATA_FILE, folder / WEIGHTS_FILE
        try:
            featurizer = HashedNgramFeaturizer(FeatureConfig.from_json(meta["features"]))
            calibrator = Calibrator.from_json(meta["calibrator"])
            version = ModelVersion.from_json(meta["version"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"{meta_path}: {exc}") from None
        head = None
        with np.load(weights_path, allow_pickle=False) as data:
            weights, bias = data["weights"], data["bias"]
            if "idf" in data:
                featurizer.idf = data["idf"].astype(np.float32)
            if "language_head" in meta:  # artifacts from before the head have none
                try:
                    head = LanguageHead.from_saved(meta["language_head"], data)
                except ArtifactError as exc:
                    raise ArtifactError(f"{weights_path}: {exc}") from None
        return cls(featurizer, weights, bias, calibrator, version, detector, head)


def load_version(models_dir: Path, version_id: str | None = None,
                 detector: LanguageDetector | None = None) -> EmbeddedLinearBackend:
    """Load a given version, or the active one when ``version_id`` is None."""
    vid = version_id or active_version_id(models_dir)
    return EmbeddedLinearBackend.load(version_dir(models_dir, vid), detector)
