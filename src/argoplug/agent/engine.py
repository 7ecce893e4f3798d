"""The local agent's engine: runs a Workflow's entrypoint as Argo's controller would.

Steps groups run in order with their steps in parallel (`workflow/controller/steps.go`); DAG tasks run when
their dependencies succeeded (`workflow/controller/dag.go`); plugin templates go to the plugins through an
`AgentClient` (the agent pod, `workflow/executor/agent.go`). `argoplug run` runs a workflow through it once
`checks.check` passed; the status it changes is `nodes`' and the variables it substitutes `substitution`'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from argoplug.agent.checks import RUNNABLE_KINDS, template_kind
from argoplug.agent.client import NodeUpdate
from argoplug.agent.dag import SATISFIED, ancestors, assess_dag
from argoplug.agent.nodes import Node, NodePhase, NodeType, StatusRecorder, WorkflowStatus
from argoplug.agent.substitution import (
    SetupError,
    global_values,
    node_values,
    process_args,
    substitute,
    template_outputs,
    unresolved_problem,
)
from argoplug.agent.workflow import Workflow

__all__ = ["DEADLINE_MESSAGE", "MAX_DEPTH", "Engine", "TemplateExecutor"]

DEADLINE_MESSAGE = "Step exceeded its deadline"  # workflow/controller/exec_control.go
MAX_DEPTH = 100  # the controller's maximum recursion depth of templates

_NODE_TYPES = {
    "plugin": NodeType.PLUGIN,
    "steps": NodeType.STEPS,
    "dag": NodeType.DAG,
    "http": NodeType.HTTP,
    "suspend": NodeType.SUSPEND,
}


class TemplateExecutor(Protocol):
    """What runs a plugin node: `AgentClient.follow`'s shape."""

    async def follow(
        self, request: Mapping[str, Any], on_update: Callable[[NodeUpdate], None]
    ) -> NodeUpdate: ...  # pragma: no cover


Runner = Coroutine[Any, Any, None]


