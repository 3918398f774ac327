"""AspectWorker pool: per-aspect sentiment for the posts that asked for it (issue 8).

Sits between the router (or the LLM escalators) and the result sink. Each worker takes whole
``Routed`` messages; only posts whose request has ``aspects=True`` are analysed, the others
pass through unchanged in the same message. For an analysed post it

* runs the aspect step (extraction, then per-aspect classification, in a worker thread so the
  event loop keeps serving: :class:`~sentiflow.models.aspects.AspectAnalyzer`);
* attaches :class:`~sentiflow.stores.records.AspectSentiment` records with stable ids
  ``f"{request_id}#{i}"`` (a replay rewrites the same rows);
* applies the ``mixed`` rule (:mod:`sentiflow.models.aspects.mixed`): the overall label becomes
  ``mixed`` with the rule's confidence, the fast tier's confidence kept in ``fast_confidence``;
* if the analysis raises, passes the posts on with their overall result, flagged
  ``aspect_failed`` (never a lost post, never a crash loop on one bad text);
* with the LLM tier on (and ``aspects.llm_escalation``), sends the posts with an aspect under
  ``aspects.review_below`` to the LLM under the escalators' policy (admission, deadlines,
  saturation: :mod:`sentiflow.actors.aspect_escalation`); the LLM's verdicts replace those
  aspects' and the mixed rule is re-evaluated. Refused, late or failed: the local aspects stand
  and the post is flagged ``aspect_<reason>`` (``aspect_llm_deadline``, ...); an answer that
  comes after the deadline updates the stored result and its aspect rows;
* with the tier off, flags the post for review (``review_reason="aspect_low_confidence"``)
  when an aspect's confidence is under ``aspects.review_below`` and the post is not flagged
  already, for the human review queue.

:func:`next_stage_path` / :class:`NextStage` is the choice "aspects if any post asked for them
and the pool exists, else the sink" that the router (and the escalators) make.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence

import anyio
import msgspec

from sentiflow.actors.aspect_escalation import AspectEscalation, AspectLLM
from sentiflow.actors.messages import Routed
from sentiflow.models.aspects.analyzer import AspectAnalyzer
from sentiflow.models.aspects.mixed import mixed_verdict
from sentiflow.models.aspects.types import AspectPrediction
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import Actor, ActorRef
from sentiflow.stores.records import AspectSentiment, ClassificationResult

log = logging.getLogger("sentiflow.actors.aspects")

#: ``review_reason`` of a post flagged because one of its aspects is uncertain.
ASPECT_LOW_CONFIDENCE = "aspect_low_confidence"
#: ``review_reason`` of a post whose aspect analysis raised (it keeps its overall result).
ASPECT_FAILED = "aspect_failed"


def wants_aspects(routed: Routed) -> bool:
    return any(p.request.aspects for sub in routed.submissions for p in sub.posts)


def next_stage_path(routed: Routed, aspect_paths: Sequence[str], sink_path: str) -> str:
    """The first aspect worker if any post of ``routed`` asked for aspects and the pool
    exists, else the sink. (:class:`NextStage` spreads over the whole pool.)"""
    return aspect_paths[0] if aspect_paths and wants_aspects(routed) else sink_path


class NextStage:
    """``NextStage(paths, sink)(routed) -> path``: round-robin over the aspect pool for
    messages that asked for aspects, the sink for the rest. Stateless apart from the turn
    counter, so the router and every escalator may each hold their own."""

    def __init__(self, aspect_paths: Sequence[str], sink_path: str) -> None:
        self.aspect_paths = tuple(aspect_paths)
        self.sink_path = sink_path
        self._turn = itertools.count()

    def __call__(self, routed: Routed) -> str:
        if not self.aspect_paths or not wants_aspects(routed):
            return self.sink_path
        return self.aspect_paths[next(self._turn) % len(self.aspect_paths)]


def aspect_records(request_id: str, predictions: Sequence[AspectPrediction]
                   ) -> tuple[AspectSentiment, ...]:
    return tuple(AspectSentiment(aspect_id=f"{request_id}#{i}", result_id=request_id,
                                 aspect_name=p.name, sentiment=p.sentiment,
                                 confidence=round(p.confidence, 6), text_span=p.span)
                 for i, p in enumerate(predictions))


def with_aspects(result: ClassificationResult, predictions: Sequence[AspectPrediction], *,
                 mixed_min_confidence: float, review_reason: str | None) -> ClassificationResult:
    """``result`` with its (final) aspects and the mixed rule applied, flagged for review
    with ``review_reason`` when given and the post is not flagged already."""
    changes: dict[str, object] = {"aspects": aspect_records(result.request_id, predictions)}
    verdict = mixed_verdict(predictions, mixed_min_confidence)
    if verdict.mixed:
        changes.update(sentiment="mixed", confidence=verdict.confidence,
                       fast_confidence=result.fast_confidence
                       if result.fast_confidence is not None else result.confidence)
    if review_reason is not None and not result.needs_review:
        changes.update(needs_review=True, review_reason=review_reason)
    return msgspec.structs.replace(result, **changes)


def apply_aspects(result: ClassificationResult, predictions: Sequence[AspectPrediction], *,
                  mixed_min_confidence: float, review_below: float) -> ClassificationResult:
    """``result`` with its aspects, the mixed rule and the low-confidence flag applied (the
    tier-off path: uncertain aspects go to the human review queue)."""
    low = review_below > 0 and any(p.confidence < review_below for p in predictions)
    return with_aspects(result, predictions, mixed_min_confidence=mixed_min_confidence,
                        review_reason=ASPECT_LOW_CONFIDENCE if low else None)


class AspectWorker(Actor[Routed]):
    def __init__(self, make_analyzer: Callable[[], AspectAnalyzer], sink_path: str, *,
                 mixed_min_confidence: float, review_below: float,
                 llm: AspectEscalation | None = None) -> None:
        """``llm``: the LLM tier for uncertain aspects (None: they are flagged for review)."""
        self._make_analyzer = make_analyzer
        self._sink_path = sink_path
        self._mixed_min = mixed_min_confidence
        self._review_below = review_below
        self._escalation = llm
        self._llm: AspectLLM | None = None
        self._sink: ActorRef[Routed] | None = None
        self._analyzer: AspectAnalyzer | None = None

    async def started(self) -> None:
        self._sink = self.context.lookup(self._sink_path)
        # Built here, not in __init__: a restart gets a fresh analyser (own CRF tagger).
        self._analyzer = await anyio.to_thread.run_sync(self._make_analyzer)
        metrics = self.context.metrics
        self._posts = metrics.counter("posts_analysed")
        self._aspects = metrics.counter("aspects")
        self._mixed = metrics.counter("mixed")
        self._low = metrics.counter("low_confidence_aspects")
        self._time = metrics.histogram("analyse_s")
        self._failed = metrics.counter("failed_posts")
        if self._escalation is not None:
            self._llm = AspectLLM(self._escalation, self.context,
                                  review_below=self._review_below, apply=self._apply,
                                  relabel=self._relabel, send=self._send)

    async def stopped(self) -> None:
        if self._llm is not None:  # submissions still waiting for the LLM go on as they are
            await self._llm.flush()

    def _relabel(self, before: ClassificationResult, predictions: Sequence[AspectPrediction],
                 review_reason: str | None) -> ClassificationResult:
        return with_aspects(before, predictions, mixed_min_confidence=self._mixed_min,
                            review_reason=review_reason)

    def _apply(self, before: ClassificationResult, predictions: Sequence[AspectPrediction],
               review_reason: str | None) -> ClassificationResult:
        """:meth:`_relabel`, counting the post in ``mixed`` (once: a late LLM answer's stored
        update goes through ``_relabel``, uncounted)."""
        after = self._relabel(before, predictions, review_reason)
        self._mixed.inc(after.sentiment == "mixed" and before.sentiment != "mixed")
        return after

    async def _send(self, routed: Routed) -> None:
        assert self._sink is not None
        await self._sink.tell(routed, priority=routed.lane)

    async def receive(self, message: Routed) -> None:
        assert self._sink is not None
        assert self._analyzer is not None
        wanted = [(i, j) for i, sub in enumerate(message.submissions)
                  for j, post in enumerate(sub.posts) if post.request.aspects]
        if not wanted:
            await self._sink.tell(message, priority=message.lane)
            return
        texts = [message.submissions[i].posts[j].request.text for i, j in wanted]
        langs = [message.results[i][j].language_detected for i, j in wanted]
        started = time.perf_counter()
        results = [list(r) for r in message.results]
        try:
            predictions = await anyio.to_thread.run_sync(self._analyzer.analyze, texts, langs)
        except Exception as exc:  # the posts go on with their overall result, flagged
            log.warning("%s: aspect analysis failed for %d posts: %r", self.context.path,
                        len(wanted), exc, extra=post_fields(
                            [message.submissions[i].posts[j].request.request_id
                             for i, j in wanted]))
            self._failed.inc(len(wanted))
            for i, j in wanted:
                results[i][j] = msgspec.structs.replace(
                    results[i][j], needs_review=True, review_reason=ASPECT_FAILED)
            predictions = None
        if predictions is None:
            await self._sink.tell(Routed(submissions=message.submissions,
                                         results=tuple(tuple(r) for r in results),
                                         lane=message.lane), priority=message.lane)
            return
        self._time.observe(time.perf_counter() - started)
        self._posts.inc(len(wanted))
        for preds in predictions:
            self._aspects.inc(len(preds))
            self._low.inc(sum(p.confidence < self._review_below for p in preds))
        if self._llm is not None:
            await self._llm.handle(message, results, dict(zip(wanted, predictions, strict=True)))
            return
        for (i, j), preds in zip(wanted, predictions, strict=True):
            low = self._review_below > 0 and any(p.confidence < self._review_below
                                                 for p in preds)
            results[i][j] = self._apply(results[i][j], preds,
                                        ASPECT_LOW_CONFIDENCE if low else None)
        await self._sink.tell(Routed(submissions=message.submissions,
                                     results=tuple(tuple(r) for r in results),
                                     lane=message.lane),
                              priority=message.lane)
