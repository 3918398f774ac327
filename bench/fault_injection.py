"""Fault injection: break the node on purpose under load and count what was lost (must be 0).

Scenarios (one table row each: fault, what the node did, posts lost):

- ``kill``: actors of the pipeline crash at random (an exception raised inside the actor's own
  task, see ``sentiflow.ops.faults``) while clients submit posts and retry what is answered
  with an error, as the API's 503 tells them to. Every post must end up answered and durable.
- ``stall``: the node process is frozen (SIGSTOP, so its event loop makes no progress) for
  longer than its WatchdogSec. This suite plays systemd: it owns the notify socket and measures
  the gap between WATCHDOG=1 pings (systemd would kill and restart the node when it exceeds
  WatchdogSec); the requests in flight when it froze are answered once it runs again.
- ``disk-full``: the embedded store lives on a tiny tmpfs that fills up under load. Writes fail
  with a clear error (API 503 naming the cause), the node stays up, nothing is half-written
  (``PRAGMA integrity_check``); after the disk grows, the clients' retries all succeed. Needs
  root for ``mount -t tmpfs`` (skipped with the reason otherwise).
- ``slow-storage``: every write of the store takes ``--write-delay`` s (a wrapper around the
  real store). Mailboxes fill up stage by stage until the entry refuses new posts (what the API
  turns into 503 + Retry-After); every accepted post is still answered and durable.
- ``slow-storage-kafka`` (``--kafka``): the same with posts coming from Kafka: the readers stop
  fetching (in-flight bound), consumer lag grows, nothing is dropped, lag returns to 0.

    .venv/bin/python -m bench.fault_injection --quick          # ~1-2 min smoke run
    .venv/bin/python -m bench.fault_injection --kafka          # every row, full length

The node uses the embedded default model under ``--home`` (``var/``) and a temp store; optional
subsystems that are not under test (aspects, trends, drift) are switched off.
Writes ``bench/results/fault_injection.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench._common import free_port, print_table, write_results
from bench.load_test import TEXTS, wait_ready
from sentiflow.actors.messages import LANE, PipelineError
from sentiflow.api.schemas import ClassifyRequest
from sentiflow.config.paths import REPO_ROOT
from sentiflow.config.settings import Settings, load_settings
from sentiflow.node import Node, open_node
from sentiflow.ops.faults import crash_actor
from sentiflow.runtime import ActorSnapshot, MailboxFull, SupervisorSnapshot
from sentiflow.stores.records import ClassificationRequest, utcnow

MINIMAL = {"SENTIFLOW_ASPECTS__ENABLED": "false", "SENTIFLOW_TRENDS__ENABLED": "false",
           "SENTIFLOW_DRIFT__ENABLED": "false", "SENTIFLOW_API__RATE_LIMIT_PER_SECOND": "0"}


@dataclass
class Row:
    fault: str
    node_did: str
    posts_sent: int
    posts_lost: int
    details: dict[str, Any] = field(default_factory=dict)

    def table(self) -> dict[str, Any]:
        return {"fault": self.fault, "what the node did": self.node_did,
                "posts": self.posts_sent, "lost": self.posts_lost}


def request(seq: int, prefix: str) -> ClassificationRequest:
    item = ClassifyRequest(text=f"{TEXTS[seq % len(TEXTS)]} #{seq}",
                           request_id=f"{prefix}-{seq}")
    return item.to_request(priority="standard", received_at=utcnow())


def settings_for(home: Path, store: Path, **env: str) -> Settings:
    environ = {"SENTIFLOW_NODE__HOME": str(home),
               "SENTIFLOW_STORAGE__RESULTS_URL": f"sqlite:///{store}",
               "SENTIFLOW_STORAGE__SQLITE_SYNCHRONOUS": "NORMAL", **MINIMAL}
    environ.update({f"SENTIFLOW_{k}": v for k, v in env.items()})
    return load_settings(None, env=environ)


def restarts(node: Node) -> int:
    return sum(n.restarts for n in node.snapshot().walk() if isinstance(n, SupervisorSnapshot)
               and n.path == "/root/pipeline")


async def missing_from_store(node: Node, ids: list[str]) -> int:
    missing = 0
    for rid in ids:
        if await node.store.get_result(rid) is None:
            missing += 1
    return missing


# -- kill actors at random under load ---------------------------------------------------------

async def scenario_kill(home: Path, tmp: Path, seconds: float, kill_every: float) -> Row:
    settings = settings_for(home, tmp / "kill.db")
    rng = random.Random(3)
    acked: set[str] = set()
    sent = retries = kills = 0
    gave_up: list[str] = []
    all_ids: list[str] = []
    async with open_node(settings) as node:
        victims = [n.path for n in node.snapshot().walk() if isinstance(n, ActorSnapshot)
                   and n.path.startswith("/root/pipeline/")]
        deadline = time.monotonic() + seconds

        async def client(index: int) -> None:
            nonlocal sent, retries
            seq = 0
            while time.monotonic() < deadline:
                batch = [request(index * 1_000_000 + seq + i, "kill") for i in range(4)]
                seq += 4
                sent += len(batch)
                all_ids.extend(r.request_id for r in batch)
                for _attempt in range(50):  # the client's retry policy (API: 503 + Retry-After)
                    try:
                        await node.entry.classify(batch, lane=LANE["standard"], timeout=10,
                                                  offer_timeout=1.0)
                        acked.update(r.request_id for r in batch)
                        break
                    except (PipelineError, MailboxFull):
                        retries += 1
                        await anyio.sleep(0.05)
                else:
                    gave_up.extend(r.request_id for r in batch)

        async def killer() -> None:
            nonlocal kills
            while time.monotonic() < deadline:
                await anyio.sleep(kill_every)
                if crash_actor(node.system, rng.choice(victims)):
                    kills += 1

        async with anyio.create_task_group() as tg:
            for i in range(32):  # enough clients that the stages are busy when they crash
                tg.start_soon(client, i)
            tg.start_soon(killer)
        missing = await missing_from_store(node, all_ids)
        done = restarts(node)
        healthy = node.root.healthy
    lost = missing
    return Row("kill random pipeline actors under load",
               f"{kills} crashes, {done} supervisor restarts, {retries} submissions answered "
               f"with an error and retried, tree healthy after: {healthy}",
               sent, lost, {"kills": kills, "restarts": done, "retries": retries,
                            "client_gave_up": len(gave_up), "missing_in_store": missing})


# -- a frozen node: the watchdog -----------------------------------------------------------------

class NotifyReader:
    """systemd's side of sd_notify: a socket read in a thread, with arrival times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue

    def pings(self, since: float = 0.0) -> list[float]:
        return [t for t, m in self.messages if "WATCHDOG=1" in m and t >= since]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@contextlib.contextmanager
def node_subprocess(home: Path, store: Path, env: dict[str, str], log: Path
                    ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENTIFLOW_")}
    environ.update({"SENTIFLOW_HOME": str(home), "SENTIFLOW_API__PORT": str(port),
                    "SENTIFLOW_STORAGE__RESULTS_URL": f"sqlite:///{store}", **MINIMAL, **env})
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", "from sentiflow.cli import main; main()",
                                 "run"], env=environ, stdout=fh, stderr=subprocess.STDOUT)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


async def post_all(client: httpx.AsyncClient, ids: list[str]) -> dict[str, int]:
    status: dict[str, int] = {}

    async def one(rid: str) -> None:
        try:
            r = await client.post("/api/classify", json={"text": f"{TEXTS[0]} {rid}",
                                                         "request_id": rid})
            status[rid] = r.status_code
        except httpx.HTTPError:
            status[rid] = 0

    async with anyio.create_task_group() as tg:
        for rid in ids:
            tg.start_soon(one, rid)
    return status


async def scenario_stall(home: Path, tmp: Path, watchdog_s: float, stall_s: float) -> Row:
    reader = NotifyReader(tmp / "notify.sock")
    env = {"NOTIFY_SOCKET": str(reader.path), "WATCHDOG_USEC": str(int(watchdog_s * 1e6))}
    try:
        with node_subprocess(home, tmp / "stall.db", env, tmp / "stall.log") as (proc, base):
            await anyio.to_thread.run_sync(wait_ready, base, proc, 300.0)
            await anyio.sleep(3 * watchdog_s)
            healthy_gap = max(b - a for a, b in itertools.pairwise(reader.pings()))
            ids = [f"stall-{i}" for i in range(40)]
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                async with anyio.create_task_group() as tg:
                    results: dict[str, int] = {}

                    async def send() -> None:
                        results.update(await post_all(client, ids))

                    tg.start_soon(send)
                    await anyio.sleep(0.005)  # requests on the wire, then freeze the node
                    frozen_at = time.monotonic()
                    os.kill(proc.pid, signal.SIGSTOP)
                    await anyio.sleep(stall_s)
                    os.kill(proc.pid, signal.SIGCONT)
                await anyio.sleep(2 * watchdog_s)
            pings = reader.pings(frozen_at - watchdog_s)
            stall_gap = max(b - a for a, b in itertools.pairwise(pings))
            ok = sum(1 for s in results.values() if s == 200)
    finally:
        reader.close()
    fired = stall_gap > watchdog_s
    return Row(f"event loop frozen {stall_s:g} s (WatchdogSec={watchdog_s:g})",
               f"WATCHDOG=1 pings stopped for {stall_gap:.1f} s (healthy gap {healthy_gap:.1f} s): "
               f"systemd {'would restart it' if fired else 'would NOT notice'}; "
               f"{ok}/{len(ids)} in-flight requests answered 200 after it resumed",
               len(ids), len(ids) - ok,
               {"stall_gap_s": round(stall_gap, 2), "healthy_gap_s": round(healthy_gap, 2),
                "watchdog_fired": fired})


