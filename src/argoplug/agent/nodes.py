"""The run's status as Argo records it (`Node`, `WorkflowStatus`, phases, types, ids) and its changes.

The engine changes the status only through a `StatusRecorder`, which tells the live view of every change;
`report` and `output` draw the status (`pkg/apis/workflow/v1alpha1/workflow_types.go`, `NodeStatus`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from argoplug.protocol import Outputs

if TYPE_CHECKING:
    from argoplug.agent.client import NodeUpdate

__all__ = ["Node", "NodePhase", "NodeType", "StatusRecorder", "WorkflowStatus", "node_id"]


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

    @property
    def completed(self) -> bool:
        """True for Succeeded, Failed and Error: the node ran to an end (`Completed`; not Skipped)."""
        return self in (NodePhase.SUCCEEDED, NodePhase.FAILED, NodePhase.ERROR)


class NodeType(enum.StrEnum):
    """Argo's node types (`wfv1.NodeType`) that the local agent creates."""

    STEPS = "Steps"
    STEP_GROUP = "StepGroup"
    DAG = "DAG"
    TASK_GROUP = "TaskGroup"
    RETRY = "Retry"
    PLUGIN = "Plugin"
    POD = "Pod"
    HTTP = "HTTP"
    SUSPEND = "Suspend"
    SKIPPED = "Skipped"


