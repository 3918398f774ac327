"""`POST /api/classify` under load: the node's actor tree vs a plain Quart handler, same run.

    python -m bench.bench_api --asgi uvicorn   # about 15 minutes
    python -m bench.bench_api --quick      # a smoke run, about a minute

Every server runs in its own process on loopback with the embedded default model (trained on
first use); this process is the load generator (aiohttp, 64 concurrent clients).
Texts are the held-out posts of all 12 languages of ../shared/data, language "auto".

Servers, started one after the other:

* ``plain``: one Quart handler that validates the body with the same pydantic schema, detects the
  language and calls the model directly on the event loop: no actors, no storage.
* ``node``: the real node (``open_node`` + ``create_app``) with its shipped settings: the actor
  tree and its durable result writes (embedded SQLite, ``synchronous=FULL``: an fsync per write
  transaction), with the listeners of other issues (chDB trends, drift watching) switched off,
  to isolate the tree's cost.
* ``node-natural``: ``node`` without the language stage's linger (``language.max_wait_ms = 0``:
  natural batching only): the peer that shows what the linger is worth.
* ``node-4ms``: ``node`` with the language stage's linger of earlier sessions (4 ms instead of
  8): the peer that shows what the longer linger is worth.
* ``node-quart-timeouts``: ``node`` with Quart's own body and response timeouts
  (``asyncio.wait_for``: a task each per request) instead of sentiflow/api/timeouts.py's: the
  peer that shows what two tasks fewer on every request's path are worth.
* ``node-1ms``: ``node`` with the inline budgets of earlier sessions (1 ms instead of 5 for
  ``classifier.inline_budget_ms`` and ``storage.sqlite_inline_budget_ms``): the peer that shows
  what the larger budget is worth when the VM is slow enough that small calls take over 1 ms.
* ``node-threads``: ``node`` with every model batch and result write in a worker thread
  (``classifier.inline_budget_ms = 0``, ``storage.sqlite_inline_budget_ms = 0``) and no
  ``node.gc_freeze``: the peer that shows what running cheap calls on the loop is worth.
* ``node-full``: the node as shipped, listeners included: trends inserted into embedded chDB,
  drift histograms.

Phases per server:

1. *closed loop*: 64 clients send back to back for ``--seconds``: the maximum throughput.
2. *open loop* at 833 requests/s (the seed's 50K posts/min): 64 clients on a fixed schedule;
   latency is measured from each request's *scheduled* time, so a stalled server cannot hide its
   queueing (no coordinated omission).
3. *ramp*: open loop at rising rates; the saturation point is the highest rate still served at
   >= 95 % of the offered rate with p95 < 50 ms.

Then *interleaved rounds* (``--rounds``, default 5; ``--round-servers``, default plain, node and
node-4ms): those servers all started at once and the 833 requests/s phase run 10 s per server
per round, the servers taking turns, so that each meets every stretch of this VM's drifting
speed; per server the rounds that met the target and the median p95. ``--servers`` with no
names runs the rounds alone.

Every server runs once per ASGI server in ``--asgi`` (default: uvicorn, the node's default, then
Hypercorn; ``api.server``) and per event loop in ``--loops`` (default: uvloop, the node's default;
add ``asyncio`` for the standard loop), so their shares of the cost are measured side by side.

The actor tree's overhead is ``1 - node / plain`` closed-loop throughput on the same ASGI server
and loop (target: under 20 %).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench._common import free_port, percentile, print_table, write_results
from sentiflow.api.servers import SERVER_NAMES, ServerName, serve_asgi
from sentiflow.ops import eventloop
from sentiflow.ops.eventloop import EventLoopName

CLIENTS = 64
SERVERS = ("plain", "node", "node-natural", "node-4ms", "node-quart-timeouts", "node-1ms",
           "node-threads", "node-full")
TARGET_RATE = 833.0
P95_BUDGET_MS = 50.0
LANGUAGES = ("ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ms", "pt", "zh")


def load_texts(data_dir: Path, per_language: int = 300) -> list[str]:
    """Held-out texts (test split, else valid, else the tail of train) of every language."""
    texts: list[str] = []
    for lang in LANGUAGES:
        folder = data_dir / "sentiment" / lang
        for split in ("test.csv", "valid.csv", "train.csv"):
            path = folder / split
            if path.exists():
                with path.open(newline="", encoding="utf-8") as handle:
                    rows = [row["text"] for row in csv.DictReader(handle) if row["text"].strip()]
                texts.extend(rows[-per_language:])
                break
    if not texts:
        raise SystemExit(f"no texts under {data_dir}/sentiment (set SENTIFLOW_DATA_DIR)")
    return [t[:2000] for t in texts]


# -- servers (run in child processes) --------------------------------------------------------------

def plain_app() -> Any:
    """A plain Quart app: schema validation, language ID and the model call, nothing else."""
    import time as _time

    from pydantic import ValidationError
    from quart import Quart, request

    from sentiflow.api.schemas import ClassifyRequest, ValidationLimits
    from sentiflow.config.settings import load_settings
    from sentiflow.models.base import LABELS
    from sentiflow.models.preprocess import normalize_batch
    from sentiflow.models.training import load_or_train_default

    settings = load_settings()
    backend = load_or_train_default(settings.node.home / "models", settings.node.data_dir,
                                    progress=False)
    detector = backend.detector
    limits = ValidationLimits.from_settings(settings.api)
    app = Quart("plain")

    @app.post("/api/classify")
    async def classify() -> tuple[dict[str, Any], int]:
        started = _time.perf_counter()
        raw = await request.get_data(as_text=False)
        try:
            req = ClassifyRequest.model_validate_json(raw, context=limits)
        except ValidationError as exc:
            return {"error": "invalid_request", "detail": str(exc)}, 422
        language = req.language
        if language == "auto":
            language = detector.detect_batch_normalized(normalize_batch([req.text]))[0].language
        probabilities = backend.predict_proba([req.text], [language])[0]
        best = int(probabilities.argmax())
        return {"request_id": req.request_id, "sentiment": LABELS[best],
                "confidence": float(probabilities[best]),
                "model_used": f"{backend.name}:{backend.version}", "aspects": [],
                "language_detected": language,
                "latency_ms": (_time.perf_counter() - started) * 1000}, 200

    @app.get("/readyz")
    async def readyz() -> tuple[dict[str, str], int]:
        return {"status": "ready"}, 200

    return app


def serve_plain(port: int, loop: EventLoopName, asgi: ServerName) -> None:
    app = plain_app()
    never = asyncio.Event()
    eventloop.run(serve_asgi(app, asgi, "127.0.0.1", port, graceful_timeout_s=1.0,
                             shutdown_trigger=never.wait), loop)


def node_env(home: str, *, full: bool = False) -> dict[str, str]:
    """This process's environment plus the benchmark node's settings: no rate limit, the stores
    under ``home`` and, unless ``full``, no trends / drift listeners (to isolate the tree)."""
    env = dict(os.environ)
    env.update({
        "SENTIFLOW_API__RATE_LIMIT_PER_SECOND": "0",
        "SENTIFLOW_STORAGE__RESULTS_URL": f"sqlite:///{home}/results.db",
        "SENTIFLOW_STORAGE__TRENDS_URL": f"chdb:///{home}/trends",
    })
    if not full:
        env.update({"SENTIFLOW_TRENDS__ENABLED": "false", "SENTIFLOW_DRIFT__ENABLED": "false"})
    return env


def use_quart_timeouts() -> None:
    """In this (server) process, guard the body and the response as Quart does by default:
    ``asyncio.wait_for`` around reading the body, Quart's ``RESPONSE_TIMEOUT`` on every
    response (the ``node-quart-timeouts`` peer)."""
    from quart import Request

    from sentiflow.api import timeouts

    async def read_body(request: Request, timeout_s: float) -> bytes:
        try:  # what Quart's get_data does with BODY_TIMEOUT set
            return await asyncio.wait_for(
                request.get_data(cache=True, as_text=False, parse_form_data=False), timeout_s)
        except TimeoutError:
            raise timeouts.BodyTimeoutError(timeout_s) from None

    timeouts.read_body = read_body
    timeouts.drop_small_response_timeout = lambda response: None


def serve_node(port: int, full: bool, home: str, loop: EventLoopName, asgi: ServerName,
               threads: bool = False, natural: bool = False, quart_timeouts: bool = False,
               budget_ms: float | None = None, linger_ms: float | None = None) -> None:
    """The real node with default settings, except the port, no rate limit and the store's
    location (and, unless ``full``, no trends / drift listeners; with ``threads``, no calls on
    the loop and no gc freeze; with ``natural``, no linger in the language stage; with
    ``linger_ms``, that linger instead; with ``budget_ms``, those inline budgets instead of the
    shipped ones; with ``quart_timeouts``, Quart's body and response timeouts)."""
    from sentiflow.config.settings import load_settings
    from sentiflow.serve import run_node

    env = node_env(home, full=full)
    env.update({
        "SENTIFLOW_API__PORT": str(port),
        "SENTIFLOW_NODE__EVENT_LOOP": loop,
        "SENTIFLOW_API__SERVER": asgi,
    })
    if natural:
        linger_ms = 0.0
    if linger_ms is not None:
        env["SENTIFLOW_LANGUAGE__MAX_WAIT_MS"] = str(linger_ms)
    if budget_ms is not None:
        env.update({"SENTIFLOW_CLASSIFIER__INLINE_BUDGET_MS": str(budget_ms),
                    "SENTIFLOW_STORAGE__SQLITE_INLINE_BUDGET_MS": str(budget_ms)})
    if threads:
        env.update({"SENTIFLOW_CLASSIFIER__INLINE_BUDGET_MS": "0",
                    "SENTIFLOW_STORAGE__SQLITE_INLINE_BUDGET_MS": "0",
                    "SENTIFLOW_NODE__GC_FREEZE": "false"})
    if quart_timeouts:
        use_quart_timeouts()
    settings = load_settings(env=env)
    raise SystemExit(eventloop.run(run_node(settings), settings.node.event_loop))


# -- load generation -----------------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    offered_rate: float | None
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def row(self, server: str) -> dict[str, Any]:
        done = len(self.latencies_ms)
        return {
            "server": server,
            "phase": self.name,
            "offered_rps": self.offered_rate if self.offered_rate is not None else "max",
            "achieved_rps": done / self.elapsed if self.elapsed else 0.0,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p95_ms": percentile(self.latencies_ms, 95),
            "p99_ms": percentile(self.latencies_ms, 99),
            "errors": sum(self.errors.values()),
        }


async def _post(session: aiohttp.ClientSession, url: str, text: str, phase: Phase,
                since: float) -> None:
    body = json.dumps({"text": text, "language": "auto", "priority": "realtime"})
    try:
        async with session.post(url, data=body,
                                headers={"content-type": "application/json"}) as response:
            await response.read()
            if response.status != 200:
                key = str(response.status)
                phase.errors[key] = phase.errors.get(key, 0) + 1
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        key = type(exc).__name__
        phase.errors[key] = phase.errors.get(key, 0) + 1
        return
    phase.latencies_ms.append((time.perf_counter() - since) * 1000)


async def run_phase(base: str, texts: Sequence[str], phase: Phase) -> Phase:
    """``CLIENTS`` workers; closed loop when ``offered_rate`` is None, else each worker sends on a
    fixed schedule of ``offered_rate / CLIENTS`` per second, timed from the scheduled instant."""
    url = f"{base}/api/classify"
    connector = aiohttp.TCPConnector(limit=CLIENTS, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + phase.seconds

        async def worker(index: int) -> None:
            n = index
            if phase.offered_rate is None:
                while time.perf_counter() < deadline:
                    await _post(session, url, texts[n % len(texts)], phase, time.perf_counter())
                    n += CLIENTS
                return
            interval = CLIENTS / phase.offered_rate
            due = start + index * (interval / CLIENTS)
            while due < deadline:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await _post(session, url, texts[n % len(texts)], phase, due)
                n += CLIENTS
                due += interval

        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
        phase.elapsed = time.perf_counter() - start
    return phase


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc: a per-request
    cost that, unlike throughput, hardly moves when other jobs share the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_ready(base: str, process: subprocess.Popen[bytes], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}")
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"server at {base} not ready within {within_s:.0f} s")


def start_server(server: str, loop: str, asgi: str, home: str
                 ) -> tuple[subprocess.Popen[bytes], str]:
    """``server`` in a child process of its own on a free loopback port: (process, base URL)."""
    port = free_port()
    command = [sys.executable, "-m", "bench.bench_api", "--serve", server, "--port", str(port),
               "--home", home, "--loop", loop, "--asgi", asgi]
    # The server outlives many awaits here; Popen (not asyncio's) so it works from any loop.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}"


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


async def classifier_batches(base: str) -> tuple[float, float] | None:
    """(batches, posts) the node's classifiers have reported so far (their ``batch_size``
    histogram in ``GET /metrics``); None for a server without one (plain)."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        if response.status != 200:
            return None
        text = await response.text()
    batches = posts = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "sentiflow_actor_batch_size":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    batches += sample.value
                elif sample.name.endswith("_sum"):
                    posts += sample.value
    return batches, posts


async def measured(base: str, texts: Sequence[str], phase: Phase, pid: int, server: str
                   ) -> dict[str, Any]:
    """Run ``phase`` against ``base``: its row, with the server's CPU per request and, for a
    node, the mean size of the classifier's batches during the phase."""
    before = await classifier_batches(base)  # scrapes outside the CPU window
    cpu = cpu_seconds(pid)
    row = (await run_phase(base, texts, phase)).row(server)
    row["server_cpu_us_per_req"] = ((cpu_seconds(pid) - cpu) * 1e6
                                    / max(1, len(phase.latencies_ms)))
    after = await classifier_batches(base)
    if before is not None and after is not None and after[0] > before[0]:
        row["batch_posts"] = (after[1] - before[1]) / (after[0] - before[0])
    return row


async def bench_server(server: str, loop: str, asgi: str, args: argparse.Namespace,
                       texts: Sequence[str], home: str) -> list[dict[str, Any]]:
    process, base = start_server(server, loop, asgi, home)
    server = f"{server}/{asgi}/{loop}"
    try:
        await wait_ready(base, process, within_s=600)
        await run_phase(base, texts, Phase("warm-up", None, 3))
        rows = [await measured(base, texts, phase, process.pid, server)
                for phase in (Phase("closed", None, args.seconds),
                              Phase("open", TARGET_RATE, args.seconds))]
        open_row = rows[1]
        saturation = TARGET_RATE if (open_row["achieved_rps"] >= 0.95 * TARGET_RATE
                                     and open_row["p95_ms"] < P95_BUDGET_MS) else 0.0
        for rate in args.ramp if saturation else ():
            row = await measured(base, texts, Phase("ramp", rate, args.ramp_seconds),
                                 process.pid, server)
            rows.append(row)
            if row["achieved_rps"] >= 0.95 * rate and row["p95_ms"] < P95_BUDGET_MS:
                saturation = rate
            else:
                break
        for row in rows:
            row["saturation_rps"] = saturation
        return rows
    finally:
        stop_server(process)


async def interleaved_rounds(servers: Sequence[str], loop: str, asgi: str,
                             args: argparse.Namespace, texts: Sequence[str]
                             ) -> list[dict[str, Any]]:
    """The open-loop phase at 833 requests/s, ``args.rounds`` times per server, the servers
    taking turns (all started at once; one that waits for its turn costs next to nothing, and
    the order rotates every round). This VM's speed drifts by tens of percent within minutes,
    so one phase per server, minutes apart, compares stretches of the VM as much as servers;
    turns of ``args.round_seconds`` put every server in every stretch."""
    with contextlib.ExitStack() as stack:
        started: list[tuple[str, subprocess.Popen[bytes], str]] = []
        try:
            for server in servers:
                home = stack.enter_context(tempfile.TemporaryDirectory(
                    prefix=f"bench-api-rounds-{server}-"))
                process, base = start_server(server, loop, asgi, home)
                started.append((f"{server}/{asgi}/{loop}", process, base))
            for _, process, base in started:
                await wait_ready(base, process, within_s=600)
                await run_phase(base, texts, Phase("warm-up", None, 3))
            rows: list[dict[str, Any]] = []
            for turn in range(args.rounds):
                shift = turn % len(started)
                for name, process, base in started[shift:] + started[:shift]:
                    row = await measured(base, texts,
                                         Phase("round", TARGET_RATE, args.round_seconds),
                                         process.pid, name)
                    row["round"] = turn + 1
                    rows.append(row)
            return rows
        finally:
            for _, process, _ in started:
                stop_server(process)


def summarise_rounds(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per server: rounds meeting the target (p95 < 50 ms, >= 95 % of 833/s served), the
    median and range of p95, the median CPU per request."""
    out = []
    for server in dict.fromkeys(r["server"] for r in rows):
        mine = [r for r in rows if r["server"] == server]
        p95 = [r["p95_ms"] for r in mine]
        met = sum(1 for r in mine if r["p95_ms"] < P95_BUDGET_MS
                  and r["achieved_rps"] >= 0.95 * TARGET_RATE)
        out.append({"server": server, "rounds": len(mine), "met_target": f"{met}/{len(mine)}",
                    "p95_median_ms": statistics.median(p95), "p95_min_ms": min(p95),
                    "p95_max_ms": max(p95),
                    "p50_median_ms": statistics.median(r["p50_ms"] for r in mine),
                    "cpu_us_per_req_median": statistics.median(
                        r["server_cpu_us_per_req"] for r in mine)})
    return out


async def main_async(args: argparse.Namespace) -> None:
    from sentiflow.config.settings import load_settings

    settings = load_settings()
    # Train (or load) the model once here so that the servers only load it.
    from sentiflow.models.training import load_or_train_default

    load_or_train_default(settings.node.home / "models", settings.node.data_dir, progress=True)
    texts = load_texts(settings.node.data_dir)
    rows: list[dict[str, Any]] = []
    for asgi in args.asgi:
        for loop in args.loops:
            for server in args.servers:
                with tempfile.TemporaryDirectory(prefix=f"bench-api-{server}-") as home:
                    rows.extend(await bench_server(server, loop, asgi, args, texts, home))
    print_table(f"POST /api/classify, {CLIENTS} clients, {len(texts)} texts in "
                f"{len(LANGUAGES)} languages", rows)
    closed = {r["server"]: r["achieved_rps"] for r in rows if r["phase"] == "closed"}
    cpu = {r["server"]: r["server_cpu_us_per_req"] for r in rows if r["phase"] == "closed"}
    summary: dict[str, Any] = {"closed_loop_rps": closed, "server_cpu_us_per_req": cpu}
    for server in cpu:  # server names are "<server>/<asgi>/<loop>"
        kind, rest = server.split("/", 1)
        plain = f"plain/{rest}"
        if kind != "plain" and cpu.get(plain):
            print(f"server CPU per request, {server} vs {plain}: {cpu[server]:.0f} vs "
                  f"{cpu[plain]:.0f} us ({cpu[server] / cpu[plain] - 1:+.0%})")
        if kind != "plain" and closed.get(plain):
            overhead = 1 - closed[server] / closed[plain]
            summary[f"overhead_{server}"] = overhead
            print(f"actor tree overhead ({server} vs {plain}): {overhead:.1%} (target < 20%)")
    for name, others, pick in (("loop", args.loops, 2), ("ASGI server", args.asgi, 1)):
        first = others[0]
        for server in cpu:
            parts = server.split("/")
            if parts[pick] != first:
                continue
            for other in others[1:]:
                parts[pick] = other
                if (peer := "/".join(parts)) in cpu:
                    ours, theirs = cpu[server], cpu[peer]
                    print(f"{name}: CPU per request {server} {ours:.0f} us vs {peer} "
                          f"{theirs:.0f} us ({ours / theirs - 1:+.0%})")
    for row in rows:
        if row["phase"] == "open":
            verdict = "meets" if row["p95_ms"] < P95_BUDGET_MS else "misses"
            print(f"{row['server']}: p95 {row['p95_ms']:.1f} ms at {TARGET_RATE:.0f} req/s "
                  f"({verdict} the {P95_BUDGET_MS:.0f} ms target), saturation "
                  f"{row['saturation_rps']:.0f} req/s")
    round_rows: list[dict[str, Any]] = []
    rounds_summary: list[dict[str, Any]] = []
    if args.rounds and args.round_servers:
        round_rows = await interleaved_rounds(args.round_servers, args.loops[0], args.asgi[0],
                                              args, texts)
        rounds_summary = summarise_rounds(round_rows)
        print_table(f"interleaved rounds: {args.round_seconds:.0f} s at {TARGET_RATE:.0f} req/s "
                    f"per server and round, the servers taking turns", round_rows)
        print_table("per server over the rounds", rounds_summary)
    path = write_results(args.results, {"clients": CLIENTS, "texts": len(texts),
                                        "quick": args.quick, "rows": rows, "summary": summary,
                                        "rounds": round_rows, "rounds_summary": rounds_summary})
    print(f"\nwritten {path}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases (smoke run)")
    parser.add_argument("--servers", nargs="*", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds at 833 req/s after the phases (default 5, 1 "
                             "with --quick; 0: none)")
    parser.add_argument("--round-servers", nargs="*", default=["plain", "node", "node-4ms"],
                        choices=SERVERS, help="servers of the interleaved rounds")
    parser.add_argument("--results", default="api",
                        help="name of the JSON written under bench/results (default: api)")
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--loops", nargs="+", default=["uvloop"],
                        choices=["uvloop", "asyncio"],
                        help="event loops to run every server on (node.event_loop)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help=argparse.SUPPRESS)
    parser.add_argument("--asgi", nargs="+", default=list(SERVER_NAMES), choices=SERVER_NAMES,
                        help="ASGI servers to run every server on (api.server; uvicorn is the "
                             "default)")
    args = parser.parse_args(argv)
    if args.serve is not None:
        asgi: ServerName = args.asgi[0]
        if args.serve == "plain":
            serve_plain(args.port, args.loop, asgi)
        else:
            serve_node(args.port, args.serve == "node-full", args.home, args.loop, asgi,
                       threads=args.serve == "node-threads",
                       natural=args.serve == "node-natural",
                       quart_timeouts=args.serve == "node-quart-timeouts",
                       linger_ms=4.0 if args.serve == "node-4ms" else None,
                       budget_ms=1.0 if args.serve == "node-1ms" else None)
        return
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    args.round_seconds = 5.0 if args.quick else 10.0
    args.seconds = 5.0 if args.quick else 20.0
    args.ramp_seconds = 4.0 if args.quick else 10.0
    args.ramp = [1250.0, 2000.0] if args.quick else [1250.0, 1666.0, 2500.0, 3333.0, 5000.0]
    eventloop.run(main_async(args), "auto")  # the load generator on uvloop too


if __name__ == "__main__":
    main()
