"""What a request costs the node by the size of the batch it travels in, against the plain handler.

    python -m bench.bench_batch_cost           # about 2 minutes
    python -m bench.bench_batch_cost --quick   # a smoke run

Why: under load from a separate process the node's CPU per request moved from ~550 µs (closed
loop, 64 clients: batches of ~30) to ~900-1,100 µs (833 requests/s: batches of ~5), while the
plain handler's hardly moved. Both are driven here *in process*, through the ASGI interface of
the real apps (``create_app(node)`` and bench_api's plain Quart app), in groups of 1, 4, 16 and
64 requests sent together: no HTTP server, no load generator and no timing of the network, so
that what remains is each app's own CPU (every thread of this process) per request.

The node runs with the language stage's linger off (``language.max_wait_ms = 0``), so that a
group of k concurrent requests becomes one batch of k (the table shows the batch sizes the
classifier reports); everything else is as shipped: durable SQLite writes (FULL), the result
written before the answer, no trends / drift listeners (as bench_api's ``node``). From the
figures per group size, a least-squares line ``cost(k) = per_post + per_batch / k`` splits the
node's cost into what a batch costs once and what each post adds.

Rounds alternate the two apps at every group size, and the median round is reported, because
this VM's speed drifts by tens of percent within minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench._common import print_table, write_results
from bench.bench_api import load_texts, node_env, plain_app
from sentiflow.ops import eventloop
from sentiflow.runtime import ActorSnapshot, HistogramSnapshot, SystemSnapshot

GROUPS = (1, 4, 16, 64)
#: An ASGI application (both apps are Quart apps; ASGI's typed dicts are not needed here).
App = Callable[..., Awaitable[None]]


async def post(app: App, body: bytes) -> int:
    """One ``POST /api/classify`` through ``app``'s ASGI interface, like uvicorn would send it
    (the body in one message; a disconnect only once the response is complete)."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/classify", "raw_path": b"/api/classify",
        "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    done = asyncio.Event()
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    return status


async def drive(app: App, bodies: Sequence[bytes], group: int, requests: int, start: int
                ) -> float:
    """CPU seconds (all threads) per request for ``requests`` requests in groups of ``group``."""
    cpu = time.process_time()
    for i in range(0, requests, group):
        statuses = await asyncio.gather(*(post(app, bodies[(start + i + k) % len(bodies)])
                                          for k in range(group)))
        if any(s != 200 for s in statuses):
            raise SystemExit(f"a request failed: statuses {sorted(set(statuses))}")
    return (time.process_time() - cpu) / requests


def batch_sizes(snapshot: SystemSnapshot) -> tuple[float, float]:
    """(batches, posts) the classifiers have reported so far (their ``batch_size`` metric)."""
    batches = posts = 0.0
    for node in snapshot.walk():
        sizes = node.metrics.get("batch_size") if isinstance(node, ActorSnapshot) else None
        if isinstance(sizes, HistogramSnapshot):
            batches += sizes.count
            posts += sizes.sum
    return batches, posts


async def main_async(args: argparse.Namespace) -> None:
    from sentiflow.api.app import create_app
    from sentiflow.config.settings import load_settings
    from sentiflow.models.training import load_or_train_default
    from sentiflow.node import open_node

    settings = load_settings()
    load_or_train_default(settings.node.home / "models", settings.node.data_dir, progress=True)
    texts = load_texts(settings.node.data_dir)
    bodies = [json.dumps({"text": t, "language": "auto", "priority": "realtime"}).encode()
              for t in texts]
    with tempfile.TemporaryDirectory(prefix="bench-batch-cost-") as home:
        env = node_env(home)
        env["SENTIFLOW_LANGUAGE__MAX_WAIT_MS"] = "0"
        async with open_node(load_settings(env=env)) as node:
            apps: dict[str, App] = {"node": create_app(node), "plain": plain_app()}
            for app in apps.values():
                await app.startup()  # type: ignore[attr-defined]
            await drive(apps["node"], bodies, 16, 512, 0)  # warm both up
            await drive(apps["plain"], bodies, 16, 512, 0)
            costs: dict[tuple[str, int], list[float]] = {}
            batches: dict[int, tuple[float, float]] = {}
            offset = 0
            for _ in range(args.rounds):
                for group in GROUPS:
                    before = batch_sizes(node.snapshot())
                    for name, app in apps.items():
                        costs.setdefault((name, group), []).append(
                            await drive(app, bodies, group, args.requests, offset))
                        if name == "node":
                            after = batch_sizes(node.snapshot())
                            b, p = batches.get(group, (0.0, 0.0))
                            batches[group] = (b + after[0] - before[0], p + after[1] - before[1])
                    offset += args.requests
            for app in apps.values():
                await app.shutdown()  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    for group in GROUPS:
        node_us = statistics.median(costs[("node", group)]) * 1e6
        plain_us = statistics.median(costs[("plain", group)]) * 1e6
        b, p = batches[group]
        rows.append({"group": group, "node_batch_posts": p / b if b else 0.0,
                     "node_cpu_us_per_req": node_us, "plain_cpu_us_per_req": plain_us,
                     "node_vs_plain": f"{node_us / plain_us - 1:+.0%}"})
    per_batch, per_post = statistics.linear_regression(
        [1 / r["node_batch_posts"] for r in rows], [r["node_cpu_us_per_req"] for r in rows])
    print_table(f"POST /api/classify in process, CPU per request by group size (median of "
                f"{args.rounds} rounds of {args.requests})", rows)
    print(f"node: ~{per_batch:,.0f} us per batch + ~{per_post:,.0f} us per post "
          "(least squares over the group sizes)")
    path = write_results("batch_cost", {"requests": args.requests, "rounds": args.rounds,
                                        "rows": rows, "node_per_batch_us": per_batch,
                                        "node_per_post_us": per_post,
                                        "raw_us": {f"{n}/{g}": [c * 1e6 for c in v]
                                                   for (n, g), v in costs.items()}})
    print(f"\nwritten {path}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args(argv)
    args.rounds = 1 if args.quick else 5
    args.requests = 256 if args.quick else 2048
    eventloop.run(main_async(args), "uvloop")


if __name__ == "__main__":
    main()
