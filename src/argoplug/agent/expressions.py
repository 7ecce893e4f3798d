"""Argo's expressions: `{{=...}}` tags (expr-lang), `when` conditions (govaluate), DAG `depends` logic.

`evaluate` runs an expr-lang expression against an env that `env_from_scope` builds from the engine's flat
scope, and `expand` replaces a text's `{{=...}}` tags (`util/template/expression_template.go`);
`evaluate_when` decides a step's `when` (`workflow/controller/steps.go`, `shouldExecute`) and
`evaluate_depends` a DAG task's `depends` (`workflow/controller/dag.go`, `evaluateDependsLogic`).
The engine and HTTP templates call these; the functions expressions call are in `expression_functions`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from argoplug.agent.expression_functions import (
    FUNCTIONS,
    SPRIG,
    UNSUPPORTED,
    FunctionError,
    go_format,
    go_json,
    go_type,
    is_number,
)

__all__ = [
    "ExpressionError",
    "TaskResult",
    "depends_tasks",
    "env_from_scope",
    "evaluate",
    "evaluate_depends",
    "evaluate_when",
    "expand",
]


class ExpressionError(Exception):
    """An expression that does not parse or evaluate: `problem` says what was expected or went wrong.

    `expression` is the text, `position` the 0-based offset of the offending part (None when the whole).
    The message reads `<what> '<expression>' at character <n>: <problem>`.
    """

    def __init__(
        self, problem: str, expression: str, position: int | None = None, *, what: str = "expression"
    ):
        self.problem, self.expression, self.position = problem, expression, position
        where = "" if position is None else f" at character {position + 1}"
        super().__init__(f"{what} '{expression}'{where}: {problem}" if what else problem)


class _Missing(ExpressionError):
    """A member of nil: `??` turns it into nil."""


class _Token(NamedTuple):
    """A token of either lexer."""

    kind: str  # "lit", "name", "op" or "eof"
    value: Any
    pos: int


_Node = tuple[Any, ...]  # (kind, position, *parts)

_EXPR_TOKEN = re.compile(
    r"(?P<space>\s+|//[^\n]*|/\*.*?\*/)"
    r"|(?P<num>0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+"
    r"|(?:[0-9][0-9_]*(?:\.(?!\.)[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)"
    r"|(?P<name>[^\W0-9]\w*|\$\w*)"
    r"|(?P<op>\?\?|\?\.|\.\.|==|!=|<=|>=|&&|\|\||\*\*|[-+*/%^!<>=?:.,|#()\[\]{}])",
    re.S,
)
_WORD_OPERATORS = {"not", "in", "and", "or", "matches", "contains", "startsWith", "endsWith"}
_ESCAPES = dict(zip("ntrabfv\\'\"", "\n\t\r\a\b\f\v\\'\"", strict=True))


def _unescape(text: str, pos: int, source: str) -> str:
    def replace(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in _ESCAPES:
            return _ESCAPES[code]
        if code[0] in "xuU" and len(code) > 1 and int(code[1:], 16) <= 0x10FFFF:
            return chr(int(code[1:], 16))
        if code.isdigit() and len(code) == 3:
            return chr(int(code, 8))
        raise ExpressionError(f"invalid escape '\\{code}' in a string", source, pos + m.start())

    return re.sub(
        r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", replace, text, flags=re.S
    )


def _expr_tokens(source: str) -> list[_Token]:
    """expr-lang's lexer (`parser/lexer/state.go`)."""
    tokens, pos = [], 0
    while pos < len(source):
        match = _EXPR_TOKEN.match(source, pos)
        if match is None:
            problem = (
                "a string is not closed" if source[pos] in "\"'`" else f"unexpected character {source[pos]!r}"
            )
            raise ExpressionError(problem, source, pos)
        kind, text = match.lastgroup, match.group()
        if kind == "num":
            clean = text.replace("_", "")
            if re.match(r"\w", source[match.end() : match.end() + 1]) or clean.lower() in ("0x", "0o", "0b"):
                raise ExpressionError(f"bad number syntax: {source[pos : match.end() + 1]!r}", source, pos)
            number = int(clean, 0) if clean[1:2] in ("x", "X", "o", "O", "b", "B") else None
            is_float = number is None and any(c in clean for c in ".eE")
            tokens.append(
                _Token("lit", float(clean) if is_float else int(clean) if number is None else number, pos)
            )
        elif kind == "str":
            tokens.append(
                _Token("lit", text[1:-1] if text[0] == "`" else _unescape(text[1:-1], pos + 1, source), pos)
            )
        elif kind == "name":
            tokens.append(_Token("op" if text in _WORD_OPERATORS else "name", text, pos))
        elif kind == "op":
            tokens.append(_Token("op", text, pos))
        pos = match.end()
    return [*tokens, _Token("eof", None, len(source))]


