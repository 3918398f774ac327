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
* flags the post for review (``review_reason="aspect_low_confidence"``) when an aspect's
  confidence is under ``aspects.review_below`` and the post is not flagged already -- the LLM
  tier classifies whole posts only, so uncertain aspects go to the human review queue.

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

from sentiflow.actors.messages import Routed
from sentiflow.models.aspects.analyzer import AspectAnalyzer
from sentiflow.models.aspects.mixed import mixed_verdict
from sentiflow.models.aspects.types import AspectPrediction
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


def apply_aspects(result: ClassificationResult, predictions: Sequence[AspectPrediction], *,
                  mixed_min_confidence: float, review_below: float) -> ClassificationResult:
    """``result`` with its aspects, the mixed rule and the low-confidence flag applied."""
    changes: dict[str, object] = {"aspects": aspect_records(result.request_id, predictions)}
    verdict = mixed_verdict(predictions, mixed_min_confidence)
    if verdict.mixed:
        changes.update(sentiment="mixed", confidence=verdict.confidence,
                       fast_confidence=result.fast_confidence
                       if result.fast_confidence is not None else result.confidence)
    if (review_below > 0 and not result.needs_review
            and any(p.confidence < review_below for p in predictions)):
        changes.update(needs_review=True, review_reason=ASPECT_LOW_CONFIDENCE)
    return msgspec.structs.replace(result, **changes)


class AspectWorker(Actor[Routed]):
    def __init__(self, make_analyzer: Callable[[], AspectAnalyzer], sink_path: str, *,
                 mixed_min_confidence: float, review_below: float) -> None:
        self._make_analyzer = make_analyzer
        self._sink_path = sink_path
        self._mixed_min = mixed_min_confidence
        self._review_below = review_below
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
                        len(wanted), exc)
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
        for (i, j), preds in zip(wanted, predictions, strict=True):
            before = results[i][j]
            after = apply_aspects(before, preds, mixed_min_confidence=self._mixed_min,
                                  review_below=self._review_below)
            results[i][j] = after
            self._aspects.inc(len(preds))
            self._mixed.inc(after.sentiment == "mixed" and before.sentiment != "mixed")
            self._low.inc(sum(p.confidence < self._review_below for p in preds))
        self._posts.inc(len(wanted))
        await self._sink.tell(Routed(submissions=message.submissions,
                                     results=tuple(tuple(r) for r in results),
                                     lane=message.lane),
                              priority=message.lane)
