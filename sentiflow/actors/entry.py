"""PipelineEntry: how anything outside the tree (API, batch jobs, replay, later Kafka) submits
posts. It picks a language detector (the first with room for another batch:
``language.fill_first``) and either waits for room (``tell``:
backpressure, for streams and batch jobs) or gives up after ``offer_timeout`` (the API, which
then answers 503 + Retry-After instead of queueing without bound).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio

from sentiflow.actors.language import fill_first
from sentiflow.actors.messages import PipelineError, Post, Submission
from sentiflow.runtime import ActorRef, ActorStopped, ActorSystem, DeferredReply, Priority
from sentiflow.stores.records import ClassificationRequest, ClassificationResult


class PipelineTimeoutError(PipelineError):
    """The result did not arrive within the caller's timeout (it may still be written)."""


class PipelineEntry:
    def __init__(self, system: ActorSystem, language_paths: Sequence[str], *,
                 spill_at: int = 64) -> None:
        self._system = system
        self._paths = tuple(language_paths)
        #: A detector with this many queued submissions passes new ones to the next member.
        self._spill_at = spill_at
        self._refs: tuple[ActorRef[Submission], ...] = ()

    def _detectors(self) -> tuple[ActorRef[Submission], ...]:
        if not self._refs:  # looked up on first use: the tree starts after the entry exists
            self._refs = tuple(self._system.lookup(p) for p in self._paths)
        return self._refs

    def queued(self) -> int:
        """Submissions waiting in the detectors' mailboxes (a cheap load signal)."""
        return sum(ref.mailbox_depth for ref in self._detectors())

    async def submit(self, requests: Sequence[ClassificationRequest], *, lane: Priority,
                     offer_timeout: float | None = None) -> DeferredReply:
        """Hand ``requests`` to the pipeline; the returned reply completes after the durable
        write with their results in order. Raises ``MailboxFull`` when ``offer_timeout`` runs
        out, ``PipelineError`` when the pipeline is stopping."""
        accepted = time.perf_counter()
        reply = DeferredReply.waitable()
        submission = Submission(posts=tuple(Post(r, accepted) for r in requests), reply=reply,
                                lane=lane)
        target = fill_first(self._detectors(), self._spill_at)
        try:
            if offer_timeout is None:
                await target.tell(submission, priority=lane)
            else:
                await target.offer(submission, timeout=offer_timeout, priority=lane)
        except ActorStopped as exc:
            raise PipelineError("the pipeline is stopping") from exc
        return reply

    async def classify(self, requests: Sequence[ClassificationRequest], *, lane: Priority,
                       timeout: float, offer_timeout: float | None = None,  # noqa: ASYNC109
                       ) -> tuple[ClassificationResult, ...]:
        """Submit and wait for the results (at most ``timeout`` seconds in all)."""
        with anyio.move_on_after(timeout):
            reply = await self.submit(requests, lane=lane, offer_timeout=offer_timeout)
            results: tuple[ClassificationResult, ...] = await reply.wait()
            return results
        raise PipelineTimeoutError(f"no result within {timeout:g} s")
