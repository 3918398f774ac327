from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sentiflow.config.settings import Settings, load_settings
from sentiflow.models.langid import LanguageDetector
from tests.pg import (  # noqa: F401  (PostgreSQL fixtures: a fresh database, private clusters)
    postgres_dsn,
    postgres_server,
    private_pg,
    private_pg_cluster,
)


@pytest.fixture(scope="session")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with their own home (embedded store) and env overrides given as kwargs,
    e.g. ``make_settings(CLASSIFIER__MAX_BATCH="8")``."""

    def make(**env: str) -> Settings:
        environ = {"SENTIFLOW_NODE__HOME": str(tmp_path / "home")}
        environ.update({f"SENTIFLOW_{k}": v for k, v in env.items()})
        return load_settings(None, env=environ)

    return make
