"""Texts every entry point must refuse, and odd texts every entry point must accept.

One table for the API, batch items, the Kafka decoder, ``replay`` and ``classify``, so that the
entries cannot drift apart: each bad text names the models' error code the refusal must carry
(:mod:`sentiflow.models.errors`). Sent as JSON with ``json.dumps`` (ASCII escapes), so the lone
surrogate travels as the escape ``"\\ud800"``, exactly as a client would send it.
"""

from __future__ import annotations

import random

#: The default ``api.max_text_chars``.
MAX_CHARS = 5000

#: Random bytes as a lossy decoder turns them into text: mostly U+FFFD and control characters
#: (NUL bytes left out, so that it is the junk share that refuses it, not the NUL check).
RANDOM_BYTES_TEXT = bytes(b for b in random.Random(7).randbytes(256) if b).decode(
    "utf-8", errors="replace")

#: (case name, text, error code)
BAD_TEXTS: list[tuple[str, str, str]] = [
    ("empty", "", "empty_text"),
    ("whitespace", " \t\n  \r\n", "empty_text"),
    ("invisible_only", "\u200b\u200d\ufeff", "empty_text"),
    ("over_max_length", "x" * (MAX_CHARS + 1), "text_too_long"),
    ("lone_surrogate", "bad \ud800 surrogate", "invalid_encoding"),
    ("lone_low_surrogate", "\udc9f\udc98\udc8d", "invalid_encoding"),
    ("nul", "text\x00with nul", "invalid_encoding"),
    ("control_chars", "\x01\x02\x03\x04\x1b[31m\x7f\x08", "invalid_encoding"),
    ("mostly_replacement_chars", "\ufffd" * 6 + "abc", "invalid_encoding"),
    ("random_bytes_replaced", RANDOM_BYTES_TEXT, "invalid_encoding"),
]

#: (case name, text): unusual but real posts, classified like any other.
ODD_GOOD_TEXTS: list[tuple[str, str]] = [
    ("emoji_only", "😍🔥👍"),
    ("emoji_zwj_sequence", "👨\u200d👩\u200d👧 ❤️"),
    ("mixed_scripts", "I love 東京 and Москва, c'est génial"),
    ("one_char", "k"),
    ("rtl_arabic", "الخدمة ممتازة جدا"),
    ("rtl_hebrew_with_mark", "\u200fהשירות היה מצוין"),
    ("a_few_replacement_chars", "The caf\ufffd was great, loved it \ufffd\ufffd"),
    ("mangled_emoji_short", "love it \ufffd\ufffd"),
    ("stray_control_char", "fine text with one \x07 bell in it"),
    ("exactly_max_length", "y" * MAX_CHARS),
]


def ids(cases: list[tuple[str, str, str]] | list[tuple[str, str]]) -> list[str]:
    return [case[0] for case in cases]
