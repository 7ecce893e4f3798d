"""A DAG template run as Argo's controller runs it (`workflow/controller/dag.go`).

A task runs once the tasks its `depends` (or `dependencies`) names are done and the logic holds; it is
Omitted when the logic cannot hold, skipped by `when`, fanned out over its loop under a TaskGroup node,
held back by the template's `parallelism`, and followed by its `onExit` template. Only the `target`
tasks and their ancestors run. The DAG's phase is `dag.assess_dag`'s. `templates.TemplateCalls` calls
`run_dag` for a DAG node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from argoplug.agent.dag import ancestors, assess_dag, depends_logic, outbound_nodes, target_tasks
from argoplug.agent.loops import LOOP_FIELDS, aggregate_outputs, expand_call
from argoplug.agent.nodes import Node, NodePhase, NodeType, node_id
from argoplug.agent.steps import when_skips
from argoplug.agent.substitution import SetupError, expand, node_values, substitute, unresolved_problem
from argoplug.agent.templates import cancel
from argoplug.agent.workflow import EXIT_HOOK, TemplateSet, exit_hook, without_hook

if TYPE_CHECKING:
    from argoplug.agent.templates import TemplateCalls

__all__ = ["run_dag"]


async def run_dag(
    calls: TemplateCalls, node: Node, template: Mapping[str, Any], templates: TemplateSet, depth: int
) -> None:
    """Run the tasks of `template` under the DAG `node` and end it (`executeDAG`)."""
    await _DagRun(calls, node, template, templates, depth).run()


class _DagRun:
    """One run of a DAG template: its tasks, their nodes, what still runs."""

    def __init__(
        self,
        calls: TemplateCalls,
        node: Node,
        template: Mapping[str, Any],
        templates: TemplateSet,
        depth: int,
    ) -> None:
        self.calls, self.node, self.template, self.templates, self.depth = (
            calls,
            node,
            template,
            templates,
            depth,
        )
        self.dag = template["dag"]
        self.tasks: dict[str, Mapping[str, Any]] = {t["name"]: t for t in self.dag.get("tasks") or []}
        logic = {name: depends_logic(name, self.tasks) for name in self.tasks}
        self.dependencies = {name: deps for name, (deps, _) in logic.items()}
        self.logic = {name: text for name, (_, text) in logic.items()}
        self.targets = target_tasks(self.dag, self.dependencies)
        wanted = set(self.targets).union(*(ancestors(t, self.dependencies) for t in self.targets))
        self.order = [name for name in self.tasks if name in wanted]
        self.started: set[str] = set()
        self.running: dict[asyncio.Future[Any], str] = {}
        self.groups: dict[str, list[Node]] = {}

    def task_node(self, name: str) -> Node | None:
        return self.calls.status.nodes.get(node_id(self.calls.status.name, f"{self.node.name}.{name}"))

    def settled(self, name: str) -> bool:
        """True once the task's node and everything it runs (items, exit handlers) are done."""
        task = self.task_node(name)
        return task is not None and task.phase.fulfilled and name not in self.running.values()

    async def run(self) -> None:
        recorder = self.calls.recorder
        try:
            while True:
                self._start_ready()
                if not self.running:
                    break
                done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    name = self.running.pop(future)
                    future.result()
                    self._end_group(name)
        finally:
            await cancel(*self.running)
        nodes = self.calls.status.nodes
        ids = {name: node_id(self.calls.status.name, f"{self.node.name}.{name}") for name in self.tasks}
        phase = assess_dag(
            self.node, self.targets, ids, nodes, self.tasks, fail_fast=self.dag.get("failFast") is not False
        )
        self.node.outbound_nodes = [
            o for t in self.targets if (n := self.task_node(t)) is not None for o in outbound_nodes(n, nodes)
        ]
        if phase == NodePhase.RUNNING:
            never = [t for t in self.targets if self.task_node(t) is None]
            message = f"the DAG cannot go on: tasks {', '.join(never)} can never run"
            recorder.finish(self.node, NodePhase.ERROR, message)
            return
        if phase != NodePhase.SUCCEEDED:
            recorder.finish(self.node, phase)
            return
        scope = dict(self.calls.globals)
        try:
            for name in self.tasks:
                task = self.task_node(name)
                if task is None:
                    continue
                if task.type == NodeType.TASK_GROUP:
                    scope.update(aggregate_outputs(f"tasks.{name}", [nodes[c] for c in task.children]))
                scope.update(node_values(f"tasks.{name}", task, nodes))
        except SetupError as exc:
            recorder.finish(self.node, NodePhase.ERROR, str(exc))
            return
        self.calls.complete(self.node, self.template, scope)

    def _start_ready(self) -> None:
        """Create the nodes of every task whose dependencies are settled, and start those that run."""
        progressed = True
        while progressed:
            progressed = False
            for name in self.order:
                if name in self.started or not all(self.settled(d) for d in self.dependencies[name]):
                    continue
                self.started.add(name)
                progressed = True
                self._start(name)

    def _start(self, name: str) -> None:
        """`executeDAGTask` for a task whose dependencies are done."""
        from argoplug.agent import expressions

        calls, task = self.calls, self.tasks[name]
        node_name = f"{self.node.name}.{name}"
        if self.logic[name]:
            try:
                execute = expressions.evaluate_depends(self.logic[name], self._results(name))
            except expressions.ExpressionError as exc:
                message = f"unable to evaluate expression '{self.logic[name]}': {exc.problem}"
                self._connect(name, calls.not_run(node_name, task, self.node, NodePhase.ERROR, message, None))
                return
            if execute is None:  # a name that is no task of the DAG (`check` refuses it)
                message = (
                    f"unable to evaluate expression '{self.logic[name]}': it names a task that never ran"
                )
                self._connect(name, calls.not_run(node_name, task, self.node, NodePhase.ERROR, message, None))
                return
            if not execute:
                omitted = "omitted: depends condition not met"
                self._connect(
                    name, calls.not_run(node_name, task, self.node, NodePhase.OMITTED, omitted, None)
                )
                return
        try:
            scope = {**calls.globals, **self._ancestor_values(name)}
        except SetupError as exc:
            self._connect(name, calls.not_run(node_name, task, self.node, NodePhase.ERROR, str(exc), None))
            return
        resolved = expand(substitute(without_hook(task), scope), scope, strict=False)
        if task.get(EXIT_HOOK):  # resolved once the task ended, with its outputs (run_hook)
            resolved[EXIT_HOOK] = task[EXIT_HOOK]
        looped = any(resolved.get(field) not in (None, "", []) for field in LOOP_FIELDS)
        if not looped:
            self._run_one(name, resolved, None)
            return
        try:
            items = expand_call(resolved, calls.globals)
        except SetupError as exc:
            self._connect(name, calls.not_run(node_name, task, self.node, NodePhase.ERROR, str(exc), None))
            return
        if not items:
            skipped = calls.not_run(
                node_name, task, self.node, NodePhase.SKIPPED, "Skipped, empty params", None
            )
            self._connect(name, skipped)
            return
        group = calls.recorder.new_node(
            node_name, name, NodeType.TASK_GROUP, "", self.node.id, NodePhase.RUNNING
        )
        self._connect(name, group)
        self.groups[name] = []
        for item in items:
            self._run_one(name, item, group)
        self._end_group(name)

    def _run_one(self, name: str, task: dict[str, Any], group: Node | None) -> None:
        """Start one task (or one item of a looped task) unless `when` skips it."""
        from argoplug.agent import expressions

        calls = self.calls
        node_name = f"{self.node.name}.{task['name']}"
        parent = group
        try:
            skip = when_skips(task)
        except expressions.ExpressionError as exc:
            self._place(
                name, calls.not_run(node_name, task, self.node, NodePhase.ERROR, str(exc), parent), group
            )
            return
        if skip:
            message = f"when '{task['when']}' evaluated false"
            self._place(
                name, calls.not_run(node_name, task, self.node, NodePhase.SKIPPED, message, parent), group
            )
            return
        problem = unresolved_problem(without_hook(task))
        if problem:
            self._place(
                name, calls.not_run(node_name, task, self.node, NodePhase.ERROR, problem, parent), group
            )
            return
        future = asyncio.ensure_future(self._run_task(name, node_name, task, group))
        self.running[future] = name

    async def _run_task(self, name: str, node_name: str, task: Mapping[str, Any], group: Node | None) -> None:
        calls = self.calls
        await calls.wait_for_slot(self.node, self.template.get("parallelism"))
        child, runner = calls.begin(
            node_name,
            task,
            self.templates,
            self.node,
            self.depth + 1,
            local={"tasks.name": str(self.tasks[name]["name"])},
        )
        self._place(name, child, group)
        if runner is not None:
            await runner
        hook = exit_hook(self.tasks[name])
        if child.phase.completed and hook is not None:
            prefix = f"tasks.{name}"
            await calls.run_hook(child, hook, self.templates, self.node, self.depth + 1, prefix=prefix)

    def _place(self, name: str, child: Node, group: Node | None) -> None:
        """Link a task's node into the graph: under its TaskGroup, or after its dependencies."""
        if group is not None:
            self.calls.recorder.add_child(group, child)
            self.groups[name].append(child)
        else:
            self._connect(name, child)

    def _connect(self, name: str, child: Node) -> None:
        """Hang a task's node off the DAG (a root task) or its dependencies' outbound nodes."""
        nodes = self.calls.status.nodes
        deps = self.dependencies[name]
        if not deps:
            self.calls.recorder.add_child(self.node, child)
            return
        for dep in deps:
            dep_node = self.task_node(dep)
            if dep_node is None:
                continue
            for out in outbound_nodes(dep_node, nodes):
                self.calls.recorder.add_child(nodes[out], child)

    def _end_group(self, name: str) -> None:
        """End a TaskGroup once all its items are done: Succeeded, or its last failed item's phase."""
        group = self.task_node(name)
        if group is None or group.type != NodeType.TASK_GROUP or group.phase.fulfilled:
            return
        if name in self.running.values() or not all(c.phase.fulfilled for c in self.groups.get(name, [])):
            return
        phase = NodePhase.SUCCEEDED
        for child in self.groups.get(name, []):
            if child.phase.failed_or_error:
                phase = child.phase
        self.calls.recorder.finish(group, phase)

    def _results(self, name: str) -> dict[str, Any]:
        """What a task's `depends` sees of each dependency (`evaluateDependsLogic`)."""
        from argoplug.agent import expressions

        results: dict[str, Any] = {}
        nodes = self.calls.status.nodes
        for dep in self.dependencies[name]:
            dep_node = self.task_node(dep)
            if dep_node is None:
                continue
            children: tuple[str, ...] = ()
            if dep_node.type == NodeType.TASK_GROUP:
                children = tuple(str(nodes[c].phase) for c in dep_node.children if c in nodes)
            continue_on = self.tasks[dep].get("continueOn") or {}
            results[dep] = expressions.TaskResult(
                str(dep_node.phase),
                children,
                continue_on_failed=bool(continue_on.get("failed")),
                continue_on_error=bool(continue_on.get("error")),
            )
        return results

    def _ancestor_values(self, name: str) -> dict[str, str]:
        """The results of a task's ancestors, a looped one's as JSON lists (`buildLocalScopeFromTask`)."""
        nodes = self.calls.status.nodes
        values: dict[str, str] = {}
        for ancestor in ancestors(name, self.dependencies):
            task = self.task_node(ancestor)
            if task is None:
                continue
            prefix = f"tasks.{ancestor}"
            if task.type == NodeType.TASK_GROUP:
                items = [
                    n
                    for n in nodes.values()
                    if n.boundary_id == self.node.id and n.name.startswith(task.name + "(") and not n.retried
                ]
                values.update(aggregate_outputs(prefix, items))
            values.update(node_values(prefix, task, nodes))
        return values
