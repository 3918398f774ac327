from __future__ import annotations

import pytest

from sentiflow.models.errors import (
    EmptyTextError,
    InputError,
    InvalidEncodingError,
    TextTooLongError,
)
from sentiflow.models.preprocess import (
    has_language_content,
    normalize_batch,
    normalize_text,
    validate_batch,
    validate_text,
)


def test_placeholders_for_urls_and_mentions() -> None:
    out = normalize_text("@Alice look https://t.co/xyz and www.example.com/a?b=1 now")
    assert out == "@user look http and http now"


def test_emoji_kept_and_runs_squeezed() -> None:
    assert normalize_text("Sooooo goooood 😍😍😍😍!!!!") == "soo good 😍😍!!"


def test_whitespace_normalised_and_lowercased() -> None:
    assert normalize_text("  Hello \t\n  WORLD  ") == "hello world"


def test_literal_unicode_escapes_decoded_but_not_surrogates() -> None:
    assert normalize_text("it\\u2019s fine") == "it's fine"
    assert "\\ud83d" in normalize_text("x \\ud83d y")


def test_batch_matches_single() -> None:
    texts = ["A  b", "@x http://y z", "ok!!!!"]
    assert normalize_batch(texts) == [normalize_text(t) for t in texts]
    assert normalize_batch([]) == []


@pytest.mark.parametrize(
    ("text", "error"),
    [("", EmptyTextError), ("   \n\t", EmptyTextError), ("a\x00b", InvalidEncodingError),
     ("bad \ud800 surrogate", InvalidEncodingError),
     ("\x01\x02\x03\x04binary\x05\x06\x07\x08", InvalidEncodingError),
     ("\ufffd\ufffd\ufffd\ufffdab", InvalidEncodingError), (b"bytes", InvalidEncodingError),
     ("x" * 11, TextTooLongError)],
)
def test_validation_errors(text: object, error: type[InputError]) -> None:
    with pytest.raises(error) as info:
        validate_text(text, max_length=10 if error is TextTooLongError else 1000)
    assert isinstance(info.value, InputError)
    assert info.value.code == error.code


def test_validation_accepts_normal_text_with_a_stray_control_char() -> None:
    text = "a perfectly fine sentence with one \x07 bell in it"
    assert validate_text(text) == text


def test_validate_batch_names_the_index() -> None:
    with pytest.raises(EmptyTextError, match="#1"):
        validate_batch(["fine", " "])


def test_language_content() -> None:
    assert not has_language_content(normalize_text("😍😍 @bob https://x.y 123"))
    assert has_language_content(normalize_text("hola 😍"))
