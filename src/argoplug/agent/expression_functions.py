"""The functions `{{=...}}` expressions call, and Go's ways of printing values; `expressions` uses them.

expr-lang's builtins (`trim`, `int`, `toJSON`, ...), Argo's own (`asInt`, `asFloat`, `jsonpath`, `toJson`,
from `util/expr/env/env.go`) and the usual `sprig.*` helpers, over None, bool, int, float, str, list, dict.
`go_format` prints a value as Go's `fmt` `%v` does, `go_json` as `encoding/json` does.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

__all__ = [
    "FUNCTIONS",
    "SPRIG",
    "UNSUPPORTED",
    "Function",
    "FunctionError",
    "from_json",
    "go_format",
    "go_json",
    "go_type",
    "is_number",
    "jsonpath",
    "to_float",
    "to_int",
]


class FunctionError(Exception):
    """A value a function or operator cannot take; `expressions` adds the expression and the position."""


@dataclasses.dataclass(frozen=True)
class Function:
    """A function of the language: `call(*args)` takes `min_args` to `max_args` (None: any) arguments."""

    name: str
    call: Callable[..., Any]
    min_args: int
    max_args: int | None


FUNCTIONS: dict[str, Function] = {}
SPRIG: dict[str, Function] = {}
# Functions Argo's expressions have that this agent does not: named "unsupported" rather than "unknown".
UNSUPPORTED = frozenset(
    ["now", "date", "duration", "timezone", "groupBy", "sortBy", "reduce", "splitAfter", "mean", "median"]
)


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


def _fail(message: str) -> Any:
    raise FunctionError(message)


_KINDS: dict[str, tuple[Any, str]] = {
    "s": (str, "string"),
    "i": (int, "int"),
    "l": (list, "[]interface {}"),
    "m": (dict, "map[string]interface {}"),
    "a": (object, ""),
}


def _define(
    table: dict[str, Function], names: str, fn: Callable[..., Any], kinds: str = "s", **arity: int
) -> None:
    """Add `fn` as each of `names`, one kind letter an argument: s(tr), i(nt), l(ist), m(ap) or a(ny).

    It takes one argument a letter, `min_args` of them at least; `variadic=1`: any more, of the last kind.
    """
    min_args = arity.get("min_args", len(kinds))
    for name in names.split():
        shown = f"sprig.{name}" if table is SPRIG else name

        def call(*args: Any, _shown: str = shown) -> Any:
            for index, arg in enumerate(args):
                kind, go_name = _KINDS[kinds[min(index, len(kinds) - 1)]]
                if not isinstance(arg, kind) or (isinstance(arg, bool) and kind is int):
                    _fail(f"cannot use {go_type(arg)} as argument (type {go_name}) to call {_shown}")
            return fn(*args)

        table[name] = Function(shown, call, min_args, None if arity.get("variadic") else len(kinds))


def to_int(value: Any) -> int:
    """expr's `int()` (Argo's `asInt`): floats truncate, strings parse as `strconv.Atoi` does."""
    if is_number(value) or (isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value)):
        return int(value)
    return _fail(f"invalid operation: int({value if isinstance(value, str) else go_type(value)})")


_GO_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.I)


def to_float(value: Any) -> float:
    """expr's `float()` (Argo's `asFloat`): numbers convert, strings parse as `strconv.ParseFloat` does."""
    if is_number(value) or (isinstance(value, str) and _GO_FLOAT.fullmatch(value)):
        return float(value)
    return _fail(f"invalid operation: float({value if isinstance(value, str) else go_type(value)})")


def _number(name: str, fn: Callable[[Any], Any] = lambda x: x) -> Callable[[Any], Any]:
    return lambda x: fn(x) if is_number(x) else _fail(f"invalid argument for {name} (type {go_type(x)})")


def _whole(rounding: Callable[[float], int], value: float) -> float:
    """Go's math.Ceil/Floor: a float, and infinities and NaN as they are."""
    return float(rounding(value)) if math.isfinite(value) else float(value)


def _numbers(name: str, args: tuple[Any, ...]) -> list[Any]:
    return [_number(name)(item) for arg in args for item in (arg if isinstance(arg, list) else [arg])]


def _count(count: int) -> int:
    """A repeat count: Go panics below 0, and no workflow needs ten million copies."""
    if count < 0:
        _fail("strings: negative Repeat count")
    return count if count <= 10_000_000 else _fail(f"a repeat count of {count} is too large")


