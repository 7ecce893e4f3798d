"""Parsing Argo's expressions: `ExpressionError`, the lexers of expr-lang (`{{=...}}`) and govaluate (`when`),
and the precedence-climbing parser that turns either into nodes, `(kind, position, *parts)` tuples.
`argoplug.agent.expressions` calls `parse`; `evaluation` walks the nodes.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

__all__ = ["CLOSURES", "WHEN_BINARY", "ExpressionError", "Node", "parse"]


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


class _Token(NamedTuple):
    """A token of either lexer."""

    kind: str  # "lit", "name", "op" or "eof"
    value: Any
    pos: int


Node = tuple[Any, ...]  # (kind, position, *parts)

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
            if text not in WHEN_BINARY and text not in ("!", "?", ":", "(", ")", ","):
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
WHEN_BINARY = {"??": 1, "||": 10, "&&": 15, "+": 30, "-": 30, "*": 60, "/": 60, "%": 60, "**": 100}
WHEN_BINARY |= dict.fromkeys(("==", "!=", "<", ">", "<=", ">=", "=~", "!~", "in"), 20)
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_COMPARISONS = {"<", ">", "<=", ">="}
CLOSURES = {
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
        self.binary = WHEN_BINARY if when else _BINARY

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

    def parse(self) -> Node:
        node = self.expression(0)
        if self.tok.kind != "eof":
            raise self.fail("an operator or the end")
        return node

    def expression(self, min_power: int) -> Node:
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

    def unary(self) -> Node:
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

    def operand(self) -> Node:
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

    def pair(self) -> tuple[Node, Node]:
        tok = self.tok
        if tok.kind in ("name", "lit"):
            self.at += 1
            key: Node = ("lit", tok.pos, tok.value)
        elif self.is_op("("):
            key = self.unary()
        else:
            raise self.fail("a key")
        self.expect(":")
        return key, self.expression(0)

    def call(self, name: str, pos: int, args: list[Node]) -> Node:
        self.expect("(")
        while not self.is_op(")"):
            if name in CLOSURES and len(args) == 1:  # a predicate, braced or not
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

    def postfix(self, node: Node) -> Node:
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
def parse(source: str, when: bool = False) -> Node:
    """Parse `source` as expr-lang, or as govaluate with `when`, into its root node (cached).

    Raises ExpressionError naming what was expected and where.
    """
    tokens = _when_tokens(source) if when else _expr_tokens(source)
    return _Parser(source, tokens, when=when).parse()
