"""Shared fixtures. Backend-neutral tests run under both anyio backends (asyncio and trio)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def default_model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node home whose ``models/`` holds the embedded default model trained once per session
    on ../shared/data (about 20 s on 2 cores); skips when the data is absent."""
    from sentiflow.config import paths
    from sentiflow.models.training import train_default

    data = paths.data_dir()
    if not (data / "sentiment").is_dir():
        pytest.skip(f"no labelled data at {data}")
    home = tmp_path_factory.mktemp("default-model-home")
    train_default(data, home / "models", progress=False)
    return home
