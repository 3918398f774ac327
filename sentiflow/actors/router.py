"""Router: turns probabilities into results and applies the confidence threshold.

A post whose calibrated confidence is under the threshold (default 0.75, optionally per
language) is flagged ``needs_review``: the LLM and human review tiers (their own issues) take
such posts from here. Latency is measured from the post's acceptance by the node.
"""

from __future__ import annotations

import time

import numpy as np

from sentiflow.actors.messages import Routed, Scored
from sentiflow.config.settings import RouterSettings
from sentiflow.models.base import LABELS
from sentiflow.runtime import Actor, ActorRef
from sentiflow.stores.records import ClassificationResult


class Router(Actor[Scored]):
    def __init__(self, settings: RouterSettings, sink_path: str) -> None:
        self._settings = settings
        self._sink_path = sink_path
        self._sink: ActorRef[Routed] | None = None

    async def started(self) -> None:
        self._sink = self.context.lookup(self._sink_path)
        self._low = self.context.metrics.counter("low_confidence")

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
                ))
                self._low.inc(low)
                row += 1
            results.append(tuple(out))
        assert self._sink is not None
        await self._sink.tell(Routed(submissions=message.submissions, results=tuple(results),
                                     lane=message.lane),
                              priority=message.lane)
