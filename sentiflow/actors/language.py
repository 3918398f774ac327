"""LanguageDetector: resolves each post's language, then hands the group to a classifier.

The caller's explicit code wins; ``"auto"`` posts are normalised and detected (``und`` when the
detector cannot tell: such posts are still classified, never dropped). One of a pool; the node
sends each submission to the least-loaded member, and each member forwards to the least-loaded
classifier (one per device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from sentiflow.actors.messages import Submission
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.preprocess import normalize_batch
from sentiflow.runtime import Actor, ActorRef


def least_loaded(refs: Sequence[ActorRef[Submission]]) -> ActorRef[Submission]:
    """The ref with the shallowest mailbox (the first on ties)."""
    return min(refs, key=lambda ref: ref.mailbox_depth)


class LanguageDetectorActor(Actor[Submission]):
    def __init__(self, detector: Callable[[], LanguageDetector],
                 classifier_paths: Sequence[str]) -> None:
        #: Called per submission: a promoted model's detector (its language head) takes over.
        self._detector = detector
        self._classifier_paths = tuple(classifier_paths)
        self._classifiers: tuple[ActorRef[Submission], ...] = ()

    async def started(self) -> None:
        self._classifiers = tuple(self.context.lookup(p) for p in self._classifier_paths)

    async def receive(self, message: Submission) -> None:
        posts = message.posts
        auto = [i for i, p in enumerate(posts) if p.request.language == "auto"]
        resolved = [p.request.language for p in posts]
        if auto:
            normalized = normalize_batch([posts[i].request.text for i in auto])
            guesses = self._detector().detect_batch_normalized(normalized)
            for i, guess in zip(auto, guesses, strict=True):
                resolved[i] = guess.language
        forwarded = Submission(
            posts=tuple(replace(p, language=lang) for p, lang in zip(posts, resolved, strict=True)),
            reply=message.reply,
            lane=message.lane,
        )
        await least_loaded(self._classifiers).tell(forwarded, priority=message.lane)
