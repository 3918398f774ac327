"""ModelReloader: hot-swaps the served embedded model when the ``ACTIVE`` pointer moves.

Promotion and rollback only move ``models/ACTIVE`` (atomic rename), whether they happen in this
node (the retrainer) or in another process (``sentiflow retrain`` / ``sentiflow rollback``). This
actor polls the pointer every ``drift.reload_poll_s`` (and at once on :class:`Reload`), loads the
named version in a worker thread (the event loop keeps serving), and swaps it into every
classifier's :class:`~sentiflow.models.holder.ModelHolder`. A batch already computing finishes on
the old model; nothing in flight is dropped. A version that fails to load is logged and counted,
and the old model keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from sentiflow.models.embedded import load_version
from sentiflow.models.errors import ArtifactError, ModelNotFoundError
from sentiflow.models.holder import ModelHolder
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.versioning import active_version_id
from sentiflow.runtime import Actor, Priority

log = logging.getLogger("sentiflow.actors.model_reloader")


@dataclass(frozen=True, slots=True)
class Reload:
    """Check the pointer now (ask: answers the version served afterwards)."""


class ModelReloader(Actor[Reload]):
    def __init__(self, holders: Sequence[ModelHolder], models_dir: Path, *,
                 poll_s: float) -> None:
        self._holders = tuple(holders)
        self._models_dir = models_dir
        self._poll_s = poll_s

    async def started(self) -> None:
        self._swaps = self.context.metrics.counter("model_swaps")
        self._failures = self.context.metrics.counter("model_load_failures")
        self.context.start_soon(self._poll)

    async def _poll(self) -> None:
        while True:
            await anyio.sleep(self._poll_s)
            await self.context.ref.tell(Reload(), priority=Priority.REALTIME)

    async def receive(self, message: Reload) -> str | None:
        if not self._holders:
            return None
        served = self._holders[0].version
        try:
            wanted = active_version_id(self._models_dir)
        except (ModelNotFoundError, ValueError) as exc:
            log.debug("no usable ACTIVE pointer: %s", exc)
            return served
        if wanted == served:
            return served
        detector = getattr(self._holders[0].current, "detector", None)
        try:
            backend = await anyio.to_thread.run_sync(
                lambda: load_version(self._models_dir, wanted,
                                     detector if isinstance(detector, LanguageDetector) else None))
        except (ModelNotFoundError, ArtifactError, OSError, ValueError) as exc:
            self._failures.inc()
            log.error("cannot load promoted model %s (still serving %s): %s", wanted, served, exc)
            return served
        for holder in self._holders:
            holder.swap(backend)
        self._swaps.inc()
        log.warning("hot-swapped the fast tier: %s -> %s", served, wanted)
        return wanted
