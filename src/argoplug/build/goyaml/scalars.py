"""Go's scalars for `goyaml`: yaml.v2's plain-scalar resolution, strconv's number formats, %q quoting.

Also the errors (`GoYAMLError`, `UnmarshalTypeError`); the package's `reader` and `emitter` and its API
import from here; the public names are re-exported by `argoplug.build.goyaml`.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["GoYAMLError", "UnmarshalTypeError", "go_quote", "json_literal"]

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
