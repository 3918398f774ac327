"""Training the e5 tier (:mod:`sentiflow.models.e5`) and publishing it as a versioned artifact.

Same steps and records as the embedded default (:func:`sentiflow.models.training.train_default`):
train split (+ extra labels) -> logistic-regression head on the embeddings -> on the valid
splits, the blend with the n-gram ``partner`` (a logistic regression over both models' scores,
which calibrates too; see :class:`~sentiflow.models.e5.Blend`), or, without a partner, a
calibration of the head alone -> evaluation on the held-out test splits (languages detected, as
the node sees them) -> ``model.json`` + ``weights.npz`` with a
:class:`~sentiflow.models.versioning.ModelVersion`.

Embedding the ~48k labelled texts is the slow part (minutes on two cores); the head itself fits
in seconds. An :class:`EmbeddingCache` on disk, keyed by the encoder and a digest of each
normalised text, makes every later training run (new extra labels, another C) cost only the new
texts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from sentiflow.models.calibration import (
    Calibrator,
    expected_calibration_error,
    fit_calibrator,
    softmax,
)
from sentiflow.models.dataset import Example, load_all
from sentiflow.models.e5 import (
    MODEL_TYPE,
    Blend,
    E5Backend,
    Embeddings,
    TextEncoder,
    load_e5_version,
)
from sentiflow.models.embedded import EmbeddedLinearBackend
from sentiflow.models.errors import ModelNotFoundError
from sentiflow.models.evaluation import load_eval_set, report
from sentiflow.models.langid import UND
from sentiflow.models.preprocess import normalize_batch
from sentiflow.models.training import load_or_train_default, version_record
from sentiflow.models.versioning import (
    ModelVersion,
    check_version_id,
    new_version_id,
    prepare_version_dir,
    set_active,
)

#: Texts embedded between cache saves (and progress-bar updates).
_CHUNK = 512


@dataclass(frozen=True, slots=True)
class E5TrainConfig:
    c: float = 1.0  # inverse L2 strength of the logistic-regression head (best of 0.1-3)
    blend_c: float = 1.0  # the same for the blend (6 inputs; 0.1-10 gave the same F1)
    max_iter: int = 3000


class EmbeddingCache:
    """Embeddings of normalised texts, persisted as one ``.npz`` (keys: 16-byte digests).

    Why not a database: the whole cache of the labelled data is ~75 MB and is read and written
    whole, once per training run; write-then-rename keeps a crash from leaving half a file.
    """

    def __init__(self, path: Path | None, encoder: TextEncoder) -> None:
        self.path = path
        self.encoder = encoder
        self._index: dict[bytes, int] = {}
        self._vectors: list[Embeddings] = []
        self._dirty = False
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as data:
                if str(data["encoder"]) == encoder.id:
                    keys, vectors = data["keys"], data["vectors"].astype(np.float32)
                    self._index = {k.tobytes(): i for i, k in enumerate(keys)}
                    self._vectors = [vectors]

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def embed(self, normalized: Sequence[str], progress: bool = False, desc: str = "embed"
              ) -> Embeddings:
        """Embeddings for ``normalized`` texts, computing (and caching) the missing ones."""
        keys = [self.key(t) for t in normalized]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._index}.values())
        bar = tqdm(total=len(missing), desc=desc, unit="text", disable=not progress or
                   not missing, leave=False)
        for start in range(0, len(missing), _CHUNK):
            idx = missing[start:start + _CHUNK]
            vectors = self.encoder.embed([normalized[i] for i in idx])
            base = sum(len(v) for v in self._vectors)
            self._vectors.append(vectors)
            for offset, i in enumerate(idx):
                self._index[keys[i]] = base + offset
            self._dirty = True
            bar.update(len(idx))
        bar.close()
        table = self._table()
        self._vectors = [table]
        return table[[self._index[k] for k in keys]] if keys else \
            np.zeros((0, self.encoder.dim), dtype=np.float32)

    def _table(self) -> Embeddings:
        """All cached vectors as one array, copied only when new chunks were added (the cache
        of the labelled data is ~75 MB: no copy on a run that embeds nothing new)."""
        if len(self._vectors) == 1:
            return self._vectors[0]
        if not self._vectors:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.concatenate(self._vectors)

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._index, key=self._index.__getitem__)
        table = self._table()
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, encoder=np.str_(self.encoder.id),
                 keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 16),
                 vectors=table)
        tmp.replace(self.path)
        self._dirty = False


@dataclass(frozen=True, slots=True)
class E5TrainResult:
    backend: E5Backend
    version: ModelVersion
    path: Path
    evaluation: dict[str, object]


def fit_head(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], c: float, max_iter: int
             ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Multinomial logistic regression: (weights (n_features, 3), bias (3,))."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit(x, y)
    if list(clf.classes_) != [0, 1, 2]:
        raise ValueError(f"training data must contain all three labels, got {clf.classes_}")
    return (np.asarray(clf.coef_.T, dtype=np.float32),
            np.asarray(clf.intercept_, dtype=np.float32))


def fit_blend(head_scores: npt.NDArray[np.float32], partner: EmbeddedLinearBackend,
              rows: Sequence[Example], config: E5TrainConfig) -> Blend:
    """The blend over both models' scores on held-out ``rows`` (languages detected)."""
    partner_scores = partner.scores([r.text for r in rows], [UND] * len(rows))
    y = np.array([r.label for r in rows], dtype=np.int64)
    maps, offset = fit_head(np.hstack([head_scores, partner_scores]), y, config.blend_c,
                            config.max_iter)
    k = head_scores.shape[1]
    return Blend(partner, maps[:k], maps[k:], offset)


