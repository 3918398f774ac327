"""How many asyncio tasks a classify request starts, through the app's ASGI interface.

Every task on a request's path adds event-loop iterations to its latency, and under load each
iteration waits behind everything else that became ready (api/timeouts.py has the figures): the
count is a latency property that a timed test could not pin down on a shared VM. asyncio only
(Quart).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import httpx
import pytest
from quart import Response
from quart.wrappers.response import DataBody, IterableBody

from sentiflow.api import timeouts
from sentiflow.api.app import create_app
from sentiflow.config.settings import Settings
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from tests.node.backends import LexiconBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def post(app: Any, body: bytes) -> tuple[int, bytes]:
    """One ``POST /api/classify`` through the app's ASGI interface (httpx's ASGI transport:
    the body in one message, as uvicorn hands it over)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/api/classify", content=body,
                                     headers={"content-type": "application/json"})
    return response.status_code, response.content


async def test_a_classify_request_starts_at_most_three_tasks(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    """Quart's two (the handler and the body reader) and the language stage's linger timer;
    Quart's own body and response timeouts would add a task each (asyncio.wait_for)."""
    loop = asyncio.get_running_loop()
    started: list[str] = []
    default = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop,
                 coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
                 **kwargs: Any) -> asyncio.Future[Any]:
        started.append(getattr(coro, "__qualname__", repr(coro)))
        if default is not None:
            return default(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    settings = make_settings(API__RATE_LIMIT_PER_SECOND="0")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        app = create_app(node)
        await app.startup()
        try:
            body = json.dumps({"text": "a great day", "language": "en"}).encode()
            assert (await post(app, body))[0] == 200  # warm: lazily started parts start now
            loop.set_task_factory(counting)
            try:
                status, answer = await post(app, body)
            finally:
                loop.set_task_factory(default)
        finally:
            await app.shutdown()
    assert status == 200, answer
    assert json.loads(answer)["sentiment"] == "positive"
    assert len(started) <= 3, started


def test_small_in_memory_responses_go_out_without_a_timeout() -> None:
    small = Response(b"{}", content_type="application/json")
    timeouts.drop_small_response_timeout(small)
    assert isinstance(small.response, DataBody)
    assert small.timeout is None


def test_large_streamed_and_chosen_timeouts_are_kept() -> None:
    large = Response(b"x" * (timeouts.UNGUARDED_RESPONSE_BYTES + 1))
    timeouts.drop_small_response_timeout(large)
    assert large.timeout is Ellipsis  # Quart's RESPONSE_TIMEOUT applies

    async def chunks() -> Any:
        yield b"a"

    streamed = Response(chunks())
    assert isinstance(streamed.response, IterableBody)
    timeouts.drop_small_response_timeout(streamed)
    assert streamed.timeout is Ellipsis

    chosen = Response(b"{}")
    chosen.timeout = 5
    timeouts.drop_small_response_timeout(chosen)
    assert chosen.timeout == 5
