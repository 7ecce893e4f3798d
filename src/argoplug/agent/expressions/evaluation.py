"""Evaluating parsed expressions: the `Evaluator` that walks `parser`'s nodes as expr-lang's VM (or
govaluate, for `when`) would, and the operators' semantics. `argoplug.agent.expressions` calls it.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from argoplug.agent.expressions.functions import FUNCTIONS, UNSUPPORTED
from argoplug.agent.expressions.parser import CLOSURES, WHEN_BINARY, ExpressionError, Node
from argoplug.agent.expressions.sprig import SPRIG
from argoplug.agent.expressions.values import FunctionError, fail, go_format, go_type, is_number

__all__ = ["Evaluator"]


class _Missing(ExpressionError):
    """A member of nil: `??` turns it into nil."""


def _equal(left: Any, right: Any) -> bool:
    """expr-lang's `==` (`vm/runtime`, `Equal`): numbers by value, others only with their own type."""
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


_MAX_ITEMS = 10_000_000  # a range or repeat() bigger than this is a mistake, not a workflow's need
_ORDER = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "contains": operator.contains,
    "startsWith": str.startswith,
    "endsWith": str.endswith,
}


def _operate(op: str, left: Any, right: Any, *, when: bool) -> Any:
    """Apply a binary operator (not `&&`, `||`, `??`) as expr-lang, or govaluate for `when`, does."""
    numbers, strings = is_number(left) and is_number(right), isinstance(left, str) and isinstance(right, str)
    if op in ("==", "!="):
        return _equal(left, right) == (op == "==")
    if op in _ORDER and (numbers or strings):
        return _ORDER[op](left, right)
    if op == "+" and (numbers or strings):
        return left + right
    if op == "+" and when and (isinstance(left, str) or isinstance(right, str)):
        return go_format(left) + go_format(right)  # govaluate concatenates a string with anything
    if op in ("-", "*") and numbers:
        return left - right if op == "-" else left * right
    if op == "/" and numbers:  # always a float; x/0 is an infinity, as in Go
        if right == 0:
            return math.nan if left == 0 else math.copysign(math.inf, left) * math.copysign(1, right)
        return left / right
    if op == "%" and numbers and (when or (not isinstance(left, float) and not isinstance(right, float))):
        if right == 0:
            return math.nan if when else fail("integer divide by zero")
        return math.fmod(left, right) if when else int(math.copysign(abs(left) % abs(right), left))
    if op in ("**", "^") and numbers:
        try:
            return math.pow(left, right)
        except (OverflowError, ValueError, ZeroDivisionError):
            return math.inf if left and abs(left) > 1 else math.nan
    if op == "in" and isinstance(right, list):
        return any(_equal(left, item) for item in right)
    if op == "in" and isinstance(right, dict) and not when:
        return isinstance(left, str) and left in right
    if op in _STRING_TESTS and strings:
        return _STRING_TESTS[op](left, right)
    if op in ("matches", "=~", "!~") and strings:
        try:
            return (re.search(right, left) is not None) != (op == "!~")
        except re.error as exc:
            return fail(f"invalid regular expression {right!r}: {exc}")
    if op == ".." and isinstance(left, int) and isinstance(right, int) and not isinstance(left | right, bool):
        return list(range(left, right + 1)) if right - left < _MAX_ITEMS else fail("the range is too long")
    if when:  # govaluate's wording (`evaluationFailure.go`)
        expected = "an array" if op == "in" else "a string" if op in ("=~", "!~") else "a number"
        kind = "comparator" if op in WHEN_BINARY and WHEN_BINARY[op] == 20 else "modifier"
        bad = left if op != "in" and not is_number(left) else right
        return fail(f"Value '{go_format(bad)}' cannot be used with the {kind} '{op}', it is not {expected}")
    return fail(f"invalid operation: {go_type(left)} {op} {go_type(right)}")


