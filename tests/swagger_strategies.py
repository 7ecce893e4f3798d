"""Hypothesis strategies for request bodies, built from Argo's executor OpenAPI spec.

`tests/vectors/executor-swagger.yml` is argoproj/argo-workflows `pkg/plugins/executor/swagger.yml` (as in
the shared vectors): `ExecuteTemplateArgs` and every type it uses. hypothesis-jsonschema cannot resolve
its recursive references (Template → steps → inline Template), so `from_definition` walks it itself,
cutting recursion at `depth` (deeper references give `{}`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

SWAGGER = Path(__file__).parent / "vectors" / "executor-swagger.yml"


@cache
def definitions() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(SWAGGER.read_text())["definitions"]
    return found


# Texts as Argo's fields hold them, with some non-ASCII and control characters among them.
TEXTS = st.text(st.characters(codec="utf-8"), max_size=12)
NUMBERS = st.one_of(
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.integers(min_value=2**64)
)


def from_schema(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    """Values of one swagger schema: objects with any subset of their properties."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_definition(name, depth + 1)
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties") or {}
        if not properties:  # Plugin, Item, free-form maps: any JSON object
            return st.dictionaries(TEXTS, json_values(), max_size=3)
        optional = {
            name: st.deferred(lambda s=sub: from_schema(s, depth)) for name, sub in properties.items()
        }
        return st.fixed_dictionaries({}, optional=optional)
    if kind == "array":
        return st.lists(from_schema(schema.get("items") or {}, depth), max_size=2)
    if kind == "string":
        return TEXTS
    if kind == "integer":
        return st.integers(min_value=-(2**63), max_value=2**63 - 1)
    if kind == "number":
        return NUMBERS
    if kind == "boolean":
        return st.booleans()
    return json_values()


def from_definition(name: str, depth: int = 0) -> st.SearchStrategy[Any]:
    if depth > 4:
        return st.just({})
    return from_schema(definitions()[name], depth)


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, a few levels deep."""
    scalars = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXTS, inner, max_size=3)),
        max_leaves=8,
    )


def execute_template_args() -> st.SearchStrategy[dict[str, Any]]:
    """A template.execute body: `ExecuteTemplateArgs` with a workflow and a template."""
    return st.fixed_dictionaries(
        {"workflow": from_definition("Workflow", 1), "template": from_definition("Template", 1)}
    )
