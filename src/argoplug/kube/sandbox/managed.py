"""Field ownership (`metadata.managedFields`) and server-side apply, in a simplified but honest model.

Each entry records, per manager, operation (`Apply` or `Update`) and subresource, the set of leaf field
paths it set. An update owns what it changed (taking it from the others); an apply conflicts when it sets a
field another manager owns to a different value (409 with structured-merge-diff's message, unless forced,
which takes the field over), shares a field set to the same value, and removes the fields it owned alone
and no longer applies. Simplified from k8s.io/apimachinery/pkg/util/managedfields and structured-merge-diff:
every list is atomic (no merge keys: a list is one field), and a map is granular unless its schema says
`x-kubernetes-map-type: atomic`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from argoplug.kube.sandbox.errors import apply_conflict
from argoplug.kube.sandbox.resources import ResourceType

__all__ = ["apply", "field_paths", "record_update"]

Path = tuple[str, ...]

# The metadata fields whose ownership is tracked; the rest (name, uid, resourceVersion, ...) are the server's.
_TRACKED_METADATA = ("labels", "annotations", "ownerReferences", "finalizers")


def _leaves(value: Any, prefix: Path, atomic: frozenset[Path], out: set[Path]) -> None:
    if isinstance(value, dict) and value and prefix not in atomic:
        for key, sub in value.items():
            _leaves(sub, (*prefix, key), atomic, out)
    elif prefix:
        out.add(prefix)


def field_paths(obj: Mapping[str, Any], rtype: ResourceType, subresource: str = "") -> set[Path]:
    """The leaf paths of `obj` whose ownership is tracked: under `status` for a status write (of a type with
    the subresource), everything else but apiVersion/kind and the server's metadata otherwise."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            for meta_key in _TRACKED_METADATA:
                if meta_key in (value or {}):
                    _leaves(value[meta_key], ("metadata", meta_key), rtype.atomic, out)
            continue
        if rtype.status and (key == "status") != (subresource == "status"):
            continue
        _leaves(value, (key,), rtype.atomic, out)
    return out


_MISSING = object()


