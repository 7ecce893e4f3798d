"""The hooks (pluggy) through which a plugin package contributes to the build and to the server's life.

A package implements them in the module its `argoplug.plugins` entry point names (or the module of a
`module:attr` path), decorated with `argoplug.hookimpl`; `argoplug.hooks.plugin_manager` registers that
module under the name the plugin was selected by (the entry point's name or the `module:attr` path, as
written in the bundle's `plugins` or `argoplug serve --plugin`). Build hooks are called by `argoplug
build` for the plugins the bundle selects; server hooks by `argoplug serve`.
"""

# Hookspec bodies are never called (pluggy reads their signatures), so they stay empty.
# mypy: disable-error-code="empty-body"

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from argoplug.plugin import Plugin, Result, Task

__all__ = [
    "PROJECT",
    "BuildContext",
    "DeployContext",
    "argoplug_after_execute",
    "argoplug_before_execute",
    "argoplug_container_env",
    "argoplug_container_volume_mounts",
    "argoplug_container_volumes",
    "argoplug_deploy",
    "argoplug_destroy",
    "argoplug_dockerfile_lines",
    "argoplug_iam_statements",
    "argoplug_kubernetes_rules",
    "argoplug_parameters_type",
    "argoplug_post_deploy",
    "argoplug_post_destroy",
    "argoplug_pre_deploy",
    "argoplug_pre_destroy",
    "argoplug_remote_cluster_files",
    "argoplug_shutdown",
    "argoplug_startup",
    "hookimpl",
    "hookspec",
]

