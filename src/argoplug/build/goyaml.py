"""YAML as Go's sigs.k8s.io/yaml reads and writes it: gopkg.in/yaml.v2 plus encoding/json, in Python.

`load` (yaml.v2, strict), `decode`/`encode` (encoding/json into Go struct types, `omitempty`) and `dump`
(yaml.v2's emitter, byte for byte); `argoplug.build.argo` calls them.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cmp_to_key
from typing import Any

import yaml
from yaml.emitter import Emitter, ScalarAnalysis
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver
from yaml.serializer import Serializer

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

_STR, _BOOL, _INT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int"
_FLOAT, _NULL = "tag:yaml.org,2002:float", "tag:yaml.org,2002:null"
_MERGE, _MAP, _SEQ = "tag:yaml.org,2002:merge", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_YAML_ERROR = "error converting YAML to JSON: "  # sigs.k8s.io/yaml unmarshal(), then jsonUnmarshal()
_JSON_ERROR = "error unmarshaling JSON: while decoding JSON: "


class GoYAMLError(Exception):
    """A YAML or JSON error, worded as sigs.k8s.io/yaml (and the Go libraries under it) word it."""


class UnmarshalTypeError(Exception):
    """A JSON value of the wrong kind for a Go type; `decode` words it with the field's path."""

    def __init__(self, what: str, type_name: str) -> None:
        super().__init__(what, type_name)
        self.what, self.type_name = what, type_name


# ---- scalars: yaml.v2's resolve.go, strconv's number formats ----------------------------------------------

_BOOLS = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_HINTS = {**dict.fromkeys("+-", "S"), **dict.fromkeys("0123456789", "D"), **dict.fromkeys("yYnNtTfFoO~", "M")}
_HINTS["."] = "."
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_FLOAT = re.compile(r"[-+]?(\d(_?\d)*(\.(\d(_?\d)*)?)?|\.\d(_?\d)*)([eE][-+]?\d(_?\d)*)?", re.ASCII)
_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d?)-(\d\d?)(?:([Tt])(\d\d?):(\d\d?):(\d\d?)(?:[.,]\d+)?(Z|[+-]\d\d:\d\d)"
    r"|( )(\d\d?):(\d\d?):(\d\d?)(?:[.,]\d+)?)?",
    re.ASCII,
)
_INT_DIGITS = {16: re.compile(r"[0-9a-fA-F]+"), 8: re.compile(r"[0-7]+"), 2: re.compile(r"[01]+")}
_INT_DIGITS[10] = re.compile(r"[0-9]+")


def _parse_int(text: str) -> int | None:
    """Parse `text` as strconv.ParseInt(text, 0, 64), else ParseUint(text, 0, 64), as yaml.v2 tries them.

    Base prefixes 0x, 0o, 0b and a leading 0 (octal) are understood; None when neither parses or fits.
    """
    sign = text[:1] if text[:1] in "+-" else ""
    body = text[len(sign) :]
    prefix = body[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        base, digits = {"0x": 16, "0o": 8, "0b": 2}[prefix], body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, digits = 8, body[1:]
    else:
        base, digits = 10, body
    if not _INT_DIGITS[base].fullmatch(digits):
        return None
    value = -int(digits, base) if sign == "-" else int(digits, base)
    if -(2**63) <= value < 2**63 or (not sign and 0 <= value < 2**64):
        return value
    return None


def _parse_float(text: str) -> float | None:
    # strconv.ParseFloat on decimal forms; an overflow is an error there (ErrRange), so not a float.
    if not _GO_FLOAT.fullmatch(text):
        return None
    value = float(text.replace("_", ""))
    return None if math.isinf(value) else value


def _is_timestamp(text: str) -> bool:
    # yaml.v2 parseTimestamp: time.Parse with its four layouts, which also check the ranges.
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return False
    year, month, day = (int(match.group(i)) for i in (1, 2, 3))
    days = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31]
    days += [30, 31, 30, 31]
    if not 1 <= month <= 12 or not 1 <= day <= days[month - 1]:
        return False
    clock = match.group(5, 6, 7) if match.group(4) else match.group(10, 11, 12)
    if clock[0] is None:
        return True
    hour, minute, second = (int(part) for part in clock)
    return hour < 24 and minute < 60 and second < 60


