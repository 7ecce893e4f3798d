"""`argoplug deploy` and `argoplug destroy`: a bundle's built objects applied to a cluster per namespace,
labelled as the bundle's, pruned when the bundle no longer declares them, and removed again.

What is applied is what `argoplug build` writes for each plugin instance (`argoplug.build.bundle.
instance_bundles`): the ConfigMap, ServiceAccount and its token Secret, the plugin's Role and RoleBinding,
the agent's Role and RoleBinding. Each object is applied with server-side apply under the field manager
`argoplug-deploy` and carries the labels `argoplug.dev/bundle` and `argoplug.dev/instance`, by which
`--prune` and `destroy` find what the bundle owns. A namespace is one unit: its objects are applied in
dependency order, then the deploy hooks of its instances run (`argoplug.hookspecs`); a failure rolls back
that namespace (objects created by this run deleted, changed ones put back, pruned ones made again) and
the others go on. AWS Orbit's per-team plugins worked so, without the rollback, the dry run or the typed
parameters.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from argoplug.build.bundle import Bundle, BundleError, instance_bundles, select_namespaces
from argoplug.build.writer import parameters_of, render_instance
from argoplug.hooks import HookError, failure_message, implementations, plugin_manager
from argoplug.hookspecs import DeployContext
from argoplug.registry import load

__all__ = [
    "BUNDLE_LABEL",
    "FIELD_MANAGER",
    "INSTANCE_LABEL",
    "Change",
    "NamespaceOutcome",
    "NamespacedClient",
    "Unit",
    "deploy",
    "destroy",
    "plan",
]

FIELD_MANAGER = "argoplug-deploy"
BUNDLE_LABEL = "argoplug.dev/bundle"
INSTANCE_LABEL = "argoplug.dev/instance"
# Dependency order: a RoleBinding names its Role, a token Secret its ServiceAccount; the ConfigMap, which
# makes Argo add the sidecar to agent pods, comes last.
KINDS = ("ServiceAccount", "Secret", "Role", "RoleBinding", "ConfigMap")
_BUILT_FILES = ("service-account.yaml", "plugin-role.yaml", "agent-role.yaml")
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")


@dataclasses.dataclass
class Unit:
    """One plugin instance in one namespace: its `objects` (as built, labelled) and its packages' modules."""

    namespace: str
    instance: str
    bundle: Bundle
    objects: list[dict[str, Any]]
    parameters: Any
    packages: list[tuple[str, object]]


@dataclasses.dataclass(frozen=True)
class Change:
    """What deploy did (or, in a dry run, would do) to one object: `action` created, changed (with the
    top-level `fields` that differ), unchanged or deleted."""

    namespace: str
    kind: str
    name: str
    action: str
    fields: tuple[str, ...] = ()

    def line(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action:9} {self.kind}/{self.name} in {self.namespace}{detail}"


@dataclasses.dataclass
class NamespaceOutcome:
    """One namespace's result: its `changes`, and `error` (what failed, naming the package or object)
    when it was rolled back."""

    namespace: str
    changes: list[Change] = dataclasses.field(default_factory=list)
    error: str = ""


# --- the plan: what the bundle builds ---------------------------------------------------------------------


def plan(bundle: Bundle) -> list[Unit]:
    """Return the bundle's units (one per plugin instance), their objects as `argoplug build` writes them,
    labelled. Raises BundleError (before anything is written anywhere) for a bad instance, naming its
    namespace, instance and field: a parameter its package's `argoplug_parameters_type` refuses."""
    units = []
    for namespace, name, own in instance_bundles(bundle):
        files, _ = render_instance(bundle, namespace if bundle.instances else "", name, own)
        objects = []
        for file in (f"{own.sidecar_name}-configmap.yaml", *_BUILT_FILES):
            for obj in yaml.safe_load_all(files.get(file, "")):
                if obj:
                    labels = obj["metadata"].setdefault("labels", {})
                    labels[BUNDLE_LABEL], labels[INSTANCE_LABEL] = bundle.name, name
                    objects.append(obj)
        loaded = load(own.plugins)
        manager = plugin_manager(loaded.packages)
        package = own.plugins[0]
        where = f"namespace {namespace}, instance {name}: parameters"
        parameters = parameters_of(manager, package, own.settings.get(package, {}), where)
        units.append(Unit(namespace, name, own, objects, parameters, list(loaded.packages)))
    return units


