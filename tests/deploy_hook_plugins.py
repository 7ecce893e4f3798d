"""A plugin package with the deploy hooks and a parameters type, for tests/kube/test_deploy.py: selected as
`tests.deploy_hook_plugins:plugins`.

Its parameters (`Parameters`): `fail` names a hook to raise in (e.g. `argoplug_deploy`); `note` goes into
the ConfigMap `<instance>-note` that `argoplug_deploy` creates through the context's namespace-limited
client and `argoplug_destroy` deletes. `CALLS` records (hook, namespace, instance) of every call.
"""

from __future__ import annotations

from typing import Any

import msgspec

from argoplug import Plugin, Result, Task, hookimpl
from argoplug.hookspecs import DeployContext

CALLS: list[tuple[str, str, str]] = []


class Parameters(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    fail: str = ""
    note: str = ""


sample: Plugin[Any] = Plugin(
    "deploy-hooks-sample", description="Does nothing: its deploy hooks are under test"
)


@sample.handler
def succeed(task: Task, args: object) -> Result:
    return Result.succeeded()


plugins = [sample]


@hookimpl
def argoplug_parameters_type() -> Any:
    return Parameters


def _called(hook: str, context: DeployContext) -> None:
    CALLS.append((hook, context.namespace, context.instance))
    if context.parameters.fail == hook:
        raise RuntimeError(f"{hook} refused in {context.namespace}")


@hookimpl
def argoplug_pre_deploy(context: DeployContext) -> None:
    _called("argoplug_pre_deploy", context)


@hookimpl
def argoplug_deploy(context: DeployContext) -> None:
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ConfigMap

    context.client.apply(
        ConfigMap(
            metadata=ObjectMeta(name=f"{context.instance}-note"), data={"note": context.parameters.note}
        )
    )
    _called("argoplug_deploy", context)


@hookimpl
def argoplug_post_deploy(context: DeployContext) -> None:
    _called("argoplug_post_deploy", context)


@hookimpl
def argoplug_destroy(context: DeployContext) -> None:
    from lightkube.resources.core_v1 import ConfigMap

    context.client.delete(ConfigMap, f"{context.instance}-note")
    _called("argoplug_destroy", context)
