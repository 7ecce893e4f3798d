"""A steps template run as Argo's controller runs it (`workflow/controller/steps.go`).

Step groups run in order, a group's steps at once. Each group's steps are substituted with the results of
earlier groups, fanned out over their loops, skipped by `when`, held back by the template's
`parallelism`, and followed by their `onExit` template; a failed or errored step fails its group unless
it `continueOn` that phase (a step failed by its template's `timeout` fails it regardless, as Argo's
`ErrTimeout` does). `templates.TemplateCalls` calls `run_steps` for a Steps node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from argoplug.agent.dag import outbound_nodes
from argoplug.agent.leaves import TIMEOUT_MESSAGE
from argoplug.agent.loops import LOOP_FIELDS, aggregate_outputs, expand_call
from argoplug.agent.nodes import Node, NodePhase, NodeType
from argoplug.agent.substitution import SetupError, expand, node_values, substitute, unresolved_problem
from argoplug.agent.templates import cancel, gather
from argoplug.agent.workflow import EXIT_HOOK, TemplateSet, exit_hook
from argoplug.agent.workflow import without_hook as _without_hook

if TYPE_CHECKING:
    from argoplug.agent.templates import TemplateCalls

__all__ = ["continues_on", "run_steps", "when_skips"]


async def run_steps(
    calls: TemplateCalls, node: Node, template: Mapping[str, Any], templates: TemplateSet, depth: int
) -> None:
    """Run the step groups of `template` under the Steps `node` and end it (`executeSteps`)."""
    recorder = calls.recorder
    scope: dict[str, str] = {}
    group_node: Node | None = None
    for i, group in enumerate(template.get("steps") or []):
        previous = group_node
        group_node = recorder.new_node(
            f"{node.name}[{i}]", f"[{i}]", NodeType.STEP_GROUP, "", node.id, NodePhase.RUNNING
        )
        _link(calls, node, previous, group_node)
        await _run_group(calls, node, group_node, list(group or []), scope, templates, depth, template)
        if group_node.phase.failed_or_error:
            _update_outbound(calls, node, group_node)
            recorder.finish(node, NodePhase.FAILED, group_node.message)
            return
        try:
            scope.update(_results(calls, node, group_node, group or []))
        except SetupError as exc:
            recorder.finish(node, NodePhase.ERROR, str(exc))
            return
    if group_node is not None:
        _update_outbound(calls, node, group_node)
    calls.complete(node, template, {**calls.globals, **scope})


def _link(calls: TemplateCalls, node: Node, previous: Node | None, group: Node) -> None:
    """Hang a step group off the Steps node (first) or the outbound nodes of the previous group's steps."""
    nodes = calls.status.nodes
    if previous is None:
        calls.recorder.add_child(node, group)
    elif not previous.children:
        calls.recorder.add_child(previous, group)
    else:
        for child in previous.children:
            for out in outbound_nodes(nodes[child], nodes):
                calls.recorder.add_child(nodes[out], group)


def _update_outbound(calls: TemplateCalls, node: Node, last_group: Node) -> None:
    nodes = calls.status.nodes
    node.outbound_nodes = [o for child in last_group.children for o in outbound_nodes(nodes[child], nodes)]


