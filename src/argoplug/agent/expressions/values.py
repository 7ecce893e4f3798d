"""Go's view of the values expressions handle: type names, `%v` and `encoding/json` printing, JSON decoding.

`FunctionError` is the failure of a function or operator; the other modules of this package use these.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

__all__ = ["FunctionError", "fail", "from_json", "go_format", "go_json", "go_type", "is_number"]


class FunctionError(Exception):
    """A value a function or operator cannot take; the evaluator adds the expression and the position."""


def fail(message: str) -> Any:
    """Raise FunctionError(message): for use inside expressions (a lambda, a conditional)."""
    raise FunctionError(message)


def is_number(value: Any) -> bool:
    """True for int and float, not bool (a Python int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def go_type(value: Any) -> str:
    """The Go type name of `value` as Argo holds it: `string`, `int`, `float64`, `[]interface {}`, ..."""
    if value is None:
        return "<nil>"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "[]interface {}" if isinstance(value, list) else "map[string]interface {}"


def _go_float(value: float, style: str) -> str:
    """`value` in Go's shortest form: style "g" (`fmt` `%v`) or "json" (`encoding/json`)."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    point = len(digit_tuple) + int(exponent)  # digits before the decimal point
    exp = point - 1
    # strconv's shortest 'g' switches to an exponent at 1e-4 / 1e6, encoding/json at 1e-6 / 1e21.
    if (style == "g" and not -4 <= exp < 6) or (style == "json" and not 1e-6 <= abs(value) < 1e21):
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_digits = f"{abs(exp):02d}" if style == "g" or exp >= 0 else str(abs(exp))
        text = f"{mantissa}e{'-' if exp < 0 else '+'}{exp_digits}"
    elif point <= 0:
        text = "0." + "0" * -point + digits
    else:
        text = digits[:point].ljust(point, "0") + ("." + digits[point:] if point < len(digits) else "")
    return ("-" if value < 0 else "") + text


def go_format(value: Any) -> str:
    """`value` as Go's `%v` prints it: `1.5`, `1e+06`, `true`, `<nil>`, `[a b]`, `map[k:v]`."""
    if value is None or isinstance(value, bool):
        return {None: "<nil>", True: "true", False: "false"}[value]
    if isinstance(value, float):
        return _go_float(value, "g")
    if isinstance(value, list):
        return "[" + " ".join(map(go_format, value)) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


_HTML_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def go_json(value: Any, *, indent: bool = False, escape_html: bool = True, _depth: int = 0) -> str:
    """`value` as Go's `json.Marshal` writes it (keys sorted, `<>&` escaped); `indent`: `MarshalIndent` by 2.

    Raises FunctionError for NaN and infinities.
    """
    if value is None or isinstance(value, bool | int | str):
        text = json.dumps(value, ensure_ascii=False)
        for char, escaped in _HTML_ESCAPES if escape_html and isinstance(value, str) else ():
            text = text.replace(char, escaped)
        return text
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise FunctionError(f"json: unsupported value: {go_format(value)}")
        return _go_float(value, "json")

    def encode(item: Any) -> str:
        return go_json(item, indent=indent, escape_html=escape_html, _depth=_depth + 1)

    if isinstance(value, dict):
        items, brackets = (
            [f"{encode(k)}:{' ' if indent else ''}{encode(value[k])}" for k in sorted(value)],
            "{}",
        )
    else:
        items, brackets = [encode(item) for item in value], "[]"
    if not items or not indent:
        return brackets[0] + ",".join(items) + brackets[1]
    inner, outer = "\n" + "  " * (_depth + 1), "\n" + "  " * _depth
    return brackets[0] + inner + ("," + inner).join(items) + outer + brackets[1]


def from_json(text: str) -> Any:
    """Decode JSON as Go does into `interface{}`: every number a float. Raises FunctionError."""

    def reject(constant: str) -> Any:
        raise ValueError(f"invalid character '{constant[0]}' looking for beginning of value")

    try:
        return json.loads(text, parse_int=float, parse_constant=reject)
    except ValueError as exc:
        raise FunctionError(f"invalid JSON: {exc}") from None
