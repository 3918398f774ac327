"""Micro-batching shared by the classifier and the result sink.

A :class:`MicroBatch` collects messages until their item count reaches ``max_items`` or
``max_wait`` has passed since the first one, whichever comes first. ``max_wait == 0`` means
*natural batching*: flush as soon as the actor's mailbox runs dry, so that a lone request goes
out at once and, under load, whatever queued while the previous flush ran goes out together.

The batch is plain state owned by one actor (no task, no lock): the actor calls :meth:`add`
from ``receive``, arms a timer when :meth:`add` says so, and flushes when told to.
:class:`MicroBatchingActor` is that loop written once for every batching stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

from sentiflow.runtime import Actor, Priority

T = TypeVar("T")
M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class FlushTick:
    """Timer message an actor sends itself; stale ticks (older generation) are ignored."""

    generation: int


class MicroBatch(Generic[T]):
    __slots__ = ("_items", "_size", "generation", "max_items", "max_wait")

    def __init__(self, max_items: int, max_wait: float) -> None:
        if max_items < 1 or max_wait < 0:
            raise ValueError("max_items must be >= 1 and max_wait >= 0")
        self.max_items = max_items
        self.max_wait = max_wait
        self._items: list[T] = []
        self._size = 0
        #: Bumped at every take(): a tick armed for an earlier batch is recognisably stale.
        self.generation = 0

    def __len__(self) -> int:
        return self._size

    def add(self, item: T, size: int) -> bool:
        """Add ``item`` (worth ``size`` posts). True when it opened a new batch (arm a timer)."""
        opened = not self._items
        self._items.append(item)
        self._size += size
        return opened

    @property
    def full(self) -> bool:
        return self._size >= self.max_items

    def due(self, tick: FlushTick) -> bool:
        """True when ``tick`` belongs to the batch now collecting (not a stale one)."""
        return tick.generation == self.generation and bool(self._items)

    def take(self) -> list[T]:
        items, self._items, self._size = self._items, [], 0
        self.generation += 1
        return items


class MicroBatchingActor(Actor[M | FlushTick], Generic[M]):
    """An actor that collects its messages into a :class:`MicroBatch` and processes them in one
    go. Subclasses say how many posts a message is worth (:meth:`batch_size_of`) and what a flush
    does (:meth:`flush_batch`); the flush policy (full batch, timer, natural batching) and the
    drain on an orderly stop live here once.
    """

    def __init__(self, *, max_batch: int, max_wait_s: float) -> None:
        self._batch: MicroBatch[M] = MicroBatch(max_batch, max_wait_s)

    def batch_size_of(self, message: M) -> int:
        """How many posts ``message`` adds to the batch."""
        raise NotImplementedError

    async def flush_batch(self, messages: list[M]) -> None:
        """Process the collected ``messages`` (arrival order)."""
        raise NotImplementedError

    async def receive(self, message: M | FlushTick) -> None:
        batch = self._batch
        if isinstance(message, FlushTick):
            if batch.due(message):
                await self.flush_batch(batch.take())
            return
        opened = batch.add(message, self.batch_size_of(message))
        if batch.full or (batch.max_wait == 0 and self.context.ref.mailbox_depth == 0):
            await self.flush_batch(batch.take())
        elif opened and batch.max_wait > 0:
            self.context.start_soon(self._tick, batch.generation)

    async def _tick(self, generation: int) -> None:
        await anyio.sleep(self._batch.max_wait)
        await self.context.ref.tell(FlushTick(generation), priority=Priority.REALTIME)

    async def stopped(self) -> None:
        """Process what was collected but not yet flushed: an orderly stop drains (upstream
        stages stop first, so nothing more arrives)."""
        if len(self._batch):
            await self.flush_batch(self._batch.take())
