"""Leaf templates run to their end: plugin nodes (through the agent client), HTTP nodes (through the HTTP
runner), suspend nodes (for their duration), and a template's `timeout` over them.

As `executePluginTemplate` (`workflow/controller/plugin_template.go`, the agent in
`workflow/executor/agent.go`), `executeHTTPTemplate` (`http_template.go`), `executeSuspend` and
`checkTemplateTimeout` (`operator.go`). `templates.TemplateCalls` runs a leaf node through these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from argoplug.agent.client import NodeUpdate
from argoplug.agent.nodes import Node, NodePhase
from argoplug.agent.retries import parse_duration_string
from argoplug.agent.substitution import SetupError, expand, unresolved_problem
from argoplug.protocol import Outputs, Parameter, parse_duration

if TYPE_CHECKING:
    from argoplug.agent.templates import TemplateCalls

__all__ = [
    "TIMEOUT_MESSAGE",
    "HttpRunner",
    "PodRunner",
    "TemplateExecutor",
    "run_http",
    "run_plugin",
    "run_pod",
    "run_suspend",
    "timed",
]

TIMEOUT_MESSAGE = "timeout"  # `ErrTimeout`: a template's `timeout` passed while its node was Pending


class TemplateExecutor(Protocol):
    """What runs a plugin node: `AgentClient.follow`'s shape."""

    async def follow(
        self, request: Mapping[str, Any], on_update: Callable[[NodeUpdate], None]
    ) -> NodeUpdate: ...  # pragma: no cover


class HttpRunner(Protocol):
    """What runs an HTTP node: `http_template.HttpTemplateRunner.run`'s shape (a terminal update)."""

    async def run(self, template: Mapping[str, Any], node_name: str) -> NodeUpdate: ...  # pragma: no cover


class PodRunner(Protocol):
    """What stands in for a container or script node's pod: `pods.PodStandIns.run`'s shape."""

    async def run(self, template: Mapping[str, Any], node_name: str) -> NodeUpdate: ...  # pragma: no cover


def _final(
    calls: TemplateCalls, node: Node, template: dict[str, Any], scope: Mapping[str, str]
) -> dict[str, Any] | None:
    """The template as sent: expressions evaluated, checked tags resolved; None (node Error) if not."""
    try:
        template = expand(template, {**calls.globals, **scope}, strict=True)
    except SetupError as exc:
        calls.recorder.finish(node, NodePhase.ERROR, str(exc))
        return None
    problem = unresolved_problem(template)
    if problem:
        calls.recorder.finish(node, NodePhase.ERROR, problem)
        return None
    return template


async def run_plugin(
    calls: TemplateCalls,
    node: Node,
    template: dict[str, Any],
    scope: Mapping[str, str],
    executor: TemplateExecutor,
) -> None:
    """Send the template to the plugins until its node is done, recording every reply on the node."""
    final = _final(calls, node, template, scope)
    if final is None:
        return
    workflow = calls.workflow
    request = {
        "workflow": {
            "metadata": {"name": workflow.name, "namespace": workflow.namespace, "uid": workflow.uid}
        },
        "template": final,
    }
    await executor.follow(request, lambda update: calls.recorder.record(node, update))


async def run_http(
    calls: TemplateCalls,
    node: Node,
    template: dict[str, Any],
    scope: Mapping[str, str],
    http: HttpRunner | None,
) -> None:
    """Run an HTTP template through `http`; without one the node ends as Error saying how to run it."""
    if http is None:
        calls.recorder.finish(
            node,
            NodePhase.ERROR,
            f"template {template.get('name')!r} is an HTTP template and this run has no HTTP template "
            "runner: `argoplug run` provides one (a program using Engine passes "
            "http=HttpTemplateRunner(...))",
        )
        return
    final = _final(calls, node, template, scope)
    if final is None:
        return
    calls.recorder.record(node, await http.run(final, node.name))


async def run_pod(
    calls: TemplateCalls, node: Node, template: dict[str, Any], scope: Mapping[str, str], pods: PodRunner
) -> None:
    """Run a container or script template through `pods` (canned results or a local process)."""
    final = _final(calls, node, template, scope)
    if final is None:
        return
    calls.recorder.update(node, phase=NodePhase.RUNNING)
    calls.recorder.record(node, await pods.run(final, node.name))


async def run_suspend(calls: TemplateCalls, node: Node, template: dict[str, Any]) -> None:
    """Wait the suspend template's `duration` (divided by the speed), then resume with its outputs' defaults.

    The node goes Running; once resumed, its `valueFrom.supplied` outputs take their `default`
    (`OverrideOutputParametersWithDefault`); one without default ends the node as Error.
    """
    raw = [p for p in (template.get("outputs") or {}).get("parameters") or [] if _supplied(p)]
    try:
        seconds = parse_duration_string(str((template.get("suspend") or {}).get("duration")))
    except SetupError as exc:
        calls.recorder.finish(node, NodePhase.ERROR, str(exc))
        return
    calls.recorder.update(node, phase=NodePhase.RUNNING)
    await calls.sleep(max(seconds, 0.0) / calls.speed)
    parameters = []
    for param in raw:
        default = (param.get("valueFrom") or {}).get("default")
        if default is None:
            name = param.get("name")
            message = f"raw output parameter '{name}' has not been set and does not have a default value"
            calls.recorder.finish(node, NodePhase.ERROR, message)
            return
        parameters.append(
            Parameter(name=str(param["name"]), value=str(default), globalName=param.get("globalName"))
        )
    if parameters:
        node.outputs = Outputs(parameters=parameters)
    calls.recorder.finish(node, NodePhase.SUCCEEDED)


def _supplied(param: Mapping[str, Any]) -> bool:
    value_from = param.get("valueFrom")
    return isinstance(value_from, Mapping) and value_from.get("supplied") is not None


async def timed(
    calls: TemplateCalls,
    node: Node,
    template: Mapping[str, Any],
    work: Coroutine[Any, Any, None],
    enforced: bool,
) -> None:
    """Run `work`; fail the node with `timeout` when the template's `timeout` passes while it is Pending.

    As `checkTemplateTimeout`: the timeout counts from the node's start and is enforced only while the
    node is Pending (docs/contract.md §3.8), also when it becomes Pending again later; an unparsable one
    fails the
    node. A Retry node is never Pending, so an attempt of a template with a retryStrategy has no timeout
    (`enforced` False).
    """
    from argoplug.agent.templates import cancel

    text = template.get("timeout") if enforced else None
    if not text:
        await work
        return
    try:
        seconds = parse_duration(str(text))
    except ValueError as exc:
        work.close()
        calls.recorder.finish(node, NodePhase.FAILED, f"invalid timeout format. {exc}")
        return
    task = asyncio.ensure_future(work)
    left = max(seconds - calls.elapsed(node.started_at or 0.0), 0.0)
    timer = asyncio.ensure_future(calls.sleep(left / calls.speed))
    watch: asyncio.Future[Any] | None = None
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        while not task.done():
            if node.phase == NodePhase.PENDING:
                await cancel(task)
                calls.timed_out.add(node.id)
                calls.recorder.finish(node, NodePhase.FAILED, TIMEOUT_MESSAGE)
                return
            watch = asyncio.ensure_future(calls.changed())
            await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        task.result()
    finally:
        await cancel(task, timer, watch)
