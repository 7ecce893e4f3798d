"""The local agent's engine: runs a Workflow's entrypoint as Argo's controller would.

Steps groups run in order with their steps in parallel (`workflow/controller/steps.go`); DAG tasks run when
their dependencies succeeded (`workflow/controller/dag.go`); plugin templates go to the plugins through an
`AgentClient` (the agent pod, `workflow/executor/agent.go`). `check` refuses before anything runs what
Argo's validation refuses (`workflow/validate/validate.go`) and what this engine cannot run yet.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import enum
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from argoplug.agent.client import NodeUpdate
from argoplug.agent.workflow import Workflow, WorkflowError
from argoplug.protocol import Outputs, Parameter

__all__ = [
    "DEADLINE_MESSAGE",
    "Engine",
    "Node",
    "NodePhase",
    "NodeType",
    "TemplateExecutor",
    "WorkflowStatus",
    "check",
    "global_values",
    "node_id",
    "substitute",
    "template_kind",
]

DEADLINE_MESSAGE = "Step exceeded its deadline"  # workflow/controller/exec_control.go
MAX_DEPTH = 100  # the controller's maximum recursion depth of templates
RUNNABLE_KINDS = ("plugin", "steps", "dag")
_KINDS = (
    "container",
    "script",
    "resource",
    "suspend",
    "steps",
    "dag",
    "containerSet",
    "data",
    "http",
    "plugin",
)
# Only tags with these prefixes are checked and must resolve (workflow/common/common.go); others stay.
_CHECKED_PREFIXES = ("item.", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)

# What this engine cannot honour yet. Each is refused by `check`, naming it: running the workflow without
# it would do something other than Argo does. A later engine supports one by deleting it from here.
_UNSUPPORTED_SPEC = (
    "onExit",
    "hooks",
    "retryStrategy",
    "parallelism",
    "templateDefaults",
    "synchronization",
    "suspend",
    "shutdown",
)
_UNSUPPORTED_TEMPLATE = (
    "retryStrategy",
    "timeout",
    "activeDeadlineSeconds",
    "memoize",
    "synchronization",
    "parallelism",
    "template",
    "templateRef",
)
_UNSUPPORTED_STEP = (
    "when",
    "withItems",
    "withParam",
    "withSequence",
    "onExit",
    "hooks",
    "continueOn",
    "templateRef",
    "inline",
)
_UNSUPPORTED_TASK = (*_UNSUPPORTED_STEP, "depends")
_UNSUPPORTED_DAG = ("target",)


class NodePhase(enum.StrEnum):
    """Argo's node phases (`wfv1.NodePhase`); a workflow uses Pending, Running, Succeeded, Failed, Error."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    SKIPPED = "Skipped"
    FAILED = "Failed"
    ERROR = "Error"
    OMITTED = "Omitted"

    @property
    def fulfilled(self) -> bool:
        """True once the node will change no more (`NodeStatus.Fulfilled`)."""
        return self not in (NodePhase.PENDING, NodePhase.RUNNING)

    @property
    def failed_or_error(self) -> bool:
        """True for Failed and Error."""
        return self in (NodePhase.FAILED, NodePhase.ERROR)


class NodeType(enum.StrEnum):
    """Argo's node types (`wfv1.NodeType`) that the local agent creates."""

    STEPS = "Steps"
    STEP_GROUP = "StepGroup"
    DAG = "DAG"
    PLUGIN = "Plugin"
    POD = "Pod"
    HTTP = "HTTP"
    SUSPEND = "Suspend"
    SKIPPED = "Skipped"


_NODE_TYPES = {
    "plugin": NodeType.PLUGIN,
    "steps": NodeType.STEPS,
    "dag": NodeType.DAG,
    "http": NodeType.HTTP,
    "suspend": NodeType.SUSPEND,
}


