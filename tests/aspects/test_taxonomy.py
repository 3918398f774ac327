from __future__ import annotations

from pathlib import Path

import pytest

from sentiflow.models.aspects.lexicon import KeywordExtractor
from sentiflow.models.aspects.taxonomy import LANGUAGES, TaxonomyError, build_taxonomy


def test_builtin_taxonomy_covers_the_twelve_languages_in_every_category() -> None:
    taxonomy = build_taxonomy()
    for category in taxonomy.categories:
        assert set(category.terms) == set(LANGUAGES), category.name


def test_domains_filter_and_inline_categories_extend() -> None:
    taxonomy = build_taxonomy(inline={"wifi": {"domains": ["restaurant"],
                                               "terms": {"en": ["Wi-Fi", "wifi"]}},
                                      "food": {"terms": {"en": ["tapas"]}}},
                              domains=["restaurant"])
    assert "shipping" not in taxonomy.names
    assert {"food", "wifi", "price"} <= set(taxonomy.names)
    found = KeywordExtractor(taxonomy).extract("The tapas were fine, the wifi was not", "en")
    assert [(m.term, m.category) for m in found] == [("tapas", "food"), ("wifi", "wifi")]


def test_file_replaces_the_builtin_table(tmp_path: Path) -> None:
    path = tmp_path / "tax.toml"
    path.write_text('[categories.sound]\ndomains = ["audio"]\n'
                    '[categories.sound.terms]\nen = ["bass", "sound"]\n')
    taxonomy = build_taxonomy(path)
    assert taxonomy.names == ("sound",)


@pytest.mark.parametrize(("inline", "message"), [
    ({"x": {"terms": {"en": "bass"}}}, "must be a list"),
    ({"x": {"terms": {"english": ["a"]}}}, "not a language code"),
    ({"x": {"terms": {"en": ["  "]}}}, "must not be blank"),
    ({"x": {"color": 1}}, "unknown key"),
])
def test_bad_tables_are_named_errors(inline: dict[str, object], message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        build_taxonomy(inline=inline)


def test_bad_file_and_empty_domain_selection(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("categories = [")
    with pytest.raises(TaxonomyError):
        build_taxonomy(bad)
    with pytest.raises(TaxonomyError, match="no category"):
        build_taxonomy(domains=["spaceships"])
