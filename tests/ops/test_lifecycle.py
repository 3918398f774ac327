"""run_node's exit status and the watchdog heartbeat, in process."""

from __future__ import annotations

import gc
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import sentiflow.serve as serve_module
from sentiflow.api.servers import SERVER_NAMES, ServerName, bind_socket
from sentiflow.config.settings import Settings, load_settings
from sentiflow.config.tree import ROUTER
from sentiflow.node import Node, open_node
from sentiflow.ops.faults import crash_actor, stall_event_loop
from sentiflow.ops.sdnotify import SystemdNotifier
from sentiflow.ops.watchdog import Heartbeat, LagWindow
from tests.net import free_port
from tests.ops.conftest import minimal_env

pytestmark = pytest.mark.anyio


def node_settings(home: Path, tiny_model_home: Path) -> Settings:
    home.mkdir(exist_ok=True)
    (home / "models").symlink_to(tiny_model_home / "models")
    return load_settings(None, env={
        **minimal_env(home), "SENTIFLOW_API__PORT": str(free_port()),
        "SENTIFLOW_OPS__HEARTBEAT_INTERVAL_S": "0.05"})


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_root_give_up_exits_non_zero(tmp_path: Path, tiny_model_home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    settings = node_settings(tmp_path / "home", tiny_model_home)
    nodes: list[Node] = []

    @asynccontextmanager
    async def capture(s: Settings, **kw: Any) -> AsyncIterator[Node]:
        async with open_node(s, **kw) as node:
            nodes.append(node)
            yield node

    monkeypatch.setattr(serve_module, "open_node", capture)
    frozen: list[bool] = []  # node.gc_freeze (default on): called once the API answers
    monkeypatch.setattr(serve_module, "freeze_startup_objects", lambda: frozen.append(True))
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.setblocking(False)
    notifier = SystemdNotifier(str(sock_path), watchdog_usec=100_000)
    status: list[int] = []

    received: list[str] = []

    async def run() -> None:
        status.append(await serve_module.run_node(settings, notifier=notifier))

    async def read_notify() -> None:  # what systemd does: read every datagram
        while True:
            try:
                received.append(listener.recv(4096).decode())
            except BlockingIOError:
                await anyio.sleep(0.01)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_notify)
            tg.start_soon(run)
            while not nodes or not nodes[0].ready:  # noqa: ASYNC110 (polls another task's state)
                await anyio.sleep(0.02)
            base = serve_module.local_url(settings.api.host, settings.api.port)
            assert await serve_module.wait_http_ready(base, within=10)
            # Crash the router until the pipeline exceeds its intensity, then the root does.
            while not status:
                crash_actor(nodes[0].system, ROUTER)
                await anyio.sleep(0.005)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert status == [1]
    assert frozen == [True]
    listener.close()
    assert any("READY=1" in m for m in received)
    assert any("WATCHDOG=1" in m for m in received)
    assert any("STOPPING=1" in m for m in received)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{base}/healthz", timeout=1)


def test_freezing_moves_the_startup_objects_out_of_the_collectors_scans() -> None:
    gc.unfreeze()
    try:
        frozen = serve_module.freeze_startup_objects()
        assert frozen == gc.get_freeze_count() > 10_000  # the modules imported so far, at least
        assert len(gc.get_objects()) < frozen
    finally:
        gc.unfreeze()


async def test_heartbeat_stops_while_the_loop_is_stalled() -> None:
    beats: list[float] = []
    heartbeat = Heartbeat(lambda: True, lambda: beats.append(time.monotonic()), 0.02)
    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat.run)
        await anyio.sleep(0.1)
        stall_event_loop(0.4)  # blocks the loop: no task runs, the heartbeat included
        await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert max(gaps) >= 0.35, gaps  # no ping during the stall: systemd's watchdog would fire
    assert sorted(gaps)[len(gaps) // 2] < 0.1  # otherwise it beats on time
    assert heartbeat.max_lag >= 0.3
    assert heartbeat.recent.max() >= 0.3


async def test_heartbeat_skips_while_unhealthy() -> None:
    healthy = [True]
    beats: list[int] = []
    heartbeat = Heartbeat(lambda: healthy[0], lambda: beats.append(1), 0.01)
    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat.run)
        await anyio.sleep(0.05)
        healthy[0] = False
        await anyio.sleep(0.01)
        before = len(beats)
        await anyio.sleep(0.1)
        assert len(beats) == before
        assert heartbeat.skipped > 0
        tg.cancel_scope.cancel()


def test_lag_window_forgets_old_lags() -> None:
    now = [0.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    window = LagWindow(10.0, clock)
    window.add(0.5)
    now[0] = 5.0
    window.add(0.1)
    assert window.max() == 0.5
    now[0] = 11.0
    assert window.max() == 0.1
    now[0] = 30.0
    assert window.max() == 0.0


def test_heartbeat_rejects_bad_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        Heartbeat(lambda: True, lambda: None, 0)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("server", SERVER_NAMES)
async def test_node_exits_1_when_its_port_is_taken(server: ServerName, tmp_path: Path,
                                                   tiny_model_home: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(tiny_model_home / "models")
    with bind_socket("127.0.0.1", 0) as taken:
        taken.listen()
        settings = load_settings(None, env={
            **minimal_env(home), "SENTIFLOW_API__PORT": str(taken.getsockname()[1]),
            "SENTIFLOW_API__SERVER": server})
        with anyio.fail_after(60):
            assert await serve_module.run_node(settings) == 1
