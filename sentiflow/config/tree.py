"""The node's supervision tree, declared in one place and read top to bottom.

::

    /root                      rest_for_one   (pipeline first; batches depend on it)
    ├── pipeline               one_for_one    (10 restarts / 60 s, then escalate)
    │   ├── drift              DriftWatcher   sink listener: daily confidence histograms
    │   ├── trends             TrendsWriter   sink listener: events -> ClickHouse / chDB rollups
    │   ├── sink               ResultSink     durable writes, then replies
    │   ├── aspects-<i>        AspectWorker   pool, per-aspect sentiment (aspects.enabled;
    │   │                                     uncertain aspects to the LLM when llm is on)
    │   ├── escalator-<i>      LLMEscalator   pool, LLM second opinion (only when llm is on)
    │   ├── router             Router         confidence threshold
    │   ├── classifier-<i>     Classifier     one per device, micro-batching
    │   └── language-<i>       LanguageDetectorActor pool
    ├── batches                BatchCoordinator   batch jobs + webhooks
    ├── model                  one_for_one    (when any child below applies)
    │   ├── reloader           ModelReloader  hot swap when models/ACTIVE moves (default model)
    │   ├── retrainer          Retrainer      retrain, promote if F1 not worse (default model)
    │   └── auditor            Auditor        nightly LLM audit (only when llm is on)
    └── ingest                 one_for_one    (only when kafka.bootstrap_servers is set)
        └── reader-<i>         KafkaReader    consumer group member, commit after write

Children start in this order (downstream first, so every actor finds the refs it sends to)
and stop in reverse (upstream first, so each stage drains into a live successor). Refs survive
restarts, so one_for_one suffices inside the pipeline; if the pipeline supervisor gives up, the
root restarts it and then the batch coordinator (rest_for_one); if the root gives up, the
process exits non-zero and systemd restarts the node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from sentiflow.actors.aspect_escalation import AspectEscalation
from sentiflow.actors.aspect_pool import AspectPool
from sentiflow.actors.aspects import AspectWorker, NextStage
from sentiflow.actors.auditor import Auditor
from sentiflow.actors.batch_jobs import BatchCoordinator, BatchRunner
from sentiflow.actors.classifier import BackendSource, Classifier
from sentiflow.actors.drift import DriftWatcher
from sentiflow.actors.entry import PipelineEntry
from sentiflow.actors.escalator import LLMEscalator
from sentiflow.actors.language import LanguageDetectorActor
from sentiflow.actors.model_reloader import ModelReloader
from sentiflow.actors.retrainer import Retrainer, RetrainOptions
from sentiflow.actors.router import Router
from sentiflow.actors.sink import ResultSink
from sentiflow.actors.trends_writer import TrendsWriter
from sentiflow.alerts import Alerter
from sentiflow.config.settings import Settings
from sentiflow.llm.tier import LLMTier
from sentiflow.models.holder import ModelHolder, call_lock
from sentiflow.models.langid import LanguageDetector
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.trends import TrendStore
from sentiflow.supervisors import ChildSpec, Restart, Strategy, SupervisorSpec

ROOT = "/root"
PIPELINE = f"{ROOT}/pipeline"
SINK = f"{PIPELINE}/sink"
ROUTER = f"{PIPELINE}/router"
BATCHES = f"{ROOT}/batches"
DRIFT = f"{PIPELINE}/drift"
TRENDS = f"{PIPELINE}/trends"
MODEL = f"{ROOT}/model"
RELOADER = f"{MODEL}/reloader"
RETRAINER = f"{MODEL}/retrainer"
AUDITOR = f"{MODEL}/auditor"


def classifier_path(index: int) -> str:
    return f"{PIPELINE}/classifier-{index}"


def language_path(index: int) -> str:
    return f"{PIPELINE}/language-{index}"


def aspect_path(index: int) -> str:
    return f"{PIPELINE}/aspects-{index}"


def escalator_path(index: int) -> str:
    return f"{PIPELINE}/escalator-{index}"


@dataclass(frozen=True, slots=True)
class Services:
    """What the actors are built from: loaded models, opened stores, the batch runner."""

    store: ResultStore
    #: The language stage's detector now (follows a hot-swapped model; sentiflow/node.py).
    detectors: Callable[[], LanguageDetector]
    #: One backend source per classifier (device), in device order.
    backends: Sequence[BackendSource]
    batches: BatchRunner
    #: Where drift / audit alerts go (log + metric, PagerDuty when configured).
    alerter: Alerter | None = None
    #: How Kafka readers submit posts (the same entry the API uses); None = no ingest.
    entry: PipelineEntry | None = None
    #: The trend store the trends writer feeds; None = trends disabled.
    trends: TrendStore | None = None
    #: The LLM tier the escalators share; None = tier off (low posts flagged for review).
    llm: LLMTier | None = None
    #: The aspect step's models; None = aspects disabled (requests asking for them get 501).
    aspects: AspectPool | None = None


def language_paths(settings: Settings) -> list[str]:
    return [language_path(i) for i in range(settings.language.pool_size)]


def build_tree(settings: Settings, services: Services) -> SupervisorSpec:
    c, s = settings.classifier, settings.storage
    classifiers = [classifier_path(i) for i in range(len(services.backends))]
    d = settings.drift
    drift = [ChildSpec("drift", partial(DriftWatcher, services.store, d, settings.router,
                                        services.alerter or Alerter(), retrainer_path=RETRAINER,
                                        source=settings.node.name),
                       mailbox_capacity=d.mailbox_size, shutdown=10.0)] if d.enabled else []
    listeners = [DRIFT] if d.enabled else []
    trends = trends_children(settings, services)
    listeners += [TRENDS] if trends else []
    aspects = aspect_children(settings, services)
    aspect_paths = [aspect_path(i) for i in range(len(aspects))]
    escalators = escalator_children(settings, services)
    pipeline = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE, max_restarts=10, period=60.0,
        children=[
            *drift,
            *trends,
            ChildSpec("sink", partial(ResultSink, services.store, max_batch=s.writer_max_batch,
                                      max_wait_s=s.writer_max_wait_ms / 1000,
                                      listener_paths=listeners),
                      mailbox_capacity=s.writer_mailbox_size, shutdown=30.0),
            *aspects,
            *escalators,
            ChildSpec("router", partial(
                Router, settings.router, SINK,
                escalator_paths=[escalator_path(i) for i in range(len(escalators))],
                observe_routed=services.llm.observe_routed if services.llm else None,
                next_stage=NextStage(aspect_paths, SINK)),
                      mailbox_capacity=settings.router.mailbox_size, shutdown=10.0),
            *[ChildSpec(path.rsplit("/", 1)[-1],
                        partial(Classifier, backend, ROUTER, max_batch=c.max_batch,
                                max_wait_s=c.max_wait_ms / 1000, call_lock=call_lock(backend),
                                inline_budget_s=c.inline_budget_ms / 1000),
                        mailbox_capacity=c.mailbox_size, shutdown=10.0)
              for path, backend in zip(classifiers, services.backends, strict=True)],
            *[ChildSpec(path.rsplit("/", 1)[-1],
                        partial(LanguageDetectorActor, services.detectors, classifiers,
                                max_batch=c.max_batch,
                                max_wait_s=settings.language.max_wait_ms / 1000),
                        mailbox_capacity=settings.language.mailbox_size, shutdown=10.0)
              for path in language_paths(settings)],
        ],
    )
    return SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE, max_restarts=3, period=60.0,
        children=[
            ChildSpec("pipeline", pipeline),
            ChildSpec("batches", partial(BatchCoordinator, services.batches),
                      restart=Restart.PERMANENT, mailbox_capacity=1024, shutdown=5.0),
            *model_children(settings, services),
            *ingest_children(settings, services),
        ],
    )


def aspect_children(settings: Settings, services: Services) -> list[ChildSpec]:
    """The AspectWorker pool (after the sink it sends to, before the router and escalators
    that send to it); only when ``aspects.enabled``."""
    pool = services.aspects
    if pool is None:
        return []
    a = settings.aspects
    # Uncertain aspects go to the LLM tier only when it is on (else: flagged for review).
    llm = (AspectEscalation(services.llm, settings.llm, services.store)
           if services.llm is not None and a.llm_escalation else None)
    return [ChildSpec(aspect_path(i).rsplit("/", 1)[-1],
                      partial(AspectWorker, pool.make_analyzer, SINK,
                              mixed_min_confidence=a.mixed_min_confidence,
                              review_below=a.review_below, llm=llm),
                      mailbox_capacity=a.mailbox_size, shutdown=10.0)
            for i in range(a.pool_size)]


def escalator_children(settings: Settings, services: Services) -> list[ChildSpec]:
    """The LLM escalator pool (after the sink, which they send to, and before the router);
    only when the LLM tier is configured (``llm.base_url`` / ``llm.api_key``)."""
    if services.llm is None:
        return []
    llm = settings.llm
    return [ChildSpec(escalator_path(i).rsplit("/", 1)[-1],
                      # aspects-0 passes posts that did not ask for aspects straight on
                      partial(LLMEscalator, services.llm, llm,
                              aspect_path(0) if services.aspects else SINK, services.store),
                      mailbox_capacity=llm.mailbox_size, shutdown=llm.timeout_s + 5.0)
            for i in range(llm.pool_size)]


def trends_children(settings: Settings, services: Services) -> list[ChildSpec]:
    """The trend writer (a sink listener, so it starts before the sink and stops after it,
    draining what the sink gave it); only when trends are enabled and the store is open."""
    t = settings.trends
    if not t.enabled or services.trends is None:
        return []
    return [ChildSpec("trends", partial(TrendsWriter, services.trends,
                                        max_batch=t.writer_max_batch,
                                        max_wait_s=t.writer_max_wait_ms / 1000,
                                        max_attempts=t.writer_max_attempts,
                                        backoff_initial_s=t.writer_backoff_initial_s,
                                        backoff_max_s=t.writer_backoff_max_s),
                      mailbox_capacity=t.writer_mailbox_size, shutdown=30.0)]


def model_children(settings: Settings, services: Services) -> list[ChildSpec]:
    """Hot swap and retraining exist for the embedded default model only (a Hugging Face
    checkpoint is trained elsewhere); the nightly audit only when the LLM tier is on."""
    holders = [b for b in services.backends if isinstance(b, ModelHolder)]
    children = []
    if settings.classifier.model == "default" and holders:
        models_dir = settings.node.home / "models"
        options = RetrainOptions(data_dir=settings.node.data_dir, models_dir=models_dir)
        children += [
            ChildSpec("reloader", partial(ModelReloader, holders, models_dir,
                                          poll_s=settings.drift.reload_poll_s),
                      mailbox_capacity=16, shutdown=5.0),
            ChildSpec("retrainer", partial(Retrainer, services.store, options, RELOADER),
                      mailbox_capacity=2, shutdown=5.0)]
    if services.llm is not None and settings.drift.audit_enabled:
        children.append(ChildSpec(
            "auditor", partial(Auditor, services.store, services.llm, settings.drift,
                               services.alerter or Alerter(),
                               batch_size=settings.llm.max_posts_per_request,
                               source=settings.node.name),
            mailbox_capacity=8, shutdown=5.0))
    if not children:
        return []
    return [ChildSpec("model", SupervisorSpec(strategy=Strategy.ONE_FOR_ONE, max_restarts=5,
                                              period=60.0, children=children))]


def ingest_children(settings: Settings, services: Services) -> list[ChildSpec]:
    """Kafka readers, last so that they start after the pipeline and stop first (their
    in-flight posts drain into a live pipeline); only when ``kafka.bootstrap_servers`` is set."""
    if not settings.kafka.enabled or services.entry is None:
        return []
    from sentiflow.ingest.tree import INGEST, ingest_spec  # aiokafka only when enabled

    return [ChildSpec(INGEST, ingest_spec(settings, services.entry))]
