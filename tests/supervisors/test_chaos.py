"""Chaos: a 4-stage supervised chain whose stages crash at random. Every message must be
accounted for exactly once: processed by the sink, or dead-lettered with its error."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from functools import partial

import anyio
import anyio.lowlevel
import pytest

from sentiflow.runtime import Actor, ActorRef, ActorSystem, DeadLetter, DeadLetterReason, OnCrash
from sentiflow.supervisors import ChildSpec, Strategy, SupervisorSpec, start_supervisor

pytestmark = pytest.mark.anyio

MESSAGES = 400


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    with anyio.fail_after(within):
        while True:
            if condition():
                return
            await anyio.sleep(0.005)


class Stage(Actor[int]):
    def __init__(self, rng: random.Random, crash_rate: float, next_path: str | None,
                 sink: list[int]) -> None:
        self.rng = rng
        self.crash_rate = crash_rate
        self.next_path = next_path
        self.sink = sink
        self.next: ActorRef[int] | None = None

    async def started(self) -> None:
        if self.next_path is not None:
            self.next = self.context.lookup(self.next_path)

    async def receive(self, message: int) -> None:
        if self.rng.random() < self.crash_rate:
            raise RuntimeError(f"chaos at {self.context.path} on {message}")
        if self.rng.random() < 0.1:
            await anyio.lowlevel.checkpoint()  # interleave with other stages
        if self.next is None:
            self.sink.append(message)
        else:
            await self.next.tell(message)


@pytest.mark.parametrize(("strategy", "capacity", "on_crash", "seed"), [
    (Strategy.ONE_FOR_ONE, 4, OnCrash.DEAD_LETTER, 1),
    (Strategy.ONE_FOR_ONE, 1000, OnCrash.REDELIVER, 2),
    (Strategy.REST_FOR_ONE, 1000, OnCrash.DEAD_LETTER, 3),
    (Strategy.ONE_FOR_ALL, 1000, OnCrash.DEAD_LETTER, 4),
])
async def test_random_crashes_lose_no_message(strategy: Strategy, capacity: int,
                                              on_crash: OnCrash, seed: int) -> None:
    rng = random.Random(seed)
    sink: list[int] = []
    dead: list[DeadLetter] = []
    names = [f"stage-{i}" for i in range(4)]
    # Built last to first so that each stage can look its successor up in started().
    next_paths = [f"/root/{n}" for n in names[1:]] + [None]
    children = [ChildSpec(name, partial(Stage, rng, 0.03, nxt, sink), mailbox_capacity=capacity,
                          on_crash=on_crash)
                for name, nxt in zip(names, next_paths, strict=True)]
    spec = SupervisorSpec(children[::-1], strategy=strategy, max_restarts=10_000,
                          period=1.0)
    async with ActorSystem(dead_letter_handler=dead.append) as system:
        root = await start_supervisor(system, spec)
        first = root.child("stage-0")
        for m in range(MESSAGES):
            await first.tell(m)
        await eventually(lambda: len(sink) + len(dead) == MESSAGES, within=20)
        restarts = sum(n.restarts for n in system.snapshot().walk() if n.kind == "actor")
    assert restarts > 0, "the chaos must actually have crashed something"
    assert all(d.reason is DeadLetterReason.CRASHED for d in dead)
    accounted = Counter(sink) + Counter(int(d.message) for d in dead)  # type: ignore[call-overload]
    assert accounted == Counter(range(MESSAGES)), "each message exactly once"
    if on_crash is OnCrash.REDELIVER:
        assert len(dead) < restarts, "redelivered messages mostly succeed the second time"
