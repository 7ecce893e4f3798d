"""The `sprig.*` functions of `{{=...}}` expressions (github.com/Masterminds/sprig/v3), in the `SPRIG` table.

`evaluation` calls them; they are defined with `functions.define`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from argoplug.agent.expressions.functions import GO_FLOAT, Function, b64decode, define, repeat_count, to_float
from argoplug.agent.expressions.values import FunctionError, fail, from_json, go_format, go_json, is_number

__all__ = ["SPRIG"]

SPRIG: dict[str, Function] = {}


def _sprig(names: str, fn: Callable[..., Any], kinds: str = "s", **arity: int) -> None:
    """`define` into SPRIG: messages name the function `sprig.<name>`."""
    define(SPRIG, names, fn, kinds, prefix="sprig.", **arity)


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
        return fail(f"invalid regular expression {pattern!r}: {exc}")


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


_sprig("trim", str.strip)
_sprig("trimAll", lambda cut, s: s.strip(cut), "ss")
_sprig("trimPrefix", lambda prefix, s: s.removeprefix(prefix), "ss")
_sprig("trimSuffix", lambda suffix, s: s.removesuffix(suffix), "ss")
_sprig("upper", str.upper)
_sprig("lower", str.lower)
_sprig("title", lambda s: re.sub(r"(?<!\w)\w", lambda m: m.group().upper(), s))
_sprig("replace", lambda old, new, s: s.replace(old, new), "sss")
_sprig("contains", lambda sub, s: sub in s, "ss")
_sprig("hasPrefix", lambda prefix, s: s.startswith(prefix), "ss")
_sprig("hasSuffix", lambda suffix, s: s.endswith(suffix), "ss")
_sprig("repeat", lambda n, s: s * repeat_count(n), "is")
_sprig("substr", _substr, "iis")
_sprig("trunc", lambda n, s: s[max(len(s) + n, 0) :] if n < 0 else s[:n], "is")
_sprig("quote", _quote, "a", min_args=0, variadic=1)
_sprig(
    "squote",
    lambda *v: " ".join(f"'{go_format(x)}'" for x in v if x is not None),
    "a",
    min_args=0,
    variadic=1,
)
_sprig("toString", lambda v: v if isinstance(v, str) else go_format(v), "a")
_sprig("join", lambda sep, a: sep.join(go_format(x) for x in a if x is not None), "sl")
_sprig("splitList", lambda sep, s: list(s) if sep == "" else s.split(sep), "ss")
_sprig("default", lambda default, value=None: default if _empty(value) else value, "aa", min_args=1)
_sprig("empty", _empty, "a")
_sprig("ternary", lambda yes, no, condition: yes if condition is True else no, "aaa")
_sprig("int int64 atoi", _cast_int, "a")
_sprig("float64", lambda v: to_float(v) if is_number(v) or GO_FLOAT.fullmatch(str(v)) else 0.0, "a")
_sprig("add", lambda *v: sum(map(_cast_int, v)), "a", min_args=0, variadic=1)
_sprig("sub", lambda a, b: _cast_int(a) - _cast_int(b), "aa")
_sprig("b64enc", lambda s: base64.b64encode(s.encode()).decode())
_sprig("b64dec", lambda s: b64decode(s, strict=False))
_sprig("sha256sum", lambda s: hashlib.sha256(s.encode()).hexdigest())
_sprig("toJson", go_json, "a")
_sprig("toPrettyJson", lambda v: go_json(v, indent=True), "a")
_sprig("fromJson", _sprig_from_json)
_sprig("regexMatch", lambda pattern, s: _regex(pattern).search(s) is not None, "ss")
_sprig("regexFind", lambda pattern, s: m.group() if (m := _regex(pattern).search(s)) else "", "ss")
_sprig("regexReplaceAll", lambda p, s, r: _regex(p).sub(lambda m: _go_expand(r, m), s), "sss")
_sprig("list", lambda *v: list(v), "a", min_args=0, variadic=1)
_sprig("has", lambda needle, items: needle in items, "al")
