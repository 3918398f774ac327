from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from tests.text_cases import BAD_TEXTS, MAX_CHARS, ODD_GOOD_TEXTS, ids


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


@pytest.mark.parametrize(("name", "text", "code"), BAD_TEXTS, ids=ids(BAD_TEXTS))
def test_the_entry_points_bad_texts_are_refused_with_their_code(name: str, text: str,
                                                                code: str) -> None:
    with pytest.raises(InputError) as info:
        validate_text(text, max_length=MAX_CHARS)
    assert info.value.code == code, (name, info.value.detail)


@pytest.mark.parametrize(("name", "text"), ODD_GOOD_TEXTS, ids=ids(ODD_GOOD_TEXTS))
def test_odd_but_real_texts_are_accepted(name: str, text: str) -> None:
    assert validate_text(text, max_length=MAX_CHARS) == text


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), size=st.integers(64, 2000))
def test_random_bytes_decoded_lossily_are_refused_as_junk(seed: int, size: int) -> None:
    """From 64 bytes on, uniformly random bytes decoded with errors="replace" are binary junk,
    never text (~56 % junk, at least 31 % in 20,000 samples; JUNK_SHARE_LIMIT is 25 %), even
    without the NUL bytes that would give them away at once."""
    raw = bytes(b for b in random.Random(seed).randbytes(size) if b)
    with pytest.raises(InvalidEncodingError, match="control characters or undecodable"):
        validate_text(raw.decode("utf-8", errors="replace"), max_length=10_000)


def test_validate_batch_names_the_index() -> None:
    with pytest.raises(EmptyTextError, match="#1"):
        validate_batch(["fine", " "])


def test_language_content() -> None:
    assert not has_language_content(normalize_text("😍😍 @bob https://x.y 123"))
    assert has_language_content(normalize_text("hola 😍"))
