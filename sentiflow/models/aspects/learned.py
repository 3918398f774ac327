"""The learned aspect-term extractor: a linear-chain CRF over BIO tags (python-crfsuite).

Why a CRF: it is the classic strong, CPU-cheap model for SemEval-2014 aspect-term extraction
(the task's best systems were CRFs), trains in seconds on the ~2,800 training sentences and tags
a sentence in tens of microseconds. python-crfsuite is a maintained binding of the C library;
writing Viterbi and L-BFGS training by hand would be neither faster nor better.

Token features: the word, its shape, affixes, its neighbours (+-2) and whether the keyword
lists (:class:`~sentiflow.models.aspects.lexicon.KeywordExtractor`) cover it, so the tagger
learns when to trust the lists. Trained on English reviews only: the analyser uses it for the
languages in :attr:`CrfExtractor.languages` and the lists elsewhere.

A :class:`pycrfsuite.Tagger` is not thread-safe: each analyser opens its own from the model's
bytes (:meth:`CrfModel.extractor`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pycrfsuite  # type: ignore[import-untyped]

from sentiflow.models.aspects.lexicon import KeywordExtractor
from sentiflow.models.aspects.text import Token, tokenize
from sentiflow.models.aspects.types import AspectMention

Features = list[str]


def _shape(word: str) -> str:
    out: list[str] = []
    for ch in word[:6]:
        kind = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != kind:
            out.append(kind)
    return "".join(out)


def token_features(tokens: Sequence[Token], lexicon_tags: Sequence[str]) -> list[Features]:
    """One feature list per token (see module docstring)."""
    words = [t.text.lower() for t in tokens]
    n = len(tokens)
    out: list[Features] = []
    for i, tok in enumerate(tokens):
        w = words[i]
        f = [f"w={w}", f"s3={w[-3:]}", f"s2={w[-2:]}", f"p3={w[:3]}", f"sh={_shape(tok.text)}",
             f"lex={lexicon_tags[i]}"]
        if tok.text[:1].isupper():
            f.append("title")
        if not tok.text[:1].isalnum():
            f.append("punct")
        for d in (-2, -1, 1, 2):
            j = i + d
            if 0 <= j < n:
                f.append(f"w{d:+d}={words[j]}")
                f.append(f"lex{d:+d}={lexicon_tags[j]}")
            else:
                f.append(f"w{d:+d}=<pad>")
        if i > 0:
            f.append(f"b-1={words[i - 1]}|{w}")
        if i < n - 1:
            f.append(f"b+1={w}|{words[i + 1]}")
        out.append(f)
    return out


def lexicon_bio(tokens: Sequence[Token], mentions: Sequence[AspectMention]) -> list[str]:
    """Each token's tag under the keyword lists: B / I (inside a list match) or O."""
    tags = ["O"] * len(tokens)
    for m in mentions:
        inside = [i for i, t in enumerate(tokens) if t.start < m.end and m.start < t.end]
        for k, i in enumerate(inside):
            tags[i] = "B" if k == 0 else "I"
    return tags


def gold_bio(tokens: Sequence[Token], spans: Sequence[tuple[int, int]]) -> list[str]:
    """BIO labels of ``tokens`` for gold character spans (a token overlapping a span is in)."""
    return lexicon_bio(tokens, [AspectMention(a, b, "", None) for a, b in spans])


def bio_spans(tokens: Sequence[Token], tags: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of B(I*) runs (an I without a B opens a span too)."""
    spans: list[tuple[int, int]] = []
    current: list[int] | None = None
    for tok, tag in zip(tokens, tags, strict=True):
        if tag == "B" or (tag == "I" and current is None):
            if current is not None:
                spans.append((current[0], current[1]))
            current = [tok.start, tok.end]
        elif tag == "I" and current is not None:
            current[1] = tok.end
        else:
            if current is not None:
                spans.append((current[0], current[1]))
            current = None
    if current is not None:
        spans.append((current[0], current[1]))
    return spans


@dataclass(frozen=True, slots=True)
class CrfModel:
    """A trained tagger's bytes plus the languages it was trained on."""

    data: bytes
    languages: tuple[str, ...] = ("en",)

    def extractor(self, lexicon: KeywordExtractor) -> CrfExtractor:
        return CrfExtractor(self, lexicon)

    def save(self, path: Path) -> None:
        path.write_bytes(self.data)

    @classmethod
    def load(cls, path: Path, languages: tuple[str, ...] = ("en",)) -> CrfModel:
        return cls(path.read_bytes(), languages)


def train_crf(texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
              lexicon: KeywordExtractor, language: str = "en", *, c1: float = 0.05,
              c2: float = 0.01, max_iterations: int = 150) -> CrfModel:
    """Fit a BIO tagger on ``texts`` with gold aspect ``spans`` (character offsets)."""
    trainer = pycrfsuite.Trainer(verbose=False)
    for text, gold in zip(texts, spans, strict=True):
        tokens = tokenize(text)
        if not tokens:
            continue
        lex = lexicon_bio(tokens, lexicon.extract(text, language))
        trainer.append(token_features(tokens, lex), gold_bio(tokens, gold))
    trainer.set_params({"c1": c1, "c2": c2, "max_iterations": max_iterations,
                        "feature.possible_transitions": True})
    fd, name = tempfile.mkstemp(suffix=".crfsuite")
    os.close(fd)
    try:
        trainer.train(name)
        return CrfModel(Path(name).read_bytes(), (language,))
    finally:
        os.unlink(name)


class CrfExtractor:
    """Aspect terms tagged by the CRF, mapped to categories through the keyword lists."""

    source = "learned"

    def __init__(self, model: CrfModel, lexicon: KeywordExtractor) -> None:
        self.model = model
        self.lexicon = lexicon
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open_inmemory(model.data)

    @property
    def languages(self) -> tuple[str, ...]:
        return self.model.languages

    def extract(self, text: str, language: str) -> list[AspectMention]:
        tokens = tokenize(text)
        if not tokens:
            return []
        lex_mentions = self.lexicon.extract(text, language)
        tags = self._tagger.tag(token_features(tokens, lexicon_bio(tokens, lex_mentions)))
        out = []
        for start, end in bio_spans(tokens, tags):
            term = text[start:end]
            out.append(AspectMention(start, end, term, self.lexicon.category_of(term, language),
                                     "learned"))
        return out
