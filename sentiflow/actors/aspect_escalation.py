"""Low-confidence aspects get a second opinion from the LLM tier (issue 8), under the same
policy as whole posts (:mod:`sentiflow.actors.escalator`, docs/llm.md).

An :class:`AspectWorker` with the tier on hands this module the posts whose aspect analysis
left an aspect under ``aspects.review_below``. Per submission (whole submissions travel):

* **admission** at once, as for posts: the deadline already passed (``llm_deadline``), budget
  spent (``llm_budget``), share cap (``llm_share_cap``), breaker open (``llm_unavailable``), or
  this worker already holds ``llm.max_pending_posts`` posts (``llm_saturated``; batch priority
  waits for room instead): the local aspects stand, the post is flagged for review;
* **one request** per ``llm.max_posts_per_request`` posts of a message (``LLMTier.judge`` with
  the uncertain aspects' names: the LLM gives each named aspect's sentiment, and the post's);
  the calls run in the worker's background tasks, so the worker keeps reading its mailbox;
* **deadline** per lane from the node's acceptance (realtime ``llm.realtime_deadline_ms``,
  standard ``llm.standard_deadline_s``; batch waits for the answer or the failure): the
  submission goes on with the local aspects flagged ``aspect_llm_deadline``; a later answer
  is settled as an answer in time would have been and written to the store
  (``write_late_aspects``, after the submission's own durable write): the aspect rows, the
  overall label / ``mixed`` verdict when it changes, the LLM's opinion, and the review flag
  (cleared unless the answer itself flags the post; a label a person gave is kept whole);
* **answer**: each escalated aspect takes the LLM's sentiment and confidence, then the
  ``mixed`` rule is re-evaluated over all the post's aspects. An LLM aspect confidence under
  ``llm.min_llm_confidence`` flags the post (``aspect_llm_low_confidence``). The LLM's opinion
  of the whole post from the same answer is recorded in ``llm_sentiment`` / ``llm_confidence``
  when the result has no LLM opinion yet (the stored trace that the LLM looked at the post;
  the overall label and ``tier`` stay the fast tier's);
* **failure** (``LLMError``): the local aspects stand, flagged ``aspect_<error reason>``;
* nothing is dropped: on stop or crash :meth:`AspectLLM.flush` sends every held submission on
  with its local aspects (``aspect_llm_stopping``).

A post already flagged for review keeps its first reason (as without the tier).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
import msgspec

from sentiflow.actors.escalation import ReviewReason
from sentiflow.actors.messages import Routed, Submission
from sentiflow.config.settings import LLMSettings
from sentiflow.llm.tier import LLMAnswer, LLMTier
from sentiflow.models.aspects.types import AspectPrediction
from sentiflow.models.base import LABELS
from sentiflow.models.llm.errors import InvalidLLMResponseError, LLMError
from sentiflow.models.llm.parsing import AspectVerdict, LLMVerdict
from sentiflow.models.llm.prompt import LLMPost
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import ActorContext, Priority
from sentiflow.stores.errors import StorageError
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import ClassificationResult, ResultRecord

log = logging.getLogger("sentiflow.actors.aspect_escalation")

#: Applies a post's final aspects (records, mixed rule, review flag with the given reason).
Apply = Callable[[ClassificationResult, Sequence[AspectPrediction], str | None],
                 ClassificationResult]
Send = Callable[[Routed], Awaitable[None]]


def aspect_reason(llm_reason: str) -> str:
    """``review_reason`` of a post whose uncertain aspects the LLM did not settle."""
    return f"aspect_{llm_reason}"


@dataclass(frozen=True, slots=True)
class AspectEscalation:
    """What the workers need to escalate aspects: the node's shared tier, its settings, and
    the result store that late answers are written to."""

    tier: LLMTier
    settings: LLMSettings
    store: ResultStore


# -- pure helpers ------------------------------------------------------------------------------


def low_aspects(predictions: Sequence[AspectPrediction], review_below: float) -> list[int]:
    """Indices of the aspects under ``review_below`` (0 = never)."""
    return [k for k, p in enumerate(predictions) if p.confidence < review_below]


def aspect_keys(predictions: Sequence[AspectPrediction], indices: Sequence[int]) -> list[str]:
    """The name the LLM is asked about for each aspect in ``indices``: the aspect's name, or
    ``"name (term)"`` when two uncertain aspects share a name (e.g. two shipping mentions)."""
    names = [predictions[k].name for k in indices]
    return [n if names.count(n) == 1 else f"{n} ({predictions[k].mention.term})"
            for n, k in zip(names, indices, strict=True)]


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def match_verdicts(keys: Sequence[str], verdicts: Sequence[AspectVerdict]
                   ) -> list[AspectVerdict | None]:
    """The LLM's verdict for each key: by name (case and spacing ignored); by position when
    the answer has exactly one verdict per key but renamed some; otherwise None (unanswered)."""
    by_name = {_norm(v.aspect): v for v in verdicts}
    found = [by_name.get(_norm(k)) for k in keys]
    if None in found and len(verdicts) == len(keys):
        return list(verdicts)
    return found


def llm_prediction(local: AspectPrediction, verdict: AspectVerdict) -> AspectPrediction:
    """``local`` with the LLM's label and confidence (the rest of the mass split evenly
    between the other labels: the LLM gives one confidence, not a distribution)."""
    rest = (1.0 - verdict.confidence) / 2
    probs = tuple(verdict.confidence if label == verdict.sentiment else rest for label in LABELS)
    return AspectPrediction(mention=local.mention, sentiment=verdict.sentiment,
                            confidence=verdict.confidence,
                            probabilities=(probs[0], probs[1], probs[2]), context=local.context)


@dataclass(frozen=True, slots=True)
class Settled:
    """A post's aspects after the LLM answered."""

    predictions: list[AspectPrediction]
    #: ``review_reason`` to flag the post with, or None.
    reason: str | None
    decided: int


