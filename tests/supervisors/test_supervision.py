"""Supervisors: strategies, restart types, intensity and escalation, ordered start and
reverse shutdown, backoff, heartbeat, and a root that gives up ending the process non-zero."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from sentiflow.runtime import ActorState, ActorSystem, DeadLetter, DeadLetterReason, OnCrash
from sentiflow.runtime.actor import Actor
from sentiflow.supervisors import (
    Backoff,
    ChildSpec,
    ChildStartFailed,
    InvalidSpec,
    Restart,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
    SupervisorSpec,
    run_root,
    start_supervisor,
)

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


class Worker(Actor[Any]):
    """Logs lifecycle events as (name, event); "crash" raises, "exit" stops normally."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self.log = log

    async def started(self) -> None:
        self.log.append((self.name, "started"))

    async def stopped(self) -> None:
        self.log.append((self.name, "stopped"))

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.name} crashed")
        if message == "exit":
            self.context.stop()
        self.log.append((self.name, f"got {message}"))
        return self.name


def worker(name: str, log: list[tuple[str, str]], **kw: Any) -> ChildSpec:
    return ChildSpec(name, partial(Worker, name, log), **kw)


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    with anyio.fail_after(within):
        while True:
            if condition():
                return
            await anyio.sleep(0.005)


async def settle(sup: Supervisor) -> None:
    """Wait until the supervisor handled pending failures."""
    await anyio.sleep(0.01)
    await eventually(lambda: sup.state in (ActorState.RUNNING, ActorState.STOPPED))


def starts(log: list[tuple[str, str]]) -> list[str]:
    return [name for name, event in log if event == "started"]


@pytest.mark.parametrize(("strategy", "restarted"), [
    (Strategy.ONE_FOR_ONE, ["b"]),
    (Strategy.ONE_FOR_ALL, ["a", "b", "c"]),
    (Strategy.REST_FOR_ONE, ["b", "c"]),
])
async def test_strategies_restart_the_right_children_in_order(
        strategy: Strategy, restarted: list[str]) -> None:
    log: list[tuple[str, str]] = []
    async with ActorSystem(dead_letter_handler=lambda d: None) as system:
        sup = await start_supervisor(system, SupervisorSpec(
            [worker(n, log) for n in "abc"], strategy=strategy, max_restarts=3))
        assert starts(log) == ["a", "b", "c"]
        log.clear()
        await sup.child("b").tell("crash")
        # Wait for the restarts themselves: settle() alone could return before the supervisor
        # had even seen the crash on a loaded machine (a CI failure: [] == ['b', 'c']).
        await eventually(lambda: len(starts(log)) >= len(restarted))
        await settle(sup)
        assert starts(log) == restarted
        stops = [n for n, e in log if e == "stopped"]
        others = [n for n in reversed(restarted) if n != "b"]
        assert stops == ["b", *others], "siblings halted in reverse order before restarts"
        for name in "abc":  # refs survive restarts
            assert await sup.child(name).ask("ping") == name


@pytest.mark.parametrize(("restart", "exit_msg", "restarted"), [
    (Restart.PERMANENT, "crash", True), (Restart.PERMANENT, "exit", True),
    (Restart.TRANSIENT, "crash", True), (Restart.TRANSIENT, "exit", False),
    (Restart.TEMPORARY, "crash", False), (Restart.TEMPORARY, "exit", False),
])
async def test_restart_types(restart: Restart, exit_msg: str, restarted: bool) -> None:
    log: list[tuple[str, str]] = []
    async with ActorSystem(dead_letter_handler=lambda d: None) as system:
        sup = await start_supervisor(system, SupervisorSpec([worker("w", log, restart=restart)]))
        ref = sup.child("w")
        await ref.tell(exit_msg)
        await settle(sup)
        await eventually(lambda: restarted or ref.stopped)
        assert starts(log).count("w") == (2 if restarted else 1)
        assert ref.stopped is not restarted
        assert ("w" in sup.child_ids) is (restart is not Restart.TEMPORARY)


