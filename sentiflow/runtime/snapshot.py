"""Introspection records: immutable snapshots of actors, supervisors and the whole system.

Frozen dataclasses of plain values (strings, numbers, enums that are ``str``), so the console
and the JSON endpoint can serialise them with ``dataclasses.asdict`` + ``json.dumps``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from sentiflow.runtime.metrics import HistogramSnapshot, MetricSnapshot


class ActorState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The last error of an actor: exception type name, message and wall-clock time."""

    type: str
    message: str
    at: float  # time.time()

    @classmethod
    def of(cls, exc: BaseException, at: float) -> ErrorInfo:
        return cls(type(exc).__qualname__, str(exc), at)


@dataclass(frozen=True, slots=True)
class ActorSnapshot:
    path: str
    actor_class: str
    state: ActorState
    mailbox_depth: int
    mailbox_capacity: int
    processed: int
    processing_time: HistogramSnapshot
    restarts: int
    last_error: ErrorInfo | None
    metrics: Mapping[str, MetricSnapshot] = field(default_factory=dict)
    children: tuple[NodeSnapshot, ...] = ()
    kind: Literal["actor"] = "actor"


@dataclass(frozen=True, slots=True)
class SupervisorSnapshot:
    path: str
    strategy: str
    state: ActorState
    restarts: int  # restarts this supervisor performed (all children, all time)
    max_restarts: int
    period: float
    last_error: ErrorInfo | None
    children: tuple[NodeSnapshot, ...] = ()
    kind: Literal["supervisor"] = "supervisor"


NodeSnapshot = ActorSnapshot | SupervisorSnapshot


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    name: str
    at: float  # time.time()
    dead_letters: int
    roots: tuple[NodeSnapshot, ...]

    def walk(self) -> Iterator[NodeSnapshot]:
        """Every node, depth first, parents before children, in start order."""
        stack = list(reversed(self.roots))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def find(self, path: str) -> NodeSnapshot | None:
        return next((n for n in self.walk() if n.path == path), None)
