"""The run's status as Argo records it (`Node`, `WorkflowStatus`, phases, types, ids) and its changes.

The engine changes the status only through a `StatusRecorder`, which tells the live view of every change;
`report` draws the status.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

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


@dataclasses.dataclass(eq=False)
class Node:
    """One node of the workflow's status (`wfv1.NodeStatus`), updated in place while the workflow runs.

    `name` is Argo's node name (`wf[0].step`, `wf.task`), `id` its hash (see `node_id`), `boundary_id` the
    Steps/DAG node it runs in. Times are `time.time()` seconds. `hangs` is set once the plugin left the
    node Pending/Running without a requeue (Argo's agent will not call again), and stays set when the run
    is stopped, to say why the node never finished. `warning` is what the plugin did wrong that the phase
    does not show (a terminal phase sent with a requeue).
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
        """Fail every unfinished node and the workflow with `message` (`failNodesWithoutCreatedPods...`).

        A node that hung keeps `hangs`: the report then says why it never finished.
        """
        now = self._clock()
        for node in self.status.nodes.values():
            if not node.phase.fulfilled:
                node.phase, node.message, node.finished_at = NodePhase.FAILED, message, now
                self._changed(node)
        self.end(NodePhase.FAILED, message)

    def new_node(
        self,
        name: str,
        display: str,
        kind: NodeType,
        template: str,
        boundary: str,
        phase: NodePhase,
        parent: Node | None = None,
    ) -> Node:
        """Add the node `name` (started now), as a child of `parent` if given, and return it."""
        node = Node(node_id(self.status.name, name), name, display, kind, template, boundary, phase)
        node.started_at = self._clock()
        self.status.nodes[node.id] = node
        if parent is not None:
            parent.children.append(node.id)
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
        if update.warning:
            node.warning = update.warning
        if phase.fulfilled:
            node.finished_at = self._clock()
        self._changed(node)

    def _changed(self, node: Node) -> None:
        if self._on_change is not None:
            self._on_change(node)
