"""LanguageDetector: resolves each post's language, then hands the group to a classifier.

The caller's explicit code wins; ``"auto"`` posts are normalised and detected (``und`` when the
detector cannot tell: such posts are still classified, never dropped). One of a pool; the node
sends each submission to the least-loaded member, and each member forwards to the least-loaded
classifier (one per device).

Detection runs on the event loop (the language-ID head costs ~15 us a text in a batch, far less
than a worker thread's round trip) and is batched naturally, like the classifier: the
submissions that queued while the previous batch was detected are detected in one call. At one
text per call the head's fixed numpy overhead is ~100 us; under load, when the loop is the
bottleneck, batches form and that overhead is shared. A batch holds at most ``max_batch`` posts
(the tree passes ``classifier.max_batch``), so the stage buffers no more than the classifier
would take at once, on top of its bounded mailbox.
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


class LanguageDetectorActor(MicroBatchingActor[Submission]):
    def __init__(self, detector: Callable[[], LanguageDetector],
                 classifier_paths: Sequence[str], *, max_batch: int = 256) -> None:
        super().__init__(max_batch=max_batch, max_wait_s=0.0)  # natural batching
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
        auto = [(j, i) for j, m in enumerate(messages) for i, p in enumerate(m.posts)
                if p.request.language == "auto"]
        if auto:
            normalized = normalize_batch([messages[j].posts[i].request.text for j, i in auto])
            guesses = self._detector().detect_batch_normalized(normalized)
            for (j, i), guess in zip(auto, guesses, strict=True):
                resolved[j][i] = guess.language
        # Realtime first (stable: FIFO within a lane), each submission with its own lane.
        for j in sorted(range(len(messages)), key=lambda k: messages[k].lane):
            message = messages[j]
            forwarded = Submission(
                posts=tuple(replace(p, language=lang)
                            for p, lang in zip(message.posts, resolved[j], strict=True)),
                reply=message.reply,
                lane=message.lane,
            )
            await least_loaded(self._classifiers).tell(forwarded, priority=message.lane)
