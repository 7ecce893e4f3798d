"""The `kubernetes-secret` plugin: a Secret in the workflow's namespace, owned by the Workflow, so that it
outlives the step that made it (a later step's pod can mount it) and is garbage-collected with the
Workflow.

Understack's `argo_python.create_secret` made such Secrets owned by the step's pod (gone before the next
pod could mount them), then by the Workflow with a read-then-patch race; this one creates, and on
AlreadyExists replaces with the resourceVersion it read (a stale one is a 409 and is tried again), and
never touches a Secret another owner holds. The Secret's values appear in no log line, message or output.
Its build hook `argoplug_kubernetes_rules` gives the sidecar exactly the RBAC it needs.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from argoplug.hookspecs import BuildContext, hookimpl
from argoplug.kube.access import ClusterAccess, KubeSetupError
from argoplug.kube.errors import translated_errors
from argoplug.plugin import PermanentError, Plugin, Result, Secret, Task, TemporaryError

__all__ = [
    "KEY",
    "MANAGED_BY",
    "RULES",
    "WORKFLOW_LABEL",
    "KubernetesSecretArgs",
    "KubernetesSecretParameters",
    "argoplug_kubernetes_rules",
    "argoplug_parameters_type",
    "plugins",
    "secret_name",
    "secret_plugin",
    "use_access",
]

log = logging.getLogger("argoplug.plugins.kubernetes_secret")

KEY = "kubernetes-secret"
# The label Argo puts on a workflow's pods (workflow/common/common.go LabelKeyWorkflow); set on the Secret
# too, so `kubectl get secrets -l workflows.argoproj.io/workflow=<name>` lists a workflow's Secrets.
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
MANAGED_BY = "app.kubernetes.io/managed-by"
# Exactly the calls `write_secret` and `delete_secret` make: create, get (after AlreadyExists), update
# (the replace), delete. Names are not known before the run (they default to the workflow's uid), so the
# rule cannot list resourceNames.
RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "update", "delete"]},
)
# How often a replace that met a newer resourceVersion (409 Conflict) is tried again within one call.
_ATTEMPTS = 5
# A Secret's name: a DNS-1123 subdomain (k8s.io/apimachinery/pkg/util/validation IsDNS1123Subdomain).
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A key of a Secret's data (validation.IsConfigMapKey).
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class KubernetesSecretArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `kubernetes-secret` plugin block.

    - `action`: `create` (create the Secret, or replace the data of the one this workflow made) or
      `delete`.
    - `name`: the Secret's name (a DNS-1123 subdomain, at most 253 characters); default
      `<prefix>-<workflow uid>`. Give it when one workflow makes more than one Secret.
    - `prefix`: the default name's prefix (default `argoplug`).
    - `data`: key → string value; stored base64-encoded in the Secret's `data`. Never logged or echoed.
    - `type`: the Secret's type (default `Opaque`).
    - `labels`: more labels for the Secret (the workflow label and `app.kubernetes.io/managed-by` are set).
    """

    action: Literal["create", "delete"] = "create"
    name: str = ""
    prefix: str = "argoplug"
    data: Secret[dict[str, str]] = {}
    type: str = "Opaque"
    labels: dict[str, str] = {}