# govaluate's tokens (`parsing.go`): a run of digits and dots is a number; a string ends at either quote;
# `[...]` is an escaped variable; a word may hold dots (an accessor); a symbol is a run of other characters.
_WHEN_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<num>[0-9.]+)|(?P<str>['\"](?:\\.|[^'\"\\])*['\"])|(?P<var>\[(?:\\.|[^\]\\])*\])"
    r"|(?P<word>[^\W\d_][\w.]*)|(?P<op>[(),])|(?P<symbol>(?:[^\w\s()'\"]|_)+)"
)


def _when_tokens(source: str) -> list[_Token]:
    """govaluate's lexer, with Argo's twist: a bare word is a string (`heads`, `Succeeded`)."""
    tokens, pos = [], 0
    while pos < len(source):
        match = _WHEN_TOKEN.match(source, pos)
        if match is None or (match.lastgroup == "symbol" and match.group().startswith("[")):
            problem = "Unclosed parameter bracket" if source[pos] == "[" else "Unclosed string literal"
            raise ExpressionError(problem, source, pos)
        kind, text, pos = match.lastgroup, match.group(), match.end()
        if kind == "num":
            if not re.fullmatch(r"[0-9]*\.?[0-9]*", text) or text == ".":
                raise ExpressionError(
                    f"Unable to parse numeric value '{text}' to float64", source, match.start()
                )
            tokens.append(_Token("lit", float(text), match.start()))
        elif kind in ("str", "var"):
            tokens.append(_Token("lit", re.sub(r"\\(.)", r"\1", text[1:-1]), match.start()))
        elif kind == "word":
            tokens.append(_when_word(text, source, match.start(), source[pos:].lstrip().startswith("(")))
        elif kind in ("op", "symbol"):
            if text in ("&", "|", "^", "<<", ">>", "~"):
                raise ExpressionError(f"unsupported: the bitwise operator '{text}'", source, match.start())
            if text not in _WHEN_BINARY and text not in ("!", "?", ":", "(", ")", ","):
                raise ExpressionError(f"Invalid token: '{text}'", source, match.start())
            tokens.append(_Token("op", text, match.start()))
    if sum({"(": 1, ")": -1}.get(token.value, 0) for token in tokens if token.kind == "op"):
        raise ExpressionError("Unbalanced parenthesis", source)
    return [*tokens, _Token("eof", None, len(source))]


def _when_word(word: str, source: str, pos: int, called: bool) -> _Token:
    if word in ("true", "false", "in", "IN"):
        return _Token("lit", word == "true", pos) if word in ("true", "false") else _Token("op", "in", pos)
    if called:
        raise ExpressionError(f"Undefined function {word}", source, pos)
    if "." not in word:
        return _Token("lit", word, pos)  # Argo turns govaluate's variables into strings
    if word.endswith("."):
        raise ExpressionError(f"Hanging accessor on token '{word}'", source, pos)
    for part in word.split(".")[1:]:
        if part[:1].upper() != part[:1]:
            raise ExpressionError(
                f"Unable to access unexported field '{part}' in token '{word}'", source, pos
            )
    return _Token("name", word, pos)  # an accessor: no parameter will have it


# Binding powers: expr-lang's `parser/operator/operator.go`; govaluate's planners' order (`stagePlanner.go`).
_BINARY = {"|": 0, "or": 10, "||": 10, "and": 15, "&&": 15, "..": 25, "+": 30, "-": 30, "*": 60, "/": 60}
_BINARY |= dict.fromkeys(("==", "!=", "<", ">", "<=", ">=", "in", "matches", "contains", "startsWith"), 20)
_BINARY |= {"endsWith": 20, "%": 60, "**": 100, "^": 100, "??": 500}
_WHEN_BINARY = {"??": 1, "||": 10, "&&": 15, "+": 30, "-": 30, "*": 60, "/": 60, "%": 60, "**": 100}
_WHEN_BINARY |= dict.fromkeys(("==", "!=", "<", ">", "<=", ">=", "=~", "!~", "in"), 20)
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_COMPARISONS = {"<", ">", "<=", ">="}
_CLOSURES = {
    "all",
    "any",
    "none",
    "one",
    "filter",
    "map",
    "count",
    "find",
    "findIndex",
    "findLast",
    "findLastIndex",
}


class _Parser:
    """A precedence-climbing parser of expr-lang (`parser/parser.go`), or of govaluate for `when`."""

    def __init__(self, source: str, tokens: list[_Token], *, when: bool = False) -> None:
        self.source, self.tokens, self.when, self.at, self.closures = source, tokens, when, 0, 0
        self.binary = _WHEN_BINARY if when else _BINARY

    @property
    def tok(self) -> _Token:
        return self.tokens[self.at]

    def is_op(self, *values: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in values

    def fail(self, expected: str) -> ExpressionError:
        tok = self.tok
        found = "the end" if tok.kind == "eof" else repr(tok.value) if tok.kind == "lit" else f"'{tok.value}'"
        return ExpressionError(f"expected {expected}, found {found}", self.source, tok.pos)

    def expect(self, value: str) -> _Token:
        if not self.is_op(value):
            raise self.fail(f"'{value}'")
        self.at += 1
        return self.tokens[self.at - 1]

    def parse(self) -> _Node:
        node = self.expression(0)
        if self.tok.kind != "eof":
            raise self.fail("an operator or the end")
        return node

    def expression(self, min_power: int) -> _Node:
        left = self.unary()
        while self.tok.kind == "op":
            tok, negate = self.tok, self.is_op("not") and not self.when
            if negate:  # `not in`, `not matches`, ...
                self.at += 1
                if not self.is_op("in", "matches", "contains", "startsWith", "endsWith"):
                    raise self.fail("'in', 'matches', 'contains', 'startsWith' or 'endsWith' after 'not'")
            op = self.tok.value
            if op not in self.binary or self.binary[op] < min_power:
                self.at -= negate
                break
            self.at += 1
            if op == "|":  # a pipe: x | f(y) is f(x, y)
                name = self.tok
                self.at += 1
                if name.kind != "name" or not self.is_op("("):
                    raise ExpressionError("expected a function call after '|'", self.source, name.pos)
                left = self.call(name.value, name.pos, [left])
                continue
            right = self.expression(self.binary[op] + (op not in ("**", "^")))
            node = ("binary", tok.pos, op, left, right)
            while op in _COMPARISONS and not self.when and self.is_op(*_COMPARISONS):  # 1 < x < 3
                op, pos = self.tok.value, self.tok.pos
                self.at += 1
                following = self.expression(21)
                node, right = ("binary", pos, "&&", node, ("binary", pos, op, right, following)), following
            left = ("unary", tok.pos, "!", node) if negate else node
        if min_power == 0 and self.is_op("?"):
            pos = self.expect("?").pos
            yes = self.expression(0)
            if self.when and not self.is_op(":"):
                return ("cond", pos, left, yes, ("lit", pos, None))
            self.expect(":")
            left = ("cond", pos, left, yes, self.expression(0))
        return left

    def unary(self) -> _Node:
        tok = self.tok
        if tok.kind == "op" and tok.value in (("-", "!") if self.when else _UNARY):
            self.at += 1
            operand = self.unary() if self.when else self.expression(_UNARY[tok.value])
            return self.postfix(("unary", tok.pos, "!" if tok.value == "not" else tok.value, operand))
        if self.is_op("("):
            self.at += 1
            node = self.expression(0)
            if self.when and self.is_op(","):  # govaluate's (a, b) array
                items = [node]
                while self.is_op(","):
                    self.at += 1
                    items.append(self.expression(0))
                node = ("list", tok.pos, items)
            self.expect(")")
            return self.postfix(node)
        return self.postfix(self.operand())

    def operand(self) -> _Node:
        tok = self.tok
        self.at += 1
        if tok.kind == "lit":
            return ("lit", tok.pos, tok.value)
        if tok.kind == "name":
            if tok.value in ("true", "false", "nil") and not self.when:
                return ("lit", tok.pos, {"true": True, "false": False, "nil": None}[tok.value])
            return self.call(tok.value, tok.pos, []) if self.is_op("(") else ("name", tok.pos, tok.value)
        if tok.kind == "op" and not self.when:
            if tok.value in ("#", ".") and self.closures:  # the element of a predicate: #, #index, .field
                named = self.tok.kind == "name" and self.tok.pos == tok.pos + 1
                self.at += named
                if tok.value == "#":
                    return ("pointer", tok.pos, self.tokens[self.at - 1].value if named else "")
                if named:
                    field = ("lit", tok.pos, self.tokens[self.at - 1].value)
                    return ("member", tok.pos, ("pointer", tok.pos, ""), field, False)
            if tok.value == "[":
                return ("list", tok.pos, self.sequence("]", lambda: self.expression(0)))
            if tok.value == "{":
                return ("map", tok.pos, self.sequence("}", self.pair))
        self.at -= 1
        raise self.fail("a value")

    def sequence(self, closing: str, item: Any) -> list[Any]:
        items: list[Any] = []
        while not self.is_op(closing):
            items.append(item())
            if not self.is_op(closing):
                self.expect(",")
        self.expect(closing)
        return items

    def pair(self) -> tuple[_Node, _Node]:
        tok = self.tok
        if tok.kind in ("name", "lit"):
            self.at += 1
            key: _Node = ("lit", tok.pos, tok.value)
        elif self.is_op("("):
            key = self.unary()
        else:
            raise self.fail("a key")
        self.expect(":")
        return key, self.expression(0)

    def call(self, name: str, pos: int, args: list[_Node]) -> _Node:
        self.expect("(")
        while not self.is_op(")"):
            if name in _CLOSURES and len(args) == 1:  # a predicate, braced or not
                braced, self.closures = self.is_op("{"), self.closures + 1
                self.at += braced
                args.append(("closure", self.tok.pos, self.expression(0)))
                self.closures -= 1
                if braced:
                    self.expect("}")
            else:
                args.append(self.expression(0))
            if not self.is_op(")"):
                self.expect(",")
        self.expect(")")
        return ("call", pos, name, args)

    def postfix(self, node: _Node) -> _Node:
        while not self.when and self.is_op(".", "?.", "["):
            tok = self.tok
            self.at += 1
            if tok.value == "[":
                low = None if self.is_op(":") else self.expression(0)
                if self.is_op(":"):
                    self.at += 1
                    high = None if self.is_op("]") else self.expression(0)
                    node = ("slice", tok.pos, node, low, high)
                else:
                    node = ("member", tok.pos, node, low, False)
                self.expect("]")
                continue
            name = self.tok
            if name.kind not in ("name", "op") or not str(name.value).isidentifier():
                raise self.fail(f"a name after '{tok.value}'")
            self.at += 1
            if self.is_op("("):  # a method: only sprig's functions are
                if node[:1] != ("name",) or node[2] != "sprig":
                    raise ExpressionError(
                        f"unsupported: the method call '.{name.value}()'", self.source, name.pos
                    )
                node = self.call(f"sprig.{name.value}", node[1], [])
            else:
                node = ("member", tok.pos, node, ("lit", name.pos, name.value), tok.value == "?.")
        return node


@functools.lru_cache(maxsize=1024)
def _parse(source: str, when: bool = False) -> _Node:
    tokens = _when_tokens(source) if when else _expr_tokens(source)
    return _Parser(source, tokens, when=when).parse()


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
            return math.nan if when else _fail("integer divide by zero")
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
            return _fail(f"invalid regular expression {right!r}: {exc}")
    if op == ".." and isinstance(left, int) and isinstance(right, int) and not isinstance(left | right, bool):
        return list(range(left, right + 1)) if right - left < _MAX_ITEMS else _fail("the range is too long")
    if when:  # govaluate's wording (`evaluationFailure.go`)
        expected = "an array" if op == "in" else "a string" if op in ("=~", "!~") else "a number"
        kind = "comparator" if op in _WHEN_BINARY and _WHEN_BINARY[op] == 20 else "modifier"
        bad = left if op != "in" and not is_number(left) else right
        return _fail(f"Value '{go_format(bad)}' cannot be used with the {kind} '{op}', it is not {expected}")
    return _fail(f"invalid operation: {go_type(left)} {op} {go_type(right)}")


def _fail(message: str) -> Any:
    raise FunctionError(message)


class _Evaluator:
    """Evaluates a parsed expression against `env`, as expr-lang's VM (`vm/runtime/runtime.go`) would."""

    def __init__(self, source: str, env: Mapping[str, Any], *, when: bool = False) -> None:
        self.source, self.env, self.when = source, env, when

    def error(self, problem: str, node: _Node) -> ExpressionError:
        return ExpressionError(problem, self.source, node[1])

    def run(self, node: _Node, item: tuple[Any, int] | None = None) -> Any:  # item: a predicate's (#, #index)
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

    def fetch(self, container: Any, key: Any, node: _Node) -> Any:
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

    def slice(self, node: _Node, container: Any, low: Any, high: Any) -> Any:
        if not isinstance(container, list | str):
            raise self.error(f"cannot slice a {go_type(container)}", node)
        bounds = [0 if low is None else low, len(container) if high is None else high]
        if not all(is_number(bound) for bound in bounds):
            raise self.error("slice bounds must be numbers", node)
        low, high = (min(max(int(b) + (len(container) if b < 0 else 0), 0), len(container)) for b in bounds)
        return container[min(low, high) : high]  # expr clamps the bounds (`runtime.Slice`)

    def unary(self, node: _Node, value: Any) -> Any:
        if node[2] == "!" and isinstance(value, bool):
            return not value
        if node[2] in ("-", "+") and is_number(value):
            return -value if node[2] == "-" else value
        if self.when:
            raise self.error(f"Value '{go_format(value)}' cannot be used with the prefix '{node[2]}'", node)
        raise self.error(f"invalid operation: {node[2]}{go_type(value)}", node)

    def binary(self, node: _Node, item: tuple[Any, int] | None) -> Any:
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

    def call(self, node: _Node, item: tuple[Any, int] | None) -> Any:
        name, args = node[2], node[3]
        if name in _CLOSURES:
            return self.predicate(node, item)
        function = SPRIG.get(name[6:]) if name.startswith("sprig.") else FUNCTIONS.get(name)
        if function is None:
            if name in UNSUPPORTED or name.startswith("sprig."):
                raise self.error(f"unsupported: {name}() is not implemented by argoplug's local agent", node)
            names = [*FUNCTIONS, *_CLOSURES]
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

    def predicate(self, node: _Node, item: tuple[Any, int] | None) -> Any:
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


def evaluate(expression: str, env: Mapping[str, Any]) -> Any:
    """Evaluate an expr-lang expression (`github.com/expr-lang/expr`: Argo's `{{=...}}`) against `env`.

    `env` maps names to values (str, int, float, bool, None, list, dict), as `env_from_scope` builds it; the
    functions (`asInt`, `jsonpath`, `sprig.trim`, `filter`, ...) are the language's own. Supported: literals,
    `a.b`, `a['b-c']`, `a[0]`, `a[1:3]`, `?.`, `??`, arithmetic, comparisons, `&&`/`and`, `||`/`or`,
    `!`/`not`, `in`, `contains`, `matches`, `..`, `c ? a : b`, pipes, array and map literals, predicates
    (`filter(xs, {# > 1})`). Returns the value (numbers from JSON are floats, as in Go). Raises
    ExpressionError naming the part that does not parse, the unknown name or function, or the operation
    that fails (`util/expr/argoexpr/eval.go`, `util/expr/env/env.go`).
    """
    return _Evaluator(expression, env).run(_parse(expression))


def env_from_scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    """Nest the engine's flat scope (`inputs.parameters.x`, `steps.a.outputs.result`, `item.key`, ...)
    into the env expressions see: `{"inputs": {"parameters": {"x": ...}}, "steps": {"a": ...}, ...}`.

    As Argo's `util/expand/expand.go` (`Expand`): a key that is also the prefix of another (`item` beside
    `item.key`, `steps.a.outputs.parameters` beside `steps.a.outputs.parameters.p`) gives way to the
    longer one. The values are kept as they are (the scope's strings stay strings).
    """
    prefixes = {key[:i] for key in scope for i, char in enumerate(key) if char == "."}
    env: dict[str, Any] = {}
    for key in sorted(scope):
        if key in prefixes:
            continue
        *parents, last = key.split(".")
        node = env
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = scope[key]
    return env


_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)


def expand(text: str, scope: Mapping[str, Any], *, allow_unresolved: bool = False) -> str:
    """Replace each `{{=EXPR}}` tag of `text` with its value evaluated in `env_from_scope(scope)`.

    Printed as Argo prints it (`util/template/expression_template.go`): a string as it is, anything else as
    Go's `json.Marshal` writes it (`1`, `1.5`, `true`, `[1,2]`, `{"a":"b"}`). A tag ends at the first `}}`;
    plain `{{...}}` tags are left for the engine's substitution. Raises ExpressionError for a tag that does
    not evaluate or evaluates to nil; with `allow_unresolved`, such a tag is left as written, as Argo does
    while variables (`retries`, `workflow.status`, `steps.*`) are not known yet.
    """
    if "{{=" not in text:
        return text
    env = env_from_scope(scope)

    def replace(tag: re.Match[str]) -> str:
        if not tag.group(1).startswith("="):
            return tag.group(0)
        expression = tag.group(1)[1:]
        try:
            value = evaluate(expression, env)
            if value is None:
                raise ExpressionError("the value is nil", expression)
            return value if isinstance(value, str) else go_json(value)
        except FunctionError as exc:
            if allow_unresolved:
                return tag.group(0)
            raise ExpressionError(str(exc), expression) from None
        except ExpressionError:
            if allow_unresolved:
                return tag.group(0)
            raise

    return _TAG.sub(replace, text)


def evaluate_when(condition: str) -> bool:
    """Decide a step's or task's `when`, after `{{...}}` substitution, as Argo does with govaluate.

    A bare word is a string (`heads == heads`, `{{steps.flip-coin.outputs.result}} == heads` once
    substituted), numbers are floats (`5 > 3`), quotes make strings (`"a b" == 'a b'`); `&&`, `||`, `!`,
    `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~`, `!~`, `+ - * / % **`, `in (a, b)`, `c ? a : b` and parentheses
    work; a word with a `-` is a subtraction (quote it), a dotted word an error, as in Argo. An empty
    condition is true (`workflow/controller/steps.go`, `shouldExecute`). Raises ExpressionError with Argo's
    wording: `Invalid 'when' expression ...` (with its hint to quote an invalid token), `Failed to evaluate
    'when' expression ...`, `Expected boolean evaluation for ...`. Unlike govaluate, a quoted date stays a
    string, and the bitwise operators are refused.
    """
    if condition == "":
        return True
    try:
        node = _parse(condition, when=True)
    except ExpressionError as exc:
        hint = (
            ' (hint: try wrapping the affected expression in quotes ("))'
            if "Invalid token" in exc.problem
            else ""
        )
        raise ExpressionError(
            exc.problem + hint, condition, exc.position, what="Invalid 'when' expression"
        ) from None
    try:
        result = _Evaluator(condition, {}, when=True).run(node)
    except ExpressionError as exc:
        what = "Failed to evaluate 'when' expression"
        raise ExpressionError(exc.problem, condition, exc.position, what=what) from None
    if not isinstance(result, bool):
        problem = f"Expected boolean evaluation for '{condition}'. Got {go_format(result)}"
        raise ExpressionError(problem, condition, what="")
    return result


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """What `depends` knows of a DAG task: its node `phase` (`Succeeded`, `Failed`, `Error`, `Skipped`,
    `Omitted`; `Pending`/`Running` while not done), its loop children's phases (`withItems`, ...), whether
    it is `daemoned`, and its `continueOn` (`continue_on_failed`, `continue_on_error`), which widen a
    bare `A` to `A.Failed` / `A.Errored` too.
    """

    phase: str
    children_phases: Sequence[str] = ()
    daemoned: bool = False
    continue_on_failed: bool = False
    continue_on_error: bool = False


# workflow/common/ancestry.go: `A.Result` or a bare task name `A`.
_DEPENDS_NAME = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)|([a-zA-Z0-9][-a-zA-Z0-9]*)")
_TASK_RESULTS = (
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
)


