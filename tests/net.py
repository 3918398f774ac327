"""Network helpers shared by the tests that run real servers on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import httpx

if TYPE_CHECKING:
    from sentiflow.node import Node


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind to port 0, read it back)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_listening(base: str, path: str, tries: int = 250) -> None:
    """Poll ``base + path`` until something answers (any status); AssertionError after
    ``tries`` attempts 20 ms apart."""
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        for _ in range(tries):
            try:
                await client.get(path)
                return
            except httpx.TransportError:
                await anyio.sleep(0.02)
    raise AssertionError(f"nothing listening at {base}")


@asynccontextmanager
async def serving(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """The node's REST API on a real server (``settings.api``'s server, host and port) and a
    client for it, once the server answers; the server stops on exit."""
    from sentiflow.serve import serve_node

    settings = node.settings
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_node, node, stop)
        base = f"http://{settings.api.host}:{settings.api.port}"
        await wait_listening(base, "/healthz")
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield client
        stop.set()
