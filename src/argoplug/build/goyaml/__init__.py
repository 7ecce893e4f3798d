"""YAML as Go's sigs.k8s.io/yaml reads and writes it: gopkg.in/yaml.v2 plus encoding/json, in Python.

`load` (yaml.v2, strict: `reader`), `decode`/`encode` (encoding/json into Go struct types,
`omitempty`: here) and `dump` (yaml.v2's emitter, byte for byte: `emitter`); `argoplug.build.argo`
calls them here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argoplug.build.goyaml.emitter import dump
from argoplug.build.goyaml.reader import bytes_text, load
from argoplug.build.goyaml.scalars import (
    _JSON_ERROR,
    _YAML_ERROR,
    GoYAMLError,
    UnmarshalTypeError,
    _format_float,
    go_quote,
    json_literal,
)

__all__ = [
    "GoField",
    "GoType",
    "GoYAMLError",
    "UnmarshalTypeError",
    "bytes_text",
    "decode",
    "dump",
    "encode",
    "go_quote",
    "json_kind",
    "json_literal",
    "load",
]


# ---- typed decoding and encoding: encoding/json with DisallowUnknownFields, and `omitempty` ---------------


@dataclass(frozen=True)
class GoField:
    """A struct field as encoding/json sees it: its JSON name, its type, and whether it is `omitempty`."""

    json: str
    type: GoType
    omitempty: bool = True


@dataclass(frozen=True)
class GoType:
    """A Go type as encoding/json decodes it.

    `kind` is one of string, bool, int32, int64, struct, ptr, slice, map, or custom (a type with its own
    UnmarshalJSON: `parse` turns the JSON value into the Go value, `zero` is its zero value). `name` is
    the type as Go's errors print it (`v1.ContainerPort`, `[]string`).
    """

    kind: str
    name: str
    elem: GoType | None = None
    fields: tuple[GoField, ...] = ()
    parse: Callable[[Any], Any] | None = field(default=None, compare=False)
    zero: Any = None


_ABSENT = object()
_INT_RANGES = {"int32": 2**31, "int64": 2**63}


def json_kind(value: Any) -> str:
    """Name the JSON kind of `value` as encoding/json's errors do: string, number, bool, array, object."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else "array" if isinstance(value, list) else "object"


class _Decoder:
    def __init__(self) -> None:
        self.saved: str | None = None

    def save(self, message: str) -> None:
        if self.saved is None:
            self.saved = message

    @staticmethod
    def type_message(what: str, type_name: str, struct: str | None, path: tuple[str, ...]) -> str:
        if struct is None:
            return f"json: cannot unmarshal {what} into Go value of type {type_name}"
        where = f"{struct}.{'.'.join(path)}"
        return f"json: cannot unmarshal {what} into Go struct field {where} of type {type_name}"

    def value(self, t: GoType, data: Any, old: Any, struct: str | None, path: tuple[str, ...]) -> Any:
        """The Go value after decoding `data` into `old` (_ABSENT: not set); _ABSENT again for a no-op."""
        if isinstance(data, float) and not math.isfinite(data) and t.kind not in ("string", "ptr"):
            raise GoYAMLError(f"{_YAML_ERROR}json: unsupported value: {_format_float(data)}")
        if t.kind == "custom":
            assert t.parse is not None
            try:
                return t.parse(data)
            except UnmarshalTypeError as exc:
                raise GoYAMLError(
                    _JSON_ERROR + self.type_message(exc.what, exc.type_name, struct, path)
                ) from None
            except GoYAMLError as exc:
                raise GoYAMLError(_JSON_ERROR + str(exc)) from None
        if data is None:
            return None if t.kind in ("ptr", "slice", "map") else old
        if t.kind == "ptr":
            assert t.elem is not None
            result = self.value(t.elem, data, _ABSENT if old in (None, _ABSENT) else old, struct, path)
            return old if result is _ABSENT else result
        if t.kind == "string" and isinstance(data, (bool, int, float)):
            # sigs.k8s.io/yaml turns a YAML number or bool into text for a string field.
            return (
                "true"
                if data is True
                else "false"
                if data is False
                else (_format_float(data) if isinstance(data, float) else str(data))
            )
        expected = {"string": str, "bool": bool, "slice": list, "map": dict, "struct": dict}.get(t.kind)
        if t.kind in _INT_RANGES:
            if isinstance(data, (int, float)) and not isinstance(data, bool):
                literal = json_literal(data)
                number = int(literal) if re.fullmatch(r"-?[0-9]+", literal) else None
                if number is None or not -_INT_RANGES[t.kind] <= number < _INT_RANGES[t.kind]:
                    self.save(self.type_message(f"number {literal}", t.name, struct, path))
                    return old
                return number
        elif expected is not None and isinstance(data, expected):
            return self.container(t, data, old, struct, path)
        self.save(self.type_message(json_kind(data), t.name, struct, path))
        return old

    def container(self, t: GoType, data: Any, old: Any, struct: str | None, path: tuple[str, ...]) -> Any:
        if t.kind == "slice":
            assert t.elem is not None
            return [self.element(t.elem, item, struct, path) for item in data]
        if t.kind == "map":
            assert t.elem is not None
            out = dict(old) if isinstance(old, dict) else {}
            for key in sorted(data):
                out[key] = self.element(t.elem, data[key], struct, path)
            return out
        if t.kind == "struct":
            return self.struct(t, data, old if isinstance(old, dict) else {}, path)
        return data

    def element(self, t: GoType, data: Any, struct: str | None, path: tuple[str, ...]) -> Any:
        result = self.value(t, data, _ABSENT, struct, path)
        return _zero_value(t) if result is _ABSENT else result

    def struct(
        self, t: GoType, data: dict[str, Any], old: dict[str, Any], path: tuple[str, ...]
    ) -> dict[str, Any]:
        out = dict(old)
        by_name = {f.json: f for f in t.fields}
        for key in sorted(data):
            spec = by_name.get(key) or next(
                (f for f in t.fields if f.json.casefold() == key.casefold()), None
            )
            if spec is None:
                self.save(f"json: unknown field {go_quote(key)}")
                continue
            result = self.value(
                spec.type,
                data[key],
                out.get(spec.json, _ABSENT),
                t.name.rsplit(".", 1)[-1],
                (*path, spec.json),
            )
            if result is not _ABSENT:
                out[spec.json] = result
        return out


