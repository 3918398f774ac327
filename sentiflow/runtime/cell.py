"""``ActorCell``: the slot that outlives actor instances. It owns the mailbox, the ref, the
statistics, and runs the message loop of the current instance.

Lifecycle, driven by the cell's parent (a ``Supervisor``, or the system for unsupervised
actors):

    start() -> RUNNING --crash / context.stop()--> parent.child_exited(...)
    halt()     end the instance after its current message; mailbox kept (sibling restarts)
    restart()  a new instance from the factory; same mailbox, same ref
    shutdown() close the mailbox, process what is queued until the deadline, then stop;
               leftovers go to dead letters and their asks fail with ActorStopped

A crash affects only the message being processed: it is re-queued once (``OnCrash.REDELIVER``)
or reported to the dead-letter handler with the error (``OnCrash.DEAD_LETTER``, the default);
an asker gets ``ActorCrashed`` at once.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from sentiflow.runtime.actor import Actor, ActorContext
from sentiflow.runtime.deadletters import DeadLetter, DeadLetterReason
from sentiflow.runtime.errors import ActorCrashed, ActorError, ActorStopped, NotInActor
from sentiflow.runtime.mailbox import Mailbox
from sentiflow.runtime.metrics import Histogram, Metrics
from sentiflow.runtime.ref import ActorRef
from sentiflow.runtime.reply import DeferredReply
from sentiflow.runtime.snapshot import ActorSnapshot, ActorState, ErrorInfo, NodeSnapshot

if TYPE_CHECKING:
    from sentiflow.runtime.system import ActorSystem

log = logging.getLogger("sentiflow.runtime")

M = TypeVar("M")
C = TypeVar("C")

#: What travels through a mailbox: (message, reply slot or None for a tell, priority lane).
Envelope: TypeAlias = tuple[Any, DeferredReply | None, int]

#: Messages processed back to back before the loop yields to other tasks (fairness).
_BURST = 64


class OnCrash(StrEnum):
    """What happens to the message whose processing crashed the actor."""

    DEAD_LETTER = "dead_letter"  # report it with the error to the dead-letter handler
    REDELIVER = "redeliver"  # put it back at the head of its lane once; dead-letter if it recurs


class Parent(Protocol):
    """Whoever decides what happens when an instance ends on its own (crash or self-stop)."""

    def child_exited(self, child: Any, incarnation: int, error: BaseException | None) -> None:
        """``child`` (a cell, or a nested supervisor) ended its ``incarnation`` on its own.
        Called on the event loop, must not block. ``error`` is None for ``context.stop()``."""


class ActorCell(Generic[M]):
    def __init__(self, system: ActorSystem, path: str, factory: Callable[[], Actor[M]], *,
                 capacity: int, shutdown: float, parent: Parent,
                 on_crash: OnCrash = OnCrash.DEAD_LETTER) -> None:
        self.system = system
        self.path = path
        self.factory = factory
        self.parent = parent
        self.on_crash = on_crash
        self.shutdown_timeout = shutdown
        self.mailbox: Mailbox[Envelope] = Mailbox(capacity, path=path)
        self.ref: ActorRef[M] = ActorRef(self)
        self.context: ActorContext[M] = ActorContext(self)
        self.metrics = Metrics()
        self.state = ActorState.STARTING
        self.actor: Actor[M] | None = None
        self.actor_class = getattr(factory, "__name__", type(factory).__name__)
        self.incarnation = 0
        self.restarts = 0
        self.processing_time = Histogram()
        self.last_error: ErrorInfo | None = None
        self.children: list[ActorCell[Any]] = []
        self._current: Envelope | None = None
        self._redelivered: Envelope | None = None
        self._outstanding: set[DeferredReply] = set()
        self._interrupt = False  # end the instance after the current message
        self._self_stop = False
        self._live = False
        self._done = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._tg: TaskGroup | None = None

    def __repr__(self) -> str:
        return f"<ActorCell {self.path} {self.state}>"

    # -- lifecycle (called by the parent) -----------------------------------------------------

    async def start(self) -> None:
        """Create an instance and run ``started()``; returns once it runs. Re-raises the
        exception of the factory or of ``started()`` (the instance is then discarded)."""
        if self.state is ActorState.STOPPED:
            raise ActorStopped(self.path)
        if self.incarnation:
            self.state = ActorState.RESTARTING
        actor = self.factory()
        actor._context = self.context
        self.actor = actor
        self.actor_class = type(actor).__name__
        self.incarnation += 1
        self._interrupt = self._self_stop = False
        self._outstanding = set()
        self._done = anyio.Event()
        started = anyio.Event()
        failure: list[BaseException] = []
        self._live = True
        self.system._start_task(self._serve, actor, started, failure)
        await started.wait()
        if failure:
            raise failure[0]
        if self.state is not ActorState.STOPPING:
            self.state = ActorState.RUNNING

    async def restart(self) -> None:
        """Replace the instance (after a crash, or a ``halt``); the mailbox is kept."""
        if self._live:
            await self.halt()
        self.restarts += 1
        await self.start()

    async def halt(self) -> None:
        """End the current instance after its current message, without draining the mailbox
        (cancelled if that takes longer than the shutdown deadline)."""
        if not self._live:
            return
        if self.state is not ActorState.STOPPING:
            self.state = ActorState.RESTARTING
        self._interrupt = True
        await self._wait_instance_end()

    async def shutdown(self, deadline: float | None = None) -> None:
        """Stop for good: children first (reverse start order), then drain this mailbox until
        empty or ``deadline`` seconds (default: the cell's shutdown deadline); leftovers are
        dead-lettered, pending asks fail with ``ActorStopped``."""
        if self.state is ActorState.STOPPED:
            return
        self.state = ActorState.STOPPING
        for child in reversed(self.children):
            await child.shutdown()
        self.mailbox.close()
        if self._live:
            await self._wait_instance_end(deadline)
        self.terminate()

    def terminate(self) -> None:
        """Stop for good now, without running the actor (no live instance): everything still
        queued goes to dead letters."""
        self.mailbox.close()
        now = time.time()
        for message, reply, _ in self.mailbox.drain_nowait():
            if reply is not None:
                reply.fail(ActorStopped(self.path, "stopped before processing the message"))
            self.system.dead_letter(DeadLetter(self.path, message, DeadLetterReason.STOPPED,
                                               None, now, reply is not None))
        self.state = ActorState.STOPPED
        self.system._unregister(self.path)

    async def _wait_instance_end(self, deadline: float | None = None) -> None:
        self.mailbox.wake()
        with anyio.move_on_after(self.shutdown_timeout if deadline is None else deadline):
            await self._done.wait()
        if not self._done.is_set():
            if self._scope is not None:
                self._scope.cancel()
            await self._done.wait()

    # -- the instance's task ------------------------------------------------------------------

    async def _serve(self, actor: Actor[M], started: anyio.Event,
                     failure: list[BaseException]) -> None:
        incarnation = self.incarnation
        error: BaseException | None = None
        running = False
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    try:
                        await actor.started()
                    except Exception as exc:
                        failure.append(exc)
                    else:
                        running = True
                    finally:
                        started.set()
                    if running:
                        error = await self._loop(actor)
                    tg.cancel_scope.cancel()
            except Exception as exc:  # a background task failed (ExceptionGroup)
                error = _first_error(exc)
        self._tg = None
        self._scope = None
        if not running:
            self._end_without_instance(failure[0] if failure else None)
            return
        await self._end_instance(actor, incarnation, error)

    async def _loop(self, actor: Actor[M]) -> BaseException | None:
        """Process messages until told to stop; returns the crash exception, if any.

        The hot path, kept flat on purpose: the mailbox's dequeue and the histogram's observe
        are inlined (one deque pop, one ``receive`` await, one clock read, one bisect)."""
        mailbox = self.mailbox
        lanes = mailbox._lanes
        receive = actor.receive
        hist = self.processing_time
        counts, bounds = hist._counts, hist._bounds
        perf = time.perf_counter
        burst = 0
        t0 = perf()
        while True:
            if not mailbox._size:
                if self._interrupt or mailbox._closed:
                    return None
                await mailbox.wait()
                burst = 0
                t0 = perf()
                continue
            for lane in lanes:
                if lane:
                    envelope = lane.popleft()
                    break
            if mailbox._waiting:
                mailbox._admit_waiter()
            else:
                mailbox._size -= 1
            self._current = envelope
            try:
                result = await receive(envelope[0])
            except Exception as exc:
                return exc
            self._current = None
            reply = envelope[1]
            if reply is not None and not reply._deferred:
                reply.send(result)
            t1 = perf()
            dt = t1 - t0
            counts[bisect_left(bounds, dt)] += 1
            hist.sum += dt
            t0 = t1
            if self._interrupt:
                return None
            burst += 1
            if burst == _BURST:
                burst = 0
                await anyio.lowlevel.checkpoint()
                t0 = perf()

    async def _end_instance(self, actor: Actor[M], incarnation: int,
                            error: BaseException | None) -> None:
        envelope, self._current = self._current, None
        if error is not None:
            self.last_error = ErrorInfo.of(error, time.time())
            if self.state is ActorState.RUNNING:
                self.state = ActorState.RESTARTING
            if envelope is not None:
                self._crashed(envelope, error)
            leftover_error: ActorError = ActorCrashed(self.path, error)
        else:
            if envelope is not None:  # cancelled at a deadline while processing
                self._interrupted(envelope)
            leftover_error = ActorStopped(self.path, "instance ended before replying")
        with anyio.move_on_after(self.shutdown_timeout, shield=True):
            try:
                await actor.stopped()
            except Exception as exc:
                log.exception("%s: stopped() raised", self.path)
                self.last_error = ErrorInfo.of(exc, time.time())
        for pending in list(self._outstanding):
            pending.fail(leftover_error)
        self._finish_instance()
        if (error is not None or self._self_stop) and self.state is not ActorState.STOPPING:
            self.parent.child_exited(self, incarnation, error)

    def _end_without_instance(self, error: BaseException | None) -> None:
        if error is not None:
            self.last_error = ErrorInfo.of(error, time.time())
        for pending in list(self._outstanding):
            pending.fail(ActorCrashed(self.path, error) if error else ActorStopped(self.path))
        self._finish_instance()

    def _finish_instance(self) -> None:
        self.actor = None
        self._live = False
        self._outstanding = set()
        self._done.set()

    def _crashed(self, envelope: Envelope, error: BaseException) -> None:
        message, reply, priority = envelope
        if (self.on_crash is OnCrash.REDELIVER and envelope is not self._redelivered
                and self.mailbox.put_front(envelope, priority)):
            self._redelivered = envelope
            return
        if reply is not None:
            reply.fail(ActorCrashed(self.path, error))
        self.system.dead_letter(DeadLetter(self.path, message, DeadLetterReason.CRASHED, error,
                                           time.time(), reply is not None))

    def _interrupted(self, envelope: Envelope) -> None:
        message, reply, _ = envelope
        if reply is not None:
            reply.fail(ActorStopped(self.path, "interrupted at the shutdown deadline"))
        self.system.dead_letter(DeadLetter(self.path, message, DeadLetterReason.INTERRUPTED,
                                           None, time.time(), reply is not None))

    # -- services for ActorContext ------------------------------------------------------------

    def defer_reply(self) -> DeferredReply:
        envelope = self._current
        if envelope is None:
            raise NotInActor(f"{self.path}: defer_reply() is only valid inside receive()")
        reply = envelope[1]
        if reply is None:
            return DeferredReply(None)
        if reply._deferred:
            return reply
        reply._deferred = True
        reply._owner = self._outstanding
        self._outstanding.add(reply)
        return reply

    def start_soon(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self._tg is None:
            raise NotInActor(f"{self.path}: start_soon() needs a running instance")
        self._tg.start_soon(fn, *args)

    def request_stop(self) -> None:
        self._self_stop = self._interrupt = True
        self.mailbox.wake()

    async def spawn_child(self, factory: Callable[[], Actor[C]], name: str, *,
                          capacity: int | None, shutdown: float | None) -> ActorRef[C]:
        cell = self.system.new_cell(self.path, name, factory, capacity=capacity,
                                     shutdown=shutdown, parent=self.system.unsupervised)
        self.children.append(cell)
        await self.system._start_cell(cell)
        return cell.ref

    # -- introspection ------------------------------------------------------------------------

    @property
    def processed(self) -> int:
        return self.processing_time.count

    def snapshot(self, children: tuple[NodeSnapshot, ...] = ()) -> ActorSnapshot:
        hist = self.processing_time.snapshot()
        return ActorSnapshot(
            path=self.path, actor_class=self.actor_class, state=self.state,
            mailbox_depth=len(self.mailbox), mailbox_capacity=self.mailbox.capacity,
            processed=hist.count, processing_time=hist,
            restarts=self.restarts, last_error=self.last_error,
            metrics=self.metrics.snapshot(), children=children)


def _first_error(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc

