"""Loops: a step or task with `withItems`, `withParam` or `withSequence` fanned out, and its results gathered.

`expand_call` turns one (already substituted) call into one call per item, named and substituted as Argo's
controller does (`expandStep` in `workflow/controller/steps.go`, `expandTask` in `dag.go`, `processItem`,
`generateNodeName`, `expandSequence` in `operator.go`); `aggregate_outputs` gathers the items' outputs into
the JSON lists a later step sees (`processAggregateNodeOutputs`). The engine's steps and DAGs call these.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from argoplug.agent.nodes import Node, NodePhase
from argoplug.agent.substitution import SetupError, expand, substitute, tags

__all__ = ["LOOP_FIELDS", "aggregate_outputs", "expand_call", "go_json", "loop_index"]

LOOP_FIELDS = ("withItems", "withParam", "withSequence")


class _Number(str):
    """A JSON number kept as written (Go keeps an item's raw JSON: `2.50` stays `2.50`)."""


def expand_call(call: Mapping[str, Any], scope: Mapping[str, str]) -> list[dict[str, Any]]:
    """One call per item of `call`'s loop, each named `name(i:item)` and with its `{{item...}}` replaced.

    `call` is a step or DAG task whose other tags are already substituted; `scope` (the workflow's
    globals) is what expressions in it may also use. An empty list gives no call. Raises SetupError with
    Argo's message for a `withParam` that is not a JSON list, a bad `withSequence`, an unsupported item,
    or a tag left unresolved once the item is in (Argo replaces items strictly).
    """
    items = _items(call)
    body = {k: v for k, v in call.items() if k not in LOOP_FIELDS}
    expanded = []
    for index, item in enumerate(items):
        values, description = _item_values(item, index)
        new = expand(substitute(body, values), {**scope, **values}, strict=True)
        left = [t for t in tags(new) if not t.startswith("=")]
        if left and not _when_false(new):
            raise SetupError(f"failed to resolve {{{{{left[0]}}}}}")
        new["name"] = _node_name(str(call["name"]), index, description)
        new["template"] = call.get("template")
        if call.get("templateRef") is not None:
            new["templateRef"] = call["templateRef"]
        expanded.append(new)
    return expanded


def _when_false(call: Mapping[str, Any]) -> bool:
    """True when the call's `when` evaluates false: then tags may stay unresolved (`processItem`)."""
    when = call.get("when")
    if not when:
        return False
    from argoplug.agent import expressions

    try:
        return not expressions.evaluate_when(str(when))
    except expressions.ExpressionError:
        return False


def _items(call: Mapping[str, Any]) -> list[Any]:
    if call.get("withItems"):
        return list(call["withItems"])
    if call.get("withParam") not in (None, ""):
        text = str(call["withParam"])
        try:
            items = json.loads(text, parse_int=_Number, parse_float=_Number)
        except ValueError as exc:
            raise SetupError(
                f"withParam value could not be parsed as a JSON list: {text.strip()}: {exc}"
            ) from None
        if not isinstance(items, list):
            raise SetupError(
                f"withParam value could not be parsed as a JSON list: {text.strip()}: json: cannot "
                f"unmarshal {_json_kind(items)} into Go value of type []v1alpha1.Item"
            )
        return items
    if call.get("withSequence") is not None:
        return _sequence(call["withSequence"])
    return []


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str) and not isinstance(value, _Number):
        return "string"
    return "number"


def _sequence(sequence: Mapping[str, Any]) -> list[str]:
    """The items of a `withSequence` (`expandSequence`): strings, `format`ted as Go's `fmt.Sprintf`."""
    start = _atoi(sequence.get("start"), "start") if sequence.get("start") is not None else 0
    if sequence.get("end") is not None:
        end = _atoi(sequence["end"], "end")
    elif sequence.get("count") is not None:
        count = _atoi(sequence["count"], "count")
        if count == 0:
            return []
        end = start + count - 1
    else:
        raise SetupError("neither end nor count was specified in withSequence")
    fmt = str(sequence.get("format") or "%d")
    step = 1 if start <= end else -1
    return [_sprintf(fmt, i) for i in range(start, end + step, step)]


def _atoi(value: Any, field: str) -> int:
    text = str(value).strip() if not isinstance(value, bool) else str(value)
    if re.fullmatch(r"[+-]?\d+", text) is None:
        raise SetupError(f'withSequence.{field}: strconv.Atoi: parsing "{value}": invalid syntax')
    return int(text)


_VERB = re.compile(r"%([-+ 0#]*)(\d*)([dvxXobcq%])")


def _sprintf(fmt: str, number: int) -> str:
    """Go's `fmt.Sprintf(fmt, number)` for the integer verbs sequences use (`%d`, `%02d`, `%x`, `%o`...)."""

    def verb(match: re.Match[str]) -> str:
        flags, width, kind = match.groups()
        if kind == "%":
            return "%"
        if kind == "b":
            text = format(abs(number), "b")
            text = ("-" if number < 0 else "") + text
            return text.rjust(int(width or 0), "0" if "0" in flags else " ")
        if kind == "c":
            return chr(number)
        if kind == "q":
            return "'" + chr(number) + "'"
        return ("%" + flags + width + ("d" if kind == "v" else kind)) % number

    return _VERB.sub(verb, fmt)


def _item_values(item: Any, index: int) -> tuple[dict[str, str], str]:
    """The `item` variables of one item and the text its node name shows (`processItem`)."""
    if isinstance(item, dict):
        values = {f"item.{k}": _text(v) for k, v in item.items()}
        values["item"] = go_json(item)
        return values, ",".join(sorted(f"{k}:{_text(v)}" for k, v in item.items()))
    if isinstance(item, list) or item is None:
        listed = item or []
        return {"item": go_json(listed)}, "[" + " ".join(_text(v) for v in listed) + "]"
    if isinstance(item, (str, bool, int, float)):
        text = _text(item)
        return {"item": text}, text
    raise SetupError(f"withItems[{index}] expected string, number, list, or map. received: {item!r}")


def _text(value: Any) -> str:
    """An item as Argo's `Item.String()` prints it: strings bare, numbers as written, the rest as JSON."""
    if isinstance(value, str):
        return str(value)
    return go_json(value)


def _node_name(name: str, index: int, description: str) -> str:
    """`name(index:description)`, parentheses dropped from the description (`generateNodeName`)."""
    return f"{name}({index}:{description.replace('(', '').replace(')', '')})"


def loop_index(node_name: str) -> int:
    """The index of a loop node from its name: `a(3:x)` → 3 (`parseLoopIndex`)."""
    last = node_name.split("(")[-1]
    try:
        return int(last.split(":", 1)[0])
    except ValueError:
        return 0


def go_json(value: Any) -> str:
    """`value` as Go's `json.Marshal` writes it: compact, map keys sorted, numbers as Go prints them."""
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ",".join(
            f"{json.dumps(str(k), ensure_ascii=False)}:{go_json(v)}" for k, v in sorted(value.items())
        )
        return "{" + inner + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _go_float(number: float) -> str:
    """A float64 as `encoding/json` writes it: `1` for 1.0, `2.5`, `1e+21` from 1e21 up."""
    if not math.isfinite(number):
        raise SetupError(f"json: unsupported value: {number}")
    if number == int(number) and abs(number) < 1e21:
        return str(int(number))
    if abs(number) < 1e-6 or abs(number) >= 1e21:
        text = repr(number)
        if "e" in text:
            mantissa, exponent = text.split("e")
            sign = exponent[0] if exponent[0] in "+-" else "+"
            digits = exponent.lstrip("+-").lstrip("0") or "0"
            return f"{mantissa}e{sign}{digits.zfill(2)}"
        return text
    return repr(number)


def aggregate_outputs(prefix: str, children: Sequence[Node]) -> dict[str, str]:
    """The scope values of a loop's items, gathered as JSON lists (`processAggregateNodeOutputs`).

    `children` are the loop's item nodes (hook and retry-attempt nodes are left out here); only those
    that Succeeded with outputs count, in item order. Gives `<prefix>.outputs.result` (the results, each
    read as JSON), `<prefix>.outputs.parameters` (a list of name → value objects) and
    `<prefix>.outputs.parameters.<name>` (the values; objects and lists kept as JSON when all are). Raises
    SetupError when a result is not JSON: Argo reads each item's result as a JSON value.
    """
    nodes = sorted((c for c in children if not c.hooked and not c.retried), key=lambda n: loop_index(n.name))
    if not nodes:
        return {}
    params: list[dict[str, str]] = []
    by_name: dict[str, list[str]] = {}
    results: list[str] = []
    for node in nodes:
        if node.outputs is None or node.phase != NodePhase.SUCCEEDED:
            continue
        if node.outputs.parameters:
            one = {}
            for param in node.outputs.parameters:
                one[param.name] = param.value or ""
                by_name.setdefault(param.name, []).append(param.value or "")
            params.append(one)
        if node.outputs.result is not None:
            try:
                json.loads(node.outputs.result)
            except ValueError as exc:
                raise SetupError(
                    f"the result of {node.name} is not JSON ({exc}): Argo reads each loop item's result as a "
                    "JSON value to gather them in a list"
                ) from None
            results.append(_compact(node.outputs.result))
    values = {
        f"{prefix}.outputs.result": "[" + ",".join(results) + "]",
        f"{prefix}.outputs.parameters": go_json(params),
    }
    for name, listed in by_name.items():
        values[f"{prefix}.outputs.parameters.{name}"] = _value_list(listed)
    return values


def _compact(text: str) -> str:
    """Raw JSON compacted as Go's `json.Compact` does: whitespace outside strings dropped, the rest kept."""
    out = []
    in_string = escaped = False
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif not char.isspace():
            out.append(char)
    return "".join(out)


def _value_list(values: list[str]) -> str:
    """The values of one output across the items as a JSON list (`aggregatedJSONValueList`)."""
    parsed = []
    for value in values:
        try:
            item = json.loads(value)
        except ValueError:
            return go_json(values)
        if not isinstance(item, (dict, list)):
            return go_json(values)
        parsed.append(item)
    return go_json(parsed)