def _resolve(text: str) -> tuple[str, Any]:
    """Resolve a plain scalar as yaml.v2 does (resolve.go): (tag, value); timestamps stay strings."""
    hint = "N" if not text else _HINTS.get(text[0])
    if hint is None:
        return _STR, text
    if text in _BOOLS:
        return _BOOL, _BOOLS[text]
    if text in _NULLS:
        return _NULL, None
    if text in _SPECIAL_FLOATS:
        return _FLOAT, _SPECIAL_FLOATS[text]
    if hint == "." and (number := _parse_float(text)) is not None:
        return _FLOAT, number
    if hint in "DS":
        if _is_timestamp(text):
            return "timestamp", text
        plain = text.replace("_", "")
        integer = _parse_int(plain)
        if integer is not None:
            return _INT, integer
        if _YAML_FLOAT.fullmatch(plain) and (number := _parse_float(plain)) is not None:
            return _FLOAT, number
    return _STR, text


def _plain_is_string(text: str) -> bool:
    # yaml.v2 encode.go stringv: a string is written plain only if it reads back as a string.
    return _resolve(text)[0] == _STR and not (
        text[:1] in "+-0123456789" and ":" in text and _BASE60_FLOAT.fullmatch(text)
    )


def _digits(value: float) -> tuple[str, int]:
    # The shortest decimal digits of abs(value) and the decimal point's place (strconv's decimal form).
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    return text, len(text) + int(exponent)


