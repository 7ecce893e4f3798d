"""The functions `{{=...}}` expressions call: expr-lang's builtins (`trim`, `int`, `toJSON`, ...) and Argo's
own (`asInt`, `asFloat`, `jsonpath`, `toJson`, from `util/expr/env/env.go`), over None, bool, int, float, str,
list, dict. `evaluation` calls them; `sprig` defines the `sprig.*` ones with `define`.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from argoplug.agent.expressions.jsonpath import jsonpath
from argoplug.agent.expressions.values import (
    FunctionError,
    fail,
    from_json,
    go_format,
    go_json,
    go_type,
    is_number,
)

__all__ = [
    "FUNCTIONS",
    "GO_FLOAT",
    "UNSUPPORTED",
    "Function",
    "FunctionError",
    "b64decode",
    "define",
    "from_json",
    "go_format",
    "go_json",
    "go_type",
    "is_number",
    "jsonpath",
    "repeat_count",
    "to_float",
    "to_int",
]


@dataclasses.dataclass(frozen=True)
class Function:
    """A function of the language: `call(*args)` takes `min_args` to `max_args` (None: any) arguments."""

    name: str
    call: Callable[..., Any]
    min_args: int
    max_args: int | None


FUNCTIONS: dict[str, Function] = {}
# Functions Argo's expressions have that this agent does not: named "unsupported" rather than "unknown".
UNSUPPORTED = frozenset(
    ["now", "date", "duration", "timezone", "groupBy", "sortBy", "reduce", "splitAfter", "mean", "median"]
)


_KINDS: dict[str, tuple[Any, str]] = {
    "s": (str, "string"),
    "i": (int, "int"),
    "l": (list, "[]interface {}"),
    "m": (dict, "map[string]interface {}"),
    "a": (object, ""),
}


def define(
    table: dict[str, Function],
    names: str,
    fn: Callable[..., Any],
    kinds: str = "s",
    *,
    prefix: str = "",
    **arity: int,
) -> None:
    """Add `fn` as each of `names`, one kind letter an argument: s(tr), i(nt), l(ist), m(ap) or a(ny).

    It takes one argument a letter, `min_args` of them at least; `variadic=1`: any more, of the last kind.
    Messages name it `prefix` + name (`sprig.trim`).
    """
    min_args = arity.get("min_args", len(kinds))
    for name in names.split():
        shown = prefix + name

        def call(*args: Any, _shown: str = shown) -> Any:
            for index, arg in enumerate(args):
                kind, go_name = _KINDS[kinds[min(index, len(kinds) - 1)]]
                if not isinstance(arg, kind) or (isinstance(arg, bool) and kind is int):
                    fail(f"cannot use {go_type(arg)} as argument (type {go_name}) to call {_shown}")
            return fn(*args)

        table[name] = Function(shown, call, min_args, None if arity.get("variadic") else len(kinds))


def to_int(value: Any) -> int:
    """expr's `int()` (Argo's `asInt`): floats truncate, strings parse as `strconv.Atoi` does."""
    if is_number(value) or (isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value)):
        return int(value)
    return fail(f"invalid operation: int({value if isinstance(value, str) else go_type(value)})")


# What Go's `strconv.ParseFloat` accepts.
GO_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.I)


def to_float(value: Any) -> float:
    """expr's `float()` (Argo's `asFloat`): numbers convert, strings parse as `strconv.ParseFloat` does."""
    if is_number(value) or (isinstance(value, str) and GO_FLOAT.fullmatch(value)):
        return float(value)
    return fail(f"invalid operation: float({value if isinstance(value, str) else go_type(value)})")


def _number(name: str, fn: Callable[[Any], Any] = lambda x: x) -> Callable[[Any], Any]:
    return lambda x: fn(x) if is_number(x) else fail(f"invalid argument for {name} (type {go_type(x)})")


def _whole(rounding: Callable[[float], int], value: float) -> float:
    """Go's math.Ceil/Floor: a float, and infinities and NaN as they are."""
    return float(rounding(value)) if math.isfinite(value) else float(value)


