"""Template calls: a step, task, entrypoint or exit handler turned into nodes and run (`executeTemplate`).

`TemplateCalls.begin` resolves the template (`template` or `templateRef`), binds the arguments to its
inputs, creates its node (a Retry node when it has a retryStrategy) and returns what will run it: a leaf
node through `leaves` (plugin, HTTP, suspend), a steps or DAG node through `steps` and `dags`. Retries
with backoff, template `parallelism` and global outputs (`globalName`) are here too
(`workflow/controller/operator.go`). `engine.Engine` owns one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from argoplug.agent import leaves
from argoplug.agent.checks import RUNNABLE_KINDS, template_kind
from argoplug.agent.configmaps import ConfigMaps
from argoplug.agent.leaves import HttpRunner, PodRunner, TemplateExecutor
from argoplug.agent.nodes import Node, NodePhase, NodeType, StatusRecorder, WorkflowStatus
from argoplug.agent.retries import attempt_values, decide, retry_strategy
from argoplug.agent.substitution import (
    SetupError,
    expand,
    global_values,
    node_values,
    process_args,
    substitute,
    template_outputs,
)
from argoplug.agent.workflow import TemplateSet, Workflow, WorkflowError
from argoplug.protocol import Outputs, Parameter

__all__ = [
    "DEADLINE_MESSAGE",
    "MAX_DEPTH",
    "Runner",
    "TemplateCalls",
    "cancel",
    "display_name",
    "gather",
    "pod_name",
]

DEADLINE_MESSAGE = "Step exceeded its deadline"  # workflow/controller/exec_control.go
MAX_DEPTH = 100  # the controller's maximum recursion depth of templates

_NODE_TYPES = {
    "plugin": NodeType.PLUGIN,
    "steps": NodeType.STEPS,
    "dag": NodeType.DAG,
    "http": NodeType.HTTP,
    "suspend": NodeType.SUSPEND,
}
_POD_KINDS = ("container", "script")  # run by the `pods` stand-ins when a run has them
# Nodes a template's `parallelism` counts (`getActiveChildrenCounter`): not plugin, HTTP or suspend nodes.
_COUNTED = (NodeType.POD, NodeType.STEPS, NodeType.DAG)


def _cannot_run(kind: str, template: Mapping[str, Any]) -> str:
    also = (
        " (container and script ones with stand-ins: see `argoplug run --help`)" if kind in _POD_KINDS else ""
    )
    return (
        f"argoplug's local agent cannot run {kind} templates (template {template.get('name')!r}): only "
        f"plugin, http, suspend, steps and dag templates run locally{also}; run this workflow on a cluster"
    )


_SEPARATOR = re.compile(r"^(\[\d+\])?\.")

Runner = Coroutine[Any, Any, None]


def display_name(name: str, boundary: Node | None) -> str:
    """A node's name relative to its boundary (`initializeNode`): `wf[0].a(0:x)` in `wf` → `a(0:x)`."""
    if boundary is None:
        return name
    return _SEPARATOR.sub("", name.removeprefix(boundary.name), count=1)


def pod_name(workflow_name: str, node_name: str, template_name: str) -> str:
    """The pod name Argo gives a node (`GeneratePodName`, version v2): `<wf>-<template>-<FNV-1a 32>`."""
    if node_name == workflow_name:
        return workflow_name
    prefix = f"{workflow_name}-{template_name}"[: 253 - 11]
    digest = 0x811C9DC5
    for byte in node_name.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{prefix}-{digest}"


