"""The one slow test: train on the real data and check the model is clearly better than chance."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiflow.config import paths
from sentiflow.models.training import train_default

DATA = paths.data_dir()


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not (DATA / "sentiment").is_dir(), reason=f"no labelled data at {DATA}")
def test_trains_on_real_data_and_beats_fasttext_anchor(tmp_path: Path) -> None:
    result = train_default(DATA, tmp_path / "models", progress=False)
    v = result.version
    assert v.umsab_f1 is not None
    assert v.umsab_f1 > 0.51
    assert v.ece_after is not None
    assert v.ece_before is not None
    assert v.ece_after <= v.ece_before
