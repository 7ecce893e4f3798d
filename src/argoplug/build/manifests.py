"""The Kubernetes objects of a bundle: the ExecutorPlugin (`plugin.yaml`), accounts, RBAC, kustomization.

`argoplug.build.writer` calls these with a checked `Bundle` and the build hooks' contributions (checked
here too, each problem naming the plugin package); it turns the objects into YAML with `argo.to_go_yaml`.
What Argo does with each object is cited from argo-workflows v4.1 (`workflow/controller/agent.go`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from argoplug.build.bundle import Bundle, BundleError

__all__ = [
    "AGENT_RULES",
    "agent_role_objects",
    "checked_env",
    "checked_rules",
    "checked_volume_mounts",
    "checked_volumes",
    "container",
    "executor_plugin",
    "kustomization",
    "labels",
    "plugin_role_objects",
    "pod_spec_patch",
    "service_account_objects",
]

# What the agent (`argoexec agent main`, running as the workflow's service account) does with the
# WorkflowTaskSet: lists and watches it, and patches its status with the plugins' replies
# (docs/contract.md §5.5;
# Argo's docs, "executor plugins" → RBAC). Nothing more: no get, no update, no cluster scope.
AGENT_RULES: tuple[Mapping[str, Any], ...] = (
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtasksets"], "verbs": ["list", "watch"]},
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtasksets/status"], "verbs": ["patch"]},
)
_RULE_KEYS = ("apiGroups", "resources", "resourceNames", "verbs")
_ENV_KEYS = ("name", "value", "valueFrom")

Contributions = Sequence[tuple[str, Any]]


def labels(bundle: Bundle) -> dict[str, str]:
    """Return the labels every object of the bundle carries (`kubectl get ... -l` finds them all)."""
    return {"app.kubernetes.io/name": bundle.sidecar_name, "app.kubernetes.io/managed-by": "argoplug"}


def container(
    bundle: Bundle, *, env: Sequence[Mapping[str, Any]] = (), volume_mounts: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Return the sidecar `Container`: `argoplug serve` on the bundle's port, for the bundle's plugins.

    Its name is `<name>-executor-plugin` (Argo mounts the agent's token for the sidecar at
    `/var/run/argo/token` by the container's name, agent.go `getExecutorPlugins`); the first (only)
    containerPort is where the agent calls it. Only flags are passed, so the server starts at once.
    """
    args = ["--port", str(bundle.port)]
    for name in bundle.plugins:
        args += ["--plugin", name]
    args += ["--log-format", "json"]
    if bundle.log_level is not None:
        args += ["--log-level", bundle.log_level]
    if bundle.handler_deadline is not None:
        args += ["--handler-deadline", f"{bundle.handler_deadline:g}"]
    spec: dict[str, Any] = {
        "name": bundle.sidecar_name,
        "image": bundle.image,
        "command": ["argoplug", "serve"],
        "args": args,
        "ports": [{"containerPort": bundle.port}],
        "resources": {"requests": dict(bundle.resources.requests), "limits": dict(bundle.resources.limits)},
        "securityContext": dict(bundle.security_context),
    }
    if env:
        spec["env"] = [dict(var) for var in env]
    if volume_mounts:
        spec["volumeMounts"] = [dict(mount) for mount in volume_mounts]
    return spec


def executor_plugin(
    bundle: Bundle, *, description: str, sidecar: Mapping[str, Any], automount_token: bool
) -> dict[str, Any]:
    """Return the ExecutorPlugin manifest (`plugin.yaml`, the input of `argo executor-plugin build`).

    Its namespace is set when the bundle has exactly one, so the ConfigMap Argo builds from it is
    namespaced too. Shape: docs/contract.md §5.1 (Argo's `pkg/plugins/spec`).
    """
    metadata: dict[str, Any] = {"name": bundle.name}
    if len(bundle.namespaces) == 1:
        metadata["namespace"] = bundle.namespaces[0]
    metadata["labels"] = labels(bundle)
    metadata["annotations"] = {
        "workflows.argoproj.io/description": description,
        "workflows.argoproj.io/version": bundle.argo_version,
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ExecutorPlugin",
        "metadata": metadata,
        "spec": {"sidecar": {"automountServiceAccountToken": automount_token, "container": dict(sidecar)}},
    }