# --- the namespace-limited client of the hooks --------------------------------------------------------------


class NamespacedClient:
    """A lightkube client limited to `namespace`: `get`, `list`, `apply`, `create`, `patch`, `delete` of
    namespaced resources there; anything else raises PermissionError. What it creates or applies anew is
    recorded (`created`) so that a rollback deletes it. With `dry_run` nothing is written."""

    def __init__(self, client: Any, namespace: str, *, dry_run: bool = False) -> None:
        self._client = client
        self.namespace = namespace
        self.dry_run = dry_run
        self.created: list[tuple[Any, str]] = []

    def _check(self, res: Any, namespace: str | None) -> None:
        from lightkube.core.resource import NamespacedResource

        if not (isinstance(res, type) and issubclass(res, NamespacedResource)):
            raise PermissionError(f"a deploy hook may only use namespaced resources, not {res}")
        if namespace not in (None, self.namespace):
            raise PermissionError(f"a deploy hook of namespace {self.namespace!r} may not use {namespace!r}")

    def get(self, res: Any, name: str) -> Any:
        self._check(res, None)
        return self._client.get(res, name, namespace=self.namespace)

    def list(self, res: Any, **options: Any) -> list[Any]:
        self._check(res, options.pop("namespace", None))
        return list(self._client.list(res, namespace=self.namespace, **options))

    def apply(self, obj: Any) -> Any:
        return self._write(obj, lambda: self._client.apply(
            obj, namespace=self.namespace, field_manager=FIELD_MANAGER, force=True, dry_run=self.dry_run
        ))  # fmt: skip

    def create(self, obj: Any) -> Any:
        return self._write(
            obj, lambda: self._client.create(obj, namespace=self.namespace, dry_run=self.dry_run)
        )

    def patch(self, res: Any, name: str, patch: Any, **options: Any) -> Any:
        self._check(res, options.pop("namespace", None))
        return self._client.patch(res, name, patch, namespace=self.namespace, dry_run=self.dry_run, **options)

    def delete(self, res: Any, name: str) -> None:
        self._check(res, None)
        self._client.delete(res, name, namespace=self.namespace, dry_run=self.dry_run)

    def _write(self, obj: Any, call: Callable[[], Any]) -> Any:
        self._check(type(obj), obj.metadata.namespace if obj.metadata else None)
        name = str(obj.metadata.name)
        existed = _exists(self._client, type(obj), name, self.namespace)
        result = call()
        if not existed and not self.dry_run:
            self.created.append((type(obj), name))
        return result


# --- deploy and destroy ---------------------------------------------------------------------------------


def deploy(
    bundle: Bundle,
    client: Any,
    *,
    dry_run: bool = False,
    prune: bool = False,
    progress: Callable[[str], None] = lambda text: None,
) -> list[NamespaceOutcome]:
    """Apply the bundle's units namespace by namespace; return each namespace's outcome.

    `dry_run`: the API server's dry run (nothing written), the changes as they would be. `prune`: delete
    the objects labelled as this bundle's that it no longer declares, also in namespaces it left.
    `progress` is told each change as it happens. Raises BundleError (nothing written) for a bad bundle.
    """
    bundle = _selected(bundle, client)
    units = plan(bundle)
    namespaces: dict[str, list[Unit]] = {}
    for unit in units:
        namespaces.setdefault(unit.namespace, []).append(unit)
    owned = _owned(client, bundle.name) if prune else {}
    for namespace in owned:
        namespaces.setdefault(namespace, [])
    return [
        _deploy_namespace(client, bundle, namespace, own, owned.get(namespace, []), dry_run, prune, progress)
        for namespace, own in namespaces.items()
    ]


