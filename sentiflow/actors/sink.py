"""ResultSink: makes results durable, then answers the callers, then fans out.

Writes are micro-batched like the classifier's (default ``max_wait == 0``: natural batching,
so a lone result is written at once and, under load, everything that queued during the previous
write goes out in one transaction). Only after ``write_results`` returns (durable) is a
submission's reply completed: the API answers, a batch job counts progress, and later a Kafka
offset is committed. Listeners (trend writer, drift watching) then get the
same records with a backpressured ``tell``: they never hold up a reply, but a listener that falls
behind slows the sink rather than missing records.

A storage failure fails the affected replies with a PipelineError (the API answers 503, batch
jobs retry their pending posts) instead of crashing: a restart would not mend a full disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from sentiflow.actors.batching import MicroBatchingActor
from sentiflow.actors.messages import PipelineError, Routed
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import SIZE_BOUNDS, ActorRef
from sentiflow.stores.errors import StorageError
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import ResultRecord

log = logging.getLogger("sentiflow.actors.sink")

#: Buckets of the ``confidence`` histogram of written results (0.05 wide; the console and
#: /metrics show the confidence distribution over time from it).
CONFIDENCE_BOUNDS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 21))


class ResultSink(MicroBatchingActor[Routed]):
    def __init__(self, store: ResultStore, *, max_batch: int, max_wait_s: float,
                 listener_paths: Sequence[str] = ()) -> None:
        super().__init__(max_batch=max_batch, max_wait_s=max_wait_s)
        self._store = store
        self._listener_paths = tuple(listener_paths)
        self._listeners: tuple[ActorRef[Sequence[ResultRecord]], ...] = ()

    async def started(self) -> None:
        self._listeners = tuple(self.context.lookup(p) for p in self._listener_paths)
        metrics = self.context.metrics
        self._sizes = metrics.histogram("write_batch_size", SIZE_BOUNDS)
        self._write_time = metrics.histogram("write_s")
        self._written = metrics.counter("written")
        self._failed = metrics.counter("write_failures")
        self._confidence = metrics.histogram("confidence", CONFIDENCE_BOUNDS)
        self._latency = metrics.histogram("latency_s")  # acceptance -> durable, per post

    def batch_size_of(self, message: Routed) -> int:
        return sum(len(r) for r in message.results)

    async def flush_batch(self, routed: list[Routed]) -> None:
        records = [
            ResultRecord(request=post.request, result=result)
            for message in routed
            for sub, results in zip(message.submissions, message.results, strict=True)
            for post, result in zip(sub.posts, results, strict=True)
        ]
        started = time.perf_counter()
        try:
            await self._store.write_results(records)
        except StorageError as exc:
            self._failed.inc(len(records))
            log.error("result write of %d records failed: %s", len(records), exc,
                      extra=post_fields([r.request_id for r in records]))
            for message in routed:
                for sub in message.submissions:
                    sub.reply.fail(PipelineError(f"storage unavailable: {exc}"))
            return
        self._write_time.observe(time.perf_counter() - started)
        self._sizes.observe(len(records))
        self._written.inc(len(records))
        self._observe_results(routed, records)
        for message in routed:
            for sub, results in zip(message.submissions, message.results, strict=True):
                sub.reply.send(results)
        for listener in self._listeners:
            # Backpressured: a listener that falls behind (the trend writer retrying an
            # insert) slows the sink down instead of missing records; replies are already sent.
            await listener.tell(records)

    def _observe_results(self, routed: list[Routed], records: list[ResultRecord]) -> None:
        """Confidence and end-to-end latency of what was just made durable (ops console)."""
        done = time.perf_counter()
        for record in records:
            self._confidence.observe(record.result.confidence)
        for message in routed:
            for sub in message.submissions:
                for post in sub.posts:
                    self._latency.observe(done - post.accepted_at)
