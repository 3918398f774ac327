"""HFBackend against tiny random-weight checkpoints that the tests save and load like a user's.

The label-mapping and temperature-fitting tests are pure numpy/scipy; the rest need torch and
transformers (marked ``hf``) and skip cleanly without them. Weights are random but drawn with a
large init range, so different texts give clearly different outputs and a row put back in the
wrong place cannot pass for the right one.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from sentiflow.models.base import LABELS, SentimentBackend
from sentiflow.models.calibration import Calibrator
from sentiflow.models.devices import DeviceUnavailableError, cuda_devices, resolve_device
from sentiflow.models.errors import InvalidEncodingError, ModelNotFoundError
from sentiflow.models.hf_backend import (
    HFBackend,
    LabelMapping,
    LabelMappingError,
    label_mapping_from_config,
)
from tests.hf_checkpoints import TINY_VOCAB, save_checkpoint

POSITIONS = 64

TEXTS = [
    "i love it",
    "bad",
    "the movie was awful and i hate it, the worst movie of the year by far",
    "great great great!",
    "?",
    "@someone #movie was good",
    "zzzz qqq xx",
    "it was the movie",
]


def _langs(texts: list[str]) -> list[str]:
    return ["en"] * len(texts)


def _save_checkpoint(directory: Path, id2label: Mapping[int, str], seed: int = 0) -> Path:
    """A tiny DistilBERT (hidden 32, 2 layers) with the fixed 94-token vocabulary, written the
    way a user's checkpoint would be; a large init range makes texts' outputs differ clearly."""
    return save_checkpoint(directory, id2label, seed=seed, vocab=TINY_VOCAB,
                           max_position_embeddings=POSITIONS, initializer_range=0.3)


def _relabel(source: Path, target: Path, id2label: Mapping[int, str]) -> Path:
    """Same weights, different ``id2label`` in config.json."""
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["id2label"] = {str(k): v for k, v in id2label.items()}
    config["label2id"] = {v: k for k, v in id2label.items()}
    (target / "config.json").write_text(json.dumps(config))
    return target


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("hf")
    base = _save_checkpoint(root / "base", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    return {
        "base": base,
        "other_seed": _save_checkpoint(root / "other", {0: "neg", 1: "neu", 2: "pos"}, seed=1),
        "permuted": _relabel(base, root / "permuted", {0: "Positive", 1: "NEGATIVE", 2: "neutral"}),
        "unmappable": _relabel(base, root / "stars", {0: "1 star", 1: "3 stars", 2: "5 stars"}),
        "two_label": _save_checkpoint(root / "two", {0: "NEGATIVE", 1: "POSITIVE"}, seed=2),
    }


@pytest.fixture(scope="module")
def backend(checkpoints: dict[str, Path]) -> HFBackend:
    return HFBackend(checkpoints["base"], max_batch_size=3)


# --- label mapping (no torch needed) --------------------------------------------------------


@pytest.mark.parametrize(
    ("id2label", "sources"),
    [
        ({0: "negative", 1: "neutral", 2: "positive"}, (0, 1, 2)),
        ({0: "POSITIVE", 1: "Negative", 2: "NEUTRAL"}, (1, 2, 0)),
        ({0: "neu", 1: "pos", 2: "neg"}, (2, 0, 1)),
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, (0, 1, 2)),
        ({"0": "0", "1": "1", "2": "2"}, (0, 1, 2)),
        ({0: "NEGATIVE", 1: "POSITIVE"}, (0, None, 1)),
        ({0: "pos", 1: "neg"}, (1, None, 0)),
        ({0: "LABEL_0", 1: "LABEL_1"}, (0, None, 1)),
    ],
)
def test_label_mapping_reads_names_and_placeholders(
    id2label: Mapping[Any, str], sources: tuple[int | None, ...]
) -> None:
    mapping = label_mapping_from_config(id2label)
    assert mapping.sources == sources
    assert mapping.n_model_labels == len(id2label)


@pytest.mark.parametrize(
    "id2label",
    [
        {0: "1 star", 1: "2 stars", 2: "3 stars"},  # unknown names
        {0: "neg", 1: "negative", 2: "pos"},  # two columns for one sentiment
        {0: "neutral", 1: "positive"},  # 2 labels must be negative + positive
        {0: "negative"},  # too few
        {0: "a", 1: "b", 2: "c", 3: "d"},  # too many
        {0: "LABEL_1", 1: "LABEL_0", 2: "LABEL_2"},  # placeholders out of index order
        {0: "negative", 2: "positive", 3: "neutral"},  # ids not 0..n-1
    ],
)
def test_label_mapping_refuses_what_it_cannot_read(id2label: Mapping[int, str]) -> None:
    with pytest.raises(LabelMappingError):
        label_mapping_from_config(id2label)


def test_label_mapping_overrides_win() -> None:
    stars = {0: "1 star", 1: "3 stars", 2: "5 stars"}
    mapping = label_mapping_from_config(
        stars, {"1 STAR": "negative", "3 stars": "neutral", "5 stars": "positive"}
    )
    assert mapping.sources == (0, 1, 2)
    with pytest.raises(LabelMappingError):
        label_mapping_from_config(stars, {"1 star": "bad"})  # type: ignore[dict-item]


def test_mapping_to_labels_puts_zero_in_missing_neutral() -> None:
    mapping = LabelMapping(sources=(1, None, 0), n_model_labels=2)
    probs = np.array([[0.9, 0.1], [0.25, 0.75]], dtype=np.float32)
    np.testing.assert_allclose(mapping.to_labels(probs), [[0.1, 0.0, 0.9], [0.75, 0.0, 0.25]])


# --- devices --------------------------------------------------------------------------------


def test_cuda_devices_is_empty_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert cuda_devices() == []
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceUnavailableError):
        resolve_device("cuda:0")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:1", ""])
def test_resolve_device_refuses_names_that_are_not_devices(name: str) -> None:
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device(name)


@pytest.mark.hf
def test_cuda_devices_match_torch() -> None:
    torch = pytest.importorskip("torch")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert cuda_devices() == [f"cuda:{i}" for i in range(count)]
    assert resolve_device("CPU") == "cpu"
    if count == 0:
        with pytest.raises(DeviceUnavailableError, match="not available"):
            resolve_device("cuda")
    else:
        assert resolve_device("cuda") == "cuda:0"


# --- the backend ----------------------------------------------------------------------------


@pytest.mark.hf
def test_probabilities_have_one_row_per_text_summing_to_one(backend: HFBackend) -> None:
    assert isinstance(backend, SentimentBackend)
    probs = backend.predict_proba(TEXTS, _langs(TEXTS))
    assert probs.shape == (len(TEXTS), len(LABELS))
    assert probs.dtype == np.float32
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.hf
def test_length_sorted_batches_come_back_in_the_callers_order(backend: HFBackend) -> None:
    batched = backend.predict_proba(TEXTS, _langs(TEXTS))  # max_batch_size=3: 3 sorted chunks
    one_by_one = np.vstack([backend.predict_proba([t], ["en"]) for t in TEXTS])
    # The texts must give distinguishable rows, or a mix-up could not be seen.
    gaps = np.abs(one_by_one[:, None, :] - one_by_one[None, :, :]).max(axis=2)
    assert gaps[~np.eye(len(TEXTS), dtype=bool)].min() > 1e-3
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    reversed_texts = TEXTS[::-1]
    np.testing.assert_allclose(
        backend.predict_proba(reversed_texts, _langs(reversed_texts)), one_by_one[::-1], atol=1e-5
    )


@pytest.mark.hf
def test_long_texts_are_truncated_to_max_length(checkpoints: dict[str, Path]) -> None:
    short = HFBackend(checkpoints["base"], max_length=16)
    assert short.max_length == 16
    # "good" is one token: 16 = [CLS] + 14 x good + [SEP].
    long_probs = short.predict_proba(["good " * 5000, "bad"], ["en", "en"])
    np.testing.assert_allclose(long_probs[0], short.predict_proba(["good " * 14], ["en"])[0],
                               atol=1e-6)
    assert not np.allclose(long_probs[0], short.predict_proba(["good " * 10], ["en"])[0],
                           atol=1e-4)
    # A limit above the position embeddings is capped instead of crashing the model.
    capped = HFBackend(checkpoints["base"], max_length=10_000)
    assert capped.max_length == POSITIONS
    assert capped.predict_proba(["x " * 10_000], ["en"]).shape == (1, 3)


@pytest.mark.hf
def test_permuted_id2label_permutes_columns(checkpoints: dict[str, Path],
                                            backend: HFBackend) -> None:
    permuted = HFBackend(checkpoints["permuted"])  # 0: positive, 1: negative, 2: neutral
    base = backend.predict_proba(TEXTS, _langs(TEXTS))  # LABEL_0..2 = neg, neu, pos
    np.testing.assert_allclose(
        permuted.predict_proba(TEXTS, _langs(TEXTS)), base[:, [1, 2, 0]], atol=1e-6
    )


@pytest.mark.hf
def test_two_label_checkpoint_gives_neutral_zero(checkpoints: dict[str, Path]) -> None:
    two = HFBackend(checkpoints["two_label"])
    probs = two.predict_proba(TEXTS, _langs(TEXTS))
    assert np.all(probs[:, LABELS.index("neutral")] == 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert two.logits(TEXTS).shape == (len(TEXTS), 2)


@pytest.mark.hf
def test_unmappable_checkpoint_is_refused_at_load(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(LabelMappingError, match="label_map"):
        HFBackend(checkpoints["unmappable"])
    mapped = HFBackend(checkpoints["unmappable"], label_map={
        "1 star": "negative", "3 stars": "neutral", "5 stars": "positive"})
    assert mapped.predict_proba(["good"], ["en"]).shape == (1, 3)


@pytest.mark.hf
def test_temperature_scales_logits(checkpoints: dict[str, Path], backend: HFBackend) -> None:
    logits = backend.logits(TEXTS)
    hot = HFBackend(checkpoints["base"], temperature=3.0)
    assert hot.temperature == pytest.approx(3.0)
    hot_probs = hot.predict_proba(TEXTS, _langs(TEXTS))
    scaled = np.exp(logits.astype(np.float64) / 3.0)
    np.testing.assert_allclose(hot_probs, scaled / scaled.sum(axis=1, keepdims=True), atol=1e-6)
    cold_probs = backend.predict_proba(TEXTS, _langs(TEXTS))
    assert np.all(hot_probs.max(axis=1) < cold_probs.max(axis=1))
    assert np.array_equal(hot_probs.argmax(axis=1), cold_probs.argmax(axis=1))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            hot.temperature = bad


def _nll(probs: npt.NDArray[np.float32], labels: list[int]) -> float:
    return float(-np.log(probs[np.arange(len(labels)), labels]).mean())


@pytest.mark.hf
@pytest.mark.parametrize("kind", ["temperature", "vector"])
def test_fit_calibration_lowers_the_nll(checkpoints: dict[str, Path], kind: str) -> None:
    model = HFBackend(checkpoints["base"])
    texts = TEXTS * 6
    # Labels the model gets right 3 times in 4: its confidence should move towards that.
    predicted = model.predict_proba(texts, _langs(texts)).argmax(axis=1)
    labels = [int(p) if i % 4 else int((p + 1) % 3) for i, p in enumerate(predicted)]
    before = _nll(model.predict_proba(texts, _langs(texts)), labels)
    fitted = model.fit_calibration(texts, labels, kind)  # type: ignore[arg-type]
    assert fitted.kind == kind
    assert model.calibrator == fitted
    assert _nll(model.predict_proba(texts, _langs(texts)), labels) < before
    if kind == "temperature":
        assert model.temperature == pytest.approx(1 / fitted.scale[0])
        assert model.temperature != pytest.approx(1.0)
    else:
        assert model.temperature is None
    with pytest.raises(ValueError, match="labels"):
        model.fit_calibration(texts, labels[:-1])


@pytest.mark.hf
def test_calibrator_must_fit_the_model(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="columns"):
        HFBackend(checkpoints["two_label"], calibrator=Calibrator.identity(3))
    with pytest.raises(ValueError, match="not both"):
        HFBackend(checkpoints["base"], temperature=2.0, calibrator=Calibrator.identity(3))
    shifted = Calibrator("vector", (1.0, 1.0, 1.0), (0.0, 0.0, 5.0))
    model = HFBackend(checkpoints["base"], calibrator=shifted)
    plain = HFBackend(checkpoints["base"]).predict_proba(TEXTS, _langs(TEXTS))
    moved = model.predict_proba(TEXTS, _langs(TEXTS))
    assert np.all(moved[:, 2] > plain[:, 2])  # +5 on the positive logit


@pytest.mark.hf
def test_two_label_fit_ignores_neutral_rows(checkpoints: dict[str, Path]) -> None:
    two = HFBackend(checkpoints["two_label"])
    with pytest.raises(ValueError, match="cannot calibrate"):
        two.fit_calibration(["good", "bad"], ["neutral", "neutral"])
    predicted = two.predict_proba(TEXTS, _langs(TEXTS)).argmax(axis=1)
    labels = [LABELS[int(p)] for p in predicted]
    fitted = two.fit_calibration([*TEXTS, "good", "bad"], [*labels, "neutral", "neutral"])
    assert len(fitted.scale) == 2
    assert fitted.scale[0] > 1  # every kept label agrees with the model: more confident


@pytest.mark.hf
def test_preprocess_runs_before_tokenising(checkpoints: dict[str, Path],
                                           backend: HFBackend) -> None:
    def to_good(texts: Sequence[str]) -> list[str]:
        return ["good" for _ in texts]

    rewritten = HFBackend(checkpoints["base"], preprocess=to_good)
    expected = backend.predict_proba(["good"], ["en"])[0]
    np.testing.assert_allclose(
        rewritten.predict_proba(TEXTS, _langs(TEXTS)), np.tile(expected, (len(TEXTS), 1)),
        atol=1e-5,
    )


@pytest.mark.hf
def test_empty_batch_and_bad_input(backend: HFBackend) -> None:
    empty = backend.predict_proba([], [])
    assert empty.shape == (0, 3)
    assert empty.dtype == np.float32
    with pytest.raises(ValueError, match="languages"):
        backend.predict_proba(["a", "b"], ["en"])
    with pytest.raises(InvalidEncodingError):
        backend.predict_proba(["fine", "bad \ud800 surrogate"], ["en", "en"])
    with pytest.raises(InvalidEncodingError):
        backend.predict_proba([b"bytes"], ["en"])  # type: ignore[list-item]


@pytest.mark.hf
def test_name_and_version_identify_the_weights(checkpoints: dict[str, Path],
                                               backend: HFBackend) -> None:
    assert backend.name == str(checkpoints["base"])
    assert backend.version.startswith("sha256-")
    assert HFBackend(checkpoints["base"]).version == backend.version
    assert HFBackend(checkpoints["permuted"]).version == backend.version  # same weights
    assert HFBackend(checkpoints["other_seed"]).version != backend.version


@pytest.mark.hf
def test_missing_checkpoint_is_a_typed_error(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(ModelNotFoundError):
        HFBackend(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError):
        HFBackend(tmp_path / "empty")
    with pytest.raises(ModelNotFoundError):
        HFBackend("sentiflow-tests/no-such-model", local_files_only=True)


@pytest.mark.hf
def test_unavailable_device_is_refused(checkpoints: dict[str, Path]) -> None:
    if cuda_devices():
        pytest.skip("CUDA is available here")
    with pytest.raises(DeviceUnavailableError):
        HFBackend(checkpoints["base"], device="cuda")


@pytest.mark.hf
@pytest.mark.skipif(not cuda_devices(), reason="needs a CUDA device")
def test_cuda_fp16_agrees_with_cpu(checkpoints: dict[str, Path], backend: HFBackend) -> None:
    gpu = HFBackend(checkpoints["base"], device="cuda", max_batch_size=3)
    assert gpu.device == "cuda:0"
    np.testing.assert_allclose(
        gpu.predict_proba(TEXTS, _langs(TEXTS)), backend.predict_proba(TEXTS, _langs(TEXTS)),
        atol=1e-2,
    )