def _results(
    calls: TemplateCalls, node: Node, group: Node, steps: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """What a finished group's steps put in the scope; a loop's items as JSON lists (`executeSteps`)."""
    nodes = calls.status.nodes
    by_name = {n.name: n for n in nodes.values()}
    values: dict[str, str] = {}
    for step in steps:
        name = f"{group.name}.{step['name']}"
        prefix = f"steps.{step['name']}"
        child = by_name.get(name)
        if child is not None:
            values.update(node_values(prefix, child, nodes))
            continue
        items = [
            n
            for n in nodes.values()
            if n.boundary_id == node.id and n.name.startswith(name + "(") and n.type != NodeType.SKIPPED
        ]
        values.update(aggregate_outputs(prefix, items))
    return values


def continues_on(call: Mapping[str, Any], phase: NodePhase) -> bool:
    """True when the step or task carries on past `phase` (`ContinuesOn`: `continueOn.failed`/`.error`)."""
    continue_on = call.get("continueOn") or {}
    return bool(
        (phase == NodePhase.FAILED and continue_on.get("failed"))
        or (phase == NodePhase.ERROR and continue_on.get("error"))
    )


def when_skips(call: Mapping[str, Any]) -> bool:
    """True when the call's substituted `when` evaluates false (`shouldExecute`); raises ExpressionError."""
    when = call.get("when")
    if not when:
        return False
    from argoplug.agent import expressions

    return not expressions.evaluate_when(str(when))


async def _run_group(
    calls: TemplateCalls,
    node: Node,
    group: Node,
    steps: list[Mapping[str, Any]],
    scope: Mapping[str, str],
    templates: TemplateSet,
    depth: int,
    template: Mapping[str, Any],
) -> None:
    """Run one step group and end its node (`executeStepGroup`)."""
    from argoplug.agent import expressions

    recorder = calls.recorder
    values = {**calls.globals, **scope}
    resolved_steps = []
    for step in steps:
        resolved = expand(substitute(_without_hook(step), values), values, strict=False)
        if step.get(EXIT_HOOK):  # resolved once the step ended, with its outputs (run_hook)
            resolved[EXIT_HOOK] = step[EXIT_HOOK]
        looped = any(resolved.get(field) not in (None, "", []) for field in LOOP_FIELDS)
        if not looped:
            try:
                when_skips(resolved)
            except expressions.ExpressionError as exc:  # resolveReferences: the whole group errors
                recorder.finish(group, NodePhase.ERROR, f"Failed to resolve references: {exc}")
                return
        resolved_steps.append((step, resolved, looped))
    expanded: list[dict[str, Any]] = []
    for step, resolved, looped in resolved_steps:
        if not looped:
            expanded.append(resolved)
            continue
        try:
            items = expand_call(resolved, calls.globals)
        except SetupError as exc:
            recorder.finish(group, NodePhase.ERROR, str(exc))
            return
        if not items:
            calls.not_run(
                f"{group.name}.{step['name']}",
                resolved,
                node,
                NodePhase.SKIPPED,
                "Skipped, empty params",
                group,
            )
        expanded.extend(items)
    plan: list[tuple[dict[str, Any], str]] = []
    for step in expanded:
        child_name = f"{group.name}.{step['name']}"
        try:
            skip = when_skips(step)
        except expressions.ExpressionError as exc:
            _skipped_before(calls, plan, node, group)
            calls.not_run(child_name, step, node, NodePhase.ERROR, str(exc), group)
            recorder.finish(group, NodePhase.ERROR, str(exc))
            return
        if skip:
            plan.append((step, f"when '{step['when']}' evaluated false"))
            continue
        problem = unresolved_problem(_without_hook(step))
        if problem:
            _skipped_before(calls, plan, node, group)
            child = calls.not_run(child_name, step, node, NodePhase.ERROR, problem, group)
            message = f"step group deemed errored due to child {child.name} error: {problem}"
            recorder.finish(group, NodePhase.ERROR, message)
            return
        plan.append((step, ""))
    started: list[tuple[Mapping[str, Any], Node]] = []
    running: list[asyncio.Future[Any]] = []
    try:
        for step, skipped in plan:
            child_name = f"{group.name}.{step['name']}"
            if skipped:
                calls.not_run(child_name, step, node, NodePhase.SKIPPED, skipped, group)
                continue
            await calls.wait_for_slot(node, template.get("parallelism"))
            child, runner = calls.begin(
                child_name, step, templates, node, depth + 1, local={"steps.name": str(step["name"])}
            )
            recorder.add_child(group, child)
            started.append((step, child))
            running.append(
                asyncio.ensure_future(_run_step(calls, child, runner, step, templates, node, depth))
            )
        await gather(running)
    finally:
        await cancel(*running)
    for _, child in started:
        if child.id in calls.timed_out:  # ErrTimeout fails the group, continueOn or not
            recorder.finish(group, NodePhase.FAILED, TIMEOUT_MESSAGE)
            return
    for step, child in started:
        if child.phase.failed_or_error and not continues_on(step, child.phase):
            recorder.finish(group, NodePhase.FAILED, f"child '{child.id}' failed")
            return
    recorder.finish(group, NodePhase.SUCCEEDED)


def _skipped_before(
    calls: TemplateCalls, plan: list[tuple[dict[str, Any], str]], node: Node, group: Node
) -> None:
    """Create the nodes of the `when`-skipped steps planned before a step that errors the group."""
    for step, skipped in plan:
        if skipped:
            calls.not_run(f"{group.name}.{step['name']}", step, node, NodePhase.SKIPPED, skipped, group)


async def _run_step(
    calls: TemplateCalls,
    child: Node,
    runner: Any,
    step: Mapping[str, Any],
    templates: TemplateSet,
    boundary: Node,
    depth: int,
) -> None:
    """Run a step, then its exit handler when it completed (`runOnExitNode`)."""
    if runner is not None:
        await runner
    hook = exit_hook(step)
    if child.phase.completed and hook is not None:
        await calls.run_hook(child, hook, templates, boundary, depth + 1, prefix=f"steps.{step.get('name')}")
