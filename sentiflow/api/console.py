"""The live introspection console: ``/console`` (a page) and its JSON frames.

Routes (registered by :func:`sentiflow.api.app.create_app` when ``ops.console_enabled``):

- ``GET /console``: the page (HTML + JS + CSS shipped in the package, no CDN: it must work on a
  host with no internet). Charts are drawn by hand on ``<canvas>`` (about a hundred lines of JS)
  rather than with a vendored chart library, so there is no third-party file or licence notice
  to keep current.
- ``GET /console/frame.json``: one frame (see :mod:`sentiflow.ops.introspection`); with
  ``?history=1`` also the chart history.
- ``GET /console/stream``: Server-Sent Events: ``hello`` (history), then a ``frame`` every
  ``ops.console_interval_s``; ``bye`` and the end of the stream when the node starts draining,
  so an open console never holds up a graceful shutdown. SSE rather than WebSocket: one-way,
  plain HTTP, automatic reconnection in the browser, and trivially read by ``sentiflow console``.

Like ``/metrics`` these routes are not behind API keys (EventSource cannot send headers): they
expose the tree's shape and counters, never posts. Bind the API to a private address or turn
the console off (``ops.console_enabled = false``) where that matters.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from typing import Any

import anyio
from quart import Blueprint, Response, request

from sentiflow.node import Node
from sentiflow.ops.introspection import ConsoleFeed

#: Files served under /console/static/ (read once from the package).
STATIC_FILES: Mapping[str, str] = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


def _read_static(name: str) -> bytes:
    return resources.files("sentiflow.api").joinpath("static", name).read_bytes()


def node_facts(node: Node) -> dict[str, Any]:
    """What the console's header shows about the node itself."""
    return {
        "name": node.settings.node.name, "pid": os.getpid(),
        "model": node.model.name, "model_version": node.model.version,
        "devices": list(node.model.devices), "ready": node.ready,
        "draining": node.draining.is_set(),
        "uptime_s": round(time.time() - node.started_at, 1),
    }


def node_gauges(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, read in node.gauges.items():
        try:
            out[name] = read()
        except Exception as exc:  # a broken gauge must not take the console down
            out[name] = f"error: {exc!r}"
    return out


def sse(event: str, data: object) -> bytes:
    """One Server-Sent Event (``data`` as one JSON line)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def console_blueprint(node: Node) -> Blueprint:
    ops = node.settings.ops
    feed = ConsoleFeed(node.snapshot, lambda: node_facts(node), lambda: node_gauges(node),
                       interval=ops.console_interval_s, history=ops.console_history)
    page = _read_static("console.html")
    static = {name: (_read_static(name), kind) for name, kind in STATIC_FILES.items()}
    bp = Blueprint("console", __name__)

    @bp.get("/console")
    async def console_page() -> Response:
        return Response(page, content_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    @bp.get("/console/static/<name>")
    async def console_static(name: str) -> Response:
        if name not in static:
            return Response(json.dumps({"error": "not_found", "detail": f"no file {name!r}"}),
                            status=404, content_type="application/json")
        body, kind = static[name]
        return Response(body, content_type=kind, headers={"Cache-Control": "no-cache"})

    @bp.get("/console/frame.json")
    async def console_frame() -> tuple[dict[str, Any], int]:
        frame = dict(feed.frame())
        if request.args.get("history") in ("1", "true"):
            frame["history"] = feed.history_points()
        return frame, 200

    @bp.get("/console/stream")
    async def console_stream() -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield f"retry: {int(ops.console_interval_s * 2000)}\n\n".encode()
            feed.frame()
            yield sse("hello", {"history": feed.history_points(),
                                "interval_s": ops.console_interval_s})
            while not node.draining.is_set():
                yield sse("frame", feed.frame())
                with anyio.move_on_after(ops.console_interval_s):
                    await node.draining.wait()
            yield sse("bye", {"reason": "draining"})

        response = Response(events(), content_type="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.timeout = None  # a stream, not a request: no RESPONSE_TIMEOUT
        return response

    return bp
