"""ActorRef and ActorSystem: tell / try_tell / offer / ask, crashes, deferred replies,
backpressure, priorities, drain on stop, dead letters, introspection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from sentiflow.runtime import (
    SIZE_BOUNDS,
    Actor,
    ActorCrashed,
    ActorNotFound,
    ActorState,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    DeadLetter,
    DeadLetterReason,
    DeferredReply,
    HistogramSnapshot,
    InvalidName,
    MailboxFull,
    NameTaken,
    NotInActor,
    Priority,
    SystemNotRunning,
)

pytestmark = pytest.mark.anyio


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    with anyio.fail_after(within):
        while True:
            if condition():
                return
            await anyio.sleep(0.005)


@dataclass(frozen=True)
class Boom:
    reason: str = "boom"


class Echo(Actor[Any]):
    async def receive(self, message: Any) -> Any:
        if isinstance(message, Boom):
            raise ValueError(message.reason)
        return message


class Recorder(Actor[Any]):
    """Records messages; waits on ``gate`` before each one (a slow consumer)."""

    def __init__(self, seen: list[Any], gate: anyio.Event | None = None,
                 delay: float = 0.0) -> None:
        self.seen = seen
        self.gate = gate
        self.delay = delay

    async def receive(self, message: Any) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await anyio.sleep(self.delay)
        self.seen.append(message)


async def test_ask_returns_the_reply_and_tell_delivers() -> None:
    seen: list[Any] = []
    async with ActorSystem() as system:
        echo = await system.spawn(Echo, "echo")
        assert await echo.ask("hi") == "hi"
        rec = await system.spawn(lambda: Recorder(seen), "rec")
        for i in range(5):
            await rec.tell(i)
        assert rec.try_tell(5)
        await rec.offer(6, timeout=1)
    assert seen == list(range(7))  # leaving the system drained the mailbox


async def test_ask_raises_actor_crashed_promptly_with_the_cause() -> None:
    letters: list[DeadLetter] = []
    async with ActorSystem(dead_letter_handler=letters.append) as system:
        echo = await system.spawn(Echo, "echo")
        with anyio.fail_after(1):  # far below the ask timeout
            with pytest.raises(ActorCrashed) as info:
                await echo.ask(Boom("bad input"), timeout=30)
        assert isinstance(info.value.cause, ValueError)
        assert info.value.path == "/echo"
    assert [(d.reason, d.message, d.was_ask) for d in letters] == [
        (DeadLetterReason.CRASHED, Boom("bad input"), True)]


async def test_ask_timeout_and_late_reply_is_discarded() -> None:
    gate = anyio.Event()
    seen: list[Any] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Recorder(seen, gate), "slow")
        with pytest.raises(AskTimeout):
            await ref.ask("late", timeout=0.05)
        gate.set()
    assert seen == ["late"]  # the message is still processed, like Erlang


async def test_ask_on_a_stopped_actor_raises_actor_stopped() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Echo, "echo")
        await system.stop(ref)
        assert ref.stopped
        with pytest.raises(ActorStopped):
            await ref.ask(1)
        with pytest.raises(ActorStopped):
            await ref.tell(1)
        with pytest.raises(ActorNotFound):
            system.lookup("/echo")


class Batcher(Actor[Any]):
    """Defers every reply and answers in batches of ``size`` (a micro-batching classifier)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pending: list[tuple[Any, DeferredReply]] = []

    async def receive(self, message: Any) -> None:
        self.pending.append((message, self.context.defer_reply()))
        if len(self.pending) == self.size:
            batch, self.pending = self.pending, []
            self.context.metrics.histogram("batch_size", SIZE_BOUNDS).observe(len(batch))
            for msg, handle in batch:
                if msg == "fail":
                    handle.fail(LookupError("no"))
                else:
                    handle.send(("done", msg, len(batch)))


async def test_deferred_replies_answer_asks_later_in_a_batch() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Batcher(3), "batcher")
        results: dict[int, Any] = {}

        async def ask(i: int) -> None:
            results[i] = await ref.ask(i, timeout=2)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(ask, i)
        assert results == {i: ("done", i, 3) for i in range(3)}
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, 10)
            tg.start_soon(ask, 11)
            with pytest.raises(LookupError):
                await ref.ask("fail")
        snap = system.snapshot().find("/batcher")
        assert snap is not None
        assert snap.kind == "actor"
        batch_hist = snap.metrics["batch_size"]
        assert isinstance(batch_hist, HistogramSnapshot)
        assert batch_hist.count == 2


async def test_outstanding_deferred_replies_fail_when_the_instance_stops() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Batcher(100), "batcher")
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await ref.ask("x", timeout=5)
            except ActorStopped as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await anyio.sleep(0.02)
            await system.stop(ref)
        assert len(errors) == 1


async def test_defer_reply_outside_receive_is_an_error() -> None:
    class Early(Actor[Any]):
        async def started(self) -> None:
            self.context.defer_reply()

    async with ActorSystem() as system:
        with pytest.raises(NotInActor):
            await system.spawn(Early, "early")


async def test_backpressure_never_exceeds_capacity_and_loses_nothing() -> None:
    seen: list[int] = []
    capacity = 4
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Recorder(seen, delay=0.001), "slow", capacity=capacity)
        depths: list[int] = []
        for i in range(60):
            await ref.tell(i)
            depths.append(ref.mailbox_depth)
        assert max(depths) <= capacity
    assert seen == list(range(60))


