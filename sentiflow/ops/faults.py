"""Fault injection for the fault-injection suite (``bench/fault_injection.py``) and tests.

Nothing here runs in a normal node: these functions are called by the suite against a node it
started itself. They reach into the runtime on purpose (an actor's cell), because the point is
to crash an actor exactly like a bug would, from inside its own task, so that the real crash
path runs: last error recorded, the message in hand dead-lettered and its callers answered, the
supervisor's restart (or give-up).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from sentiflow.runtime import ActorSystem, NotInActor


class InjectedFault(RuntimeError):  # noqa: N818 (names the event, like SupervisorGaveUp)
    """The exception an injected crash raises inside the actor."""


async def _raise(error: BaseException) -> None:
    raise error


def crash_actor(system: ActorSystem, path: str) -> bool:
    """Crash the live instance of the actor at ``path`` (a background task of the actor raises
    :class:`InjectedFault`). False when the actor has no live instance right now (it is being
    restarted) or is gone."""
    try:
        ref = system.lookup(path)
    except LookupError:
        return False
    cell = ref._cell  # deliberate: see module docstring
    try:
        cell.start_soon(_raise, InjectedFault(f"injected crash at {path}"))
    except NotInActor:
        return False
    return True


def stall_event_loop(seconds: float) -> None:
    """Block the calling thread (call it on the event loop) for ``seconds``: what a blocking
    call in async code does to the node. The watchdog's pings must stop meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(0.01, max(0.0, end - time.monotonic())))


def actor_paths(system: ActorSystem, prefix: str = "/") -> Iterator[str]:
    """Paths of the actors (not supervisors) under ``prefix``, for picking victims."""
    from sentiflow.runtime import ActorSnapshot

    for node in system.snapshot().walk():
        if isinstance(node, ActorSnapshot) and node.path.startswith(prefix):
            yield node.path