# -- disk full -------------------------------------------------------------------------------------

@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[Callable[[str], None]]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)

    def resize(new: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new}", str(path)], check=True,
                       capture_output=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


async def scenario_disk_full(home: Path, tmp: Path, posts: int) -> Row | None:
    if os.geteuid() != 0:
        print("disk-full: skipped (mounting a tmpfs needs root)", file=sys.stderr)
        return None
    disk = tmp / "tiny-disk"
    with tiny_tmpfs(disk, "1m") as resize:
        store = disk / "results.db"
        with node_subprocess(home, store, {"SENTIFLOW_STORAGE__SQLITE_SYNCHRONOUS": "NORMAL"},
                             tmp / "disk.log") as (proc, base):
            await anyio.to_thread.run_sync(wait_ready, base, proc, 300.0)
            ids = [f"disk-{i}-{'x' * 40}" for i in range(posts)]
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(
                    max_connections=32)) as client:
                first: dict[str, int] = {}
                for start in range(0, len(ids), 200):
                    first.update(await post_all(client, ids[start:start + 200]))
                failed = [rid for rid, s in first.items() if s != 200]
                sample = ""
                if failed:
                    r = await client.post("/api/classify", json={"text": "probe",
                                                                 "request_id": failed[0]})
                    sample = r.json().get("detail", "")[:120] if r.status_code != 200 else ""
                alive = (await client.get("/healthz")).status_code == 200
                resize("64m")  # the operator frees space; clients retry what failed
                retried = await post_all(client, failed)
                still = [rid for rid, s in retried.items() if s != 200]
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        conn = sqlite3.connect(store)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            stored = {row[0] for row in conn.execute("SELECT request_id FROM results")}
        finally:
            conn.close()
    lost = sum(1 for rid in ids if rid not in stored)
    return Row("embedded store's disk full (1 MB tmpfs)",
               f"{len(failed)} posts answered 503 ({sample!r}); node alive: {alive}; after "
               f"the disk grew all {len(failed) - len(still)} retries 200; integrity_check: "
               f"{check}; exit {code}",
               len(ids), lost, {"failed_first": len(failed), "retry_failures": len(still),
                                "integrity": check, "exit_code": code})


# -- slow storage: backpressure --------------------------------------------------------------------