def argument_problems(args: KubernetesSecretArgs, unconverted: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with a `kubernetes-secret` block beyond its types (keys only: values are secret)."""
    problems = []
    if args.name and (len(args.name) > 253 or not _SUBDOMAIN.match(args.name)):
        problems.append(
            f"`name`: {args.name!r} is not a valid Secret name: expected a DNS-1123 subdomain (lowercase "
            "letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 "
            "characters)"
        )
    if (
        not args.name
        and "prefix" not in unconverted
        and not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", args.prefix)
    ):
        problems.append(
            f"`prefix`: {args.prefix!r} cannot start a Secret name: expected lowercase letters, digits and "
            "'-', starting and ending with a letter or digit"
        )
    bad_keys = [key for key in args.data if len(key) > 253 or not _DATA_KEY.match(key)]
    if bad_keys:
        problems.append(
            f"`data`: keys {', '.join(repr(key) for key in sorted(bad_keys))} are not valid Secret keys: "
            "expected letters, digits, '-', '_' and '.'"
        )
    if args.action == "delete" and args.data:
        problems.append("`data` is for action 'create', not 'delete'")
    return problems


def _failure_outputs(block: Any) -> Mapping[str, Any]:
    name = block.get("name") if isinstance(block, Mapping) else None
    return {"name": name if isinstance(name, str) else ""}


secret_plugin: Plugin[KubernetesSecretArgs] = Plugin(
    KEY,
    args=KubernetesSecretArgs,
    check=argument_problems,
    failure_outputs=_failure_outputs,
    description=(
        "Creates (or replaces) and deletes Secrets in the workflow's namespace, owned by the Workflow so "
        "that later steps can mount them and they go when the Workflow is deleted; outputs the Secret's "
        "name, never its data."
    ),
)
plugins = (secret_plugin,)


class _Clients:
    """One lightkube client for the sidecar's life (a connection pool), made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._access: ClusterAccess | None = None
        self._client: Any = None

    def use(self, access: ClusterAccess | None) -> None:
        """Reach the cluster through `access` from now on (None: back to `ClusterAccess.from_environment`)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._access, self._client = access, None

    def get(self) -> tuple[ClusterAccess, Any]:
        with self._lock:
            if self._client is None:
                access = self._access or ClusterAccess.from_environment()
                self._access, self._client = access, access.client()
            assert self._access is not None
            return self._access, self._client


_clients = _Clients()
use_access = _clients.use


def secret_name(task: Task, args: KubernetesSecretArgs) -> str:
    """The Secret's name: `args.name`, else `<prefix>-<workflow uid>`."""
    return args.name or f"{args.prefix}-{task.workflow_uid}"


@secret_plugin.handler
def run_secret(task: Task, args: KubernetesSecretArgs) -> Result:
    """Create, replace or delete the task's Secret in the workflow's namespace.

    Outputs `name`. Raises PermanentError (Failed) for a Secret of that name that another owner holds,
    a refused request (403: the message names the RBAC rule that would allow it) or an invalid object
    (422, with the API server's message); TemporaryError (Running, tried again) for 429, 5xx and
    connection trouble; KubeSetupError (Error) when no cluster is configured.
    """
    name = secret_name(task, args)
    if not task.workflow_uid:
        raise PermanentError(
            "the request carries no workflow uid (workflow.metadata.uid), so the Secret cannot be owned by "
            "the Workflow",
            outputs={"name": name},
        )
    try:
        access, client = _clients.get()
    except KubeSetupError as exc:
        raise KubeSetupError(f"{exc} (the {KEY} plugin needs the cluster the workflow runs in)") from None
    try:
        with translated_errors(identity=access.identity):
            if args.action == "delete":
                return _delete(client, task, name)
            return _write(client, task, args, name)
    except PermanentError as exc:
        exc.outputs = {"name": name}
        raise


def _owner(task: Task) -> dict[str, Any]:
    # blockOwnerDeletion false: setting it true needs `update` on workflows/finalizers (the
    # OwnerReferencesPermissionEnforcement admission plugin); the Secret needs no say in the deletion.
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "name": task.workflow_name,
        "uid": task.workflow_uid,
        "blockOwnerDeletion": False,
    }


def _desired(task: Task, args: KubernetesSecretArgs, name: str) -> Any:
    from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
    from lightkube.resources.core_v1 import Secret as KubeSecret

    labels = {**args.labels, WORKFLOW_LABEL: task.workflow_name, MANAGED_BY: "argoplug"}
    return KubeSecret(
        metadata=ObjectMeta(
            name=name,
            namespace=task.namespace,
            labels=labels,
            ownerReferences=[OwnerReference(**_owner(task))],
        ),
        type=args.type,
        data={key: base64.b64encode(value.encode()).decode("ascii") for key, value in args.data.items()},
    )


