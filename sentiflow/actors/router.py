"""Router: turns probabilities into results and applies the confidence threshold.

A post whose calibrated confidence is under the threshold (default 0.75, optionally per
language) is flagged ``needs_review``: the LLM and human review tiers (their own issues) take
such posts from here. Latency is measured from the post's acceptance by the node.

When the LLM tier is on (``escalator_paths``), submissions with a low post go to the escalator
pool instead, with the saturation policy of :mod:`sentiflow.actors.escalation`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from sentiflow.actors.escalation import ReviewReason, route_routed
from sentiflow.actors.messages import Routed, Scored
from sentiflow.config.settings import RouterSettings
from sentiflow.models.base import LABELS
from sentiflow.runtime import Actor, ActorRef
from sentiflow.stores.records import ClassificationResult


class Router(Actor[Scored]):
    def __init__(self, settings: RouterSettings, sink_path: str, *,
                 escalator_paths: Sequence[str] = (),
                 observe_routed: Callable[[int], None] | None = None,
                 next_stage: Callable[[Routed], str] | None = None) -> None:
        self._settings = settings
        self._sink_path = sink_path
        #: Aspects (issue 8): picks the aspect pool or the sink per message (NextStage).
        self._next_stage = next_stage
        self._next_refs: dict[str, ActorRef[Routed]] = {}
        self._sink: ActorRef[Routed] | None = None
        #: LLM tier (issue 7): escalator pool, and the budget's count of routed posts.
        self._escalator_paths = tuple(escalator_paths)
        self._observe_routed = observe_routed

    async def started(self) -> None:
        self._sink = self.context.lookup(self._sink_path)
        self._low = self.context.metrics.counter("low_confidence")
        self._escalators: tuple[ActorRef[Routed], ...] = tuple(
            self.context.lookup(p) for p in self._escalator_paths)
        self._saturated = self.context.metrics.counter("llm_saturated")

    async def receive(self, message: Scored) -> None:
        probabilities = message.probabilities
        winners = np.argmax(probabilities, axis=1)
        confidences = probabilities[np.arange(len(winners)), winners]
        now = time.perf_counter()
        model_used = f"{message.model_name}:{message.model_version}"
        threshold_for = self._settings.threshold_for
        row = 0
        results: list[tuple[ClassificationResult, ...]] = []
        for sub in message.submissions:
            out = []
            for post in sub.posts:
                confidence = float(confidences[row])
                low = confidence < threshold_for(post.language)
                out.append(ClassificationResult(
                    request_id=post.request.request_id,
                    sentiment=LABELS[int(winners[row])],
                    confidence=confidence,
                    model_used=model_used,
                    model_version=message.model_version,
                    language_detected=post.language,
                    latency_ms=(now - post.accepted_at) * 1000.0,
                    needs_review=low,
                    review_reason=ReviewReason.LOW_CONFIDENCE.value if low else None,
                ))
                self._low.inc(low)
                row += 1
            results.append(tuple(out))
        assert self._sink is not None
        routed = Routed(submissions=message.submissions, results=tuple(results),
                        lane=message.lane)
        if self._observe_routed is not None:
            self._observe_routed(row)
        next_ref = self._sink if self._next_stage is None else self._next_ref(routed)
        if self._escalators:
            await route_routed(routed, next_ref=next_ref, escalators=self._escalators,
                               on_saturated=self._saturated.inc)
            return
        await next_ref.tell(routed, priority=message.lane)

    def _next_ref(self, routed: Routed) -> ActorRef[Routed]:
        assert self._next_stage is not None
        path = self._next_stage(routed)
        ref = self._next_refs.get(path)
        if ref is None:
            ref = self._next_refs[path] = self.context.lookup(path)
        return ref
