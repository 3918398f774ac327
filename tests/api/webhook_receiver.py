"""A tiny real HTTP/1.1 receiver on 127.0.0.1 for webhook tests (raw anyio TCP, both backends).

It answers each POST with the next scripted status (then ``default``), records headers and raw
body, and closes the connection. Written by hand instead of using Hypercorn so the same server
runs under asyncio and trio with nothing but anyio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import SocketAttribute, SocketStream


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    script: list[int | tuple[int, dict[str, str]]]
    default: int = 200
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive()
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                body += await stream.receive()
            self.received.append(Received(method, path, headers, body))
            step = self.script.pop(0) if self.script else self.default
            status, extra = step if isinstance(step, tuple) else (step, {})
            head_out = f"HTTP/1.1 {status} Scripted\r\nContent-Length: 2\r\nConnection: close\r\n"
            head_out += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            await stream.send(head_out.encode() + b"\r\nok")


@asynccontextmanager
async def receiver(script: Sequence[int | tuple[int, dict[str, str]]] = (),
                   default: int = 200) -> AsyncIterator[Receiver]:
    rec = Receiver(list(script), default)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    rec.url = f"http://127.0.0.1:{port}/hook"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, rec.handle)
        try:
            yield rec
        finally:
            tg.cancel_scope.cancel()