def depends_tasks(expression: str) -> list[str]:
    """The task names a `depends` expression refers to, in order of first mention (`GetTaskDependencies`).

    Every word is a task name, as Argo reads it: `and`, `or` and a lowercase `A.succeeded`'s `succeeded` too,
    so an unknown name is worth reporting. Raises ExpressionError for a result that is not one of Argo's
    (`task result 'Done' for task 'A' is invalid`, `ValidateTaskResults`).
    """
    names: list[str] = []
    for match in _DEPENDS_NAME.finditer(expression):
        name, _, result = (match.group(1) or match.group(2)).partition(".")
        if result and result not in _TASK_RESULTS:
            problem = f"task result '{result}' for task '{name}' is invalid"
            raise ExpressionError(problem, expression, match.start(), what="depends")
        if name not in names:
            names.append(name)
    return names


def evaluate_depends(expression: str, tasks: Mapping[str, TaskResult]) -> bool | None:
    """Decide a DAG task's `depends` (`A.Succeeded && (B.Failed || !C.Skipped)`, `A || B.AnySucceeded`).

    `tasks` holds the results of the tasks known so far, by name. A bare `A` means `(A.Succeeded ||
    A.Skipped || A.Daemoned)`, plus `A.Errored`/`A.Failed` with its continueOn; `dependencies: [A, B]` is
    `A && B`. `AnySucceeded`/`AllFailed` look at the loop children (AllFailed is false without any). Returns
    None while a referenced task is missing or not finished (Argo waits for all of them), else the verdict
    (`workflow/controller/dag.go`, `evaluateDependsLogic`; `workflow/common/ancestry.go`). Raises
    ExpressionError for an invalid result or an expression that does not evaluate to a bool.
    """
    names = depends_tasks(expression)
    if not all(name in tasks and _fulfilled(tasks[name]) for name in names):
        return None
    logic = expression
    for match in reversed(list(_DEPENDS_NAME.finditer(expression))):
        if match.group(2):
            name, result = match.group(2), tasks[match.group(2)]
            extra = [("Errored", result.continue_on_error), ("Failed", result.continue_on_failed)]
            expanded = [f"{name}.{r}" for r in ("Succeeded", "Skipped", "Daemoned")]
            expanded += [f"{name}.{r}" for r, wanted in extra if wanted]
            logic = logic[: match.start()] + "(" + " || ".join(expanded) + ")" + logic[match.end() :]
    logic = logic.replace("-", "_")  # Argo's, so that task names become expr names
    env = {name.replace("-", "_"): _task_results(tasks[name]) for name in names}
    try:
        verdict = evaluate(logic, env)
    except ExpressionError as exc:
        raise ExpressionError(exc.problem, logic, exc.position, what="unable to evaluate depends") from None
    if not isinstance(verdict, bool):
        raise ExpressionError(
            f"unable to cast the result '{go_format(verdict)}' to bool", logic, what="depends"
        )
    return verdict


def _fulfilled(task: TaskResult) -> bool:
    """`NodeStatus.Fulfilled`: a final phase, or a daemon past Pending."""
    return task.phase in ("Succeeded", "Failed", "Error", "Skipped", "Omitted") or (
        task.daemoned and task.phase != "Pending"
    )


def _task_results(task: TaskResult) -> dict[str, bool]:
    children = list(task.children_phases)
    return {
        "Succeeded": task.phase == "Succeeded",
        "Failed": task.phase == "Failed",
        "Errored": task.phase == "Error",
        "Skipped": task.phase == "Skipped",
        "Omitted": task.phase == "Omitted",
        "Daemoned": task.daemoned and task.phase != "Pending",
        "AnySucceeded": "Succeeded" in children,
        "AllFailed": bool(children) and all(phase == "Failed" for phase in children),
    }