def destroy(
    bundle: Bundle, client: Any, *, dry_run: bool = False, progress: Callable[[str], None] = lambda text: None
) -> list[NamespaceOutcome]:
    """Delete everything labelled as the bundle's, in every namespace, after the destroy hooks of its
    instances there; return each namespace's outcome. A failing hook leaves its namespace as it is."""
    units = {(unit.namespace, unit.instance): unit for unit in plan(_selected(bundle, client))}
    outcomes = []
    for namespace, objects in _owned(client, bundle.name).items():
        outcome = NamespaceOutcome(namespace)
        own = [unit for (ns, _), unit in units.items() if ns == namespace]
        scoped = NamespacedClient(client, namespace, dry_run=dry_run)
        try:
            _hooks(own, "argoplug_pre_destroy", bundle, scoped)
            _hooks(own, "argoplug_destroy", bundle, scoped)
        except HookError as exc:
            outcome.error = str(exc)
            outcomes.append(outcome)
            continue
        for obj in sorted(objects, key=lambda o: -KINDS.index(o.kind)):
            _delete(client, obj, dry_run)
            change = Change(namespace, obj.kind, str(obj.metadata.name), "deleted")
            outcome.changes.append(change)
            progress(change.line())
        try:
            _hooks(own, "argoplug_post_destroy", bundle, scoped)
        except HookError as exc:
            outcome.error = str(exc)
        outcomes.append(outcome)
    return outcomes


def _deploy_namespace(
    client: Any,
    bundle: Bundle,
    namespace: str,
    units: list[Unit],
    owned: list[Any],
    dry_run: bool,
    prune: bool,
    progress: Callable[[str], None],
) -> NamespaceOutcome:
    from lightkube import codecs

    outcome = NamespaceOutcome(namespace)
    created: list[Any] = []  # objects this run made, to delete on a rollback
    before: list[Any] = []  # objects as they were before this run changed or pruned them
    scoped = NamespacedClient(client, namespace, dry_run=dry_run)
    try:
        _hooks(units, "argoplug_pre_deploy", bundle, scoped)
        desired = sorted(
            (obj for unit in units for obj in unit.objects), key=lambda o: KINDS.index(o["kind"])
        )
        for manifest in desired:
            obj: Any = codecs.from_dict(copy.deepcopy(manifest))
            name = str(manifest["metadata"]["name"])
            existing = _find(client, type(obj), name, namespace)
            try:
                applied = client.apply(obj, field_manager=FIELD_MANAGER, force=True, dry_run=dry_run)
            except Exception as exc:
                raise _ObjectFailed(f"{manifest['kind']}/{name}: {_api_message(exc)}") from exc
            if existing is None:
                change = Change(namespace, manifest["kind"], name, "created")
                if not dry_run:
                    created.append(applied)
            else:
                fields = _differing(existing, applied)
                change = Change(
                    namespace, manifest["kind"], name, "changed" if fields else "unchanged", fields
                )
                if fields and not dry_run:
                    before.append(existing)
            outcome.changes.append(change)
            progress(change.line())
        _hooks(units, "argoplug_deploy", bundle, scoped)
        if prune:
            wanted = {(o["kind"], o["metadata"]["name"]) for o in desired}
            for obj in sorted(owned, key=lambda o: -KINDS.index(o.kind)):
                if (obj.kind, obj.metadata.name) in wanted:
                    continue
                _delete(client, obj, dry_run)
                if not dry_run:
                    before.append(obj)
                change = Change(namespace, obj.kind, str(obj.metadata.name), "deleted")
                outcome.changes.append(change)
                progress(change.line())
        _hooks(units, "argoplug_post_deploy", bundle, scoped)
    except Exception as exc:  # a hook, the API, a connection: this namespace is rolled back, others go on
        outcome.error = str(exc) if isinstance(exc, HookError | _ObjectFailed) else _api_message(exc)
        if not dry_run:
            _roll_back(client, [*created, *scoped_created(scoped)], before)
            progress(f"rolled back {namespace}: {exc}")
    return outcome


class _ObjectFailed(Exception):
    pass


