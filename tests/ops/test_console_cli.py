"""``sentiflow console``: rendering a frame in the terminal, --once against a live node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner
from rich.console import Console

from sentiflow.console_cli import console, render, sparkline, stream_frames
from tests.ops.test_console import console_node, load

FRAME: dict[str, Any] = {
    "at": 1000.0, "interval_s": 1.0,
    "node": {"name": "gpu-7", "model": "sentiflow-linear", "model_version": "v1",
             "devices": ["cpu"], "ready": True, "draining": False, "uptime_s": 42.0, "pid": 1},
    "totals": {"written": 1234, "throughput": 812.5,
               "latency_ms": {"p50": 3.2, "p95": 9.8, "p99": 20.1},
               "dead_letters": 2, "restarts": 1, "loop_lag_max_ms": 0.7},
    "actors": [
        {"path": "/root", "name": "root", "kind": "supervisor", "depth": 0,
         "class": "rest_for_one", "state": "running", "restarts": 1, "max_restarts": 3,
         "period_s": 60.0, "last_error": None},
        {"path": "/root/sink", "name": "sink", "kind": "actor", "depth": 1,
         "class": "ResultSink", "state": "running", "mailbox_depth": 7000,
         "mailbox_capacity": 8192, "processed": 99, "rate": 812.5,
         "latency_ms": {"p50": 0.5, "p95": 1.5, "p99": 2.5}, "restarts": 1,
         "batch": {"mean": 48.2, "p95": 64.0, "count": 10},
         "last_error": {"type": "InjectedFault", "message": "boom", "at": 990.0}},
    ],
    "confidence": {"bounds": [round(0.05 * k, 2) for k in range(1, 21)],
                   "window": [0] * 20, "total": [0] * 14 + [1, 2, 3, 4, 5, 50]},
}


def text_of(renderable: Any, width: int = 180) -> str:
    out = Console(record=True, width=width, color_system=None)
    out.print(renderable)
    return out.export_text()


def test_render_shows_header_tree_and_charts() -> None:
    text = text_of(render(FRAME, [10.0, 20.0, None, 40.0]))
    for expected in ("gpu-7", "sentiflow-linear v1", "812.5 posts/s", "3.2/9.8/20.1 ms",
                     "1,234", "dead letters 2", "0.70 ms", "rest_for_one (3/60s)",
                     "ResultSink", "7000/8192", "0.50/1.50/2.50", "48.2/64",
                     "InjectedFault: boom (10s ago)", "0.95–1.00", "76.9%"):
        assert expected in text, (expected, text)
    assert "▂▄ █" in text


def test_render_survives_an_empty_node() -> None:
    frame = dict(FRAME, actors=[], confidence=None,
                 totals={"latency_ms": {}, "throughput": None})
    text = text_of(render(frame))
    assert "no results written yet" in text


def test_sparkline_scales_to_max() -> None:
    assert sparkline([0.0, 5.0, 10.0]) == "▁▄█"
    assert sparkline([None, 0.0]) == " ▁"
    assert len(sparkline([1.0] * 200, width=60)) == 60


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_once_and_stream_against_a_live_node(tmp_path: Path,
                                                   tiny_model_home: Path) -> None:
    async with console_node(tmp_path, tiny_model_home) as (base, _node):
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await load(client, 10)

        def run_once() -> Any:
            return CliRunner().invoke(console, [base, "--once"], env={"COLUMNS": "200"})

        result = await anyio.to_thread.run_sync(run_once)
        assert result.exit_code == 0, result.output
        assert "ResultSink" in result.output
        assert "classifier-0" in result.output

        def read_two() -> list[str]:
            events = []
            with httpx.Client() as client:
                for event, _data in stream_frames(base, client):
                    events.append(event)
                    if len(events) == 2:
                        break
            return events

        assert await anyio.to_thread.run_sync(read_two) == ["hello", "frame"]
    bad = CliRunner().invoke(console, ["http://127.0.0.1:9", "--once"])
    assert bad.exit_code != 0
    assert "cannot read" in bad.output


def test_narrow_terminal_drops_secondary_columns_and_empty_bins() -> None:
    text = text_of(render(FRAME, width=90), width=90)
    assert "ResultSink" not in text  # class column left out below 120 columns
    assert "sink" in text
    assert "7000/8192" in text
    assert "0.70–0.75" in text
    assert "0.65–0.70" not in text  # empty low-confidence bins are not drawn
