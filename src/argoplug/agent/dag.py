"""A DAG template's dependency graph: a task's ancestors, cycles, and the phase of a finished DAG.

`checks` refuses cycles and scopes references by ancestry; the engine schedules by it and assesses the
DAG's phase (`workflow/controller/dag.go`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from argoplug.agent.nodes import Node, NodePhase

__all__ = ["SATISFIED", "ancestors", "assess_dag", "cycle"]

# `dependencies: [A]` is met when A ended in one of these (`A.Succeeded || A.Skipped || A.Daemoned`).
SATISFIED = (NodePhase.SUCCEEDED, NodePhase.SKIPPED)


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


def assess_dag(
    tasks: Mapping[str, Any],
    dependencies: Mapping[str, Sequence[str]],
    nodes: Mapping[str, Node],
    *,
    fail_fast: bool,
) -> NodePhase:
    """The phase of a finished DAG from its target tasks' branches (`assessDAGPhase`).

    The targets are the tasks nothing depends on. A branch's phase is its node's when the node ran,
    else (Omitted, Skipped) inherited from its dependencies, a failure winning over a success.
    """
    depended = {dep for deps in dependencies.values() for dep in deps}
    targets = sorted(name for name in tasks if name not in depended)

    def branch(name: str) -> NodePhase:
        node = nodes.get(name)
        if node is not None and node.phase in (NodePhase.SUCCEEDED, NodePhase.FAILED, NodePhase.ERROR):
            return node.phase
        phases = [branch(dep) for dep in dependencies.get(name, ())]
        return next((p for p in phases if p.failed_or_error), NodePhase.SUCCEEDED)

    result = NodePhase.SUCCEEDED
    for target in targets:
        phase = branch(target)
        if phase.failed_or_error:
            result = phase
            if fail_fast:
                break
    return result
