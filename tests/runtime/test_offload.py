"""Offloader: cheap calls on the loop, expensive ones in a thread, probes, a robust fit."""

from __future__ import annotations

import threading

import anyio
import pytest

from sentiflow.runtime import Offloader

pytestmark = pytest.mark.anyio

MS = 1e-3


class FakeClock:
    """Time moves only when a call 'works' for a given duration."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float) -> int:
        self.now += seconds
        return threading.get_ident()


async def run(offload: Offloader, clock: FakeClock, seconds: float, cost: float = 1.0) -> bool:
    """Run one call that takes ``seconds``; True when it ran on the loop's thread."""
    ident = await offload.run(clock.work, seconds, cost=cost)
    return ident == threading.get_ident()


async def test_budget_zero_always_uses_a_thread() -> None:
    clock = FakeClock()
    offload = Offloader(0.0, clock=clock)
    assert [await run(offload, clock, 0.0) for _ in range(3)] == [False] * 3
    assert (offload.inline_calls, offload.thread_calls) == (0, 3)


async def test_cheap_calls_stay_on_the_loop() -> None:
    clock = FakeClock()
    offload = Offloader(1 * MS, clock=clock)
    assert all([await run(offload, clock, 0.1 * MS) for _ in range(20)])
    assert offload.last_inline
    assert offload.overruns == 0
    assert offload.predict(1) == pytest.approx(0.1 * MS)


async def test_an_overrun_sends_calls_to_a_thread_until_a_probe_finds_them_cheap() -> None:
    clock = FakeClock()
    offload = Offloader(1 * MS, recheck_s=5.0, clock=clock)
    assert await run(offload, clock, 4 * MS)  # the first call warms up, unmeasured
    assert offload.predict(1) is None
    assert await run(offload, clock, 4 * MS)  # the second probes: the stall that is measured
    assert offload.overruns == 2
    for _ in range(3):
        assert not await run(offload, clock, 4 * MS)  # predicted over budget: a thread
    assert not offload.would_inline()
    assert offload.overruns == 2
    clock.now += 5.0
    assert offload.would_inline()  # recheck_s without a loop call: the next one probes
    assert await run(offload, clock, 0.2 * MS)  # cheap again: the estimate starts afresh
    assert offload.predict(1) == pytest.approx(0.2 * MS)
    assert await run(offload, clock, 0.2 * MS)


async def test_one_slow_call_in_the_window_does_not_change_the_mode() -> None:
    clock = FakeClock()
    offload = Offloader(1 * MS, clock=clock)
    for _ in range(8):
        await run(offload, clock, 0.1 * MS)
    assert await run(offload, clock, 30 * MS)  # a garbage collection inside the call
    assert offload.overruns == 1
    assert await run(offload, clock, 0.1 * MS)
    assert offload.predict(1) == pytest.approx(0.1 * MS)


async def test_a_fixed_cost_per_call_is_not_mistaken_for_a_cost_per_unit() -> None:
    clock = FakeClock()
    offload = Offloader(1 * MS, clock=clock)

    def cost_of(n: int) -> float:  # 0.2 ms per call + 0.01 ms per unit, like a SQLite commit
        return 0.2 * MS + 0.01 * MS * n

    reach = 1
    while reach <= 32:  # each size that proves cheap lets calls of twice the size be measured
        assert offload.would_inline(reach)
        for _ in range(4):
            assert await run(offload, clock, cost_of(reach), cost=reach)
        reach *= 2
    assert offload.fixed_s == pytest.approx(0.2 * MS, rel=0.05)
    assert offload.per_unit_s == pytest.approx(0.01 * MS, rel=0.05)
    assert offload.would_inline(64)  # 0.84 ms: a proportional rule would have said 6.7 ms
    assert not offload.would_inline(1000)  # far beyond what was measured: proportional, > 1 ms


async def test_with_one_cost_measured_twice_that_cost_is_tried_and_more_is_not() -> None:
    clock = FakeClock()
    offload = Offloader(1 * MS, clock=clock)
    for _ in range(4):
        await run(offload, clock, 0.4 * MS, cost=1)
    assert offload.would_inline(2)
    assert not offload.would_inline(8)  # 0.4 ms x 8 / 2, proportional beyond twice the cost


