"""The HTTP servers the API runs on: uvicorn (the default) or Hypercorn.

Both are ASGI servers Quart supports. uvicorn with its httptools (C) parser spent 26-34 % less
CPU per request than Hypercorn's pure-Python h11 on this 2-core machine (bench/bench_api.py
``--asgi``), and CPU per request is what decides the p95 at 833 requests/s here. Hypercorn stays
selectable (``api.server = "hypercorn"``, e.g. for HTTP/2).

Either way the caller owns the process: signals are handled by :mod:`sentiflow.serve` (the
servers' own handlers are not installed), the listening socket is bound here so that a taken
port is an :class:`OSError` for the caller rather than a ``sys.exit`` inside the server, and
``shutdown_trigger`` stops accepting connections, then in-flight requests get up to
``graceful_timeout_s`` to finish.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, Literal

import anyio
import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

ServerName = Literal["uvicorn", "hypercorn"]
SERVER_NAMES: Final[tuple[ServerName, ...]] = ("uvicorn", "hypercorn")

ShutdownTrigger = Callable[[], Awaitable[object]]

def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not listening yet); raises :class:`OSError`."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def serve_asgi(app: Any, server: ServerName, host: str, port: int, *,
                     graceful_timeout_s: float, shutdown_trigger: ShutdownTrigger) -> None:
    """Serve ``app`` on ``host:port`` with ``server`` until ``shutdown_trigger`` returns."""
    if server == "uvicorn":
        await _serve_uvicorn(app, host, port, graceful_timeout_s, shutdown_trigger)
    elif server == "hypercorn":
        await _serve_hypercorn(app, host, port, graceful_timeout_s, shutdown_trigger)
    else:  # pragma: no cover - settings validation rejects other names
        raise ValueError(f"unknown API server {server!r}; expected one of {SERVER_NAMES}")


async def _serve_hypercorn(app: Any, host: str, port: int, graceful_timeout_s: float,
                           shutdown_trigger: ShutdownTrigger) -> None:
    sock = bind_socket(host, port)
    config = HypercornConfig()
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = graceful_timeout_s
    # Hypercorn takes a bound socket as "fd://N" and owns it from then on (closes it).
    config.bind = [f"fd://{sock.detach()}"]
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)


async def _serve_uvicorn(app: Any, host: str, port: int, graceful_timeout_s: float,
                         shutdown_trigger: ShutdownTrigger) -> None:
    sock = bind_socket(host, port)
    config = uvicorn.Config(
        app, loop="none", http="httptools", lifespan="on", log_config=None,
        access_log=False, timeout_graceful_shutdown=math.ceil(max(0.0, graceful_timeout_s)),
        # No X-Forwarded-* rewriting: nothing here reads the client address, and the middleware
        # costs every request a few microseconds (~1 % of one at 833 requests/s).
        server_header=False, proxy_headers=False)
    server = _CallerSignalsServer(config)

    async def stop_on_trigger() -> None:
        await shutdown_trigger()
        server.should_exit = True

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_trigger)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()
    finally:
        sock.close()


class _CallerSignalsServer(uvicorn.Server):
    """uvicorn's server without its signal handlers: :mod:`sentiflow.serve` owns SIGTERM /
    SIGINT (they start the node's drain, which then stops this server)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
