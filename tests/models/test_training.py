from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sentiflow.cli import main
from sentiflow.models.base import NormalizedInputBackend, SentimentBackend
from sentiflow.models.dataset import load_extra_labels, load_split
from sentiflow.models.embedded import EmbeddedLinearBackend, load_version
from sentiflow.models.errors import (
    ArtifactError,
    EmptyTextError,
    ModelNotFoundError,
    VersionExistsError,
)
from sentiflow.models.evaluation import evaluate
from sentiflow.models.features import FeatureConfig
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.preprocess import normalize_batch
from sentiflow.models.training import TrainConfig, load_or_train_default, train_default
from sentiflow.models.versioning import active_version_id, list_versions

SMALL = TrainConfig(features=FeatureConfig(bits=14), epochs=5)


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def _train(data: Path, models: Path, det: LanguageDetector, **kw: object) -> EmbeddedLinearBackend:
    return train_default(data, models, config=SMALL, progress=False, detector=det,
                         **kw).backend  # type: ignore[arg-type]


def test_train_save_load_round_trip(tiny_data: Path, tmp_path: Path,
                                    detector: LanguageDetector) -> None:
    models = tmp_path / "models"
    backend = _train(tiny_data, models, detector, version_id="v1")
    assert isinstance(backend, SentimentBackend)
    assert active_version_id(models) == "v1"
    loaded = load_version(models, detector=detector)
    texts = ["i love this so much", "worst purchase ever", "the store opens at nine"]
    np.testing.assert_allclose(loaded.predict_proba(texts, ["en"] * 3),
                               backend.predict_proba(texts, ["en"] * 3), rtol=1e-5)
    preds = loaded.classify(texts)
    assert [p.label for p in preds] == ["positive", "negative", "neutral"]
    assert all(abs(sum(p.probabilities) - 1) < 1e-5 for p in preds)
    assert all(p.confidence == max(p.probabilities) for p in preds)
    v = loaded.model_version
    assert (v.version_id, v.model_type) == ("v1", "sentiflow-linear")
    assert v.training_dataset_size == len(load_split(tiny_data, "en", "train")[0]) + len(
        load_split(tiny_data, "xx", "train")[0])
    assert 0.0 <= v.f1_score <= 1.0
    assert v.data_fingerprint
    assert v.created_at
    assert set(v.per_language_f1) == {"en", "xx"}
    assert [m.version_id for m in list_versions(models)] == ["v1"]


def test_normalised_input_scores_as_the_raw_text(tiny_data: Path, tmp_path: Path,
                                                  detector: LanguageDetector) -> None:
    """The pipeline hands the embedded model the language stage's normalised text; the
    probabilities must be those of the raw text (``und`` still detected by the model)."""
    backend = _train(tiny_data, tmp_path / "models", detector)
    assert isinstance(backend, NormalizedInputBackend)
    texts = ["I LOVE this sooooo much!!! https://x.y/z", "worst purchase EVER @shop", "ok"]
    languages = ["en", "en", "und"]
    np.testing.assert_array_equal(
        backend.predict_proba_normalized(normalize_batch(texts), languages),
        backend.predict_proba(texts, languages))
    with pytest.raises(ValueError, match="align"):
        backend.predict_proba_normalized(normalize_batch(texts), ["en"])


def test_refuses_to_overwrite_without_force(tiny_data: Path, tmp_path: Path,
                                           detector: LanguageDetector) -> None:
    models = tmp_path / "models"
    _train(tiny_data, models, detector, version_id="v1")
    before = (models / "v1" / "model.json").read_text()
    with pytest.raises(VersionExistsError):
        _train(tiny_data, models, detector, version_id="v1")
    assert (models / "v1" / "model.json").read_text() == before
    _train(tiny_data, models, detector, version_id="v1", force=True)
    assert json.loads((models / "v1" / "model.json").read_text())["version"]["created_at"]


