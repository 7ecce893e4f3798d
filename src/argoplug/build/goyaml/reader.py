"""Reading for `goyaml`: yaml.v2's strict Unmarshal, then sigs.k8s.io/yaml's YAML-to-JSON step: `load`.

`argoplug.build.goyaml` re-exports `load` and `bytes_text`; `argoplug.build.argo` calls them there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from argoplug.build.goyaml.scalars import (
    _BOOL,
    _FLOAT,
    _INT,
    _MERGE,
    _NULL,
    _STR,
    _YAML_ERROR,
    GoYAMLError,
    _format_float,
    _parse_float,
    _parse_int,
    _resolve,
    go_quote,
    json_literal,
)

__all__ = ["bytes_text", "load"]


# ---- reading: yaml.v2's Unmarshal (strict), then sigs.k8s.io/yaml's YAML-to-JSON step ---------------------

_CLoader = getattr(yaml, "CSafeLoader", None)
_BaseLoader: type = _CLoader if _CLoader is not None else yaml.SafeLoader


class _Loader(_BaseLoader):
    """yaml.v2's scalar resolution (YAML 1.1 as Go reads it) and its strict duplicate-key check."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            if value == "<<":
                return _MERGE
            tag = _resolve(value)[0]
            return _STR if tag == "timestamp" else tag
        return str(super().resolve(kind, value, implicit))

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        own = {id(key) for key, _ in node.value}
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        explicit: set[Any] = set()
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise GoYAMLError(f"yaml: invalid map key: {go_quote(json_literal(key))}")
            if isinstance(key, bytes):
                key = bytes_text(key)
            value = self.construct_object(value_node, deep=deep)
            if id(key_node) in own:
                if key in explicit:
                    line = value_node.start_mark.line + 1
                    self.duplicates.append(f"line {line}: key {go_quote(key)} already set in map")
                    continue
                explicit.add(key)
            mapping[key] = value
        return mapping


def _construct_scalar(tag: str) -> Callable[[Any, Node], Any]:
    def construct(loader: Any, node: Node) -> Any:
        value = loader.construct_scalar(node)
        resolved_tag, resolved = _resolve(value)
        if resolved_tag == tag:
            return resolved
        if tag == _INT and (integer := _parse_int(value.replace("_", ""))) is not None:
            return integer
        if tag == _FLOAT and (number := _parse_float(value)) is not None:
            return number
        if tag == _NULL:
            return None
        raise GoYAMLError(f"yaml: cannot decode {go_quote(value)} as {tag.rsplit(':', 1)[-1]}")

    return construct


for _tag in (_BOOL, _INT, _FLOAT, _NULL):
    _Loader.add_constructor(_tag, _construct_scalar(_tag))
for _tag in (
    "tag:yaml.org,2002:timestamp",
    _MERGE,
):  # a timestamp stays text; so does `<<` that merges nothing
    _Loader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))


def bytes_text(data: bytes) -> str:
    """Return `data` as text the way a Go string reaches JSON: each byte that is not UTF-8 becomes U+FFFD."""
    return re.sub("[\udc80-\udcff]", "\ufffd", data.decode("utf-8", "surrogateescape"))


def _syntax_error(exc: yaml.MarkedYAMLError) -> str:
    # yaml.v2 decode.go parser.fail(): "yaml: line N: problem" (a scanner error's line counted from 1).
    line = 0
    problem, context = exc.problem_mark, exc.context_mark
    if problem is not None and problem.line != 0:
        line = problem.line + (1 if isinstance(exc, yaml.scanner.ScannerError) else 0)
    elif context is not None and context.line != 0:
        line = context.line
    where = f"line {line}: " if line else ""
    return f"yaml: {where}{exc.problem or 'unknown problem parsing YAML content'}"


def load(text: str) -> Any:
    """Read the first YAML document of `text` as yaml.v2's UnmarshalStrict and sigs.k8s.io/yaml read it.

    Returns JSON-like data: map keys become strings (`1` → "1", `true` → "true"), timestamps stay strings,
    `yes`/`on` are booleans (YAML 1.1). Raises GoYAMLError for a syntax error or a duplicate key, worded as
    yaml.v2 words it (`yaml: unmarshal errors:\\n  line 4: key "name" already set in map`).
    """
    loader = _Loader(text)
    try:
        data = loader.construct_document(loader.get_node()) if loader.check_node() else None
    except yaml.MarkedYAMLError as exc:
        raise GoYAMLError(_YAML_ERROR + _syntax_error(exc)) from exc
    except yaml.YAMLError as exc:
        raise GoYAMLError(f"{_YAML_ERROR}yaml: {exc}") from exc
    except GoYAMLError as exc:
        raise GoYAMLError(_YAML_ERROR + str(exc)) from exc
    finally:
        loader.dispose()
    if loader.duplicates:
        raise GoYAMLError(_YAML_ERROR + "yaml: unmarshal errors:\n  " + "\n  ".join(loader.duplicates))
    try:
        return _jsonable(data)
    except GoYAMLError as exc:
        raise GoYAMLError(_YAML_ERROR + str(exc)) from exc


def _jsonable(data: Any) -> Any:
    # sigs.k8s.io/yaml convertToJSONableObject: JSON has string keys only.
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key is None:
                raise GoYAMLError(f"unsupported map key of type: %!s(<nil>), key: <nil>, value: {value!r}")
            text = key if isinstance(key, str) else _format_float(key) if isinstance(key, float) else None
            out[text if text is not None else json_literal(key)] = _jsonable(value)
        return out
    if isinstance(data, (list, tuple)):
        return [_jsonable(item) for item in data]
    if isinstance(data, (set, frozenset)):
        return {str(item): None for item in data}
    if isinstance(data, bytes):
        return bytes_text(data)
    return data
