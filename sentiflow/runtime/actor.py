"""The ``Actor`` base class and the ``ActorContext`` an actor uses to reach the runtime.

An actor is a class with three async hooks. The runtime calls them one at a time, never
concurrently, so an actor's state needs no locks:

- ``started()`` once per instance, before any message;
- ``receive(message)`` once per message; its return value is the reply to an ``ask``
  (ignored for a ``tell``), an exception crashes the instance (its supervisor decides what next);
- ``stopped()`` once when the instance ends (stop, restart or crash; best effort after a crash).

A restart creates a NEW instance from the factory: state lives in the instance, the mailbox and
the ``ActorRef`` live in the slot and survive. Messages should be immutable (frozen dataclasses
or msgspec Structs); the runtime passes them by reference and does not copy or check them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sentiflow.runtime.errors import NotInActor
from sentiflow.runtime.metrics import Metrics
from sentiflow.runtime.reply import DeferredReply

if TYPE_CHECKING:
    from sentiflow.runtime.cell import ActorCell
    from sentiflow.runtime.ref import ActorRef
    from sentiflow.runtime.system import ActorSystem

M = TypeVar("M")
C = TypeVar("C")


class Actor(Generic[M]):
    """Base class of every actor; ``M`` is the type of the messages it receives."""

    _context: ActorContext[M] | None = None

    @property
    def context(self) -> ActorContext[M]:
        """The runtime handle; available from ``started()`` on (not in ``__init__``)."""
        if self._context is None:
            raise NotInActor(f"{type(self).__name__}: context is set only once the actor starts")
        return self._context

    async def started(self) -> None:
        """Called before the first message of this instance (also after each restart)."""

    async def receive(self, message: M) -> Any:
        """Handle one message; the return value answers an ``ask``."""
        raise NotImplementedError(f"{type(self).__name__} must implement receive()")

    async def stopped(self) -> None:
        """Called when this instance ends. Flush pending work or deferred replies here."""


class ActorContext(Generic[M]):
    """What an actor can do with the runtime: its identity, replies, children, metrics."""

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell[M]) -> None:
        self._cell = cell

    @property
    def ref(self) -> ActorRef[M]:
        return self._cell.ref

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def name(self) -> str:
        return self._cell.path.rsplit("/", 1)[-1]

    @property
    def system(self) -> ActorSystem:
        return self._cell.system

    @property
    def metrics(self) -> Metrics:
        """Custom metrics published in this actor's snapshot (kept across restarts)."""
        return self._cell.metrics

    def defer_reply(self) -> DeferredReply:
        """Take over answering the current message: ``receive``'s return value is then ignored
        and the ask completes when the handle's ``send``/``fail`` is called.

        Must be called inside ``receive``. For a ``tell`` it returns a handle that discards the
        reply, so batching code can treat tells and asks alike. Handles still outstanding when
        the instance ends are failed with ``ActorCrashed`` (crash) or ``ActorStopped``.
        """
        return self._cell.defer_reply()

    def start_soon(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run a background task (a timer, a poller) tied to this actor instance: it is
        cancelled when the instance ends, and an exception in it crashes the instance."""
        self._cell.start_soon(fn, *args)

    async def spawn(self, factory: Callable[[], Actor[C]], name: str, *,
                    capacity: int | None = None, shutdown: float | None = None) -> ActorRef[C]:
        """Start a child actor at ``<my path>/<name>``; it is stopped (drained) before this
        actor stops for good. It is not supervised: if it crashes it stops. Use a
        ``Supervisor`` for children that must be restarted."""
        return await self._cell.spawn_child(factory, name, capacity=capacity, shutdown=shutdown)

    def lookup(self, path: str) -> ActorRef[Any]:
        """The ref registered at ``path``; raises ``ActorNotFound``."""
        return self._cell.system.lookup(path)

    def stop(self) -> None:
        """End this instance after the current message (a normal exit: a supervisor restarts
        only a PERMANENT child). Messages still queued are dead-lettered unless restarted."""
        self._cell.request_stop()
