"""A language-ID head for the 12 languages of the labelled data, trained with the default model.

fastText's lite model (sentiflow.models.langid) costs ~40 µs per text here, more than the whole
sentiment prediction, and it is weak exactly where the data is: romanised Hindi is never `hi`,
Malay mostly `id`. This head is a multinomial logistic regression over hashed character 1-3-grams
(2**16 buckets, a 3.4 MB table that stays in cache; mean of the n-grams' weight rows) trained on
the training splits' texts and their gold languages; it answers in ~4 µs per text in batches
and ~30 µs for a lone text (fewer numpy calls than the sentiment featuriser, whose per-call
overhead would dominate a single text). It only knows those 12 languages, so
:class:`~sentiflow.models.langid.LanguageDetector` uses it as a first opinion and asks fastText
(176 languages, ``und``) whenever the head is unsure (top probability under ``min_confidence``,
chosen on the valid splits) or the text contains a script none of the 12 languages is written in.

Pure numpy at serving time; no event loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from sentiflow.models.errors import ArtifactError

#: Letters of scripts that none of the 12 data languages is written in (Greek, Cyrillic,
#: Armenian, Hebrew, Syriac/Thaana, the Indic scripts after Devanagari, Thai/Lao, Tibetan,
#: Myanmar, Georgian, Hangul, Ethiopic, Cherokee, Khmer, Mongolian): such a text goes to fastText.
FOREIGN_SCRIPT: Final = re.compile(
    "[\u0370-\u03ff\u0400-\u052f\u0530-\u058f\u0590-\u05ff\u0700-\u07bf\u0980-\u0dff"
    "\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u10a0-\u10ff\u1100-\u11ff\u1200-\u139f"
    "\u13a0-\u13ff\u1780-\u18af\u3130-\u318f\uac00-\ud7af]")

#: Hash buckets of the head's features (2**BITS rows of weights).
BITS: Final = 16
ORDERS: Final = 3
_NULL: Final = 1 << BITS
_K: Final = np.uint64(0x100000001B3)
_FIB: Final = np.uint64(0x9E3779B97F4A7C15)
_SALTS: Final = tuple(np.uint64(s) for s in
                      (0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0))
_SHIFT: Final = np.uint64(64 - BITS)


def ngram_slots(prepared: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(slots, starts)``: per character position of the joined texts, the bucket of the 1-, 2-
    and 3-gram starting there (``2**BITS`` = none: past a text's end), and each text's first
    row. Texts are joined with NUL, which no n-gram may contain, so a text's features never
    depend on its neighbours in the batch."""
    # An empty text would leave no row for its score: it reads as one space (no evidence).
    joined = "\0".join(t or " " for t in prepared)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    c = codes.astype(np.uint64)
    ok = codes != 0
    slots = np.full((len(codes), ORDERS), _NULL, dtype=np.int64)
    h, valid = c, ok
    for j in range(ORDERS):
        if j:
            h = h[:-1] * _K + c[j:]  # a polynomial hash of the n-gram, wrapping mod 2**64
            valid = valid[:-1] & ok[j:]
        bucket = (((h + _SALTS[j]) * _FIB) >> _SHIFT).astype(np.int64)
        slots[: len(bucket), j] = np.where(valid, bucket, _NULL)
    lengths = np.fromiter((max(len(t), 1) + 1 for t in prepared), dtype=np.int64,
                          count=len(prepared))
    return slots, np.cumsum(lengths) - lengths


def ngram_matrix(prepared: Sequence[str]) -> Any:
    """The training view of the same features: ``(texts, 2**BITS)`` CSR of n-gram counts
    divided by the text's n-gram total (the mean the serving path computes)."""
    import scipy.sparse as sp

    slots, starts = ngram_slots(prepared)
    rows = np.repeat(np.arange(len(prepared), dtype=np.int64),
                     np.diff(np.append(starts, len(slots))) * ORDERS)
    idx = slots.ravel()
    keep = idx != _NULL
    rows, idx = rows[keep], idx[keep]
    totals = np.maximum(np.bincount(rows, minlength=len(prepared)), 1).astype(np.float32)
    m = sp.csr_matrix((1.0 / totals[rows], (rows, idx)), shape=(len(prepared), _NULL),
                      dtype=np.float32)
    m.sum_duplicates()
    return m


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """ISO 639-1 code (or ``und``) and the detector's probability for it. Defined here, where
    the head makes them, and re-exported by :mod:`sentiflow.models.langid` (which imports this
    module), so that head and detector answer with one type."""

    language: str
    score: float


