"""The aspect step end to end without actors: extraction, one context per aspect, the mixed
rule, and the sanity set's opposite polarities."""

from __future__ import annotations

import pytest

from sentiflow.models.aspects.mixed import mixed_verdict
from sentiflow.models.aspects.text import clause
from sentiflow.models.aspects.training import lexicon_only
from sentiflow.models.aspects.types import AspectMention, AspectPrediction
from tests.aspects.sanity import SANITY, Case, PolarityWordsBackend


@pytest.mark.parametrize("case", SANITY, ids=[f"{c[0]}-{i}" for i, c in enumerate(SANITY)])
def test_each_aspect_is_classified_in_its_own_clause(case: Case) -> None:
    language, text, expected = case
    backend = PolarityWordsBackend()
    analyzer = lexicon_only().analyzer(backend)
    (preds,) = analyzer.analyze([text], [language])
    assert [(p.name, p.sentiment) for p in preds] == [(c, s) for _, c, s in expected]
    assert len(backend.calls) == 1  # one model call for all aspects of the batch
    for p in preds:
        assert p.mention.term in p.context
        assert p.context != text  # a clause, not the whole post
    assert mixed_verdict(preds).mixed


def test_clause_grows_past_short_fragments() -> None:
    text = "The food, however, was great. The rest was bad."
    assert clause(text, 4, 8, "en") == "The food, however, was great."
    assert clause("商品は良いが、配送は最悪だった。", 7, 9, "ja") == "配送は最悪だった。"


def _pred(label: str, confidence: float) -> AspectPrediction:
    return AspectPrediction(AspectMention(0, 1, "x", "c"), label, confidence,  # type: ignore[arg-type]
                            (0.0, 0.0, 0.0), "x")


@pytest.mark.parametrize(("preds", "mixed", "confidence"), [
    ([("positive", 0.9), ("negative", 0.7)], True, 0.7),
    ([("positive", 0.9), ("negative", 0.55)], False, 0.0),  # doubtful negative
    ([("positive", 0.9), ("neutral", 0.95)], False, 0.0),  # neutral never mixes
    ([("negative", 0.8), ("negative", 0.9)], False, 0.0),
    ([("positive", 0.6), ("negative", 0.65), ("positive", 0.99)], True, 0.65),
    ([], False, 0.0),
])
def test_mixed_rule(preds: list[tuple[str, float]], mixed: bool, confidence: float) -> None:
    verdict = mixed_verdict([_pred(label, c) for label, c in preds], 0.6)
    assert (verdict.mixed, verdict.confidence) == (mixed, confidence)


def test_max_aspects_and_empty_texts() -> None:
    analyzer = lexicon_only().analyzer(PolarityWordsBackend(), max_aspects=2)
    preds = analyzer.analyze(["price, shipping, screen and battery", "nothing here"],
                             ["en", "en"])
    assert [len(p) for p in preds] == [2, 0]
