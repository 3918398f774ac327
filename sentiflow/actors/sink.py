"""ResultSink: makes results durable, then answers the callers, then fans out.

Writes are micro-batched like the classifier's (default ``max_wait == 0``: natural batching,
so a lone result is written at once and, under load, everything that queued during the previous
write goes out in one transaction). Only after ``write_results`` returns (durable) is a
submission's reply completed: the API answers, a batch job counts progress, and later a Kafka
offset is committed. Listeners (trend writers, drift watching: their own issues) then get the
same records; they are best-effort observers and never hold up a reply.

A storage failure fails the affected replies with a PipelineError (the API answers 503, batch
jobs retry their pending posts) instead of crashing: a restart would not mend a full disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import anyio

from sentiflow.actors.batching import FlushTick, MicroBatch
from sentiflow.actors.messages import PipelineError, Routed
from sentiflow.runtime import SIZE_BOUNDS, Actor, ActorRef, Priority
from sentiflow.stores.errors import StorageError
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import ResultRecord

log = logging.getLogger("sentiflow.actors.sink")


class ResultSink(Actor[Routed | FlushTick]):
    def __init__(self, store: ResultStore, *, max_batch: int, max_wait_s: float,
                 listener_paths: Sequence[str] = ()) -> None:
        self._store = store
        self._batch: MicroBatch[Routed] = MicroBatch(max_batch, max_wait_s)
        self._listener_paths = tuple(listener_paths)
        self._listeners: tuple[ActorRef[Sequence[ResultRecord]], ...] = ()

    async def started(self) -> None:
        self._listeners = tuple(self.context.lookup(p) for p in self._listener_paths)
        metrics = self.context.metrics
        self._sizes = metrics.histogram("write_batch_size", SIZE_BOUNDS)
        self._write_time = metrics.histogram("write_s")
        self._written = metrics.counter("written")
        self._failed = metrics.counter("write_failures")

    async def receive(self, message: Routed | FlushTick) -> None:
        batch = self._batch
        if isinstance(message, FlushTick):
            if batch.due(message):
                await self._flush()
            return
        opened = batch.add(message, sum(len(r) for r in message.results))
        if batch.full or (batch.max_wait == 0 and self.context.ref.mailbox_depth == 0):
            await self._flush()
        elif opened and batch.max_wait > 0:
            self.context.start_soon(self._tick, batch.generation)

    async def _tick(self, generation: int) -> None:
        await anyio.sleep(self._batch.max_wait)
        await self.context.ref.tell(FlushTick(generation), priority=Priority.REALTIME)

    async def _flush(self) -> None:
        routed = self._batch.take()
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
            log.error("result write of %d records failed: %s", len(records), exc)
            for message in routed:
                for sub in message.submissions:
                    sub.reply.fail(PipelineError(f"storage unavailable: {exc}"))
            return
        self._write_time.observe(time.perf_counter() - started)
        self._sizes.observe(len(records))
        self._written.inc(len(records))
        for message in routed:
            for sub, results in zip(message.submissions, message.results, strict=True):
                sub.reply.send(results)
        for listener in self._listeners:
            if not listener.try_tell(records):
                log.warning("listener %s is saturated; %d records not observed",
                            listener.path, len(records))

    async def stopped(self) -> None:
        if len(self._batch):
            await self._flush()
