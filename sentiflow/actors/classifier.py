"""Classifier: the micro-batching fast tier, one actor per device (each GPU, or the CPU).

It collects submissions until ``max_batch`` posts or ``max_wait`` after the first, whichever
comes first (``max_wait == 0``: natural batching, flush whenever the mailbox runs dry), runs the
model in a worker thread so the event loop keeps serving the API while a batch computes, and
sends the probabilities to the Router. The exception is a lightweight model's small batch
(:func:`~sentiflow.models.base.is_lightweight`): predicted to take under ``inline_budget_s``,
it runs on the loop, because the thread's round trip through a busy loop costs ten times more
than the batch (sentiflow/runtime/offload.py has the measurements; ``inline_batches`` counts
them). Realtime submissions overtake others twice: in the mailbox's priority lane and at the
front of each flushed batch.

The observed batch sizes and inference times are published in the actor's snapshot
(``batch_size`` and ``inference_s`` histograms) for introspection and /metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import anyio
import numpy as np
import numpy.typing as npt

from sentiflow.actors.batching import MicroBatchingActor
from sentiflow.actors.messages import (
    PipelineError,
    Post,
    Scored,
    Submission,
    UnprocessablePostError,
    request_ids,
)
from sentiflow.models.base import NormalizedInputBackend, SentimentBackend, is_lightweight
from sentiflow.models.preprocess import normalize_batch
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import SIZE_BOUNDS, ActorRef, Offloader

#: Returns the backend to use now; a callable so that a promoted model can be swapped in.
BackendSource = Callable[[], SentimentBackend]

log = logging.getLogger("sentiflow.actors.classifier")

#: Scored when the model fails on a lone submission, to tell a poison post from a broken model.
CANARY_TEXT = "the package arrived on tuesday"


class Classifier(MicroBatchingActor[Submission]):
    def __init__(self, backend: BackendSource, router_path: str, *, max_batch: int,
                 max_wait_s: float, call_lock: threading.Lock | None = None,
                 inline_budget_s: float = 0.0) -> None:
        super().__init__(max_batch=max_batch, max_wait_s=max_wait_s)
        self._backend = backend
        self._inline_budget_s = inline_budget_s
        #: Per served backend (a hot-swapped model is measured afresh); see _offloader.
        self._offload: tuple[SentimentBackend, Offloader] | None = None
        #: Shared with the other callers of this backend (the aspect workers; models/holder.py).
        self._call_lock = call_lock or threading.Lock()
        self._router_path = router_path
        self._router: ActorRef[Scored] | None = None

    async def started(self) -> None:
        self._router = self.context.lookup(self._router_path)
        self._sizes = self.context.metrics.histogram("batch_size", SIZE_BOUNDS)
        self._inference = self.context.metrics.histogram("inference_s")
        self._posts = self.context.metrics.counter("posts")
        self._poison = self.context.metrics.counter("unprocessable")
        self._inline = self.context.metrics.counter("inline_batches")

    def batch_size_of(self, message: Submission) -> int:
        return len(message.posts)

    async def flush_batch(self, messages: list[Submission]) -> None:
        """Score the batch. After a crash, ``stopped`` (the base class drains) is best effort:
        whatever cannot be scored is answered with a PipelineError by ``_flush_submissions``."""
        await self._flush_submissions(messages)

    async def _flush_submissions(self, taken: list[Submission]) -> None:
        """Score ``taken`` in chunks of at most ``max_batch`` posts, realtime first. If a chunk
        fails, every submission not yet scored is answered with a PipelineError before the
        error propagates (crashing the actor): they left the mailbox, so nobody else will."""
        submissions = sorted(taken, key=lambda s: s.lane)  # stable: FIFO within a lane
        start = 0
        while start < len(submissions):
            end, size = start, 0
            while end < len(submissions) and size < self._batch.max_items:
                size += len(submissions[end].posts)
                end += 1
            try:
                await self._score(submissions[start:end])
            except Exception as exc:
                failed = submissions[start:]
                log.error("%s: the model is failing (%r): answering %d submissions with an "
                          "error and restarting", self.context.path, exc, len(failed),
                          extra=post_fields(request_ids(failed)))
                for sub in failed:
                    sub.reply.fail(PipelineError(f"classifier failed: {exc!r}"))
                raise
            start = end

    async def _score(self, chunk: list[Submission]) -> None:
        backend = self._backend()
        scored, probabilities = await self._predict_isolating(backend, chunk)
        if not scored:
            return
        assert self._router is not None
        lane = min(s.lane for s in scored)
        await self._router.tell(
            Scored(submissions=tuple(scored), probabilities=np.concatenate(probabilities),
                   model_name=backend.name, model_version=backend.version, lane=lane),
            priority=lane)

    def _predict(self, backend: SentimentBackend, posts: list[Post]) -> npt.NDArray[np.float32]:
        """On the loop or in a worker thread: one call into the backend at a time across all
        its callers. A backend that takes normalised input gets each post's text as the
        language stage normalised it (the rest normalised here), else the raw texts."""
        languages = [p.language for p in posts]
        with self._call_lock:
            if isinstance(backend, NormalizedInputBackend):
                return backend.predict_proba_normalized(normalized_texts(posts), languages)
            return backend.predict_proba([p.request.text for p in posts], languages)

    def _predict_texts(self, backend: SentimentBackend, texts: list[str], languages: list[str]
                       ) -> npt.NDArray[np.float32]:
        with self._call_lock:
            return backend.predict_proba(texts, languages)

    def _offloader(self, backend: SentimentBackend) -> Offloader:
        if self._offload is None or self._offload[0] is not backend:
            budget = self._inline_budget_s if is_lightweight(backend) else 0.0
            self._offload = (backend, Offloader(budget))
        return self._offload[1]

    async def _run_model(self, backend: SentimentBackend, posts: list[Post]
                         ) -> npt.NDArray[np.float32]:
        """``_predict`` on the loop or in a worker thread (the Offloader decides). Never on
        the loop while another caller (an aspect worker's thread) holds the call lock: the
        loop would wait for that caller's whole batch."""
        offload = self._offloader(backend)
        result = await offload.run(self._predict, backend, posts, cost=len(posts),
                                   may_inline=not self._call_lock.locked())
        if offload.last_inline:
            self._inline.inc()
        return result

    async def _predict_isolating(
            self, backend: SentimentBackend, subs: list[Submission],
    ) -> tuple[list[Submission], list[npt.NDArray[np.float32]]]:
        """Predict ``subs``; if the model raises, bisect to find the submissions it fails on,
        answer those with UnprocessablePostError and score the rest. If no part succeeds
        (more than one submission and all fail) the fault is the model's, not the input's:
        re-raise, and the supervisor restarts this actor."""
        posts = [p for s in subs for p in s.posts]
        started = time.perf_counter()
        try:
            probabilities = await self._run_model(backend, posts)
        except Exception as exc:
            if len(subs) == 1:
                if not await self._model_works(backend):
                    raise  # the model, not this input, is broken: crash and be restarted
                self._poison.inc()
                ids = request_ids(subs)
                log.warning("%s: model failed on %s (isolated by bisection, answered "
                            "unprocessable): %r", self.context.path,
                            ids[0] if len(ids) == 1 else f"a submission of {len(ids)} posts",
                            exc, extra=post_fields(ids))
                subs[0].reply.fail(UnprocessablePostError(f"the model failed on this input: "
                                                          f"{exc!r}"))
                return [], []
            mid = len(subs) // 2
            left, left_p = await self._predict_isolating(backend, subs[:mid])
            right, right_p = await self._predict_isolating(backend, subs[mid:])
            if not left and not right:
                raise
            return left + right, left_p + right_p
        self._inference.observe(time.perf_counter() - started)
        self._sizes.observe(len(posts))
        self._posts.inc(len(posts))
        return subs, [np.asarray(probabilities, dtype=np.float32)]

    async def _model_works(self, backend: SentimentBackend) -> bool:
        """Canary: does the model still score a plain text? Distinguishes a poison post (the
        canary passes) from a broken model (it fails too), so that a broken model under light
        load - one submission per batch - is not mistaken for a stream of bad posts."""
        try:
            await anyio.to_thread.run_sync(self._predict_texts, backend, [CANARY_TEXT], ["en"])
        except Exception:
            return False
        return True


def normalized_texts(posts: list[Post]) -> list[str]:
    """Each post's normalised text: the language stage's where it computed one, the others
    normalised here in one call."""
    texts = [p.normalized for p in posts]
    todo = [i for i, text in enumerate(texts) if text is None]
    if todo:
        for i, text in zip(todo, normalize_batch([posts[i].request.text for i in todo]),
                           strict=True):
            texts[i] = text
    return [text or "" for text in texts]
