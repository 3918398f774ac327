"""A bounded, multi-lane mailbox: the only queue between actors.

Why hand-written rather than ``anyio.create_memory_object_stream``: we need several priority
lanes sharing ONE capacity bound, a non-blocking ``try_put``, and a per-message cost of a few
deque operations (no anyio primitive is created while the mailbox is neither empty nor full).

Semantics:
- ``capacity`` bounds the number of queued items across all lanes together.
- Lanes are served strictly by priority (``Priority.REALTIME`` first, then ``NORMAL``, then
  ``BATCH``); FIFO within a lane.
- A producer that finds the mailbox full waits; when a slot frees up, the waiting producer of
  the most urgent lane (FIFO among equals) gets its item moved into the mailbox directly, so a
  slot can never be stolen from a waiter and waiting producers are served in order.
- Single consumer (the actor's loop); any number of producers, all on one event loop.
- A put that is cancelled after its item was handed over still raises the cancellation, but the
  item is delivered (the pipeline is at-least-once anyway).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Generic, Protocol, TypeVar

from sentiflow.runtime.errors import MailboxClosed

T = TypeVar("T")


class Priority(IntEnum):
    """Mailbox lane. Lower value is served first."""

    REALTIME = 0
    NORMAL = 1
    BATCH = 2


_LANES = len(Priority)


class _Event(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[object]: ...


def native_event_factory() -> Callable[[], _Event]:
    """The running backend's own Event class. Why not ``anyio.Event``: it looks the backend
    up on every construction, which the mailbox does on every wait (measured in bench/).
    Both native events honour anyio cancel scopes (asyncio: task.cancel(); trio: native)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: anyio's only other backend is trio
        import trio

        return trio.Event
    return asyncio.Event


class _Waiter(Generic[T]):
    """A producer waiting for room; ``event`` is set once its item is in the mailbox."""

    __slots__ = ("delivered", "event", "item", "lane")

    def __init__(self, item: T, lane: int, event: _Event) -> None:
        self.item = item
        self.lane = lane
        self.delivered = False
        self.event = event


class Mailbox(Generic[T]):
    """Bounded priority mailbox. Items must not be ``None`` (``get_nowait``'s "empty")."""

    __slots__ = ("_closed", "_getter", "_lanes", "_new_event", "_size", "_waiters", "_waiting",
                 "capacity", "path")

    def __init__(self, capacity: int, *, path: str = "") -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.path = path
        self._lanes: tuple[deque[T], ...] = tuple(deque() for _ in range(_LANES))
        self._waiters: tuple[deque[_Waiter[T]], ...] = tuple(deque() for _ in range(_LANES))
        self._waiting = 0
        self._size = 0
        self._getter: _Event | None = None
        self._closed = False
        self._new_event: Callable[[], _Event] | None = None  # found on the first wait

    def __len__(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def lane_depths(self) -> tuple[int, ...]:
        return tuple(len(lane) for lane in self._lanes)

    # -- producers ---------------------------------------------------------------------------

    def try_put(self, item: T, priority: int = Priority.NORMAL) -> bool:
        """Enqueue without waiting; False when full. Raises ``MailboxClosed`` once closed."""
        if self._closed:
            raise MailboxClosed(self.path, "mailbox is closed")
        if self._size >= self.capacity or self._waiting:
            return False
        self._lanes[priority].append(item)
        self._size += 1
        getter = self._getter
        if getter is not None:
            self._getter = None
            getter.set()
        return True

    def put_front(self, item: T, priority: int = Priority.NORMAL) -> bool:
        """Re-queue ``item`` at the head of its lane (redelivery after a crash). Refused (False)
        when closed or full: the bound holds even here."""
        if self._closed or self._size >= self.capacity:
            return False
        self._lanes[priority].appendleft(item)
        self._size += 1
        self.wake()
        return True

    async def put(self, item: T, priority: int = Priority.NORMAL) -> None:
        """Enqueue, waiting while the mailbox is full (backpressure)."""
        if self.try_put(item, priority):
            return
        waiter = _Waiter(item, priority, self._event())
        self._waiters[priority].append(waiter)
        self._waiting += 1
        try:
            await waiter.event.wait()
        except BaseException:
            if not waiter.event.is_set():
                self._waiters[priority].remove(waiter)
                self._waiting -= 1
            raise
        if not waiter.delivered:
            raise MailboxClosed(self.path, "mailbox closed while waiting for room")

    # -- the consumer ------------------------------------------------------------------------

    def get_nowait(self) -> T | None:
        """Dequeue the most urgent item, or ``None`` when empty."""
        if not self._size:
            return None
        for lane in self._lanes:
            if lane:
                item = lane.popleft()
                break
        else:  # pragma: no cover - size and lanes always agree
            raise AssertionError("mailbox size out of sync")
        if self._waiting:
            self._admit_waiter()
        else:
            self._size -= 1
        return item

    async def wait(self) -> None:
        """Return once an item is available or the mailbox was closed or woken."""
        if self._size or self._closed:
            return
        event = self._event()
        self._getter = event
        try:
            await event.wait()
        finally:
            if self._getter is event:
                self._getter = None

    async def get(self) -> T:
        """Dequeue, waiting while empty. Raises ``MailboxClosed`` when closed and empty."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self._closed:
                raise MailboxClosed(self.path, "mailbox is closed and empty")
            await self.wait()

    def wake(self) -> None:
        """Wake the consumer if it is waiting (used to make the actor loop re-check flags)."""
        getter = self._getter
        if getter is not None:
            self._getter = None
            getter.set()

    # -- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Refuse new items; waiting producers get ``MailboxClosed``. Queued items stay."""
        self._closed = True
        for waiters in self._waiters:
            while waiters:
                waiter = waiters.popleft()
                waiter.event.set()  # not delivered: the producer raises MailboxClosed
        self._waiting = 0
        self.wake()

    def reopen(self) -> None:
        """Accept messages again (an actor that was stopped for good is never reopened)."""
        self._closed = False

    def drain_nowait(self) -> list[T]:
        """Remove and return every queued item, most urgent lane first."""
        items: list[T] = []
        while (item := self.get_nowait()) is not None:
            items.append(item)
        return items

    def _event(self) -> _Event:
        if self._new_event is None:
            self._new_event = native_event_factory()
        return self._new_event()

    def _admit_waiter(self) -> None:
        """A slot freed up: move the most urgent waiting producer's item in (size unchanged)."""
        for waiters in self._waiters:
            if waiters:
                waiter = waiters.popleft()
                self._waiting -= 1
                self._lanes[waiter.lane].append(waiter.item)
                waiter.delivered = True
                waiter.event.set()
                return
        self._size -= 1  # pragma: no cover - only called when someone waits
