"""Loading a Hugging Face checkpoint for serving: one backend per device, calibrated once.

Why calibrate at load: a fine-tuned checkpoint's softmax is typically over-confident, and the
router compares the confidence with a fixed threshold (0.75). Serving raw softmax would send too
few posts to the LLM / review tier. So, unless told otherwise, the first start fits temperature
(or vector) scaling on a deterministic sample of the labelled ``valid`` splits (the same fit as
the embedded models), stores the map in ``<home>/calibration/`` keyed by the checkpoint's name
and version, and every later start (and every device) reuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sentiflow.models.base import LABELS, Label
from sentiflow.models.calibration import Calibrator
from sentiflow.models.dataset import DataError, Example
from sentiflow.models.evaluation import load_eval_set
from sentiflow.models.hf_backend import HFBackend

log = logging.getLogger("sentiflow.models.hf_loading")

Calibration = Literal["auto", "none"] | Path


class CalibrationDataError(DataError):
    """``calibration = "auto"`` and no labelled valid split to fit it on."""


@dataclass(frozen=True, slots=True)
class HFOptions:
    max_length: int = 256
    dtype: str | None = None  # None: fp16 on CUDA, fp32 on the CPU
    label_map: Mapping[str, Label] | None = None
    max_batch_size: int = 64
    calibration: Calibration = "auto"
    calibration_rows: int = 3000


def calibration_sample(rows: Sequence[Example], limit: int) -> list[Example]:
    """At most ``limit`` rows, the same ones on every run: ordered by a digest of the text,
    so every language keeps its share."""
    def key(row: Example) -> bytes:
        return hashlib.blake2b(row.text.encode("utf-8", "surrogatepass"), digest_size=8).digest()

    return sorted(rows, key=key)[:limit]


def cached_calibrator_path(cache_dir: Path, backend: HFBackend) -> Path:
    digest = hashlib.blake2b(f"{backend.name}\x1f{backend.version}".encode(),
                             digest_size=10).hexdigest()
    return cache_dir / f"hf-{digest}.json"


def read_calibrator(path: Path) -> Calibrator:
    """A calibrator JSON: ``{"kind", "scale", "offset"}``, or a cached file wrapping one."""
    try:
        obj = json.loads(path.read_text())
        return Calibrator.from_json(obj.get("calibrator", obj))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CalibrationDataError(f"cannot read a calibrator from {path}: {exc}") from None


def fit_or_load_calibration(backend: HFBackend, options: HFOptions, data_dir: Path,
                            cache_dir: Path) -> Calibrator:
    """The calibrator ``options.calibration`` asks for (see module docstring), set on
    ``backend`` and returned."""
    if options.calibration == "none":
        calibrator = Calibrator.identity(len(backend.calibrator.scale))
    elif isinstance(options.calibration, Path):
        calibrator = read_calibrator(options.calibration)
    else:
        path = cached_calibrator_path(cache_dir, backend)
        if path.is_file():
            calibrator = read_calibrator(path)
        else:
            calibrator = _fit(backend, options.calibration_rows, data_dir)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"model": backend.name, "version": backend.version,
                                        "calibrator": calibrator.to_json()}, indent=2) + "\n")
    backend.calibrator = calibrator
    return calibrator


def _fit(backend: HFBackend, limit: int, data_dir: Path) -> Calibrator:
    try:
        rows, _ = load_eval_set(data_dir, "valid")
    except DataError as exc:
        raise CalibrationDataError(
            f"classifier.calibration = 'auto' needs the labelled valid splits under {data_dir} "
            f"({exc}); set node.data_dir, or classifier.calibration = 'none' or a calibrator "
            "JSON file") from None
    sample = calibration_sample(rows, limit)
    if not sample:
        raise CalibrationDataError(f"no labelled valid rows under {data_dir} to calibrate on")
    fitted = backend.fit_calibration([r.text for r in sample],
                                     [LABELS[r.label] for r in sample], kind="auto")
    before, after = backend.calibration_ece or (float("nan"), float("nan"))
    log.info("calibrated %s %s on %d valid rows (%s): ECE %.4f -> %.4f", backend.name,
             backend.version, len(sample), fitted.kind, before, after)
    return fitted


def load_hf_backends(model: str, devices: Sequence[str], options: HFOptions, data_dir: Path,
                     cache_dir: Path) -> list[HFBackend]:
    """One backend per device, all with the same calibration (fitted on the first)."""
    backends = [HFBackend(model, device=d, max_length=options.max_length, dtype=options.dtype,
                          label_map=options.label_map, max_batch_size=options.max_batch_size)
                for d in devices]
    calibrator = fit_or_load_calibration(backends[0], options, data_dir, cache_dir)
    for other in backends[1:]:
        other.calibrator = calibrator
    return backends
