"""Keyword-list extraction on the multilingual sanity set: categories and exact spans."""

from __future__ import annotations

import pytest

from sentiflow.models.aspects.lexicon import KeywordExtractor
from sentiflow.models.aspects.taxonomy import LANGUAGES, default_taxonomy
from tests.aspects.sanity import SANITY, Case


@pytest.fixture(scope="module")
def extractor() -> KeywordExtractor:
    return KeywordExtractor(default_taxonomy())


def test_the_sanity_set_covers_every_language_three_times() -> None:
    per_language = {lang: sum(c[0] == lang for c in SANITY) for lang in LANGUAGES}
    assert per_language == dict.fromkeys(LANGUAGES, 3)
    for _, _, aspects in SANITY:
        assert {s for _, _, s in aspects} == {"positive", "negative"}


@pytest.mark.parametrize("case", SANITY, ids=[f"{c[0]}-{i}" for i, c in enumerate(SANITY)])
def test_finds_each_aspect_with_its_category_and_exact_span(extractor: KeywordExtractor,
                                                           case: Case) -> None:
    language, text, expected = case
    found = extractor.extract(text, language)
    assert [(text[m.start:m.end], m.category) for m in found] == \
        [(term, category) for term, category, _ in expected]
    for m in found:
        assert m.term == text[m.start:m.end]


def test_longest_term_wins_and_adjacent_terms_of_one_category_merge(
        extractor: KeywordExtractor) -> None:
    (m,) = extractor.extract("Great battery life.", "en")
    assert (m.term, m.category) == ("battery life", "battery")
    (z,) = extractor.extract("产品质量很好", "zh")
    assert (z.term, z.category) == ("产品质量", "product quality")


def test_word_boundaries_and_inflection() -> None:
    x = KeywordExtractor(default_taxonomy())
    assert x.extract("The apps are prices-free", "en")[0].term == "apps"
    assert not x.extract("Unpriceable boxing", "en")  # no match inside other words
    assert [m.term for m in x.extract("Die Versandkosten", "de")] == ["Versandkosten"]
    assert [m.term for m in x.extract("harganya murah", "id")] == ["harganya"]
    # Arabic proclitics: و + ال + term, span covers the term and its suffix only
    text = "والشحن بطيء"
    (m,) = x.extract(text, "ar")
    assert text[m.start:m.end] == "شحن"


def test_unknown_language_falls_back_to_english_terms(extractor: KeywordExtractor) -> None:
    assert [m.category for m in extractor.extract("the shipping was slow", "und")] == \
        ["shipping"]
    assert [m.category for m in extractor.extract("packing bagus banget", "id")] == \
        ["packaging"]
