"""The patch formats of PATCH requests: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

The API server applies them with evanphx/json-patch (endpoints/handlers/patch.go); a strategic merge patch
is applied as a merge patch here (see `argoplug.kube.sandbox`). A JSON patch that does not apply raises
`PatchError` with a message in the words of evanphx/json-patch.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["PatchError", "json_patch", "merge_patch"]


class PatchError(Exception):
    """A JSON patch operation that cannot be applied (a missing path, a failed test, a bad operation)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply the RFC 7386 merge `patch` to `target` and return the result (`target` is not changed):
    objects merge recursively, `null` removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'JSON pointer must be empty or start with a "/": {path!r}')
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], part: str, path: str, *, adding: bool) -> int:
    if part == "-" and adding:
        return len(container)
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise PatchError(f"invalid index {part!r} in path {path}")
    index = int(part)
    if index > len(container) or (index == len(container) and not adding):
        raise PatchError(f"Unable to access invalid index: {index}")
    return index


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            node = node[_index(node, part, path, adding=False)]
        else:
            raise PatchError(f'doc is missing path: "{path}": missing value')
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'doc is missing path: "{path}": missing value')
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, adding=False)]
    raise PatchError(f'doc is missing path: "{path}": missing value')


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, adding=True), value)
    else:
        raise PatchError(f'doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("unable to remove the whole document")
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path, adding=False)]
    else:
        raise PatchError(f'doc is missing path: "{path}": missing value')
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply the RFC 6902 `operations` (add, remove, replace, move, copy, test) to a copy of `target` and
    return it. Raises PatchError when an operation does not apply."""
    if not isinstance(operations, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchError("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        op = operation.get("op")
        path = operation.get("path", "")
        if not isinstance(path, str):
            raise PatchError(f"operation {op!r}: path must be a string")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc = _remove(doc, path)
        elif op == "replace":
            _get(doc, path)
            parts = _pointer(path)
            if not parts:
                doc = copy.deepcopy(operation.get("value"))
            else:
                parent = _parent(doc, parts, path)
                if isinstance(parent, list):
                    parent[_index(parent, parts[-1], path, adding=False)] = copy.deepcopy(
                        operation.get("value")
                    )
                else:
                    parent[parts[-1]] = copy.deepcopy(operation.get("value"))
        elif op == "move":
            source = operation.get("from", "")
            value = _get(doc, source)
            doc = _remove(doc, source)
            doc = _add(doc, path, value)
        elif op == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, operation.get("from", ""))))
        elif op == "test":
            try:
                current = _get(doc, path)
            except PatchError:
                current = None
            if current != operation.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {op}")
    return doc
