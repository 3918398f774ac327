"""Per-partition completion tracking: which offset may be committed.

Posts of one partition are fetched in offset order but become durable out of order (several
submissions in flight, retries, dead letters). Kafka's committed offset means "everything below
is done", so it may only advance over a *contiguous* run of completed offsets: with 10, 11, 12
fetched and 10 and 12 durable, the commit position is 11 (12 is re-read after a crash; the
idempotent upsert absorbs it). Offsets need not be consecutive (compaction, transaction
markers): only the fetched ones count.

Pure bookkeeping, no I/O and no event loop, so it is tested exhaustively on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class PartitionProgress:
    """One partition: fetched offsets in order, which of them are done, what to commit."""

    __slots__ = ("_done", "_last_fetched", "_pending", "committed", "position")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._last_fetched = -1
        #: Next offset to read once everything durable so far is committed (-1: nothing yet).
        self.position = -1
        #: The last position successfully committed to Kafka (-1: none by this owner).
        self.committed = -1

    def fetched(self, offset: int) -> bool:
        """Track ``offset``; False (ignore the record) if it is not past the last one."""
        if offset <= self._last_fetched:
            return False
        self._last_fetched = offset
        self._pending.append(offset)
        return True

    def done(self, offset: int) -> None:
        """``offset`` is durable (or dead-lettered); idempotent; unknown offsets ignored."""
        if self._pending and self._pending[0] <= offset <= self._last_fetched:
            self._done.add(offset)

    @property
    def outstanding(self) -> int:
        """Fetched offsets not yet done."""
        return len(self._pending) - len(self._done)

    def advance(self) -> int | None:
        """Move the durable position over the contiguous done prefix; the position to commit
        (last contiguous done offset + 1) if it is ahead of the last successful commit."""
        pending, done = self._pending, self._done
        while pending and pending[0] in done:
            done.discard(head := pending.popleft())
            self.position = head + 1
        return self.position if self.position > self.committed else None


class OffsetTracker(Generic[P]):
    """Progress of every partition a reader owns, keyed by its partition type (aiokafka's
    ``TopicPartition`` in production). Each assignment gets a new *generation* so that work
    finishing after its partition was revoked (and maybe re-assigned) is recognised as stale."""

    def __init__(self) -> None:
        self._parts: dict[P, PartitionProgress] = {}
        self._generation: dict[P, int] = {}
        self._counter = 0

    def assign(self, partitions: Iterable[P]) -> None:
        for partition in partitions:
            if partition not in self._parts:
                self._counter += 1
                self._parts[partition] = PartitionProgress()
                self._generation[partition] = self._counter

    def revoke(self, partitions: Iterable[P]) -> None:
        for partition in partitions:
            self._parts.pop(partition, None)
            self._generation.pop(partition, None)

    def generation(self, partition: P) -> int | None:
        return self._generation.get(partition)

    def fetched(self, partition: P, offset: int) -> int | None:
        """Track a fetched record; its generation token, or None to skip the record (already
        tracked, or the partition is not assigned)."""
        part = self._parts.get(partition)
        if part is None or not part.fetched(offset):
            return None
        return self._generation[partition]

    def done(self, partition: P, offset: int, generation: int) -> bool:
        """Mark durable; False (ignored) if the partition was revoked since the fetch."""
        if self._generation.get(partition) != generation:
            return False
        self._parts[partition].done(offset)
        return True

    def outstanding(self, partitions: Iterable[P] | None = None) -> int:
        chosen = self._parts if partitions is None else partitions
        return sum(self._parts[p].outstanding for p in chosen if p in self._parts)

    def to_commit(self, partitions: Iterable[P] | None = None) -> dict[P, tuple[int, int]]:
        """``{partition: (position, generation)}`` for partitions whose durable position is
        ahead of their last successful commit."""
        chosen = list(self._parts if partitions is None else partitions)
        out: dict[P, tuple[int, int]] = {}
        for partition in chosen:
            part = self._parts.get(partition)
            if part is not None and (position := part.advance()) is not None:
                out[partition] = (position, self._generation[partition])
        return out

    def committed(self, partition: P, position: int, generation: int) -> None:
        """Record a successful commit (ignored if the partition changed hands meanwhile)."""
        if self._generation.get(partition) == generation:
            part = self._parts[partition]
            part.committed = max(part.committed, position)

    def partitions(self) -> list[P]:
        return list(self._parts)
