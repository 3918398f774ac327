"""The language-ID head (sentiflow/models/langid_head.py) and how the detector uses it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from sentiflow.models.embedded import EmbeddedLinearBackend
from sentiflow.models.errors import ArtifactError
from sentiflow.models.langid import UND, LanguageDetector, LanguageGuess
from sentiflow.models.langid_head import (
    LanguageHead,
    choose_min_confidence,
    fit_language_head,
    ngram_matrix,
    ngram_slots,
)
from sentiflow.models.preprocess import normalize_text

# Two made-up Latin-script "languages" with disjoint vocabularies, and Japanese kana.
VOCAB = {
    "en": ["the", "order", "arrived", "late", "and", "the", "support", "team", "never",
           "answered", "my", "emails"],
    "id": ["pesanan", "datang", "terlambat", "dan", "tim", "dukungan", "tidak", "pernah",
           "menjawab", "surel", "saya"],
    "ja": ["ちゅうもん", "が", "おくれて", "とどき", "サポート", "は", "へんじ", "を",
           "くれません", "でした"],
}


def corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    rnd = random.Random(seed)
    texts, langs = [], []
    for _ in range(n):
        for lang, words in VOCAB.items():
            texts.append(" ".join(rnd.choice(words) for _ in range(rnd.randint(3, 9))))
            langs.append(lang)
    return texts, langs


@pytest.fixture(scope="module")
def head() -> LanguageHead:
    texts, langs = corpus(200, seed=1)
    fitted = fit_language_head(texts, langs)
    assert fitted is not None
    fitted.min_confidence = 0.6
    return fitted


@pytest.fixture(scope="module")
def fasttext() -> LanguageDetector:
    return LanguageDetector()


def test_a_texts_features_do_not_depend_on_its_batch() -> None:
    alone, _ = ngram_slots(["bonjour"])
    batch, starts = ngram_slots(["hello there", "bonjour", "x"])
    assert np.array_equal(batch[starts[1]:starts[1] + len("bonjour")], alone)
    # no n-gram spans two texts: the separator row and the last rows of each text are "none"
    assert (batch[starts[1] - 1] == 1 << 16).all()


def test_serving_scores_equal_the_training_matrix(head: LanguageHead) -> None:
    texts, _ = corpus(5, seed=2)
    logits = ngram_matrix(texts) @ head.weights + head.bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(head.probabilities(texts), expected, atol=1e-5)


def test_learns_to_tell_the_languages_apart(head: LanguageHead) -> None:
    texts, langs = corpus(50, seed=3)
    guesses = head.guess(texts)
    assert np.mean([g.language == y for g, y in zip(guesses, langs, strict=True)]) > 0.97
    assert head.languages == ("en", "id", "ja")
    # an empty text (the detector never sends one) still gets a row of probabilities
    probs = head.probabilities(["", "pesanan datang terlambat", ""])
    assert probs.shape == (3, 3)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert head.languages[int(probs[1].argmax())] == "id"


def test_one_language_gives_no_head_and_two_give_a_softmax_pair() -> None:
    assert fit_language_head(["a b c", "d e f"], ["en", "en"]) is None
    texts, langs = corpus(100, seed=4)
    pair = [(t, lang) for t, lang in zip(texts, langs, strict=True) if lang != "ja"]
    two = fit_language_head([t for t, _ in pair], [lang for _, lang in pair])
    assert two is not None
    assert two.weights.shape == (1 << 16, 2)
    assert two.guess(["the support team never answered"])[0].language == "en"


class _FixedGuesses:
    """Stands in for a head whose guesses (language, confidence) are known in advance."""

    def __init__(self, guesses: list[tuple[str, float]]) -> None:
        self.guesses = [LanguageGuess(lang, score) for lang, score in guesses]

    def guess(self, prepared: list[str]) -> list[LanguageGuess]:
        return self.guesses[: len(prepared)]


def test_threshold_choice_defers_to_the_fallback_where_that_is_more_accurate() -> None:
    stub = cast(LanguageHead, _FixedGuesses([("en", 0.95), ("ms", 0.725), ("id", 0.605)]))
    gold = ["en", "id", "ms"]
    # the head is wrong on its two least sure answers and the fallback right: defer those
    assert choose_min_confidence(stub, ["a", "b", "c"], gold, fallback=gold) == 0.73
    # a fallback that is always wrong: the head answers everything it may (the floor)
    assert choose_min_confidence(stub, ["a", "b", "c"], gold, fallback=["xx"] * 3) == 0.5


def test_detector_asks_the_head_first_and_fasttext_otherwise(
        head: LanguageHead, fasttext: LanguageDetector) -> None:
    detector = fasttext.with_head(head)
    texts = ["pesanan datang terlambat dan tim dukungan tidak pernah menjawab",
             "Как дела? Заказ пришёл поздно, поддержка не отвечает.",  # Cyrillic: not ours
             "🙂🙂🙂", "@someone https://example.com"]
    guesses = detector.detect_batch_normalized([normalize_text(t) for t in texts])
    assert guesses[0].language == "id"
    assert guesses[1].language == "ru"  # fastText answered: the script is none of the head's
    assert guesses[2].language == UND
    assert guesses[3].language == UND
    # the same text alone and in a batch: the same answer
    assert detector.detect_normalized(normalize_text(texts[0])) == guesses[0]
    # unsure -> fastText: with a threshold no guess reaches, every answer is fastText's
    unsure = fasttext.with_head(LanguageHead(head.weights, head.bias, head.languages, 1.01))
    text = normalize_text("Die Lieferung kam pünktlich, alles in Ordnung.")
    assert unsure.detect_normalized(text).language == "de"
    assert detector.resolve([text, text], ["FR", None]) == ["fr", detector.detect_normalized(
        text).language]


def test_the_model_artifact_carries_its_head(tmp_path: Path, head: LanguageHead,
                                             fasttext: LanguageDetector) -> None:
    from sentiflow.models.training import load_or_train_default
    from tests.models.conftest import build_tiny_data

    data = build_tiny_data(tmp_path / "data")
    backend = load_or_train_default(tmp_path / "models", data, progress=False,
                                    detector=fasttext)
    assert backend.language_head is not None  # tiny data holds two languages: en and xx
    assert backend.language_head.languages == ("en", "xx")
    assert backend.detector.head is backend.language_head
    folder = tmp_path / "copy"
    folder.mkdir()
    with_head = EmbeddedLinearBackend(backend.featurizer, backend.weights, backend.bias,
                                      backend.calibrator, backend.model_version, fasttext, head)
    with_head.save(folder)
    loaded = EmbeddedLinearBackend.load(folder, fasttext)
    assert loaded.language_head is not None
    assert np.array_equal(loaded.language_head.weights, head.weights)
    assert loaded.language_head.min_confidence == head.min_confidence
    assert loaded.detector.head is loaded.language_head
    # an artifact from before the head loads without one (fastText alone)
    without = EmbeddedLinearBackend(backend.featurizer, backend.weights, backend.bias,
                                    backend.calibrator, backend.model_version, fasttext)
    old = tmp_path / "old"
    old.mkdir()
    without.save(old)
    assert EmbeddedLinearBackend.load(old, fasttext).detector.head is None
    # a head of another layout is refused with the reason
    import json

    meta = json.loads((folder / "model.json").read_text())
    meta["language_head"]["bits"] = 12
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="12 bits"):
        EmbeddedLinearBackend.load(folder, fasttext)


@pytest.mark.data
def test_the_default_models_head_on_held_out_posts(default_model_home: Path,
                                                   fasttext: LanguageDetector) -> None:
    """On the real held-out posts the shipped detector (head first) beats fastText alone,
    overall and on the two languages fastText cannot tell (romanised Hindi, Malay)."""
    from sentiflow.config import paths
    from sentiflow.models.evaluation import load_eval_set
    from sentiflow.models.preprocess import normalize_batch
    from sentiflow.models.training import load_or_train_default

    backend = load_or_train_default(default_model_home / "models", paths.data_dir(),
                                    progress=False, detector=fasttext)
    assert backend.detector.head is not None
    rows, _ = load_eval_set(paths.data_dir(), "test")
    normalized = normalize_batch([r.text for r in rows])
    ours = [g.language for g in backend.detector.detect_batch_normalized(normalized)]
    alone = [g.language for g in fasttext.detect_batch_normalized(normalized)]

    def accuracy(answers: list[str], lang: str | None = None) -> float:
        pairs = [(a, r.language) for a, r in zip(answers, rows, strict=True)
                 if lang is None or r.language == lang]
        return sum(a == y for a, y in pairs) / len(pairs)

    assert accuracy(ours) > 0.93 > accuracy(alone)  # measured 0.954 vs 0.789
    assert accuracy(ours, "hi") > 0.7 > accuracy(alone, "hi")  # 0.795 vs 0.000
    assert accuracy(ours, "ms") > 0.85 > accuracy(alone, "ms")  # 0.909 vs 0.213
    for lang in ("ar", "es", "fr", "ja", "zh"):
        assert accuracy(ours, lang) >= accuracy(alone, lang) - 0.01