async def test_mailbox_survives_a_restart_and_only_the_crashing_message_is_dead_lettered(
) -> None:
    log: list[tuple[str, str]] = []
    letters: list[DeadLetter] = []
    async with ActorSystem(dead_letter_handler=letters.append) as system:
        sup = await start_supervisor(system, SupervisorSpec([worker("w", log)]))
        ref = sup.child("w")
        for msg in (1, "crash", 2, 3):
            assert ref.try_tell(msg)
        await settle(sup)
        await ref.ask("sync")
    got = [e for n, e in log if e.startswith("got")]
    assert got == ["got 1", "got 2", "got 3", "got sync"]
    assert [(d.reason, d.message, d.path) for d in letters] == [
        (DeadLetterReason.CRASHED, "crash", "/root/w")]


async def test_redeliver_policy_retries_the_crashing_message_once() -> None:
    attempts: list[int] = []

    class Flaky(Actor[int]):
        async def receive(self, message: int) -> int:
            attempts.append(message)
            if len(attempts) == 1:
                raise RuntimeError("transient")
            return message * 2

    async with ActorSystem() as system:
        sup = await start_supervisor(system, SupervisorSpec(
            [ChildSpec("f", Flaky, on_crash=OnCrash.REDELIVER)]))
        assert await sup.child("f").ask(21) == 42
    assert attempts == [21, 21]


async def test_intensity_exceeded_escalates_to_the_parent_which_restarts_the_subtree() -> None:
    log: list[tuple[str, str]] = []
    async with ActorSystem(dead_letter_handler=lambda d: None) as system:
        inner = SupervisorSpec([worker("x", log), worker("y", log)], max_restarts=1, period=5)
        root = await start_supervisor(system, SupervisorSpec(
            [worker("before", log), ChildSpec("inner", inner)], max_restarts=5))
        x = root.supervisor("inner").child("x")
        await x.tell("crash")  # 1st restart: within intensity, handled by inner
        await settle(root.supervisor("inner"))
        assert starts(log).count("x") == 2
        await x.tell("crash")  # 2nd within 5 s: inner gives up, root restarts inner
        await eventually(lambda: starts(log).count("x") == 3)
        await settle(root)
        assert starts(log).count("before") == 1  # one_for_one at the root
        assert starts(log).count("y") == 2
        assert root.restarts == 1
        assert await x.ask("ping") == "x"  # same ref after the subtree restart


async def test_root_gives_up_when_intensity_is_exceeded() -> None:
    log: list[tuple[str, str]] = []
    letters: list[DeadLetter] = []
    async with ActorSystem(dead_letter_handler=letters.append) as system:
        spec = SupervisorSpec([worker("w", log)], max_restarts=2, period=5)

        def crash_thrice(root: Supervisor) -> None:
            for _ in range(3):  # the mailbox survives restarts: one crash per incarnation
                assert root.child("w").try_tell("crash")

        with pytest.raises(SupervisorGaveUp) as info:
            await run_root(system, spec, on_started=crash_thrice)
        assert isinstance(info.value.cause, RuntimeError)
    assert starts(log) == ["w", "w", "w"]
    assert sum(d.reason is DeadLetterReason.CRASHED for d in letters) == 3


async def test_restarts_outside_the_period_do_not_accumulate() -> None:
    log: list[tuple[str, str]] = []
    async with ActorSystem(dead_letter_handler=lambda d: None) as system:
        sup = await start_supervisor(system, SupervisorSpec([worker("w", log)], max_restarts=1,
                                                            period=0.05))
        for _ in range(3):
            await sup.child("w").tell("crash")
            await settle(sup)
            await anyio.sleep(0.06)
        assert sup.gave_up is None
        assert starts(log).count("w") == 4


async def test_backoff_delays_restarts() -> None:
    log: list[tuple[str, str]] = []
    async with ActorSystem(dead_letter_handler=lambda d: None) as system:
        sup = await start_supervisor(system, SupervisorSpec(
            [worker("w", log)], max_restarts=3, backoff=Backoff(initial=0.1, maximum=1)))
        t0 = time.monotonic()
        await sup.child("w").tell("crash")
        await anyio.sleep(0.01)
        assert sup.state is ActorState.RESTARTING
        await settle(sup)
        assert time.monotonic() - t0 >= 0.09
    assert Backoff(0.1, 0.5, 2).delay(1) == pytest.approx(0.1)
    assert Backoff(0.1, 0.5, 2).delay(10) == pytest.approx(0.5)