PROJECT = "argoplug"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What `argoplug build` tells a build hook about the bundle being built.

    - `name`: the executor plugin's name (ConfigMap `<name>-executor-plugin`, ServiceAccount likewise).
    - `namespaces`: the namespaces the plugin is installed in.
    - `plugin_keys`: every plugin key the sidecar serves.
    - `settings`: the bundle's `settings` for the package whose hook is called: the mapping under the
      name the package was selected by in `plugins` (an entry-point name or a `module:attr` path);
      {} when the bundle gives it none.
    - `iam_role_arn`: the IAM role for IRSA, or "".
    - `package`: the name the package whose hook is called was selected by ("" outside a build).
    - `all_settings`: the bundle's whole `settings`, name in `plugins` → mapping.

    `argoplug.hooks.contributions` gives each hook implementation its own context, `for_package(name)`:
    `settings` and `all_settings` are deep copies made for that call alone, so no hook can change what
    another sees.
    """

    name: str
    namespaces: tuple[str, ...] = ()
    plugin_keys: tuple[str, ...] = ()
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    iam_role_arn: str = ""
    package: str = ""
    all_settings: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def for_package(self, package: str) -> BuildContext:
        """Return this context as the hooks of `package` (a name in `plugins`) get it.

        `package` set, `settings` a deep copy of `all_settings[package]` ({} when absent) and
        `all_settings` a deep copy of its own; the other fields are immutable and shared.
        """
        own = self.all_settings.get(package) or {}
        return dataclasses.replace(
            self,
            package=package,
            settings=copy.deepcopy(dict(own)),
            all_settings=copy.deepcopy(dict(self.all_settings)),
        )


# --- build hooks: each returns a list, the build concatenates them in registration order ---------------
# Each takes `context`: a BuildContext whose `settings` are those the bundle gives the implementing package.


@hookspec
def argoplug_container_env(context: BuildContext) -> list[dict[str, Any]]:
    """Return environment variables for the sidecar container, as Kubernetes `EnvVar` objects.

    Each a mapping with a `name` and a string `value` or a `valueFrom`. Two packages may not set the same
    name; the bundle's `env` replaces a hook's variable of the same name. Called once per build. An
    exception, or an EnvVar that is not as above, stops the build; the message names the plugin package.
    """


@hookspec
def argoplug_container_volumes(context: BuildContext) -> list[dict[str, Any]]:
    """Return Kubernetes `Volume` objects the sidecar's mounts need, each with a unique name and a source.

    Argo gives the agent pod the sidecar's container only, so the volumes go into
    `agent-pod-spec-patch.yaml`, which the workflows must carry as `spec.podSpecPatch`: pick volumes any
    pod can hold (e.g. emptyDir, projected). An exception stops the build; the message names the plugin
    package.
    """


@hookspec
def argoplug_container_volume_mounts(context: BuildContext) -> list[dict[str, Any]]:
    """Return Kubernetes `VolumeMount` objects for the sidecar container.

    Each names a Volume some package's `argoplug_container_volumes` returns, at an absolute `mountPath`
    no other mount uses. An exception stops the build; the message names the plugin package.
    """


@hookspec
def argoplug_kubernetes_rules(context: BuildContext) -> list[dict[str, Any]]:
    """Return the Kubernetes RBAC `PolicyRule`s the plugins need (apiGroups, resources, verbs, ...).

    Each needs `apiGroups`, `resources` and `verbs`, non-empty lists of strings (optional
    `resourceNames`, a list of strings), none holding `*`; a Role cannot grant `nonResourceURLs`. They go
    into the Role bound to ServiceAccount `<name>-executor-plugin` in each namespace, and the sidecar then
    gets that account's token. A bundle whose hooks return none gets no Role, and the sidecar no token
    unless the bundle sets `serviceAccount.automountToken: true`. An exception, or a rule that is not as
    above, stops the build; the message names the plugin package.
    """


@hookspec
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    """Return IAM policy statements (`Effect`, `Action`, `Resource`, optional `Condition` and `Sid`).

    Exactly the actions the plugin calls (`service:Action`, no wildcard), on the narrowest resources its
    settings allow; they make `iam-policy.json`, statements with the same Effect, Resource and Condition
    merged. An exception, or a statement that is not as above, stops the build; the message names the
    plugin package.
    """


@hookspec
def argoplug_remote_cluster_files(context: BuildContext) -> list[dict[str, Any]]:
    """Return files for clusters other than the one Argo runs in, which an administrator applies there.

    For what a plugin needs on a cluster it reaches (RBAC, an EKS access entry): each a mapping with
    `path`, a relative POSIX path under `remote/` (e.g. `remote/eks-<cluster>/rbac.yaml`) of segments made
    of letters, digits, `.`, `_` and `-`, none `.` or `..`; `text`, the file's content, a string; and
    `about`, one line for the bundle's README saying what the file is, where it goes and how to apply it.
    They are written under `remote/` (which a later build empties of the files it no longer gives), listed
    in README.md, and never put in `kustomization.yaml`. Two packages may not give the same path (paths
    compared without case), nor one a path another's file lies under. An exception, or a file that is not
    as above, stops the build; the message names the plugin package (both, for a path given twice).
    """


@hookspec
def argoplug_dockerfile_lines(context: BuildContext) -> list[str]:
    """Return Dockerfile lines, run as root after `FROM` and before argoplug and the plugin packages are
    installed and the image switches to its non-root user.

    For system packages or files a plugin needs. `FROM`, `USER`, `ENTRYPOINT` and `CMD` are the build's
    own and refused. An exception, or such a line, stops the build; the message names the plugin package.
    """


@hookspec
def argoplug_parameters_type() -> Any:
    """Return the type of the package's parameters: a msgspec Struct (or any type msgspec converts to).

    A bundle's `settings` for the package, and each of its `instances`' `parameters`, must convert to it
    (msgspec, strict) before anything is built or deployed; the error names the namespace, the instance
    and the field. A package that implements no such hook takes any mapping. Called with no context.
    """


# --- deploy hooks ----------------------------------------------------------------------------------------
# Called by `argoplug deploy` / `argoplug destroy`, per namespace, for each plugin instance there, in the
# order the bundle lists them. An exception names the package and rolls back that namespace: the objects
# created there by this run are deleted and those it changed put back; the other namespaces go on.


@dataclasses.dataclass(frozen=True)
class DeployContext:
    """What `argoplug deploy` and `argoplug destroy` tell a deploy hook about one plugin instance.

    - `bundle`: the bundle's name (the label `argoplug.dev/bundle` of everything deployed for it).
    - `namespace`: the namespace deployed to (a "team"); `instance`: the instance's name there (its
      executor plugin is `<instance>-executor-plugin`).
    - `parameters`: the instance's parameters as the package's `argoplug_parameters_type` made them (a
      mapping when it declares none).
    - `client`: a Kubernetes client limited to `namespace` (`argoplug.deploy.NamespacedClient`: get, list,
      apply, create, patch, delete of namespaced objects there; anything else is refused). What a hook
      creates or applies through it is deleted again when the namespace is rolled back.
    - `dry_run`: true for `--dry-run`: the client writes nothing (the API server's dry run).
    """

    bundle: str
    namespace: str
    instance: str
    parameters: Any
    client: Any
    dry_run: bool = False


@hookspec
def argoplug_pre_deploy(context: DeployContext) -> None:
    """Run before the instance's built objects are applied in `context.namespace` (e.g. to check that
    what the plugin needs exists there). Raising rolls the namespace back, naming the package."""


@hookspec
def argoplug_deploy(context: DeployContext) -> None:
    """Run after the instance's built objects are applied in `context.namespace`: create what only the
    package knows (an annotated ServiceAccount, an object of a CRD it needs). Raising rolls back."""


@hookspec
def argoplug_post_deploy(context: DeployContext) -> None:
    """Run once everything of the namespace is applied and the `--prune` is done there. Raising rolls
    the namespace back."""


@hookspec
def argoplug_pre_destroy(context: DeployContext) -> None:
    """Run before the instance's objects are deleted from `context.namespace`. Raising leaves the
    namespace as it is, naming the package."""


@hookspec
def argoplug_destroy(context: DeployContext) -> None:
    """Run before the instance's built objects are deleted: delete what `argoplug_deploy` made. Raising
    leaves the namespace's built objects in place, naming the package."""


