"""LanguageDetector: resolves each post's language, then hands the group to a classifier.

The caller's explicit code wins; ``"auto"`` posts are normalised and detected (``und`` when the
detector cannot tell: such posts are still classified, never dropped). One of a pool; the node
fills the pool first member first (:func:`fill_first`: a member takes over only when the one
before it has a batch's worth queued), and each member forwards to the least-loaded classifier
(one per device: those do run in parallel).

Detection runs on the event loop (the language-ID head costs ~15 us a text in a batch, far less
than a worker thread's round trip). The stage *lingers*: a batch is held for up to
``max_wait_s`` after its first post (``language.max_wait_ms``, default 8 ms) or until it holds
``max_batch`` posts (the tree passes ``classifier.max_batch``), whichever comes first. As the
pipeline's first stage it decides the batch size of every later one: the classifier, the router
and the durable write each take a group formed here in one call, so their fixed costs (a numpy
call is ~1 us, a transaction ~70 us, an actor hop a few us) are shared. Natural batching alone
(``max_wait_ms = 0``) forms groups only once a queue has built up, so on this 2-core machine the
node settled at about 1.7 posts a batch and ~99 % of its core at 833 requests/s (p95 70-95 ms);
with a 4 ms linger batches held ~3.5-7 posts and CPU fell by 10-30 % (bench/bench_api.py,
``node-natural`` is the peer without it: p95 16 vs 93 ms in the fastest run); 8 ms makes them
~11-13 posts against 4 ms's ~7 for another ~10 % (peer ``node-4ms``, bench_api's rounds). The
wait costs a lone post at most those 8 ms, well inside the fast path's 50 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from sentiflow.actors.batching import MicroBatchingActor
from sentiflow.actors.messages import Submission
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.preprocess import normalize_batch
from sentiflow.runtime import ActorRef


def least_loaded(refs: Sequence[ActorRef[Submission]]) -> ActorRef[Submission]:
    """The ref with the shallowest mailbox (the first on ties)."""
    return min(refs, key=lambda ref: ref.mailbox_depth)


def fill_first(refs: Sequence[ActorRef[Submission]], spill_at: int) -> ActorRef[Submission]:
    """The first ref with fewer than ``spill_at`` queued messages, else the least loaded.

    How the node feeds the language pool. Every member runs on the same event loop, so
    spreading posts over them buys no parallelism, only smaller batches: with least-loaded
    routing, four requests arriving together went two and two to two detectors, each batch
    paying the detection call, its own linger timer and a classifier batch of its own
    (1,500 detector flushes for 761 classifier batches per 3,000 posts). Filling the first
    member keeps them in one batch; the others take over when it falls behind by a batch."""
    for ref in refs:
        if ref.mailbox_depth < spill_at:
            return ref
    return least_loaded(refs)


class LanguageDetectorActor(MicroBatchingActor[Submission]):
    def __init__(self, detector: Callable[[], LanguageDetector],
                 classifier_paths: Sequence[str], *, max_batch: int = 256,
                 max_wait_s: float = 0.0) -> None:
        super().__init__(max_batch=max_batch, max_wait_s=max_wait_s)  # 0: natural batching
        #: Called per batch: a promoted model's detector (its language head) takes over.
        self._detector = detector
        self._classifier_paths = tuple(classifier_paths)
        self._classifiers: tuple[ActorRef[Submission], ...] = ()

    async def started(self) -> None:
        self._classifiers = tuple(self.context.lookup(p) for p in self._classifier_paths)

    def batch_size_of(self, message: Submission) -> int:
        return len(message.posts)

    async def flush_batch(self, messages: list[Submission]) -> None:
        resolved = [[p.request.language for p in m.posts] for m in messages]
        normalized: list[list[str | None]] = [[None] * len(m.posts) for m in messages]
        auto = [(j, i) for j, m in enumerate(messages) for i, p in enumerate(m.posts)
                if p.request.language == "auto"]
        if auto:
            texts = normalize_batch([messages[j].posts[i].request.text for j, i in auto])
            guesses = self._detector().detect_batch_normalized(texts)
            for (j, i), text, guess in zip(auto, texts, guesses, strict=True):
                resolved[j][i] = guess.language
                normalized[j][i] = text  # passed on: the classifier need not normalise again
        # Realtime first (stable: FIFO within a lane), each submission with its own lane.
        for j in sorted(range(len(messages)), key=lambda k: messages[k].lane):
            message = messages[j]
            forwarded = Submission(
                posts=tuple(replace(p, language=lang, normalized=text)
                            for p, lang, text in zip(message.posts, resolved[j], normalized[j],
                                                     strict=True)),
                reply=message.reply,
                lane=message.lane,
            )
            await least_loaded(self._classifiers).tell(forwarded, priority=message.lane)