async def test_try_tell_and_offer_report_saturation() -> None:
    gate = anyio.Event()
    seen: list[int] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Recorder(seen, gate), "blocked", capacity=2)
        await ref.tell(0)  # taken by the actor, which now waits on the gate
        await anyio.sleep(0.01)
        assert ref.try_tell(1)
        assert ref.try_tell(2)
        assert not ref.try_tell(3)
        with pytest.raises(MailboxFull):
            await ref.offer(3, timeout=0.02)
        gate.set()
        await ref.offer(3, timeout=1)
    assert seen == [0, 1, 2, 3]


async def test_realtime_messages_overtake_normal_and_batch_work() -> None:
    gate = anyio.Event()
    seen: list[str] = []
    async with ActorSystem() as system:
        ref = await system.spawn(lambda: Recorder(seen, gate), "rec")
        await ref.tell("first")
        await anyio.sleep(0.01)
        for i in range(3):
            await ref.tell(f"batch-{i}", priority=Priority.BATCH)
        await ref.tell("normal")
        await ref.tell("rt-0", priority=Priority.REALTIME)
        await ref.tell("rt-1", priority=Priority.REALTIME)
        gate.set()
    assert seen == ["first", "rt-0", "rt-1", "normal", "batch-0", "batch-1", "batch-2"]


async def test_stop_drains_within_deadline_then_dead_letters_the_rest() -> None:
    letters: list[DeadLetter] = []
    seen: list[int] = []
    async with ActorSystem(dead_letter_handler=letters.append) as system:
        ref = await system.spawn(lambda: Recorder(seen, delay=0.02), "slow", capacity=100)
        for i in range(50):
            await ref.tell(i)
        asked: list[BaseException] = []

        async def ask() -> None:
            try:
                await ref.ask("last")
            except ActorStopped as exc:
                asked.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await anyio.sleep(0.01)
            await system.stop(ref, deadline=0.15)
    stopped = [d.message for d in letters if d.reason is DeadLetterReason.STOPPED]
    interrupted = [d.message for d in letters if d.reason is DeadLetterReason.INTERRUPTED]
    assert 2 <= len(seen) < 50
    assert sorted(seen + stopped + interrupted, key=str) == sorted([*range(50), "last"], key=str)
    assert len(asked) == 1  # the pending ask failed with ActorStopped


async def test_unsupervised_crash_stops_the_actor_and_dead_letters_its_queue() -> None:
    letters: list[DeadLetter] = []
    async with ActorSystem(dead_letter_handler=letters.append) as system:
        ref = await system.spawn(Echo, "echo")
        ref.try_tell(Boom())
        ref.try_tell("queued")
        await eventually(lambda: ref.stopped and system.snapshot().find("/echo") is None)
    assert [(d.reason, d.message) for d in letters] == [
        (DeadLetterReason.CRASHED, Boom()), (DeadLetterReason.STOPPED, "queued")]


async def test_snapshot_reports_tree_state_counts_and_errors() -> None:
    class Parent(Actor[Any]):
        async def started(self) -> None:
            self.child = await self.context.spawn(Echo, "child", capacity=7)

        async def receive(self, message: Any) -> Any:
            return await self.child.ask(message)

    async with ActorSystem(dead_letter_handler=lambda d: None) as system:
        parent = await system.spawn(Parent, "parent")
        assert await parent.ask("x") == "x"
        snap = system.snapshot()
        paths = [n.path for n in snap.walk()]
        assert paths[:2] == ["/parent", "/parent/child"]
        p = snap.find("/parent")
        assert p is not None
        assert p.kind == "actor"
        assert (p.actor_class, p.state, p.processed, p.mailbox_capacity) == (
            "Parent", ActorState.RUNNING, 1, 1000)
        assert p.processing_time.count == 1
        assert p.processing_time.sum > 0
        c = snap.find("/parent/child")
        assert c is not None
        assert c.kind == "actor"
        assert (c.mailbox_capacity, c.processed, c.last_error) == (7, 1, None)
        with pytest.raises(ActorCrashed):
            await system.lookup("/parent/child").ask(Boom())
        # unsupervised: the crashed child leaves the tree
        await eventually(lambda: system.snapshot().find("/parent/child") is None)
        assert system.snapshot().dead_letters == 1


async def test_background_task_failure_crashes_the_instance() -> None:
    class Ticker(Actor[Any]):
        async def started(self) -> None:
            self.context.start_soon(self.tick)

        async def tick(self) -> None:
            await anyio.sleep(0.01)
            raise RuntimeError("timer failed")

        async def receive(self, message: Any) -> None:
            return None

    async with ActorSystem() as system:
        ref = await system.spawn(Ticker, "ticker")
        await eventually(lambda: ref.stopped)


async def test_names_paths_and_lifecycle_errors() -> None:
    system = ActorSystem()
    with pytest.raises(SystemNotRunning):
        await system.spawn(Echo, "early")
    async with system:
        for bad in ("", "a/b", " x"):
            with pytest.raises(InvalidName):
                await system.spawn(Echo, bad)
        await system.spawn(Echo, "x")
        with pytest.raises(NameTaken):
            await system.spawn(Echo, "x")
        with pytest.raises(ActorNotFound):
            system.lookup("/nope")

        class Broken(Actor[Any]):
            async def started(self) -> None:
                raise OSError("no model file")

        with pytest.raises(OSError, match="no model file"):
            await system.spawn(Broken, "broken")
        with pytest.raises(NotInActor):
            _ = Echo().context
