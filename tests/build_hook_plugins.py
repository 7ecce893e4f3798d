"""A plugin package with every build hook, for tests/build: selected as `tests.build_hook_plugins:plugins`.

Each hook returns what the bundle's `settings` for this package (`context.settings`) ask for (`env`,
`volumes`, `volumeMounts`, `rules`, `statements`, `dockerfile`: lists returned as they are), and nothing
otherwise; `fail: <hook>` makes that hook raise; `echo: true` adds an EnvVar `BUILD_CONTEXT` holding the
BuildContext as JSON; `vandal: true` makes every hook empty, after reading them, each list in its context's
`settings` and `all_settings` (which must not change what any other hook sees).
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

# Another plugin of this module, for a bundle that selects the module twice (`...:plugins`, `...:again`).
again: Plugin[Any] = Plugin("build-hooks-again", description="Also does nothing")


@again.handler
def succeed_again(task: Task, args: object) -> Result:
    return Result.succeeded()


def _asked(context: BuildContext, hook: str, setting: str) -> list[Any]:
    settings = context.settings
    if settings.get("fail") == hook:
        raise RuntimeError(f"{hook} cannot work out what this plugin needs")
    asked = list(settings.get(setting, []))
    if settings.get("vandal"):
        for mapping in [settings, *context.all_settings.values()]:
            for value in mapping.values():
                if isinstance(value, list):
                    value.clear()
    return asked


@hookimpl
def argoplug_container_env(context: BuildContext) -> list[dict[str, Any]]:
    echo = context.settings.get("echo")
    env = _asked(context, "argoplug_container_env", "env")
    if echo:
        seen = {
            "name": context.name,
            "namespaces": list(context.namespaces),
            "plugin_keys": list(context.plugin_keys),
            "settings": dict(context.settings),
            "iam_role_arn": context.iam_role_arn,
            "package": context.package,
            "all_settings": dict(context.all_settings),
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
