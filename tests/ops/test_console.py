"""/console: the JSON frames, the SSE stream, the page in real headless Chromium.

asyncio only: Quart and Hypercorn run on asyncio.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from sentiflow.config.settings import load_settings
from sentiflow.node import Node, open_node
from sentiflow.serve import local_url, serve_node, wait_http_ready
from tests.net import free_port
from tests.ops.conftest import NodeProcess, minimal_env

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
TEXTS = ["i love this", "i hate this", "it arrived on tuesday", "great phone", "awful day",
         "la réunion est à midi", "das ist gut", "best purchase ever"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def console_node(tmp_path: Path, tiny_model_home: Path
                       ) -> AsyncIterator[tuple[str, Node]]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(tiny_model_home / "models")
    settings = load_settings(None, env={
        **minimal_env(home), "SENTIFLOW_API__PORT": str(free_port()),
        "SENTIFLOW_API__RATE_LIMIT_PER_SECOND": "0", "SENTIFLOW_OPS__CONSOLE_INTERVAL_S": "0.2",
        "SENTIFLOW_STORAGE__SQLITE_SYNCHRONOUS": "NORMAL"})
    async with open_node(settings) as node:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve_node, node, stop)
            base = local_url(settings.api.host, settings.api.port)
            assert await wait_http_ready(base, within=20)
            try:
                yield base, node
            finally:
                node.draining.set()
                stop.set()


async def load(client: httpx.AsyncClient, n: int) -> None:
    for i in range(n):
        r = await client.post("/api/classify", json={"text": f"{TEXTS[i % len(TEXTS)]} {i}"})
        assert r.status_code == 200, r.text


async def test_frame_reports_the_tree_rates_and_confidence(tmp_path: Path,
                                                           tiny_model_home: Path) -> None:
    async with console_node(tmp_path, tiny_model_home) as (base, _node), \
            httpx.AsyncClient(base_url=base, timeout=10) as client:
        await client.get("/console/frame.json")  # first sample: the baseline
        await load(client, 40)
        await anyio.sleep(0.15)
        r = await client.get("/console/frame.json", params={"history": "1"})
        assert r.status_code == 200
        frame = r.json()
    actors = {a["path"]: a for a in frame["actors"]}
    assert actors["/root"]["kind"] == "supervisor"
    assert actors["/root"]["class"] == "rest_for_one"
    sink = actors["/root/pipeline/sink"]
    assert sink["class"] == "ResultSink"
    assert sink["state"] == "running"
    assert sink["mailbox_capacity"] > 0
    assert sink["rate"] > 0
    assert sink["latency_ms"]["p50"] is not None
    classifier = actors["/root/pipeline/classifier-0"]
    assert classifier["batch"]["count"] >= 1
    assert actors["/root/pipeline/sink"]["depth"] == 2
    totals = frame["totals"]
    assert totals["written"] >= 40
    assert totals["throughput"] > 0
    assert totals["latency_ms"]["p95"] is not None
    assert totals["latency_ms"]["p95"] > 0
    assert sum(frame["confidence"]["total"]) == totals["written"]
    assert sum(frame["confidence"]["window"]) == 40
    assert frame["node"]["ready"] is True
    assert frame["node"]["model"] == "sentiflow-linear"
    assert len(frame["history"]) == 2


async def test_stream_sends_history_then_frames_and_ends_on_drain(
        tmp_path: Path, tiny_model_home: Path) -> None:
    events: list[tuple[str, Any]] = []
    async with console_node(tmp_path, tiny_model_home) as (base, node), \
            httpx.AsyncClient(base_url=base, timeout=10) as client, \
            client.stream("GET", "/console/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        with anyio.fail_after(10):
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[6:])))
                    if len(events) == 3:
                        node.draining.set()  # a drain must end every open stream
    names = [e for e, _ in events]
    assert names[0] == "hello"
    assert "history" in events[0][1]
    assert names[1:3] == ["frame", "frame"]
    assert names[-1] == "bye"


async def test_page_and_static_files(tmp_path: Path, tiny_model_home: Path) -> None:
    async with console_node(tmp_path, tiny_model_home) as (base, _node), \
            httpx.AsyncClient(base_url=base, timeout=10) as client:
        page = await client.get("/console")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert "/console/static/console.js" in page.text
        js = await client.get("/console/static/console.js")
        assert js.status_code == 200
        assert "EventSource" in js.text
        assert (await client.get("/console/static/console.css")).status_code == 200
        missing = await client.get("/console/static/../app.py")
        assert missing.status_code == 404
        assert set(missing.json()) == {"error", "detail"}
        metrics = (await client.get("/metrics")).text
        for name in ("sentiflow_node_ready 1.0", "sentiflow_node_info{",
                     "sentiflow_supervisor_running{", "sentiflow_actor_confidence_bucket{",
                     "sentiflow_actor_latency_s_bucket{", "sentiflow_node_draining 0.0"):
            assert name in metrics, name


LOAD_WORKERS = 16
LOAD_SECONDS = 3.0
BATCH_JOBS, BATCH_ITEMS = 4, 1000


async def load_until(client: httpx.AsyncClient, stop: anyio.Event, worker: int) -> None:
    """One closed-loop API client posting until ``stop`` (every fourth post asks for aspects,
    every fifth is realtime); every answer must be a 200."""
    i = worker
    while not stop.is_set():
        r = await client.post("/api/classify", json={
            "text": f"{TEXTS[i % len(TEXTS)]} {i}", "aspects": i % 4 == 0,
            "priority": "realtime" if i % 5 == 0 else "standard"})
        assert r.status_code == 200, r.text
        i += LOAD_WORKERS


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
async def test_console_in_headless_chromium(tmp_path: Path,
                                            start_node: Callable[..., NodeProcess]) -> None:
    """The page of a real ``sentiflow run`` (every stage on: aspects, trends, drift) under a
    little load: closed-loop API clients plus a batch job, whose chunks queue in the pipeline's
    mailboxes. ``SENTIFLOW_SCREENSHOT_DIR=dir`` keeps the screenshot (docs/console.png)."""
    playwright_api = pytest.importorskip("playwright.async_api")
    shot = tmp_path / "console.png"
    errors: list[str] = []
    node = start_node(TRENDS__ENABLED="true", DRIFT__ENABLED="true", ASPECTS__ENABLED="true",
                      OPS__CONSOLE_INTERVAL_S="0.5", NODE__NAME="gpu0")
    node.wait_ready()
    async with httpx.AsyncClient(base_url=node.base_url, timeout=20) as client, \
            playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{node.base_url}/console")
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:  # load while the page watches
            for worker in range(LOAD_WORKERS):
                tg.start_soon(load_until, client, stop, worker)
            await anyio.sleep(LOAD_SECONDS)
            for job in range(BATCH_JOBS):  # seconds of aspect work: chunks queue for it
                batch = await client.post("/api/classify/batch", json={
                    "priority": "batch", "items": [
                        {"text": f"the screen is great but the battery is awful #{job}.{i}",
                         "aspects": True} for i in range(BATCH_ITEMS)]})
                assert batch.status_code == 202, batch.text
            await anyio.sleep(1.0)  # a frame or two with the jobs in the pipeline
            await page.wait_for_function(
                "document.querySelectorAll('#tree tbody tr').length >= 10", timeout=10_000)
            await page.wait_for_function(
                "document.getElementById('conn').textContent === 'live'", timeout=10_000)
            await page.wait_for_function(
                "parseFloat(document.getElementById('s-written').textContent.replace(/,/g, ''))"
                " >= 150", timeout=10_000)
            rows = await page.locator("#tree tbody tr").all_inner_texts()
            inked = await page.evaluate("""(id) => {
                const c = document.getElementById(id), d = c.getContext('2d')
                  .getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""",
                                        "chart-conf")
            await page.screenshot(path=str(shot), full_page=True)
            stop.set()
        await browser.close()
    assert node.terminate() == 0
    assert not errors, errors
    assert any("sink" in r and "ResultSink" in r and "running" in r for r in rows), rows
    for name in ("classifier-0", "trends", "drift", "aspects-0", "batches"):
        assert any(name in r for r in rows), (name, rows)
    assert inked > 2000, "the confidence chart drew (almost) nothing"
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("SENTIFLOW_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "console.png")
