"""LLMEscalator: second opinion from the LLM for the posts the fast tier was unsure of.

One of a pool (``llm.pool_size``); all members share one :class:`~sentiflow.llm.LLMTier`
(rate limits, budget, breaker, concurrency). Each member:

* receives whole submissions (``Routed``) from the router; the posts still marked
  ``low_confidence`` are escalated, the others pass through unchanged in the same submission;
* asks the tier to admit them (budget spent, share cap reached or breaker open: they keep the
  fast result, flagged with that reason, at once);
* queues them by priority (realtime first) and a dispatcher task sends them in requests of up to
  ``llm.max_posts_per_request`` posts, each as soon as the tier's rate limits allow: while it
  waits, more posts queue and share the next request (natural batching);
* completes a submission when all its escalated posts are answered, or at its deadline
  (realtime ``llm.realtime_deadline_ms`` / standard ``llm.standard_deadline_s`` from the node's
  acceptance; batch priority waits for the answer or the failure). At the deadline the
  unanswered posts go on with the fast result (``llm_deadline``); their LLM answer, when it
  comes, is written to the store (``write_late_results``), which closes the review item;
* holds at most ``llm.max_pending_posts`` posts; past that it stops reading its mailbox, which
  fills, which is what the router's ``try_tell`` sees (saturation -> ``llm_saturated``).

Whatever happens nothing is dropped: on stop or crash ``stopped()`` sends every submission
still held on with its fast results (``llm_stopping``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import msgspec

from sentiflow.actors.escalation import ReviewReason, flagged, is_low
from sentiflow.actors.messages import Routed, Submission
from sentiflow.config.settings import LLMSettings
from sentiflow.llm.tier import LLMAnswer, LLMTier
from sentiflow.models.llm.errors import LLMError
from sentiflow.models.llm.parsing import LLMVerdict
from sentiflow.models.llm.prompt import LLMPost
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import SIZE_BOUNDS, Actor, ActorRef, Priority
from sentiflow.stores.errors import StorageError
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import ClassificationResult, ResultRecord

log = logging.getLogger("sentiflow.actors.escalator")


@dataclass(eq=False, slots=True)
class _Job:
    """One submission held while its low posts are with the LLM."""

    sub: Submission
    results: list[ClassificationResult]
    #: Indices of posts still waiting for the LLM.
    waiting: set[int]
    deadline: float | None
    forwarded: bool = False
    late: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Item:
    job: _Job
    index: int


def llm_decided(fast: ClassificationResult, verdict: LLMVerdict, model: str,
                min_confidence: float) -> ClassificationResult:
    """The result once the LLM decided: its label and confidence, both opinions recorded."""
    unsure = verdict.confidence < min_confidence
    return msgspec.structs.replace(
        fast, sentiment=verdict.sentiment, confidence=verdict.confidence, model_used=model,
        tier="llm", needs_review=unsure,
        review_reason=ReviewReason.LOW_LLM_CONFIDENCE.value if unsure else None,
        fast_sentiment=fast.sentiment, fast_confidence=fast.confidence,
        llm_sentiment=verdict.sentiment, llm_confidence=verdict.confidence)


class LLMEscalator(Actor[Routed]):
    def __init__(self, tier: LLMTier, settings: LLMSettings, next_path: str,
                 store: ResultStore, *, next_stage: Callable[[Routed], str] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        """``next_path``: where results go (the sink); ``next_stage``, when given, picks the
        path per message instead (the aspect step's ``NextStage``: aspects if asked, else the
        sink)."""
        self._tier = tier
        self._next_stage = next_stage
        self._next_refs: dict[str, ActorRef[Routed]] = {}
        self._settings = settings
        self._next_path = next_path
        self._store = store
        self._clock = clock
        self._deadlines = {Priority.REALTIME: settings.realtime_deadline_ms / 1000,
                           Priority.NORMAL: settings.standard_deadline_s}

    async def started(self) -> None:
        self._next: ActorRef[Routed] = self.context.lookup(self._next_path)
        self._queues: dict[Priority, deque[_Item]] = {p: deque() for p in Priority}
        self._jobs: set[_Job] = set()
        self._held = 0
        self._wake = anyio.Event()
        self._room = anyio.Event()
        m = self.context.metrics
        self._m_escalated = m.counter("escalated")
        self._m_decided = m.counter("llm_decided")
        self._m_requests = m.counter("llm_requests")
        self._m_late = m.counter("late_updates")
        self._m_prompt = m.counter("llm_prompt_tokens")
        self._m_completion = m.counter("llm_completion_tokens")
        self._m_cost = m.counter("llm_cost_microusd")
        self._m_latency = m.histogram("llm_latency_s")
        self._m_size = m.histogram("posts_per_request", SIZE_BOUNDS)
        self.context.start_soon(self._dispatch)

    def _fallback(self, reason: str, posts: int) -> None:
        self.context.metrics.counter(f"fallback_{reason}").inc(posts)

    # -- intake --------------------------------------------------------------------------------

    async def receive(self, message: Routed) -> None:
        for sub, results in zip(message.submissions, message.results, strict=True):
            low = [i for i, r in enumerate(results) if is_low(r)]
            if not low:
                await self._send(sub, results)
                continue
            refusal = self._tier.admit(len(low))
            if refusal is not None:
                self._fallback(refusal.reason, len(low))
                await self._send(sub, tuple(flagged(r, refusal.reason) if is_low(r) else r
                                            for r in results))
                continue
            self._m_escalated.inc(len(low))
            budget = self._deadlines.get(sub.lane)
            deadline = (min(p.accepted_at for p in sub.posts) + budget
                        if budget is not None else None)
            job = _Job(sub, list(results), set(low), deadline)
            self._jobs.add(job)
            self._queues[sub.lane].extend(_Item(job, i) for i in low)
            self._held += len(low)
            if deadline is not None:
                self.context.start_soon(self._expire, job)
        self._wake.set()
        while self._held >= self._settings.max_pending_posts:  # stop reading: mailbox fills
            self._room = anyio.Event()
            await self._room.wait()

    # -- dispatch ------------------------------------------------------------------------------

    def _take(self, limit: int) -> list[_Item]:
        batch: list[_Item] = []
        for lane in Priority:
            queue = self._queues[lane]
            while queue and len(batch) < limit:
                batch.append(queue.popleft())
        return batch

    async def _dispatch(self) -> None:
        limit = self._settings.max_posts_per_request
        while True:
            if not any(self._queues.values()):
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            await self._tier.wait_turn()
            batch = self._take(limit)
            if not batch:
                continue
            sent = anyio.Event()
            self.context.start_soon(self._run, batch, sent)
            await sent.wait()  # its tokens are taken: what queues meanwhile forms the next one

    async def _run(self, batch: list[_Item], sent: anyio.Event) -> None:
        posts = [LLMPost(id=str(k), text=item.job.sub.posts[item.index].request.text,
                         language=item.job.sub.posts[item.index].language or "und")
                 for k, item in enumerate(batch)]
        try:
            answer = await self._tier.judge(posts, on_sent=sent.set)
        except LLMError as exc:
            sent.set()
            self._fallback(exc.reason, len(batch))
            log.warning("%s: LLM escalation of %d posts failed (%s: %s); they keep the fast "
                        "result, flagged for review", self.context.path, len(batch),
                        exc.reason, exc, extra=post_fields(
                            [item.job.sub.posts[item.index].request.request_id
                             for item in batch], reason=exc.reason))
            outcomes = [flagged(item.job.results[item.index], exc.reason) for item in batch]
            verdicts = False
        else:
            self._count(answer, len(batch))
            outcomes = [llm_decided(item.job.results[item.index], answer.verdicts[str(k)],
                                    answer.model, self._settings.min_llm_confidence)
                        for k, item in enumerate(batch)]
            verdicts = True
        finally:
            self._held -= len(batch)
            self._room.set()
        late: list[ResultRecord] = []
        done: list[_Job] = []
        for item, result in zip(batch, outcomes, strict=True):
            job = item.job
            if job.forwarded:  # past its deadline: only an answer is worth a second write
                if verdicts:
                    late.append(ResultRecord(request=job.sub.posts[item.index].request,
                                             result=msgspec.structs.replace(
                                                 result, latency_ms=job.results[item.index]
                                                 .latency_ms)))
                continue
            job.results[item.index] = result
            job.waiting.discard(item.index)
            if not job.waiting:
                done.append(job)
        for job in done:
            await self._forward(job)
        if late:
            await self._write_late(late, [item.job for item in batch if item.job.forwarded])
        await self._tier.save_usage()

    def _count(self, answer: LLMAnswer, posts: int) -> None:
        self._m_decided.inc(posts)
        self._m_requests.inc()
        self._m_prompt.inc(answer.prompt_tokens)
        self._m_completion.inc(answer.completion_tokens)
        self._m_cost.inc(round(answer.cost_usd * 1_000_000))
        self._m_latency.observe(answer.latency_s)
        self._m_size.observe(posts)

    # -- completion ----------------------------------------------------------------------------

    async def _expire(self, job: _Job) -> None:
        assert job.deadline is not None
        await anyio.sleep(max(0.0, job.deadline - self._clock()))
        if job.forwarded:
            return
        self._fallback(ReviewReason.DEADLINE.value, len(job.waiting))
        for i in job.waiting:
            job.results[i] = flagged(job.results[i], ReviewReason.DEADLINE)
        await self._forward(job)

    async def _forward(self, job: _Job) -> None:
        if job.forwarded:
            return
        job.forwarded = True
        self._jobs.discard(job)
        now = self._clock()
        results = tuple(
            msgspec.structs.replace(r, latency_ms=(now - p.accepted_at) * 1000.0)
            if r.tier == "llm" else r
            for p, r in zip(job.sub.posts, job.results, strict=True))
        await self._send(job.sub, results)

    async def _send(self, sub: Submission, results: tuple[ClassificationResult, ...]
                    ) -> None:
        routed = Routed(submissions=(sub,), results=(results,), lane=sub.lane)
        target = self._next
        if self._next_stage is not None:
            path = self._next_stage(routed)
            target = self._next_refs.get(path) or self._next_refs.setdefault(
                path, self.context.lookup(path))
        await target.tell(routed, priority=sub.lane)

    async def _write_late(self, records: list[ResultRecord], jobs: list[_Job]) -> None:
        """Write answers that came after their submission went on; first wait (briefly) for
        that submission's own durable write, so this one lands after it and wins."""
        for job in jobs:
            reply = job.sub.reply
            if not reply.done and not reply.abandoned:
                # The submission's own outcome (even a failure) is not ours to handle.
                with anyio.move_on_after(self._settings.timeout_s), \
                        contextlib.suppress(Exception):
                    await reply.wait()
        try:
            written = await self._store.write_late_results(records)
        except StorageError as exc:
            log.warning("late LLM answers for %d posts not stored: %s", len(records), exc,
                        extra=post_fields([r.request_id for r in records]))
            return
        self._m_late.inc(written)

    async def stopped(self) -> None:
        """Send every held submission on with what it has (nothing is dropped)."""
        for job in list(self._jobs):
            if job.waiting:
                self._fallback(ReviewReason.STOPPING.value, len(job.waiting))
            for i in job.waiting:
                job.results[i] = flagged(job.results[i], ReviewReason.STOPPING)
            job.waiting.clear()
            await self._forward(job)
        await self._tier.save_usage()
