"""The SemEval-2014 aspect-term data (``absa/{laptop,restaurant}/train.jsonl``) and its split.

Only train files exist, so a deterministic held-out split is carved from them: a sentence goes
to ``heldout`` when the first 8 hex digits of ``sha1(text)`` fall under ``heldout_share`` of
2^32. All aspects of one sentence therefore land in the same split (no sentence is seen in
training and scored in evaluation), and the split never changes between runs or machines.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from sentiflow.models.base import LABELS, Label

DOMAINS: Final = ("laptop", "restaurant")
#: Share of sentences held out for evaluation.
HELDOUT_SHARE: Final = 0.2
AbsaSplit = Literal["train", "heldout", "all"]


class AbsaDataError(ValueError):
    """The ABSA files are missing or malformed (the message names the file and line)."""


@dataclass(frozen=True, slots=True)
class GoldAspect:
    start: int
    end: int
    term: str
    sentiment: Label

    @property
    def label(self) -> int:
        return LABELS.index(self.sentiment)


@dataclass(frozen=True, slots=True)
class AbsaSentence:
    domain: str
    text: str
    aspects: tuple[GoldAspect, ...]
    language: str = "en"


def absa_dir(data_dir: Path) -> Path:
    return data_dir / "absa"


def available(data_dir: Path) -> bool:
    return all((absa_dir(data_dir) / d / "train.jsonl").is_file() for d in DOMAINS)


def is_heldout(text: str, share: float = HELDOUT_SHARE) -> bool:
    digest = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16)
    return digest < share * 2**32


def _read(path: Path, domain: str) -> Iterator[tuple[str, GoldAspect]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AbsaDataError(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, start, end = str(row["text"]), int(row["start"]), int(row["end"])
            sentiment = str(row["sentiment"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AbsaDataError(f"{path}:{number}: {exc!r}") from None
        if sentiment not in LABELS:
            raise AbsaDataError(f"{path}:{number}: unknown sentiment {sentiment!r}")
        if not 0 <= start < end <= len(text) or text[start:end] != row.get("aspect",
                                                                          text[start:end]):
            raise AbsaDataError(f"{path}:{number}: span [{start}, {end}) does not hold "
                                f"{row.get('aspect')!r}")
        yield text, GoldAspect(start, end, text[start:end], sentiment)


def load_domain(data_dir: Path, domain: str, split: AbsaSplit = "all") -> list[AbsaSentence]:
    """Sentences of ``domain`` in file order, their aspects in offset order."""
    path = absa_dir(data_dir) / domain / "train.jsonl"
    grouped: dict[str, list[GoldAspect]] = {}
    for text, aspect in _read(path, domain):
        grouped.setdefault(text, []).append(aspect)
    out = []
    for text, aspects in grouped.items():
        if split != "all" and is_heldout(text) != (split == "heldout"):
            continue
        unique = sorted({(a.start, a.end): a for a in aspects}.values(),
                        key=lambda a: (a.start, a.end))
        out.append(AbsaSentence(domain, text, tuple(unique)))
    return out


def load_absa(data_dir: Path, split: AbsaSplit = "all",
              domains: Sequence[str] = DOMAINS) -> list[AbsaSentence]:
    if not available(data_dir):
        raise AbsaDataError(f"no ABSA data under {absa_dir(data_dir)} "
                            f"(expected {', '.join(d + '/train.jsonl' for d in DOMAINS)})")
    return [s for d in domains for s in load_domain(data_dir, d, split)]
