"""Reading the labelled data (``<data_dir>/sentiment/<lang>/{train,valid,test}.csv``).

Some languages ship without a valid and/or test split (zh and ja have only ``train``; id and
ms have no ``test``). For those, held-out rows are carved out of ``train`` deterministically by
a hash of the text, so training never sees them and every run carves the same rows: 10% become
``valid`` when there is no valid file, another 10% ``test`` when there is no test file. Where a
language has a valid file but no test file, evaluation uses its valid split and says so.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from sentiflow.models.base import LABELS

Split = Literal["train", "valid", "test"]

HOLDOUT_SHARE: Final = 0.1


class DataError(ValueError):
    """The labelled data is missing or malformed (bad label, missing column, ...)."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int  # index into LABELS
    language: str


@dataclass(frozen=True, slots=True)
class SplitSource:
    """Where a language's split comes from: its own file or carved out of ``train``."""

    language: str
    split: Split
    origin: str  # "file", "carved from train", "valid (no test split)"


def _bucket(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def _read_csv(path: Path, language: str) -> list[Example]:
    out: list[Example] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise DataError(f"{path}: expected columns text,label")
        for line, row in enumerate(reader, start=2):
            out.append(_example(row.get("text"), row.get("label"), row.get("language") or language,
                                f"{path}:{line}"))
    return out


def _example(text: object, label: object, language: str, where: str) -> Example:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: empty text")
    if label not in LABELS:
        raise DataError(f"{where}: label {label!r} is not one of {LABELS}")
    return Example(text, LABELS.index(label), language)


def sentiment_root(data_dir: Path) -> Path:
    root = data_dir / "sentiment"
    if not root.is_dir():
        raise DataError(f"no labelled data at {root} (set SENTIFLOW_DATA_DIR)")
    return root


def languages(data_dir: Path) -> list[str]:
    """Languages with a ``train.csv`` under the data directory, sorted."""
    root = sentiment_root(data_dir)
    return sorted(p.name for p in root.iterdir() if (p / "train.csv").is_file())


def load_split(data_dir: Path, language: str, split: Split) -> tuple[list[Example], SplitSource]:
    """Rows of one language's split, carving held-out rows from train where files are missing."""
    folder = sentiment_root(data_dir) / language
    has_valid = (folder / "valid.csv").is_file()
    has_test = (folder / "test.csv").is_file()
    if split != "train" and (folder / f"{split}.csv").is_file():
        return _read_csv(folder / f"{split}.csv", language), SplitSource(language, split, "file")
    if split == "test" and has_valid:
        rows = _read_csv(folder / "valid.csv", language)
        return rows, SplitSource(language, split, "valid (no test split)")
    rows = _read_csv(folder / "train.csv", language)
    # Carving bands: [0, 0.1) -> valid if no valid file, [0.1, 0.2) -> test if neither file.
    def band(e: Example) -> Split:
        b = _bucket(e.text)
        if not has_valid and b < HOLDOUT_SHARE:
            return "valid"
        if not has_valid and not has_test and b < 2 * HOLDOUT_SHARE:
            return "test"
        return "train"

    if split == "train":
        origin = "file" if has_valid else "file minus carved held-out rows"
        return [e for e in rows if band(e) == "train"], SplitSource(language, split, origin)
    return [e for e in rows if band(e) == split], SplitSource(language, split, "carved from train")


def load_all(
    data_dir: Path, split: Split, only: Sequence[str] | None = None
) -> tuple[list[Example], list[SplitSource]]:
    rows: list[Example] = []
    sources: list[SplitSource] = []
    for lang in only or languages(data_dir):
        part, source = load_split(data_dir, lang, split)
        rows.extend(part)
        sources.append(source)
    return rows, sources


def load_extra_labels(path: Path, default_language: str = "und") -> list[Example]:
    """Extra labelled rows from CSV (``text,label[,language]`` header) or JSONL objects."""
    if not path.is_file():
        raise DataError(f"extra labels file not found: {path}")
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        out: list[Example] = []
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{line_no}: expected an object")
            out.append(_example(obj.get("text"), obj.get("label"),
                                obj.get("language") or default_language, f"{path}:{line_no}"))
        return out
    return _read_csv(path, default_language)


def fingerprint(examples: Iterable[Example]) -> str:
    """Stable short digest of training rows (order-sensitive), recorded in ModelVersion."""
    h = hashlib.blake2b(digest_size=12)
    for e in examples:
        h.update(e.text.encode("utf-8", "surrogatepass"))
        h.update(f"\x1f{e.label}\x1f{e.language}\x1e".encode())
    return h.hexdigest()