def test_new_version_keeps_old_and_moves_pointer(tiny_data: Path, tmp_path: Path,
                                                 detector: LanguageDetector) -> None:
    models = tmp_path / "models"
    _train(tiny_data, models, detector, version_id="v1")
    _train(tiny_data, models, detector, version_id="v2", activate=False)
    assert active_version_id(models) == "v1"
    _train(tiny_data, models, detector, version_id="v3")
    assert active_version_id(models) == "v3"
    assert load_version(models, "v2", detector).version == "v2"


def test_load_or_train_trains_once(tiny_data: Path, tmp_path: Path,
                                   detector: LanguageDetector,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sentiflow.models.training as training

    models = tmp_path / "models"
    with pytest.raises(ModelNotFoundError):
        load_version(models)
    monkeypatch.setattr(training, "TrainConfig", lambda: SMALL)
    first = load_or_train_default(models, tiny_data, progress=False, detector=detector)
    second = load_or_train_default(models, tiny_data, progress=False, detector=detector)
    assert first.version == second.version
    assert len(list_versions(models)) == 1


def test_extra_labels_csv_and_jsonl(tiny_data: Path, tmp_path: Path,
                                    detector: LanguageDetector) -> None:
    csv_file = tmp_path / "extra.csv"
    csv_file.write_text("text,label,language\nzorgblat is wonderful,positive,en\n"
                        "zorgblat rocks,positive,\n")
    jsonl = tmp_path / "extra.jsonl"
    jsonl.write_text('{"text": "blorf", "label": "negative", "language": "de"}\n\n')
    rows = load_extra_labels(csv_file) + load_extra_labels(jsonl)
    assert [(r.label, r.language) for r in rows] == [(2, "en"), (2, "und"), (0, "de")]
    result = train_default(tiny_data, tmp_path / "m", config=SMALL, progress=False,
                           detector=detector, extra_labels=rows, version_id="x")
    assert result.version.extra_labels == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,happy\n")
    with pytest.raises(ValueError, match="happy"):
        load_extra_labels(bad)


def test_corrupt_artifact_is_a_clear_error(tiny_data: Path, tmp_path: Path,
                                           detector: LanguageDetector) -> None:
    models = tmp_path / "models"
    _train(tiny_data, models, detector, version_id="v1")
    meta = json.loads((models / "v1" / "model.json").read_text())
    meta["features"]["bits"] = 15  # weights no longer match
    (models / "v1" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError):
        load_version(models, "v1")


def test_classify_rejects_bad_input(tiny_data: Path, tmp_path: Path,
                                    detector: LanguageDetector) -> None:
    backend = _train(tiny_data, tmp_path / "m", detector, version_id="v1")
    with pytest.raises(EmptyTextError):
        backend.classify(["fine", ""])


def test_evaluate_report_shape(tiny_data: Path, tmp_path: Path,
                               detector: LanguageDetector) -> None:
    backend = _train(tiny_data, tmp_path / "m", detector, version_id="v1")
    res = evaluate(backend, tiny_data, detector=detector)
    assert res["split_origin"] == {"en": "file", "xx": "carved from train"}
    assert sum(map(sum, res["confusion_matrix"]["rows_true_cols_predicted"])) == res["n"]
    cov = res["coverage"]
    assert [c["threshold"] for c in cov] == sorted(c["threshold"] for c in cov)
    assert all(a["coverage"] >= b["coverage"] for a, b in itertools.pairwise(cov))


def test_cli_train_refuses_then_eval_writes_json(tiny_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sentiflow.models.training as training

    monkeypatch.setattr(training, "TrainConfig", lambda: SMALL)
    runner = CliRunner()
    args = ["--data-dir", str(tiny_data), "--models-dir", str(tmp_path / "m")]
    ok = runner.invoke(main, ["train", *args, "--version-id", "v1"])
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(main, ["train", *args, "--version-id", "v1"])
    assert again.exit_code != 0
    assert "already exists" in again.output
    out = tmp_path / "eval.json"
    res = runner.invoke(main, ["eval", *args, "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["model"]["version"] == "v1"