async def test_ordered_start_and_reverse_shutdown_with_drain() -> None:
    log: list[tuple[str, str]] = []

    class Slow(Worker):
        async def started(self) -> None:
            await anyio.sleep(0.01)  # the next child must wait for this
            await super().started()

        async def receive(self, message: Any) -> Any:
            await anyio.sleep(0.001)
            return await super().receive(message)

    async with ActorSystem() as system:
        await start_supervisor(system, SupervisorSpec(
            [ChildSpec(n, partial(Slow, n, log)) for n in "abc"]))
        for n in "abc":
            for i in range(5):
                system.lookup(f"/root/{n}").try_tell(i)
    assert starts(log) == ["a", "b", "c"]
    assert [n for n, e in log if e == "stopped"] == ["c", "b", "a"]
    for n in "abc":  # each mailbox drained before its stop
        assert [e for m, e in log if m == n][1:] == [f"got {i}" for i in range(5)] + ["stopped"]


async def test_failed_start_stops_started_children_and_raises() -> None:
    log: list[tuple[str, str]] = []

    class Broken(Actor[Any]):
        async def started(self) -> None:
            raise OSError("no device")

    async with ActorSystem() as system:
        with pytest.raises(ChildStartFailed) as info:
            await start_supervisor(system, SupervisorSpec(
                [worker("a", log), ChildSpec("b", Broken), worker("c", log)]))
        assert isinstance(info.value.cause, OSError)
        assert log == [("a", "started"), ("a", "stopped")]
        assert system.snapshot().roots == ()


async def test_heartbeat_runs_while_healthy_and_signals_shutdown_cleanly() -> None:
    beats: list[float] = []
    log: list[tuple[str, str]] = []
    async with ActorSystem() as system, anyio.create_task_group() as tg:
        root_box: list[Supervisor] = []
        tg.start_soon(lambda: run_root(system, SupervisorSpec([worker("w", log)]),
                                       heartbeat=lambda: beats.append(1),
                                       heartbeat_interval=0.01,
                                       on_started=root_box.append))
        await anyio.sleep(0.1)
        assert len(beats) >= 3
        await root_box[0].shutdown()  # run_root returns normally after an orderly stop
    assert log[-1] == ("w", "stopped")


async def test_supervisor_snapshot_and_lookup() -> None:
    log: list[tuple[str, str]] = []
    async with ActorSystem(dead_letter_handler=lambda d: None) as system:
        root = await start_supervisor(system, SupervisorSpec(
            [ChildSpec("pipeline", SupervisorSpec([worker("classifier-0", log)]))]))
        ref = system.lookup("/root/pipeline/classifier-0")
        await ref.tell("crash")
        await settle(root.supervisor("pipeline"))
        snap = system.snapshot()
        assert [n.path for n in snap.walk()] == [
            "/root", "/root/pipeline", "/root/pipeline/classifier-0"]
        node = snap.find("/root/pipeline/classifier-0")
        assert node is not None
        assert node.kind == "actor"
        assert node.restarts == 1
        assert node.last_error is not None
        assert node.last_error.message == "classifier-0 crashed"
        sup = snap.find("/root/pipeline")
        assert sup is not None
        assert sup.kind == "supervisor"
        assert sup.restarts == 1


def test_specs_are_validated() -> None:
    with pytest.raises(InvalidSpec):
        SupervisorSpec([ChildSpec("a", Worker), ChildSpec("a", Worker)])  # type: ignore[arg-type]
    with pytest.raises(InvalidSpec):
        SupervisorSpec([], max_restarts=-1)
    with pytest.raises(InvalidSpec):
        ChildSpec("a", Worker, mailbox_capacity=0)  # type: ignore[arg-type]


def test_a_root_that_gives_up_ends_the_process_with_a_non_zero_status(tmp_path: Path) -> None:
    script = tmp_path / "node.py"
    script.write_text(textwrap.dedent("""
        import anyio
        from sentiflow.runtime import Actor, ActorSystem
        from sentiflow.supervisors import ChildSpec, SupervisorSpec, run_root

        class Crasher(Actor[object]):
            async def started(self) -> None:
                self.context.start_soon(self.crash_soon)

            async def crash_soon(self) -> None:
                await anyio.sleep(0.01)
                raise RuntimeError("always failing")

        async def main() -> None:
            async with ActorSystem(dead_letter_handler=lambda d: None) as system:
                await run_root(system, SupervisorSpec([ChildSpec("c", Crasher)]))
            print("unreachable")

        anyio.run(main)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode != 0
    assert "SupervisorGaveUp" in proc.stderr
    assert "unreachable" not in proc.stdout
