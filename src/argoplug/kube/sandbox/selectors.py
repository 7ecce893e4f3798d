"""Label and field selectors of list and watch requests, parsed and matched as the API server does.

Label selectors: k8s.io/apimachinery/pkg/labels/selector.go (`=`, `==`, `!=`, `in`, `notin`, `key`,
`!key`, `>`, `<`); field selectors: pkg/fields/selector.go (`=`, `==`, `!=`, with `\\` escapes) over the
fields each resource supports (its registry's GetAttrs / ToSelectableFields). A bad selector is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from argoplug.kube.sandbox.errors import bad_request
from argoplug.kube.sandbox.resources import ResourceType

__all__ = ["Matcher", "field_selector", "label_selector"]

Matcher = Callable[[Mapping[str, Any]], bool]

_KEY = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$")
_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")


def label_selector(text: str) -> Matcher:
    """A matcher of objects by `metadata.labels` for the selector `text` (empty: everything)."""
    tokens = _TOKEN.findall(text)
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", text):
        raise bad_request(f"unable to parse requirement: invalid selector {text!r}")
    # Callable[..., bool]: each lambda binds its key/values as defaults, which mypy cannot infer otherwise.
    requirements: list[Callable[..., bool]] = []
    i = 0

    def fail(why: str) -> Exception:
        return bad_request(f"unable to parse requirement: {why}")

    def key_at(index: int) -> str:
        if index >= len(tokens) or not _KEY.match(tokens[index]):
            found = tokens[index] if index < len(tokens) else "EOF"
            raise fail(f"found '{found}', expected: identifier")
        return tokens[index]

    while i < len(tokens):
        if tokens[i] == "!":
            key = key_at(i + 1)
            requirements.append(lambda labels, k=key: k not in labels)
            i += 2
        else:
            key = key_at(i)
            op = tokens[i + 1] if i + 1 < len(tokens) else ","
            if op == ",":
                requirements.append(lambda labels, k=key: k in labels)
                i += 1
            elif op in ("=", "==", "!="):
                value = tokens[i + 2] if i + 2 < len(tokens) and tokens[i + 2] != "," else ""
                i += 3 if value else 2
                if op == "!=":
                    requirements.append(lambda labels, k=key, v=value: labels.get(k) != v)
                else:
                    requirements.append(lambda labels, k=key, v=value: labels.get(k) == v)
            elif op in ("in", "notin"):
                if i + 2 >= len(tokens) or tokens[i + 2] != "(":
                    raise fail(f"found '{tokens[i + 2] if i + 2 < len(tokens) else 'EOF'}', expected: '('")
                j = i + 3
                values: set[str] = set()
                while j < len(tokens) and tokens[j] != ")":
                    if tokens[j] != ",":
                        values.add(tokens[j])
                    j += 1
                if j >= len(tokens):
                    raise fail("found 'EOF', expected: ')'")
                i = j + 1
                if op == "in":
                    requirements.append(lambda labels, k=key, vs=frozenset(values): labels.get(k) in vs)
                else:
                    requirements.append(lambda labels, k=key, vs=frozenset(values): labels.get(k) not in vs)
            elif op in (">", "<"):
                try:
                    bound = int(tokens[i + 2])
                except (IndexError, ValueError):
                    raise fail(f"for '{op}', integer values are required") from None
                i += 3
                requirements.append(
                    lambda labels, k=key, b=bound, gt=(op == ">"): _compare(labels.get(k), b, gt)
                )
            else:
                raise fail(f"found '{op}', expected: ',', '!=', '==', '=', 'in', 'notin'")
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found '{tokens[i]}', expected: ','")
            i += 1

    def match(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return match


def _compare(value: str | None, bound: int, greater: bool) -> bool:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return False
    return number is not None and (number > bound if greater else number < bound)


# Per resource (beyond metadata.name / metadata.namespace): the fields its registry makes selectable.
_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("", "pods"): (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    ("", "services"): ("spec.clusterIP", "spec.type"),
    ("", "events"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if path == "source" and isinstance(value, Mapping):
        return str(value.get("component", ""))
    return "" if value is None else str(value)


def _split_term(part: str) -> tuple[str, str, bool] | None:
    """`field!=value`, `field==value` or `field=value` as (field, value, equal); None if no operator."""
    for op, equal in (("!=", False), ("==", True), ("=", True)):
        pieces = _split_on(part, op)
        if pieces is not None:
            return pieces[0], pieces[1], equal
    return None


def field_selector(text: str, rtype: ResourceType) -> Matcher:
    """A matcher for the field selector `text` on objects of `rtype`; an unsupported field is a 400 with the
    API server's message (built-in types: `field label not supported: X`; custom resources: `"X" is not a
    known field selector: only "metadata.name", "metadata.namespace"`)."""
    allowed = ("metadata.name", "metadata.namespace", *_FIELDS.get(rtype.key, ()))
    terms: list[tuple[str, str, bool]] = []
    for part in _split_unescaped(text, ","):
        if not part:
            continue
        term = _split_term(part)
        if term is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, value, equal = term
        field = field.strip()
        if field not in allowed:
            if rtype.custom:
                raise bad_request(
                    f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                )
            raise bad_request(f"field label not supported: {field}")
        terms.append((field, _unescape(value), equal))

    def match(obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, field) == value) == equal for field, value, equal in terms)

    return match


def _split_on(part: str, op: str) -> tuple[str, str] | None:
    index = 0
    while True:
        index = part.find(op, index)
        if index < 0:
            return None
        if index == 0 or part[index - 1] != "\\":
            if op == "=" and index > 0 and part[index - 1] in "!=":
                index += 1
                continue
            return part[:index], part[index + len(op) :]
        index += 1
