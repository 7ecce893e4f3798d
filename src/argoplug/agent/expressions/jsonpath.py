"""Argo's `jsonpath(json, path)` function of `{{=...}}` expressions (`util/expr/env/env.go`, over
github.com/evilmonkeyinc/jsonpath); `functions` registers it.
"""

from __future__ import annotations

import re
from typing import Any

from argoplug.agent.expressions.values import fail, from_json, go_type

__all__ = ["jsonpath"]

# `.[0]` reads as `[0]`, as evilmonkeyinc/jsonpath reads `$.results.[0]` (Understack's templates write it).
_PATH_STEP = re.compile(
    r"\.\.(?P<deep>\*|[^.\[]*)|\.(?P<key>[^.\[]+)|\.?\[(?P<bracket>(?:'[^']*'|\"[^\"]*\"|[^\]])*)\]"
)
_BRACKET_ITEM = re.compile(r"\s*('[^']*'|\"[^\"]*\"|[^,]+?)\s*(?:,|$)")


def jsonpath(document: str, path: str) -> Any:
    """The value at `path` in the JSON text `document`; a list of the matches when the path has `*`, `..`,
    a union or a slice. Paths: `$`, `.key`, `['key']`, `[n]`, `[-n]`, `[a,b]`, `[start:end:step]`, `*`,
    `..key`; a bracket may follow a dot (`$.results.[0]`). Numbers come back as floats, as Go decodes them.

    Raises FunctionError for a path that does not parse or does not match (a key not found, an index out of
    range), and for filters `[?(...)]` and scripts, which this agent does not implement.
    """
    nodes, single, position = [from_json(document)], True, 1
    if not path.startswith("$"):
        fail(f"jsonpath {path!r}: a path starts with '$'")
    while position < len(path):
        step = _PATH_STEP.match(path, position)
        if step is None:
            return fail(f"jsonpath {path!r}: cannot parse {path[position:]!r}")
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
        return fail(
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
            fail(f"jsonpath {path!r}: cannot parse [{text}]")
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
            fail(
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
