"""The object store of the Kubernetes API sandbox: objects by (group, resource, namespace, name), with one
global resourceVersion counter, watch history, and the registry storage's create/update/patch/delete rules.

Follows staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go (preconditions, conflicts,
finalizers, generation), pkg/registry/rest (create/update metadata) and the watch cache (history, `Expired`).
The app calls it; `argoplug.kube.sandbox.collector` runs the garbage collector and namespace controller on it.
Thread-safe: every call takes one re-entrant lock. A strategic merge patch is applied as a JSON merge patch
(the resources served have no patch strategies that matter to the tests; `$patch` directives are not read).
"""

from __future__ import annotations

import base64
import builtins
import copy
import dataclasses
import datetime
import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

from argoplug.kube.sandbox import admission, managed
from argoplug.kube.sandbox.errors import (
    ApiStatusError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    expired,
    forbidden,
    internal,
    invalid,
    method_not_supported,
    not_found,
    resource_not_found,
    unprocessable,
)
from argoplug.kube.sandbox.patches import PatchError, json_patch, merge_patch
from argoplug.kube.sandbox.resources import ResourceType, builtin_types, crd_types, name_problems
from argoplug.kube.sandbox.selectors import Matcher

__all__ = ["APPLY", "JSON_PATCH", "MERGE_PATCH", "STRATEGIC_PATCH", "Event", "Store"]

APPLY = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

# utilrand.String's alphabet: no vowels (no words), no 0/1/3 (confusable).
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
_METADATA_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def rfc3339(seconds: float) -> str:
    """metav1.Time on the wire: RFC 3339 in UTC, whole seconds, `Z`."""
    return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Event:
    """A change: `type` ADDED / MODIFIED / DELETED of `obj` (stored form) at resourceVersion `rv`; `old` is
    the object before a MODIFIED (to tell a watch with a selector that an object left it)."""

    type: str
    rtype: ResourceType
    obj: dict[str, Any]
    old: dict[str, Any] | None
    rv: int

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace", ""))


