"""Writing for `goyaml`: PyYAML's emitter adapted to yaml.v2's output (emitterc.go, sorter.go): `dump`.

`argoplug.build.goyaml` re-exports `dump`; `argoplug.build.argo` calls it there.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from functools import cmp_to_key
from typing import Any

import yaml
from yaml.emitter import Emitter, ScalarAnalysis
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver
from yaml.serializer import Serializer

from argoplug.build.goyaml.scalars import (
    _MAP,
    _SEQ,
    _STR,
    _format_float,
    _parse_int,
    _plain_is_string,
    json_literal,
)

__all__ = ["dump"]


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