def _split(text: str, separator: str, limit: int = -1) -> list[str]:
    """Go's `strings.SplitN`: a limit of n keeps at most n parts, 0 none, a negative one all."""
    if limit == 0:
        return []
    if separator == "":
        parts = list(text)
        return (
            parts if limit < 0 or limit >= len(parts) else [*parts[: limit - 1], "".join(parts[limit - 1 :])]
        )
    return text.split(separator, limit - 1 if limit > 0 else -1)


def _join(items: list[Any], separator: str = "") -> str:
    return separator.join(x if isinstance(x, str) else _fail(f"cannot join a {go_type(x)}") for x in items)


def _get(container: Any, key: Any) -> Any:
    """expr's `get`: the item at `key`, or nil where `container[key]` would fail."""
    if isinstance(container, dict):
        return container.get(key) if isinstance(key, str) else None
    if isinstance(container, list) and is_number(key) and -len(container) <= int(key) < len(container):
        return container[int(key)]
    return None


def _type(value: Any) -> str:
    for kind, name in ((type(None), "nil"), (bool, "bool"), (int, "int"), (float, "float"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "array" if isinstance(value, list) else "map"


def _b64decode(text: str, *, strict: bool) -> str:
    try:
        return base64.b64decode(text, validate=True).decode()
    except ValueError as exc:
        return _fail(f"illegal base64 data: {exc}") if strict else str(exc)  # sprig returns the error text


# expr-lang's builtins (github.com/expr-lang/expr, builtin/) and Argo's (util/expr/env/env.go).
_define(
    FUNCTIONS,
    "len",
    lambda v: (
        len(v) if isinstance(v, str | list | dict) else _fail(f"invalid argument for len (type {go_type(v)})")
    ),
    "a",
)
_define(FUNCTIONS, "int asInt", to_int, "a")
_define(FUNCTIONS, "float asFloat", to_float, "a")
_define(FUNCTIONS, "string", go_format, "a")
_define(FUNCTIONS, "abs", _number("abs", abs), "a")
_define(FUNCTIONS, "ceil", _number("ceil", lambda x: _whole(math.ceil, x)), "a")
_define(FUNCTIONS, "floor", _number("floor", lambda x: _whole(math.floor, x)), "a")
_define(
    FUNCTIONS, "round", _number("round", lambda x: math.copysign(_whole(math.floor, abs(x) + 0.5), x)), "a"
)
_define(FUNCTIONS, "max", lambda *a: max(_numbers("max", a), default=None), "a", variadic=1)
_define(FUNCTIONS, "min", lambda *a: min(_numbers("min", a), default=None), "a", variadic=1)
_define(FUNCTIONS, "sum", lambda a: sum(_numbers("sum", (a,))), "l")
_define(FUNCTIONS, "trim", lambda s, cut=None: s.strip(cut), "ss", min_args=1)
_define(FUNCTIONS, "trimPrefix", str.removeprefix, "ss")
_define(FUNCTIONS, "trimSuffix", str.removesuffix, "ss")
_define(FUNCTIONS, "upper", str.upper)
_define(FUNCTIONS, "lower", str.lower)
_define(FUNCTIONS, "split", _split, "ssi", min_args=2)
_define(FUNCTIONS, "replace", str.replace, "sss")
_define(FUNCTIONS, "repeat", lambda s, n: s * _count(n), "si")
_define(FUNCTIONS, "indexOf", str.find, "ss")
_define(FUNCTIONS, "lastIndexOf", str.rfind, "ss")
_define(FUNCTIONS, "hasPrefix", str.startswith, "ss")
_define(FUNCTIONS, "hasSuffix", str.endswith, "ss")
_define(FUNCTIONS, "join", _join, "ls", min_args=1)
_define(FUNCTIONS, "toJSON", lambda v: go_json(v, indent=True), "a")
_define(FUNCTIONS, "toJson", go_json, "a")  # Argo's: compact
_define(FUNCTIONS, "fromJSON", from_json)
_define(FUNCTIONS, "toBase64", lambda s: base64.b64encode(s.encode()).decode())
_define(FUNCTIONS, "fromBase64", lambda s: _b64decode(s, strict=True))
_define(FUNCTIONS, "keys", sorted, "m")  # sorted: Go's map order is random
_define(FUNCTIONS, "values", lambda m: [m[k] for k in sorted(m)], "m")
_define(FUNCTIONS, "first", lambda a: a[0] if a else None, "l")
_define(FUNCTIONS, "last", lambda a: a[-1] if a else None, "l")
_define(FUNCTIONS, "reverse", lambda a: a[::-1], "l")
_define(FUNCTIONS, "get", _get, "aa")
_define(FUNCTIONS, "type", _type, "a")


# sprig (github.com/Masterminds/sprig/v3): the subject comes last, and most functions never fail.
def _cast_int(value: Any) -> int:
    """spf13/cast's `ToInt`, behind sprig's `int` and `atoi`: 0 for what does not convert."""
    if is_number(value) or isinstance(value, bool):
        return int(value)
    try:
        return int(re.sub(r"^([+-]?[0-9]+)\.0*$", r"\1", value), 0) if isinstance(value, str) else 0
    except ValueError:
        return 0


def _empty(value: Any) -> bool:
    return value is None or value is False or (not isinstance(value, bool) and value in (0, "", [], {}))


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        return _fail(f"invalid regular expression {pattern!r}: {exc}")


def _go_expand(template: str, match: re.Match[str]) -> str:
    """Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}` become the group (or nothing), `$$` a dollar."""

    def group(ref: re.Match[str]) -> str:
        name = ref.group(1) or ref.group(2)
        try:
            return "$" if name is None else match.group(int(name) if name.isdigit() else name) or ""
        except (IndexError, re.error):
            return ""

    return re.sub(r"\$(?:\{(\w+)\}|(\w+)|\$)", group, template)


def _substr(start: int, end: int, text: str) -> str:
    if start < 0:
        return text[:end]
    return text[start:] if end < 0 or end > len(text) else text[start:end]


def _quote(*values: Any) -> str:
    return " ".join(json.dumps(go_format(v), ensure_ascii=False) for v in values if v is not None)


def _sprig_from_json(text: str) -> Any:
    try:
        return from_json(text)
    except FunctionError:
        return None


_define(SPRIG, "trim", str.strip)
_define(SPRIG, "trimAll", lambda cut, s: s.strip(cut), "ss")
_define(SPRIG, "trimPrefix", lambda prefix, s: s.removeprefix(prefix), "ss")
_define(SPRIG, "trimSuffix", lambda suffix, s: s.removesuffix(suffix), "ss")
_define(SPRIG, "upper", str.upper)
_define(SPRIG, "lower", str.lower)
_define(SPRIG, "title", lambda s: re.sub(r"(?<!\w)\w", lambda m: m.group().upper(), s))
_define(SPRIG, "replace", lambda old, new, s: s.replace(old, new), "sss")
_define(SPRIG, "contains", lambda sub, s: sub in s, "ss")
_define(SPRIG, "hasPrefix", lambda prefix, s: s.startswith(prefix), "ss")
_define(SPRIG, "hasSuffix", lambda suffix, s: s.endswith(suffix), "ss")
_define(SPRIG, "repeat", lambda n, s: s * _count(n), "is")
_define(SPRIG, "substr", _substr, "iis")
_define(SPRIG, "trunc", lambda n, s: s[max(len(s) + n, 0) :] if n < 0 else s[:n], "is")
_define(SPRIG, "quote", _quote, "a", min_args=0, variadic=1)
_define(
    SPRIG,
    "squote",
    lambda *v: " ".join(f"'{go_format(x)}'" for x in v if x is not None),
    "a",
    min_args=0,
    variadic=1,
)
_define(SPRIG, "toString", lambda v: v if isinstance(v, str) else go_format(v), "a")
_define(SPRIG, "join", lambda sep, a: sep.join(go_format(x) for x in a if x is not None), "sl")
_define(SPRIG, "splitList", lambda sep, s: list(s) if sep == "" else s.split(sep), "ss")
_define(SPRIG, "default", lambda default, value=None: default if _empty(value) else value, "aa", min_args=1)
_define(SPRIG, "empty", _empty, "a")
_define(SPRIG, "ternary", lambda yes, no, condition: yes if condition is True else no, "aaa")
_define(SPRIG, "int int64 atoi", _cast_int, "a")
_define(SPRIG, "float64", lambda v: to_float(v) if is_number(v) or _GO_FLOAT.fullmatch(str(v)) else 0.0, "a")
_define(SPRIG, "add", lambda *v: sum(map(_cast_int, v)), "a", min_args=0, variadic=1)
_define(SPRIG, "sub", lambda a, b: _cast_int(a) - _cast_int(b), "aa")
_define(SPRIG, "b64enc", lambda s: base64.b64encode(s.encode()).decode())
_define(SPRIG, "b64dec", lambda s: _b64decode(s, strict=False))
_define(SPRIG, "sha256sum", lambda s: hashlib.sha256(s.encode()).hexdigest())
_define(SPRIG, "toJson", go_json, "a")
_define(SPRIG, "toPrettyJson", lambda v: go_json(v, indent=True), "a")
_define(SPRIG, "fromJson", _sprig_from_json)
_define(SPRIG, "regexMatch", lambda pattern, s: _regex(pattern).search(s) is not None, "ss")
_define(SPRIG, "regexFind", lambda pattern, s: m.group() if (m := _regex(pattern).search(s)) else "", "ss")
_define(SPRIG, "regexReplaceAll", lambda p, s, r: _regex(p).sub(lambda m: _go_expand(r, m), s), "sss")
_define(SPRIG, "list", lambda *v: list(v), "a", min_args=0, variadic=1)
_define(SPRIG, "has", lambda needle, items: needle in items, "al")


# Argo's jsonpath(json, path) (util/expr/env/env.go, over github.com/evilmonkeyinc/jsonpath).
_PATH_STEP = re.compile(
    r"\.\.(?P<deep>\*|[^.\[]*)|\.(?P<key>[^.\[]+)|\[(?P<bracket>(?:'[^']*'|\"[^\"]*\"|[^\]])*)\]"
)
_BRACKET_ITEM = re.compile(r"\s*('[^']*'|\"[^\"]*\"|[^,]+?)\s*(?:,|$)")


def jsonpath(document: str, path: str) -> Any:
    """The value at `path` in the JSON text `document`; a list of the matches when the path has `*`, `..`,
    a union or a slice. Paths: `$`, `.key`, `['key']`, `[n]`, `[-n]`, `[a,b]`, `[start:end:step]`, `*`,
    `..key`. Numbers come back as floats, as Go decodes them.

    Raises FunctionError for a path that does not parse or does not match (a key not found, an index out of
    range), and for filters `[?(...)]` and scripts, which this agent does not implement.
    """
    nodes, single, position = [from_json(document)], True, 1
    if not path.startswith("$"):
        _fail(f"jsonpath {path!r}: a path starts with '$'")
    while position < len(path):
        step = _PATH_STEP.match(path, position)
        if step is None:
            return _fail(f"jsonpath {path!r}: cannot parse {path[position:]!r}")
        position = step.end()
        if step.group("deep") is not None:
            nodes = [found for node in nodes for found in _descendants(node)]
            selector: list[Any] = [step.group("deep") or "*"]
            single = False
        else:
            selector = (
                [step.group("key")] if step.group("key") else _bracket(step.group("bracket").strip(), path)
            )
        single = single and len(selector) == 1 and selector[0] != "*" and not isinstance(selector[0], slice)
        nodes = [found for node in nodes for found in _select(node, selector, path, strict=single)]
    return nodes[0] if single else nodes


def _bracket(text: str, path: str) -> list[Any]:
    if text.startswith(("?", "(")):
        return _fail(
            f"unsupported: jsonpath {path!r}: filters and scripts are not implemented by argoplug's agent"
        )
    if ":" in text and not text.startswith(("'", '"')):
        return [slice(*(int(bound) if bound.strip() else None for bound in text.split(":")))]
    items: list[Any] = []
    for item in (match.group(1) for match in _BRACKET_ITEM.finditer(text) if match.group(1)):
        if item[0] in "'\"":
            items.append(item[1:-1])
        elif item == "*" or re.fullmatch(r"-?[0-9]+", item):
            items.append(item if item == "*" else int(item))
        else:
            _fail(f"jsonpath {path!r}: cannot parse [{text}]")
    return items


def _select(node: Any, selector: list[Any], path: str, *, strict: bool) -> list[Any]:
    found: list[Any] = []
    for key in selector:
        if key == "*":
            found += _children(node)
        elif isinstance(key, slice) and isinstance(node, list):
            found += node[key]
        elif _has(node, key):
            found.append(node[key])
        elif strict:
            what = f"key '{key}' not found" if isinstance(key, str) else f"index {key} out of range"
            _fail(
                f"jsonpath {path!r}: {what}"
                + ("" if isinstance(node, dict | list) else f" in {go_type(node)}")
            )
    return found


def _has(node: Any, key: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(key, str) and key in node
    return isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node)


def _children(node: Any) -> list[Any]:
    """A list's items, or a dict's values by sorted key (as evilmonkeyinc's wildcard), or none."""
    return (
        [node[k] for k in sorted(node)]
        if isinstance(node, dict)
        else list(node)
        if isinstance(node, list)
        else []
    )


def _descendants(node: Any) -> list[Any]:
    """`node`, then its children, theirs, ... (`..`)."""
    return [node, *(found for child in _children(node) for found in _descendants(child))]


_define(FUNCTIONS, "jsonpath", jsonpath, "ss")