class LanguageHead:
    """``weights``: ``(2**BITS, n_languages)``; scores are the mean of a text's n-gram rows
    plus ``bias``, softmaxed over :attr:`languages`."""

    def __init__(self, weights: npt.NDArray[np.float32], bias: npt.NDArray[np.float32],
                 languages: Sequence[str], min_confidence: float) -> None:
        if weights.shape != (_NULL, len(languages)) or bias.shape != (len(languages),):
            raise ArtifactError(f"language head weights {weights.shape} / bias {bias.shape} do "
                                f"not match {_NULL} x {len(languages)}")
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.bias = bias.astype(np.float32)
        self.languages = tuple(languages)
        self.min_confidence = float(min_confidence)
        # One gather fetches a row's class weights and a 1 that counts real n-grams; the last
        # row (the "none" slot) is all zeros.
        k = len(self.languages)
        self._table = np.zeros((_NULL + 1, k + 1), dtype=np.float32)
        self._table[:-1, :k] = self.weights
        self._table[:-1, k] = 1.0

    def probabilities(self, prepared: Sequence[str]) -> npt.NDArray[np.float32]:
        """Softmax over :attr:`languages` for texts already prepared for language ID (normalised,
        placeholders removed, cut to the detector's ``max_chars``, not empty)."""
        if not prepared:
            return np.zeros((0, len(self.languages)), dtype=np.float32)
        slots, starts = ngram_slots(prepared)
        sums = np.add.reduceat(np.take(self._table, slots.ravel(), axis=0), starts * ORDERS,
                               axis=0)
        k = len(self.languages)
        logits = sums[:, :k] / np.maximum(sums[:, k:], 1.0) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits.astype(np.float32, copy=False)

    def guess(self, prepared: Sequence[str]) -> list[LanguageGuess]:
        probs = self.probabilities(prepared)
        best = probs.argmax(axis=1)
        return [LanguageGuess(self.languages[int(k)], float(p[k]))
                for k, p in zip(best, probs, strict=True)]

    # --- persistence (inside the embedded model's version folder) ---------------------------
    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {"langid_weights": self.weights, "langid_bias": self.bias}

    def meta(self) -> dict[str, Any]:
        return {"languages": list(self.languages), "min_confidence": self.min_confidence,
                "bits": BITS, "orders": ORDERS}

    @classmethod
    def from_saved(cls, meta: dict[str, Any], data: Any) -> LanguageHead:
        """From :meth:`meta` and the arrays of :meth:`arrays` (an open ``np.load``)."""
        try:
            if int(meta["bits"]) != BITS or int(meta["orders"]) != ORDERS:
                raise ArtifactError(f"language head of {meta['bits']} bits / {meta['orders']} "
                                    f"orders; this version reads {BITS} / {ORDERS}")
            return cls(data["langid_weights"], data["langid_bias"],
                       [str(x) for x in meta["languages"]], float(meta["min_confidence"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"language head: {exc!r}") from None


def fit_language_head(prepared: Sequence[str], languages: Sequence[str], *,
                      epochs: int = 15, alpha: float = 1e-8, seed: int = 0
                      ) -> LanguageHead | None:
    """Fit the head on prepared texts and their gold languages; None when they hold fewer
    than two languages (nothing to tell apart). ``min_confidence`` is 0 until
    :func:`choose_min_confidence` sets it on held-out texts."""
    from sklearn.linear_model import SGDClassifier

    classes = sorted(set(languages))
    if len(classes) < 2:
        return None
    y = np.array([classes.index(lang) for lang in languages], dtype=np.int64)
    clf = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None,
                        average=True, random_state=seed)
    clf.fit(ngram_matrix(prepared), y)
    coef = np.asarray(clf.coef_, dtype=np.float32).T  # (n_features, n_classes), or 1 column
    bias = np.asarray(clf.intercept_, dtype=np.float32)
    if len(classes) == 2:  # binary: sigmoid(s) == softmax([0, s])[1]
        coef = np.concatenate([np.zeros_like(coef), coef], axis=1)
        bias = np.concatenate([np.zeros_like(bias), bias])
    return LanguageHead(coef, bias, classes, 0.0)


def choose_min_confidence(head: LanguageHead, prepared: Sequence[str], gold: Sequence[str],
                          fallback: Sequence[str], floor: float = 0.5) -> float:
    """The threshold, at or above ``floor``, under which the head defers to the fallback
    detector that maximises combined accuracy on held-out texts (``fallback``: that
    detector's answers for the same texts). The floor keeps the head from answering texts it
    barely prefers, which is where a language outside the 12 would land."""
    guesses = head.guess(prepared)
    best, best_acc = floor, -1.0
    for tau in np.arange(floor, 0.991, 0.01):
        hits = sum((g.language if g.score >= tau else f) == y
                   for g, f, y in zip(guesses, fallback, gold, strict=True))
        if hits > best_acc:
            best, best_acc = float(round(tau, 2)), float(hits)
    return best