def _numbers(name: str, args: tuple[Any, ...]) -> list[Any]:
    return [_number(name)(item) for arg in args for item in (arg if isinstance(arg, list) else [arg])]


def repeat_count(count: int) -> int:
    """A repeat count: Go panics below 0, and no workflow needs ten million copies."""
    if count < 0:
        fail("strings: negative Repeat count")
    return count if count <= 10_000_000 else fail(f"a repeat count of {count} is too large")


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
    return separator.join(x if isinstance(x, str) else fail(f"cannot join a {go_type(x)}") for x in items)


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


def b64decode(text: str, *, strict: bool) -> str:
    """Decode base64 text; for bad input raise FunctionError if `strict`, else return the error's text."""
    try:
        return base64.b64decode(text, validate=True).decode()
    except ValueError as exc:
        return fail(f"illegal base64 data: {exc}") if strict else str(exc)  # sprig returns the error text


# expr-lang's builtins (github.com/expr-lang/expr, builtin/) and Argo's (util/expr/env/env.go).
define(
    FUNCTIONS,
    "len",
    lambda v: (
        len(v) if isinstance(v, str | list | dict) else fail(f"invalid argument for len (type {go_type(v)})")
    ),
    "a",
)
define(FUNCTIONS, "int asInt", to_int, "a")
define(FUNCTIONS, "float asFloat", to_float, "a")
define(FUNCTIONS, "string", go_format, "a")
define(FUNCTIONS, "abs", _number("abs", abs), "a")
define(FUNCTIONS, "ceil", _number("ceil", lambda x: _whole(math.ceil, x)), "a")
define(FUNCTIONS, "floor", _number("floor", lambda x: _whole(math.floor, x)), "a")
define(
    FUNCTIONS, "round", _number("round", lambda x: math.copysign(_whole(math.floor, abs(x) + 0.5), x)), "a"
)
define(FUNCTIONS, "max", lambda *a: max(_numbers("max", a), default=None), "a", variadic=1)
define(FUNCTIONS, "min", lambda *a: min(_numbers("min", a), default=None), "a", variadic=1)
define(FUNCTIONS, "sum", lambda a: sum(_numbers("sum", (a,))), "l")
define(FUNCTIONS, "trim", lambda s, cut=None: s.strip(cut), "ss", min_args=1)
define(FUNCTIONS, "trimPrefix", str.removeprefix, "ss")
define(FUNCTIONS, "trimSuffix", str.removesuffix, "ss")
define(FUNCTIONS, "upper", str.upper)
define(FUNCTIONS, "lower", str.lower)
define(FUNCTIONS, "split", _split, "ssi", min_args=2)
define(FUNCTIONS, "replace", str.replace, "sss")
define(FUNCTIONS, "repeat", lambda s, n: s * repeat_count(n), "si")
define(FUNCTIONS, "indexOf", str.find, "ss")
define(FUNCTIONS, "lastIndexOf", str.rfind, "ss")
define(FUNCTIONS, "hasPrefix", str.startswith, "ss")
define(FUNCTIONS, "hasSuffix", str.endswith, "ss")
define(FUNCTIONS, "join", _join, "ls", min_args=1)
define(FUNCTIONS, "toJSON", lambda v: go_json(v, indent=True), "a")
define(FUNCTIONS, "toJson", go_json, "a")  # Argo's: compact
define(FUNCTIONS, "fromJSON", from_json)
define(FUNCTIONS, "toBase64", lambda s: base64.b64encode(s.encode()).decode())
define(FUNCTIONS, "fromBase64", lambda s: b64decode(s, strict=True))
define(FUNCTIONS, "keys", sorted, "m")  # sorted: Go's map order is random
define(FUNCTIONS, "values", lambda m: [m[k] for k in sorted(m)], "m")
define(FUNCTIONS, "first", lambda a: a[0] if a else None, "l")
define(FUNCTIONS, "last", lambda a: a[-1] if a else None, "l")
define(FUNCTIONS, "reverse", lambda a: a[::-1], "l")
define(FUNCTIONS, "get", _get, "aa")
define(FUNCTIONS, "type", _type, "a")
define(FUNCTIONS, "jsonpath", jsonpath, "ss")
