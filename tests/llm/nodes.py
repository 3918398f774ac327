"""Helpers that start a node (and its HTTP API) wired to a fake LLM server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from sentiflow.config.settings import Settings, load_settings
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import Node, open_node
from sentiflow.runtime import Priority
from sentiflow.stores.records import ClassificationRequest, ClassificationResult
from tests.net import free_port
from tests.node.backends import LexiconBackend

#: LexiconBackend confidences: a clear text 0.8 (above 0.75), an unclear one 0.4 (below).
CLEAR = ("I love it, great", "awful and bad", "excellent, amazing", "terrible, I hate it")
UNCLEAR = ("it is a chair", "the bus came at noon", "we met on tuesday", "a blue door")


def node_settings(home: Path, base_url: str | None, **env: str) -> Settings:
    """Settings for a test node: own home, trends / drift off (not under test), fast LLM
    backoff; ``env`` as ``SECTION__KEY=value``."""
    environ = {"SENTIFLOW_NODE__HOME": str(home), "SENTIFLOW_TRENDS__ENABLED": "false",
               "SENTIFLOW_DRIFT__ENABLED": "false", "SENTIFLOW_LLM__BACKOFF_INITIAL_S": "0.01",
               "SENTIFLOW_LLM__BACKOFF_MAX_S": "0.05", "SENTIFLOW_LLM__BREAKER_RESET_S": "0.5",
               "SENTIFLOW_LLM__REQUESTS_PER_MINUTE": "6000"}
    if base_url is not None:
        environ["SENTIFLOW_LLM__BASE_URL"] = base_url
    environ.update({f"SENTIFLOW_{k}": v for k, v in env.items()})
    return load_settings(None, env=environ)


@asynccontextmanager
async def llm_node(settings: Settings, detector: LanguageDetector) -> AsyncIterator[Node]:
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        yield node


def requests(texts: Sequence[str], priority: str = "standard") -> list[ClassificationRequest]:
    return [ClassificationRequest(request_id=f"r-{uuid.uuid4().hex[:12]}", text=t,
                                  language="en", priority=priority)  # type: ignore[arg-type]
            for t in texts]


async def classify(node: Node, texts: Sequence[str], *, lane: Priority = Priority.NORMAL,
                   timeout: float = 20.0) -> tuple[ClassificationResult, ...]:  # noqa: ASYNC109
    name = {Priority.REALTIME: "realtime", Priority.NORMAL: "standard",
            Priority.BATCH: "batch"}[lane]
    return await node.entry.classify(requests(texts, name), lane=lane, timeout=timeout)


def api_port() -> str:
    return str(free_port())
