"""``ActorSystem``: owns the task group every actor runs in, the registry of paths, and the
dead-letter handler.

    async with ActorSystem() as system:
        ref = await system.spawn(Greeter, "greeter")        # path "/greeter"
        print(await ref.ask("hi"))
    # leaving the block stops top-level actors and supervisors in reverse start order (drained)

Paths look like file paths: ``/root/pipeline/classifier-0``. Actors spawned here are not
supervised (a crash stops them); put actors that must be restarted under a ``Supervisor``
(``sentiflow.supervisors``), which registers itself here as a node of the tree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import anyio
from anyio.abc import TaskGroup

from sentiflow.runtime.actor import Actor
from sentiflow.runtime.cell import ActorCell, OnCrash, Parent
from sentiflow.runtime.deadletters import DeadLetter, DeadLetterHandler, log_dead_letter
from sentiflow.runtime.errors import (
    ActorNotFound,
    InvalidName,
    NameTaken,
    SystemNotRunning,
)
from sentiflow.runtime.ref import ActorRef
from sentiflow.runtime.snapshot import NodeSnapshot, SystemSnapshot

log = logging.getLogger("sentiflow.runtime")

C = TypeVar("C")


class Node(Protocol):
    """Anything with a place in the tree: actor cells and supervisors."""

    @property
    def path(self) -> str: ...

    def snapshot(self, children: tuple[NodeSnapshot, ...] = ()) -> NodeSnapshot: ...

    async def shutdown(self, deadline: float | None = None) -> None: ...


class _Unsupervised:
    """Parent of actors spawned without a supervisor: an instance that ends, stays ended."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    def child_exited(self, child: Any, incarnation: int, error: BaseException | None) -> None:
        cell: ActorCell[Any] = child
        if error is not None:
            log.error("%s crashed and is not supervised: stopping it", cell.path,
                      exc_info=error)
        self._system._start_task(cell.shutdown)


def child_path(parent: str, name: str) -> str:
    """``parent + "/" + name`` after checking the name; raises ``InvalidName``."""
    if not name or "/" in name or name.strip() != name:
        raise InvalidName(f"invalid actor name {name!r}: non-empty, no '/', no outer spaces")
    return f"{parent}/{name}"


class ActorSystem:
    def __init__(self, name: str = "sentiflow", *,
                 dead_letter_handler: DeadLetterHandler = log_dead_letter,
                 default_capacity: int = 1000, default_shutdown: float = 5.0) -> None:
        self.name = name
        self.dead_letter_handler = dead_letter_handler
        self.default_capacity = default_capacity
        self.default_shutdown = default_shutdown
        self.dead_letters = 0
        self.unsupervised: Parent = _Unsupervised(self)
        self._nodes: dict[str, Node] = {}
        self._top: list[Node] = []
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        tg = self._require_running()
        try:
            if exc_type is None:
                await self.stop_all()
        finally:
            self._tg = None
            tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)

    # -- public API -----------------------------------------------------------------------

    async def spawn(self, factory: Callable[[], Actor[C]], name: str, *,
                    capacity: int | None = None, shutdown: float | None = None,
                    on_crash: OnCrash = OnCrash.DEAD_LETTER) -> ActorRef[C]:
        """Start an unsupervised top-level actor at ``/<name>``; returns once ``started()``
        completed (its exception, if any, is raised here)."""
        cell = self.new_cell("", name, factory, capacity=capacity, shutdown=shutdown,
                              parent=self.unsupervised, on_crash=on_crash)
        self._top.append(cell)
        await self._start_cell(cell)
        return cell.ref

    def lookup(self, path: str) -> ActorRef[Any]:
        """The ref of the actor at ``path`` (e.g. "/root/pipeline/classifier-0")."""
        node = self._nodes.get(path)
        if not isinstance(node, ActorCell):
            raise ActorNotFound(f"no actor at {path!r}")
        return node.ref

    async def stop(self, target: ActorRef[Any] | str, *, deadline: float | None = None) -> None:
        """Stop an actor (or a supervisor's subtree) for good, draining within ``deadline`` s."""
        path = target if isinstance(target, str) else target.path
        node = self._nodes.get(path)
        if node is None:
            raise ActorNotFound(f"nothing at {path!r}")
        await node.shutdown(deadline)

    async def stop_all(self) -> None:
        """Stop every top-level node in reverse start order (each drains its mailboxes)."""
        for node in reversed(self._top):
            await node.shutdown()
        self._top.clear()

    def snapshot(self) -> SystemSnapshot:
        """The whole tree, children in start order."""
        by_parent: dict[str, list[str]] = {}
        for path in self._nodes:
            by_parent.setdefault(path.rsplit("/", 1)[0], []).append(path)

        def build(path: str) -> NodeSnapshot:
            kids = tuple(build(p) for p in by_parent.get(path, ()))
            return self._nodes[path].snapshot(kids)

        return SystemSnapshot(self.name, time.time(), self.dead_letters,
                              tuple(build(p) for p in by_parent.get("", ())))

    def dead_letter(self, letter: DeadLetter) -> None:
        """Report a message that was not processed; a failing handler is logged, not raised."""
        self.dead_letters += 1
        try:
            self.dead_letter_handler(letter)
        except Exception:
            log.exception("dead-letter handler failed for %r", letter)

    # -- plumbing for cells and supervisors ---------------------------------------------------

    def register(self, node: Node, *, top_level: bool = False) -> None:
        """Add a node (supervisors call this); raises ``NameTaken``."""
        if node.path in self._nodes:
            raise NameTaken(f"{node.path!r} is already in use")
        self._nodes[node.path] = node
        if top_level:
            self._top.append(node)

    def _unregister(self, path: str) -> None:
        node = self._nodes.pop(path, None)
        if node is not None and node in self._top:
            self._top.remove(node)

    def new_cell(self, parent_path: str, name: str, factory: Callable[[], Actor[C]], *,
                 capacity: int | None, shutdown: float | None, parent: Parent,
                 on_crash: OnCrash = OnCrash.DEAD_LETTER) -> ActorCell[C]:
        """Create and register a cell (not started yet). Used by supervisors."""
        self._require_running()
        cell = ActorCell(self, child_path(parent_path, name), factory,
                         capacity=self.default_capacity if capacity is None else capacity,
                         shutdown=self.default_shutdown if shutdown is None else shutdown,
                         parent=parent, on_crash=on_crash)
        self.register(cell)
        return cell

    async def _start_cell(self, cell: ActorCell[Any]) -> None:
        try:
            await cell.start()
        except BaseException:
            cell.terminate()
            raise

    def _start_task(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        self._require_running().start_soon(fn, *args)

    def _require_running(self) -> TaskGroup:
        if self._tg is None:
            raise SystemNotRunning("use the ActorSystem inside `async with`")
        return self._tg

