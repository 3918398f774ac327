"""Hypothesis strategies generated from the node's published OpenAPI document.

Written here rather than taken from hypothesis-jsonschema: its last release (0.23.1) fails on
the hypothesis this project runs (``'many' object has no attribute 'more'`` on any object
schema). The subset below is what pydantic emits for request bodies: ``$ref``, ``anyOf``,
``enum``, objects with ``properties`` / ``required`` / ``additionalProperties: false``, arrays
with ``minItems`` / ``maxItems``, strings with ``minLength`` / ``maxLength`` / ``pattern``,
booleans, numbers, null. An unknown keyword fails loudly (a schema the generator does not
understand would otherwise yield bodies it only believes valid).

:func:`invalid_bodies` mutates valid ones (a required field dropped, an unknown field added, a
value of the wrong JSON type, not an object at all, at the top or inside a nested object); each
mutation is checked against the schema with ``jsonschema`` and discarded if it happens to be
valid after all, so the test can assert "invalid per the published document => 4xx".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
from hypothesis import assume
from hypothesis import strategies as st

JSON = dict[str, Any]

#: Keywords that only document (they constrain nothing the generator must honour).
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "format"})
_HANDLED = frozenset({"$ref", "anyOf", "enum", "const", "type", "properties", "required",
                      "additionalProperties", "items", "minItems", "maxItems", "minLength",
                      "maxLength", "pattern", "minimum", "maximum"})

json_scalars = st.none() | st.booleans() | st.integers() | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=6)
#: One value of each JSON type: at least one is the wrong type for any typed field.
WRONG_TYPES: tuple[object, ...] = (7, 2.5, True, None, "a string", [], {}, [1, "x"],
                                   {"k": "v"})


class SchemaDocument:
    """A request schema from the OpenAPI document, with its ``components`` for ``$ref``."""

    def __init__(self, spec: JSON, schema: JSON) -> None:
        self.components: JSON = spec.get("components", {})
        self.schema = schema
        root = {**schema, "components": self.components}
        self._validator = jsonschema.Draft202012Validator(root)

    def is_valid(self, body: object) -> bool:
        return bool(self._validator.is_valid(body))

    def resolve(self, node: JSON) -> JSON:
        while "$ref" in node:
            ref: str = node["$ref"]
            if not ref.startswith("#/components/schemas/"):
                raise ValueError(f"unsupported $ref {ref!r}")
            node = self.components["schemas"][ref.rsplit("/", 1)[-1]]
        return node

    def strategy(self, node: JSON | None = None) -> st.SearchStrategy[Any]:
        """Values valid against ``node`` (default: the whole request schema)."""
        node = self.resolve(self.schema if node is None else node)
        unknown = set(node) - _HANDLED - _ANNOTATIONS
        if unknown:
            raise ValueError(f"schema keywords the generator does not handle: {unknown}")
        if "anyOf" in node:
            return st.one_of([self.strategy(option) for option in node["anyOf"]])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        if "const" in node:
            return st.just(node["const"])
        kind = node.get("type")
        makers: dict[str | None, Callable[[JSON], st.SearchStrategy[Any]]] = {
            "object": self._object, "array": self._array, "string": _string,
            "boolean": lambda _: st.booleans(), "null": lambda _: st.none(),
            "integer": lambda n: st.integers(n.get("minimum"), n.get("maximum")),
            "number": lambda n: st.floats(n.get("minimum"), n.get("maximum"),
                                          allow_nan=False, allow_infinity=False),
            None: lambda _: json_values,
        }
        if kind not in makers:
            raise ValueError(f"unsupported type {kind!r}")
        generated = makers[kind](node)
        if node.get("default") is not None:  # the documented default, often: realistic bodies
            return st.just(node["default"]) | generated
        return generated

    def _object(self, node: JSON) -> st.SearchStrategy[JSON]:
        props: JSON = node.get("properties", {})
        required = set(node.get("required", ()))
        if node.get("additionalProperties", True) is not False:
            raise ValueError("only closed objects (additionalProperties: false) are handled")
        return st.fixed_dictionaries(
            {k: self.strategy(v) for k, v in props.items() if k in required},
            optional={k: self.strategy(v) for k, v in props.items() if k not in required})

    def _array(self, node: JSON) -> st.SearchStrategy[list[Any]]:
        low = node.get("minItems", 0)
        return st.lists(self.strategy(node.get("items", {})), min_size=low,
                        max_size=min(node.get("maxItems", low + 4), low + 4))

    def objects_in(self, node: JSON, body: object, path: tuple[str | int, ...] = ()
                   ) -> list[tuple[tuple[str | int, ...], JSON]]:
        """Every (path, object schema) of an object inside ``body``, the top one first."""
        node = self.resolve(node)
        if "anyOf" in node:
            for option in node["anyOf"]:
                if jsonschema.Draft202012Validator(
                        {**option, "components": self.components}).is_valid(body):
                    return self.objects_in(option, body, path)
            return []
        found: list[tuple[tuple[str | int, ...], JSON]] = []
        if node.get("type") == "object" and isinstance(body, dict):
            found.append((path, node))
            for key, sub in node.get("properties", {}).items():
                if key in body:
                    found += self.objects_in(sub, body[key], (*path, key))
        elif node.get("type") == "array" and isinstance(body, list):
            for i, item in enumerate(body):
                found += self.objects_in(node.get("items", {}), item, (*path, i))
        return found


def _string(node: JSON) -> st.SearchStrategy[str]:
    low, high = node.get("minLength", 0), node.get("maxLength")
    if "pattern" in node:
        pattern: str = node["pattern"]
        return st.from_regex(pattern, fullmatch=True).filter(
            lambda s: low <= len(s) and (high is None or len(s) <= high))
    return st.text(min_size=low, max_size=min(high if high is not None else low + 40,
                                              low + 40))


def _get(body: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        body = body[part]
    return body


@st.composite
def invalid_bodies(draw: st.DrawFn, doc: SchemaDocument) -> object:
    """A valid body with one mutation that makes it invalid against the schema."""
    kind = draw(st.sampled_from(["not_object", "drop_required", "unknown_field",
                                 "wrong_type"]))
    if kind == "not_object":
        return draw(st.sampled_from([[], [1], "text", 5, None, True]))
    body = draw(doc.strategy())
    path, node = draw(st.sampled_from(doc.objects_in(doc.schema, body)))
    target: JSON = _get(body, path)
    if kind == "drop_required":
        present = [k for k in node.get("required", ()) if k in target]
        assume(present)
        del target[draw(st.sampled_from(present))]
    elif kind == "unknown_field":
        name = draw(st.text(min_size=1, max_size=10).filter(
            lambda k: k not in node.get("properties", {})))
        target[name] = draw(json_values)
    else:
        assume(target)
        key = draw(st.sampled_from(sorted(target)))
        target[key] = draw(st.sampled_from(WRONG_TYPES))
    assume(not doc.is_valid(body))
    return body
