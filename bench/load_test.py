"""Sustained load through the API (and Kafka, when asked) against a node in another process.

The node runs as ``sentiflow run`` in a subprocess (or is given by ``--url``); this process is
the load: an open-loop HTTP client posting single posts to ``/api/classify`` at ``--api-share``
of ``--rate`` posts/min, and, with ``--kafka``, a producer process writing the rest to a Kafka
topic the node's readers consume (a local tansu broker from the dev extras). Latency is
measured from each request's *scheduled* send time, so a stalled node cannot hide queueing
(no coordinated omission). Every second it records: posts offered, API answers by status, API
latency p50/p95/p99, posts made durable (the node's sink), Kafka lag (produced - durable by the
readers), queued messages (sum of mailbox depths) and the node's RSS.

    .venv/bin/python -m bench.load_test --quick                # 20 s at 10K/min, API only
    .venv/bin/python -m bench.load_test --minutes 10 --kafka   # the issue's 50K/min x 10 min

Writes ``bench/results/load_test.json`` and ``bench/results/load_test.png``. The node uses the
embedded default model under ``--home`` (``var/`` by default: run ``sentiflow train`` first,
or it trains before serving) and a fresh SQLite store in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench._common import RESULTS_DIR, free_port, percentile, print_table, write_results
from sentiflow.config.paths import REPO_ROOT
from sentiflow.ops import eventloop

TEXTS = (
    "I absolutely love this phone, the battery lasts forever!",
    "El servicio al cliente fue horrible, nunca más compro aquí.",
    "Die Lieferung kam pünktlich, alles in Ordnung.",
    "Quelle déception, le produit est arrivé cassé.",
    "Adorei o atendimento, super rápido e atencioso!",
    "Il prodotto è arrivato in ritardo ma funziona bene.",
    "The update broke everything, support never answered.",
    "この商品は最高です。また買いたいです。",
    "Pelayanan sangat lambat dan mengecewakan.",
    "It is okay I guess, nothing special.",
)


@dataclass
class Second:
    """What happened in one second of the run."""

    t: float
    offered_api: int = 0
    offered_kafka: int = 0
    ok: int = 0
    rejected: int = 0  # 429 / 503: the node pushing back
    errors: int = 0  # anything else (connection errors, 5xx other than 503)
    latencies_ms: list[float] = field(default_factory=list)
    durable_total: int = 0
    kafka_durable_total: int = 0
    queued: int = 0
    rss_mb: float = float("nan")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@contextlib.contextmanager
def node_process(home: Path, port: int, store: Path, extra_env: dict[str, str],
                 log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIFLOW_")}
    env.update({"SENTIFLOW_HOME": str(home), "SENTIFLOW_API__PORT": str(port),
                "SENTIFLOW_API__RATE_LIMIT_PER_SECOND": "0",
                "SENTIFLOW_STORAGE__RESULTS_URL": f"sqlite:///{store}",
                "SENTIFLOW_LOGGING__FORMAT": "json", "PYTHONUNBUFFERED": "1", **extra_env})
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", "from sentiflow.cli import main; main()",
                                 "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def wait_ready(base: str, proc: subprocess.Popen[bytes] | None, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the node exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the node at {base} was not ready within {within:.0f} s")


def _producer_main(bootstrap: str, topic: str, rate: float, seconds: float,
                   produced: Any) -> None:
    """Child process: produce ``rate`` posts/s to ``topic`` for ``seconds``."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
        await producer.start()
        rnd, seq, started = random.Random(11), 0, time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < seconds:
                for _ in range(max(0, int(rate * (elapsed + 0.01)) - seq)):
                    body = {"text": f"{rnd.choice(TEXTS)} #{seq}", "request_id": f"kafka-{seq}"}
                    await producer.send(topic, json.dumps(body).encode())
                    seq += 1
                produced.value = seq
                await asyncio.sleep(0.01)
            await producer.flush()
            produced.value = seq
        finally:
            await producer.stop()

    asyncio.run(run())