@dataclasses.dataclass(eq=False)
class Node:
    """One node of the workflow's status (`wfv1.NodeStatus`), updated in place while the workflow runs.

    `name` is Argo's node name (`wf[0].step`, `wf.task`), `id` its hash (see `node_id`), `boundary_id` the
    Steps/DAG node it runs in. Times are `time.time()` seconds. `hangs` is set while the plugin left the
    node Pending/Running without a requeue: Argo's agent will not call again.
    """

    id: str
    name: str
    display_name: str
    type: NodeType
    template_name: str
    boundary_id: str
    phase: NodePhase
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    outputs: Outputs | None = None
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    children: list[str] = dataclasses.field(default_factory=list)
    hangs: bool = False


@dataclasses.dataclass(eq=False)
class WorkflowStatus:
    """The run's status: phase, message, times (`time.time()` seconds) and nodes by id, in creation order."""

    name: str
    namespace: str
    uid: str
    parameters: Mapping[str, str]
    phase: NodePhase = NodePhase.PENDING
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)

    @property
    def root(self) -> Node | None:
        """The entrypoint's node (its id is the workflow's name), once it exists."""
        return self.nodes.get(self.name)


class TemplateExecutor(Protocol):
    """What runs a plugin node: `AgentClient.follow`'s shape."""

    async def follow(
        self, request: Mapping[str, Any], on_update: Callable[[NodeUpdate], None]
    ) -> NodeUpdate: ...  # pragma: no cover


def node_id(workflow_name: str, node_name: str) -> str:
    """Argo's node id (`Workflow.NodeID`): the workflow's name for the root, else `<name>-<FNV-1a 32>`."""
    if node_name == workflow_name:
        return workflow_name
    digest = 0x811C9DC5
    for byte in node_name.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{workflow_name}-{digest}"


def template_kind(template: Mapping[str, Any]) -> str | None:
    """The kind of a template (`plugin`, `steps`, `dag`, `container`, ...), None if it has none or several."""
    kinds = [kind for kind in _KINDS if template.get(kind) is not None]
    return kinds[0] if len(kinds) == 1 else None


