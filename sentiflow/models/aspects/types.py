"""Value types of the aspect step: what extraction finds and what classification adds.

Plain frozen dataclasses (no event loop, no storage types): the actor layer converts them into
:class:`~sentiflow.stores.records.AspectSentiment` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sentiflow.models.base import Label

ExtractorSource = Literal["lexicon", "learned"]


@dataclass(frozen=True, slots=True, order=True)
class AspectMention:
    """One aspect mention in a text: ``text[start:end] == term``.

    ``category`` is the taxonomy category the term maps to (``"shipping"``), or ``None`` when a
    learned extractor found a term no category covers (the term itself is then reported).
    """

    start: int
    end: int
    term: str
    category: str | None
    source: ExtractorSource = "lexicon"

    @property
    def name(self) -> str:
        """What the API reports as ``aspect``: the category, else the term (lower-cased)."""
        return self.category if self.category is not None else self.term.lower()

    def overlaps(self, other: AspectMention) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class AspectPrediction:
    """A mention plus its sentiment in its own context, with a calibrated confidence."""

    mention: AspectMention
    sentiment: Label
    confidence: float
    #: Calibrated probabilities in :data:`~sentiflow.models.base.LABELS` order.
    probabilities: tuple[float, float, float]
    #: The text the polarity model read (clause / window around the mention).
    context: str

    @property
    def name(self) -> str:
        return self.mention.name

    @property
    def span(self) -> tuple[int, int]:
        return (self.mention.start, self.mention.end)