def scoped_created(scoped: NamespacedClient) -> list[Any]:
    found = []
    for res, name in scoped.created:
        obj = _find(scoped._client, res, name, scoped.namespace)
        if obj is not None:
            found.append(obj)
    return found


def _hooks(units: Iterable[Unit], hook: str, bundle: Bundle, client: NamespacedClient) -> None:
    for unit in units:
        manager = plugin_manager(unit.packages)
        context = DeployContext(
            bundle=bundle.name,
            namespace=unit.namespace,
            instance=unit.instance,
            parameters=unit.parameters,
            client=client,
            dry_run=client.dry_run,
        )
        for impl in implementations(manager, hook):
            try:
                impl.call(context=context)
            except Exception as exc:
                raise HookError(failure_message(impl.package, hook, exc)) from exc


def _roll_back(client: Any, created: list[Any], before: list[Any]) -> None:
    """Delete what this run created (last first) and put back what it changed or pruned."""
    import contextlib

    from lightkube import ApiError

    for obj in reversed(created):
        with contextlib.suppress(ApiError):
            client.delete(type(obj), obj.metadata.name, namespace=obj.metadata.namespace)
    for obj in before:
        old = copy.deepcopy(obj)
        for field in _SERVER_FIELDS:
            setattr(old.metadata, field, None)
        current = _find(client, type(obj), str(obj.metadata.name), obj.metadata.namespace)
        with contextlib.suppress(ApiError):
            if current is None:
                client.create(old)
            else:
                old.metadata.resourceVersion = current.metadata.resourceVersion
                client.replace(old)


def _selected(bundle: Bundle, client: Any) -> Bundle:
    """The bundle with the namespaces its `namespaceSelector` names in the cluster (itself without one)."""
    if not bundle.namespace_selector:
        return bundle
    from lightkube.resources.core_v1 import Namespace

    found = [str(ns.metadata.name) for ns in client.list(Namespace, labels=dict(bundle.namespace_selector))]
    if not found:
        raise BundleError(f"namespaceSelector: no namespace carries the labels {bundle.namespace_selector}")
    return select_namespaces(bundle, found)


def _owned(client: Any, bundle_name: str) -> dict[str, list[Any]]:
    """The objects labelled as the bundle's, in every namespace, by namespace."""
    from lightkube import ALL_NS

    found: dict[str, list[Any]] = {}
    for kind in KINDS:
        for obj in client.list(_resource(kind), namespace=ALL_NS, labels={BUNDLE_LABEL: bundle_name}):
            found.setdefault(str(obj.metadata.namespace), []).append(obj)
    return found


def _resource(kind: str) -> Any:
    from lightkube.resources.core_v1 import ConfigMap, Secret, ServiceAccount
    from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

    return {"ServiceAccount": ServiceAccount, "Secret": Secret, "Role": Role, "RoleBinding": RoleBinding,
            "ConfigMap": ConfigMap}[kind]  # fmt: skip


def _find(client: Any, res: Any, name: str, namespace: str | None) -> Any:
    from lightkube import ApiError

    try:
        return client.get(res, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def _exists(client: Any, res: Any, name: str, namespace: str) -> bool:
    return _find(client, res, name, namespace) is not None


def _delete(client: Any, obj: Any, dry_run: bool) -> None:
    from lightkube import ApiError

    try:
        client.delete(type(obj), obj.metadata.name, namespace=obj.metadata.namespace, dry_run=dry_run)
    except ApiError as exc:
        if exc.status.code != 404:
            raise


def _differing(existing: Any, applied: Any) -> tuple[str, ...]:
    """The top-level fields (and metadata's labels, annotations) in which `applied` differs."""
    old, new = existing.to_dict(), applied.to_dict()
    fields = [key for key in sorted({*old, *new} - {"metadata", "status"}) if old.get(key) != new.get(key)]
    for part in ("labels", "annotations"):
        if old["metadata"].get(part) != new["metadata"].get(part):
            fields.append(f"metadata.{part}")
    return tuple(fields)


def _api_message(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return str(getattr(status, "message", "") or exc)
