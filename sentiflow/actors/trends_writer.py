"""TrendsWriter: a ResultSink listener that turns durably written results into trend events.

It receives the sink's ``list[ResultRecord]`` after each durable write, collects them into
large inserts (``trends.writer_max_batch`` events or ``writer_max_wait_ms`` after the first:
ClickHouse wants few big inserts, not one per post) and hands each batch to the
:class:`~sentiflow.stores.trends.TrendStore`, whose blocking calls run in a worker thread, so
the event loop never waits on ClickHouse / chDB.

Losing nothing, within bounds. The sink delivers to listeners with a backpressured ``tell``, so
records are never dropped because this actor is busy: while an insert is slow or being retried
its mailbox fills and then the sink waits. A failed insert is retried with exponential backoff
(``writer_max_attempts``); the store skips ids it already counted, so a retry after an insert
that did land but reported an error counts nothing twice. Only after the last attempt is the
batch dropped from trends, logged and counted (``dropped``), instead of crashing: a restart
would not mend a full disk, and results themselves are already durable in the result store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import anyio

from sentiflow.actors.batching import MicroBatchingActor
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import SIZE_BOUNDS
from sentiflow.stores.errors import StorageClosedError, StorageError
from sentiflow.stores.records import ResultRecord
from sentiflow.stores.trends import TrendStore

log = logging.getLogger("sentiflow.actors.trends_writer")

Records = Sequence[ResultRecord]


class TrendsWriter(MicroBatchingActor[Records]):
    def __init__(self, store: TrendStore, *, max_batch: int, max_wait_s: float,
                 max_attempts: int = 8, backoff_initial_s: float = 0.2,
                 backoff_max_s: float = 10.0) -> None:
        super().__init__(max_batch=max_batch, max_wait_s=max_wait_s)
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._store = store
        self._max_attempts = max_attempts
        self._backoff = (backoff_initial_s, backoff_max_s)

    async def started(self) -> None:
        metrics = self.context.metrics
        self._inserted = metrics.counter("inserted")
        self._duplicates = metrics.counter("duplicates")
        self._failures = metrics.counter("insert_failures")
        self._dropped = metrics.counter("dropped")
        self._insert_s = metrics.histogram("insert_s")
        self._sizes = metrics.histogram("insert_batch_size", SIZE_BOUNDS)

    def batch_size_of(self, message: Records) -> int:
        return len(message)

    async def flush_batch(self, messages: list[Records]) -> None:
        records = [record for message in messages for record in message]
        if not records:
            return
        delay, ceiling = self._backoff
        for attempt in range(1, self._max_attempts + 1):
            started = time.perf_counter()
            try:
                new = await self._store.write_results(records)
            except StorageClosedError:
                break  # the node is closing the store: nothing to retry against
            except StorageError as exc:
                self._failures.inc()
                if attempt == self._max_attempts:
                    log.error("trend insert of %d events failed %d times, dropping them from "
                              "trends: %s", len(records), attempt, exc,
                              extra=post_fields([r.request_id for r in records]))
                    break
                log.warning("trend insert of %d events failed (attempt %d/%d), retrying in "
                            "%.1f s: %s", len(records), attempt, self._max_attempts, delay, exc,
                            extra=post_fields([r.request_id for r in records]))
                await anyio.sleep(delay)
                delay = min(delay * 2, ceiling)
                continue
            self._insert_s.observe(time.perf_counter() - started)
            self._sizes.observe(len(records))
            self._inserted.inc(new)
            self._duplicates.inc(len(records) - new)
            return
        self._dropped.inc(len(records))
