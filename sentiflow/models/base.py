"""The contract every fast-tier classifier backend implements.

The rest of the system (the classifier actor, evaluation, calibration) talks to backends only
through :class:`SentimentBackend`, so the embedded default and a Hugging Face checkpoint are
interchangeable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Label = Literal["negative", "neutral", "positive"]

#: Column order of every probability matrix a backend returns.
LABELS: Final[tuple[Label, Label, Label]] = ("negative", "neutral", "positive")

Probabilities = npt.NDArray[np.float32]
"""Array of shape ``(n_texts, 3)``, rows summing to 1, columns in :data:`LABELS` order."""


@runtime_checkable
class SentimentBackend(Protocol):
    """A fast-tier classifier.

    ``predict_proba`` is synchronous and may block for a while (a GPU forward pass): callers
    that live on an event loop run it in a worker thread. Implementations must be safe to call
    from one thread at a time; they need not be re-entrant.
    """

    @property
    def name(self) -> str:
        """Model family / identifier, e.g. ``"sentiflow-linear"`` or a checkpoint id."""
        ...

    @property
    def version(self) -> str:
        """Version of the loaded artifact (ModelVersion.version_id for the embedded model)."""
        ...

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        """Calibrated class probabilities for each text; ``languages`` aligns with ``texts``."""
        ...


@runtime_checkable
class NormalizedInputBackend(SentimentBackend, Protocol):
    """A backend whose own first step is :func:`~sentiflow.models.preprocess.normalize_batch`
    and that can take texts already through it: the pipeline normalises a post once, in the
    language stage, and the classifier hands that on (for the embedded model the second
    normalisation was ~2.5 % of the event loop's samples in a py-spy profile of the node at
    833 requests/s)."""

    def predict_proba_normalized(self, normalized: Sequence[str], languages: Sequence[str]
                                 ) -> Probabilities:
        """:meth:`predict_proba` of texts that ``normalize_batch`` returned."""
        ...


def is_lightweight(backend: object) -> bool:
    """True for a backend that declares ``lightweight = True``: pure CPU code that scores a
    small batch in well under a millisecond, with no accelerator, native thread pool or I/O.
    The classifier may run such a backend's small batches on the event loop rather than pay a
    worker thread's round trip (sentiflow/runtime/offload.py); any other backend always runs
    in a worker thread. An optional attribute, not a protocol member: a custom backend that
    says nothing is treated as heavy."""
    return getattr(backend, "lightweight", False) is True
