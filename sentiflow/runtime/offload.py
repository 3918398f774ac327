"""Offloader: run a blocking call on the event loop while it is measured to be cheap, else in a
worker thread.

Why: a worker thread costs the caller a round trip through the event loop - the call is handed
to a thread, and its result waits in the loop's queue behind every callback that became ready
meanwhile. On a loop that serves hundreds of requests a second that round trip takes
milliseconds, far longer than a call that computes for a hundred microseconds (a small batch
through a numpy model, a SQLite write that does not fsync). Measured on the node that
bench/bench_api.py serves, under 833 requests/s of open-loop load, from the classifier's and the
sink's own timing histograms: a 3-post model batch took 2.9 ms through a thread and 0.3 ms on
the loop; a 1-2 row result write 4.3 ms and 0.06-0.6 ms.

The rule: a call runs on the loop when its predicted duration is within ``budget_s``, else in a
worker thread. The prediction is a line ``fixed + per_unit * cost`` through the last ``window``
calls measured on the loop, fitted robustly (Theil-Sen: the median of the pairwise slopes), so a
slow call now and then (a garbage collection, a WAL checkpoint, the OS preempting the process)
does not move it, even when it is one of the few large calls, and a fixed cost per call (BEGIN +
COMMIT of a write, numpy's per-call overhead) is not mistaken for a cost per item. The fit costs
~20 us, so it is redone every ``REFIT`` calls once the window holds more than that. The line
is trusted up to twice the largest cost measured and grows in proportion to cost beyond
(conservative where nothing was measured); while all measured calls have one cost it is flat up
to twice that cost, so that larger calls get measured and the reach doubles with each size that
proves cheap.

Only calls measured on the loop teach the estimate: in a thread a call's wall time includes
waiting for the GIL behind the loop and overstates what it would cost inline. So while calls go
to threads, one call every ``recheck_s`` is measured on the loop again (a probe); a probe within
budget starts the estimate afresh from itself, so a disk that recovered or a model swapped for a
lighter one is back on the loop after one probe, and a persistently slow call costs one stall
per ``recheck_s``. The first call is a probe too, but it is not measured (``warmup``): a
call's first run pays one-off costs (cold caches, lazily built tables, the allocator growing),
and on the node the model's first batch took 7 ms against ~1 ms after it, which kept every
batch in a thread until the next probe; the second call is the first one measured.
``budget_s == 0`` always uses a thread (nothing is ever probed).

Why not a library: anyio (the project's async layer) has ``to_thread.run_sync`` but nothing that
chooses between it and a direct call; this is the small policy on top of it.

Backend-neutral (anyio); no knowledge of what the calls do.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")

#: Calls measured on the loop that the prediction is fitted to.
WINDOW = 16
#: New measurements between two fits (every one while the window holds no more than this).
REFIT = 4


def _median(values: list[float]) -> float:
    """``statistics.median`` without its generality (twice as fast on these short lists)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class Offloader:
    """Chooses, per call, between running ``fn`` on the loop and in a worker thread (see the
    module docstring). One instance per kind of call: the estimate is the cost of *that* call.

    ``limiter``: held around every call, on the loop or in the thread (a connection that must
    not be used by two callers at once). Not thread-safe: use it from one event loop.
    """

    def __init__(self, budget_s: float, *, recheck_s: float = 5.0, window: int = WINDOW,
                 warmup: int = 1, limiter: anyio.CapacityLimiter | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if budget_s < 0 or recheck_s < 0 or window < 1 or warmup < 0:
            raise ValueError("budget_s, recheck_s and warmup must be >= 0, window >= 1")
        self.budget_s = budget_s
        self.recheck_s = recheck_s
        self._limiter = limiter
        self._clock = clock
        #: (cost, seconds) of the latest calls measured on the loop, and the line through them.
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)
        self.fixed_s = 0.0
        self.per_unit_s: float | None = None
        self.max_cost = 0.0
        self._unfitted = 0
        self._last_inline_at = float("-inf")
        #: Loop calls still to run before measurements start (see the module docstring).
        self._warmup = warmup
        #: Calls run on the loop / in a thread, and loop calls that overran the budget.
        self.inline_calls = 0
        self.thread_calls = 0
        self.overruns = 0
        #: Whether the latest call ran on the loop.
        self.last_inline = False

    def predict(self, cost: float) -> float | None:
        """Seconds a call of ``cost`` is expected to take on the loop (None: nothing measured).
        The fitted line up to twice the largest cost measured; beyond, proportional to cost."""
        if self.per_unit_s is None:
            return None
        reach = 2 * self.max_cost
        if cost <= reach:
            return self.fixed_s + self.per_unit_s * cost
        return (self.fixed_s + self.per_unit_s * reach) * cost / reach

    def _fit(self) -> None:
        """Theil-Sen: the median of the slopes between every two calls of different cost, and
        the median intercept under it (robust to up to ~29 % of slow calls)."""
        points = list(self._samples)
        self.max_cost = max(max(c for c, _ in points), 1e-9)
        slopes = [(e2 - e1) / (c2 - c1) for i, (c1, e1) in enumerate(points)
                  for c2, e2 in points[i + 1:] if c2 != c1]
        # One cost only: flat up to twice it (``predict``), so that larger calls get measured.
        slope = max(0.0, _median(slopes)) if slopes else 0.0
        self.per_unit_s = slope
        self.fixed_s = max(0.0, _median([e - slope * c for c, e in points]))
        self._unfitted = 0

    def _probe_due(self) -> bool:
        return self._clock() - self._last_inline_at >= self.recheck_s

    def would_inline(self, cost: float = 1.0) -> bool:
        """The decision :meth:`run` would take now for a call of ``cost``."""
        if self.budget_s <= 0:
            return False
        predicted = self.predict(cost)
        return predicted is None or predicted <= self.budget_s or self._probe_due()

    async def run(self, fn: Callable[..., T], *args: object, cost: float = 1.0,
                  may_inline: bool = True, on_loop: Callable[..., T] | None = None) -> T:
        """``fn(*args)``, on the loop or in a worker thread. ``may_inline=False`` forces the
        thread for this call (the caller knows ``fn`` would block on something now);
        ``on_loop``, when given, is called instead of ``fn`` on the loop (a variant that
        refuses to wait, say, and raises for the caller to retry in a thread)."""
        if not (may_inline and self.would_inline(cost)):
            self.thread_calls += 1
            self.last_inline = False
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        inline = on_loop or fn
        if self._limiter is None:
            return self._run_inline(inline, args, cost)
        # A free limiter is taken without a checkpoint: ``async with`` would first yield to
        # the loop (anyio's acquire always does), a whole loop iteration - every callback that
        # became ready meanwhile - spent before a call that costs less than that.
        try:
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            await self._limiter.acquire()
        try:
            return self._run_inline(inline, args, cost)
        finally:
            self._limiter.release()

    def _run_inline(self, fn: Callable[..., T], args: tuple[object, ...], cost: float) -> T:
        predicted = self.predict(cost)
        probe = predicted is not None and predicted > self.budget_s
        self.inline_calls += 1
        self.last_inline = True
        started = self._clock()
        try:
            return fn(*args)
        finally:
            done = self._clock()
            elapsed = done - started
            self._last_inline_at = done
            if elapsed > self.budget_s:
                self.overruns += 1
            if self._warmup:
                self._warmup -= 1
            else:
                self._learn(cost, elapsed, probe)

    def _learn(self, cost: float, elapsed: float, probe: bool) -> None:
        """Add one loop measurement and refit when due."""
        if elapsed <= self.budget_s and probe:  # cheap again: forget what said otherwise
            self._samples.clear()
        self._samples.append((cost, elapsed))
        self._unfitted += 1
        if self._unfitted >= REFIT or len(self._samples) <= REFIT:
            self._fit()