def settle(predictions: Sequence[AspectPrediction], indices: Sequence[int],
           verdict: LLMVerdict, min_confidence: float) -> Settled:
    """Replace the escalated aspects by the LLM's verdicts. An aspect the answer missed keeps
    its local result (reason ``aspect_llm_invalid_response``); an LLM verdict under
    ``min_confidence`` is used but flags the post (``aspect_llm_low_confidence``)."""
    keys = aspect_keys(predictions, indices)
    out = list(predictions)
    missed = unsure = False
    decided = 0
    for k, v in zip(indices, match_verdicts(keys, verdict.aspects), strict=True):
        if v is None:
            missed = True
            continue
        out[k] = llm_prediction(predictions[k], v)
        decided += 1
        unsure |= v.confidence < min_confidence
    reason = (aspect_reason(InvalidLLMResponseError.reason) if missed
              else aspect_reason(ReviewReason.LOW_LLM_CONFIDENCE) if unsure else None)
    return Settled(out, reason, decided)


def with_llm_opinion(result: ClassificationResult, verdict: LLMVerdict) -> ClassificationResult:
    """``result`` carrying the LLM's opinion of the whole post, unless it has one already."""
    if result.llm_sentiment is not None:
        return result
    return msgspec.structs.replace(result, llm_sentiment=verdict.sentiment,
                                   llm_confidence=verdict.confidence)


# -- the worker side ---------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Job:
    """One submission waiting for the LLM's verdict on some of its posts' aspects."""

    sub: Submission
    #: Overall results (aspects not yet applied to the posts in ``local``).
    results: list[ClassificationResult]
    #: Post index -> its local aspect predictions, for the posts with uncertain aspects.
    local: dict[int, list[AspectPrediction]]
    waiting: set[int]
    deadline: float | None
    #: Post index -> final results of the posts already settled.
    done: dict[int, ClassificationResult] = field(default_factory=dict)
    forwarded: bool = False
    #: Post index -> the result sent on with local aspects (past the deadline, still waiting).
    sent: dict[int, ClassificationResult] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Item:
    job: _Job
    index: int
    keys: tuple[str, ...]
    low: tuple[int, ...]