def _zero_value(t: GoType) -> Any:
    """Return the zero value of `t` as `decode` represents it (a struct with no field set is `{}`)."""
    return {"string": "", "bool": False, "int32": 0, "int64": 0, "struct": {}, "custom": t.zero}.get(t.kind)


def decode(t: GoType, data: Any) -> Any:
    """Decode JSON-like `data` into Go type `t` as encoding/json does with unknown fields disallowed.

    Returns the Go value: a struct as a dict of the fields set (JSON names; keys matched case-insensitively
    as Go does), nil as None. Raises GoYAMLError with encoding/json's message (`json: unknown field "x"`,
    `json: cannot unmarshal string into Go struct field ContainerPort.ports.containerPort of type int32`),
    the first in document order, or at once for an error of a custom type.
    """
    decoder = _Decoder()
    result = decoder.value(t, data, _ABSENT, None, ())
    if decoder.saved is not None:
        raise GoYAMLError(_JSON_ERROR + decoder.saved)
    return _zero_value(t) if result is _ABSENT else result


def encode(t: GoType, value: Any) -> Any:
    """Encode the Go value `value` of type `t` to JSON-like data as encoding/json.Marshal does.

    Fields not set take their zero value; `omitempty` drops false, 0, "", nil and empty slices and maps,
    never a struct (so `resources: {}` stays).
    """
    if t.kind == "struct":
        out = {}
        for spec in t.fields:
            item = value.get(spec.json, _ABSENT)
            if item is _ABSENT:
                item = _zero_value(spec.type)
            if spec.omitempty and _is_empty(spec.type, item):
                continue
            out[spec.json] = encode(spec.type, item)
        return out
    if value is None:
        return None
    if t.kind in ("ptr", "slice", "map"):
        assert t.elem is not None
        elem = t.elem
        if t.kind == "slice":
            return [encode(elem, item) for item in value]
        if t.kind == "map":
            return {key: encode(elem, item) for key, item in value.items()}
        return encode(elem, value)
    return value


def _is_empty(t: GoType, value: Any) -> bool:
    # encoding/json's isEmptyValue; a struct (a custom type is one) is never empty.
    if t.kind in ("struct", "custom"):
        return False
    if t.kind == "ptr":
        return value is None
    if t.kind in ("slice", "map"):
        return not value
    return value in ("", False) if t.kind in ("string", "bool") else value == 0
