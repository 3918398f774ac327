"""The node: settings -> models and stores -> supervision tree -> a handle the API uses.

:func:`open_node` is the composition root. It opens the result store, loads the models, starts
the actor system and the tree (``sentiflow.config.tree``) and yields a :class:`Node`; leaving the
context shuts the tree down in reverse order (each stage drained) and closes the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx

from sentiflow.actors.batch_jobs import BatchRunner, StartBatch
from sentiflow.actors.classifier import BackendSource
from sentiflow.actors.entry import PipelineEntry
from sentiflow.actors.messages import PipelineError, replies_of
from sentiflow.config.settings import Settings
from sentiflow.config.tree import BATCHES, SINK, Services, build_tree, language_paths
from sentiflow.delivery.webhooks import WebhookSender
from sentiflow.models.base import SentimentBackend
from sentiflow.models.langid import LanguageDetector
from sentiflow.runtime import ActorSnapshot, ActorSystem, DeadLetter, SystemSnapshot
from sentiflow.stores.factory import open_result_store
from sentiflow.stores.interface import ResultStore
from sentiflow.supervisors import Supervisor, SupervisorGaveUp, start_supervisor

log = logging.getLogger("sentiflow.node")

#: Posts/s assumed for completion estimates until the node has measured its own throughput.
PRIOR_THROUGHPUT = 1000.0


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    version: str
    devices: tuple[str, ...]


class ThroughputMeter:
    """Posts/s made durable, from the sink's ``written`` counter, smoothed (EWMA)."""

    def __init__(self, half_life_s: float = 10.0) -> None:
        self._half_life = half_life_s
        self._last: tuple[float, int] | None = None
        self.rate = 0.0

    def update(self, written: int, now: float) -> float:
        if self._last is not None:
            t0, w0 = self._last
            if now - t0 >= 0.5:
                instant = max(0, written - w0) / (now - t0)
                alpha = 1 - 0.5 ** ((now - t0) / self._half_life)
                self.rate = instant if self.rate == 0 else self.rate + alpha * (instant - self.rate)
                self._last = (now, written)
        else:
            self._last = (now, written)
        return self.rate


class Node:
    """A running node: submit posts, look up results, batch jobs, introspection."""

    def __init__(self, settings: Settings, system: ActorSystem, root: Supervisor,
                 store: ResultStore, entry: PipelineEntry, runner: BatchRunner,
                 model: ModelInfo) -> None:
        self.settings = settings
        self.system = system
        self.root = root
        self.store = store
        self.entry = entry
        self.batches = runner
        self.model = model
        self.started_at = time.time()
        self._meter = ThroughputMeter()

    @property
    def ready(self) -> bool:
        return self.root.healthy

    def snapshot(self) -> SystemSnapshot:
        return self.system.snapshot()

    def throughput(self) -> float:
        """Measured posts/s made durable (0 until measured)."""
        sink = self.snapshot().find(SINK)
        written = sink.metrics.get("written", 0) if isinstance(sink, ActorSnapshot) else 0
        return self._meter.update(int(written) if isinstance(written, int) else 0,
                                  time.monotonic())

    def estimate_completion_ms(self, count: int) -> float:
        """Time to finish ``count`` more posts behind what is queued now, at the measured
        throughput (``PRIOR_THROUGHPUT`` until there is a measurement)."""
        ahead = self.batches.outstanding + self.entry.queued()
        rate = self.throughput() or PRIOR_THROUGHPUT
        return (ahead + count) / rate * 1000.0

    async def start_batch(self, batch_id: str) -> None:
        await self.system.lookup(BATCHES).tell(StartBatch(batch_id))


def fail_replies(letter: DeadLetter) -> None:
    """Dead-letter handler: a pipeline message that could not be processed is answered with a
    PipelineError at once (the API answers 503, batch jobs retry), and logged."""
    replies = replies_of(letter.message)
    for reply in replies:
        reply.fail(PipelineError(f"{letter.path} {letter.reason}: {letter.error!r}"))
    log.warning("dead letter at %s (%s, %d callers answered): %r", letter.path, letter.reason,
                len(replies), letter.error)


def load_backends(settings: Settings) -> tuple[list[BackendSource], ModelInfo]:
    """One backend per classifier device: the embedded default on the CPU, or a Hugging Face
    checkpoint on each configured (or each visible CUDA) device."""
    model = settings.classifier.model
    if model == "default":
        from sentiflow.models.training import load_or_train_default

        backend: SentimentBackend = load_or_train_default(
            settings.node.home / "models", settings.node.data_dir, progress=True)
        return [_constant(backend)], ModelInfo(backend.name, backend.version, ("cpu",))
    from sentiflow.models.devices import cuda_devices
    from sentiflow.models.hf_backend import HFBackend

    devices = settings.classifier.devices
    chosen = (cuda_devices() or ["cpu"]) if devices == "auto" else list(devices)
    backends = [HFBackend(model, device=d) for d in chosen]
    return ([_constant(b) for b in backends],
            ModelInfo(backends[0].name, backends[0].version, tuple(chosen)))


def _constant(backend: SentimentBackend) -> BackendSource:
    return lambda: backend


@asynccontextmanager
async def open_node(settings: Settings, *, backends: Sequence[SentimentBackend] | None = None,
                    detector: LanguageDetector | None = None) -> AsyncIterator[Node]:
    """Start a node; ``backends`` overrides model loading (tests, benchmarks)."""
    if backends is None:
        sources, info = await anyio.to_thread.run_sync(load_backends, settings)
    else:
        sources = [_constant(b) for b in backends]
        info = ModelInfo(backends[0].name, backends[0].version, ("cpu",) * len(backends))
    detector = detector or LanguageDetector()
    store = await open_result_store(settings.storage.results_url,
                                    sqlite_synchronous=settings.storage.sqlite_synchronous)
    try:
        async with httpx.AsyncClient() as http, ActorSystem(dead_letter_handler=fail_replies) \
                as system:
            entry = PipelineEntry(system, language_paths(settings))
            sender = (WebhookSender.from_settings(http, settings.webhook)
                      if settings.webhook.secret is not None else None)
            runner = BatchRunner(store, entry, chunk_size=settings.classifier.max_batch,
                                 webhooks=sender)
            services = Services(store=store, detector=detector, backends=sources,
                                batches=runner)
            root = await start_supervisor(system, build_tree(settings, services), name="root")
            node = Node(settings, system, root, store, entry, runner, info)
            try:
                yield node
            finally:
                await root.shutdown()
    finally:
        await store.close()


async def wait_gave_up(node: Node) -> SupervisorGaveUp | None:
    """Wait until the root stops; the error if it gave up (the process must exit non-zero)."""
    return await node.root.wait()
