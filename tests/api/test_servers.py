"""Both ASGI servers the API can run on (sentiflow/api/servers.py): serving, a graceful stop
that lets an in-flight request finish, and a taken port surfacing as OSError (the node's exit
status for it: tests/ops/test_lifecycle.py)."""

from __future__ import annotations

import socket

import anyio
import httpx
import pytest
from quart import Quart

from sentiflow.api.servers import SERVER_NAMES, ServerName, bind_socket, serve_asgi
from tests.net import free_port, wait_listening

# The servers are asyncio programs (uvicorn has no trio support), as is the node's serve path.
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


def slow_app(started: anyio.Event, release: anyio.Event) -> Quart:
    app = Quart("servers-test")

    @app.get("/fast")
    async def fast() -> dict[str, str]:
        return {"ok": "fast"}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        started.set()
        await release.wait()
        return {"ok": "slow"}

    return app


@pytest.mark.parametrize("server", SERVER_NAMES)
async def test_serves_until_triggered_and_finishes_in_flight_requests(server: ServerName) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started, release, stop = anyio.Event(), anyio.Event(), anyio.Event()
    returned: list[bool] = []
    answers: list[httpx.Response] = []

    async def run_server() -> None:
        await serve_asgi(slow_app(started, release), server, "127.0.0.1", port,
                         graceful_timeout_s=5.0, shutdown_trigger=stop.wait)
        returned.append(True)

    async def slow_call() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            answers.append(await client.get("/slow"))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_server)
            await wait_listening(base, "/fast")
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                assert (await client.get("/fast")).json() == {"ok": "fast"}
            tg.start_soon(slow_call)
            await started.wait()
            stop.set()  # the stop arrives while /slow is being handled
            await anyio.sleep(0.3)
            assert not returned  # still waiting for the in-flight request
            release.set()
    assert returned == [True]
    assert [a.status_code for a in answers] == [200]
    assert answers[0].json() == {"ok": "slow"}
    with socket.socket() as probe:  # the listening socket is closed
        assert probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("server", SERVER_NAMES)
async def test_a_taken_port_is_an_oserror(server: ServerName) -> None:
    with bind_socket("127.0.0.1", 0) as taken:
        taken.listen()
        port = taken.getsockname()[1]
        never = anyio.Event()
        with anyio.fail_after(10), pytest.raises(OSError):
            await serve_asgi(Quart("taken"), server, "127.0.0.1", port,
                             graceful_timeout_s=1.0, shutdown_trigger=never.wait)


async def test_bind_socket_takes_ipv6_and_host_names() -> None:
    with bind_socket("localhost", 0) as sock:
        assert sock.getsockname()[1] > 0
    if socket.has_ipv6:
        try:
            sock6 = bind_socket("::1", 0)
        except OSError:  # no IPv6 loopback in this sandbox
            return
        with sock6:
            assert sock6.family == socket.AF_INET6
