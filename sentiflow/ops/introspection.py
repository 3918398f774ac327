"""Console frames: the actor tree's snapshot turned into windowed rates and percentiles.

A :class:`ConsoleFeed` samples ``node.snapshot()`` (cheap: plain counters and fixed-bucket
histograms) and diffs each sample against the previous one, so every figure in a frame is *over
the last interval*, not since boot: messages/s per actor, posts/s made durable, end-to-end and
per-actor latency percentiles, batch sizes, and the confidence distribution of the results
written. The web console (``/console``) and the terminal console (``sentiflow console``) read the
same JSON frames (:meth:`ConsoleFeed.frame`), so the two views never disagree.

No event loop here: sampling is synchronous and driven by whoever asks (the SSE stream), and
frames are cached for half an interval so that any number of viewers share one sample.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sentiflow.runtime import ActorSnapshot, HistogramSnapshot, SystemSnapshot

Frame = dict[str, Any]

#: Metric names (an actor's custom metrics) with a known meaning for the console.
WRITTEN = "written"  # counter: results made durable (the sink)
CONFIDENCE = "confidence"  # histogram over [0, 1]: confidence of the results written
E2E_LATENCY = "latency_s"  # histogram: acceptance -> durable, seconds
BATCH_SUFFIX = "batch_size"  # histograms named *batch_size: batch sizes of that stage


def delta(new: HistogramSnapshot, old: HistogramSnapshot | None) -> HistogramSnapshot:
    """``new - old`` bucket by bucket (what was observed between the two snapshots)."""
    if old is None or old.bounds != new.bounds:
        return new
    counts = tuple(max(0, a - b) for a, b in zip(new.counts, old.counts, strict=True))
    return HistogramSnapshot(new.bounds, counts, sum(counts), max(0.0, new.sum - old.sum))


def quantile(h: HistogramSnapshot, q: float) -> float | None:
    """The q-quantile, interpolated linearly inside its bucket (as Prometheus'
    ``histogram_quantile`` does); ``None`` when the histogram is empty."""
    if h.count == 0:
        return None
    rank = q * h.count
    running = 0
    lower = 0.0
    for i, n in enumerate(h.counts):
        upper = h.bounds[i] if i < len(h.bounds) else h.bounds[-1]
        if n and running + n >= rank:
            return lower + (upper - lower) * max(0.0, rank - running) / n
        running += n
        lower = upper
    return h.bounds[-1]


def percentiles_ms(h: HistogramSnapshot) -> dict[str, float | None]:
    """p50 / p95 / p99 in milliseconds (None when nothing was observed)."""
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        value = quantile(h, q)
        out[name] = None if value is None else round(value * 1000.0, 3)
    return out


def _finite(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else x


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float  # time.monotonic()
    snapshot: SystemSnapshot


class ConsoleFeed:
    """Samples the tree and produces console frames (see module docstring).

    ``describe()`` returns node facts (name, model, readiness...) merged into each frame;
    ``extra()`` returns more gauges (the heartbeat's loop lag) merged into ``totals``.
    """

    def __init__(self, snapshot: Callable[[], SystemSnapshot],
                 describe: Callable[[], Mapping[str, Any]] = dict,
                 extra: Callable[[], Mapping[str, Any]] = dict, *,
                 interval: float = 1.0, history: int = 300,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._snapshot = snapshot
        self._describe = describe
        self._extra = extra
        self.interval = interval
        self._clock = clock
        self._previous: _Sample | None = None
        self._frame: Frame | None = None
        self._frame_at = -math.inf
        self.history: deque[Frame] = deque(maxlen=history)

    def frame(self) -> Frame:
        """The current frame; re-sampled when the cached one is older than half an interval."""
        now = self._clock()
        if self._frame is None or now - self._frame_at >= self.interval / 2:
            self._frame = self._sample(now)
            self._frame_at = now
            self.history.append(self._point(self._frame))
        return self._frame

    def history_points(self) -> list[Frame]:
        """Chart points (time, throughput, latency, confidence) of past frames, oldest first."""
        return list(self.history)

    # -- internals ------------------------------------------------------------------------------

    def _sample(self, now: float) -> Frame:
        snap = self._snapshot()
        prev = self._previous
        dt = (now - prev.at) if prev is not None else 0.0
        old_actors: dict[str, ActorSnapshot] = {}
        if prev is not None:
            old_actors = {n.path: n for n in prev.snapshot.walk()
                          if isinstance(n, ActorSnapshot)}
        self._previous = _Sample(now, snap)

        rows: list[Frame] = []
        written = written_before = 0
        e2e: HistogramSnapshot | None = None
        confidence: HistogramSnapshot | None = None
        confidence_total: HistogramSnapshot | None = None
        restarts = 0
        depth_of: dict[str, int] = {}
        for node in snap.walk():
            parent = node.path.rsplit("/", 1)[0]
            depth = depth_of[node.path] = depth_of.get(parent, -1) + 1
            error = None
            if node.last_error is not None:
                error = {"type": node.last_error.type, "message": node.last_error.message[:300],
                         "at": node.last_error.at}
            if not isinstance(node, ActorSnapshot):
                rows.append({"path": node.path, "name": node.path.rsplit("/", 1)[-1],
                             "kind": "supervisor", "depth": depth, "class": node.strategy,
                             "state": str(node.state), "restarts": node.restarts,
                             "max_restarts": node.max_restarts, "period_s": node.period,
                             "last_error": error})
                restarts += node.restarts
                continue
            old = old_actors.get(node.path)
            processed = node.processed - (old.processed if old else 0)
            timing = delta(node.processing_time, old.processing_time if old else None)
            row: Frame = {
                "path": node.path, "name": node.path.rsplit("/", 1)[-1], "kind": "actor",
                "depth": depth, "class": node.actor_class, "state": str(node.state),
                "mailbox_depth": node.mailbox_depth, "mailbox_capacity": node.mailbox_capacity,
                "processed": node.processed,
                "rate": round(processed / dt, 2) if dt > 0 else None,
                "latency_ms": percentiles_ms(timing), "restarts": node.restarts,
                "last_error": error, "batch": None,
            }
            for key, value in node.metrics.items():
                before = old.metrics.get(key) if old else None
                if isinstance(value, HistogramSnapshot):
                    window = delta(value, before if isinstance(before, HistogramSnapshot)
                                   else None)
                    if key.endswith(BATCH_SUFFIX):
                        # sizes: the bucket's upper bound (powers of two), not interpolated
                        row["batch"] = {"mean": _finite(round(window.mean, 2)),
                                        "p95": _finite(window.quantile(0.95)),
                                        "count": window.count}
                    elif key == CONFIDENCE:
                        confidence = window if confidence is None else confidence.merge(window)
                        confidence_total = (value if confidence_total is None
                                            else confidence_total.merge(value))
                    elif key == E2E_LATENCY:
                        e2e = window if e2e is None else e2e.merge(window)
                elif key == WRITTEN and isinstance(value, int):
                    written += value
                    written_before += before if isinstance(before, int) else 0
            rows.append(row)

        totals: Frame = {
            "written": written,
            "throughput": round((written - written_before) / dt, 2) if dt > 0 else None,
            "latency_ms": percentiles_ms(e2e) if e2e is not None else
            {"p50": None, "p95": None, "p99": None},
            "dead_letters": snap.dead_letters, "restarts": restarts,
        }
        totals.update(self._extra())
        return {
            "at": snap.at,
            "interval_s": round(dt, 3) if dt > 0 else None,
            "node": dict(self._describe()),
            "totals": totals,
            "actors": rows,
            "confidence": _histogram_json(confidence, confidence_total),
        }

    @staticmethod
    def _point(frame: Frame) -> Frame:
        conf = frame["confidence"]
        return {"at": frame["at"], "throughput": frame["totals"]["throughput"],
                "p95_ms": frame["totals"]["latency_ms"]["p95"],
                "confidence": conf["window"] if conf is not None else None}


def _histogram_json(window: HistogramSnapshot | None, total: HistogramSnapshot | None
                    ) -> Frame | None:
    """Bucket upper bounds with the counts of this window and since start (the +Inf bucket
    is dropped: confidences are <= 1)."""
    if window is None or total is None:
        return None
    return {"bounds": list(window.bounds), "window": list(window.counts[:len(window.bounds)]),
            "total": list(total.counts[:len(total.bounds)])}
