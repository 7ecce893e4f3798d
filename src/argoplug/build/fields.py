"""Decoded YAML checked against a msgspec Struct field by field, each problem named by its path in words.

`argoplug.build.bundle.parse_bundle` calls `type_problems` before it converts: msgspec checks the types,
this module says which field (`namespaces[1]`, `serviceAccount.iamRoleArn`) and what was expected, and
lists every problem rather than the first.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any

import msgspec

from argoplug.plugin import short_repr

__all__ = ["show", "type_problems"]

# msgspec's type names in words.
_WORDS = {
    "int": "an integer",
    "str": "a string",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
}


def type_problems(
    raw: Mapping[str, Any],
    struct: type[msgspec.Struct],
    *,
    expected: Mapping[str, str] | None = None,
    prefix: str = "",
) -> list[str]:
    """List every field of `raw` that is missing, unknown, or not of its type in `struct`.

    Each problem reads `<path>: expected <what>, got <value>`; `expected` maps a field path to the words
    for it (else the type's words). Nested Structs and mappings are checked key by key, so the path names
    the key. Returns [] when `msgspec.convert(raw, struct)` would succeed on types.
    """
    expected = expected or {}
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    hints = typing.get_type_hints(struct)
    problems: list[str] = []
    known = [field.encode_name for field in info.fields]
    for field in info.fields:
        path = f"{prefix}{field.encode_name}"
        if field.encode_name not in raw:
            if field.required:
                problems.append(f"{path}: required ({expected.get(path, 'see the README')})")
            continue
        value = raw[field.encode_name]
        annotation = hints[field.name]
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            if isinstance(value, Mapping):
                problems.extend(type_problems(value, annotation, expected=expected, prefix=f"{path}."))
            else:
                problems.append(f"{path}: expected a mapping, got {show(value)}")
            continue
        problems.extend(_value_problems(value, annotation, path, expected))
    for name in raw:
        if name not in known:
            owner = prefix[:-1] if prefix else "the bundle"
            problems.append(f"{prefix}{name}: not a field of {owner} (expected one of: {', '.join(known)})")
    return problems


def show(value: Any) -> str:
    """Return `value` as a problem message quotes it: its repr, cut to 80 characters."""
    return short_repr(value, 80)


def _value_problems(value: Any, annotation: Any, path: str, expected: Mapping[str, str]) -> list[str]:
    if typing.get_origin(annotation) is dict and isinstance(value, Mapping):
        key_type, item_type = typing.get_args(annotation)
        found: list[str] = []
        for key, item in value.items():
            try:
                msgspec.convert(key, key_type)
            except msgspec.ValidationError:
                found.append(f"{path}: keys must be strings, got {show(key)}")
                continue
            found.extend(_value_problems(item, item_type, f"{path}.{key}", expected))
        return found
    try:
        msgspec.convert(value, annotation)
    except msgspec.ValidationError as exc:
        return [_problem(exc, path, value, expected)]
    return []


def _problem(exc: msgspec.ValidationError, path: str, value: Any, expected: Mapping[str, str]) -> str:
    # msgspec says e.g. "Expected `str`, got `int` - at `$[1]`": the part after `$` extends the path.
    message, _, where = str(exc).partition(" - at `$")
    where = where.rstrip("`")
    inner: Any = value
    for index, attr in re.findall(r"\[(\d+)\]|\.([^.\[]+)", where):
        try:
            inner = inner[int(index)] if index else inner[attr]
        except (KeyError, IndexError, TypeError):
            break
    full = f"{path}{where}"
    words = expected.get(full)
    if words is None:
        kind = re.match(r"Expected `([^`]+)`", message)
        if kind:
            kinds = [k.strip() for k in kind.group(1).split("|")]
            if "int" in kinds and "float" in kinds:
                kinds.remove("int")
            words = " or ".join(_WORDS.get(k, k) for k in kinds)
        elif message.startswith("Invalid enum value"):
            words = "one of the documented values"
        else:
            words = message[0].lower() + message[1:]
    return f"{full}: expected {words}, got {show(inner)}"
