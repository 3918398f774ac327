"""The configurable aspect taxonomy: categories, the domains they belong to, and their terms.

A taxonomy starts from the built-in table (:mod:`sentiflow.models.aspects.lexicon_data`) or,
when a file is given, from that file instead (TOML or JSON, the same shape as the built-in
table under a ``categories`` key). Inline categories from the settings are merged on top: their
terms extend the category's lists per language, their ``domains`` (if given) replace it.
``domains`` then keeps only categories of those domains (e.g. ``["restaurant"]``).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiflow.models.aspects.lexicon_data import BUILTIN_CATEGORIES

#: The languages the built-in lists cover (those of the labelled data).
LANGUAGES = ("ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ms", "pt", "zh")


class TaxonomyError(ValueError):
    """A taxonomy file or inline table is malformed (the message names the entry)."""


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    domains: tuple[str, ...]
    #: language -> lower-case terms (no duplicates, in the order given).
    terms: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Taxonomy:
    categories: tuple[Category, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({lang for c in self.categories for lang in c.terms}))

    def terms(self, language: str) -> dict[str, str]:
        """term -> category for ``language``; a term listed under two categories keeps the
        first (table order), so a lookup is never ambiguous."""
        out: dict[str, str] = {}
        for category in self.categories:
            for term in category.terms.get(language, ()):
                out.setdefault(term, category.name)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"categories": {c.name: {"domains": list(c.domains),
                                        "terms": {k: list(v) for k, v in c.terms.items()}}
                               for c in self.categories}}


def _clean_terms(where: str, raw: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise TaxonomyError(f"{where}.terms: must be a table of language -> list of terms")
    out: dict[str, tuple[str, ...]] = {}
    for lang, terms in raw.items():
        if not isinstance(lang, str) or not lang.isalpha() or len(lang) not in (2, 3):
            raise TaxonomyError(f"{where}.terms: {lang!r} is not a language code")
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise TaxonomyError(f"{where}.terms.{lang}: must be a list of strings")
        cleaned = [" ".join(t.lower().split()) for t in terms]
        if any(not t for t in cleaned):
            raise TaxonomyError(f"{where}.terms.{lang}: terms must not be blank")
        out[lang.lower()] = tuple(dict.fromkeys(cleaned))
    return out


def _category(name: str, raw: object) -> Category:
    where = f"categories.{name!r}"
    if not name.strip():
        raise TaxonomyError("category names must not be blank")
    if not isinstance(raw, Mapping):
        raise TaxonomyError(f"{where}: must be a table with 'terms' (and optional 'domains')")
    unknown = set(raw) - {"terms", "domains"}
    if unknown:
        raise TaxonomyError(f"{where}: unknown key(s) {sorted(unknown)}")
    domains = raw.get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise TaxonomyError(f"{where}.domains: must be a list of strings")
    return Category(name.strip(), tuple(domains), _clean_terms(where, raw.get("terms", {})))


def parse_categories(table: Mapping[str, object]) -> list[Category]:
    """Categories from a ``{name: {domains, terms}}`` mapping, validated."""
    return [_category(str(name), raw) for name, raw in table.items()]


def read_taxonomy_file(path: Path) -> list[Category]:
    """Categories from a TOML or JSON file with a top-level ``categories`` table."""
    try:
        text = path.read_bytes()
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(
            text.decode("utf-8"))
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy file {path}: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError and JSONDecodeError
        raise TaxonomyError(f"{path}: {exc}") from None
    categories = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(categories, dict) or not categories:
        raise TaxonomyError(f"{path}: needs a non-empty 'categories' table")
    return parse_categories(categories)


def build_taxonomy(path: Path | None = None,
                   inline: Mapping[str, object] | None = None,
                   domains: Iterable[str] = ()) -> Taxonomy:
    """The effective taxonomy (see module docstring)."""
    base = read_taxonomy_file(path) if path is not None else parse_categories(
        dict(BUILTIN_CATEGORIES))
    merged: dict[str, Category] = {c.name: c for c in base}
    for extra in parse_categories(inline or {}):
        old = merged.get(extra.name)
        if old is None:
            merged[extra.name] = extra
            continue
        terms = {lang: tuple(dict.fromkeys((*old.terms.get(lang, ()), *extra.terms.get(lang, ()))))
                 for lang in {*old.terms, *extra.terms}}
        merged[extra.name] = Category(old.name, extra.domains or old.domains, terms)
    wanted = set(domains)
    kept = tuple(c for c in merged.values()
                 if not wanted or not c.domains or wanted.intersection(c.domains))
    if not kept:
        raise TaxonomyError(f"no category belongs to the domains {sorted(wanted)}")
    return Taxonomy(kept)


def default_taxonomy() -> Taxonomy:
    return build_taxonomy()