@dataclasses.dataclass(eq=False)
class Node:
    """One node of the workflow's status (`wfv1.NodeStatus`), updated in place while the workflow runs.

    `name` is Argo's node name (`wf[0].step`, `wf.task`, `wf[0].step(0:item)`, `wf.task(1)` for a retry
    attempt, `wf.onExit` for an exit handler), `id` its hash (see `node_id`), `display_name` the name
    relative to its boundary (`step`, `step(0:item)`), `boundary_id` the id of the Steps/DAG node it runs
    in ("" for the entrypoint and the workflow's exit handler). Times are `time.time()` seconds. `inputs`
    maps input parameter names to values. `hangs` is set once the plugin left the node Pending/Running
    without a requeue (Argo's agent will not call again), and stays set when the run is stopped, to say
    why the node never finished. `warning` is what the plugin did wrong that the phase does not show (a
    terminal phase sent with a requeue, a `globalName` not echoed). `calls` counts the replies recorded;
    `requeue` is the last one's delay (seconds) while the node is not done.

    As Argo's `NodeStatus`: `children` are the ids of the nodes that run after this one in the graph (a
    Steps node's first step group, a step group's steps, a step's next step group, a DAG's root tasks, a
    task's dependents, a TaskGroup's items, a Retry node's attempts, a node's exit handler);
    `outbound_nodes` (Steps and DAG nodes) the ids of the nodes its successors hang off. `template_name`
    is "" and `template_ref` `{name, template[, clusterScope]}` for a node called through a `templateRef`;
    `template_scope` is where its template was found (`local/`, `namespaced/<WorkflowTemplate>`,
    `cluster/<ClusterWorkflowTemplate>`). `hooked` and `retried` are `NodeFlag`: an exit handler's node,
    a retry attempt.
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
    warning: str = ""
    outbound_nodes: list[str] = dataclasses.field(default_factory=list)
    template_ref: dict[str, Any] | None = None
    template_scope: str = "local/"
    calls: int = 0  # replies of its plugin (or HTTP server) recorded
    requeue: float | None = None  # seconds until the next call, while Pending/Running with a requeue
    hooked: bool = False
    retried: bool = False


@dataclasses.dataclass(eq=False)
class WorkflowStatus:
    """The run's status: phase, message, times (`time.time()` seconds) and nodes by id, in creation order.

    `outputs` are the workflow's global outputs (`status.outputs`): one parameter per `globalName` a node
    exported, named by it; None while there is none.
    """

    name: str
    namespace: str
    uid: str
    parameters: Mapping[str, str]
    phase: NodePhase = NodePhase.PENDING
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)
    outputs: Outputs | None = None

    @property
    def root(self) -> Node | None:
        """The entrypoint's node (its id is the workflow's name), once it exists."""
        return self.nodes.get(self.name)


def node_id(workflow_name: str, node_name: str) -> str:
    """Argo's node id (`Workflow.NodeID`): the workflow's name for the root, else `<name>-<FNV-1a 32>`."""
    if node_name == workflow_name:
        return workflow_name
    digest = 0x811C9DC5
    for byte in node_name.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{workflow_name}-{digest}"


class StatusRecorder:
    """Make every change of `status`: start and end the workflow, create, update and finish its nodes.

    `clock()` gives the times (`time.time()` seconds); `on_change(node)` is called after every change of a
    node (for the live view), and with the root node when the workflow ends.
    """

    def __init__(
        self,
        status: WorkflowStatus,
        *,
        clock: Callable[[], float],
        on_change: Callable[[Node], None] | None = None,
    ) -> None:
        self.status = status
        self._clock = clock
        self._on_change = on_change

    def start(self) -> None:
        """Mark the workflow Running from now."""
        self.status.phase, self.status.started_at = NodePhase.RUNNING, self._clock()

    def end(self, phase: NodePhase, message: str) -> None:
        """End the workflow with `phase` and `message`."""
        self.status.phase, self.status.message = phase, message
        self.status.finished_at = self._clock()
        root = self.status.root
        if root is not None:
            self._changed(root)

    def stop(self, message: str) -> None:
        """Fail every unfinished node and the workflow with `message` (`failNodesWithoutCreatedPods...`)."""
        self.fail_unfinished(message)
        self.end(NodePhase.FAILED, message)

    def fail_unfinished(self, message: str) -> None:
        """Fail every unfinished node with `message`, as the controller does past the deadline.

        A node that hung keeps `hangs`: the report then says why it never finished.
        """
        now = self._clock()
        for node in list(self.status.nodes.values()):
            if not node.phase.fulfilled:
                node.phase, node.message, node.finished_at = NodePhase.FAILED, message, now
                self._changed(node)

    def new_node(
        self,
        name: str,
        display: str,
        kind: NodeType,
        template: str,
        boundary: str,
        phase: NodePhase,
        parent: Node | None = None,
        message: str = "",
    ) -> Node:
        """Add the node `name` (started now), as a child of `parent` if given, and return it.

        A node created fulfilled (Skipped, Omitted, Error) finishes at once (`initializeNode`).
        """
        node = Node(node_id(self.status.name, name), name, display, kind, template, boundary, phase, message)
        node.started_at = self._clock()
        if phase.fulfilled:
            node.finished_at = node.started_at
        self.status.nodes[node.id] = node
        if parent is not None:
            self.add_child(parent, node)
        self._changed(node)
        return node

    def add_child(self, parent: Node, child: Node) -> None:
        """Make `child` a child of `parent`, once (`addChildNode`)."""
        if child.id not in parent.children:
            parent.children.append(child.id)
            self._changed(parent)

    def update(self, node: Node, *, message: str | None = None, phase: NodePhase | None = None) -> Node:
        """Change the message and/or phase of a node that goes on (`markNodePhase` without an end)."""
        if message is not None:
            node.message = message
        if phase is not None:
            node.phase = phase
        self._changed(node)
        return node

    def finish(self, node: Node, phase: NodePhase, message: str = "") -> Node:
        """End `node` now with `phase` and `message`; return it."""
        node.phase, node.message, node.finished_at, node.hangs = phase, message, self._clock(), False
        self._changed(node)
        return node

    def record(self, node: Node, update: NodeUpdate) -> None:
        """Record a plugin's reply on `node` as Argo's agent does (`workflow/executor/agent.go`)."""
        if not update.phase:  # nothing recorded (agent.go: `if result.Phase != ""`)
            return
        try:
            phase = NodePhase(update.phase)
        except ValueError:
            phase = NodePhase.RUNNING
            node.message = f"{update.message} (the plugin sent phase {update.phase!r}: Argo waits forever)"
        else:
            node.message = update.message
        node.phase, node.outputs = phase, update.outputs
        node.hangs = not phase.fulfilled and update.requeue is None
        node.calls += 1
        node.requeue = None if phase.fulfilled else update.requeue
        if update.warning:
            node.warning = update.warning
        if phase.fulfilled:
            node.finished_at = self._clock()
        self._changed(node)

    def _changed(self, node: Node) -> None:
        if self._on_change is not None:
            self._on_change(node)
