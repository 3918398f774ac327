"""The node's supervision tree, declared in one place and read top to bottom.

::

    /root                      rest_for_one   (pipeline first; batches depend on it)
    ├── pipeline               one_for_one    (10 restarts / 60 s, then escalate)
    │   ├── sink               ResultSink     durable writes, then replies
    │   ├── router             Router         confidence threshold
    │   ├── classifier-<i>     Classifier     one per device, micro-batching
    │   └── language-<i>       LanguageDetectorActor pool
    └── batches                BatchCoordinator   batch jobs + webhooks

Children start in this order (downstream first, so every actor finds the refs it sends to)
and stop in reverse (upstream first, so each stage drains into a live successor). Refs survive
restarts, so one_for_one suffices inside the pipeline; if the pipeline supervisor gives up, the
root restarts it and then the batch coordinator (rest_for_one); if the root gives up, the
process exits non-zero and systemd restarts the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from sentiflow.actors.batch_jobs import BatchCoordinator, BatchRunner
from sentiflow.actors.classifier import BackendSource, Classifier
from sentiflow.actors.language import LanguageDetectorActor
from sentiflow.actors.router import Router
from sentiflow.actors.sink import ResultSink
from sentiflow.config.settings import Settings
from sentiflow.models.langid import LanguageDetector
from sentiflow.stores.interface import ResultStore
from sentiflow.supervisors import ChildSpec, Restart, Strategy, SupervisorSpec

ROOT = "/root"
PIPELINE = f"{ROOT}/pipeline"
SINK = f"{PIPELINE}/sink"
ROUTER = f"{PIPELINE}/router"
BATCHES = f"{ROOT}/batches"


def classifier_path(index: int) -> str:
    return f"{PIPELINE}/classifier-{index}"


def language_path(index: int) -> str:
    return f"{PIPELINE}/language-{index}"


@dataclass(frozen=True, slots=True)
class Services:
    """What the actors are built from: loaded models, opened stores, the batch runner."""

    store: ResultStore
    detector: LanguageDetector
    #: One backend source per classifier (device), in device order.
    backends: Sequence[BackendSource]
    batches: BatchRunner


def language_paths(settings: Settings) -> list[str]:
    return [language_path(i) for i in range(settings.language.pool_size)]


def build_tree(settings: Settings, services: Services) -> SupervisorSpec:
    c, s = settings.classifier, settings.storage
    classifiers = [classifier_path(i) for i in range(len(services.backends))]
    pipeline = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE, max_restarts=10, period=60.0,
        children=[
            ChildSpec("sink", partial(ResultSink, services.store, max_batch=s.writer_max_batch,
                                      max_wait_s=s.writer_max_wait_ms / 1000),
                      mailbox_capacity=s.writer_mailbox_size, shutdown=30.0),
            ChildSpec("router", partial(Router, settings.router, SINK),
                      mailbox_capacity=settings.router.mailbox_size, shutdown=10.0),
            *[ChildSpec(path.rsplit("/", 1)[-1],
                        partial(Classifier, backend, ROUTER, max_batch=c.max_batch,
                                max_wait_s=c.max_wait_ms / 1000),
                        mailbox_capacity=c.mailbox_size, shutdown=10.0)
              for path, backend in zip(classifiers, services.backends, strict=True)],
            *[ChildSpec(path.rsplit("/", 1)[-1],
                        partial(LanguageDetectorActor, services.detector, classifiers),
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
        ],
    )