class AspectLLM:
    """An AspectWorker's link to the LLM tier (one per worker instance, built in
    ``started()``: it uses the worker's task group and metrics)."""

    def __init__(self, escalation: AspectEscalation, context: ActorContext[Routed], *,
                 review_below: float, apply: Apply, send: Send, relabel: Apply | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        """``apply``: final aspects onto a result that is sent on (the worker counts it);
        ``relabel``: the same for a late answer's stored update (default ``apply``)."""
        self._tier = escalation.tier
        self._settings = s = escalation.settings
        self._store = escalation.store
        self._context = context
        self._review_below = review_below
        self._apply = apply
        self._relabel = relabel or apply
        self._send = send
        self._clock = clock
        self._deadlines = {Priority.REALTIME: s.realtime_deadline_ms / 1000,
                           Priority.NORMAL: s.standard_deadline_s}
        self._jobs: set[_Job] = set()
        self._held = 0
        self._room = anyio.Event()
        m = context.metrics
        self._m_escalated = m.counter("aspect_llm_escalated")
        self._m_decided = m.counter("aspect_llm_decided")
        self._m_requests = m.counter("aspect_llm_requests")
        self._m_late = m.counter("aspect_llm_late")
        self._m_late_written = m.counter("aspect_llm_late_written")
        self._m_late_relabelled = m.counter("aspect_llm_late_relabelled")
        self._m_cost = m.counter("aspect_llm_cost_microusd")
        self._m_latency = m.histogram("aspect_llm_latency_s")

    def _fallback(self, reason: str, posts: int) -> None:
        self._context.metrics.counter(f"fallback_{aspect_reason(reason)}").inc(posts)

    def uncertain(self, predictions: Sequence[AspectPrediction]) -> bool:
        return self._review_below > 0 and bool(low_aspects(predictions, self._review_below))

    async def handle(self, message: Routed, results: Sequence[Sequence[ClassificationResult]],
                     analysed: dict[tuple[int, int], list[AspectPrediction]]) -> None:
        """Pass ``message`` on: posts without uncertain aspects at once (their aspects
        applied), submissions with some through the LLM (see the module docstring)."""
        onward: list[tuple[Submission, tuple[ClassificationResult, ...]]] = []
        jobs: list[_Job] = []
        for i, sub in enumerate(message.submissions):
            out = list(results[i])
            local: dict[int, list[AspectPrediction]] = {}
            for j in range(len(out)):
                preds = analysed.get((i, j))
                if preds is None:
                    continue
                if self.uncertain(preds):
                    local[j] = preds
                else:
                    out[j] = self._apply(out[j], preds, None)
            job = await self._admit(sub, out, local) if local else None
            if job is None:
                onward.append((sub, tuple(out)))
            else:
                jobs.append(job)
        if onward:
            await self._send(Routed(submissions=tuple(s for s, _ in onward),
                                    results=tuple(r for _, r in onward), lane=message.lane))
        self._dispatch(jobs)

    async def _admit(self, sub: Submission, out: list[ClassificationResult],
                     local: dict[int, list[AspectPrediction]]) -> _Job | None:
        """A job holding ``sub``, or None when the posts go on at once (``out`` then holds
        their local aspects, flagged with why the LLM was not asked)."""
        budget = self._deadlines.get(sub.lane)
        deadline = (min(p.accepted_at for p in sub.posts) + budget
                    if budget is not None else None)
        refusal: str | None = None
        if deadline is not None and deadline <= self._clock():
            refusal = ReviewReason.DEADLINE.value
        elif self._held >= self._settings.max_pending_posts and sub.lane < Priority.BATCH:
            refusal = ReviewReason.SATURATED.value
        else:
            error = self._tier.admit(len(local))
            refusal = error.reason if error is not None else None
        if refusal is not None:
            self._fallback(refusal, len(local))
            for j, preds in local.items():
                out[j] = self._apply(out[j], preds, aspect_reason(refusal))
            return None
        while self._held >= self._settings.max_pending_posts:  # batch priority: wait for room
            self._room = anyio.Event()
            await self._room.wait()
        job = _Job(sub, out, local, set(local), deadline)
        self._jobs.add(job)
        self._held += len(local)
        if deadline is not None:
            self._context.start_soon(self._expire, job)
        return job

    def _dispatch(self, jobs: Sequence[_Job]) -> None:
        items = []
        for job in jobs:
            for j, preds in job.local.items():
                low = low_aspects(preds, self._review_below)
                items.append(_Item(job, j, tuple(aspect_keys(preds, low)), tuple(low)))
                self._m_escalated.inc(len(low))
        size = self._settings.max_posts_per_request
        for start in range(0, len(items), size):
            self._context.start_soon(self._call, items[start:start + size])

    async def _call(self, items: list[_Item]) -> None:
        posts = [LLMPost(id=str(k), text=it.job.sub.posts[it.index].request.text,
                         language=it.job.sub.posts[it.index].language or "und",
                         aspects=it.keys)
                 for k, it in enumerate(items)]
        answer: LLMAnswer | None = None
        reason = ""
        try:
            answer = await self._tier.judge(posts)
        except LLMError as exc:
            reason = exc.reason
            self._fallback(reason, len(items))
            log.debug("%s: aspect escalation failed: %s", self._context.path, exc,
                      extra=post_fields([it.job.sub.posts[it.index].request.request_id
                                         for it in items]))
        finally:
            self._held -= len(items)
            self._room.set()
        if answer is not None:
            self._m_requests.inc()
            self._m_cost.inc(round(answer.cost_usd * 1_000_000))
            self._m_latency.observe(answer.latency_s)
        finished: list[_Job] = []
        late: list[tuple[_Job, ResultRecord]] = []
        for k, it in enumerate(items):
            job = it.job
            preds = job.local[it.index]
            result = job.results[it.index]
            if job.forwarded:  # past the deadline: only an answer is worth a second write
                if answer is not None:
                    self._m_late.inc()
                    verdict = answer.verdicts[str(k)]
                    settled = settle(preds, it.low, verdict, self._settings.min_llm_confidence)
                    self._m_decided.inc(settled.decided)
                    final = self._relabel(with_llm_opinion(result, verdict),
                                          settled.predictions, settled.reason)
                    self._m_late_relabelled.inc(
                        final.sentiment != job.sent[it.index].sentiment)
                    late.append((job, ResultRecord(request=job.sub.posts[it.index].request,
                                                   result=final)))
                continue
            if answer is None:
                job.done[it.index] = self._apply(result, preds, aspect_reason(reason))
            else:
                verdict = answer.verdicts[str(k)]
                settled = settle(preds, it.low, verdict, self._settings.min_llm_confidence)
                self._m_decided.inc(settled.decided)
                job.done[it.index] = self._apply(with_llm_opinion(result, verdict),
                                                 settled.predictions, settled.reason)
            job.waiting.discard(it.index)
            if not job.waiting:
                finished.append(job)
        for job in finished:
            await self._forward(job)
        if late:
            await self._write_late(late)
        await self._tier.save_usage()

    async def _write_late(self, late: Sequence[tuple[_Job, ResultRecord]]) -> None:
        """Store answers that came after their submission went on; first wait (at most
        ``llm.timeout_s``) for that submission's own durable write, so this one lands after
        it and wins (as the post escalators' late writes do)."""
        for job in {id(j): j for j, _ in late}.values():
            reply = job.sub.reply
            if not reply.done and not reply.abandoned:
                # The submission's own outcome (even a failure) is not ours to handle.
                with anyio.move_on_after(self._settings.timeout_s), \
                        contextlib.suppress(Exception):
                    await reply.wait()
        records = [record for _, record in late]
        try:
            written = await self._store.write_late_aspects(records)
        except StorageError as exc:
            log.warning("%s: late aspect answers for %d posts not stored: %s",
                        self._context.path, len(records), exc,
                        extra=post_fields([r.request_id for r in records]))
            return
        self._m_late_written.inc(written)

    async def _expire(self, job: _Job) -> None:
        assert job.deadline is not None
        await anyio.sleep(max(0.0, job.deadline - self._clock()))
        if not job.forwarded:
            self._fallback(ReviewReason.DEADLINE.value, len(job.waiting))
            await self._forward(job, aspect_reason(ReviewReason.DEADLINE))

    async def _forward(self, job: _Job, reason: str | None = None) -> None:
        """Send ``job``'s submission on; posts still waiting keep their local aspects,
        flagged ``reason``."""
        if job.forwarded:
            return
        job.forwarded = True
        self._jobs.discard(job)
        out = list(job.results)
        for j, preds in job.local.items():
            if j in job.done:
                out[j] = job.done[j]
            else:
                out[j] = job.sent[j] = self._apply(out[j], preds, reason)
        await self._send(Routed(submissions=(job.sub,), results=(tuple(out),),
                                lane=job.sub.lane))

    async def flush(self) -> None:
        """Send every held submission on (worker stop or crash): nothing is dropped."""
        for job in list(self._jobs):
            self._fallback(ReviewReason.STOPPING.value, len(job.waiting))
            await self._forward(job, aspect_reason(ReviewReason.STOPPING))
        await self._tier.save_usage()
