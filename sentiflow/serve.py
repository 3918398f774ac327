"""Serving a node: the API on Hypercorn beside the actor tree, until a signal or a give-up.

``run_node`` is what ``sentiflow run`` executes. A SIGTERM / SIGINT stops the HTTP server
(in-flight requests finish), then the tree shuts down in reverse order with every mailbox
drained; if the root supervisor gives up instead, the same happens and the process exits
non-zero so that systemd restarts it.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence

import anyio
import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from sentiflow.api.app import create_app
from sentiflow.config.settings import Settings
from sentiflow.node import Node, open_node
from sentiflow.supervisors import SupervisorGaveUp

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


def hypercorn_config(settings: Settings) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"{settings.api.host}:{settings.api.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 10.0
    return config


async def serve_node(node: Node, config: HypercornConfig, stop: anyio.Event) -> None:
    """Serve the API until ``stop`` is set (by a signal, a give-up, or the caller)."""
    await serve(create_app(node), config, shutdown_trigger=stop.wait)


async def _stop_on_signal(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.warning("signal %s: draining and stopping", signal.Signals(signum).name)
            stop.set()
            return


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
        for text in DEMO_TEXTS:
            body = {"text": text, "language": "auto", "priority": "realtime"}
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


async def run_node(settings: Settings, *, demo: bool = False) -> int:
    """Run the whole node until stopped; returns the process exit status."""
    gave_up: list[SupervisorGaveUp] = []
    async with open_node(settings) as node:
        stop = anyio.Event()

        async def watch_root() -> None:
            error = await node.root.wait()
            if error is not None:
                log.critical("root supervisor gave up: %r", error)
                gave_up.append(error)
            stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signal, stop)
            tg.start_soon(watch_root)
            if demo:
                tg.start_soon(show_demo, f"http://{settings.api.host}:{settings.api.port}")
            await serve_node(node, hypercorn_config(settings), stop)
            tg.cancel_scope.cancel()
    return 1 if gave_up else 0
