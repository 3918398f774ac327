"""Dead letters: messages the runtime could not (or may not) process, reported, never dropped.

The ``ActorSystem`` calls its dead-letter handler synchronously on the event loop; a handler
must not block (put the record on a queue or into a log). The default logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger("sentiflow.runtime.deadletters")


class DeadLetterReason(StrEnum):
    CRASHED = "crashed"  # processing this message raised; error holds the exception
    INTERRUPTED = "interrupted"  # processing was cancelled at a shutdown or halt deadline
    STOPPED = "stopped"  # still queued when the actor stopped for good


@dataclass(frozen=True, slots=True)
class DeadLetter:
    path: str
    message: object
    reason: DeadLetterReason
    error: BaseException | None
    at: float  # time.time()
    was_ask: bool = False  # the asker was told (ActorCrashed / ActorStopped) as well


DeadLetterHandler = Callable[[DeadLetter], None]


def log_dead_letter(letter: DeadLetter) -> None:
    """Default handler: one warning per dead letter."""
    log.warning("dead letter at %s (%s): %r%s", letter.path, letter.reason, letter.message,
                f" error={letter.error!r}" if letter.error is not None else "")
