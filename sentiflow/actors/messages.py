"""Messages between the pipeline's stages.

Every stage receives and sends *groups* of posts, never single posts, so per-message runtime
overhead is paid once per group. A :class:`Submission` is the unit of completion: the posts that
were submitted together (one API request, one chunk of a batch job, one Kafka poll) and the
:class:`~sentiflow.runtime.DeferredReply` that the last stage completes, after the durable write,
with their results in submission order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sentiflow.runtime import DeferredReply, Priority
from sentiflow.stores.records import ClassificationRequest, ClassificationResult

#: API / record priorities -> mailbox lanes: realtime overtakes standard overtakes batch.
LANE: dict[str, Priority] = {
    "realtime": Priority.REALTIME,
    "standard": Priority.NORMAL,
    "batch": Priority.BATCH,
}


class PipelineError(RuntimeError):
    """A submission could not be completed (a stage crashed on it, storage failed, the node
    is stopping). The posts were not classified; the caller may retry them."""


class UnprocessablePostError(PipelineError):
    """The model raised on this submission alone (found by bisecting a failed batch): the
    input, not the node, is the problem, so retrying it elsewhere would fail the same way."""


@dataclass(frozen=True, slots=True)
class Post:
    request: ClassificationRequest
    #: ``time.perf_counter()`` when the node accepted the post (latency_ms is measured from it).
    accepted_at: float
    #: Resolved language: the caller's code, the detector's guess, or "und". "" before detection.
    language: str = ""
    #: ``normalize_batch``'s view of the text when a stage already computed it (the language
    #: stage does for "auto" posts), so that a backend taking normalised input does not
    #: normalise it again (sentiflow.models.base.NormalizedInputBackend).
    normalized: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    posts: tuple[Post, ...]
    #: Completed with ``tuple[ClassificationResult, ...]`` (posts order) or a PipelineError.
    reply: DeferredReply
    lane: Priority = Priority.NORMAL


@dataclass(frozen=True, slots=True)
class Scored:
    """Classifier -> Router: one model call's output for several submissions."""

    submissions: tuple[Submission, ...]
    #: ``(total posts, 3)`` calibrated probabilities, rows in submissions/posts order.
    probabilities: npt.NDArray[np.float32]
    model_name: str
    model_version: str
    lane: Priority = Priority.NORMAL


@dataclass(frozen=True, slots=True)
class Routed:
    """Router -> ResultSink: final results; ``results[i]`` aligns with
    ``submissions[i].posts``."""

    submissions: tuple[Submission, ...]
    results: tuple[tuple[ClassificationResult, ...], ...]
    lane: Priority = Priority.NORMAL


def replies_of(message: object) -> tuple[DeferredReply, ...]:
    """The replies a pipeline message carries (for failing them when the message is lost)."""
    if isinstance(message, Submission):
        return (message.reply,)
    if isinstance(message, Scored | Routed):
        return tuple(s.reply for s in message.submissions)
    return ()


def request_ids(submissions: Sequence[Submission]) -> list[str]:
    """The request ids of the posts in ``submissions``, in order (for log lines about them)."""
    return [post.request.request_id for sub in submissions for post in sub.posts]


def request_ids_of(message: object) -> list[str]:
    """The request ids a pipeline message carries (for the log line when it is lost)."""
    if isinstance(message, Submission):
        return request_ids((message,))
    if isinstance(message, Scored | Routed):
        return request_ids(message.submissions)
    return []
