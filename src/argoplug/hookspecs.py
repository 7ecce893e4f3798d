"""The hooks (pluggy) through which a plugin package contributes to the build and to the server's life.

A package implements them in the module its `argoplug.plugins` entry point names, decorated with
`argoplug.hookimpl`; `argoplug.hooks` registers that module under the entry point's name. Build hooks are
called by `argoplug build` for the plugins the bundle selects; server hooks by `argoplug serve`.
"""

# Hookspec bodies are never called (pluggy reads their signatures), so they stay empty.
# mypy: disable-error-code="empty-body"

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from argoplug.plugin import Plugin, Result, Task

__all__ = [
    "PROJECT",
    "BuildContext",
    "argoplug_after_execute",
    "argoplug_before_execute",
    "argoplug_container_env",
    "argoplug_container_volume_mounts",
    "argoplug_container_volumes",
    "argoplug_dockerfile_lines",
    "argoplug_iam_statements",
    "argoplug_kubernetes_rules",
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
    """What `argoplug build` tells every build hook about the bundle being built.

    - `name`: the executor plugin's name (ConfigMap `<name>-executor-plugin`, ServiceAccount likewise).
    - `namespaces`: the namespaces the plugin is installed in.
    - `plugin_keys`: every plugin key the sidecar serves.
    - `settings`: the bundle's `settings`, entry-point name → that package's mapping (may be empty).
    - `iam_role_arn`: the IAM role for IRSA, or "".
    """

    name: str
    namespaces: tuple[str, ...] = ()
    plugin_keys: tuple[str, ...] = ()
    settings: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    iam_role_arn: str = ""

    def settings_for(self, entry_point: str) -> Mapping[str, Any]:
        """The `settings` the bundle gives the package registered as `entry_point` ({} when none)."""
        return self.settings.get(entry_point) or {}


# --- build hooks: each returns a list, the build concatenates them in registration order ---------------


@hookspec
def argoplug_container_env(context: BuildContext) -> list[dict[str, Any]]:
    """Return environment variables for the sidecar container, as Kubernetes `EnvVar` objects.

    Called once per build. An exception stops the build; the message names the plugin package.
    """


@hookspec
def argoplug_container_volumes(context: BuildContext) -> list[dict[str, Any]]:
    """Return Kubernetes `Volume` objects the sidecar needs.

    Argo's agent pod takes the sidecar's container only, so a volume must come with a mount and be one
    the agent pod can hold (e.g. a projected or emptyDir volume). An exception stops the build.
    """


@hookspec
def argoplug_container_volume_mounts(context: BuildContext) -> list[dict[str, Any]]:
    """Return Kubernetes `VolumeMount` objects for the sidecar container. An exception stops the build."""


@hookspec
def argoplug_kubernetes_rules(context: BuildContext) -> list[dict[str, Any]]:
    """Return the Kubernetes RBAC `PolicyRule`s the plugins need (apiGroups, resources, verbs, ...).

    They go into the Role bound to ServiceAccount `<name>-executor-plugin` in each namespace; a bundle
    whose hooks return none gets no Role, and the sidecar no service account token. An exception stops
    the build; the message names the plugin package.
    """


@hookspec
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    """Return IAM policy statements (`Effect`, `Action`, `Resource`, optional `Condition`).

    Exactly the actions the plugin calls, on the narrowest resources its settings allow; they make
    `iam-policy.json`. An exception stops the build; the message names the plugin package.
    """


@hookspec
def argoplug_dockerfile_lines(context: BuildContext) -> list[str]:
    """Return Dockerfile lines run as root before the image switches to its non-root user.

    For system packages or files a plugin needs; argoplug and the plugin packages are installed anyway.
    An exception stops the build; the message names the plugin package.
    """


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