def train_e5(data_dir: Path, models_dir: Path, encoder: TextEncoder, *,
             partner: EmbeddedLinearBackend | None = None, cache_path: Path | None = None,
             version_id: str | None = None, extra_labels: Sequence[Example] = (),
             force: bool = False, activate: bool = True, progress: bool = True,
             config: E5TrainConfig | None = None) -> E5TrainResult:
    """Train, calibrate, evaluate and save a new e5 head (see module docstring).

    Raises :class:`~sentiflow.models.errors.VersionExistsError` when ``version_id`` exists and
    ``force`` is false, before any work is done.
    """
    config = config or E5TrainConfig()
    vid = check_version_id(version_id) if version_id else new_version_id(MODEL_TYPE)
    if (models_dir / vid).exists() and not force:
        prepare_version_dir(models_dir, vid, force)  # raises VersionExistsError
    started = time.perf_counter()
    cache = EmbeddingCache(cache_path, encoder)

    def embed(rows: Sequence[Example], desc: str) -> Embeddings:
        vectors = cache.embed(normalize_batch([r.text for r in rows]), progress, desc)
        cache.save()
        return vectors

    def labels(rows: Sequence[Example]) -> npt.NDArray[np.int64]:
        return np.array([r.label for r in rows], dtype=np.int64)

    train_rows, _ = load_all(data_dir, "train")
    train_rows = [*train_rows, *extra_labels]
    valid_rows, _ = load_eval_set(data_dir, "valid")
    test_rows, origins = load_eval_set(data_dir, "test")
    weights, bias = fit_head(embed(train_rows, "embed train"), labels(train_rows), config.c,
                             config.max_iter)
    placeholder = ModelVersion(vid, MODEL_TYPE, len(train_rows), float("nan"), "")
    head = E5Backend(encoder, weights, bias, Calibrator.identity(), placeholder)
    valid_scores = head.raw_scores(embed(valid_rows, "embed valid"))
    blend, calibrator = None, Calibrator.identity()
    if partner is not None:
        blend = fit_blend(valid_scores, partner, valid_rows, config)
    else:
        calibrator = fit_calibrator(valid_scores, labels(valid_rows))
    backend = E5Backend(encoder, weights, bias, calibrator, placeholder, blend)
    test_embeddings = embed(test_rows, "embed test")
    final = backend.final_scores(test_embeddings, [r.text for r in test_rows],
                                 [UND] * len(test_rows))
    evaluation = report(calibrator(final), labels(test_rows), [r.language for r in test_rows])
    evaluation["split_origin"] = origins
    evaluation["blend_partner"] = partner.version if partner is not None else None
    head_only = head.raw_scores(test_embeddings)
    ece_before = expected_calibration_error(softmax(head_only), labels(test_rows))
    version = version_record(vid, MODEL_TYPE, train_rows, len(extra_labels), evaluation,
                             ece_before, "blend" if blend is not None else calibrator.kind,
                             time.perf_counter() - started)
    backend = E5Backend(encoder, weights, bias, calibrator, version, blend)
    path = prepare_version_dir(models_dir, vid, force)
    backend.save(path)
    if activate:
        set_active(models_dir, vid)
    return E5TrainResult(backend, version, path, evaluation)


def load_or_train_e5(models_dir: Path, data_dir: Path, encoder: TextEncoder,
                     partner_models_dir: Path | None = None, cache_path: Path | None = None,
                     progress: bool = True) -> E5Backend:
    """The active e5 tier; trains (and activates) one first when none exists, blended with the
    active n-gram model of ``partner_models_dir`` (trained first too if need be) when given."""
    try:
        return load_e5_version(models_dir, encoder, partner_models_dir=partner_models_dir)
    except ModelNotFoundError:
        partner = None
        if partner_models_dir is not None:
            partner = load_or_train_default(partner_models_dir, data_dir, progress=progress)
        return train_e5(data_dir, models_dir, encoder, partner=partner, cache_path=cache_path,
                        progress=progress).backend
