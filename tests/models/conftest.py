"""Fixtures for models/ tests: a tiny labelled data directory built in the test itself."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

_POS = ["i love this so much", "great phone, really happy", "what a wonderful day 😍",
        "excellent service, thank you", "best purchase ever", "amazing quality, love it",
        "so good, very happy", "fantastic, highly recommend"]
_NEG = ["i hate this so much", "terrible phone, really sad", "what an awful day 😡",
        "horrible service, never again", "worst purchase ever", "bad quality, hate it",
        "so bad, very angry", "disgusting, do not buy"]
_NEU = ["the phone arrived on tuesday", "the store opens at nine", "meeting moved to room 4",
        "the report is on the desk", "train leaves at noon", "it is a blue box",
        "the package has two items", "today is wednesday"]


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)


def tiny_rows(suffix: str) -> list[tuple[str, str]]:
    return ([(f"{t} {suffix}", "positive") for t in _POS]
            + [(f"{t} {suffix}", "negative") for t in _NEG]
            + [(f"{t} {suffix}", "neutral") for t in _NEU])


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """``sentiment/en`` with train/valid/test and ``sentiment/xx`` with train only."""
    return build_tiny_data(tmp_path / "data")


def build_tiny_data(root: Path) -> Path:
    _write(root / "sentiment" / "en" / "train.csv", tiny_rows("") + tiny_rows("ok"))
    _write(root / "sentiment" / "en" / "valid.csv", tiny_rows("now"))
    _write(root / "sentiment" / "en" / "test.csv", tiny_rows("then"))
    _write(root / "sentiment" / "xx" / "train.csv",
           [(f"{t} {i}", lab) for i in range(4) for t, lab in tiny_rows("xx")])
    return root


@pytest.fixture(scope="module")
def tiny_data_shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tiny_data` once per module, for fixtures that train a model once and share it."""
    return build_tiny_data(tmp_path_factory.mktemp("tiny") / "data")
