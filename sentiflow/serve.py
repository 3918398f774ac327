"""Serving a node: the API (uvicorn or Hypercorn, sentiflow/api/servers.py) beside the actor
tree, until a signal or a give-up.

``run_node`` is what ``sentiflow run`` executes. A SIGTERM / SIGINT stops the HTTP server
(in-flight requests finish), then the tree shuts down in reverse order with every mailbox
drained; if the root supervisor gives up instead, the same happens and the process exits
non-zero so that systemd restarts it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Sequence

import anyio
import httpx

from sentiflow.api.app import create_app
from sentiflow.api.servers import serve_asgi
from sentiflow.config.settings import Settings
from sentiflow.node import Node, open_node
from sentiflow.ops.eventloop import loop_name
from sentiflow.ops.sdnotify import SystemdNotifier
from sentiflow.ops.watchdog import Heartbeat
from sentiflow.runtime import ActorSnapshot

log = logging.getLogger("sentiflow.serve")

#: Sent by ``sentiflow run --demo``; the language is detected, not given.
DEMO_TEXTS: Sequence[str] = (
    "I absolutely love this phone, the battery lasts forever!",
    "El servicio al cliente fue horrible, nunca más compro aquí.",
    "Die Lieferung kam pünktlich, alles in Ordnung.",
    "Quelle déception, le produit est arrivé cassé.",
    "Adorei o atendimento, super rápido e atencioso!",
    "この商品は最高です。また買いたいです。",
)


#: Sent with ``aspects: true`` (answered 501 when the aspect step is disabled).
DEMO_ASPECTS_TEXT = "The food was delicious but the service was terribly slow."


async def serve_node(node: Node, stop: anyio.Event, graceful_timeout_s: float = 10.0) -> None:
    """Serve the API (``settings.api``: server, host, port) until ``stop`` is set (by a signal,
    a give-up, or the caller); raises :class:`OSError` when the address cannot be bound."""
    api = node.settings.api
    await serve_asgi(create_app(node), api.server, api.host, api.port,
                     graceful_timeout_s=graceful_timeout_s, shutdown_trigger=stop.wait)


async def show_demo(base_url: str, echo: bool = True) -> list[dict[str, object]]:
    """Wait for readiness, classify a few texts in several languages, print the exchange."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        for _ in range(200):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await anyio.sleep(0.05)
        answers = []
        bodies: list[dict[str, object]] = [
            {"text": text, "language": "auto", "priority": "realtime"} for text in DEMO_TEXTS]
        bodies.append({"text": DEMO_ASPECTS_TEXT, "aspects": True})
        for body in bodies:
            response = await client.post("/api/classify", json=body)
            answer = response.json()
            answers.append(answer)
            if echo:
                print(f"POST /api/classify {body}\n  -> {response.status_code} {answer}\n")
        if echo:
            print(f"The node is up at {base_url} (OpenAPI: {base_url}/openapi.json, "
                  f"metrics: {base_url}/metrics). Try:\n"
                  f"  curl -s {base_url}/api/classify -H 'content-type: application/json' "
                  "-d '{\"text\": \"what a great day\"}'\nCtrl-C stops it.")
        return answers


def local_url(host: str, port: int) -> str:
    """How this process reaches its own API (a wildcard bind is reached over loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def freeze_startup_objects() -> int:
    """``gc.freeze()`` after a collection (so garbage is not frozen too): the startup objects
    move to the permanent generation and full collections stop rescanning them (the
    ``node.gc_freeze`` setting says why). Returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("froze %d startup objects out of the garbage collector's scans", frozen)
    return frozen


async def wait_http_ready(base_url: str, within: float) -> bool:
    """Poll ``/readyz`` until it answers 200 (True) or ``within`` seconds pass (False)."""
    with anyio.move_on_after(within):
        async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.05)
    return False


def _stage_deadline(node: Node, budget: float) -> float:
    """Per-stage drain deadline so that the stages, drained one after another (upstream
    first), together stay within ``budget`` seconds."""
    cells = sum(1 for n in node.snapshot().walk() if isinstance(n, ActorSnapshot))
    return max(0.5, budget / max(1, cells))