class ApiLoad:
    """Open-loop client: request ``i`` is due at ``start + i / rate``; its latency counts from
    then, whether or not a connection was free.

    aiohttp (and the generator on uvloop), not httpx: the generator shares the two cores with
    the node, the broker and the Kafka producer, and httpx's ~1 ms of CPU per request left it
    sending late on a slower VM (its own lateness then counted as the node's latency)."""

    def __init__(self, base: str, rate: float, connections: int, seconds: list[Second],
                 started: float) -> None:
        self.base, self.rate, self.seconds, self.started = base, rate, seconds, started
        self.slots = asyncio.Semaphore(connections)
        self.client = aiohttp.ClientSession(
            base_url=base, timeout=aiohttp.ClientTimeout(total=30.0),
            connector=aiohttp.TCPConnector(limit=connections))
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def bucket(self, at: float) -> Second:
        index = min(int(at - self.started), len(self.seconds) - 1)
        return self.seconds[index]

    async def one(self, seq: int, due: float) -> None:
        async with self.slots:
            body = {"text": f"{TEXTS[seq % len(TEXTS)]} #{seq}", "request_id": f"api-{seq}"}
            try:
                async with self.client.post("/api/classify", json=body) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
        done = time.monotonic()
        second = self.bucket(done)
        if status == 200:
            second.ok += 1
            second.latencies_ms.append((done - due) * 1000.0)
        elif status in (429, 503):
            second.rejected += 1
        else:
            second.errors += 1

    async def run(self, duration: float) -> None:
        while (elapsed := time.monotonic() - self.started) < duration:
            due_count = int(self.rate * elapsed) + 1 - self.sent
            for _ in range(max(0, due_count)):
                due = self.started + self.sent / self.rate
                task = asyncio.create_task(self.one(self.sent, due))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                self.bucket(due).offered_api += 1
                self.sent += 1
            await asyncio.sleep(0.005)

    async def finish(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=60)
        await self.client.close()


def _frame_figures(frame: dict[str, Any]) -> tuple[int, int, int, int]:
    """(durable, kafka durable, queued messages, pid) from a console frame."""
    queued = sum(a.get("mailbox_depth", 0) for a in frame["actors"] if a["kind"] == "actor")
    return int(frame["totals"]["written"]), 0, queued, int(frame["node"]["pid"])


async def kafka_durable(client: httpx.AsyncClient) -> int:
    """Posts the Kafka readers made durable (their ``durable`` counters on /metrics)."""
    text = (await client.get("/metrics")).text
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("sentiflow_actor_durable_total{")
                   or line.startswith("sentiflow_actor_durable{")))


async def drive(base: str, args: argparse.Namespace, pid: int | None,
                bootstrap: str | None) -> dict[str, Any]:
    rate = args.rate / 60.0
    api_rate = rate * (args.api_share if bootstrap else 1.0)
    kafka_rate = rate - api_rate if bootstrap else 0.0
    duration = args.seconds
    seconds = [Second(t=float(i)) for i in range(int(duration + args.drain_s) + 2)]
    started = time.monotonic()
    load = ApiLoad(base, api_rate, args.connections, seconds, started)
    produced = mp.get_context("spawn").Value("q", 0)
    producer = None
    if bootstrap and kafka_rate > 0:
        producer = mp.get_context("spawn").Process(
            target=_producer_main, args=(bootstrap, args.topic, kafka_rate, duration, produced))
        producer.start()
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as probe:
        baseline = (await probe.get("/console/frame.json")).json()
        durable0 = int(baseline["totals"]["written"])
        kafka0 = await kafka_durable(probe) if bootstrap else 0

        async def sample() -> None:
            last_produced = 0
            while True:
                await asyncio.sleep(1.0 - (time.monotonic() - started) % 1.0)
                index = min(int(time.monotonic() - started) - 1, len(seconds) - 1)
                with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                    frame = (await probe.get("/console/frame.json")).json()
                    durable, _, queued, node_pid = _frame_figures(frame)
                    second = seconds[max(0, index)]
                    second.durable_total = durable - durable0
                    second.queued = queued
                    second.rss_mb = rss_mb(pid or node_pid)
                    if bootstrap:
                        second.kafka_durable_total = await kafka_durable(probe) - kafka0
                        second.offered_kafka = produced.value - last_produced
                        last_produced = produced.value

        sampler = asyncio.create_task(sample())
        await load.run(duration)
        await load.finish()
        # Drain: wait until Kafka's backlog is durable too (or the drain budget is spent).
        while bootstrap and time.monotonic() - started < duration + args.drain_s:
            if producer is not None and not producer.is_alive() and \
                    await kafka_durable(probe) - kafka0 >= produced.value:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.2)
        sampler.cancel()
        final_kafka = await kafka_durable(probe) - kafka0 if bootstrap else 0
    if producer is not None:
        producer.join(30)
    used = [s for s in seconds if s.t <= time.monotonic() - started]
    return summarise(used, args, api_rate, kafka_rate, load.sent, produced.value, final_kafka)


