"""Cheap metrics for introspection: a fixed-bucket histogram, a counter and a gauge.

Buckets are fixed and log-spaced (powers of two from 1 µs to ~67 s by default) so that
observing is one ``bisect`` plus two additions, and histograms with the same bounds merge by
adding counts: the Prometheus exporter can sum them or expose them as-is (``cumulative()``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

#: Upper bounds in seconds: 1 µs · 2**k for k = 0..26 (1 µs .. ~67 s); a final +Inf bucket.
LATENCY_BOUNDS: tuple[float, ...] = tuple(1e-6 * 2.0**k for k in range(27))

#: Upper bounds for sizes (batch sizes, queue depths): 1, 2, 4, ... 4096; a final +Inf bucket.
SIZE_BOUNDS: tuple[float, ...] = tuple(float(2**k) for k in range(13))


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Immutable copy of a histogram. ``counts[i]`` counts values <= ``bounds[i]`` (and above
    the previous bound); ``counts[-1]`` counts values above the last bound (+Inf)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum: float

    def merge(self, other: HistogramSnapshot) -> HistogramSnapshot:
        if other.bounds != self.bounds:
            raise ValueError("cannot merge histograms with different bounds")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return HistogramSnapshot(self.bounds, counts, self.count + other.count,
                                 self.sum + other.sum)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper_bound, cumulative_count)`` pairs ending with +Inf, Prometheus style."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (0 <= q <= 1); NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if not self.count:
            return float("nan")
        rank = q * self.count
        for bound, running in self.cumulative():
            if running >= rank and running > 0:
                return bound
        return float("inf")  # pragma: no cover

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else float("nan")


class Histogram:
    """Fixed-bucket histogram; ``observe`` is O(log buckets) with no allocation."""

    __slots__ = ("_bounds", "_counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS) -> None:
        ordered = tuple(float(b) for b in bounds)
        if not ordered or list(ordered) != sorted(set(ordered)):
            raise ValueError("histogram bounds must be non-empty, strictly increasing")
        self._bounds = ordered
        self._counts = [0] * (len(ordered) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        return sum(self._counts)

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self.sum += value

    def snapshot(self) -> HistogramSnapshot:
        counts = tuple(self._counts)
        return HistogramSnapshot(self._bounds, counts, sum(counts), self.sum)


class Counter:
    """A monotonically increasing count."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


@dataclass(frozen=True, slots=True)
class GaugeSnapshot:
    """A gauge's value when the snapshot was taken (its own type, so that readers never
    mistake a level for a count and compute a rate from it)."""

    value: float


class Gauge:
    """A level that goes up and down (a lag, a 0/1 state), set by its owner."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)


MetricSnapshot = HistogramSnapshot | GaugeSnapshot | int
"""One custom metric in a snapshot: a histogram, a gauge, or a counter's plain ``int``."""


class Metrics:
    """An actor's custom metrics, published in its snapshot under their names.

    Lives with the actor's slot, so values accumulate across restarts (like Prometheus); a
    gauge keeps its last value until the restarted actor sets it again.
    """

    __slots__ = ("_counters", "_gauges", "_histograms")

    def __init__(self) -> None:
        self._histograms: dict[str, Histogram] = {}
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}

    def _check_free(self, name: str, kind: str) -> None:
        for other, taken in (("counter", self._counters), ("histogram", self._histograms),
                             ("gauge", self._gauges)):
            if other != kind and name in taken:
                raise ValueError(f"metric {name!r} is already a {other}")

    def histogram(self, name: str, bounds: Sequence[float] = LATENCY_BOUNDS) -> Histogram:
        """The histogram called ``name``, created on first use."""
        hist = self._histograms.get(name)
        if hist is None:
            self._check_free(name, "histogram")
            hist = self._histograms[name] = Histogram(bounds)
        return hist

    def counter(self, name: str) -> Counter:
        """The counter called ``name``, created on first use."""
        counter = self._counters.get(name)
        if counter is None:
            self._check_free(name, "counter")
            counter = self._counters[name] = Counter()
        return counter

    def gauge(self, name: str) -> Gauge:
        """The gauge called ``name``, created on first use (at 0)."""
        gauge = self._gauges.get(name)
        if gauge is None:
            self._check_free(name, "gauge")
            gauge = self._gauges[name] = Gauge()
        return gauge

    def snapshot(self) -> dict[str, MetricSnapshot]:
        out: dict[str, MetricSnapshot] = {k: c.value for k, c in self._counters.items()}
        out.update((k, h.snapshot()) for k, h in self._histograms.items())
        out.update((k, GaugeSnapshot(g.value)) for k, g in self._gauges.items())
        return out
