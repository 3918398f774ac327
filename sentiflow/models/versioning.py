"""Versioned model artifacts: the ModelVersion record, version folders, the "active" pointer.

Layout under ``models_dir``::

    <models_dir>/<version_id>/model.json   # ModelVersion + everything needed to rebuild the model
    <models_dir>/<version_id>/weights.npz  # numpy arrays only (loaded with allow_pickle=False)
    <models_dir>/ACTIVE                    # the version id served by default

Artifacts are plain JSON + ``.npz`` rather than pickle so that loading a model file can never
execute code. The pointer is replaced atomically (write + rename).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from sentiflow.models.base import LABELS
from sentiflow.models.errors import ArtifactError, ModelNotFoundError, VersionExistsError

ACTIVE_POINTER: Final = "ACTIVE"
METADATA_FILE: Final = "model.json"
WEIGHTS_FILE: Final = "weights.npz"
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """What was trained, on what, and how good it was (also stored in PostgreSQL later)."""

    version_id: str
    model_type: str
    training_dataset_size: int
    f1_score: float  # macro-F1 averaged over languages, held-out test splits (see eval)
    created_at: str  # ISO 8601, UTC
    umsab_f1: float | None = None  # mean over the 8 UMSAB languages (published anchors' metric)
    per_language_f1: dict[str, float] = field(default_factory=dict)
    ece_before: float | None = None
    ece_after: float | None = None
    calibration: str | None = None
    data_fingerprint: str | None = None
    extra_labels: int = 0
    training_seconds: float | None = None
    sentiflow_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ModelVersion:
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in obj.items() if k in known})
        except TypeError as exc:
            raise ArtifactError(f"bad ModelVersion record: {exc}") from None


def new_version_id(model_type: str, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{model_type}-{stamp}"


def check_version_id(version_id: str) -> str:
    if not _VALID_ID.match(version_id):
        raise ValueError(f"invalid version id {version_id!r}: letters, digits, '.', '_', '-'")
    return version_id


def version_dir(models_dir: Path, version_id: str) -> Path:
    return models_dir / check_version_id(version_id)


def prepare_version_dir(models_dir: Path, version_id: str, force: bool) -> Path:
    """Create an empty folder for a new version; an existing one needs ``force``."""
    path = version_dir(models_dir, version_id)
    if path.exists():
        if not force:
            raise VersionExistsError(
                f"model version {version_id!r} already exists at {path}; "
                "use --force to replace it or pick another --version-id")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def list_versions(models_dir: Path) -> list[ModelVersion]:
    out = []
    if models_dir.is_dir():
        for meta in sorted(models_dir.glob(f"*/{METADATA_FILE}")):
            try:
                out.append(ModelVersion.from_json(json.loads(meta.read_text())["version"]))
            except (ArtifactError, KeyError, json.JSONDecodeError):
                continue
    return sorted(out, key=lambda v: v.created_at)


def set_active(models_dir: Path, version_id: str) -> None:
    if not (version_dir(models_dir, version_id) / METADATA_FILE).is_file():
        raise ModelNotFoundError(f"no model version {version_id!r} under {models_dir}")
    tmp = models_dir / f".{ACTIVE_POINTER}.tmp"
    tmp.write_text(version_id + "\n")
    os.replace(tmp, models_dir / ACTIVE_POINTER)


def active_version_id(models_dir: Path) -> str:
    pointer = models_dir / ACTIVE_POINTER
    if not pointer.is_file():
        raise ModelNotFoundError(f"no active model under {models_dir} (run `sentiflow train`)")
    return check_version_id(pointer.read_text().strip())


def read_metadata(folder: Path, model_type: str, artifact_format: int) -> dict[str, Any]:
    """``model.json`` of a complete version folder (weights present too), checked to be a
    ``model_type`` artifact of ``artifact_format`` with its labels in :data:`LABELS` order.

    Raises :class:`ModelNotFoundError` for an incomplete folder and :class:`ArtifactError` for
    anything else; the caller reads its own fields (and wraps their errors the same way)."""
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ModelNotFoundError(f"no complete model artifact in {folder}")
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict):
            raise ArtifactError(f"{meta_path}: not a JSON object")
        if meta.get("model_type") != model_type or meta.get("format") != artifact_format:
            raise ArtifactError(f"{meta_path}: not a {model_type} v{artifact_format} model")
        if tuple(meta["labels"]) != LABELS:
            raise ArtifactError(f"{meta_path}: label order {meta['labels']} != {LABELS}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{meta_path}: {exc}") from None
    return meta
