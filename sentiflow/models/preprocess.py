"""Text validation and normalisation shared by training and serving.

The embedded model sees exactly the text this module produces, whether the text comes from a
training CSV or from the API, so the two can never drift apart. Normalisation is done on a whole
batch at once (texts joined by a NUL separator, each regular expression run once) because the
per-call overhead of ``re`` dominates on short posts; NUL can be used as the separator because
validation rejects it in user text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final

from sentiflow.models.errors import EmptyTextError, InvalidEncodingError, TextTooLongError

#: Default upper bound on the length of one text, in characters (configurable per call).
DEFAULT_MAX_LENGTH: Final = 5000

#: Placeholders that replace user mentions and links (the UMSAB corpus uses the same two).
USER_TOKEN: Final = "@user"
URL_TOKEN: Final = "http"

_SEP: Final = "\x00"

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0/C1 control characters other than tab, newline and carriage return, U+FFFD (what a lossy
# decoder leaves behind for bytes it could not decode) and the noncharacters U+FFFE / U+FFFF.
_JUNK = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ufffe\uffff]")
#: Share of junk characters above which a text is treated as binary data, not text. Random
#: bytes decoded with ``errors="replace"`` are about 56 % junk (at least 31 % in every one of
#: 20,000 samples of 64 bytes), while a real post whose emoji were mangled in transit
#: ("love it \ufffd\ufffd") can be 20 % junk and still carry its sentiment.
JUNK_SHARE_LIMIT: Final = 0.25
# Whitespace and invisible format characters (soft hyphen, zero-width space / joiners,
# direction marks, word joiner, BOM): a text of nothing else is empty to a reader.
_INVISIBLE = re.compile(r"[\s\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]*")

_ESCAPED = re.compile(r"\\u([0-9a-fA-F]{4})")
# Spelled with explicit case classes instead of re.IGNORECASE: the same matches, ~20% faster.
_URL = re.compile(r"[hH][tT][tT][pP][sS]?://[^\s\x00]+|\b[hH][tT][tT][pP][sS]?\b"
                  r"|[wW][wW][wW]\.[^\s\x00]+")
_MENTION = re.compile(r"@\w+")
_REPEAT = re.compile(r"(\S)\1\1+")  # = (\S)\1{2,}, which re runs ~40% slower
# Letters/digits of any script count as "has language content" for the language detector.
_WORDISH = re.compile(r"[^\W\d_]")


def validate_text(text: object, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Return ``text`` unchanged if it can be classified, else raise an ``InputError`` subtype.

    Rejects: non-strings, lone UTF-16 surrogates, NUL characters and binary junk (more than
    ``JUNK_SHARE_LIMIT`` of the characters are control characters or U+FFFD) with
    :class:`InvalidEncodingError`; empty text and text of only whitespace or invisible format
    characters with :class:`EmptyTextError`; text longer than ``max_length`` characters with
    :class:`TextTooLongError`. This is the one input check of every entry point (the API
    schemas, the Kafka decoder, ``replay`` and ``classify`` all call it through
    :class:`~sentiflow.api.schemas.ClassifyItem`).
    """
    if not isinstance(text, str):
        raise InvalidEncodingError(f"expected a str, got {type(text).__name__}")
    if len(text) > max_length:
        raise TextTooLongError(f"text has {len(text)} characters, the limit is {max_length}")
    if "\x00" in text:
        raise InvalidEncodingError("text contains a NUL character")
    if _SURROGATE.search(text):
        raise InvalidEncodingError("text contains a lone UTF-16 surrogate: not valid Unicode")
    if not text.strip():
        raise EmptyTextError("text is empty or only whitespace")
    if _INVISIBLE.fullmatch(text):
        raise EmptyTextError("text holds only invisible format characters")
    junk = len(_JUNK.findall(text))
    if junk and junk > JUNK_SHARE_LIMIT * len(text):
        raise InvalidEncodingError(
            f"{junk} of {len(text)} characters are control characters or undecodable bytes"
        )
    return text


def validate_batch(texts: Sequence[object], max_length: int = DEFAULT_MAX_LENGTH) -> list[str]:
    """:func:`validate_text` over a batch; the error names the index of the first bad text."""
    out: list[str] = []
    for i, text in enumerate(texts):
        try:
            out.append(validate_text(text, max_length))
        except (EmptyTextError, TextTooLongError, InvalidEncodingError) as exc:
            raise type(exc)(f"text #{i}: {exc.detail}") from None
    return out


def _unescape(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    # Surrogate halves cannot stand alone; leave them escaped rather than create invalid text.
    return match.group(0) if 0xD800 <= code <= 0xDFFF else chr(code)


def _normalize_joined(joined: str) -> str:
    if "\\u" in joined:  # literal \uXXXX left by double JSON encoding upstream
        joined = _ESCAPED.sub(_unescape, joined)
    joined = _JUNK.sub(" ", joined)
    joined = _URL.sub(f" {URL_TOKEN} ", joined)
    joined = _MENTION.sub(USER_TOKEN, joined)
    return _REPEAT.sub(r"\1\1", joined)


def normalize_batch(texts: Sequence[str]) -> list[str]:
    """The model's view of each text: NFKC, placeholders for links and mentions, runs of one
    character squeezed to two ("soooo" -> "soo", emoji runs too), whitespace collapsed,
    lower-cased. Emoji and punctuation are kept: they carry sentiment.

    Texts are expected to have passed :func:`validate_text` (no NUL inside).
    """
    if not texts:
        return []
    joined = unicodedata.normalize("NFKC", _SEP.join(texts))
    joined = _normalize_joined(joined).lower().replace("\u2019", "'")
    # Whitespace runs collapse to one space and the ends are stripped, per text (str.split()
    # with no argument does both, faster than a regex over the joined batch).
    return [" ".join(part.split()) for part in joined.split(_SEP)]


def normalize_text(text: str) -> str:
    """:func:`normalize_batch` for one text."""
    return normalize_batch([text])[0]


def has_language_content(normalized: str) -> bool:
    """True when a normalised text holds at least one letter outside the placeholders.

    Emoji-only posts, bare links or mentions and numbers carry no evidence of a language.
    """
    rest = normalized.replace(USER_TOKEN, " ").replace(URL_TOKEN, " ")
    return _WORDISH.search(rest) is not None