def service_account_objects(bundle: Bundle, namespace: str) -> list[dict[str, Any]]:
    """Return the ServiceAccount `<name>-executor-plugin` in `namespace` and its token Secret.

    With `automountServiceAccountToken`, Argo mounts the token of that account's Secret
    `<name>-executor-plugin.service-account-token` (Kubernetes 1.24+ no longer creates one); the agent pod
    mounts it too when workflows run as this account (IRSA). The IRSA annotation
    `eks.amazonaws.com/role-arn` is set when the bundle names a role (EKS user guide, "IAM roles for
    service accounts").
    """
    account: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(bundle, bundle.sidecar_name, namespace),
    }
    if bundle.service_account.iam_role_arn:
        account["metadata"]["annotations"] = {
            "eks.amazonaws.com/role-arn": bundle.service_account.iam_role_arn
        }
    secret_metadata = _metadata(bundle, f"{bundle.sidecar_name}.service-account-token", namespace)
    secret_metadata["annotations"] = {"kubernetes.io/service-account.name": bundle.sidecar_name}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": secret_metadata,
    }
    return [account, secret]


def plugin_role_objects(
    bundle: Bundle, namespace: str, rules: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Return the Role `<name>-executor-plugin` holding exactly `rules`, bound to the plugin's account.

    Namespaced (a Role, not a ClusterRole): the sidecar works in the workflow's namespace.
    """
    return _role_and_binding(bundle, bundle.sidecar_name, namespace, rules, bundle.sidecar_name)


def agent_role_objects(bundle: Bundle, namespace: str) -> list[dict[str, Any]]:
    """Return the Role `<name>-executor-plugin-agent` (`AGENT_RULES`) bound to the workflows' account.

    The agent pod runs as the workflow's service account (agent.go `createAgentPod`), so that account
    needs these rules for the agent to read tasks and write the plugin's replies.
    """
    name = f"{bundle.sidecar_name}-agent"
    return _role_and_binding(bundle, name, namespace, AGENT_RULES, bundle.agent_service_account)


def kustomization(resources: Iterable[str]) -> dict[str, Any]:
    """Return the `kustomization.yaml` listing the manifest files `resources` (paths in the bundle dir)."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(resources),
    }


