"""Router side of the LLM tier: which submissions go to the escalators, and what happens when
they are saturated (the policy, also in docs/llm.md).

* A submission goes to the escalator pool when any of its posts is under the threshold (its
  result carries ``review_reason == "low_confidence"``); whole submissions travel, so the
  escalator passes the confident posts of a mixed submission through unchanged.
* Submissions with no low post go straight to the next stage, never behind an LLM call.
* Realtime and standard priority: ``try_tell`` to the least-loaded escalator, then the others.
  If every mailbox is full the tier is saturated: the posts keep their fast-tier result, flagged
  ``needs_review`` with ``review_reason == "llm_saturated"``, and go on at once (no waiting
  without bound, no loss).
* Batch priority: ``tell`` (waits its turn): backpressure reaches the batch feeder / Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

import msgspec

from sentiflow.actors.messages import Routed, Submission
from sentiflow.runtime import ActorRef, Priority
from sentiflow.stores.records import ClassificationResult


class ReviewReason(StrEnum):
    """``review_reason`` values set by the router and the escalators. Failures of the LLM call
    itself use :attr:`sentiflow.models.llm.errors.LLMError.reason` (``llm_budget``,
    ``llm_share_cap``, ``llm_unavailable``, ``llm_failed``, ``llm_rate_limited``,
    ``llm_invalid_response``)."""

    #: Under the threshold and the LLM tier is off: a person should look.
    LOW_CONFIDENCE = "low_confidence"
    #: Every escalator mailbox was full (realtime / standard priority).
    SATURATED = "llm_saturated"
    #: The LLM had not answered by the realtime / standard deadline (a later answer updates
    #: the stored result).
    DEADLINE = "llm_deadline"
    #: The node stopped (or the escalator restarted) before the LLM answered.
    STOPPING = "llm_stopping"
    #: The LLM answered, but with less than ``llm.min_llm_confidence``.
    LOW_LLM_CONFIDENCE = "llm_low_confidence"


def flagged(result: ClassificationResult, reason: str) -> ClassificationResult:
    """``result`` kept as it is, flagged for review with ``reason``."""
    return msgspec.structs.replace(result, needs_review=True, review_reason=str(reason))


def is_low(result: ClassificationResult) -> bool:
    """Was this result routed as under the threshold and not yet settled by a later tier?"""
    return result.review_reason == ReviewReason.LOW_CONFIDENCE


def _group(pairs: Sequence[tuple[Submission, tuple[ClassificationResult, ...]]],
           lane: Priority) -> Routed:
    return Routed(submissions=tuple(s for s, _ in pairs), results=tuple(r for _, r in pairs),
                  lane=min((s.lane for s, _ in pairs), default=lane))


async def route_routed(message: Routed, *, next_ref: ActorRef[Routed],
                       escalators: Sequence[ActorRef[Routed]],
                       on_saturated: Callable[[int], None] | None = None) -> None:
    """Send ``message``'s submissions to the escalators or to ``next_ref`` (policy above);
    ``on_saturated(posts)`` counts low posts that kept their fast result because the tier was
    full."""
    onward: list[tuple[Submission, tuple[ClassificationResult, ...]]] = []
    urgent: list[tuple[Submission, tuple[ClassificationResult, ...]]] = []
    patient: list[tuple[Submission, tuple[ClassificationResult, ...]]] = []
    for sub, results in zip(message.submissions, message.results, strict=True):
        if not escalators or not any(is_low(r) for r in results):
            onward.append((sub, results))
        elif sub.lane >= Priority.BATCH:
            patient.append((sub, results))
        else:
            urgent.append((sub, results))
    if urgent:
        group = _group(urgent, message.lane)
        if not any(ref.try_tell(group, priority=group.lane)
                   for ref in sorted(escalators, key=lambda r: r.mailbox_depth)):
            saturated = 0
            for sub, results in urgent:
                saturated += sum(is_low(r) for r in results)
                onward.append((sub, tuple(flagged(r, ReviewReason.SATURATED) if is_low(r) else r
                                          for r in results)))
            if on_saturated is not None:
                on_saturated(saturated)
    if onward:
        group = _group(onward, message.lane)
        await next_ref.tell(group, priority=group.lane)
    if patient:
        group = _group(patient, message.lane)
        target = min(escalators, key=lambda r: r.mailbox_depth)
        await target.tell(group, priority=group.lane)