def substitute(value: Any, values: Mapping[str, str]) -> Any:
    """Return `value` with every `{{tag}}` found in `values` replaced, in strings and mapping keys.

    Spaces inside the braces are ignored (`util/template/simple_template.go`); unknown tags are left as
    written, as Argo does with `allowUnresolved`.
    """
    if isinstance(value, str):
        if "{{" not in value:
            return value
        return _TAG.sub(lambda m: values.get(m.group(1).strip(), m.group(0)), value)
    if isinstance(value, dict):
        return {substitute(k, values): substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    return value


def _tags(value: Any) -> Iterator[str]:
    """Every tag (trimmed) in the strings and keys of `value`."""
    if isinstance(value, str):
        if "{{" in value:
            yield from (m.group(1).strip() for m in _TAG.finditer(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tags(key)
            yield from _tags(item)
    elif isinstance(value, list):
        for item in value:
            yield from _tags(item)


def _unresolved(value: Any, scope: Mapping[str, Any] | set[str]) -> list[str]:
    """The checked tags of `value` not in `scope` (`resolveAllVariables`); `outputs.*` may self-refer."""
    return [
        tag
        for tag in _tags(value)
        if tag.startswith(_CHECKED_PREFIXES) and tag not in scope and not tag.startswith("outputs.")
    ]


def _unresolved_problem(value: Any) -> str | None:
    """`failed to resolve {{tag}}` for the first checked tag left in `value` after substitution, if any."""
    unresolved = _unresolved(value, {})
    return f"failed to resolve {{{{{unresolved[0]}}}}}" if unresolved else None


def global_values(workflow: Workflow) -> dict[str, str]:
    """The workflow-wide variables (`workflow.name`, `.namespace`, `.uid`, `.parameters.<p>`, ...).

    As the controller sets them (`workflow/controller/operator.go`, `setGlobalParameters`); the creation
    timestamp is now, in RFC 3339.
    """
    values = {
        "workflow.name": workflow.name,
        "workflow.namespace": workflow.namespace,
        "workflow.uid": workflow.uid,
        "workflow.serviceAccountName": str(workflow.spec.get("serviceAccountName") or ""),
        "workflow.creationTimestamp": _rfc3339(time.time()),
    }
    values.update({f"workflow.parameters.{k}": v for k, v in workflow.parameters.items()})
    values.update({f"workflow.labels.{k}": str(v) for k, v in workflow.labels.items()})
    values.update({f"workflow.annotations.{k}": str(v) for k, v in workflow.annotations.items()})
    return values


def _result_keys(prefix: str, template: Mapping[str, Any]) -> set[str]:
    """What a caller may reference of a finished step/task, as validation sees it (`addOutputsToScope`)."""
    keys = {f"{prefix}.{k}" for k in ("id", "status", "startedAt", "finishedAt")}
    if template_kind(template) not in ("steps", "dag"):
        keys |= {f"{prefix}.outputs.result", f"{prefix}.outputs.exitCode"}
    for param in (template.get("outputs") or {}).get("parameters") or []:
        keys.add(f"{prefix}.outputs.parameters.{param.get('name')}")
    return keys


def _node_values(prefix: str, node: Node) -> dict[str, str]:
    """What a finished node puts in its caller's scope (`buildLocalScope`, `addOutputsToLocalScope`)."""
    values = {f"{prefix}.id": node.id, f"{prefix}.status": str(node.phase)}
    if node.started_at is not None:
        values[f"{prefix}.startedAt"] = _rfc3339(node.started_at)
    if node.finished_at is not None:
        values[f"{prefix}.finishedAt"] = _rfc3339(node.finished_at)
    if node.outputs is not None:
        if node.outputs.result is not None:
            values[f"{prefix}.outputs.result"] = node.outputs.result
        if node.outputs.exitCode is not None:
            values[f"{prefix}.outputs.exitCode"] = node.outputs.exitCode
        for param in node.outputs.parameters:
            if param.value is not None:
                values[f"{prefix}.outputs.parameters.{param.name}"] = param.value
    return values


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ancestors(name: str, dependencies: Mapping[str, Sequence[str]]) -> list[str]:
    seen: list[str] = []
    stack = list(dependencies.get(name, ()))
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.append(dep)
            stack.extend(dependencies.get(dep, ()))
    return seen


def check(workflow: Workflow) -> None:
    """Refuse, before anything runs, a workflow Argo would refuse or this engine cannot run as Argo would.

    Walks the templates reachable from the entrypoint: template kinds, step and task names, references
    to templates, DAG dependencies (unknown names, cycles), argument values, and every `{{...}}` that
    must resolve (`workflow/validate/validate.go`). A step's or task's outputs are in scope only as its
    template declares them. Constructs not supported yet (`when`, `depends`, loops, `retryStrategy`,
    `onExit`, artifacts, expressions, ...) are named with their template. Raises WorkflowError listing
    every problem.
    """
    checker = _Checker(workflow)
    checker.run()
    if checker.problems:
        listed = "\n  ".join(dict.fromkeys(checker.problems))
        raise WorkflowError(f"{workflow.origin} cannot run:\n  {listed}")


class _Checker:
    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.globals = set(global_values(workflow))
        self.problems: list[str] = []
        self._seen: set[str] = set()

    def run(self) -> None:
        spec = self.workflow.spec
        for field in _UNSUPPORTED_SPEC:
            if spec.get(field):
                self._unsupported("spec", field)
        if (spec.get("arguments") or {}).get("artifacts"):
            self._unsupported("spec.arguments", "artifacts")
        self.template(self.workflow.entrypoint)

    def _unsupported(self, where: str, field: str) -> None:
        self.problems.append(f"{where}: `{field}` is not supported by argoplug's local agent yet")

    def template(self, name: str) -> None:
        if name in self._seen:
            return
        self._seen.add(name)
        template = self.workflow.templates[name]
        where = f"templates.{name}"
        kind = template_kind(template)
        if kind is None:
            count = sum(template.get(k) is not None for k in _KINDS)
            what = "multiple template types specified" if count else "template type unspecified"
            self.problems.append(f"{where} {what}. choose one of: {', '.join(_KINDS)}")
            return
        for field in _UNSUPPORTED_TEMPLATE:
            if template.get(field) is not None:
                self._unsupported(where, field)
        for part in ("inputs", "outputs"):
            if (template.get(part) or {}).get("artifacts"):
                self._unsupported(f"{where}.{part}", "artifacts")
        scope = set(self.globals)
        for param in (template.get("inputs") or {}).get("parameters") or []:
            scope.add(f"inputs.parameters.{param.get('name')}")
            if param.get("valueFrom") is not None:
                self._unsupported(f"{where}.inputs.parameters.{param.get('name')}", "valueFrom")
        if kind not in RUNNABLE_KINDS:
            return  # its node ends as Error at run time, as the issue asks; nothing inside it runs
        self._expressions(where, template)
        if kind == "plugin":
            plugin = template["plugin"]
            if not isinstance(plugin, dict) or len(plugin) != 1:
                self.problems.append(f"{where}.plugin must have exactly one key: the plugin's name")
            self._resolve(where, template, scope)
        elif kind == "steps":
            self.steps(name, template, scope)
        else:
            self.dag(name, template, scope)

    def _expressions(self, where: str, template: Mapping[str, Any]) -> None:
        for tag in _tags(template):
            if tag.startswith("="):
                self.problems.append(
                    f"{where}: expression tag {{{{{tag}}}}} is not supported by argoplug's local agent yet"
                )

    def _resolve(self, where: str, value: Any, scope: set[str]) -> None:
        for tag in _unresolved(value, scope):
            self.problems.append(f"{where}: failed to resolve {{{{{tag}}}}}{_hint(tag, scope)}")

    def _call(self, where: str, call: Mapping[str, Any], unsupported: Sequence[str]) -> str | None:
        """Check one step or task; return the template it calls if it can be checked further."""
        for field in unsupported:
            if call.get(field) is not None:
                self._unsupported(where, field)
        arguments = call.get("arguments") or {}
        if arguments.get("artifacts"):
            self._unsupported(f"{where}.arguments", "artifacts")
        for param in arguments.get("parameters") or []:
            if param.get("valueFrom") is not None:
                self._unsupported(f"{where}.arguments.parameters.{param.get('name')}", "valueFrom")
            elif param.get("value") is None:
                self.problems.append(f"{where}.arguments.{param.get('name')}.value is required")
        target = call.get("template")
        if target is None:
            if call.get("templateRef") is None and call.get("inline") is None:
                self.problems.append(f"{where}: `template` is required")
            return None
        if target not in self.workflow.templates:
            self.problems.append(f"{where}: template name '{target}' undefined")
            return None
        return str(target)

    def steps(self, name: str, template: Mapping[str, Any], scope: set[str]) -> None:
        names: set[str] = set()
        for i, group in enumerate(template.get("steps") or []):
            added: set[str] = set()
            for step in group or []:
                step_name = step.get("name")
                where = f"templates.{name}.steps[{i}].{step_name}"
                if not step_name:
                    self.problems.append(f"templates.{name}.steps[{i}].name is required")
                    continue
                if step_name in names:
                    self.problems.append(f"templates.{name}.steps[{i}].name '{step_name}' is not unique")
                names.add(step_name)
                target = self._call(where, step, _UNSUPPORTED_STEP)
                self._resolve(where, step, scope)
                if target is not None:
                    self.template(target)
                    added |= _result_keys(f"steps.{step_name}", self.workflow.templates[target])
            scope = scope | added
        self._outputs(name, template, scope)

    def dag(self, name: str, template: Mapping[str, Any], scope: set[str]) -> None:
        dag = template["dag"]
        for field in _UNSUPPORTED_DAG:
            if dag.get(field) is not None:
                self._unsupported(f"templates.{name}.dag", field)
        tasks: dict[str, Mapping[str, Any]] = {}
        for task in dag.get("tasks") or []:
            task_name = task.get("name")
            if not task_name:
                self.problems.append(f"templates.{name}.tasks.name is required")
            elif task_name in tasks:
                self.problems.append(f"templates.{name}.tasks.{task_name} name is not unique")
            else:
                tasks[task_name] = task
        dependencies = {t: list(task.get("dependencies") or []) for t, task in tasks.items()}
        for task_name, deps in dependencies.items():
            for dep in deps:
                if dep not in tasks:
                    self.problems.append(f"templates.{name}.tasks.{task_name} dependency '{dep}' not defined")
        cycle = _cycle(dependencies)
        if cycle:
            self.problems.append(f"templates.{name}.tasks dependency cycle detected: {'->'.join(cycle)}")
            return
        results: dict[str, set[str]] = {}
        for task_name, task in tasks.items():
            target = self._call(f"templates.{name}.tasks.{task_name}", task, _UNSUPPORTED_TASK)
            if target is not None:
                self.template(target)
                results[task_name] = _result_keys(f"tasks.{task_name}", self.workflow.templates[target])
        for task_name, task in tasks.items():
            visible = set(scope)
            for ancestor in _ancestors(task_name, dependencies):
                visible |= results.get(ancestor, set())
            self._resolve(f"templates.{name}.tasks.{task_name}", task, visible)
        self._outputs(name, template, set(scope).union(*results.values()))

    def _outputs(self, name: str, template: Mapping[str, Any], scope: set[str]) -> None:
        """Outputs of a steps/DAG template come from `valueFrom.parameter` (`getTemplateOutputsFromScope`)."""
        for param in (template.get("outputs") or {}).get("parameters") or []:
            where = f"templates.{name}.outputs.parameters.{param.get('name')}"
            value_from = param.get("valueFrom") or {}
            for field in value_from:
                if field not in ("parameter", "default"):
                    self._unsupported(where, f"valueFrom.{field}")
            if value_from.get("parameter") is not None:
                self._resolve(where, value_from["parameter"], scope)


def _hint(tag: str, scope: set[str]) -> str:
    """Why a `steps.`/`tasks.` reference does not resolve, when it is one of the two usual reasons."""
    parts = tag.split(".")
    if len(parts) < 3 or parts[0] not in ("steps", "tasks"):
        return ""
    kind, name = parts[0], parts[1]
    if f"{kind}.{name}.id" not in scope:
        before = "an earlier step" if kind == "steps" else "a dependency (direct or not) of this task"
        return f" ({kind[:-1]} `{name}` is not {before})"
    if parts[2:4] == ["outputs", "parameters"] and len(parts) > 4:
        return (
            f" (the template `{name}` calls declares no output parameter `{'.'.join(parts[4:])}`: Argo only "
            "knows declared outputs, so add it under the template's outputs.parameters)"
        )
    return ""


def _cycle(dependencies: Mapping[str, Sequence[str]]) -> list[str]:
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


class _SetupError(Exception):
    """A node cannot start (an input not supplied, a reference not resolved): it ends as Error."""


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
        self._executor = executor
        self._on_change = on_change
        self._sleep = sleep
        self._clock = clock
        self._globals = global_values(workflow)

    async def run(self) -> WorkflowStatus:
        """Run the entrypoint with the workflow's arguments until it ends, times out or is cancelled."""
        status = self.status
        status.phase, status.started_at = NodePhase.RUNNING, self._clock()
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
            self._stop("Stopped: argoplug run was interrupted")
            raise
        if not root.done():
            await _cancel(root, timer)
            self._stop(DEADLINE_MESSAGE)
            return self.status
        await _cancel(timer)
        node = root.result()
        if node.phase == NodePhase.SUCCEEDED:
            self._end(NodePhase.SUCCEEDED, "")
        else:
            self._end(NodePhase.ERROR if node.phase == NodePhase.ERROR else NodePhase.FAILED, node.message)
        return self.status

    def _end(self, phase: NodePhase, message: str) -> None:
        self.status.phase, self.status.message = phase, message
        self.status.finished_at = self._clock()
        root = self.status.root
        if root is not None:
            self._changed(root)

    def _stop(self, message: str) -> None:
        """Fail every unfinished node and the workflow with `message` (`failNodesWithoutCreatedPods...`)."""
        now = self._clock()
        for node in self.status.nodes.values():
            if not node.phase.fulfilled:
                node.phase, node.message, node.finished_at, node.hangs = NodePhase.FAILED, message, now, False
                self._changed(node)
        self._end(NodePhase.FAILED, message)

    def _changed(self, node: Node) -> None:
        if self._on_change is not None:
            self._on_change(node)

    def _finish(self, node: Node, phase: NodePhase, message: str = "") -> Node:
        node.phase, node.message, node.finished_at, node.hangs = phase, message, self._clock(), False
        self._changed(node)
        return node

    def _new_node(
        self,
        name: str,
        display: str,
        kind: NodeType,
        template: str,
        boundary: str,
        phase: NodePhase,
        parent: Node | None = None,
    ) -> Node:
        node = Node(node_id(self.workflow.name, name), name, display, kind, template, boundary, phase)
        node.started_at = self._clock()
        self.status.nodes[node.id] = node
        if parent is not None:
            parent.children.append(node.id)
        self._changed(node)
        return node

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
        node = self._new_node(name, display, node_type, template_name, boundary, phase, parent)
        if depth > MAX_DEPTH:
            self._finish(node, NodePhase.ERROR, f"Maximum recursion depth exceeded ({MAX_DEPTH})")
            return node, None
        if kind not in RUNNABLE_KINDS:
            message = (
                f"argoplug's local agent cannot run {kind} templates (template {template_name!r}): only "
                "plugin, steps and dag templates run locally; run this workflow on a cluster"
            )
            self._finish(node, NodePhase.ERROR, message)
            return node, None
        try:
            processed, values = self._process_args(template, arguments, node)
        except _SetupError as exc:
            self._finish(node, NodePhase.ERROR, str(exc))
            return node, None
        if kind == "plugin":
            return node, self._run_plugin(node, processed)
        if kind == "steps":
            return node, self._run_steps(node, processed, values, depth)
        return node, self._run_dag(node, processed, values, depth)

    def _process_args(
        self, template: Mapping[str, Any], arguments: Sequence[Mapping[str, Any]], node: Node
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Set inputs from the arguments and substitute the template (`workflow/common`, `ProcessArgs`)."""
        processed = copy.deepcopy(dict(template))
        supplied = {a.get("name"): a for a in arguments}
        values = dict(self._globals)
        for param in (processed.get("inputs") or {}).get("parameters") or []:
            name = param.get("name")
            value = param.get("value") if param.get("value") is not None else param.get("default")
            argument = supplied.get(name)
            if argument is not None and argument.get("value") is not None:
                value = argument["value"]
            if value is None:
                raise _SetupError(f"inputs.parameters.{name} was not supplied")
            param["value"] = node.inputs[name] = values[f"inputs.parameters.{name}"] = str(value)
        values["node.name"] = node.name
        values["retries"] = "0"  # no retryStrategy yet: every call is the first attempt
        processed = substitute(processed, values)
        for key in ("inputs", "outputs", "metadata"):
            processed.setdefault(key, {})
        return processed, values

    async def _run_plugin(self, node: Node, template: dict[str, Any]) -> None:
        problem = _unresolved_problem(template)
        if problem:
            self._finish(node, NodePhase.ERROR, problem)
            return
        workflow = self.workflow
        request = {
            "workflow": {
                "metadata": {"name": workflow.name, "namespace": workflow.namespace, "uid": workflow.uid}
            },
            "template": template,
        }

        def record(update: NodeUpdate) -> None:
            if not update.phase:  # nothing recorded (agent.go: `if result.Phase != ""`)
                return
            try:
                phase = NodePhase(update.phase)
            except ValueError:
                phase = NodePhase.RUNNING
                node.message = (
                    f"{update.message} (the plugin sent phase {update.phase!r}: Argo waits forever)"
                )
            else:
                node.message = update.message
            node.phase, node.outputs = phase, update.outputs
            node.hangs = not phase.fulfilled and update.requeue is None
            if phase.fulfilled:
                node.finished_at = self._clock()
            self._changed(node)

        await self._executor.follow(request, record)

    async def _run_steps(
        self, node: Node, template: dict[str, Any], values: dict[str, str], depth: int
    ) -> None:
        """Run the step groups in order, each group's steps at once (`executeSteps`, `executeStepGroup`)."""
        scope = dict(values)
        for i, group in enumerate(template.get("steps") or []):
            group_node = self._new_node(
                f"{node.name}[{i}]",
                f"[{i}]",
                NodeType.STEP_GROUP,
                node.template_name,
                node.id,
                NodePhase.RUNNING,
            )
            steps = [substitute(step, scope) for step in group or []]
            for step in steps:
                problem = _unresolved_problem(step)
                if problem:
                    child = self._not_run(
                        f"{group_node.name}.{step['name']}", step, node, NodePhase.ERROR, problem, group_node
                    )
                    self._finish(
                        group_node,
                        NodePhase.ERROR,
                        f"step group deemed errored due to child {child.name} error: {child.message}",
                    )
                    self._finish(node, NodePhase.FAILED, group_node.message)
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
                self._finish(group_node, NodePhase.FAILED, f"child '{failed[0].id}' failed")
                self._finish(node, NodePhase.FAILED, group_node.message)
                return
            self._finish(group_node, NodePhase.SUCCEEDED)
            for step_name, child in started:
                scope.update(_node_values(f"steps.{step_name}", child))
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
        phase = _assess_dag(tasks, dependencies, nodes, fail_fast=dag.get("failFast") is not False)
        if phase != NodePhase.SUCCEEDED:
            self._finish(node, phase)
            return
        scope = dict(values)
        for name, task_node in nodes.items():
            scope.update(_node_values(f"tasks.{name}", task_node))
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
                if not all(dep is not None and dep.phase in _SATISFIED for dep in deps):
                    omitted = "omitted: depends condition not met"
                    nodes[name] = self._not_run(child_name, task, node, NodePhase.OMITTED, omitted)
                    continue
                scope = dict(values)
                for ancestor in _ancestors(name, dependencies):
                    scope.update(_node_values(f"tasks.{ancestor}", nodes[ancestor]))
                resolved = substitute(dict(task), scope)
                problem = _unresolved_problem(resolved)
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
        node = self._new_node(
            name, call["name"], NodeType.SKIPPED, call["template"], boundary.id, phase, parent
        )
        return self._finish(node, phase, message)

    def _complete(self, node: Node, template: Mapping[str, Any], scope: Mapping[str, str]) -> None:
        """Succeed a steps/DAG node, with the outputs its template takes from its children."""
        parameters = []
        for param in (template.get("outputs") or {}).get("parameters") or []:
            value_from = param.get("valueFrom") or {}
            if value_from.get("parameter") is None:
                continue
            reference = str(value_from["parameter"])
            value = scope.get(reference.strip().removeprefix("{{").removesuffix("}}").strip())
            if value is None:
                value = value_from.get("default")
            if value is None:
                self._finish(node, NodePhase.ERROR, f"Unable to resolve: {reference}")
                return
            parameters.append(Parameter(name=param["name"], value=str(value)))
        if parameters:
            node.outputs = Outputs(parameters=parameters)
        self._finish(node, NodePhase.SUCCEEDED)


_SATISFIED = (NodePhase.SUCCEEDED, NodePhase.SKIPPED)


def _assess_dag(
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