class Engine:
    """Run one workflow: `await Engine(workflow, client).run()` returns its final `WorkflowStatus`.

    `executor` runs plugin nodes (an `AgentClient`). `on_change(node)` is called after every change of a
    node (for the live view). `sleep` times the workflow's `activeDeadlineSeconds`; when it passes, the
    nodes still running fail with `Step exceeded its deadline` and so does the workflow. Cancelling `run`
    (Ctrl-C) fails the unfinished nodes with `Stopped` before the cancellation goes on. `check(workflow)`
    must have passed.
    """

    def __init__(
        self,
        workflow: Workflow,
        executor: TemplateExecutor,
        *,
        on_change: Callable[[Node], None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.workflow = workflow
        self.status = WorkflowStatus(workflow.name, workflow.namespace, workflow.uid, workflow.parameters)
        self._recorder = StatusRecorder(self.status, clock=clock, on_change=on_change)
        self._executor = executor
        self._sleep = sleep
        self._globals = global_values(workflow)

    async def run(self) -> WorkflowStatus:
        """Run the entrypoint with the workflow's arguments until it ends, times out or is cancelled."""
        self._recorder.start()
        arguments = [{"name": k, "value": v} for k, v in self.workflow.parameters.items()]
        root = asyncio.ensure_future(
            self._execute(self.workflow.name, self.workflow.entrypoint, arguments, "", self.workflow.name, 0)
        )
        waiting: set[asyncio.Future[Any]] = {root}
        deadline = self.workflow.active_deadline_seconds
        timer = asyncio.ensure_future(self._sleep(deadline)) if deadline is not None else None
        if timer is not None:
            waiting.add(timer)
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(root, timer)
            self._recorder.stop("Stopped: argoplug run was interrupted")
            raise
        if not root.done():
            await _cancel(root, timer)
            self._recorder.stop(DEADLINE_MESSAGE)
            return self.status
        await _cancel(timer)
        node = root.result()
        if node.phase == NodePhase.SUCCEEDED:
            self._recorder.end(NodePhase.SUCCEEDED, "")
        else:
            phase = NodePhase.ERROR if node.phase == NodePhase.ERROR else NodePhase.FAILED
            self._recorder.end(phase, node.message)
        return self.status

    async def _execute(
        self,
        name: str,
        template: str,
        arguments: Sequence[Mapping[str, Any]],
        boundary: str,
        display: str,
        depth: int,
        parent: Node | None = None,
    ) -> Node:
        node, runner = self._begin(name, template, arguments, boundary, display, depth, parent)
        if runner is not None:
            await runner
        return node

    def _begin(
        self,
        name: str,
        template_name: str,
        arguments: Sequence[Mapping[str, Any]],
        boundary: str,
        display: str,
        depth: int,
        parent: Node | None = None,
    ) -> tuple[Node, Runner | None]:
        """Create the node of a template call (`executeTemplate`) and return what will run it, if anything."""
        template = self.workflow.templates[template_name]
        kind = template_kind(template) or "unknown"
        node_type = _NODE_TYPES.get(kind, NodeType.POD)
        phase = NodePhase.PENDING if kind == "plugin" else NodePhase.RUNNING
        node = self._recorder.new_node(name, display, node_type, template_name, boundary, phase, parent)
        if depth > MAX_DEPTH:
            self._recorder.finish(node, NodePhase.ERROR, f"Maximum recursion depth exceeded ({MAX_DEPTH})")
            return node, None
        if kind not in RUNNABLE_KINDS:
            message = (
                f"argoplug's local agent cannot run {kind} templates (template {template_name!r}): only "
                "plugin, steps and dag templates run locally; run this workflow on a cluster"
            )
            self._recorder.finish(node, NodePhase.ERROR, message)
            return node, None
        try:
            processed, values = process_args(template, arguments, self._globals, node)
        except SetupError as exc:
            self._recorder.finish(node, NodePhase.ERROR, str(exc))
            return node, None
        if kind == "plugin":
            return node, self._run_plugin(node, processed)
        if kind == "steps":
            return node, self._run_steps(node, processed, values, depth)
        return node, self._run_dag(node, processed, values, depth)

    async def _run_plugin(self, node: Node, template: dict[str, Any]) -> None:
        problem = unresolved_problem(template)
        if problem:
            self._recorder.finish(node, NodePhase.ERROR, problem)
            return
        workflow = self.workflow
        request = {
            "workflow": {
                "metadata": {"name": workflow.name, "namespace": workflow.namespace, "uid": workflow.uid}
            },
            "template": template,
        }
        await self._executor.follow(request, lambda update: self._recorder.record(node, update))

    async def _run_steps(
        self, node: Node, template: dict[str, Any], values: dict[str, str], depth: int
    ) -> None:
        """Run the step groups in order, each group's steps at once (`executeSteps`, `executeStepGroup`)."""
        scope = dict(values)
        for i, group in enumerate(template.get("steps") or []):
            group_node = self._recorder.new_node(
                f"{node.name}[{i}]",
                f"[{i}]",
                NodeType.STEP_GROUP,
                node.template_name,
                node.id,
                NodePhase.RUNNING,
            )
            steps = [substitute(step, scope) for step in group or []]
            for step in steps:
                problem = unresolved_problem(step)
                if problem:
                    child = self._not_run(
                        f"{group_node.name}.{step['name']}", step, node, NodePhase.ERROR, problem, group_node
                    )
                    self._recorder.finish(
                        group_node,
                        NodePhase.ERROR,
                        f"step group deemed errored due to child {child.name} error: {child.message}",
                    )
                    self._recorder.finish(node, NodePhase.FAILED, group_node.message)
                    return
            started: list[tuple[str, Node]] = []
            runners: list[Runner] = []
            for step in steps:
                arguments = (step.get("arguments") or {}).get("parameters") or []
                child, runner = self._begin(
                    f"{group_node.name}.{step['name']}",
                    step["template"],
                    arguments,
                    node.id,
                    step["name"],
                    depth + 1,
                    group_node,
                )
                started.append((step["name"], child))
                if runner is not None:
                    runners.append(runner)
            await _gather(runners)
            failed = [child for _, child in started if child.phase.failed_or_error]
            if failed:
                self._recorder.finish(group_node, NodePhase.FAILED, f"child '{failed[0].id}' failed")
                self._recorder.finish(node, NodePhase.FAILED, group_node.message)
                return
            self._recorder.finish(group_node, NodePhase.SUCCEEDED)
            for step_name, child in started:
                scope.update(node_values(f"steps.{step_name}", child))
        self._complete(node, template, scope)

    async def _run_dag(
        self, node: Node, template: dict[str, Any], values: dict[str, str], depth: int
    ) -> None:
        """Run tasks as their dependencies succeed; omit those whose dependencies did not (`executeDAG`)."""
        dag = template["dag"]
        tasks = {task["name"]: task for task in dag.get("tasks") or []}
        dependencies = {name: list(task.get("dependencies") or []) for name, task in tasks.items()}
        nodes: dict[str, Node] = {}
        running: dict[asyncio.Future[None], str] = {}
        try:
            while True:
                for name, runner in self._dag_ready(node, tasks, dependencies, nodes, values, depth):
                    running[asyncio.ensure_future(runner)] = name
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    future.result()
        finally:
            await _cancel(*running)
        phase = assess_dag(tasks, dependencies, nodes, fail_fast=dag.get("failFast") is not False)
        if phase != NodePhase.SUCCEEDED:
            self._recorder.finish(node, phase)
            return
        scope = dict(values)
        for name, task_node in nodes.items():
            scope.update(node_values(f"tasks.{name}", task_node))
        self._complete(node, template, scope)

    def _dag_ready(
        self,
        node: Node,
        tasks: Mapping[str, Mapping[str, Any]],
        dependencies: Mapping[str, Sequence[str]],
        nodes: dict[str, Node],
        values: Mapping[str, str],
        depth: int,
    ) -> list[tuple[str, Runner]]:
        """Create the nodes of the tasks whose dependencies are all done; return the runners of those to run.

        `dependencies: [A]` means `A.Succeeded || A.Skipped || A.Daemoned`: a task with any other
        dependency phase is Omitted (`omitted: depends condition not met`), and so are its dependents.
        """
        runners: list[tuple[str, Runner]] = []
        progressed = True
        while progressed:
            progressed = False
            for name, task in tasks.items():
                if name in nodes:
                    continue
                deps = [nodes.get(d) for d in dependencies[name]]
                if any(dep is None or not dep.phase.fulfilled for dep in deps):
                    continue
                progressed = True
                child_name = f"{node.name}.{name}"
                if not all(dep is not None and dep.phase in SATISFIED for dep in deps):
                    omitted = "omitted: depends condition not met"
                    nodes[name] = self._not_run(child_name, task, node, NodePhase.OMITTED, omitted)
                    continue
                scope = dict(values)
                for ancestor in ancestors(name, dependencies):
                    scope.update(node_values(f"tasks.{ancestor}", nodes[ancestor]))
                resolved = substitute(dict(task), scope)
                problem = unresolved_problem(resolved)
                if problem:
                    nodes[name] = self._not_run(child_name, task, node, NodePhase.ERROR, problem)
                    continue
                arguments = (resolved.get("arguments") or {}).get("parameters") or []
                nodes[name], runner = self._begin(
                    child_name, resolved["template"], arguments, node.id, name, depth + 1
                )
                if runner is not None:
                    runners.append((name, runner))
        return runners

    def _not_run(
        self,
        name: str,
        call: Mapping[str, Any],
        boundary: Node,
        phase: NodePhase,
        message: str,
        parent: Node | None = None,
    ) -> Node:
        """A step or task that does not run: a Skipped-type node, Omitted or Error (`initializeNode`)."""
        node = self._recorder.new_node(
            name, call["name"], NodeType.SKIPPED, call["template"], boundary.id, phase, parent
        )
        return self._recorder.finish(node, phase, message)

    def _complete(self, node: Node, template: Mapping[str, Any], scope: Mapping[str, str]) -> None:
        """Succeed a steps/DAG node, with the outputs its template takes from its children."""
        try:
            outputs = template_outputs(template, scope)
        except SetupError as exc:
            self._recorder.finish(node, NodePhase.ERROR, str(exc))
            return
        if outputs is not None:
            node.outputs = outputs
        self._recorder.finish(node, NodePhase.SUCCEEDED)


async def _gather(runners: Sequence[Runner]) -> None:
    """Run `runners` at once; if this is cancelled, cancel them all and wait for them."""
    futures = [asyncio.ensure_future(r) for r in runners]
    try:
        await asyncio.gather(*futures)
    finally:
        await _cancel(*futures)


async def _cancel(*futures: asyncio.Future[Any] | None) -> None:
    """Cancel the unfinished `futures` and wait until they are done."""
    pending = [f for f in futures if f is not None and not f.done()]
    for future in pending:
        future.cancel()
    if pending:
        await asyncio.wait(pending)