class SlowStore:
    """The real store, with every ``write_results`` delayed by ``delay`` plus ``per_post`` per
    record (a slow disk or database: latency and limited bandwidth)."""

    def __init__(self, inner: Any, delay: float, per_post: float = 0.0) -> None:
        self._inner = inner
        self._delay = delay
        self._per_post = per_post

    async def write_results(self, batch: Any) -> None:
        await anyio.sleep(self._delay + self._per_post * len(batch))
        await self._inner.write_results(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@asynccontextmanager
async def slow_node(settings: Settings, delay: float, per_post: float = 0.0
                    ) -> AsyncIterator[Node]:
    import sentiflow.node as node_module

    # The node opens its own store: wrap the factory it calls (fault injection only).
    real = getattr(node_module, "open_result_store")  # noqa: B009

    async def slow_open(*args: Any, **kwargs: Any) -> Any:
        return SlowStore(await real(*args, **kwargs), delay, per_post)

    setattr(node_module, "open_result_store", slow_open)  # noqa: B010
    try:
        async with open_node(settings) as node:
            yield node
    finally:
        setattr(node_module, "open_result_store", real)  # noqa: B010


SMALL_MAILBOXES = {"STORAGE__WRITER_MAILBOX_SIZE": "32", "ROUTER__MAILBOX_SIZE": "32",
                   "CLASSIFIER__MAILBOX_SIZE": "32", "LANGUAGE__MAILBOX_SIZE": "32",
                   "STORAGE__WRITER_MAX_BATCH": "32"}


async def scenario_slow_storage(home: Path, tmp: Path, seconds: float, delay: float,
                                rate: float) -> Row:
    settings = settings_for(home, tmp / "slow.db", **SMALL_MAILBOXES)
    accepted: list[tuple[list[str], Any]] = []
    rejected = sent = 0
    peak: dict[str, int] = {}
    async with slow_node(settings, delay) as node:
        started = time.monotonic()
        seq = 0
        while time.monotonic() - started < seconds:
            due = int(rate * (time.monotonic() - started)) - seq
            for _ in range(max(0, due)):
                batch = [request(seq, "slow")]
                seq += 1
                sent += 1
                try:  # the API's admission: wait at most enqueue_timeout_s for room
                    reply = await node.entry.submit(batch, lane=LANE["standard"],
                                                    offer_timeout=0.01)
                    accepted.append(([r.request_id for r in batch], reply))
                except MailboxFull:
                    rejected += 1
            for n in node.snapshot().walk():
                if isinstance(n, ActorSnapshot):
                    peak[n.path] = max(peak.get(n.path, 0), n.mailbox_depth)
            await anyio.sleep(0.01)
        answered = failed = 0
        with anyio.move_on_after(120):
            for _ids, reply in accepted:
                try:
                    await reply.wait()
                    answered += 1
                except PipelineError:
                    failed += 1
        ids = [rid for batch_ids, _ in accepted for rid in batch_ids]
        missing = await missing_from_store(node, ids)
    full = sorted(p.rsplit("/", 1)[-1] for p, d in peak.items() if d >= 32)
    return Row(f"slow storage (+{delay * 1000:.0f} ms per write)",
               f"mailboxes filled ({', '.join(full) or 'none'} at capacity); the entry refused "
               f"{rejected} of {sent} posts (API: 503 + Retry-After); {answered} accepted "
               f"posts answered, {failed} failed",
               sent - rejected, missing + failed,
               {"rejected": rejected, "accepted": sent - rejected, "peak_depth": peak})


async def scenario_slow_storage_kafka(home: Path, tmp: Path, posts: int, delay: float,
                                      rate: float = 500.0) -> Row | None:
    try:
        from aiokafka import AIOKafkaProducer

        from sentiflow.ingest.clients import ensure_topics
        from tests.ingest.tansu import running_tansu
    except ImportError as exc:
        print(f"slow-storage-kafka: skipped ({exc})", file=sys.stderr)
        return None
    with running_tansu(tmp / "tansu.log") as broker:
        await ensure_topics([broker.bootstrap], {"posts": 2})
        settings = settings_for(home, tmp / "kafka.db", **SMALL_MAILBOXES, **{
            "KAFKA__BOOTSTRAP_SERVERS": json.dumps([broker.bootstrap]),
            "KAFKA__MAX_IN_FLIGHT_POSTS": "256"})
        lags: list[int] = []
        queued_peak = 0
        produced = 0
        async with slow_node(settings, delay, per_post=0.005) as node:

            def durable() -> int:
                total = 0
                for n in node.snapshot().walk():
                    value = n.metrics.get("durable", 0) if isinstance(n, ActorSnapshot) else 0
                    total += value if isinstance(value, int) else 0
                return total

            async def produce() -> None:  # faster than the slowed store can take
                nonlocal produced
                producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
                await producer.start()
                try:
                    started = time.monotonic()
                    while produced < posts:
                        due = min(posts, int(rate * (time.monotonic() - started)))
                        for i in range(produced, due):
                            await producer.send("posts", json.dumps(
                                {"text": f"{TEXTS[i % len(TEXTS)]} #{i}",
                                 "request_id": f"kafka-{i}"}).encode())
                        produced = max(produced, due)
                        await anyio.sleep(0.01)
                    await producer.flush()
                finally:
                    await producer.stop()

            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                with anyio.move_on_after(300):
                    while (done := durable()) < posts:
                        lags.append(produced - done)
                        queued_peak = max(queued_peak, sum(
                            n.mailbox_depth for n in node.snapshot().walk()
                            if isinstance(n, ActorSnapshot)))
                        await anyio.sleep(0.25)
            missing = await missing_from_store(node, [f"kafka-{i}" for i in range(posts)])
    peak = max(lags, default=0)
    return Row(f"slow storage (+{delay * 1000:.0f} ms + 5 ms/post per write: ~200 posts/s), "
               f"posts from Kafka at {rate:.0f}/s",
               f"consumer lag grew to {peak} posts while producing, then returned to "
               f"{posts - done}; pipeline backlog stayed bounded (max {queued_peak} queued "
               f"messages, mailboxes of 32); every post durable",
               posts, missing, {"lag_series": lags[::4], "final_lag": posts - done,
                                "max_queued_messages": queued_peak})


async def main_async(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sentiflow-faults-") as tmp_name:
        tmp = Path(tmp_name)
        wanted = set(args.only or ["kill", "stall", "disk-full", "slow-storage"]
                     + (["slow-storage-kafka"] if args.kafka else []))
        if "kill" in wanted:
            rows.append(await scenario_kill(args.home, tmp, args.seconds, args.kill_every))
        if "stall" in wanted:
            rows.append(await scenario_stall(args.home, tmp, 2.0, 5.0))
        if "disk-full" in wanted and (row := await scenario_disk_full(
                args.home, tmp, args.disk_posts)) is not None:
            rows.append(row)
        if "slow-storage" in wanted:
            rows.append(await scenario_slow_storage(args.home, tmp, args.seconds, 0.2, 500.0))
        if "slow-storage-kafka" in wanted and (row := await scenario_slow_storage_kafka(
                args.home, tmp, args.kafka_posts, 0.2)) is not None:
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=REPO_ROOT / "var")
    parser.add_argument("--seconds", type=float, default=60.0, help="load per scenario")
    parser.add_argument("--kill-every", type=float, default=7.0,
                        help="seconds between crashes (the pipeline allows 10 per 60 s)")
    parser.add_argument("--disk-posts", type=int, default=4000)
    parser.add_argument("--kafka", action="store_true", help="add the Kafka row (tansu)")
    parser.add_argument("--kafka-posts", type=int, default=5000)
    parser.add_argument("--only", action="append",
                        choices=["kill", "stall", "disk-full", "slow-storage",
                                 "slow-storage-kafka"])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.kill_every = 12.0, 1.5
        args.disk_posts, args.kafka_posts = 2500, 1500
    rows = asyncio.run(main_async(args))
    print_table("fault injection", [r.table() for r in rows])
    path = write_results("fault_injection", {
        "quick": args.quick, "rows": [{**r.table(), "details": r.details} for r in rows],
        "all_zero_loss": all(r.posts_lost == 0 for r in rows)})
    print(f"\nwrote {path}")
    if any(r.posts_lost for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
