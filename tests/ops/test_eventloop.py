"""The process's event loop choice (``node.event_loop``): uvloop by default, asyncio on request,
a clear error when uvloop is demanded but missing; the node's actors run on either."""

from __future__ import annotations

import asyncio
import inspect
import sys

import pytest

from sentiflow.config.errors import ConfigError
from sentiflow.config.settings import load_settings
from sentiflow.ops import eventloop
from sentiflow.runtime import Actor, ActorSystem


class Doubler(Actor[int]):
    async def receive(self, message: int) -> int:
        return message * 2


async def _tree_on_running_loop() -> tuple[str, int]:
    async with ActorSystem() as system:
        ref = await system.spawn(Doubler, "doubler")
        answer = await ref.ask(21)
    return eventloop.loop_name(asyncio.get_running_loop()), answer


@pytest.mark.parametrize(("name", "expected"),
                         [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_runs_the_actor_runtime_on_the_chosen_loop(name: eventloop.EventLoopName,
                                                   expected: str) -> None:
    assert eventloop.run(_tree_on_running_loop(), name) == (expected, 42)


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert eventloop.loop_factory("auto") is None
    assert eventloop.run(_tree_on_running_loop(), "auto") == ("asyncio", 42)


def test_demanding_a_missing_uvloop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    coro = _tree_on_running_loop()
    with pytest.raises(eventloop.EventLoopUnavailableError, match="uvloop is not installed"):
        eventloop.run(coro, "uvloop")
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # no "never awaited" warning


def test_setting_is_validated_and_read_from_the_environment() -> None:
    assert load_settings(None, env={}).node.event_loop == "auto"
    assert load_settings(None, env={"SENTIFLOW_NODE__EVENT_LOOP": "asyncio"}
                         ).node.event_loop == "asyncio"
    with pytest.raises(ConfigError, match="event_loop"):
        load_settings(None, env={"SENTIFLOW_NODE__EVENT_LOOP": "tokio"})


def test_demanding_uvloop_where_it_is_missing_fails_at_start_naming_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # nothing installed
    with pytest.raises(ConfigError, match=r"node\.event_loop.*uvloop is not installed"):
        load_settings(None, env={"SENTIFLOW_NODE__EVENT_LOOP": "uvloop"})