def _fmt_e(digits: str, point: int) -> str:
    exponent = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def _fmt_f(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _format_float(value: float) -> str:
    """Format `value` as strconv.FormatFloat(value, 'g', -1, 64): `0.5`, `123456`, `1e+06`, `+Inf`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(value)
    return sign + (_fmt_e(digits, point) if not -4 <= point - 1 < 6 else _fmt_f(digits, point))


def json_literal(value: Any) -> str:
    """Return the JSON text encoding/json writes for `value` (numbers as Go writes float64: `1e-07`, `3`)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise GoYAMLError(f"json: unsupported value: {_format_float(value)}")
        if value == 0:
            return "-0" if math.copysign(1.0, value) < 0 else "0"
        sign = "-" if value < 0 else ""
        digits, point = _digits(value)
        if 1e-6 <= abs(value) < 1e21:
            return sign + _fmt_f(digits, point)
        return sign + re.sub(r"e-0(\d)$", r"e-\1", _fmt_e(digits, point))
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def go_quote(value: Any) -> str:
    """Return `value` as Go's %q / %#v show a YAML key: a quoted string, or a number or bool as is."""
    if isinstance(value, str):
        out = []
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch in "\a\b\f\n\r\t\v":
                out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
            elif ch.isprintable():
                out.append(ch)
            else:
                code = ord(ch)
                out.append(
                    f"\\x{code:02x}"
                    if code < 0x80
                    else f"\\u{code:04x}"
                    if code < 0x10000
                    else f"\\U{code:08x}"
                )
        return '"' + "".join(out) + '"'
    if value is None:
        return "<nil>"
    if isinstance(value, float):
        return _format_float(value)
    return json.dumps(value)


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


# ---- writing: yaml.v2's emitter (emitterc.go) and its key order (sorter.go) --------------------------------

_BREAKS = "\r\n\x85\u2028\u2029"


def _printable(ch: str) -> bool:
    code = ord(ch)
    return (
        code == 0x0A
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _key_less(a: str, b: str) -> bool:
    # yaml.v2 sorter.go keyList.Less for two strings: letters by code point, non-letters first, digit
    # runs by value.
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = a[i].isalpha(), b[i].isalpha()
        if a_letter and b_letter:
            return a[i] < b[i]
        if a_letter or b_letter:
            return b_letter
        a_num = b_num = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and _is_digit(a[j]):
                if a[j] != "0":
                    a_num = b_num = 1
                    break
                j -= 1
        a_end = i
        while a_end < len(a) and _is_digit(a[a_end]):
            a_num, a_end = a_num * 10 + ord(a[a_end]) - 48, a_end + 1
        b_end = i
        while b_end < len(b) and _is_digit(b[b_end]):
            b_num, b_end = b_num * 10 + ord(b[b_end]) - 48, b_end + 1
        if a_num != b_num:
            return a_num < b_num
        if a_end != b_end:
            return a_end < b_end
        return a[i] < b[i]
    return len(a) < len(b)


def _key_compare(a: str, b: str) -> int:
    return -1 if _key_less(a, b) else 1 if _key_less(b, a) else 0


_KEY_ORDER = cmp_to_key(_key_compare)


class _GoEmitter(Emitter):
    """PyYAML's emitter with yaml.v2's choices where they differ (libyaml 0.1 as ported to Go)."""

    analysis: Any

    def check_empty_document(self) -> bool:
        return False  # emitterc.go: "[Go] Huh?"

    def expect_document_end(self) -> None:
        super().expect_document_end()
        self.open_ended = False  # encode.go finish(): no "..." at the end of the stream

    def check_simple_key(self) -> bool:
        event = self.event
        if isinstance(event, ScalarEvent):
            return not self._analysis().multiline and len(event.value.encode()) <= 128
        if isinstance(event, SequenceStartEvent):
            return bool(self.check_empty_sequence())
        if isinstance(event, MappingStartEvent):
            return bool(self.check_empty_mapping())
        return isinstance(event, AliasEvent)

    def _scalar_event(self) -> ScalarEvent:
        # The emitter asks for a scalar's analysis and style only while it emits a scalar.
        assert isinstance(self.event, ScalarEvent), self.event
        return self.event

    def _analysis(self) -> Any:
        if self.analysis is None:
            self.analysis = self.analyze_scalar(self._scalar_event().value)
        return self.analysis

    def analyze_scalar(self, scalar: str) -> ScalarAnalysis:
        if not scalar:
            return ScalarAnalysis(scalar, True, False, False, True, True, True, False)
        block = flow = line_breaks = special = False
        leading_space = leading_break = trailing_space = trailing_break = break_space = space_break = False
        if scalar.startswith(("---", "...")):
            block = flow = True
        preceded_by_whitespace, previous_space, previous_break = True, False, False
        last = len(scalar) - 1
        for i, ch in enumerate(scalar):
            followed_by_whitespace = i == last or scalar[i + 1] in " \t"
            if i == 0:
                if ch in "#,[]{}&*!|>'\"%@`":
                    flow = block = True
                elif ch in "?:":
                    flow, block = True, block or followed_by_whitespace
                elif ch == "-" and followed_by_whitespace:
                    flow = block = True
            elif ch in ",?[]{}":
                flow = True
            elif ch == ":":
                flow, block = True, block or followed_by_whitespace
            elif ch == "#" and preceded_by_whitespace:
                flow = block = True
            special = special or not _printable(ch)
            if ch == " ":
                leading_space, trailing_space = leading_space or i == 0, trailing_space or i == last
                break_space = break_space or previous_break
                previous_space, previous_break = True, False
            elif ch in _BREAKS:
                line_breaks = True
                leading_break, trailing_break = leading_break or i == 0, trailing_break or i == last
                space_break = space_break or previous_space
                previous_space, previous_break = False, True
            else:
                previous_space = previous_break = False
            preceded_by_whitespace = ch in " \t\0" or ch in _BREAKS
        flow_plain = block_plain = single = block_ok = True
        if leading_space or leading_break or trailing_space or trailing_break or line_breaks:
            flow_plain = block_plain = False
        if trailing_space:
            block_ok = False
        if break_space:
            flow_plain = block_plain = single = False
        if space_break or special:
            flow_plain = block_plain = single = block_ok = False
        flow_plain = flow_plain and not flow
        block_plain = block_plain and not block
        return ScalarAnalysis(scalar, False, line_breaks, flow_plain, block_plain, single, True, block_ok)

    def choose_scalar_style(self) -> str:
        analysis = self._analysis()
        style = self._scalar_event().style or ""
        if self.simple_key_context and analysis.multiline:
            style = '"'
        if style == "":
            plain = analysis.allow_flow_plain if self.flow_level else analysis.allow_block_plain
            if not plain or (not analysis.scalar and (self.flow_level or self.simple_key_context)):
                style = "'"
        if style == "'" and not analysis.allow_single_quoted:
            style = '"'
        if style in ("|", ">") and (not analysis.allow_block or self.flow_level or self.simple_key_context):
            style = '"'
        return style

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        self.write_indicator('"', True)
        spaces = False
        for i, ch in enumerate(text):
            if not _printable(ch) or ch == "\ufeff" or ch in _BREAKS or ch in '"\\':
                self._put("\\" + _escape(ch))
                spaces = False
            elif ch == " ":
                if split and not spaces and self.column > self.best_width and 0 < i < len(text) - 1:
                    self.write_indent()
                    if text[i + 1] == " ":
                        self._put("\\")
                else:
                    self._put(" ")
                spaces = True
            else:
                self._put(ch)
                spaces = False
        self.write_indicator('"', False)

    def _put(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data)


_ESCAPES = {"\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r"}
_ESCAPES.update({"\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_", "\u2028": "L", "\u2029": "P"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    return f"x{code:02X}" if code <= 0xFF else f"u{code:04X}" if code <= 0xFFFF else f"U{code:08X}"


class _Dumper(_GoEmitter, Serializer, BaseResolver):
    def __init__(self, stream: Any, **_options: Any) -> None:
        Emitter.__init__(self, stream, indent=2, width=80, allow_unicode=True, line_break="\n")
        Serializer.__init__(self)
        BaseResolver.__init__(self)


def _scalar(value: str, style: str | None = None) -> ScalarNode:
    return ScalarNode(_STR, value, style=style)


def _node(data: Any) -> Node:
    # yaml.v2 marshals what sigs.k8s.io/yaml read back from JSON: strings, ints, floats, bools, nil.
    if isinstance(data, Mapping):
        items = sorted(
            ((_key_text(key), value) for key, value in data.items()), key=lambda kv: _KEY_ORDER(kv[0])
        )
        return MappingNode(_MAP, [(_node(key), _node(value)) for key, value in items], flow_style=False)
    if isinstance(data, (list, tuple)):
        return SequenceNode(_SEQ, [_node(item) for item in data], flow_style=False)
    if isinstance(data, str):
        style = "|" if "\n" in data else None if _plain_is_string(data) else '"'
        return _scalar(data, style)
    if data is None or isinstance(data, bool):
        return _scalar(json.dumps(data))
    if isinstance(data, int):
        return _scalar(str(data) if -(2**63) <= data < 2**64 else _format_float(float(data)))
    if isinstance(data, float):
        integer = _parse_int(json_literal(data))
        return _scalar(str(integer) if integer is not None else _format_float(data))
    raise TypeError(f"cannot write a {type(data).__name__} as YAML: {data!r}")


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else json_literal(key)


def dump(data: Any) -> str:
    """Write JSON-like `data` as sigs.k8s.io/yaml.Marshal does (yaml.v2 after a JSON round trip).

    Keys sorted in yaml.v2's order, block style, sequences not indented under their key, strings quoted
    only when they would read back as something else (`"true"`, `"1"`, `""`, `'>= v3.3'`), multi-line
    strings as literal blocks (`|`, `|-`, `|+`), long lines folded at 80 columns, `{}` and `[]` when empty.
    """
    return str(yaml.serialize(_node(data), Dumper=_Dumper))
