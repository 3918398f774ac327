"""Trained parts: the target model's persistence (synthetic data, fast) and the CRF on the
real ABSA split (marked data + slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentiflow.config import paths
from sentiflow.models.aspects.absa_data import available, is_heldout, load_absa
from sentiflow.models.aspects.evaluation import extraction_report, prf
from sentiflow.models.aspects.extraction import CombinedExtractor
from sentiflow.models.aspects.learned import train_crf
from sentiflow.models.aspects.lexicon import KeywordExtractor
from sentiflow.models.aspects.polarity import AspectItem, TargetPolarity, fit_target
from sentiflow.models.aspects.taxonomy import default_taxonomy
from sentiflow.models.calibration import Calibrator


def test_target_model_learns_the_target_side_and_round_trips(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        for good, bad in (("screen", "keyboard"), ("food", "service")):
            text = f"the {good} is lovely {i} but the {bad} is dreadful"
            rows.append((AspectItem(text, text.index(good), text.index(good) + len(good),
                                    "en"), 2))
            rows.append((AspectItem(text, text.index(bad), text.index(bad) + len(bad),
                                    "en"), 0))
    items = [r[0] for r in rows]
    labels = np.array([r[1] for r in rows], dtype=np.int64)
    weights, bias = fit_target(items, labels, c=1.0, balanced=False)
    model = TargetPolarity(weights, bias, Calibrator.identity())
    assert (model.predict_proba(items).argmax(axis=1) == labels).mean() == 1.0
    model.save(tmp_path)
    again = TargetPolarity.load(tmp_path)
    np.testing.assert_allclose(again.predict_proba(items), model.predict_proba(items))


def test_span_scores_exact_and_overlap() -> None:
    gold = [[(0, 4), (10, 15)]]
    assert prf(gold, [[(0, 4), (11, 15)]], "exact")["f1"] == pytest.approx(0.5)
    assert prf(gold, [[(0, 4), (11, 15)]], "overlap")["f1"] == pytest.approx(1.0)
    assert prf(gold, [[(0, 2), (1, 3)]], "overlap")["precision"] == pytest.approx(0.5)


def test_split_is_deterministic_by_sentence() -> None:
    assert is_heldout("the food was good") == is_heldout("the food was good")
    shares = np.mean([is_heldout(f"sentence {i}") for i in range(5000)])
    assert 0.17 < shares < 0.23


@pytest.mark.data
@pytest.mark.slow
def test_crf_beats_the_lists_on_heldout() -> None:
    data = paths.data_dir()
    if not available(data):
        pytest.skip(f"no ABSA data under {data}")
    train, heldout = load_absa(data, "train"), load_absa(data, "heldout")
    assert not {s.text for s in train} & {s.text for s in heldout}
    lexicon = KeywordExtractor(default_taxonomy())
    crf = train_crf([s.text for s in train],
                    [[(a.start, a.end) for a in s.aspects] for s in train], lexicon)
    learned = extraction_report(CombinedExtractor(lexicon, crf.extractor(lexicon), "learned"),
                                heldout)["exact"]["f1"]
    lists = extraction_report(CombinedExtractor(lexicon), heldout)["exact"]["f1"]
    assert learned > 0.65
    assert learned > lists + 0.1