def ordered(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` with kind, apiVersion and metadata first and metadata in ObjectMeta's field order, as Go
    serializes typed objects."""
    out: dict[str, Any] = {}
    for key in ("kind", "apiVersion", "metadata"):
        if key in obj:
            out[key] = obj[key]
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: meta[k] for k in _METADATA_ORDER if k in meta} | {
            k: v for k, v in meta.items() if k not in _METADATA_ORDER
        }
    for key, value in obj.items():
        out.setdefault(key, value)
    return out


class Store:
    """The sandbox's objects. `history` bounds the watch history (events older than the last `history` are
    gone: a watch from before them gets 410 `Expired`). `clock` gives seconds (timestamps)."""

    def __init__(self, *, history: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._rv = 0
        self._history: deque[Event] = deque(maxlen=history)
        self._listeners: list[Callable[[Event], None]] = []
        self._deleted_hooks: list[Callable[[ResourceType, dict[str, Any]], None]] = []
        self._created_hooks: list[Callable[[ResourceType, dict[str, Any]], None]] = []
        self._ips = admission.cluster_ips()
        self.changed = threading.Event()  # set on every write: wakes the collector
        for rtype in builtin_types():
            self.register(rtype)

    # -- types ---------------------------------------------------------------------------------------------

    def register(self, rtype: ResourceType) -> None:
        """Serve `rtype` (a CRD's types replace those of an earlier CRD of the same name)."""
        with self.lock:
            self._types[rtype.key] = rtype
            self._objects.setdefault(rtype.key, {})

    def unregister(self, key: tuple[str, str]) -> None:
        with self.lock:
            self._types.pop(key, None)
            self._objects.pop(key, None)

    def types(self) -> list[ResourceType]:
        with self.lock:
            return list(self._types.values())

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        """The type served at /api(s)/<group>/<version>/<plural>; 404 `the server could not find the
        requested resource` when there is none."""
        rtype = self._types.get((group, plural))
        if rtype is None or version not in rtype.versions:
            raise resource_not_found()
        return rtype

    def type_of(self, api_version: str, kind: str) -> ResourceType | None:
        """The type of objects of `apiVersion`/`kind`, or None."""
        group, _, version = api_version.rpartition("/")
        for rtype in self.types():
            if rtype.group == group and rtype.kind == kind and version in rtype.versions:
                return rtype
        return None

    def on_created(self, hook: Callable[[ResourceType, dict[str, Any]], None]) -> None:
        self._created_hooks.append(hook)

    def on_deleted(self, hook: Callable[[ResourceType, dict[str, Any]], None]) -> None:
        self._deleted_hooks.append(hook)

    # -- reading -------------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def output(
        self, obj: Mapping[str, Any], rtype: ResourceType, version: str | None = None
    ) -> dict[str, Any]:
        """A copy of stored `obj` as served in `version` (its apiVersion rewritten: no conversion)."""
        out = copy.deepcopy(dict(obj))
        out["kind"] = rtype.kind
        out["apiVersion"] = rtype.api_version(version)
        return ordered(out)

    def find(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (not a copy) or None."""
        return self._objects.get(rtype.key, {}).get((namespace if rtype.namespaced else "", name))

    def get(
        self, rtype: ResourceType, namespace: str, name: str, version: str | None = None
    ) -> dict[str, Any]:
        """A copy of the object; 404 NotFound (`secrets "x" not found`) when absent."""
        with self.lock:
            obj = self.find(rtype, namespace, name)
            if obj is None:
                raise not_found(rtype.group, rtype.plural, name)
            return self.output(obj, rtype, version)

    def objects(self, rtype: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        """The stored objects of `rtype` (in `namespace`, or all), by namespace then name (etcd's key
        order)."""
        with self.lock:
            found = self._objects.get(rtype.key, {})
            keys = sorted(k for k in found if namespace is None or k[0] == namespace)
            return [found[k] for k in keys]

    def all_objects(self) -> Iterable[tuple[ResourceType, dict[str, Any]]]:
        with self.lock:
            return [(self._types[key], obj) for key, objs in self._objects.items() for obj in objs.values()]

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        version: str,
        match: Matcher,
        limit: int = 0,
        token: str = "",
    ) -> dict[str, Any]:
        """The List object of the matching objects (`limit` per page, `token` the `continue` of the last).

        Items of built-in types carry no kind/apiVersion, as the API server writes typed lists; a custom
        resource's do. Pages are taken from the current objects, not a snapshot at the first page's version.
        """
        with self.lock:
            start, rv = "", self._rv
            if token:
                try:
                    decoded = json.loads(base64.b64decode(token))
                    start, rv = str(decoded["start"]), int(decoded["rv"])
                except (ValueError, KeyError, TypeError):
                    raise bad_request(
                        "continue key is not valid: incorrect encoded start resourceVersion"
                    ) from None
            items = [
                o
                for o in self.objects(rtype, namespace)
                if match(o) and (not start or self._key_of(o) >= start)
            ]
            metadata: dict[str, Any] = {"resourceVersion": str(rv)}
            if limit and len(items) > limit:
                last = self._key_of(items[limit - 1])
                next_token = {"v": "meta.k8s.io/v1", "rv": rv, "start": last + "\x00"}
                metadata["continue"] = base64.b64encode(json.dumps(next_token).encode()).decode()
                metadata["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            out_items = []
            for item in items:
                out = self.output(item, rtype, version)
                if not rtype.custom:
                    out.pop("kind"), out.pop("apiVersion")
                out_items.append(out)
            return {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version(version),
                "metadata": metadata,
                "items": out_items,
            }

    @staticmethod
    def _key_of(obj: Mapping[str, Any]) -> str:
        return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"

    # -- watching ------------------------------------------------------------------------------------------

    def watch(
        self, rtype: ResourceType, namespace: str | None, since: str, listener: Callable[[Event], None]
    ) -> builtins.list[Event]:
        """Subscribe `listener` to every future event and return the events a watch from `since` starts with:
        synthetic ADDED for every object when `since` is "" or "0", else the history after it. A `since`
        older than the history raises 410 Expired (`too old resource version: 5 (10)`)."""
        with self.lock:
            if since in ("", "0"):
                start = [
                    Event("ADDED", rtype, o, None, int(o["metadata"]["resourceVersion"]))
                    for o in self.objects(rtype, namespace)
                ]
            else:
                try:
                    rv = int(since)
                except ValueError:
                    raise bad_request(
                        f'resourceVersion: Invalid value: "{since}": must be an integer'
                    ) from None
                full = self._history.maxlen is not None and len(self._history) == self._history.maxlen
                oldest = self._history[0].rv if self._history else self._rv + 1
                if full and rv < oldest - 1:
                    raise expired(f"too old resource version: {rv} ({oldest - 1})")
                start = [
                    e
                    for e in self._history
                    if e.rv > rv
                    and e.rtype.key == rtype.key
                    and (namespace is None or e.namespace == namespace)
                ]
            self._listeners.append(listener)
            return start

    def unwatch(self, listener: Callable[[Event], None]) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _emit(self, kind: str, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        event = Event(kind, rtype, copy.deepcopy(obj), old, self._rv)
        self._history.append(event)
        for listener in list(self._listeners):
            listener(event)
        self.changed.set()

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    # -- writing -------------------------------------------------------------------------------------------

    def _check_type(self, rtype: ResourceType, obj: Mapping[str, Any], version: str) -> None:
        if not isinstance(obj, Mapping):
            raise bad_request(f"the object provided is unrecognized (must be of type {rtype.kind})")
        expected = rtype.api_version(version)
        api_version = obj.get("apiVersion") or expected
        kind = obj.get("kind") or rtype.kind
        if kind != rtype.kind:
            raise bad_request(
                f'{kind} in version "{api_version.rpartition("/")[2]}" cannot be handled as a {rtype.kind}: '
                f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})"
            )
        if api_version != expected:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({expected})"
            )

    def _check_namespace(self, rtype: ResourceType, namespace: str, name: str) -> None:
        if not rtype.namespaced:
            return
        ns = self._objects[("", "namespaces")].get(("", namespace))
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            error = forbidden(
                rtype.group,
                rtype.plural,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )
            error.status["details"]["causes"] = [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ]
            raise error

    def create(
        self,
        rtype: ResourceType,
        namespace: str,
        body: Mapping[str, Any],
        *,
        version: str,
        manager: str,
        dry_run: bool = False,
        applied: bool = False,
    ) -> dict[str, Any]:
        """Create `body` (POST); return it as stored (201). 409 AlreadyExists, 404 for a missing namespace,
        422 Invalid (name, generateName, the type's validation), 400 for a body of another kind/apiVersion,
        500 for a body with a resourceVersion (as etcd3's store refuses it)."""
        with self.lock:
            if "create" not in rtype.verbs or not rtype.stored:
                raise method_not_supported(rtype.group, rtype.plural, "create")
            self._check_type(rtype, body, version)
            admission.decode(rtype, body, version)
            obj = copy.deepcopy(dict(body))
            meta = obj.setdefault("metadata", {})
            if rtype.namespaced:
                if meta.get("namespace") and meta["namespace"] != namespace:
                    raise bad_request(
                        "the namespace of the provided object does not match the namespace sent on the "
                        "request"
                    )
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            if meta.get("resourceVersion"):
                raise internal("resourceVersion should not be set on objects to be created")
            if not meta.get("name") and meta.get("generateName"):
                base = str(meta["generateName"])[:58]
                meta["name"] = base + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            name = str(meta.get("name") or "")
            # An apply that creates brings the applier's managedFields (Store._apply); any other create's
            # are the server's to write.
            for key in (*(() if applied else ("managedFields",)), *_SERVER_METADATA):
                meta.pop(key, None)
            now = rfc3339(self.clock())
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now
            if rtype.generation:
                meta["generation"] = 1
            if rtype.status and rtype.custom:
                obj.pop("status", None)
            obj["kind"], obj["apiVersion"] = rtype.kind, rtype.api_version()
            admission.prepare(rtype, obj, None, ips=self._ips)
            errors = self._meta_errors(rtype, meta) + admission.validate(rtype, obj, None)
            if errors:
                raise invalid(rtype.group, rtype.kind, name, errors)
            self._check_namespace(rtype, namespace, name)
            if self.find(rtype, namespace, name) is not None:
                raise already_exists(rtype.group, rtype.plural, name)
            if not applied:
                managed.record_update(
                    None, obj, rtype, manager=manager, api_version=rtype.api_version(version), now=now
                )
            if dry_run:
                return self.output(obj, rtype, version)
            meta["resourceVersion"] = self._next_rv()
            stored = ordered(obj)
            self._objects[rtype.key][(namespace if rtype.namespaced else "", name)] = stored
            self._emit("ADDED", rtype, stored, None)
            for hook in self._created_hooks:
                hook(rtype, stored)
            return self.output(stored, rtype, version)

    def _meta_errors(self, rtype: ResourceType, meta: Mapping[str, Any]) -> builtins.list[FieldError]:
        """ValidateObjectMeta: name (or generateName) present and valid for the type's name rule."""
        errors = []
        generate = meta.get("generateName")
        if generate:
            for problem in name_problems(rtype.names, str(generate), prefix=True):
                errors.append(FieldError.invalid("metadata.generateName", generate, problem))
        name = meta.get("name")
        if not name:
            errors.append(FieldError.required("metadata.name", "name or generateName is required"))
        else:
            for problem in name_problems(rtype.names, str(name)):
                errors.append(FieldError.invalid("metadata.name", name, problem))
        for field in ("labels", "annotations"):
            if meta.get(field) is not None and not isinstance(meta[field], dict):
                errors.append(FieldError.invalid(f"metadata.{field}", str(meta[field]), "must be a map"))
        return errors

    def replace(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        *,
        version: str,
        manager: str,
        subresource: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace the object (PUT) with `body`; its resourceVersion, when set, must be the stored one (409
        Conflict otherwise); custom resources require it (422). On `status` only `.status` changes; on the
        main resource of a type with a status subresource, `.status` is kept."""
        with self.lock:
            self._check_type(rtype, body, version)
            admission.decode(rtype, body, version)
            existing = self.find(rtype, namespace, name)
            if existing is None:
                raise not_found(rtype.group, rtype.plural, name)
            body_name = (body.get("metadata") or {}).get("name")
            if body_name != name:
                raise bad_request(
                    f"the name of the object ({body_name}) does not match the name on the URL ({name})"
                )
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if not rv and rtype.custom:
                error = FieldError.invalid("metadata.resourceVersion", 0, "must be specified for an update")
                raise invalid(rtype.group, rtype.plural, name, [error])
            if rv and rv != existing["metadata"]["resourceVersion"]:
                raise conflict(rtype.group, rtype.plural, name)
            return self._update(
                rtype,
                existing,
                dict(body),
                version=version,
                manager=manager,
                subresource=subresource,
                dry_run=dry_run,
            )

    def _update(
        self,
        rtype: ResourceType,
        existing: dict[str, Any],
        body: dict[str, Any],
        *,
        version: str,
        manager: str,
        subresource: str,
        dry_run: bool,
        applied: bool = False,
    ) -> dict[str, Any]:
        name = existing["metadata"]["name"]
        if subresource == "status":
            new = copy.deepcopy(existing)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
            if applied:
                new["metadata"]["managedFields"] = copy.deepcopy(body["metadata"].get("managedFields", []))
        else:
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            old_meta = existing["metadata"]
            if meta.get("uid") and meta["uid"] != old_meta["uid"]:
                error = FieldError.invalid("metadata.uid", meta["uid"], "field is immutable")
                raise invalid(rtype.group, rtype.kind, name, [error])
            for key in ("name", "namespace", "resourceVersion", *_SERVER_METADATA):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if not applied:
                meta.pop("managedFields", None)
                if "managedFields" in old_meta:
                    meta["managedFields"] = copy.deepcopy(old_meta["managedFields"])
            if rtype.status:
                if "status" in existing:
                    new["status"] = copy.deepcopy(existing["status"])
                else:
                    new.pop("status", None)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
                if added:
                    error = FieldError.forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {json.dumps(sorted(added))}",
                    )
                    raise invalid(rtype.group, rtype.kind, name, [error])
        new["kind"], new["apiVersion"] = rtype.kind, rtype.api_version()
        admission.prepare(rtype, new, existing, ips=self._ips)
        errors = self._meta_errors(rtype, new["metadata"]) + admission.validate(rtype, new, existing)
        if errors:
            raise invalid(rtype.group, rtype.kind, name, errors)
        if rtype.generation and _spec_of(new, rtype) != _spec_of(existing, rtype):
            new["metadata"]["generation"] = int(existing["metadata"].get("generation", 0)) + 1
        now = rfc3339(self.clock())
        if not applied:
            managed.record_update(
                existing,
                new,
                rtype,
                manager=manager,
                api_version=rtype.api_version(version),
                subresource=subresource,
                now=now,
            )
        if _without_times(new) == _without_times(existing):
            return self.output(existing, rtype, version)  # a no-op update writes nothing (GuaranteedUpdate)
        if dry_run:
            return self.output(new, rtype, version)
        new["metadata"]["resourceVersion"] = self._next_rv()
        stored = ordered(new)
        self._objects[rtype.key][(existing["metadata"].get("namespace", ""), name)] = stored
        self._emit("MODIFIED", rtype, stored, existing)
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            self._remove(rtype, stored)
        return self.output(stored, rtype, version)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        *,
        version: str,
        manager: str,
        field_manager: str,
        force: bool | None,
        subresource: str = "",
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Patch the object (PATCH) with a JSON merge, strategic merge (as merge), JSON or apply patch;
        return it and whether it was created (an apply of an absent object creates it: 201). A custom
        resource takes no strategic merge patch: 415, as the apiextensions-apiserver's handler lists
        only JSON, merge and apply patches for it."""
        with self.lock:
            if rtype.custom and content_type == STRATEGIC_PATCH:
                raise _unsupported_media(content_type, custom=True)
            if content_type == APPLY:
                if not field_manager:
                    error = FieldError.required("fieldManager", "is required for apply patch")
                    raise invalid("meta.k8s.io", "PatchOptions", "", [error])
                return self._apply(
                    rtype,
                    namespace,
                    name,
                    body,
                    version=version,
                    manager=field_manager,
                    force=bool(force),
                    subresource=subresource,
                    dry_run=dry_run,
                )
            if force is not None:
                error = FieldError.forbidden("force", "may not be specified for non-apply patch")
                raise invalid("meta.k8s.io", "PatchOptions", "", [error])
            existing = self.find(rtype, namespace, name)
            if existing is None:
                raise not_found(rtype.group, rtype.plural, name)
            try:
                operations = json.loads(body)
            except ValueError as exc:
                raise bad_request(f"error decoding patch: {exc}") from None
            current = self.output(existing, rtype, version)
            if content_type in (MERGE_PATCH, STRATEGIC_PATCH):
                if not isinstance(operations, dict):
                    raise bad_request(
                        "json: cannot unmarshal array into Go value of type map[string]interface {}"
                    )
                patched = merge_patch(current, operations)
            elif content_type == JSON_PATCH:
                try:
                    patched = json_patch(current, operations)
                except PatchError as exc:
                    raise unprocessable(str(exc)) from None
            else:
                raise _unsupported_media(content_type)
            if not isinstance(patched, dict):
                raise bad_request("the patched object is not a JSON object")
            patched_meta = patched.get("metadata") or {}
            if patched_meta.get("name") != name:
                raise bad_request(
                    f"the name of the object ({patched_meta.get('name')}) does not match the name on the "
                    f"URL ({name})"
                )
            rv = patched_meta.get("resourceVersion")
            if rv and rv != existing["metadata"]["resourceVersion"]:
                raise conflict(rtype.group, rtype.plural, name)
            self._check_type(rtype, patched, version)
            admission.decode(rtype, patched, version)
            updated = self._update(
                rtype,
                existing,
                patched,
                version=version,
                manager=manager,
                subresource=subresource,
                dry_run=dry_run,
            )
            return updated, False

    def _apply(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: bytes,
        *,
        version: str,
        manager: str,
        force: bool,
        subresource: str,
        dry_run: bool,
    ) -> tuple[dict[str, Any], bool]:
        try:
            applied = yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from None
        if not isinstance(applied, dict):
            raise bad_request("error decoding YAML: the applied configuration is not an object")
        self._check_type(rtype, applied, version)
        admission.decode(rtype, applied, version)
        applied.setdefault("metadata", {})
        if applied["metadata"].get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({applied['metadata']['name']}) does not match the name on the "
                f"URL ({name})"
            )
        applied["metadata"]["name"] = name
        now = rfc3339(self.clock())
        api_version = rtype.api_version(version)
        existing = self.find(rtype, namespace, name)
        if existing is None:
            if subresource:
                raise not_found(rtype.group, rtype.plural, name)
            new = copy.deepcopy(applied)
            new["metadata"].pop("managedFields", None)
            new["metadata"]["managedFields"] = [
                {
                    "manager": manager,
                    "operation": "Apply",
                    "apiVersion": api_version,
                    "time": now,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {},
                }
            ]
            paths = managed.field_paths(applied, rtype)
            new["metadata"]["managedFields"][0]["fieldsV1"] = managed._encode(paths)
            if not paths:
                new["metadata"].pop("managedFields")
            created = self.create(
                rtype, namespace, new, version=version, manager=manager, dry_run=dry_run, applied=True
            )
            return created, True
        live = self.output(existing, rtype, version)
        merged = managed.apply(
            live,
            applied,
            rtype,
            manager=manager,
            force=force,
            api_version=api_version,
            subresource=subresource,
            now=now,
        )
        updated = self._update(
            rtype,
            existing,
            merged,
            version=version,
            manager=manager,
            subresource=subresource,
            dry_run=dry_run,
            applied=True,
        )
        return updated, False

    def delete(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        *,
        version: str,
        propagation: str | None = None,
        dry_run: bool = False,
        preconditions: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Delete the object (DELETE); return the response body and whether it is gone now.

        Gone at once (no finalizers, Background): a `Status` Success naming it. With finalizers, Foreground
        (finalizer `foregroundDeletion`) or Orphan (`orphan`): the object, with its deletionTimestamp, left
        for the collector. A Namespace: the object, Terminating, left for the namespace controller.
        """
        with self.lock:
            existing = self.find(rtype, namespace, name)
            if existing is None:
                raise not_found(rtype.group, rtype.plural, name)
            meta = existing["metadata"]
            for key in ("uid", "resourceVersion"):
                wanted = (preconditions or {}).get(key)
                if wanted and wanted != meta.get(key):
                    raise conflict(
                        rtype.group,
                        rtype.plural,
                        name,
                        f"Precondition failed: {key.upper() if key == 'uid' else 'ResourceVersion'} "
                        f"in precondition: {wanted}, {key.upper() if key == 'uid' else 'ResourceVersion'} "
                        f"in object meta: {meta.get(key)}",
                    )
            if rtype.key == ("", "namespaces") and name in _IMMORTAL_NAMESPACES:
                raise forbidden("", "namespaces", name, "this namespace may not be deleted")
            if propagation not in (None, "Background", "Foreground", "Orphan"):
                error = FieldError(
                    "FieldValueNotSupported",
                    "propagationPolicy",
                    'supported values: "Foreground", "Background", "Orphan", "nil"',
                    propagation,
                    has_value=True,
                )
                raise invalid("meta.k8s.io", "DeleteOptions", "", [error])
            if dry_run:
                return self.output(existing, rtype, version), False
            if meta.get("deletionTimestamp"):
                return self.output(existing, rtype, version), False
            finalizers = list(meta.get("finalizers") or ())
            if propagation == "Foreground" and FOREGROUND not in finalizers:
                finalizers = [f for f in finalizers if f != ORPHAN] + [FOREGROUND]
            elif propagation == "Orphan" and ORPHAN not in finalizers:
                finalizers = [f for f in finalizers if f != FOREGROUND] + [ORPHAN]
            elif propagation == "Background":
                finalizers = [f for f in finalizers if f not in (FOREGROUND, ORPHAN)]
            if rtype.key == ("", "namespaces"):
                new = copy.deepcopy(existing)
                new["metadata"]["deletionTimestamp"] = rfc3339(self.clock())
                new["status"] = {"phase": "Terminating"}
                self._write(rtype, existing, new)
                return self.output(new, rtype, version), False
            if finalizers:
                new = copy.deepcopy(existing)
                new["metadata"]["deletionTimestamp"] = rfc3339(self.clock())
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["finalizers"] = finalizers
                self._write(rtype, existing, new)
                return self.output(new, rtype, version), False
            self._remove(rtype, existing)
            details = {"name": name}
            if rtype.group:
                details["group"] = rtype.group
            details |= {"kind": rtype.plural, "uid": meta["uid"]}
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }, True

    def _write(self, rtype: ResourceType, existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Store `new` over `existing` as a MODIFIED (the collector's and namespace controller's writes)."""
        new["metadata"]["resourceVersion"] = self._next_rv()
        stored = ordered(new)
        key = (existing["metadata"].get("namespace", ""), existing["metadata"]["name"])
        self._objects[rtype.key][key] = stored
        self._emit("MODIFIED", rtype, stored, existing)
        meta = stored["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rtype.key != ("", "namespaces"):
            self._remove(rtype, stored)
        return stored

    def _remove(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        stored = self._objects[rtype.key].pop(key, None)
        if stored is None:
            return
        gone = copy.deepcopy(stored)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", rtype, gone, None)
        for hook in self._deleted_hooks:
            hook(rtype, stored)

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        version: str,
        match: Matcher,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete every matching object (DELETE on a collection); return the List of them."""
        with self.lock:
            if "deletecollection" not in rtype.verbs:
                raise method_not_supported(rtype.group, rtype.plural, "deletecollection")
            deleted = []
            for obj in self.objects(rtype, namespace):
                if match(obj):
                    deleted.append(self.output(obj, rtype, version))
                    self.delete(
                        rtype,
                        obj["metadata"].get("namespace", ""),
                        obj["metadata"]["name"],
                        version=version,
                        propagation=propagation,
                        dry_run=dry_run,
                    )
            return {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version(version),
                "metadata": {"resourceVersion": str(self._rv)},
                "items": deleted,
            }

    # -- the collector's and controllers' writes -------------------------------------------------------------

    def set_fields(
        self, rtype: ResourceType, obj: dict[str, Any], change: Callable[[dict[str, Any]], None]
    ) -> None:
        """Write `obj` changed by `change` (a controller's update, no ownership recorded)."""
        with self.lock:
            current = self.find(rtype, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if current is None:
                return
            new = copy.deepcopy(current)
            change(new)
            if new != current:
                self._write(rtype, current, new)

    def finish_namespace(self, obj: dict[str, Any]) -> None:
        """Remove a Terminating namespace (its content is gone): the namespace controller's finalize."""
        with self.lock:
            rtype = self._types[("", "namespaces")]
            current = self.find(rtype, "", obj["metadata"]["name"])
            if current is not None:
                self._remove(rtype, current)


def _spec_of(obj: Mapping[str, Any], rtype: ResourceType) -> dict[str, Any]:
    """What a change of bumps `metadata.generation`: all but metadata, and but `status` where it is a
    subresource (a custom resource without one counts its status too: apiextensions-apiserver's
    customresource strategy.go PrepareForUpdate)."""
    ignored: tuple[str, ...] = ("metadata", "kind", "apiVersion")
    if not rtype.custom or "status" in rtype.subresources:
        ignored += ("status",)
    return {k: v for k, v in obj.items() if k not in ignored}


def _without_times(obj: Mapping[str, Any]) -> Any:
    # IgnoreManagedFieldsTimestampsTransformer: an update that changes nothing but managedFields times is a
    # no-op.
    out = copy.deepcopy(dict(obj))
    for entry in out.get("metadata", {}).get("managedFields") or ():
        entry.pop("time", None)
    return out


def _unsupported_media(content_type: str, *, custom: bool = False) -> ApiStatusError:
    accepted = (
        (JSON_PATCH, MERGE_PATCH, APPLY) if custom else (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY)
    )
    error = bad_request(
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}"
    )
    error.status["code"] = 415
    error.status["reason"] = "UnsupportedMediaType"
    return error


def crd_registrar(store: Store) -> None:
    """Make `store` serve the resources of each CRD created, and stop (deleting their objects) when the CRD
    is deleted (the apiextensions-apiserver; the CRD's cleanup finalizer is not modelled)."""

    def created(rtype: ResourceType, obj: dict[str, Any]) -> None:
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            store.register(crd_types(obj))

    def deleted(rtype: ResourceType, obj: dict[str, Any]) -> None:
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            spec = obj["spec"]
            key = (spec["group"], spec["names"]["plural"])
            served = store._types.get(key)
            if served is not None:
                for item in store.objects(served):
                    store._remove(served, item)
            store.unregister(key)

    store.on_created(created)
    store.on_deleted(deleted)
