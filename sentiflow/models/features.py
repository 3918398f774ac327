"""Hashed word and character n-gram features, computed for a whole batch with numpy.

Why hand-written: scikit-learn's ``HashingVectorizer`` builds n-grams in pure Python (~300 us
for one tweet with char 1-5 grams), which alone would cap the embedded model far below its
20,000 texts/s/core target. Here every n-gram of every text in a batch is hashed by a handful
of vectorised numpy operations:

* the batch is joined (each text padded with one space) and decoded to code points once;
* a prefix polynomial hash ``H[k] = sum_{j<k} c_j P^j (mod 2^64)`` gives the hash of any
  substring ``[a, b)`` in O(1) as ``(H[b] - H[a]) * P^-a`` (P is odd, so invertible mod 2^64);
* character n-grams are all substrings of lengths ``char_orders``; words are the substrings
  between spaces; word bigrams combine neighbouring word hashes;
* a Fibonacci multiply keeps the top ``bits`` bits as the feature index (the top bits of the
  product depend on every bit of the hash; the low bits of a polynomial hash do not).

The same function produces the sparse training matrix and the serving-time indices, so the two
cannot disagree. An occurrence of feature ``f`` in text ``d`` is worth ``idf[f] / norm_d`` with
``norm_d = sqrt(sum of idf^2 over d's occurrences)`` (an L2 norm that counts repeats once per
occurrence, so it needs no de-duplication); without idf every occurrence weighs ``1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

_P: Final = 0x100000001B3  # FNV-1a 64-bit prime (odd)
_P_INV: Final = pow(_P, -1, 2**64)
_FIB: Final = np.uint64(0x9E3779B97F4A7C15)
_PAIR: Final = np.uint64(0xC2B2AE3D27D4EB4F)
_SPACE: Final = 32

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """What the featuriser extracts; stored with the model so serving matches training."""

    bits: int = 20
    char_orders: tuple[int, ...] = (1, 2, 3, 4, 5)
    word_unigrams: bool = True
    word_bigrams: bool = True
    language_feature: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"bits": self.bits, "char_orders": list(self.char_orders),
                "word_unigrams": self.word_unigrams, "word_bigrams": self.word_bigrams,
                "language_feature": self.language_feature}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FeatureConfig:
        return cls(bits=int(obj["bits"]), char_orders=tuple(int(n) for n in obj["char_orders"]),
                   word_unigrams=bool(obj["word_unigrams"]),
                   word_bigrams=bool(obj["word_bigrams"]),
                   language_feature=bool(obj["language_feature"]))


@dataclass(slots=True)
class Occurrences:
    """Feature indices of a batch laid out position-major: ``slots[p, j]`` is the j-th feature
    starting at character position ``p`` (char n-gram of each order, word, word bigram) or
    ``null`` where there is none. Rows are grouped by text, in order, which lets the serving
    path sum per text with one ``np.add.reduceat`` instead of a scatter."""

    slots: I64  # (n_positions, n_slots)
    doc_starts: I64  # first position of each text
    lang: I64 | None  # one feature per text, or None
    null: int  # index of the all-zero row
    n_docs: int

    def pairs(self) -> tuple[I64, I64]:
        """(text, feature) for every real occurrence, for building a sparse matrix."""
        lengths = np.diff(np.append(self.doc_starts, len(self.slots)))
        doc = np.repeat(np.arange(self.n_docs, dtype=np.int64), lengths)
        doc2 = np.repeat(doc, self.slots.shape[1])
        idx = self.slots.ravel()
        keep = idx != self.null
        doc2, idx = doc2[keep], idx[keep]
        if self.lang is not None:
            doc2 = np.concatenate([doc2, np.arange(self.n_docs, dtype=np.int64)])
            idx = np.concatenate([idx, self.lang])
        return doc2, idx


def _salt(tag: int) -> np.uint64:
    return np.uint64((tag * 0xD6E8FEB86659FD93) & 0xFFFFFFFFFFFFFFFF)


@dataclass
class HashedNgramFeaturizer:
    config: FeatureConfig = field(default_factory=FeatureConfig)
    #: Inverse document frequency per feature (set by :meth:`fit_idf`), or None for plain counts.
    idf: npt.NDArray[np.float32] | None = None
    _pow: U64 = field(default_factory=lambda: np.ones(1, dtype=np.uint64), repr=False)
    _inv: U64 = field(default_factory=lambda: np.ones(1, dtype=np.uint64), repr=False)
    #: Per-call constants, made once: numpy scalars cost ~1 us each to build, which is most of
    #: the cost of featurising one short text (the API's common case).
    _salts: dict[int, np.uint64] = field(default_factory=dict, repr=False)
    _languages: dict[str, int] = field(default_factory=dict, repr=False)
    _shift: np.uint64 = field(default=np.uint64(0), repr=False)

    def __post_init__(self) -> None:
        self._shift = np.uint64(64 - self.config.bits)

    @property
    def n_features(self) -> int:
        return 1 << self.config.bits

    def _powers(self, n: int) -> tuple[U64, U64]:
        if len(self._pow) < n:
            size = max(n, 2 * len(self._pow))
            p = np.full(size, _P, dtype=np.uint64)
            p[0] = 1
            q = np.full(size, _P_INV, dtype=np.uint64)
            q[0] = 1
            self._pow = np.cumprod(p, dtype=np.uint64)
            self._inv = np.cumprod(q, dtype=np.uint64)
        return self._pow[:n], self._inv[:n]

    def _index(self, h: U64, tag: int) -> I64:
        salt = self._salts.get(tag)
        if salt is None:
            salt = self._salts[tag] = _salt(tag)
        mixed = h + salt  # one temporary, updated in place (h itself may be reused)
        mixed *= _FIB
        mixed >>= self._shift
        return mixed.astype(np.int64)

    def language_index(self, language: str) -> int:
        index = self._languages.get(language)
        if index is None:
            h = np.frombuffer(language.encode("utf-8").ljust(8, b"\0")[:8], dtype=np.uint64)
            index = self._languages[language] = int(self._index(h, 99)[0])
        return index

    def occurrences(self, texts: Sequence[str], languages: Sequence[str] | None = None
                    ) -> Occurrences:
        """Hashed feature occurrences for already-normalised ``texts``."""
        n_docs = len(texts)
        null = self.n_features
        cfg = self.config
        n_slots = len(cfg.char_orders) + int(cfg.word_unigrams) + int(cfg.word_bigrams)
        if n_docs == 0:
            empty = np.zeros(0, dtype=np.int64)
            return Occurrences(np.zeros((0, n_slots), dtype=np.int64), empty, None, null, 0)
        joined = " " + "  ".join(texts) + " "
        codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        n = len(codes)
        lengths = np.fromiter((len(t) + 2 for t in texts), dtype=np.int64, count=n_docs)
        ends = np.cumsum(lengths)
        end_of = np.repeat(ends, lengths)
        pw, inv = self._powers(n + 1)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(codes * pw[:n], out=prefix[1:])

        slots = np.full((n, n_slots), null, dtype=np.int64)
        positions = np.arange(n, dtype=np.int64)
        for j, order in enumerate(cfg.char_orders):
            a = positions[: n - order + 1]
            a = a[a + order <= end_of[: n - order + 1]]
            h = (prefix[a + order] - prefix[a]) * inv[a]
            slots[a, j] = self._index(h, order)

        j = len(cfg.char_orders)
        if cfg.word_unigrams or cfg.word_bigrams:
            space = codes == _SPACE
            starts = np.flatnonzero(space[:-1] & ~space[1:]) + 1
            stops = np.flatnonzero(~space[:-1] & space[1:]) + 1
            wh = (prefix[stops] - prefix[starts]) * inv[starts]
            if cfg.word_unigrams:
                slots[starts, j] = self._index(wh, 50)
                j += 1
            if cfg.word_bigrams and len(wh) > 1:
                # Words never span texts (each is padded with spaces); a pair does when the
                # second word starts in the next text.
                same = end_of[starts[1:]] == end_of[starts[:-1]]
                pair = wh[:-1][same] * _PAIR + wh[1:][same]
                slots[starts[:-1][same], j] = self._index(pair, 51)

        lang = None
        if cfg.language_feature and languages is not None:
            lang_idx = {lg: self.language_index(lg) for lg in set(languages)}
            lang = np.fromiter((lang_idx[lg] for lg in languages), dtype=np.int64,
                               count=n_docs)
        return Occurrences(slots, ends - lengths, lang, null, n_docs)

    def score_table(self, weights: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``(n_features + 1, n_classes + 1)`` table for :meth:`scores`: per feature its class
        weights (already times idf) and its squared idf (1 without idf); the last row is the
        zero row that ``null`` slots point to. One gather then fetches all a feature needs."""
        k = weights.shape[1]
        table = np.zeros((self.n_features + 1, k + 1), dtype=np.float32)
        table[:-1, :k] = weights
        table[:-1, k] = 1.0 if self.idf is None else self.idf * self.idf
        return table

    def fit_idf(self, texts: Sequence[str], languages: Sequence[str] | None = None) -> None:
        """Set smoothed idf, ``log((1 + n) / (1 + df)) + 1``, from a training corpus."""
        self.idf = None
        counts = self.transform(texts, languages)  # duplicates summed: one entry per (doc, f)
        df = np.bincount(counts.indices, minlength=self.n_features)
        n = counts.shape[0]
        self.idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)

    def transform(self, texts: Sequence[str], languages: Sequence[str] | None = None
                  ) -> sp.csr_matrix:
        """Sparse ``(n_texts, 2**bits)`` matrix of the same features (for training)."""
        occ = self.occurrences(texts, languages)
        doc, idx = occ.pairs()
        sq: npt.NDArray[np.float64]
        value: npt.NDArray[np.float32]
        if self.idf is None:
            sq = np.bincount(doc, minlength=occ.n_docs).astype(np.float64)
            value = np.ones(len(idx), dtype=np.float32)
        else:
            value = self.idf[idx]
            sq = np.bincount(doc, weights=value * value, minlength=occ.n_docs).astype(np.float64)
        norm = (1.0 / np.sqrt(np.maximum(sq, 1e-12))).astype(np.float32)
        m = sp.csr_matrix((value * norm[doc], (doc, idx)),
                          shape=(occ.n_docs, self.n_features), dtype=np.float32)
        m.sum_duplicates()
        return m

    def scores(self, occ: Occurrences, table: npt.NDArray[np.float32],
               bias: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Linear scores ``X @ weights + bias`` without building X (the serving path).

        ``table`` comes from :meth:`score_table`. Equal to ``transform(...) @ weights`` (the
        tests check it).
        """
        k = table.shape[1] - 1
        if occ.n_docs == 0:
            return np.zeros((0, k), dtype=np.float32)
        # np.take(axis=0) is ~8x faster than fancy indexing here; texts are contiguous runs of
        # slots, so one reduceat sums each text (every text has >= 3 positions: no empty run).
        gathered = np.take(table, occ.slots.ravel(), axis=0)
        sums = np.add.reduceat(gathered, occ.doc_starts * occ.slots.shape[1], axis=0)
        if occ.lang is not None:
            sums += np.take(table, occ.lang, axis=0)
        out = sums[:, :k] / np.sqrt(np.maximum(sums[:, k:], 1e-12))
        out += bias
        return out.astype(np.float32, copy=False)
