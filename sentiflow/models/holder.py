"""ModelHolder: the served model behind one reference, swapped atomically on promotion.

A classifier actor calls its holder once per batch (it is the actor's ``BackendSource``) and
keeps the returned backend for the whole batch, labels included (``model_used`` comes from the
same object). Swapping replaces the reference in one assignment, so a batch already computing
finishes on the old model, the next batch runs on the new one, and no request is dropped,
re-run or answered with a mix of two models. No lock is needed for that: rebinding an attribute
is atomic, and the old backend stays alive while a batch still holds it.

Calls *into* the served backend are another matter: the SentimentBackend protocol allows one
thread at a time (a Hugging Face fast tokenizer raises "Already borrowed" when two threads use
it), and a holder has several callers (its classifier and the aspect workers). ``calls`` is the
one lock they all take around ``predict_proba``; :func:`call_lock` finds it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sentiflow.models.base import SentimentBackend


@dataclass(frozen=True, slots=True)
class Swap:
    """One replacement of the served model."""

    old_version: str
    new_version: str
    at: float  # time.time()


class ModelHolder:
    """Holds the backend one classifier serves; callable, so it *is* a ``BackendSource``."""

    def __init__(self, backend: SentimentBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()  # serialises swappers, never readers
        #: Held by whoever runs ``predict_proba`` on this holder's backend (see module doc).
        self.calls = threading.Lock()
        self.swaps: list[Swap] = []

    def __call__(self) -> SentimentBackend:
        return self._backend

    @property
    def current(self) -> SentimentBackend:
        return self._backend

    @property
    def version(self) -> str:
        return self._backend.version

    def swap(self, backend: SentimentBackend) -> SentimentBackend:
        """Serve ``backend`` from the next batch on; returns the one it replaces."""
        with self._lock:
            old = self._backend
            self._backend = backend
            self.swaps.append(Swap(old.version, backend.version, time.time()))
            return old


def call_lock(source: object) -> threading.Lock:
    """The lock serialising calls into ``source``'s backend: a holder's shared ``calls``, or a
    lock of the caller's own for any other source (nobody else calls through it)."""
    return source.calls if isinstance(source, ModelHolder) else threading.Lock()
