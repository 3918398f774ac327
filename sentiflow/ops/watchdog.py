"""The heartbeat that feeds systemd's watchdog, driven by the root supervisor's health.

The beat runs as a task on the node's event loop and pings only while the root supervisor
reports itself healthy (running, not in the middle of handling a failure). So both failure modes
systemd must see stop the pings: a stalled event loop (a blocking call, a busy loop: the task
never wakes) and a tree stuck restarting. The unit's ``WatchdogSec`` then expires and systemd
kills and restarts the node (``Restart=on-failure``).

Each beat also measures how late it woke up (event-loop lag), published for the console and
``/metrics``: the early sign of a stall before the watchdog fires.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import anyio

from sentiflow.runtime import LATENCY_BOUNDS, Histogram, HistogramSnapshot


class Heartbeat:
    """Beats every ``interval`` seconds while ``healthy()``; records loop lag and beat times."""

    def __init__(self, healthy: Callable[[], bool], beat: Callable[[], object],
                 interval: float) -> None:
        if interval <= 0:
            raise ValueError("heartbeat interval must be > 0")
        self._healthy = healthy
        self._beat = beat
        self.interval = interval
        self._lag = Histogram(LATENCY_BOUNDS)
        self.beats = 0
        self.skipped = 0
        self.last_beat: float | None = None  # time.time() of the last ping sent
        self.max_lag = 0.0
        self.recent = LagWindow()

    def lag(self) -> HistogramSnapshot:
        return self._lag.snapshot()

    def tick(self) -> bool:
        """One beat: ping when healthy; True when pinged."""
        if self._healthy():
            self._beat()
            self.beats += 1
            self.last_beat = time.time()
            return True
        self.skipped += 1
        return False

    async def run(self) -> None:
        """Beat until cancelled."""
        while True:
            self.tick()
            asked = time.perf_counter()
            await anyio.sleep(self.interval)
            lag = max(0.0, time.perf_counter() - asked - self.interval)
            self._lag.observe(lag)
            self.max_lag = max(self.max_lag, lag)
            self.recent.add(lag)


class LagWindow:
    """The largest event-loop lag over the last ``seconds`` (a gauge for the console and
    /metrics that shows a stall after it happened, unlike an instantaneous value)."""

    def __init__(self, seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._lags: deque[tuple[float, float]] = deque()

    def add(self, lag: float) -> None:
        now = self._clock()
        self._lags.append((now, lag))
        while self._lags and self._lags[0][0] < now - self.seconds:
            self._lags.popleft()

    def max(self) -> float:
        cutoff = self._clock() - self.seconds
        return max((lag for at, lag in self._lags if at >= cutoff), default=0.0)