def get_path(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _set_path(obj: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(obj.get(key), dict):
            obj[key] = {}
        obj = obj[key]
    obj[path[-1]] = copy.deepcopy(value)


def _delete_path(obj: dict[str, Any], path: Path) -> None:
    chain = [obj]
    for key in path[:-1]:
        nxt = chain[-1].get(key)
        if not isinstance(nxt, dict):
            return
        chain.append(nxt)
    chain[-1].pop(path[-1], None)
    # Prune the maps the removal emptied (Go omits empty maps of typed objects).
    for depth in range(len(chain) - 1, 0, -1):
        if chain[depth]:
            break
        chain[depth - 1].pop(path[depth - 1], None)


def _overlaps(a: Path, b: Path) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def _decode(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, sub in fields.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        children = _decode(sub, path) if isinstance(sub, Mapping) else set()
        out |= children or {path}
    return out


def _encode(paths: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return root


class _Entry:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.manager = str(raw.get("manager", ""))
        self.operation = str(raw.get("operation", "Update"))
        self.api_version = str(raw.get("apiVersion", ""))
        self.time = raw.get("time")
        self.subresource = str(raw.get("subresource", ""))
        self.paths = _decode(raw.get("fieldsV1") or {})

    def identity(self) -> tuple[str, str, str, str]:
        # BuildManagerIdentifier: an applier is the same whatever its apiVersion; an updater is not.
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, self.subresource, version)

    def describe(self) -> str:
        """printManager of structured-merge-diff's conflict message."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def render(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"manager": self.manager, "operation": self.operation}
        entry["apiVersion"] = self.api_version
        if self.time:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = _encode(self.paths)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def _entries(obj: Mapping[str, Any]) -> list[_Entry]:
    return [_Entry(raw) for raw in (obj.get("metadata") or {}).get("managedFields") or ()]


def _own(
    entries: list[_Entry], manager: str, operation: str, subresource: str, api_version: str, now: str
) -> _Entry:
    probe = _Entry(
        {"manager": manager, "operation": operation, "subresource": subresource, "apiVersion": api_version}
    )
    for entry in entries:
        if entry.identity() == probe.identity():
            entry.api_version, entry.time = api_version, now
            return entry
    probe.time = now
    entries.append(probe)
    return probe


def _store(obj: dict[str, Any], entries: list[_Entry]) -> None:
    rendered = [entry.render() for entry in entries if entry.paths]
    if rendered:
        obj["metadata"]["managedFields"] = rendered
    else:
        obj["metadata"].pop("managedFields", None)


def record_update(
    old: Mapping[str, Any] | None,
    new: dict[str, Any],
    rtype: ResourceType,
    *,
    manager: str,
    api_version: str,
    subresource: str = "",
    now: str,
) -> None:
    """Record in `new`'s managedFields that `manager` (operation Update) set what differs from `old` (None
    for a create: everything): it owns those fields now, and removed fields are no one's."""
    before = field_paths(old, rtype, subresource) if old is not None else set()
    after = field_paths(new, rtype, subresource)
    changed = {p for p in after if old is None or get_path(old, p) != get_path(new, p)}
    removed = before - after
    entries = _entries(old) if old is not None else []
    if not changed and not removed:
        _store(new, entries)
        return
    for entry in entries:
        if entry.subresource == subresource:
            entry.paths = {p for p in entry.paths if not any(_overlaps(p, q) for q in changed | removed)}
    if changed:
        mine = _own(entries, manager, "Update", subresource, api_version, now)
        mine.paths |= changed
    _store(new, entries)


def apply(
    live: Mapping[str, Any],
    applied: Mapping[str, Any],
    rtype: ResourceType,
    *,
    manager: str,
    force: bool,
    api_version: str,
    subresource: str = "",
    now: str,
) -> dict[str, Any]:
    """Server-side apply `applied` (the manager's whole intent) over `live`; return the new object.

    Raises the API server's 409 apply conflict (`Apply failed with 1 conflict: conflict with "m": .data.x`)
    when, without `force`, a field another manager owns would change value.
    """
    entries = _entries(live)
    new_paths = field_paths(applied, rtype, subresource)
    conflicts: list[tuple[_Entry, Path]] = []
    for entry in entries:
        if entry.manager == manager and entry.operation == "Apply" and entry.subresource == subresource:
            continue
        for owned in sorted(entry.paths):
            for path in new_paths:
                if _overlaps(owned, path) and get_path(live, path) != get_path(applied, path):
                    conflicts.append((entry, owned))
                    break
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for entry, owned in conflicts:
        entry.paths.discard(owned)
    result = copy.deepcopy(dict(live))
    mine = _own(entries, manager, "Apply", subresource, api_version, now)
    others = [e for e in entries if e is not mine]
    for path in mine.paths - new_paths:
        if not any(_overlaps(path, q) for e in others for q in e.paths):
            _delete_path(result, path)
    for path in sorted(new_paths):
        _set_path(result, path, get_path(applied, path))
    mine.paths = new_paths
    _store(result, entries)
    return result


def _conflict_error(conflicts: list[tuple[_Entry, Path]]) -> Exception:
    """merge.Conflicts as fieldmanager's NewConflictError words them (one, or several by manager)."""

    def text(path: Path) -> str:
        return "".join(f".{key}" for key in path)

    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {entry.describe()}",
            "field": text(path),
        }
        for entry, path in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        return apply_conflict(
            causes, f"Apply failed with 1 conflict: conflict with {entry.describe()}: {text(path)}"
        )
    by_manager: dict[str, list[Path]] = {}
    for entry, path in conflicts:
        by_manager.setdefault(entry.describe(), []).append(path)
    lines = []
    for described in sorted(by_manager):
        lines.append(f"conflicts with {described}:")
        lines.extend(f"- {text(path)}" for path in by_manager[described])
    return apply_conflict(causes, f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines))
