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


@hookspec
def argoplug_startup(plugins: Sequence[Plugin[Any]]) -> None:
    """Run once when the server starts, before it answers any call; `plugins` are the plugins served.

    For opening clients or pools. An exception stops the start: `argoplug serve` exits 1 and logs the
    plugin package's name and the error.
    """


@hookspec
def argoplug_shutdown(plugins: Sequence[Plugin[Any]]) -> None:
    """Run once when the server stops: on SIGTERM (what the sidecar gets when the workflow ends or is
    stopped) or SIGINT, after the last answer.

    For flushing metrics or closing clients; it has the pod's grace period (30 s by default). An exception
    is logged with the package's name; the other shutdown hooks still run.
    """


@hookspec
def argoplug_before_execute(task: Task) -> None:
    """Run before each call of a served plugin's handler (not for other plugins' templates).

    Runs on the server's event loop: keep it fast and non-blocking (metrics, an audit line). Raising
    `PermanentError` fails the node with its message and skips the handler; any other exception is logged
    and the call goes on.
    """


@hookspec
def argoplug_after_execute(task: Task, result: Result) -> None:
    """Run after each call of a served plugin's handler with the `Result` the node is answered with
    (Running for a handler still going at the deadline; exceptions already mapped to Failed/Error).

    Runs on the event loop: keep it fast. An exception is logged; the reply is unchanged.
    """
