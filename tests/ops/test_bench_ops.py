"""The cheap parts of bench/load_test.py and bench/fault_injection.py."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

REPO = Path(__file__).resolve().parents[2]


def bench(name: str) -> ModuleType:
    """Import ``bench.<name>``: benchmarks run from the repo root (``python -m bench.x``), which
    is not on sys.path under pytest's importlib mode."""
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    return importlib.import_module(f"bench.{name}")


def test_summary_flags_the_budget_and_counts_losses(tmp_path: Path) -> None:
    load_test = bench("load_test")
    seconds = [load_test.Second(t=float(i), offered_api=10, offered_kafka=20, ok=10,
                      latencies_ms=[5.0 + i] * 10, durable_total=30 * (i + 1),
                      kafka_durable_total=20 * (i + 1) - 5, queued=i, rss_mb=500.0 + i)
               for i in range(10)]
    args = argparse.Namespace(seconds=10.0, p95_budget_ms=12.0)
    result = load_test.summarise(seconds, args, api_rate=10, kafka_rate=20, api_sent=100,
                                 produced=200, kafka_done=195)
    s = result["summary"]
    assert s["api_ok"] == 100
    assert s["api_p95_ms"] == 14.0
    assert s["p95_within_budget"] is False
    assert s["kafka_lost"] == 5
    assert s["rss_range_second_half_mb"] == 4.0
    assert result["series"][-1]["kafka_lag"] == 5
    png = tmp_path / "load.png"
    load_test.plot(result, png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.anyio
async def test_slow_store_delays_writes_and_delegates_the_rest() -> None:
    class Inner:
        def __init__(self) -> None:
            self.written: list[Any] = []

        async def write_results(self, batch: Any) -> None:
            self.written.extend(batch)

        def name(self) -> str:
            return "inner"

    inner = Inner()
    store = bench("fault_injection").SlowStore(inner, 0.05, per_post=0.01)
    started = time.monotonic()
    await store.write_results([1, 2, 3])
    assert time.monotonic() - started >= 0.07
    assert inner.written == [1, 2, 3]
    assert store.name() == "inner"
    await anyio.lowlevel.checkpoint()


def test_row_table_has_the_reported_columns() -> None:
    row = bench("fault_injection").Row("fault", "did", 10, 0)
    assert row.table() == {"fault": "fault", "what the node did": "did", "posts": 10,
                           "lost": 0}
