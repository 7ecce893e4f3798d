"""A plugin package with every build hook, for tests/build: selected as `tests.build_hook_plugins:plugins`.

Each hook returns what the bundle's `settings` for this package ask for (`env`, `volumes`, `volumeMounts`,
`rules`, `statements`, `dockerfile`: lists returned as they are), and nothing otherwise; `fail: <hook>`
makes that hook raise; `echo: true` adds an EnvVar `BUILD_CONTEXT` holding the BuildContext as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from argoplug import Plugin, Result, Task, hookimpl
from argoplug.hookspecs import BuildContext

SPEC = "tests.build_hook_plugins:plugins"

sample: Plugin[Any] = Plugin(
    "build-hooks-sample", description="Does nothing: its package's build hooks are under test"
)


@sample.handler
def succeed(task: Task, args: object) -> Result:
    return Result.succeeded()


plugins = [sample]


def _asked(context: BuildContext, hook: str, setting: str) -> list[Any]:
    settings = context.settings_for(SPEC)
    if settings.get("fail") == hook:
        raise RuntimeError(f"{hook} cannot work out what this plugin needs")
    return list(settings.get(setting, []))


@hookimpl
def argoplug_container_env(context: BuildContext) -> list[dict[str, Any]]:
    env = _asked(context, "argoplug_container_env", "env")
    if context.settings_for(SPEC).get("echo"):
        seen = {
            "name": context.name,
            "namespaces": list(context.namespaces),
            "plugin_keys": list(context.plugin_keys),
            "settings": dict(context.settings),
            "iam_role_arn": context.iam_role_arn,
        }
        env.append({"name": "BUILD_CONTEXT", "value": json.dumps(seen, sort_keys=True)})
    return env


@hookimpl
def argoplug_container_volumes(context: BuildContext) -> list[dict[str, Any]]:
    return _asked(context, "argoplug_container_volumes", "volumes")


@hookimpl
def argoplug_container_volume_mounts(context: BuildContext) -> list[dict[str, Any]]:
    return _asked(context, "argoplug_container_volume_mounts", "volumeMounts")


@hookimpl
def argoplug_kubernetes_rules(context: BuildContext) -> list[dict[str, Any]]:
    return _asked(context, "argoplug_kubernetes_rules", "rules")


@hookimpl
def argoplug_iam_statements(context: BuildContext) -> list[dict[str, Any]]:
    return _asked(context, "argoplug_iam_statements", "statements")


@hookimpl
def argoplug_dockerfile_lines(context: BuildContext) -> list[str]:
    return _asked(context, "argoplug_dockerfile_lines", "dockerfile")
