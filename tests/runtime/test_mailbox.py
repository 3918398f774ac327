"""Mailbox: bound across lanes, FIFO within a lane, priority order, no loss, backpressure."""

from __future__ import annotations

from collections import deque

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiflow.runtime import Mailbox, MailboxClosed, Priority

pytestmark = pytest.mark.anyio

ops = st.lists(st.one_of(st.tuples(st.just("put"), st.sampled_from(list(Priority))),
                         st.tuples(st.just("get"), st.none())), max_size=200)


@given(capacity=st.integers(1, 8), operations=ops)
def test_try_put_get_matches_a_model_of_priority_lanes(
        capacity: int, operations: list[tuple[str, Priority | None]]) -> None:
    mailbox: Mailbox[tuple[int, int]] = Mailbox(capacity)
    model: list[deque[tuple[int, int]]] = [deque() for _ in Priority]
    for seq, (op, lane) in enumerate(operations):
        if op == "put":
            assert lane is not None
            accepted = mailbox.try_put((lane, seq), lane)
            assert accepted == (sum(map(len, model)) < capacity)
            if accepted:
                model[lane].append((lane, seq))
        else:
            expected = next((q.popleft() for q in model if q), None)
            assert mailbox.get_nowait() == expected
        assert len(mailbox) == sum(map(len, model)) <= capacity
        assert mailbox.lane_depths() == tuple(len(q) for q in model)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capacity=st.integers(1, 5),
       batches=st.lists(st.lists(st.sampled_from(list(Priority)), max_size=30), min_size=1,
                        max_size=4))
async def test_blocking_producers_lose_nothing_keep_lane_fifo_and_the_bound(
        capacity: int, batches: list[list[Priority]]) -> None:
    mailbox: Mailbox[tuple[int, int, Priority]] = Mailbox(capacity)
    total = sum(map(len, batches))
    received: list[tuple[int, int, Priority]] = []
    max_depth = 0

    async def produce(producer: int, lanes: list[Priority]) -> None:
        for seq, lane in enumerate(lanes):
            await mailbox.put((producer, seq, lane), lane)

    async with anyio.create_task_group() as tg:
        for producer, lanes in enumerate(batches):
            tg.start_soon(produce, producer, lanes)
        while len(received) < total:
            max_depth = max(max_depth, len(mailbox))
            received.append(await mailbox.get())
            await anyio.lowlevel.checkpoint()
    assert max_depth <= capacity
    assert sorted(received) == sorted((p, s, lane) for p, lanes in enumerate(batches)
                                      for s, lane in enumerate(lanes))
    for producer in range(len(batches)):
        for lane in Priority:
            seqs = [s for p, s, ln in received if p == producer and ln == lane]
            assert seqs == sorted(seqs), "FIFO within a lane, per producer"


async def test_realtime_overtakes_queued_batch_work() -> None:
    mailbox: Mailbox[str] = Mailbox(10)
    for i in range(3):
        mailbox.try_put(f"batch-{i}", Priority.BATCH)
    mailbox.try_put("normal", Priority.NORMAL)
    mailbox.try_put("rt", Priority.REALTIME)
    assert mailbox.drain_nowait() == ["rt", "normal", "batch-0", "batch-1", "batch-2"]


async def test_waiting_realtime_producer_is_admitted_before_waiting_batch_producer() -> None:
    mailbox: Mailbox[str] = Mailbox(1)
    mailbox.try_put("first", Priority.BATCH)
    async with anyio.create_task_group() as tg:
        tg.start_soon(mailbox.put, "batch", Priority.BATCH)
        await anyio.sleep(0.01)
        tg.start_soon(mailbox.put, "rt", Priority.REALTIME)
        await anyio.sleep(0.01)
        got = [await mailbox.get() for _ in range(3)]
    assert got == ["first", "rt", "batch"]


async def test_close_wakes_waiting_producers_with_mailbox_closed() -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.try_put(1)
    errors: list[BaseException] = []

    async def producer() -> None:
        try:
            await mailbox.put(2)
        except MailboxClosed as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.sleep(0.01)
        mailbox.close()
    assert len(errors) == 1
    assert mailbox.drain_nowait() == [1]  # queued items stay for the drain
    with pytest.raises(MailboxClosed):
        mailbox.try_put(3)


async def test_cancelled_waiting_producer_leaves_no_trace() -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.try_put(1)
    with anyio.move_on_after(0.01):
        await mailbox.put(2)
    assert mailbox.get_nowait() == 1
    assert mailbox.get_nowait() is None
    assert mailbox.try_put(3)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(0)
