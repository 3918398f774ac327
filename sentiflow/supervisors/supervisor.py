"""``Supervisor``: starts children in order, restarts them by strategy, gives up by intensity.

How a failure is handled (one at a time, in the supervisor's own control task):

1. The child's instance ended on its own (crash, or ``context.stop()``); its cell notifies us.
2. Restart type: TEMPORARY never restarts, TRANSIENT only after a crash, PERMANENT always.
   A child that is not restarted is stopped for good (its queue is dead-lettered).
3. Intensity: more than ``max_restarts`` restarts within ``period`` seconds -> give up: halt all
   children, and escalate to the parent (which treats this supervisor as a crashed child), or,
   for the root, end ``run_root`` with ``SupervisorGaveUp``.
4. Optional backoff, then the strategy: restart the child (ONE_FOR_ONE), every child
   (ONE_FOR_ALL) or the child and those started after it (REST_FOR_ONE); siblings are halted
   in reverse start order first, then restarted in start order. Mailboxes and refs survive.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, TypeAlias

import anyio

from sentiflow.runtime import (
    ActorCell,
    ActorRef,
    ActorState,
    ActorSystem,
    ErrorInfo,
    NodeSnapshot,
    SupervisorSnapshot,
    child_path,
)
from sentiflow.supervisors.spec import ChildSpec, Restart, Strategy, SupervisorSpec

log = logging.getLogger("sentiflow.supervisors")


class SupervisorGaveUp(Exception):  # noqa: N818 (names the event, like Erlang's shutdown reason)
    """Restart intensity exceeded: the supervisor stopped its children and gave up."""

    def __init__(self, path: str, cause: BaseException | None) -> None:
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else "normal exits"
        super().__init__(f"{path}: too many restarts, giving up (last: {detail})")
        self.path = path
        self.cause = cause


class ChildStartFailed(Exception):  # noqa: N818
    """A child's ``started()`` (or factory) raised during the supervisor's ordered start."""

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(f"{path}: failed to start: {type(cause).__name__}: {cause}")
        self.path = path
        self.cause = cause


Child: TypeAlias = "ActorCell[Any] | Supervisor"


class _Entry:
    __slots__ = ("node", "spec")

    def __init__(self, spec: ChildSpec, node: Child) -> None:
        self.spec = spec
        self.node = node


async def start_supervisor(system: ActorSystem, spec: SupervisorSpec, *,
                           name: str = "root") -> Supervisor:
    """Start a top-level supervisor at ``/<name>`` and its children in order (each child's
    ``started()`` completes before the next starts). Raises ``ChildStartFailed`` after
    stopping the children already started."""
    sup = Supervisor(system, spec, child_path("", name), parent=None)
    system.register(sup, top_level=True)
    try:
        await sup.start()
    except BaseException:
        await sup.shutdown()
        raise
    return sup


class Supervisor:
    """A running supervisor: ``start_supervisor(...)`` at top level, or a child whose
    ``ChildSpec.factory`` is a ``SupervisorSpec``."""

    def __init__(self, system: ActorSystem, spec: SupervisorSpec, path: str,
                 parent: Supervisor | None) -> None:
        self.system = system
        self.spec = spec
        self.path = path
        self.parent = parent
        self.state = ActorState.STARTING
        self.incarnation = 0
        self.restarts = 0
        self.last_error: ErrorInfo | None = None
        self.gave_up: SupervisorGaveUp | None = None
        self._entries: list[_Entry] = []
        self._restart_times: deque[float] = deque()
        self._events: deque[tuple[Child, int, BaseException | None]] = deque()
        self._wakeup = anyio.Event()
        self._lock = anyio.Lock()
        self._control = anyio.CancelScope()
        self._control_running = False
        self._finished = anyio.Event()

    def __repr__(self) -> str:
        return f"<Supervisor {self.path} {self.spec.strategy} {self.state}>"

    # -- looking inside -------------------------------------------------------------------------

    @property
    def child_ids(self) -> tuple[str, ...]:
        return tuple(e.spec.id for e in self._entries)

    def child(self, child_id: str) -> ActorRef[Any]:
        """The ref of the actor child ``child_id`` (stable across its restarts)."""
        node = self._node(child_id)
        if not isinstance(node, ActorCell):
            raise KeyError(f"{self.path}/{child_id} is a supervisor, use .supervisor()")
        return node.ref

    def supervisor(self, child_id: str) -> Supervisor:
        node = self._node(child_id)
        if not isinstance(node, Supervisor):
            raise KeyError(f"{self.path}/{child_id} is an actor, use .child()")
        return node

    def _node(self, child_id: str) -> Child:
        for entry in self._entries:
            if entry.spec.id == child_id:
                return entry.node
        raise KeyError(f"{self.path} has no child {child_id!r}")

    @property
    def healthy(self) -> bool:
        """Running and not handling a failure, recursively (what the root's heartbeat needs)."""
        return self.state is ActorState.RUNNING and all(
            e.node.healthy for e in self._entries if isinstance(e.node, Supervisor))

    async def wait(self) -> SupervisorGaveUp | None:
        """Wait until this supervisor is stopped; returns why (None: an orderly shutdown)."""
        await self._finished.wait()
        return self.gave_up

    def snapshot(self, children: tuple[NodeSnapshot, ...] = ()) -> SupervisorSnapshot:
        return SupervisorSnapshot(
            path=self.path, strategy=str(self.spec.strategy), state=self.state,
            restarts=self.restarts, max_restarts=self.spec.max_restarts,
            period=self.spec.period, last_error=self.last_error, children=children)

    # -- lifecycle: the same interface as ActorCell, so a parent treats both alike --------------

    async def start(self) -> None:
        """Start every child in order; raises ``ChildStartFailed``."""
        self.incarnation += 1
        self.gave_up = None
        self._restart_times.clear()
        if not self._entries:
            self._entries = [_Entry(c, self._make(c)) for c in self.spec.children]
        for entry in self._entries:
            await self._start_child(entry, again=self.incarnation > 1)
        self.state = ActorState.RUNNING
        if not self._control_running:
            self._control_running = True
            self.system._start_task(self._control_loop)

    async def restart(self) -> None:
        """Restart the whole subtree (after escalation): same cells, mailboxes and refs."""
        await self.halt()
        self.restarts += 1
        async with self._lock:
            self.state = ActorState.RESTARTING
            await self.start()

    async def halt(self) -> None:
        """Halt every child's instance, in reverse start order; mailboxes are kept."""
        async with self._lock:
            if self.state is not ActorState.STOPPING:
                self.state = ActorState.RESTARTING
            self._events.clear()
            for entry in reversed(self._entries):
                await entry.node.halt()

    async def shutdown(self, deadline: float | None = None) -> None:
        """Stop for good: children in reverse start order, each draining its mailbox within
        its own shutdown deadline (or ``deadline`` if given)."""
        if self.state is ActorState.STOPPED:
            return
        self.state = ActorState.STOPPING
        self._control.cancel()
        async with self._lock:
            for entry in reversed(self._entries):
                await entry.node.shutdown(deadline)
        self._stopped()

    def terminate(self) -> None:
        for entry in reversed(self._entries):
            entry.node.terminate()
        self._stopped()

    def _stopped(self) -> None:
        self.state = ActorState.STOPPED
        self.system._unregister(self.path)
        self._finished.set()

    # -- failures -------------------------------------------------------------------------------

    def child_exited(self, child: Any, incarnation: int, error: BaseException | None) -> None:
        """Parent protocol: queue the event for the control task (never blocks)."""
        self._events.append((child, incarnation, error))
        self._wakeup.set()

    async def _control_loop(self) -> None:
        with self._control:
            while True:
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
                while self._events:
                    child, incarnation, error = self._events.popleft()
                    async with self._lock:
                        await self._handle_exit(child, incarnation, error)

    async def _handle_exit(self, child: Child, incarnation: int,
                           error: BaseException | None) -> None:
        entry = next((e for e in self._entries if e.node is child), None)
        if (entry is None or child.incarnation != incarnation
                or self.state is not ActorState.RUNNING):
            return  # stale: already restarted, halted or being stopped
        if error is not None:
            self.last_error = ErrorInfo.of(error, time.time())
        if not _should_restart(entry.spec.restart, error):
            log.info("%s exited (%r); %s: not restarted", child.path, error, entry.spec.restart)
            await child.shutdown()
            if entry.spec.restart is Restart.TEMPORARY:
                self._entries.remove(entry)
            return
        self.state = ActorState.RESTARTING
        failed: _Entry | None = entry
        while failed is not None:
            if not self._allow_restart():
                await self._give_up(error)
                return
            if self.spec.backoff is not None:
                await anyio.sleep(self.spec.backoff.delay(len(self._restart_times)))
            log.warning("%s: restarting after %r (%s)", self.path, error, self.spec.strategy)
            failed, error = await self._apply_strategy(failed)
        self.state = ActorState.RUNNING

    def _allow_restart(self) -> bool:
        """Record a restart; False when that exceeds ``max_restarts`` within ``period``."""
        now = time.monotonic()
        times = self._restart_times
        times.append(now)
        while times and times[0] <= now - self.spec.period:
            times.popleft()
        return len(times) <= self.spec.max_restarts

    async def _apply_strategy(self, failed: _Entry) -> tuple[_Entry | None, BaseException | None]:
        """Restart per strategy; returns the entry whose restart failed (and why), if any."""
        index = self._entries.index(failed)
        if self.spec.strategy is Strategy.ONE_FOR_ONE:
            targets = [failed]
        elif self.spec.strategy is Strategy.ONE_FOR_ALL:
            targets = list(self._entries)
        else:
            targets = self._entries[index:]
        for entry in reversed(targets):
            await entry.node.halt()
        for entry in targets:
            if entry is not failed and entry.spec.restart is Restart.TEMPORARY:
                await entry.node.shutdown()  # OTP: temporary siblings are not restarted
                self._entries.remove(entry)
                continue
            self.restarts += 1
            try:
                await entry.node.restart()
            except Exception as exc:
                log.error("%s: restart failed: %r", entry.node.path, exc)
                return entry, exc
        return None, None

    async def _give_up(self, error: BaseException | None) -> None:
        self.gave_up = SupervisorGaveUp(self.path, error)
        self.last_error = ErrorInfo.of(self.gave_up, time.time())
        log.error("%s", self.gave_up)
        for entry in reversed(self._entries):
            await entry.node.halt()
        if self.parent is not None:
            self.state = ActorState.RESTARTING
            self.parent.child_exited(self, self.incarnation, self.gave_up)
        else:
            self.state = ActorState.STOPPING
            self.terminate()
            self._control.cancel()

    # -- helpers --------------------------------------------------------------------------------

    async def _start_child(self, entry: _Entry, *, again: bool) -> None:
        try:
            await (entry.node.restart() if again else entry.node.start())
        except ChildStartFailed:
            raise
        except Exception as exc:
            raise ChildStartFailed(entry.node.path, exc) from exc

    def _make(self, child_spec: ChildSpec) -> Child:
        if isinstance(child_spec.factory, SupervisorSpec):
            sup = Supervisor(self.system, child_spec.factory,
                             child_path(self.path, child_spec.id), parent=self)
            self.system.register(sup)
            return sup
        return self.system.new_cell(self.path, child_spec.id, child_spec.factory,
                                    capacity=child_spec.mailbox_capacity,
                                    shutdown=child_spec.shutdown, parent=self,
                                    on_crash=child_spec.on_crash)


def _should_restart(restart: Restart, error: BaseException | None) -> bool:
    if restart is Restart.PERMANENT:
        return True
    return restart is Restart.TRANSIENT and error is not None
