"""Prometheus exposition of the actor tree (``GET /metrics``).

A custom collector reads one introspection snapshot per scrape, so the hot path pays nothing
for metrics beyond the runtime's own counters: per-actor mailbox depth and capacity, messages
processed, restarts, processing-time histograms, and each actor's custom metrics (the
classifier's batch sizes, the sink's write times). HTTP request counts and latencies come from
prometheus_client's own instruments, registered on the same (non-global) registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sentiflow.runtime import ActorSnapshot, GaugeSnapshot, HistogramSnapshot, SystemSnapshot

if TYPE_CHECKING:
    from sentiflow.node import Node

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _metric_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def _buckets(h: HistogramSnapshot) -> list[tuple[str, float]]:
    return [("+Inf" if b == float("inf") else repr(b), float(n)) for b, n in h.cumulative()]


class ActorTreeCollector(Collector):
    def __init__(self, snapshot: Callable[[], SystemSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        depth = GaugeMetricFamily("sentiflow_actor_mailbox_depth", "Messages waiting",
                                  labels=["path"])
        capacity = GaugeMetricFamily("sentiflow_actor_mailbox_capacity", "Mailbox bound",
                                     labels=["path"])
        processed = CounterMetricFamily("sentiflow_actor_messages_processed",
                                        "Messages processed", labels=["path"])
        restarts = CounterMetricFamily("sentiflow_actor_restarts", "Restarts",
                                       labels=["path"])
        up = GaugeMetricFamily("sentiflow_actor_running", "1 when the actor is running",
                               labels=["path", "state"])
        timing = HistogramMetricFamily("sentiflow_actor_processing_seconds",
                                       "Time in receive() per message", labels=["path"])
        custom: dict[str, Any] = {}
        for node in snap.walk():
            if not isinstance(node, ActorSnapshot):
                restarts.add_metric([node.path], node.restarts)
                continue
            labels = [node.path]
            depth.add_metric(labels, node.mailbox_depth)
            capacity.add_metric(labels, node.mailbox_capacity)
            processed.add_metric(labels, node.processed)
            restarts.add_metric(labels, node.restarts)
            up.add_metric([node.path, str(node.state)], 1.0 if node.state == "running" else 0.0)
            timing.add_metric(labels, _buckets(node.processing_time),
                              node.processing_time.sum)
            for key, value in node.metrics.items():
                name = f"sentiflow_actor_{_metric_name(key)}"
                if isinstance(value, HistogramSnapshot):
                    family = custom.setdefault(name, HistogramMetricFamily(
                        name, f"Actor metric {key}", labels=["path"]))
                    family.add_metric(labels, _buckets(value), value.sum)
                elif isinstance(value, GaugeSnapshot):
                    family = custom.setdefault(name, GaugeMetricFamily(
                        name, f"Actor gauge {key}", labels=["path"]))
                    family.add_metric(labels, value.value)
                else:
                    family = custom.setdefault(name, CounterMetricFamily(
                        name, f"Actor metric {key}", labels=["path"]))
                    family.add_metric(labels, value)
        dead = CounterMetricFamily("sentiflow_dead_letters", "Messages dead-lettered")
        dead.add_metric([], snap.dead_letters)
        yield from (depth, capacity, processed, restarts, up, timing, dead, *custom.values())


class TreeHealthCollector(Collector):
    """Supervisor states and limits, and when each actor last failed (alert on a recent one):
    what an operator needs to see a tree degrading before the root gives up."""

    def __init__(self, snapshot: Callable[[], SystemSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily("sentiflow_supervisor_running",
                                    "1 when the supervisor is running", labels=["path", "state"])
        limit = GaugeMetricFamily("sentiflow_supervisor_max_restarts",
                                  "Restart intensity: restarts allowed per period",
                                  labels=["path", "strategy"])
        period = GaugeMetricFamily("sentiflow_supervisor_period_seconds",
                                   "Restart intensity period", labels=["path"])
        failed = GaugeMetricFamily("sentiflow_last_error_timestamp_seconds",
                                   "When the actor or supervisor last failed (Unix time)",
                                   labels=["path", "type"])
        for node in self._snapshot().walk():
            if node.last_error is not None:
                failed.add_metric([node.path, node.last_error.type], node.last_error.at)
            if isinstance(node, ActorSnapshot):
                continue
            running.add_metric([node.path, str(node.state)],
                               1.0 if node.state == "running" else 0.0)
            limit.add_metric([node.path, node.strategy], node.max_restarts)
            period.add_metric([node.path], node.period)
        yield from (running, limit, period, failed)


class NodeCollector(Collector):
    """The node as a whole: identity (model and version as labels), readiness, draining,
    uptime, measured throughput, and the extra gauges other subsystems publish
    (``node.gauges``, e.g. the heartbeat's event-loop lag)."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node = self._node
        info = GaugeMetricFamily("sentiflow_node_info", "Node identity",
                                 labels=["node", "model", "model_version", "devices"])
        info.add_metric([node.settings.node.name, node.model.name, node.model.version,
                         ",".join(node.model.devices)], 1.0)
        yield info
        for name, help_text, value in (
                ("ready", "1 when the node accepts work", float(node.ready)),
                ("draining", "1 while a graceful shutdown drains the node",
                 float(node.draining.is_set())),
                ("uptime_seconds", "Seconds since the node started",
                 time.time() - node.started_at),
                ("throughput_posts_per_second", "Posts made durable per second (EWMA)",
                 node.throughput())):
            family = GaugeMetricFamily(f"sentiflow_node_{name}", help_text)
            family.add_metric([], value)
            yield family
        for name, read in node.gauges.items():
            try:
                value = float(read())
            except Exception:  # a broken gauge must not break the scrape
                continue
            family = GaugeMetricFamily(f"sentiflow_node_{_metric_name(name)}", f"Node {name}")
            family.add_metric([], value)
            yield family


class ApiMetrics:
    """The node's registry: the actor tree plus HTTP instruments."""

    def __init__(self, snapshot: Callable[[], SystemSnapshot]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ActorTreeCollector(snapshot))
        self.registry.register(TreeHealthCollector(snapshot))
        self.requests = Counter("sentiflow_http_requests", "HTTP requests",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("sentiflow_http_request_seconds", "HTTP request latency",
                                 ["route"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                          2.5, 5, 10))
        # labels() takes a lock and hashes its tuple on every call (~2 us each); routes and
        # statuses are few, so their children are looked up once and kept.
        self._counted: dict[tuple[str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    def observe_request(self, route: str, status: int, seconds: float | None) -> None:
        """Count one HTTP request of ``route`` answered with ``status``; time it when
        ``seconds`` is known (None: it failed before the timer started)."""
        counter = self._counted.get((route, status))
        if counter is None:
            counter = self._counted[(route, status)] = self.requests.labels(route, str(status))
        counter.inc()
        if seconds is not None:
            timer = self._timed.get(route)
            if timer is None:
                timer = self._timed[route] = self.latency.labels(route)
            timer.observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