def pod_spec_patch(volumes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the pod spec patch adding the hooks' `volumes`, for a workflow's `spec.podSpecPatch`.

    An executor plugin gives the agent pod its container only (agent.go `getExecutorPlugins`), so a
    volume its mounts name reaches the pod only through the workflow's podSpecPatch, which Argo applies to
    the agent pod (agent.go `createAgentPod`) and to every other pod of the workflow.
    """
    return {"volumes": [dict(volume) for volume in volumes]}


# --- the build hooks' contributions, checked ---------------------------------------------------------


def checked_env(contributed: Contributions, bundle_env: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return the sidecar's env: the hooks' EnvVars in order, then the bundle's `env`.

    A bundle EnvVar replaces a hook's of the same name (the bundle has the last word). Raises BundleError
    naming the package for an EnvVar that is not a mapping with a name, or a name two packages set.
    """
    by_name: dict[str, tuple[str, dict[str, Any]]] = {}
    for package, var in contributed:
        where = f"plugin {package!r}: hook argoplug_container_env"
        _require_mapping(var, where, "an EnvVar mapping (name, value or valueFrom)")
        name = var.get("name")
        if not isinstance(name, str) or not name:
            raise BundleError(f"{where}: EnvVar without a name: {var!r}")
        _require_known(var, _ENV_KEYS, f"{where}: EnvVar {name!r}")
        if "value" in var and not isinstance(var["value"], str):
            raise BundleError(f"{where}: EnvVar {name!r}: value must be a string, got {var['value']!r}")
        if name in by_name:
            raise BundleError(f"{where}: EnvVar {name!r} is also set by plugin {by_name[name][0]!r}")
        by_name[name] = (package, dict(var))
    for var in bundle_env:
        by_name[var["name"]] = ("", dict(var))
    return [var for _, var in by_name.values()]


def checked_volumes(contributed: Contributions) -> list[dict[str, Any]]:
    """Return the hooks' Volumes; raises BundleError naming the package for one without a unique name."""
    found: dict[str, str] = {}
    volumes: list[dict[str, Any]] = []
    for package, volume in contributed:
        where = f"plugin {package!r}: hook argoplug_container_volumes"
        _require_mapping(volume, where, "a Volume mapping (name and one volume source)")
        name = volume.get("name")
        if not isinstance(name, str) or not name:
            raise BundleError(f"{where}: Volume without a name: {volume!r}")
        if len(volume) < 2:
            raise BundleError(f"{where}: Volume {name!r} has no source (emptyDir, projected, secret, ...)")
        if name in found:
            raise BundleError(f"{where}: Volume {name!r} is also given by plugin {found[name]!r}")
        found[name] = package
        volumes.append(dict(volume))
    return volumes


def checked_volume_mounts(
    contributed: Contributions, volumes: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Return the hooks' VolumeMounts; each must name a hook's Volume and have a unique mountPath.

    Raises BundleError naming the package otherwise: a mount of a volume the pod lacks would make
    Kubernetes refuse every agent pod of the namespace.
    """
    names = [volume["name"] for volume in volumes]
    paths: dict[str, str] = {}
    mounts: list[dict[str, Any]] = []
    for package, mount in contributed:
        where = f"plugin {package!r}: hook argoplug_container_volume_mounts"
        _require_mapping(mount, where, "a VolumeMount mapping (name, mountPath)")
        name, path = mount.get("name"), mount.get("mountPath")
        if not isinstance(name, str) or not isinstance(path, str) or not path.startswith("/"):
            raise BundleError(
                f"{where}: expected a VolumeMount with a name and an absolute mountPath, got {mount!r}"
            )
        if name not in names:
            raise BundleError(
                f"{where}: VolumeMount {name!r} names no Volume of a build hook "
                f"(volumes: {', '.join(names) or 'none'})"
            )
        if path in paths:
            raise BundleError(f"{where}: mountPath {path!r} is also used by plugin {paths[path]!r}")
        paths[path] = package
        mounts.append(dict(mount))
    return mounts


def checked_rules(contributed: Contributions) -> list[dict[str, Any]]:
    """Return the hooks' RBAC PolicyRules for a Role, duplicates dropped, in order.

    Each needs `apiGroups`, `resources` and `verbs`, non-empty lists of strings, and may have
    `resourceNames`, a list of strings; no `nonResourceURLs` (a Role cannot grant them). No item of any of
    the four may hold `*`: in `apiGroups`, `resources` (`*`, `*/status`) and `verbs` it is a wildcard, and
    a plugin names what it uses; in `resourceNames` it is no wildcard at all but the name of an object
    called `*` (every object is granted by leaving `resourceNames` out). Raises BundleError naming the
    package otherwise.
    """
    rules: list[dict[str, Any]] = []
    for package, rule in contributed:
        where = f"plugin {package!r}: hook argoplug_kubernetes_rules"
        _require_mapping(rule, where, "a PolicyRule mapping (apiGroups, resources, verbs)")
        _require_known(rule, _RULE_KEYS, f"{where}: rule {rule!r}")
        for key in _RULE_KEYS:
            value = rule.get(key, [])
            if key != "resourceNames" and not value:
                raise BundleError(f"{where}: rule {rule!r} has no {key}")
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise BundleError(f"{where}: rule {rule!r}: {key} must be a list of strings")
            starred = [item for item in value if "*" in item]
            if starred and key == "resourceNames":
                raise BundleError(
                    f"{where}: rule {rule!r}: resourceNames {starred[0]!r}: '*' is no wildcard there but "
                    "part of an object's name; name the objects, or leave resourceNames out for all of them"
                )
            if starred:
                raise BundleError(
                    f"{where}: rule {rule!r}: {key} {starred[0]!r}: name the {key} the plugin needs "
                    "instead of '*'"
                )
        normalized = {key: list(rule[key]) for key in _RULE_KEYS if key in rule}
        if normalized not in rules:
            rules.append(normalized)
    return rules


def _role_and_binding(
    bundle: Bundle, name: str, namespace: str, rules: Iterable[Mapping[str, Any]], account: str
) -> list[dict[str, Any]]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(bundle, name, namespace),
        "rules": [{key: list(value) for key, value in rule.items()} for rule in rules],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(bundle, name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    return [role, binding]


def _metadata(bundle: Bundle, name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels(bundle)}


def _require_mapping(item: Any, where: str, expected: str) -> None:
    if not isinstance(item, Mapping):
        raise BundleError(f"{where}: expected {expected}, got {item!r}")


def _require_known(item: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(set(item) - set(known))
    if unknown:
        raise BundleError(
            f"{where}: unknown key(s) {', '.join(unknown)} (expected some of: {', '.join(known)})"
        )