async def run_node(settings: Settings, *, demo: bool = False,
                   notifier: SystemdNotifier | None = None) -> int:
    """Run the whole node until stopped; returns the process exit status.

    0 after a signal and a graceful drain; 1 when the root supervisor gave up or the API
    could not be served (systemd's ``Restart=on-failure`` then restarts the node).

    systemd integration (no-ops outside systemd): READY=1 once the model is loaded, the tree is
    up and the API answers ``/readyz`` on its socket; WATCHDOG=1 from the heartbeat while the
    root supervisor is healthy; STOPPING=1 when the drain starts.
    """
    notifier = notifier or SystemdNotifier.from_env()
    ops = settings.ops
    failed: list[BaseException] = []
    notifier.status("loading the model and starting the tree")
    async with open_node(settings) as node:
        stop = anyio.Event()
        interval = ops.heartbeat_interval_s or notifier.watchdog_interval or 1.0
        heartbeat = Heartbeat(lambda: node.root.healthy, notifier.watchdog, interval)
        node.gauges["loop_lag_max_ms"] = lambda: heartbeat.recent.max() * 1000.0
        node.gauges["heartbeat_age_s"] = lambda: (
            time.time() - heartbeat.last_beat if heartbeat.last_beat else float("nan"))
        base_url = local_url(settings.api.host, settings.api.port)

        drain_started: list[float] = []

        def begin_drain(reason: str) -> None:
            if not stop.is_set():
                drain_started.append(time.monotonic())
                log.warning("%s: draining (deadline %.0f s)", reason, ops.drain_timeout_s)
                node.draining.set()
                notifier.stopping(f"draining: {reason}")
                stop.set()

        async def on_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    if stop.is_set():
                        log.warning("signal %s: already draining", signal.Signals(signum).name)
                    begin_drain(f"signal {signal.Signals(signum).name}")

        async def watch_root() -> None:
            error = await node.root.wait()
            if error is not None:
                log.critical("root supervisor gave up: %r", error)
                failed.append(error)
            begin_drain("root supervisor stopped")

        async def announce_ready() -> None:
            if await wait_http_ready(base_url, within=60.0):
                notifier.ready(f"serving on {base_url}")
                if settings.node.gc_freeze:
                    freeze_startup_objects()
                log.info("ready: %s (model %s %s, %s on the %s event loop)", base_url,
                         node.model.name, node.model.version, settings.api.server,
                         loop_name(asyncio.get_running_loop()))
            elif not stop.is_set():
                log.error("the API did not become ready within 60 s")

        async def serve_api() -> None:
            # The server runs in a child task and the group is cancelled from here, never
            # from the host task: hypercorn's asyncio.TaskGroup cancels and uncancels the
            # task it runs in, which left anyio's host-task cancel scope with an unmatched
            # cancellation (the CancelledError traceback on SIGTERM).
            try:
                await serve_node(node, stop, ops.drain_timeout_s)
            except OSError as exc:
                log.critical("cannot serve the API on %s: %s", base_url, exc)
                failed.append(exc)
            finally:
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(on_signals)
            tg.start_soon(watch_root)
            tg.start_soon(heartbeat.run)
            tg.start_soon(announce_ready)
            if demo:
                tg.start_soon(show_demo, base_url)
            tg.start_soon(serve_api)
        # The HTTP server is closed and its in-flight requests are answered (or the deadline
        # passed); now the tree drains upstream first, each stage into a live successor.
        begin_drain("API stopped")
        started = time.monotonic()
        budget = max(1.0, ops.drain_timeout_s - (started - drain_started[0]))
        await node.root.shutdown(_stage_deadline(node, budget))
        log.info("drained in %.2f s (tree %.2f s); %d dead letters in total",
                 time.monotonic() - drain_started[0], time.monotonic() - started,
                 node.system.dead_letters)
    notifier.status("stopped" if not failed else f"failed: {failed[0]!r}")
    notifier.close()
    return 1 if failed else 0
