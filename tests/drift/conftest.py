"""Fixtures for the drift loop: a real-data subset and a small embedded model trained on it.

The subset (a few hundred rows per language, read from ``SENTIFLOW_DATA_DIR`` / ../shared/data
and written to a temporary folder, never into the repository) keeps training to seconds on two
shared cores; the drift and retraining mechanics do not need the full model's accuracy.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from sentiflow.config.paths import REPO_ROOT
from sentiflow.config.settings import Settings, load_settings
from sentiflow.models.embedded import EmbeddedLinearBackend
from sentiflow.models.features import FeatureConfig
from sentiflow.models.training import TrainConfig, train_default

LANGS = ("en", "es", "fr", "de")
SMALL = TrainConfig(features=FeatureConfig(bits=18), epochs=8)


def data_dir() -> Path:
    return Path(os.environ.get("SENTIFLOW_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def require_data() -> Path:
    root = data_dir()
    if not (root / "sentiment" / "en" / "test.csv").is_file():
        pytest.skip(f"labelled data not found at {root} (set SENTIFLOW_DATA_DIR)")
    return root


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows({"text": r["text"], "label": r["label"]} for r in rows)


@pytest.fixture(scope="session")
def subset_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All train and valid rows, the first 300 test rows, per language of LANGS (the drift
    simulation draws its "live" posts from test rows 300+, which nothing here trained on)."""
    source = require_data()
    root = tmp_path_factory.mktemp("subset") / "data"
    for lang in LANGS:
        for split, n in (("train", 100_000), ("valid", 100_000), ("test", 300)):
            rows = read_rows(source / "sentiment" / lang / f"{split}.csv")
            write_rows(root / "sentiment" / lang / f"{split}.csv", rows[:n])
    return root


@dataclass(frozen=True)
class SmallModel:
    models_dir: Path
    version_id: str
    backend: EmbeddedLinearBackend


@pytest.fixture(scope="session")
def small_model(subset_data: Path, tmp_path_factory: pytest.TempPathFactory) -> SmallModel:
    """A 4-language embedded model (~4 s to train), active in its own models folder."""
    models = tmp_path_factory.mktemp("models")
    result = train_default(subset_data, models, version_id="small-v1", config=SMALL,
                           progress=False)
    return SmallModel(models, "small-v1", result.backend)


def node_env(home: Path, data: Path, **extra: str) -> dict[str, str]:
    """Environment for a test node (and the CLI beside it) on ``home`` and ``data``."""
    return {"SENTIFLOW_NODE__HOME": str(home), "SENTIFLOW_NODE__DATA_DIR": str(data),
            "SENTIFLOW_DRIFT__RELOAD_POLL_S": "0.2", "SENTIFLOW_CLASSIFIER__MAX_WAIT_MS": "2",
            **extra}


def settings_for(tmp_path: Path, small_model: SmallModel, subset_data: Path,
                 **extra: str) -> Settings:
    """Settings of a node whose home holds a copy of the small model (``small-v1`` active)."""
    home = tmp_path / "home"
    shutil.copytree(small_model.models_dir, home / "models")
    return load_settings(None, env=node_env(home, subset_data, **extra))
