"""Where sentiflow finds its data and keeps its artifacts.

``SENTIFLOW_DATA_DIR`` points at the labelled data (default ``../shared/data`` next to the repo);
``SENTIFLOW_HOME`` holds trained models and embedded stores (default ``var/`` in the repo).
Data is read in place and never copied into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    env = os.environ.get("SENTIFLOW_DATA_DIR")
    return Path(env).expanduser() if env else (REPO_ROOT.parent / "shared" / "data")


def home_dir() -> Path:
    env = os.environ.get("SENTIFLOW_HOME")
    return Path(env).expanduser() if env else (REPO_ROOT / "var")


def models_dir() -> Path:
    return home_dir() / "models"


def e5_models_dir(home: Path | None = None) -> Path:
    """Versions of the e5 tier's head (kept apart: another model type, its own ACTIVE)."""
    return (home or home_dir()) / "models-e5"


def e5_cache_path(home: Path | None = None) -> Path:
    """Embeddings of the labelled data, so that retraining the e5 head re-embeds nothing."""
    return (home or home_dir()) / "cache" / "e5-embeddings.npz"