@hookspec
def argoplug_post_destroy(context: DeployContext) -> None:
    """Run after the instance's objects are deleted from `context.namespace`. An exception is reported,
    naming the package; what was deleted stays deleted."""


# --- server hooks ----------------------------------------------------------------------------------------
# Called by the server built with `argoplug.server.create_app(..., hooks=...)`: `argoplug serve`, and
# `argoplug.testing.LiveServer`. Each implementation is called on its own, on the server's event loop; an
# `async def` implementation is awaited. Wrappers (`wrapper=True`, `hookwrapper=True`) are refused.


@hookspec
def argoplug_startup(plugins: Sequence[Plugin[Any]]) -> None:
    """Run once when the server starts, before it listens; `plugins` are the plugins served.

    For opening clients or pools. Implementations run in registration order. An exception stops the
    start: later startup hooks and all shutdown hooks are skipped, nothing is served, and `argoplug
    serve` logs the package's name and the error (with its traceback) and exits 1; a `LiveServer`'s
    `start` raises RuntimeError.
    """


@hookspec
def argoplug_shutdown(plugins: Sequence[Plugin[Any]]) -> None:
    """Run once when a server that started stops: on SIGTERM (what the sidecar gets when the workflow
    ends or is stopped) or SIGINT, after the calls in flight were answered.

    For flushing metrics or closing clients; it has what is left of the pod's grace period (30 s by
    default). Implementations run in reverse registration order. An exception is logged with the
    package's name; the other shutdown hooks still run. SIGKILL runs none.
    """


@hookspec
def argoplug_before_execute(task: Task) -> None:
    """Run before each call of a served plugin's handler, in registration order.

    Also before a call that takes over a handler still running from an earlier call. Never for another
    plugin's template (answered `{}`), a refused token, or a request whose template cannot be decoded.
    Runs on the event loop: keep it fast and non-blocking (metrics, an audit line). Raising
    `PermanentError` fails the node with its message and outputs, and skips the later before hooks and
    the handler (the after hooks still run); any other exception is logged with the package's name and
    the call goes on.
    """


@hookspec
def argoplug_after_execute(task: Task, result: Result) -> None:
    """Run after each call of a served plugin's handler, in registration order, with the `Result` the
    node is answered with, just before the reply is sent.

    `result` is the handler's Result, or its exception mapped as the reply maps it (`TemporaryError` →
    Running with its delay as `requeue`, `PermanentError` → Failed, any other → Error "<type>: <text>");
    Running with a requeue for a handler still going at the deadline; Failed for a call that
    `argoplug_before_execute` refused. A Running/Pending result's `requeue` is always set (seconds).
    Not called when the caller went away before the answer. Runs on the event loop: keep it fast. An
    exception is logged with the package's name; the reply is unchanged and the other after hooks still
    run.
    """
