"""Serving a Hugging Face checkpoint: calibrated at the first start from the labelled valid
splits, the map cached and reused (also by every other device), or switched off / read from a
file; settings (max_length, dtype, label_map, calibration) reach the backend through the node."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from sentiflow.config.settings import load_settings
from sentiflow.models.base import LABELS
from sentiflow.models.calibration import Calibrator
from sentiflow.models.hf_backend import HFBackend
from sentiflow.models.hf_loading import (
    CalibrationDataError,
    HFOptions,
    cached_calibrator_path,
    calibration_sample,
    load_hf_backends,
)
from sentiflow.node import load_backends
from tests.hf_checkpoints import save_checkpoint

pytestmark = pytest.mark.hf

WORDS = ["good", "bad", "great", "awful", "the", "movie", "love", "hate", "it", "was"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("hf") / "ckpt")


@pytest.fixture(scope="module")
def data_dir(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Valid rows labelled with the model's own prediction 3 times in 4 (a model that is right
    75% of the time but, with random weights, far less confident than that)."""
    texts = [" ".join(c) for c in itertools.permutations(WORDS, 3)][:240]
    predicted = HFBackend(checkpoint).predict_proba(texts, ["en"] * len(texts)).argmax(axis=1)
    root = tmp_path_factory.mktemp("data")
    for lang, part in (("en", texts[:120]), ("xx", texts[120:])):
        folder = root / "sentiment" / lang
        folder.mkdir(parents=True)
        offset = 0 if lang == "en" else 120
        with (folder / "valid.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            for i, text in enumerate(part):
                p = int(predicted[offset + i])
                writer.writerow([text, LABELS[p if i % 4 else (p + 1) % 3]])
        (folder / "train.csv").write_text("text,label\n")
    return root


def test_auto_fits_once_caches_and_shares_the_map_across_devices(
        checkpoint: Path, data_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    options = HFOptions(calibration="auto", calibration_rows=200)
    first, second = load_hf_backends(str(checkpoint), ["cpu", "cpu"], options, data_dir,
                                     tmp_path)
    assert first.calibrator.kind in ("temperature", "vector")
    assert second.calibrator == first.calibrator  # fitted once, given to every device
    assert first.calibration_ece is not None
    before, after = first.calibration_ece
    assert after < before  # the fit is better calibrated on its rows than raw softmax
    cached = cached_calibrator_path(tmp_path, first)
    assert json.loads(cached.read_text())["version"] == first.version

    def no_fit(*args: object, **kwargs: object) -> Calibrator:
        raise AssertionError("the cached calibration must be reused, not refitted")

    monkeypatch.setattr(HFBackend, "fit_calibration", no_fit)
    (again,) = load_hf_backends(str(checkpoint), ["cpu"], options, data_dir, tmp_path)
    assert again.calibrator == first.calibrator


def test_none_and_a_file(checkpoint: Path, data_dir: Path, tmp_path: Path) -> None:
    (raw,) = load_hf_backends(str(checkpoint), ["cpu"], HFOptions(calibration="none"),
                              data_dir, tmp_path)
    assert raw.calibrator == Calibrator.identity(3)
    assert not list(tmp_path.iterdir())  # nothing fitted, nothing cached
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(Calibrator("temperature", (0.5,) * 3, (0.0,) * 3).to_json()))
    (from_file,) = load_hf_backends(str(checkpoint), ["cpu"],
                                    HFOptions(calibration=path), data_dir, tmp_path)
    assert from_file.temperature == pytest.approx(2.0)
    path.write_text("{not json")
    with pytest.raises(CalibrationDataError, match=r"cal\.json"):
        load_hf_backends(str(checkpoint), ["cpu"], HFOptions(calibration=path), data_dir,
                         tmp_path)


def test_auto_without_labelled_data_is_a_clear_error(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(CalibrationDataError, match=r"classifier\.calibration"):
        load_hf_backends(str(checkpoint), ["cpu"], HFOptions(), tmp_path / "no-data", tmp_path)


def test_the_sample_is_deterministic_and_bounded(data_dir: Path) -> None:
    from sentiflow.models.evaluation import load_eval_set

    rows, _ = load_eval_set(data_dir, "valid")
    sample = calibration_sample(rows, 50)
    assert len(sample) == 50
    assert sample == calibration_sample(list(reversed(rows)), 50)
    assert {r.language for r in sample} == {"en", "xx"}


def test_node_settings_reach_the_backend(checkpoint: Path, data_dir: Path,
                                         tmp_path: Path) -> None:
    settings = load_settings(None, env={
        "SENTIFLOW_NODE__HOME": str(tmp_path), "SENTIFLOW_NODE__DATA_DIR": str(data_dir),
        "SENTIFLOW_CLASSIFIER__MODEL": str(checkpoint),
        "SENTIFLOW_CLASSIFIER__DEVICES": '["cpu"]',
        "SENTIFLOW_CLASSIFIER__MAX_LENGTH": "16", "SENTIFLOW_CLASSIFIER__MAX_BATCH": "8",
        "SENTIFLOW_CLASSIFIER__CALIBRATION_ROWS": "100"})
    sources, info = load_backends(settings)
    backend = sources[0]()
    assert isinstance(backend, HFBackend)
    assert (backend.max_length, backend.max_batch_size) == (16, 8)
    assert backend.calibrator.kind != "identity"
    assert (tmp_path / "calibration").is_dir()
    assert info.devices == ("cpu",)
    probs = backend.predict_proba(["good movie", "awful"], ["en", "en"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