def summarise(seconds: list[Second], args: argparse.Namespace, api_rate: float,
              kafka_rate: float, api_sent: int, produced: int, kafka_done: int
              ) -> dict[str, Any]:
    # The durable counters never decrease: a second below the running maximum was not sampled
    # (the probe was late, or the node had stopped and its metrics read as 0) and would plot
    # as a fake lag spike. Carry the maximum forward; the second's API answers still count.
    high, kafka_high = 0, 0
    for sample in seconds:
        high = sample.durable_total = max(high, sample.durable_total)
        kafka_high = sample.kafka_durable_total = max(kafka_high, sample.kafka_durable_total)
    latencies = [x for s in seconds for x in s.latencies_ms]
    ok = sum(s.ok for s in seconds)
    rss = [s.rss_mb for s in seconds if s.rss_mb == s.rss_mb]
    half = rss[len(rss) // 2:] if rss else []
    growth = (max(half) - min(half)) if half else float("nan")
    series = [{"t": s.t, "offered_api": s.offered_api, "offered_kafka": s.offered_kafka,
               "ok": s.ok, "rejected": s.rejected, "errors": s.errors,
               "p50_ms": percentile(s.latencies_ms, 50), "p95_ms": percentile(s.latencies_ms, 95),
               "p99_ms": percentile(s.latencies_ms, 99), "durable_total": s.durable_total,
               "kafka_lag": max(0, sum(x.offered_kafka for x in seconds if x.t <= s.t)
                                - s.kafka_durable_total) if kafka_rate else 0,
               "queued": s.queued, "rss_mb": round(s.rss_mb, 1)} for s in seconds]
    summary = {
        "offered_posts_per_min": round((api_rate + kafka_rate) * 60),
        "api_rate_per_s": round(api_rate, 1), "kafka_rate_per_s": round(kafka_rate, 1),
        "seconds": args.seconds, "api_sent": api_sent, "api_ok": ok,
        "api_rejected": sum(s.rejected for s in seconds),
        "api_errors": sum(s.errors for s in seconds),
        "api_p50_ms": round(percentile(latencies, 50), 2),
        "api_p95_ms": round(percentile(latencies, 95), 2),
        "api_p99_ms": round(percentile(latencies, 99), 2),
        "p95_budget_ms": args.p95_budget_ms,
        "kafka_produced": produced, "kafka_durable": kafka_done,
        "kafka_lost": max(0, produced - kafka_done) if kafka_rate else 0,
        "rss_start_mb": round(rss[0], 1) if rss else None,
        "rss_max_mb": round(max(rss), 1) if rss else None,
        "rss_range_second_half_mb": round(growth, 1),
    }
    summary["p95_within_budget"] = summary["api_p95_ms"] <= args.p95_budget_ms
    return {"summary": summary, "series": series}


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result["series"]
    t = [s["t"] for s in series]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    durable = [s["durable_total"] for s in series]
    rate = [max(0, b - a) for a, b in zip([0, *durable[:-1]], durable, strict=True)]
    axes[0].plot(t, [s["offered_api"] + s["offered_kafka"] for s in series], label="offered")
    axes[0].plot(t, rate, label="durable")
    axes[0].plot(t, [s["ok"] for s in series], label="API 200", alpha=0.7)
    axes[0].plot(t, [s["rejected"] for s in series], label="API 429/503", alpha=0.7)
    axes[0].set_ylabel("posts / s")
    axes[0].legend(loc="upper right", fontsize=8)
    for key, style in (("p50_ms", "-"), ("p95_ms", "-"), ("p99_ms", ":")):
        axes[1].plot(t, [s[key] for s in series], style, label=key[:3])
    axes[1].axhline(result["summary"]["p95_budget_ms"], color="red", lw=0.8, ls="--",
                    label="p95 budget")
    axes[1].set_ylabel("API latency (ms)")
    axes[1].set_yscale("log")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[2].plot(t, [s["kafka_lag"] for s in series], label="Kafka lag (posts)")
    axes[2].plot(t, [s["queued"] for s in series], label="queued in mailboxes (messages)")
    axes[2].set_ylabel("backlog")
    axes[2].legend(loc="upper right", fontsize=8)
    axes[3].plot(t, [s["rss_mb"] for s in series], color="purple")
    axes[3].set_ylabel("node RSS (MB)")
    axes[3].set_xlabel("seconds")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50_000, help="posts per minute")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="20 s at 10K/min (smoke run)")
    parser.add_argument("--url", default=None, help="drive this node instead of starting one")
    parser.add_argument("--home", type=Path, default=REPO_ROOT / "var",
                        help="SENTIFLOW_HOME of the started node (its cached model)")
    parser.add_argument("--kafka", action="store_true",
                        help="also produce to Kafka (local tansu broker unless --bootstrap)")
    parser.add_argument("--bootstrap", default=None, help="existing Kafka bootstrap host:port")
    parser.add_argument("--topic", default="posts")
    parser.add_argument("--api-share", type=float, default=0.2,
                        help="share of the rate sent through the API when Kafka is on")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--p95-budget-ms", type=float, default=50.0)
    parser.add_argument("--drain-s", type=float, default=30.0)
    parser.add_argument("--name", default="load_test")
    args = parser.parse_args()
    if args.quick:
        args.rate, args.minutes = min(args.rate, 10_000), 20 / 60
    args.seconds = args.minutes * 60

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sentiflow-load-")))
        bootstrap = args.bootstrap
        if args.kafka and bootstrap is None:
            from tests.ingest.tansu import running_tansu

            broker = stack.enter_context(running_tansu(tmp / "tansu.log"))
            bootstrap = broker.bootstrap
        if bootstrap:
            from sentiflow.ingest.clients import ensure_topics

            asyncio.run(ensure_topics([bootstrap], {args.topic: 4}))
        proc = None
        if args.url:
            base = args.url.rstrip("/")
        else:
            port = free_port()
            extra = {"SENTIFLOW_KAFKA__BOOTSTRAP_SERVERS": json.dumps([bootstrap]),
                     "SENTIFLOW_KAFKA__TOPICS": json.dumps([args.topic])} if bootstrap else {}
            proc = stack.enter_context(node_process(args.home, port, tmp / "results.db", extra,
                                                    tmp / "node.log"))
            base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc, within=900)
        except SystemExit:
            if proc is not None:
                print((tmp / "node.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        result = eventloop.run(drive(base, args, proc.pid if proc else None, bootstrap), "auto")
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            result["summary"]["node_exit_code"] = proc.wait(90)
    summary = result["summary"]
    print_table("load test", [summary])
    png = RESULTS_DIR / f"{args.name}.png"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(result, png, f"sentiflow load: {summary['offered_posts_per_min']:,} posts/min for "
                      f"{args.seconds:.0f} s ({'API + Kafka' if bootstrap else 'API'})")
    path = write_results(args.name, {**result, "plot": str(png.relative_to(REPO_ROOT)),
                                     "args": {k: str(v) for k, v in vars(args).items()}})
    print(f"\nwrote {path} and {png}")


if __name__ == "__main__":
    main()
