"""Batch jobs: ``POST /api/classify/batch`` is persisted, then run here, then delivered.

The API stores the job and its requests (so nothing is lost if the node stops) and tells the
:class:`BatchCoordinator`, which runs each job in a task: it feeds the job's *pending* requests
(those without a stored result) into the pipeline at batch priority with backpressure, counts
progress as results become durable, and finally POSTs the results to the job's webhook (signed,
retried) while they stay retrievable at ``GET /api/batches/{id}`` whatever the webhook does.
On (re)start the coordinator resumes every unfinished job, so a crash or restart of the node
only delays a batch.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from sentiflow.actors.entry import PipelineEntry
from sentiflow.actors.messages import LANE, PipelineError
from sentiflow.delivery.webhooks import WebhookSender
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import Actor, DeferredReply
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import BatchJob, ClassificationRequest, WebhookAttempt

log = logging.getLogger("sentiflow.actors.batch_jobs")


@dataclass(frozen=True, slots=True)
class StartBatch:
    batch_id: str


class BusyThroughput:
    """Batch posts per second while batch work is in flight: posts made durable divided by the
    busy time they took, over the last ``window`` chunks.

    Idle time is left out: a rate of "posts written per wall-clock second" measures demand,
    not capacity, and after a quiet hour would estimate days for the next batch. 0 until a
    chunk has completed.
    """

    def __init__(self, window: int = 64) -> None:
        self._samples: deque[tuple[int, float]] = deque(maxlen=window)
        self._mark: float | None = None

    def busy(self, now: float) -> None:
        """Batch work started (or more of it: a mark already set is kept)."""
        if self._mark is None:
            self._mark = now

    def idle(self) -> None:
        """No batch work in flight: the time until the next :meth:`busy` does not count."""
        self._mark = None

    def done(self, posts: int, now: float) -> None:
        if self._mark is not None:
            self._samples.append((posts, now - self._mark))
            self._mark = now

    @property
    def rate(self) -> float:
        seconds = sum(s for _, s in self._samples)
        return sum(p for p, _ in self._samples) / seconds if seconds > 0 else 0.0


class BatchRunner:
    """Runs one batch job to completion (plain async code; the coordinator owns the tasks)."""

    def __init__(self, store: ResultStore, entry: PipelineEntry, *, chunk_size: int,
                 webhooks: WebhookSender | None, in_flight_chunks: int = 8,
                 max_chunk_attempts: int = 3, retry_delay_s: float = 0.5) -> None:
        self.store = store
        self.entry = entry
        self.chunk_size = chunk_size
        self.webhooks = webhooks
        self.in_flight_chunks = in_flight_chunks
        self.max_chunk_attempts = max_chunk_attempts
        self.retry_delay_s = retry_delay_s
        #: Posts accepted per job and not yet durable (for completion estimates).
        self._outstanding: dict[str, int] = {}
        #: Measured batch throughput (for completion estimates).
        self.meter = BusyThroughput()
        self._classifying = 0

    @property
    def outstanding(self) -> int:
        """Posts accepted into batch jobs and not yet durable, across all jobs."""
        return sum(self._outstanding.values())

    def expect(self, batch_id: str, count: int) -> None:
        """Count a job as soon as it is accepted, before its task starts, so that the estimate
        for a job submitted right after it already sees it in the queue."""
        self._outstanding.setdefault(batch_id, count)

    async def run(self, batch_id: str) -> None:
        try:
            await self._run(batch_id)
        finally:
            self._outstanding.pop(batch_id, None)

    async def _run(self, batch_id: str) -> None:
        view = await self.store.get_batch(batch_id)
        if view is None:
            log.error("batch %s vanished from the store", batch_id,
                      extra=post_fields((), batch_id=batch_id))
            return
        job = view.job
        pending = await self.store.pending_requests(batch_id)
        done = job.count - len(pending)
        await self.store.update_batch_progress(batch_id, done=done, status="running")
        self._outstanding[batch_id] = len(pending)
        self._classifying += 1
        self.meter.busy(time.monotonic())
        try:
            error = await self._classify(job, pending, done)
        finally:
            self._classifying -= 1
            if not self._classifying:
                self.meter.idle()
        if error is not None:  # the chunks that did succeed stay counted
            done = job.count - self._outstanding[batch_id]
            await self.store.update_batch_progress(batch_id, done=done, status="failed",
                                                   error=error)
            return
        await self._deliver(job)
        await self.store.update_batch_progress(batch_id, done=job.count, status="completed")

    async def _classify(self, job: BatchJob, pending: Sequence[ClassificationRequest],
                        done: int) -> str | None:
        """Feed ``pending`` through the pipeline, ``in_flight_chunks`` at a time; returns an
        error message if a chunk kept failing (its posts stay pending in the store)."""
        lane = LANE[job.priority]
        chunks = [pending[i:i + self.chunk_size] for i in range(0, len(pending), self.chunk_size)]
        slots = anyio.Semaphore(self.in_flight_chunks)
        failure: list[str] = []
        progress = [done]

        async def one(chunk: Sequence[ClassificationRequest], reply: DeferredReply) -> None:
            try:
                for attempt in range(1, self.max_chunk_attempts + 1):
                    try:
                        await reply.wait()
                        break
                    except PipelineError as exc:
                        ids = [r.request_id for r in chunk]
                        if attempt == self.max_chunk_attempts:
                            failure.append(f"{len(chunk)} posts failed {attempt} times: {exc}")
                            log.error("batch %s: %d posts failed %d times, the job fails (they "
                                      "stay pending): %s", job.batch_id, len(chunk), attempt,
                                      exc, extra=post_fields(ids, batch_id=job.batch_id,
                                                             attempt=attempt))
                            return
                        log.warning("batch %s: %d posts failed (%s); retry %d", job.batch_id,
                                    len(chunk), exc, attempt, extra=post_fields(
                                        ids, batch_id=job.batch_id, attempt=attempt))
                        await anyio.sleep(self.retry_delay_s * attempt)
                        reply = await self.entry.submit(chunk, lane=lane)
                progress[0] += len(chunk)
                self._outstanding[job.batch_id] -= len(chunk)
                self.meter.done(len(chunk), time.monotonic())
                await self.store.update_batch_progress(job.batch_id, done=progress[0])
            finally:
                slots.release()

        async with anyio.create_task_group() as tg:
            for chunk in chunks:
                await slots.acquire()
                reply = await self.entry.submit(chunk, lane=lane)  # waits for room
                tg.start_soon(one, chunk, reply)
        return failure[0] if failure else None

    async def _deliver(self, job: BatchJob) -> None:
        if job.webhook_url is None:
            return
        if self.webhooks is None:
            log.error("batch %s has a webhook but webhook.secret is not set", job.batch_id,
                      extra=post_fields((), batch_id=job.batch_id))
            return
        from sentiflow.api.schemas import ClassifyResponse  # the wire shape of a result

        view = await self.store.get_batch(job.batch_id)
        assert view is not None
        results = [ClassifyResponse.from_result(r.result).model_dump(mode="json")
                   for r in view.results]
        report = await self.webhooks.deliver(batch_id=job.batch_id, url=job.webhook_url,
                                             results=results, on_attempt=self._attempted)
        fields = post_fields((), batch_id=job.batch_id, webhook_state=report.state,
                             attempts=report.attempts)
        if report.state == "delivered":
            log.info("batch %s webhook: delivered after %d attempts", job.batch_id,
                     report.attempts, extra=fields)
        else:
            log.warning("batch %s webhook: %s after %d attempts, %d/%d chunks delivered (%s); "
                        "the results stay at GET /api/batches/%s", job.batch_id, report.state,
                        report.attempts, report.chunks_delivered, report.chunks_total,
                        report.last_error, job.batch_id, extra=fields)

    async def _attempted(self, attempt: WebhookAttempt) -> None:
        """Record every delivery attempt; log the failed ones (retried or final)."""
        await self.store.record_webhook_attempt(attempt)
        if attempt.outcome != "delivered":
            log.warning("batch %s webhook chunk %d/%d attempt %d: %s (%s)", attempt.batch_id,
                        attempt.chunk_index + 1, attempt.chunk_count, attempt.attempt,
                        attempt.outcome, attempt.error, extra=post_fields(
                            (), batch_id=attempt.batch_id, chunk_index=attempt.chunk_index,
                            attempt=attempt.attempt, webhook_outcome=attempt.outcome,
                            status_code=attempt.status_code))


class BatchCoordinator(Actor[StartBatch]):
    """Starts a task per batch job (at most ``concurrent`` at once) and resumes unfinished
    jobs after a (re)start."""

    def __init__(self, runner: BatchRunner, concurrent: int = 4) -> None:
        self._runner = runner
        self._slots = anyio.Semaphore(concurrent)
        self._running: set[str] = set()

    async def started(self) -> None:
        for job in await self._runner.store.unfinished_batches():
            self._start(job.batch_id)

    async def receive(self, message: StartBatch) -> None:
        self._start(message.batch_id)

    def _start(self, batch_id: str) -> None:
        if batch_id not in self._running:
            self._running.add(batch_id)
            self.context.start_soon(self._run, batch_id)

    async def _run(self, batch_id: str) -> None:
        try:
            async with self._slots:
                await self._runner.run(batch_id)
        finally:
            self._running.discard(batch_id)
