"""An actor's custom metrics: counters, histograms and gauges share one namespace, and a
gauge is published as its own type (a level, never to be turned into a rate)."""

from __future__ import annotations

import pytest

from sentiflow.runtime import GaugeSnapshot, HistogramSnapshot, Metrics


def test_gauges_go_up_and_down_and_snapshot_as_their_own_type() -> None:
    metrics = Metrics()
    metrics.counter("posts").inc(3)
    metrics.histogram("batch_size").observe(4)
    lag = metrics.gauge("lag")
    lag.set(120)
    lag.set(7)
    assert metrics.gauge("lag") is lag
    snap = metrics.snapshot()
    assert snap["posts"] == 3
    assert isinstance(snap["batch_size"], HistogramSnapshot)
    assert snap["lag"] == GaugeSnapshot(7.0)


@pytest.mark.parametrize(("first", "second"), [
    ("counter", "gauge"), ("gauge", "counter"), ("histogram", "gauge"), ("gauge", "histogram"),
])
def test_a_name_has_one_kind(first: str, second: str) -> None:
    metrics = Metrics()
    getattr(metrics, first)("x")
    with pytest.raises(ValueError, match=f"already a {first}"):
        getattr(metrics, second)("x")
