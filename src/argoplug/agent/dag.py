"""A DAG template's graph: `depends` logic, a task's ancestors, cycles, outbound nodes, the DAG's phase.

`checks` refuses cycles and unknown names and scopes references by ancestry; the engine schedules by
`depends_logic` and assesses a finished DAG with `assess_dag` (`workflow/controller/dag.go`,
`workflow/common/ancestry.go`); `outbound_nodes` links steps and tasks in the node graph as Argo does
(`getOutboundNodes` in `workflow/controller/operator.go`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from argoplug.agent.expressions import DEPENDS_NAME, bare_name_logic, expand_bare_names
from argoplug.agent.nodes import Node, NodePhase, NodeType

__all__ = [
    "ancestors",
    "assess_dag",
    "cycle",
    "depends_logic",
    "outbound_nodes",
    "target_tasks",
    "task_results",
]


def depends_logic(name: str, tasks: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], str]:
    """The tasks `name` depends on and its `depends` logic with every bare task name spelt out.

    `dependencies: [A, B]` is `A && B`; a bare `A` is `(A.Succeeded || A.Skipped || A.Daemoned)`, plus
    `A.Errored` / `A.Failed` when A has `continueOn` error / failed (`GetTaskDependencies`,
    `expandDependency`). Tasks come in the order the logic names them, each once.
    """
    task = tasks[name]
    if task.get("depends"):
        logic = str(task["depends"])
    else:
        logic = " && ".join(_expanded(dep, tasks.get(dep, {})) for dep in task.get("dependencies") or [])
    names: list[str] = []
    for match in DEPENDS_NAME.finditer(logic):
        dep = (match.group(1) or match.group(2)).split(".")[0]
        if dep not in names:
            names.append(dep)
    return names, expand_bare_names(logic, lambda dep: _expanded(dep, tasks.get(dep, {})))


def _expanded(name: str, task: Mapping[str, Any]) -> str:
    continue_on = task.get("continueOn") or {}
    return bare_name_logic(
        name,
        continue_on_error=bool(continue_on.get("error")),
        continue_on_failed=bool(continue_on.get("failed")),
    )


def task_results(depends: str) -> list[tuple[str, str]]:
    """The `(task, result)` pairs a `depends` expression names explicitly (`ValidateTaskResults`)."""
    pairs = []
    for match in DEPENDS_NAME.finditer(depends):
        if match.group(1):
            task, result = match.group(1).split(".", 1)
            pairs.append((task, result))
    return pairs


def ancestors(name: str, dependencies: Mapping[str, Sequence[str]]) -> list[str]:
    """Every task `name` depends on, directly or not, each once."""
    seen: list[str] = []
    stack = list(dependencies.get(name, ()))
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.append(dep)
            stack.extend(dependencies.get(dep, ()))
    return seen


def cycle(dependencies: Mapping[str, Sequence[str]]) -> list[str]:
    """A dependency cycle as a path (`a`, `b`, `a`), or [] when there is none."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        path.append(name)
        for dep in dependencies.get(name, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep in dependencies and dep not in state:
                found = visit(dep)
                if found:
                    return found
        state[name] = 2
        path.pop()
        return []

    for name in dependencies:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return []


def target_tasks(dag: Mapping[str, Any], dependencies: Mapping[str, Sequence[str]]) -> list[str]:
    """The DAG's targets: `target` (space-separated names), else the tasks nothing depends on, sorted."""
    if dag.get("target"):
        return [t for t in str(dag["target"]).split(" ") if t]
    depended = {dep for deps in dependencies.values() for dep in deps}
    return sorted(name for name in dependencies if name not in depended)


def outbound_nodes(node: Node, nodes: Mapping[str, Node]) -> list[str]:
    """The ids the next nodes hang off when `node` is done (`getOutboundNodes`).

    A leaf (plugin, HTTP, suspend, skipped, pod) is its own outbound node; a TaskGroup's are its items'
    (itself when it has none); a Retry node's is its last child; a Steps or DAG node's are those of its
    `outbound_nodes`.
    """
    if node.type in (NodeType.SKIPPED, NodeType.SUSPEND, NodeType.HTTP, NodeType.PLUGIN, NodeType.POD):
        return [node.id]
    if node.type == NodeType.TASK_GROUP:
        if not node.children:
            return [node.id]
        return [o for child in node.children if child in nodes for o in outbound_nodes(nodes[child], nodes)]
    if node.type == NodeType.RETRY:
        return [node.children[-1]] if node.children else []
    return [o for out in node.outbound_nodes if out in nodes for o in outbound_nodes(nodes[out], nodes)]


def assess_dag(
    boundary: Node,
    targets: Sequence[str],
    task_node_ids: Mapping[str, str],
    nodes: Mapping[str, Node],
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    fail_fast: bool,
) -> NodePhase:
    """The phase of a DAG from its nodes (`assessDAGPhase`): Running until every branch is done.

    Walks the node graph from the DAG's children; each branch carries the phase of the last node in it
    that completed (Skipped and Omitted nodes inherit it), a failure winning over a success at a target.
    A target whose branch failed does not fail the DAG when its task `continueOn` that phase. With
    `fail_fast` the first failed target decides; without, every target must be done first.
    """
    target_phases: dict[str, NodePhase | None] = {
        task_node_ids[t]: None for t in targets if t in task_node_ids
    }
    queue = [(child, NodePhase.SUCCEEDED) for child in boundary.children]
    seen: set[tuple[str, NodePhase]] = set()
    while queue:
        node_id, branch = queue.pop(0)
        if (node_id, branch) in seen:
            continue
        seen.add((node_id, branch))
        node = nodes.get(node_id)
        if node is None or not node.phase.fulfilled:
            return NodePhase.RUNNING
        if node.phase.completed:
            branch = node.phase
        if node_id in target_phases:
            previous = target_phases[node_id]
            if previous is None or not previous.failed_or_error:
                target_phases[node_id] = branch
        children = _retry_children(node, nodes) if node.type == NodeType.RETRY else node.children
        queue.extend((child, branch) for child in children)
    result = NodePhase.SUCCEEDED
    for target in targets:
        phase = target_phases.get(task_node_ids.get(target, ""))
        if phase is None:
            result = NodePhase.RUNNING
            if not fail_fast:
                break
        elif phase.failed_or_error:
            continue_on = tasks.get(target, {}).get("continueOn") or {}
            if continue_on.get("failed" if phase == NodePhase.FAILED else "error"):
                continue
            result = phase
            if fail_fast:
                break
    return result


def _retry_children(node: Node, nodes: Mapping[str, Node]) -> list[str]:
    """Where the walk goes on past a Retry node: its hooks, and the children of its attempts."""
    found: list[str] = []
    for child_id in reversed(node.children):
        child = nodes.get(child_id)
        if child is None:
            continue
        if child.hooked:
            found.append(child.id)
        else:
            found.extend(child.children)
    return found