async def test_may_inline_false_forces_the_thread() -> None:
    clock = FakeClock()
    offload = Offloader(1 * MS, clock=clock)
    assert await offload.run(clock.work, 0.0, may_inline=False) != threading.get_ident()
    assert offload.thread_calls == 1
    assert offload.inline_calls == 0


async def test_the_limiter_is_held_on_the_loop_and_in_the_thread() -> None:
    limiter = anyio.CapacityLimiter(1)
    offload = Offloader(1 * MS, limiter=limiter)

    def borrowed() -> float:
        return limiter.borrowed_tokens

    on_loop = await offload.run(borrowed), offload.last_inline  # first call: a probe
    in_thread = await offload.run(borrowed, may_inline=False), offload.last_inline
    assert (on_loop, in_thread) == ((1, True), (1, False))
    assert limiter.borrowed_tokens == 0


async def test_a_free_limiter_is_taken_without_yielding_to_the_loop_first() -> None:
    """An inline call must not cost a loop iteration first: a task started before it only
    runs once the call is done."""
    limiter = anyio.CapacityLimiter(1)
    offload = Offloader(1 * MS, limiter=limiter)
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await offload.run(order.append, "call")
    assert order == ["call", "other"]
    assert offload.last_inline


async def test_a_busy_limiter_is_waited_for_on_the_loop_path() -> None:
    limiter = anyio.CapacityLimiter(1)
    offload = Offloader(1 * MS, limiter=limiter)
    holder = object()
    await limiter.acquire_on_behalf_of(holder)
    order: list[str] = []

    async def release_later() -> None:
        await anyio.sleep(0.01)
        order.append("released")
        limiter.release_on_behalf_of(holder)

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_later)
        await offload.run(order.append, "call")
    assert order == ["released", "call"]
    assert limiter.borrowed_tokens == 0


async def test_an_error_on_the_loop_propagates_and_is_measured() -> None:
    clock = FakeClock()
    offload = Offloader(1 * MS, warmup=0, clock=clock)

    def fail() -> None:
        clock.now += 5 * MS
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await offload.run(fail)
    assert offload.overruns == 1
    assert offload.predict(1) == pytest.approx(5 * MS)


async def test_a_slow_first_call_does_not_send_the_next_ones_to_a_thread() -> None:
    """The node's first model batch took 7 ms (cold caches) against ~1 ms after it: measured,
    it kept every batch in a thread until the next probe, 5 s later."""
    clock = FakeClock()
    offload = Offloader(1 * MS, clock=clock)
    assert await run(offload, clock, 7 * MS)
    assert [await run(offload, clock, 0.3 * MS) for _ in range(5)] == [True] * 5
    assert offload.predict(1) == pytest.approx(0.3 * MS)
    assert offload.thread_calls == 0
    measured = Offloader(1 * MS, warmup=0, clock=clock)  # without the warm-up: it would
    assert await run(measured, clock, 7 * MS)
    assert not await run(measured, clock, 0.3 * MS)


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Offloader(-1.0)
    with pytest.raises(ValueError):
        Offloader(1.0, warmup=-1)
    with pytest.raises(ValueError):
        Offloader(1.0, window=0)


async def test_a_slow_call_among_the_few_large_ones_does_not_steepen_the_line() -> None:
    clock = FakeClock()
    offload = Offloader(1 * MS, clock=clock)
    for cost, seconds in [(1, 0.10), (1, 0.11), (2, 0.13), (1, 0.10), (3, 0.16), (2, 5.0),
                          (1, 0.09), (2, 0.13), (4, 0.18), (1, 0.10)]:
        await run(offload, clock, seconds * MS, cost=cost)  # (2, 5 ms): a WAL checkpoint
    assert offload.per_unit_s == pytest.approx(0.03 * MS, rel=0.2)
    assert offload.would_inline(8)  # ~0.34 ms: still on the loop
