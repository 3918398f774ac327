"""ConsoleFeed: windowed rates and percentiles from cumulative snapshots."""

from __future__ import annotations

import math

import pytest

from sentiflow.ops.introspection import ConsoleFeed, delta, percentiles_ms, quantile
from sentiflow.runtime import (
    ActorSnapshot,
    ActorState,
    ErrorInfo,
    Histogram,
    HistogramSnapshot,
    SupervisorSnapshot,
    SystemSnapshot,
)

CONF_BOUNDS = tuple(round(0.05 * k, 2) for k in range(1, 21))


def hist(values: list[float], bounds: tuple[float, ...] = (0.001, 0.002, 0.004, 0.008)
         ) -> HistogramSnapshot:
    h = Histogram(bounds)
    for v in values:
        h.observe(v)
    return h.snapshot()


def system(processed: int, written: int, latencies: list[float], confidences: list[float],
           at: float) -> SystemSnapshot:
    sink = ActorSnapshot(
        path="/root/sink", actor_class="ResultSink", state=ActorState.RUNNING,
        mailbox_depth=3, mailbox_capacity=10, processed=processed,
        processing_time=hist(latencies), restarts=1,
        last_error=ErrorInfo("InjectedFault", "boom", at - 5),
        metrics={"written": written, "latency_s": hist(latencies),
                 "confidence": hist(confidences, CONF_BOUNDS),
                 "write_batch_size": hist([4.0] * processed, (1.0, 2.0, 4.0, 8.0))})
    root = SupervisorSnapshot(path="/root", strategy="one_for_one", state=ActorState.RUNNING,
                              restarts=1, max_restarts=3, period=60.0, last_error=None,
                              children=(sink,))
    return SystemSnapshot("test", at, 2, (root,))


def test_quantile_interpolates_inside_the_bucket() -> None:
    h = hist([0.0015] * 10)  # all in (0.001, 0.002]
    assert quantile(h, 0.5) == pytest.approx(0.0015)
    assert quantile(h, 1.0) == pytest.approx(0.002)
    assert quantile(hist([]), 0.5) is None
    assert percentiles_ms(hist([])) == {"p50": None, "p95": None, "p99": None}


def test_delta_is_what_happened_between_snapshots() -> None:
    old, new = hist([0.0015] * 3), hist([0.0015] * 3 + [0.006] * 2)
    d = delta(new, old)
    assert d.count == 2
    median = quantile(d, 0.5)
    assert median is not None
    assert median > 0.004
    assert delta(new, None) is new


def test_feed_reports_windowed_rates_and_distributions() -> None:
    now = [100.0]
    snaps = [system(10, 40, [0.0015] * 10, [0.9] * 40, 1000.0),
             system(30, 140, [0.0015] * 10 + [0.006] * 20, [0.9] * 40 + [0.3] * 100, 1002.0)]
    feed = ConsoleFeed(lambda: snaps.pop(0), lambda: {"name": "n1"},
                       lambda: {"loop_lag_max_ms": 1.5}, interval=1.0, history=10,
                       clock=lambda: now[0])
    first = feed.frame()
    assert first["totals"]["throughput"] is None  # no window yet
    assert feed.frame() is first  # cached within half an interval
    now[0] = 102.0
    frame = feed.frame()
    sink = next(a for a in frame["actors"] if a["path"] == "/root/sink")
    assert sink["rate"] == 10.0  # 20 messages in 2 s
    assert sink["depth"] == 1
    assert sink["latency_ms"]["p50"] > 4.0  # only the new, slower messages count
    assert sink["batch"]["mean"] == 4.0
    assert sink["last_error"]["type"] == "InjectedFault"
    totals = frame["totals"]
    assert totals["throughput"] == 50.0  # 100 written in 2 s
    assert totals["restarts"] == 1
    assert totals["dead_letters"] == 2
    assert totals["loop_lag_max_ms"] == 1.5
    assert sum(frame["confidence"]["window"]) == 100
    assert frame["confidence"]["window"][5] == 100  # 0.3 falls in (0.25, 0.30]
    assert sum(frame["confidence"]["total"]) == 140
    assert frame["node"] == {"name": "n1"}
    points = feed.history_points()
    assert [p["throughput"] for p in points] == [None, 50.0]
    assert math.isclose(frame["interval_s"], 2.0)
