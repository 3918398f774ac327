"""Runtime throughput and ask latency, side by side with pykka and bare asyncio queues.

    python -m bench.bench_runtime            # asyncio (the node's backend), about a minute
    python -m bench.bench_runtime --trio     # also report the runtime under trio

Each asyncio figure is taken twice: on the standard selector loop and on uvloop (the node's
default loop); the targets are reported for both.

Throughput: N messages through a 5-stage chain (each stage forwards to the next with ``tell``,
mailbox capacity 1000), single messages and batches (lists of 64 items). Peers, same shape:
pykka ThreadingActors (``tell``) and 5 asyncio tasks joined by ``asyncio.Queue(maxsize=1000)``.
Latency: sequential ``ask`` round trips to one echo actor, vs pykka's ``ask``.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import pykka

from bench._common import percentile, print_table, write_results
from sentiflow.ops import eventloop
from sentiflow.ops.eventloop import EventLoopName
from sentiflow.runtime import Actor, ActorRef, ActorSystem

#: anyio's asyncio backend on uvloop (the node's default loop, sentiflow/ops/eventloop.py).
UVLOOP = {"use_uvloop": True}

STAGES = 5
CAPACITY = 1000
BATCH = 64


# -- sentiflow ----------------------------------------------------------------------------------

class Forward(Actor[Any]):
    def __init__(self, target: ActorRef[Any]) -> None:
        self.target = target

    async def receive(self, message: Any) -> None:
        await self.target.tell(message)


class Sink(Actor[Any]):
    def __init__(self, expected: int, done: anyio.Event) -> None:
        self.expected = expected
        self.seen = 0
        self.done = done

    async def receive(self, message: Any) -> None:
        self.seen += 1
        if self.seen == self.expected:
            self.done.set()


class Echo(Actor[Any]):
    async def receive(self, message: Any) -> Any:
        return message


async def sentiflow_chain(n: int, payload: Any) -> float:
    done = anyio.Event()
    async with ActorSystem(default_capacity=CAPACITY) as system:
        target: ActorRef[Any] = await system.spawn(lambda: Sink(n, done), "sink")
        for i in range(STAGES - 1):
            target = await system.spawn(_forward_to(target), f"stage-{i}")
        start = time.perf_counter()
        for _ in range(n):
            await target.tell(payload)
        await done.wait()
        return time.perf_counter() - start


def _forward_to(target: ActorRef[Any]) -> Callable[[], Forward]:
    return lambda: Forward(target)


async def sentiflow_ask(n: int) -> list[float]:
    async with ActorSystem() as system:
        ref = await system.spawn(Echo, "echo")
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            await ref.ask(i)
            out.append(time.perf_counter() - t0)
        return out


# -- bare asyncio queues ------------------------------------------------------------------------

async def asyncio_chain(n: int, payload: Any) -> float:
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue(maxsize=CAPACITY) for _ in range(STAGES)]
    done = asyncio.Event()

    async def forward(inbox: asyncio.Queue[Any], outbox: asyncio.Queue[Any]) -> None:
        while True:
            await outbox.put(await inbox.get())

    async def sink(inbox: asyncio.Queue[Any]) -> None:
        for _ in range(n):
            await inbox.get()
        done.set()

    tasks = [asyncio.create_task(forward(queues[i], queues[i + 1])) for i in range(STAGES - 1)]
    tasks.append(asyncio.create_task(sink(queues[-1])))
    start = time.perf_counter()
    for _ in range(n):
        await queues[0].put(payload)
    await done.wait()
    elapsed = time.perf_counter() - start
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return elapsed


def _run_asyncio_chain(n: int, payload: Any, loop: EventLoopName = "asyncio") -> float:
    return eventloop.run(asyncio_chain(n, payload), loop)


# -- pykka --------------------------------------------------------------------------------------

class PykkaForward(pykka.ThreadingActor):
    def __init__(self, target: Any) -> None:
        super().__init__()
        self.target = target

    def on_receive(self, message: Any) -> None:
        self.target.tell(message)


class PykkaSink(pykka.ThreadingActor):
    def __init__(self, expected: int, done: threading.Event) -> None:
        super().__init__()
        self.expected = expected
        self.seen = 0
        self.done = done

    def on_receive(self, message: Any) -> None:
        self.seen += 1
        if self.seen == self.expected:
            self.done.set()


class PykkaEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def pykka_chain(n: int, payload: Any) -> float:
    done = threading.Event()
    target: Any = PykkaSink.start(n, done)
    for _ in range(STAGES - 1):
        target = PykkaForward.start(target)
    start = time.perf_counter()
    for _ in range(n):
        target.tell(payload)
    done.wait()
    elapsed = time.perf_counter() - start
    pykka.ActorRegistry.stop_all()
    return elapsed


def pykka_ask(n: int) -> list[float]:
    ref = PykkaEcho.start()
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        ref.ask(i)
        out.append(time.perf_counter() - t0)
    ref.stop()
    return out


# -- driver -------------------------------------------------------------------------------------

def best_of(runs: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--pykka-messages", type=int, default=10_000)
    parser.add_argument("--asks", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trio", action="store_true", help="also run the runtime under trio")
    args = parser.parse_args()
    n, runs = args.messages, args.runs
    batch_n = max(1, n // 8)
    single: Any = ("post", 1)
    batch: Any = [("post", i) for i in range(BATCH)]

    rows: list[dict[str, Any]] = []

    def row(impl: str, backend: str, kind: str, count: int, seconds: float, items: int) -> None:
        rows.append({"impl": impl, "backend": backend, "messages": kind, "count": count,
                     "msgs_per_s": count / seconds, "items_per_s": count * items / seconds})

    for kind, count, payload, items in (("single", n, single, 1),
                                        (f"batch[{BATCH}]", batch_n, batch, BATCH)):
        row("sentiflow", "asyncio", kind, count,
            best_of(runs, partial(anyio.run, sentiflow_chain, count, payload)), items)
        row("sentiflow", "uvloop", kind, count, best_of(runs, partial(
            anyio.run, sentiflow_chain, count, payload, backend_options=UVLOOP)), items)
        if args.trio:
            row("sentiflow", "trio", kind, count, best_of(
                runs, partial(anyio.run, sentiflow_chain, count, payload, backend="trio")), items)
        row("asyncio.Queue", "asyncio", kind, count,
            best_of(runs, partial(_run_asyncio_chain, count, payload)), items)
        row("asyncio.Queue", "uvloop", kind, count,
            best_of(runs, partial(_run_asyncio_chain, count, payload, "uvloop")), items)
        pk = min(count, args.pykka_messages)
        row("pykka", "threads", kind, pk, best_of(runs, partial(pykka_chain, pk, payload)), items)
    print_table(f"{STAGES}-stage chain throughput (best of {runs})", rows)

    def rate(impl: str, backend: str, kind: str) -> float:
        return float(next(r for r in rows if r["impl"] == impl and r["backend"] == backend
                          and r["messages"] == kind)["msgs_per_s"])

    ratios = []
    for loop in ("asyncio", "uvloop"):
        for kind in ("single", f"batch[{BATCH}]"):
            ours, bare = rate("sentiflow", loop, kind), rate("asyncio.Queue", loop, kind)
            pk = rate("pykka", "threads", kind)
            ratios.append({"loop": loop, "messages": kind, "vs_pykka": ours / pk,
                           "target_vs_pykka": ">= 3", "bare_over_ours": bare / ours,
                           "target_bare_over_ours": "<= 1.5"})
    print_table("targets", ratios)

    latency: list[dict[str, Any]] = []
    for impl, samples in (("sentiflow (asyncio)", anyio.run(sentiflow_ask, args.asks)),
                          ("sentiflow (uvloop)", anyio.run(sentiflow_ask, args.asks,
                                                          backend_options=UVLOOP)),
                          *([("sentiflow (trio)", anyio.run(sentiflow_ask, args.asks,
                                                           backend="trio"))] if args.trio else []),
                          ("pykka", pykka_ask(min(args.asks, 2000)))):
        latency.append({"impl": impl, "asks": len(samples),
                        "p50_us": percentile(samples, 50) * 1e6,
                        "p99_us": percentile(samples, 99) * 1e6})
    print_table("ask round trip", latency)
    path = write_results("runtime", {"stages": STAGES, "capacity": CAPACITY, "batch": BATCH,
                                     "throughput": rows, "targets": ratios, "ask": latency})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