class TemplateCalls:
    """Turn template calls into nodes and run them, for one workflow run (`executeTemplate`).

    `globals` are the workflow-wide variables (the engine sets `workflow.status` and `workflow.failures`
    before the exit handler; `workflow.outputs.parameters.<globalName>` appear as nodes export them).
    See `engine.Engine` for the other arguments.
    """

    def __init__(
        self,
        workflow: Workflow,
        status: WorkflowStatus,
        executor: TemplateExecutor,
        *,
        http: HttpRunner | None,
        sleep: Callable[[float], Awaitable[Any]],
        clock: Callable[[], float] = time.time,
        speed: float = 1.0,
        on_change: Callable[[Node], None] | None = None,
        configmaps: ConfigMaps | None = None,
        pods: PodRunner | None = None,
    ) -> None:
        self.workflow = workflow
        self.configmaps = configmaps
        self._pods = pods
        self.status = status
        self.recorder = StatusRecorder(status, clock=clock, on_change=self._changed)
        self._started = clock()
        self.globals = global_values(workflow, now=self._started)
        self.speed = speed
        self.sleep = sleep
        self._executor = executor
        self._http = http
        self._clock = clock
        self._on_change = on_change
        self._tick = asyncio.Event()
        self.timed_out: set[str] = set()  # the ids of the nodes their template's `timeout` failed

    def _changed(self, node: Node) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()
        if self._on_change is not None:
            self._on_change(node)

    async def changed(self) -> None:
        """Wait until any node changes."""
        await self._tick.wait()

    def elapsed(self, since: float) -> float:
        """Workflow seconds since the `time.time()` instant `since` (real seconds times `speed`)."""
        return (self._clock() - since) * self.speed

    async def execute(
        self,
        name: str,
        call: Mapping[str, Any],
        templates: TemplateSet,
        boundary: Node | None = None,
        depth: int = 0,
        *,
        hooked: bool = False,
        local: Mapping[str, str] | None = None,
    ) -> Node:
        """`begin` the call and run it to its end; return its node."""
        node, runner = self.begin(name, call, templates, boundary, depth, hooked=hooked, local=local)
        if runner is not None:
            await runner
        return node

    def begin(
        self,
        name: str,
        call: Mapping[str, Any],
        templates: TemplateSet,
        boundary: Node | None = None,
        depth: int = 0,
        *,
        hooked: bool = False,
        local: Mapping[str, str] | None = None,
    ) -> tuple[Node, Runner | None]:
        """Create the node of `call` (a step, task or hook mapping) and return what will run it, if anything.

        `templates` is where `call`'s template name resolves; `boundary` the Steps/DAG node it runs in;
        `local` its local variables (`steps.name`, `tasks.name`). A call that cannot start (unknown
        template, input not supplied, recursion too deep, a kind the local agent does not run) gets a
        node that ends as Error at once, and no runner.
        """
        boundary_id = boundary.id if boundary is not None else ""
        display = display_name(name, boundary)
        ref = call.get("templateRef")
        template_name = "" if ref is not None else str(call.get("template") or "")
        inner: TemplateSet | None = None

        def node_of(kind: NodeType, phase: NodePhase, message: str = "") -> Node:
            node = self.recorder.new_node(
                name, display, kind, template_name, boundary_id, phase, None, message
            )
            node.template_ref = dict(ref) if isinstance(ref, Mapping) else None
            node.template_scope = inner.scope if inner is not None else templates.scope
            node.hooked = hooked
            return node

        try:
            inner, template = self.workflow.resolve(call, templates)
        except WorkflowError as exc:
            return node_of(NodeType.SKIPPED, NodePhase.ERROR, str(exc)), None
        if depth > MAX_DEPTH:
            return node_of(
                NodeType.SKIPPED, NodePhase.ERROR, f"Maximum recursion depth exceeded ({MAX_DEPTH})"
            ), None
        kind = template_kind(template) or "unknown"
        arguments = (call.get("arguments") or {}).get("parameters") or []
        self.globals["workflow.duration"] = f"{self.elapsed(self._started):f}"  # setGlobalRuntimeParameters
        try:
            processed, scope, inputs = process_args(
                template,
                arguments,
                self.globals,
                name,
                local,
                configmaps=self.configmaps,
                namespace=self.workflow.namespace,
            )
        except SetupError as exc:
            return node_of(NodeType.SKIPPED, NodePhase.ERROR, str(exc)), None
        strategy = retry_strategy(processed, self.workflow.spec)
        runnable = kind in RUNNABLE_KINDS or (self._pods is not None and kind in _POD_KINDS)
        if not runnable and strategy is None:
            node = node_of(_NODE_TYPES.get(kind, NodeType.POD), NodePhase.ERROR, _cannot_run(kind, template))
            node.inputs = inputs  # as resolved: what the node would have run with
            return node, None
        if strategy is not None:
            node = node_of(NodeType.RETRY, NodePhase.RUNNING)
            node.inputs = inputs
            return node, self._retry(node, kind, processed, scope, strategy, inner, depth)
        node = node_of(
            _NODE_TYPES.get(kind, NodeType.POD),
            NodePhase.RUNNING if kind in ("steps", "dag") else NodePhase.PENDING,
        )
        node.inputs = inputs
        return node, self._run_kind(node, kind, processed, scope, inner, depth, timed=True)

    def not_run(
        self,
        name: str,
        call: Mapping[str, Any],
        boundary: Node,
        phase: NodePhase,
        message: str,
        parent: Node | None,
    ) -> Node:
        """A step or task that does not run: a Skipped-type node, Skipped, Omitted or Error."""
        ref = call.get("templateRef")
        template_name = "" if ref is not None else str(call.get("template") or "")
        node = self.recorder.new_node(
            name,
            display_name(name, boundary),
            NodeType.SKIPPED,
            template_name,
            boundary.id,
            phase,
            parent,
            message,
        )
        node.template_ref = dict(ref) if isinstance(ref, Mapping) else None
        return node

    async def run_hook(
        self,
        parent: Node,
        hook: Mapping[str, Any],
        templates: TemplateSet,
        boundary: Node,
        depth: int,
        *,
        prefix: str = "",
    ) -> Node:
        """Run a step's or task's exit handler once its node completed (`runOnExitNode`).

        `hook` is what `workflow.exit_hook` returns (`template` or `templateRef`, `arguments`). The hook's
        `arguments` resolve with the node's own values in scope as `prefix` (`steps.<name>`,
        `tasks.<name>`: `resolveExitTmplArgument`); without them the workflow's arguments are given
        (`WorkflowStep.GetExitHook(spec.arguments)`).
        """
        arguments = hook.get("arguments")
        if arguments:
            values = {**self.globals, **node_values(prefix, parent, self.status.nodes)}
            resolved = expand(substitute(dict(arguments), values), values, strict=False)
        else:
            resolved = {"parameters": [{"name": k, "value": v} for k, v in self.workflow.parameters.items()]}
        node, runner = self.begin(
            f"{parent.name}.onExit",
            {**hook, "name": "", "arguments": resolved},
            templates,
            boundary,
            depth,
            hooked=True,
        )
        self.recorder.add_child(parent, node)
        if runner is not None:
            await runner
        return node

    async def wait_for_slot(self, boundary: Node, parallelism: Any) -> None:
        """Wait until `boundary` runs fewer than `parallelism` pods, steps and DAGs (`checkParallelism`).

        As in Argo, plugin, HTTP and suspend children do not count: they are never held back by each other.
        """
        if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism <= 0:
            return
        while self._active_children(boundary) >= parallelism:
            await self.changed()

    def _active_children(self, boundary: Node) -> int:
        return sum(
            1
            for node in self.status.nodes.values()
            if node.boundary_id == boundary.id
            and node.type in _COUNTED
            and node.phase in (NodePhase.PENDING, NodePhase.RUNNING)
        )

    def complete(self, node: Node, template: Mapping[str, Any], scope: Mapping[str, str]) -> None:
        """Succeed a steps/DAG node, with the outputs its template takes from its children's `scope`."""
        try:
            outputs = template_outputs(template, scope)
        except SetupError as exc:
            self.recorder.finish(node, NodePhase.ERROR, str(exc))
            return
        if outputs is not None:
            node.outputs = outputs
            self._export(node, template)
        self.recorder.finish(node, NodePhase.SUCCEEDED)

    async def _run_kind(
        self,
        node: Node,
        kind: str,
        template: dict[str, Any],
        scope: Mapping[str, str],
        templates: TemplateSet,
        depth: int,
        *,
        timed: bool,
    ) -> None:
        from argoplug.agent.dags import run_dag
        from argoplug.agent.steps import run_steps

        if kind == "plugin":
            await leaves.timed(
                self, node, template, leaves.run_plugin(self, node, template, scope, self._executor), timed
            )
        elif kind == "http":
            await leaves.timed(
                self, node, template, leaves.run_http(self, node, template, scope, self._http), timed
            )
        elif kind == "suspend":
            await leaves.run_suspend(self, node, template)
        elif kind == "steps":
            await run_steps(self, node, template, templates, depth)
        elif kind == "dag":
            await run_dag(self, node, template, templates, depth)
        elif kind in _POD_KINDS and self._pods is not None:
            await leaves.timed(
                self, node, template, leaves.run_pod(self, node, template, scope, self._pods), timed
            )
        else:  # an attempt of a retried container, script...: as the cluster's Retry node has it
            self.recorder.finish(node, NodePhase.ERROR, _cannot_run(kind, template))
        if kind in ("plugin", "http", "suspend", *_POD_KINDS) and node.outputs is not None:
            self._export(node, template)

    async def _retry(
        self,
        retry: Node,
        kind: str,
        template: dict[str, Any],
        scope: Mapping[str, str],
        strategy: Mapping[str, Any],
        templates: TemplateSet,
        depth: int,
    ) -> None:
        """Run attempts `name(0)`, `name(1)`… under the Retry node until `retries.decide` ends it."""
        attempts: list[Node] = []
        waited = False
        while True:
            if attempts:
                try:
                    decision = decide(
                        strategy, attempts, elapsed=self.elapsed, waited=waited, evaluate=self._evaluate
                    )
                except SetupError as exc:
                    self.recorder.finish(retry, NodePhase.ERROR, str(exc))
                    return
                if decision.finish:
                    retry.outputs = attempts[-1].outputs
                    self.recorder.finish(retry, decision.phase or attempts[-1].phase, decision.message)
                    return
                if decision.wait > 0:
                    self.recorder.update(retry, message=decision.message)
                    await self.sleep(decision.wait / self.speed)
                    self.recorder.update(retry, message="")
                    waited = True
                    continue
            waited = False
            values = {**scope, **attempt_values(attempts)}
            attempt = expand(substitute(template, values), {**self.globals, **values}, strict=False)
            name = f"{retry.name}({len(attempts)})"
            phase = NodePhase.RUNNING if kind in ("steps", "dag") else NodePhase.PENDING
            boundary = self.status.nodes.get(retry.boundary_id)
            child = self.recorder.new_node(
                name,
                display_name(name, boundary),
                _NODE_TYPES.get(kind, NodeType.POD),
                retry.template_name,
                retry.boundary_id,
                phase,
            )
            child.template_ref, child.template_scope = retry.template_ref, retry.template_scope
            child.inputs, child.retried = dict(retry.inputs), True
            self.recorder.add_child(retry, child)
            await self._run_kind(child, kind, attempt, values, templates, depth, timed=False)
            attempts.append(child)

    def _evaluate(self, expression: str, scope: Mapping[str, str]) -> bool:
        from argoplug.agent import expressions

        try:
            value = expressions.evaluate(expression, expressions.env_from_scope({**self.globals, **scope}))
        except expressions.ExpressionError as exc:
            raise SetupError(f"retryStrategy.expression {expression!r}: {exc}") from None
        if not isinstance(value, bool):  # Argo requires a boolean (retry.go), "false" is no false
            raise SetupError(f"retryStrategy.expression {expression!r}: expected a boolean, got {value!r}")
        return value

    def _export(self, node: Node, template: Mapping[str, Any]) -> None:
        """Put the node's `globalName` outputs in the workflow's outputs, globals (`addParamToGlobalScope`).

        Only what the node's outputs carry counts: a plugin must echo `globalName` in its reply
        (docs/contract.md §2.6). A declared one it did not echo is noted on the node's `warning`.
        """
        outputs = node.outputs
        if outputs is None:
            return
        for param in outputs.parameters:
            if param.globalName and param.value is not None:
                self.globals[f"workflow.outputs.parameters.{param.globalName}"] = param.value
                current = self.status.outputs or Outputs()
                kept = [p for p in current.parameters if p.name != param.globalName]
                self.status.outputs = Outputs(
                    parameters=[*kept, Parameter(name=param.globalName, value=param.value)]
                )
        if node.type not in (NodeType.PLUGIN,):
            return
        echoed = {p.name for p in outputs.parameters if p.globalName}
        missed = [
            f"{p.get('name')} (globalName {p['globalName']})"
            for p in (template.get("outputs") or {}).get("parameters") or []
            if p.get("globalName") and p.get("name") not in echoed
        ]
        if missed and node.phase == NodePhase.SUCCEEDED:
            node.warning = (
                f"the template declares a globalName for {', '.join(missed)} but the plugin's reply did not "
                "echo it: Argo sets no workflow.outputs.parameters from it (docs/contract.md §2.6)"
            )
            self.recorder.update(node)


async def gather(runners: Sequence[Awaitable[Any]]) -> None:
    """Run `runners` at once; if this is cancelled, cancel them all and wait for them."""
    futures = [asyncio.ensure_future(r) for r in runners]
    try:
        await asyncio.gather(*futures)
    finally:
        await cancel(*futures)


async def cancel(*futures: asyncio.Future[Any] | None) -> None:
    """Cancel the unfinished `futures` and wait until they are done."""
    pending = [f for f in futures if f is not None and not f.done()]
    for future in pending:
        future.cancel()
    if pending:
        await asyncio.wait(pending)