class Evaluator:
    """Evaluates a parsed expression against `env`, as expr-lang's VM (`vm/runtime/runtime.go`) would."""

    def __init__(self, source: str, env: Mapping[str, Any], *, when: bool = False) -> None:
        self.source, self.env, self.when = source, env, when

    def error(self, problem: str, node: Node) -> ExpressionError:
        return ExpressionError(problem, self.source, node[1])

    def run(self, node: Node, item: tuple[Any, int] | None = None) -> Any:  # item: a predicate's (#, #index)
        kind = node[0]
        if kind == "lit":
            return node[2]
        if kind == "name":
            if node[2] in self.env:
                return self.env[node[2]]
            if self.when:
                raise self.error(f"No parameter '{node[2].split('.')[0]}' found.", node)
            known = difflib.get_close_matches(node[2], list(self.env), 1)
            raise self.error(
                f"unknown name '{node[2]}'" + (f" (did you mean '{known[0]}'?)" if known else ""), node
            )
        if kind == "pointer":
            if node[2] not in ("", "index"):
                raise self.error(f"unknown pointer '#{node[2]}': expected # or #index", node)
            return item[0] if node[2] == "" else item[1]  # type: ignore[index]
        if kind == "member":
            return self.fetch(self.run(node[2], item), self.run(node[3], item), node)
        if kind == "slice":
            return self.slice(node, *(None if part is None else self.run(part, item) for part in node[2:]))
        if kind == "unary":
            return self.unary(node, self.run(node[3], item))
        if kind == "binary":
            return self.binary(node, item)
        if kind == "cond":
            condition = self.run(node[2], item)
            if not isinstance(condition, bool):
                raise self.error(f"the condition before '?' is a {go_type(condition)}, not a bool", node)
            return self.run(node[3] if condition else node[4], item)
        if kind == "list":
            return [self.run(part, item) for part in node[2]]
        if kind == "map":
            return {go_format(self.run(key, item)): self.run(value, item) for key, value in node[2]}
        if kind == "call":
            return self.call(node, item)
        raise self.error("a predicate is only an argument of all, any, filter, map, ...", node)

    def fetch(self, container: Any, key: Any, node: Node) -> Any:
        if isinstance(container, dict) and isinstance(key, str):
            return container.get(key)
        if isinstance(container, list | str) and is_number(key):
            index = int(key) + (len(container) if key < 0 else 0)
            if not 0 <= index < len(container):
                raise self.error(f"index out of range: {index} (array length is {len(container)})", node)
            return container[index]
        if container is None and node[4]:
            return None
        error = _Missing if container is None else ExpressionError
        raise error(f"cannot fetch {go_format(key)} from {go_type(container)}", self.source, node[1])

    def slice(self, node: Node, container: Any, low: Any, high: Any) -> Any:
        if not isinstance(container, list | str):
            raise self.error(f"cannot slice a {go_type(container)}", node)
        bounds = [0 if low is None else low, len(container) if high is None else high]
        if not all(is_number(bound) for bound in bounds):
            raise self.error("slice bounds must be numbers", node)
        low, high = (min(max(int(b) + (len(container) if b < 0 else 0), 0), len(container)) for b in bounds)
        return container[min(low, high) : high]  # expr clamps the bounds (`runtime.Slice`)

    def unary(self, node: Node, value: Any) -> Any:
        if node[2] == "!" and isinstance(value, bool):
            return not value
        if node[2] in ("-", "+") and is_number(value):
            return -value if node[2] == "-" else value
        if self.when:
            raise self.error(f"Value '{go_format(value)}' cannot be used with the prefix '{node[2]}'", node)
        raise self.error(f"invalid operation: {node[2]}{go_type(value)}", node)

    def binary(self, node: Node, item: tuple[Any, int] | None) -> Any:
        op = node[2]
        if op in ("&&", "and", "||", "or"):  # short-circuits, on bools only
            for side in (3, 4):
                value = self.run(node[side], item)
                if not isinstance(value, bool):
                    if self.when:
                        problem = (
                            f"Value '{go_format(value)}' cannot be used with the logical operator '{op}'"
                        )
                        raise self.error(problem + ", it is not a bool", node)
                    raise self.error(f"invalid operation: {op} on a {go_type(value)}, not a bool", node)
                if side == 4 or value == (op in ("||", "or")):
                    return value
        if op == "??":
            try:
                left = self.run(node[3], item)
            except _Missing:
                left = None
            return self.run(node[4], item) if left is None else left
        try:
            return _operate(op, self.run(node[3], item), self.run(node[4], item), when=self.when)
        except (FunctionError, ArithmeticError) as exc:
            raise self.error(str(exc), node) from None

    def call(self, node: Node, item: tuple[Any, int] | None) -> Any:
        name, args = node[2], node[3]
        if name in CLOSURES:
            return self.predicate(node, item)
        function = SPRIG.get(name[6:]) if name.startswith("sprig.") else FUNCTIONS.get(name)
        if function is None:
            if name in UNSUPPORTED or name.startswith("sprig."):
                raise self.error(f"unsupported: {name}() is not implemented by argoplug's local agent", node)
            names = [*FUNCTIONS, *CLOSURES]
            known = [n for n in names if n.lower() == name.lower()] or difflib.get_close_matches(
                name, names, 1
            )
            raise self.error(
                f"unknown function '{name}'" + (f" (did you mean '{known[0]}'?)" if known else ""), node
            )
        values, low, high = [self.run(arg, item) for arg in args], function.min_args, function.max_args
        if len(values) < low or (high is not None and len(values) > high):
            expected = str(low) if low == high else f"{low} or more" if high is None else f"{low} to {high}"
            raise self.error(
                f"invalid number of arguments for {name} (expected {expected}, got {len(values)})", node
            )
        try:
            return function.call(*values)
        except (FunctionError, ArithmeticError, ValueError) as exc:  # int(1e999), ceil(NaN), ...
            raise self.error(f"{name}(): {exc}", node) from None

    def predicate(self, node: Node, item: tuple[Any, int] | None) -> Any:
        name, args = node[2], node[3]
        if len(args) != 2 or args[1][0] != "closure":
            raise self.error(f"{name}() takes an array and a predicate, like {name}(items, {{# > 1}})", node)
        items = self.run(args[0], item)
        if not isinstance(items, list):
            raise self.error(f"{name}(): cannot iterate over a {go_type(items)}", node)
        body = args[1][2]
        if name == "map":
            return [self.run(body, (element, index)) for index, element in enumerate(items)]

        def test(index: int) -> bool:
            result = self.run(body, (items[index], index))
            if not isinstance(result, bool):
                raise self.error(f"{name}(): the predicate returned a {go_type(result)}, not a bool", args[1])
            return result

        order = range(len(items)) if not name.startswith("findLast") else range(len(items) - 1, -1, -1)
        hits = (index for index in order if test(index))
        if name.startswith("find"):
            index = next(hits, None)
            if name.endswith("Index"):
                return -1 if index is None else index
            return None if index is None else items[index]
        if name in ("all", "none"):
            return all(test(i) != (name == "none") for i in order)
        if name == "any":
            return next(hits, None) is not None
        found = [items[i] for i in hits]
        return found if name == "filter" else len(found) if name == "count" else len(found) == 1
