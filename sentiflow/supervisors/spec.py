"""Declarative supervision: what to start, in which order, and what to do when it fails.

Erlang/OTP vocabulary and defaults: ``max_restarts=1`` within ``period=5`` s (OTP's
intensity/period), ``Restart.PERMANENT``, ``Strategy.ONE_FOR_ONE``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sentiflow.runtime import Actor, OnCrash


class InvalidSpec(ValueError):  # noqa: N818
    """A supervisor or child spec is inconsistent (duplicate ids, negative limits, ...)."""


class Strategy(StrEnum):
    ONE_FOR_ONE = "one_for_one"  # restart only the child that failed
    ONE_FOR_ALL = "one_for_all"  # restart every child (stopped in reverse, started in order)
    REST_FOR_ONE = "rest_for_one"  # restart the failed child and those started after it


class Restart(StrEnum):
    PERMANENT = "permanent"  # always restarted (crash or normal exit)
    TRANSIENT = "transient"  # restarted only after a crash
    TEMPORARY = "temporary"  # never restarted


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the n-th restart within the period: ``initial * multiplier**(n-1)``,
    capped at ``maximum``. Off by default (OTP restarts at once)."""

    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1:
            raise InvalidSpec(f"bad backoff {self}")

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.multiplier ** max(0, attempt - 1))


ActorFactory = Callable[[], Actor[Any]]


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child: ``factory`` makes a fresh actor instance (called at each (re)start), or is a
    ``SupervisorSpec`` for a nested supervisor. ``None`` capacity/shutdown take the system's
    defaults (1000 messages, 5 s)."""

    id: str
    factory: ActorFactory | SupervisorSpec
    restart: Restart = Restart.PERMANENT
    mailbox_capacity: int | None = None
    shutdown: float | None = None  # drain deadline, seconds
    on_crash: OnCrash = OnCrash.DEAD_LETTER  # fate of the message that crashed the actor

    def __post_init__(self) -> None:
        if self.mailbox_capacity is not None and self.mailbox_capacity < 1:
            raise InvalidSpec(f"{self.id}: mailbox_capacity must be >= 1")
        if self.shutdown is not None and self.shutdown < 0:
            raise InvalidSpec(f"{self.id}: shutdown must be >= 0")


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    children: Sequence[ChildSpec] = field(default_factory=tuple)
    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 1
    period: float = 5.0
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(self.children))
        ids = [c.id for c in self.children]
        if len(set(ids)) != len(ids):
            raise InvalidSpec(f"duplicate child ids in {ids}")
        if self.max_restarts < 0 or self.period <= 0:
            raise InvalidSpec("max_restarts must be >= 0 and period > 0")
