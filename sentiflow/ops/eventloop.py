"""Which asyncio event loop the node's process runs on, and running a coroutine on it.

Why uvloop by default: the node is CPU-bound in the event loop on a small machine (HTTP parsing,
socket I/O, Kafka fetches, task switches between actors); uvloop's libuv-based loop does the
same work for less CPU per request than the pure-Python selector loop, measured side by side in
``bench/bench_api.py --loops``. It is a drop-in asyncio loop: anyio, Hypercorn, asyncpg and
aiokafka run on it unchanged. ``asyncio`` stays selectable (``node.event_loop``) for debugging
(``PYTHONASYNCIODEBUG``) or a platform without uvloop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoopName = Literal["auto", "uvloop", "asyncio"]


class EventLoopUnavailableError(RuntimeError):
    """``node.event_loop = "uvloop"`` was asked for and uvloop cannot be imported."""


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``asyncio.Runner``: uvloop's for ``uvloop`` (and ``auto`` when it is
    installed), None (the standard loop) for ``asyncio``."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        if name == "uvloop":
            raise EventLoopUnavailableError(
                "node.event_loop = 'uvloop' but uvloop is not installed") from exc
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what a running loop is, for logs and introspection."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], event_loop: EventLoopName = "auto") -> T:
    """``asyncio.run(main)`` on the configured loop."""
    try:
        factory = loop_factory(event_loop)
    except EventLoopUnavailableError:
        main.close()  # never awaited: close it so Python does not warn about it
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
