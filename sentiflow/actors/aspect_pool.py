"""Building the aspect step for a node: which models the AspectWorker pool uses.

``aspects.model = "auto"``: the active trained artifact under ``<home>/aspect-models`` (CRF
extractor + target-conditioned English polarity, see
:mod:`sentiflow.models.aspects.training`); when there is none, ``aspects.train_if_missing`` is
set and the node runs the embedded default model with the ABSA data present, one is trained
first. Otherwise, or with ``aspects.model = "lexicon"``: the keyword lists + the classifier's own
model applied to each aspect's clause. A broken artifact is logged and the lists are used:
aspects degrade, the node still starts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sentiflow.actors.classifier import BackendSource
from sentiflow.config.settings import AspectSettings, Settings
from sentiflow.models.aspects.analyzer import AspectAnalyzer, AspectModels
from sentiflow.models.aspects.taxonomy import build_taxonomy
from sentiflow.models.base import Probabilities, SentimentBackend
from sentiflow.models.errors import ArtifactError, ModelNotFoundError
from sentiflow.models.holder import call_lock

log = logging.getLogger("sentiflow.actors.aspect_pool")


def aspect_models_dir(settings: Settings) -> Path:
    return settings.node.home / "aspect-models"


class _SerialBackend:
    """The classifier's backend, called by one thread at a time: the pool's workers and the
    classifier that serves the same source share its call lock (backends need not be
    re-entrant; models/holder.py)."""

    def __init__(self, source: BackendSource) -> None:
        self._source = source
        self._lock = call_lock(source)

    @property
    def name(self) -> str:
        return self._source().name

    @property
    def version(self) -> str:
        return self._source().version

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        with self._lock:
            return self._source().predict_proba(texts, languages)


@dataclass(frozen=True)
class AspectPool:
    """What every AspectWorker builds its analyser from."""

    models: AspectModels
    backend: SentimentBackend
    settings: AspectSettings

    def make_analyzer(self) -> AspectAnalyzer:
        return self.models.analyzer(self.backend, self.settings.max_per_post)


def load_aspect_pool(settings: Settings, source: BackendSource, *,
                     may_train: bool) -> AspectPool | None:
    """The pool's models, or None when aspects are disabled. Blocking (run in a thread)."""
    from sentiflow.models.aspects.absa_data import available
    from sentiflow.models.aspects.training import (
        lexicon_only,
        load_aspect_models,
        train_aspects,
    )

    a = settings.aspects
    if not a.enabled:
        return None
    taxonomy = build_taxonomy(a.taxonomy_file, a.categories, a.domains)
    backend = _SerialBackend(source)
    models = lexicon_only(taxonomy)
    if a.model == "auto":
        folder = aspect_models_dir(settings)
        try:
            models = load_aspect_models(folder, taxonomy)
        except ModelNotFoundError:
            if may_train and a.train_if_missing and available(settings.node.data_dir):
                log.info("no aspect model yet: training one from %s/absa",
                         settings.node.data_dir)
                models = train_aspects(settings.node.data_dir, folder, source(),
                                       taxonomy=taxonomy, log=log.info).models
        except ArtifactError as exc:
            log.error("aspect model unusable, using the keyword lists: %s", exc)
    log.info("aspects: %s extraction, version %s", models.extraction_mode, models.version)
    return AspectPool(models, backend, a)