def _owned_by(secret: Any, task: Task) -> bool:
    owners = (secret.metadata.ownerReferences if secret.metadata else None) or []
    return any(owner.uid == task.workflow_uid and owner.kind == "Workflow" for owner in owners)


def _holder(secret: Any) -> str:
    owners = (secret.metadata.ownerReferences if secret.metadata else None) or []
    if not owners:
        return "no owner (made by hand or by another tool)"
    return ", ".join(f"{owner.kind} {owner.name} (uid {owner.uid})" for owner in owners)


def _write(client: Any, task: Task, args: KubernetesSecretArgs, name: str) -> Result:
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Secret as KubeSecret

    where = f'Secret "{name}" in namespace "{task.namespace}"'
    desired = _desired(task, args, name)
    try:
        client.create(desired, namespace=task.namespace)
        return Result.succeeded(
            f"{where} created, owned by workflow {task.workflow_name}", outputs={"name": name}
        )
    except ApiError as exc:
        if exc.status.code != 409:
            raise
    # AlreadyExists: replace it if this workflow made it, with the resourceVersion read (optimistic
    # concurrency: a 409 Conflict means someone wrote in between, so read and try again).
    for _ in range(_ATTEMPTS):
        try:
            current = client.get(KubeSecret, name, namespace=task.namespace)
        except ApiError as exc:
            if exc.status.code == 404:  # deleted in between: create it again
                try:
                    client.create(desired, namespace=task.namespace)
                    return Result.succeeded(f"{where} created", outputs={"name": name})
                except ApiError as again:
                    if again.status.code != 409:
                        raise
                    continue
            raise
        if not _owned_by(current, task):
            raise PermanentError(
                f"{where} already exists and is not this workflow's: its owner is {_holder(current)}; "
                "give the step another `name`"
            )
        desired.metadata.resourceVersion = current.metadata.resourceVersion
        desired.metadata.labels = {**(current.metadata.labels or {}), **(desired.metadata.labels or {})}
        try:
            client.replace(desired, namespace=task.namespace)
        except ApiError as exc:
            if exc.status.code == 409:
                continue
            raise
        return Result.succeeded(f"{where} updated", outputs={"name": name})
    raise TemporaryError(f"{where} kept changing: {_ATTEMPTS} replaces met a newer resourceVersion")


def _delete(client: Any, task: Task, name: str) -> Result:
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Secret as KubeSecret

    where = f'Secret "{name}" in namespace "{task.namespace}"'
    try:
        current = client.get(KubeSecret, name, namespace=task.namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return Result.succeeded(f"{where} does not exist (already deleted)", outputs={"name": name})
        raise
    if not _owned_by(current, task):
        raise PermanentError(f"{where} is not this workflow's (its owner is {_holder(current)}): not deleted")
    try:
        client.delete(KubeSecret, name, namespace=task.namespace)
    except ApiError as exc:
        if exc.status.code != 404:
            raise
    return Result.succeeded(f"{where} deleted", outputs={"name": name})


class KubernetesSecretParameters(msgspec.Struct, forbid_unknown_fields=True):
    """The package takes no settings: each step's block says all (so a bundle's stray key is an error)."""


@hookimpl
def argoplug_parameters_type() -> Any:
    """Return `KubernetesSecretParameters` (none)."""
    return KubernetesSecretParameters


@hookimpl
def argoplug_kubernetes_rules(context: BuildContext) -> list[dict[str, Any]]:
    """Return the RBAC rules the plugin needs in each namespace: create, get, update and delete Secrets
    (a Role bound to `<name>-executor-plugin`; having rules makes the build set
    `automountServiceAccountToken: true`)."""
    return [dict(rule) for rule in RULES]
