"""What `argoplug run` shows: the live view while a workflow runs, and the `argo get`-like report after.

Both follow `argo get` (`cmd/argo/commands/common/get.go`, `PrintWorkflowHelper`): the header, then the
STEP / TEMPLATE / PODNAME / DURATION / MESSAGE table, the exit handler's tree after a blank row, with
Argo's icons (`common.go`), sort order and humanized times (`argoproj/pkg/humanize`). `command` prints it.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Iterator, Mapping, Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from argoplug.agent.humanize import duration, short_duration, timestamp
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus, node_id
from argoplug.protocol import format_duration

__all__ = [
    "ICONS",
    "Progress",
    "duration",
    "progress",
    "render_report",
    "render_tree",
    "short_duration",
    "timestamp",
]

ICONS: dict[NodePhase, tuple[str, str]] = {
    NodePhase.PENDING: ("◷", "yellow"),
    NodePhase.RUNNING: ("●", "cyan"),
    NodePhase.SUCCEEDED: ("✔", "green"),
    NodePhase.SKIPPED: ("○", "default"),
    NodePhase.OMITTED: ("○", "default"),  # Argo has no icon for it: its Omitted nodes are not drawn
    NodePhase.FAILED: ("✖", "red"),
    NodePhase.ERROR: ("⚠", "red"),
}
SUSPENDED_ICON = ("ǁ", "cyan")  # `NodeTypeIconMap`: a Suspend node while it waits
ON_EXIT = "onExit"  # the exit handler's node is `<workflow>.onExit` (get.go `onExitSuffix`)
_HEADER = "{:<20} {}"
_HANGS = "no requeue: Argo's agent never calls again; the workflow's activeDeadlineSeconds ends it"

# get.go's kinds of render nodes; nodes of other types (TaskGroup, Container) are not drawn.
_BOUNDARY = frozenset({"Steps", "DAG"})
# `isNonBoundaryParentNode`: their children hang off them rather than off their boundary.
_PARENT = frozenset({NodeType.STEP_GROUP, NodeType.RETRY})
_EXECUTION = frozenset({"Pod", "Skipped", "Suspend", "HTTP", "Plugin"})
# `progress.executable`: the nodes counted in Progress.
_EXECUTABLE = frozenset({"Pod", "HTTP", "Plugin", "Container", "Suspend"})
# DURATION is filled for these: Argo fills it for pods only; here plugin and HTTP nodes do the work.
_TIMED = frozenset({"Pod", "HTTP", "Plugin"})
_GROUPS = frozenset({NodeType.STEP_GROUP, NodeType.TASK_GROUP})  # no progress line of their own
_VALUE_WIDTH = 120  # output values longer than this (or on several lines) are shortened in the report


def render_report(status: WorkflowStatus, *, now: float | None = None) -> Text:
    """The whole report: the header of `argo get`, the tree, then every node's outputs.

    Header: Name, Namespace, Status, Message, Started, Finished, Duration, Progress, Parameters and the
    workflow's Output Parameters (global outputs), in Argo's words. `argo get` has no per-node outputs
    section; this one lists each node's parameters and result, long values shortened.
    """
    now = time.time() if now is None else now
    lines = [
        Text(_HEADER.format("Name:", status.name)),
        Text(_HEADER.format("Namespace:", status.namespace)),
        Text.assemble(_HEADER.format("Status:", ""), (_status_word(status), ICONS[status.phase][1])),
    ]
    if status.message:
        lines.append(Text(_HEADER.format("Message:", status.message)))
    if status.started_at is not None:
        lines.append(Text(_HEADER.format("Started:", timestamp(status.started_at, now))))
    if status.finished_at is not None:
        lines.append(Text(_HEADER.format("Finished:", timestamp(status.finished_at, now))))
    if status.started_at is not None:
        end = status.finished_at if status.finished_at is not None else now
        lines.append(Text(_HEADER.format("Duration:", duration(end - status.started_at))))
    lines.append(Text(_HEADER.format("Progress:", progress(status))))
    if status.parameters:
        lines.append(Text(_HEADER.format("Parameters:", "")))
        lines.extend(Text(_HEADER.format(f"  {k}:", v)) for k, v in status.parameters.items())
    if status.outputs is not None and status.outputs.parameters:
        lines.append(Text(_HEADER.format("Output Parameters:", "")))
        lines.extend(
            Text(_HEADER.format(f"  {p.name}:", p.value))
            for p in status.outputs.parameters
            if p.value is not None
        )
    tree = render_tree(status, now=now)
    if tree.plain:
        lines.extend([Text(), tree])
    outputs = _outputs(status)
    if outputs:
        lines.extend([Text(), Text("Outputs:"), *outputs])
    for line in lines:
        line.rstrip()
    return Text("\n").join(lines)


def render_tree(status: WorkflowStatus, *, now: float | None = None) -> Text:
    """The STEP / TEMPLATE / PODNAME / DURATION / MESSAGE table, as `argo get` draws it.

    Steps and DAG nodes hold the nodes run in them; step groups are no rows but forks (`├─┬─`); a retry
    node with one attempt is drawn as that attempt, with more as a row over `(0)`, `(1)`, ...; Omitted
    tasks are not drawn; the exit handler (`<name>.onExit`) comes after a blank row. Siblings sort by
    start (whole seconds, as the API stores it), then loop index (`name(2:x)`), then name. PODNAME stays
    blank: no pods run here.
    """
    root = status.root
    if root is None:
        return Text()
    now = time.time() if now is None else now
    children = _render_children(status)
    rows: list[list[Text]] = [[Text(h) for h in ("STEP", "TEMPLATE", "PODNAME", "DURATION", "MESSAGE")]]
    _render(root, children, " ", " ", rows, now)
    exit_root = status.nodes.get(node_id(status.name, f"{status.name}.{ON_EXIT}"))
    if exit_root is not None and exit_root.boundary_id == "":
        rows.append([Text() for _ in range(5)])
        _render(exit_root, children, " ", " ", rows, now)
    return _tabulate(rows)


def _render_children(status: WorkflowStatus) -> dict[str, list[Node]]:
    """Each node's drawn children (`convertToRenderTrees`), sorted as `insertSorted` does.

    A child of a step group or retry node hangs off it; any other node off its boundary (a Steps or DAG
    node); a node whose boundary is not one is not drawn.
    """
    nodes = status.nodes
    parent_of = {child: node.id for node in nodes.values() if node.type in _PARENT for child in node.children}
    children: dict[str, list[Node]] = {}
    for node in nodes.values():
        if node.type not in _BOUNDARY | _PARENT | _EXECUTION:
            continue
        parent = parent_of.get(node.id)
        if parent is None:
            boundary = nodes.get(node.boundary_id)
            if boundary is None or boundary.type not in _BOUNDARY:
                continue
            parent = boundary.id
        children.setdefault(parent, []).append(node)
    for siblings in children.values():
        siblings.sort(key=functools.cmp_to_key(_compare))
    return children


def _compare(a: Node, b: Node) -> int:
    """`insertSorted`: by start second, then by loop index when both have one, else by display name."""
    start_a, start_b = int(a.started_at or 0), int(b.started_at or 0)
    if start_a != start_b:
        return -1 if start_a < start_b else 1
    index_a, index_b = _loop_index(a.display_name), _loop_index(b.display_name)
    if index_a >= 0 and index_b >= 0:
        return (index_a > index_b) - (index_a < index_b)
    return (a.display_name > b.display_name) - (a.display_name < b.display_name)


def _loop_index(name: str) -> int:
    """`RecoverIndexFromNodeName`: 2 for `sleep(2:two)`, -1 when the name has no loop index."""
    start, end = name.find("("), name.find(":")
    if start < 0 or end < 0:
        return -1
    text = name[start + 1 : end]
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else -1


def _render(
    node: Node,
    children: Mapping[str, Sequence[Node]],
    prefix: str,
    child_prefix: str,
    rows: list[list[Text]],
    now: float,
) -> None:
    """`renderNodes` and `renderChild`: a filtered node draws no row; its children take its place."""
    filtered, fork = _filtered(node)
    if not filtered:
        rows.append(_row(node, prefix, now))
    mine = children.get(node.id, ())
    last = len(mine) - 1  # filtered children count: Argo draws `├─` above an Omitted last task
    for index, child in enumerate(mine):
        if filtered and fork:
            if last == 0:
                part, sub = "──", "  "
            elif index == 0:
                part, sub = "┬─", "│ "
            elif index == last:
                part, sub = "└─", "  "
            else:
                part, sub = "├─", "│ "
        elif filtered:
            part, sub = "", ""
        else:
            part, sub = ("└─", "  ") if index == last else ("├─", "│ ")
        start = prefix if filtered and index == 0 else child_prefix
        node_prefix = start + part
        _render(child, children, node_prefix, child_prefix + sub, rows, now)


def _filtered(node: Node) -> tuple[bool, bool]:
    """`filterNode`: (drawn as no row, children fork off the line above)."""
    if node.type == NodeType.RETRY and len(node.children) == 1:
        return True, False
    if node.type == NodeType.STEP_GROUP:
        return True, True
    if node.type == NodeType.SKIPPED and node.phase == NodePhase.OMITTED:
        return True, False
    return False, False


def _row(node: Node, prefix: str, now: float) -> list[Text]:
    icon, style = ICONS[node.phase]
    if node.type == NodeType.SUSPEND and node.phase == NodePhase.RUNNING:
        icon, style = SUSPENDED_ICON
    name = Text.assemble(prefix, (icon, style), f" {node.display_name}")
    elapsed = ""
    if node.type in _TIMED and node.started_at is not None:
        end = node.finished_at if node.finished_at is not None else now
        elapsed = short_duration(end - node.started_at)
    return [name, Text(_template_column(node)), Text(), Text(elapsed), Text(_message(node))]


def _template_column(node: Node) -> str:
    """The template's name, or `<WorkflowTemplate>/<template>` for a node run from a `templateRef`."""
    ref = node.template_ref
    if ref:
        return f"{ref.get('name', '')}/{ref.get('template', '')}"
    return node.template_name


def _message(node: Node) -> str:
    """The node's message on one line, with why it hangs when it does and the plugin's misstep if any."""
    notes = [" ".join(node.message.split())]
    if node.hangs:
        notes.append(f"({_HANGS})" if notes[0] else _HANGS)
    if node.requeue is not None and not node.phase.fulfilled:
        notes.append(f"(call {node.calls}, requeue {format_duration(node.requeue)})")
    if node.warning:
        notes.append(f"[warning: {node.warning}]")
    return " ".join(note for note in notes if note)


def _tabulate(rows: Sequence[Sequence[Text]]) -> Text:
    """Align cells in columns two spaces apart, as Go's `tabwriter` with padding 2 does."""
    widths = [max(row[i].cell_len for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        line = Text()
        for width, cell in zip(widths, row, strict=False):
            line.append_text(cell)
            line.append(" " * (width - cell.cell_len + 2))
        line.append_text(row[-1])
        line.rstrip()
        lines.append(line)
    return Text("\n").join(lines)


def _outputs(status: WorkflowStatus) -> list[Text]:
    """The output parameters (and results) of every node that has some, by node."""
    found = [(n, n.outputs) for n in status.nodes.values() if n.outputs is not None]
    found = [(node, outputs) for node, outputs in found if outputs.parameters or outputs.result is not None]
    names = [node.display_name for node, _ in found]
    width = max(
        [len(p.name) + 6 for _, outputs in found for p in outputs.parameters] + [len(_HEADER.format("", ""))]
    )
    lines = []
    for node, outputs in found:
        label = node.display_name if names.count(node.display_name) == 1 else node.name
        lines.append(Text(f"  {label}:"))
        rows = [(p.name, p.value or "") for p in outputs.parameters]
        if outputs.result is not None:
            rows.append(("result", outputs.result))
        lines.extend(Text(f"{f'    {name}:':<{width}}{_shorten(value)}".rstrip()) for name, value in rows)
    return lines


def _shorten(value: str) -> str:
    """A value on one line of at most `_VALUE_WIDTH` characters; `-o json` has it whole."""
    first = value.split("\n", 1)[0]
    if first == value and len(value) <= _VALUE_WIDTH:
        return value
    return f"{first[:_VALUE_WIDTH]}… ({len(value)} characters; -o json shows it whole)"


def _status_word(status: WorkflowStatus) -> str:
    """`printer.WorkflowStatus`: the phase, `Running (Suspended)` while a Suspend node waits."""
    if status.phase == NodePhase.RUNNING and any(
        n.type == NodeType.SUSPEND and n.phase == NodePhase.RUNNING for n in status.nodes.values()
    ):
        return "Running (Suspended)"
    return str(status.phase)


def progress(status: WorkflowStatus) -> str:
    """The workflow's progress (`workflow/progress/updater.go`): `done/total` of its executable nodes.

    Executable nodes are Pod, HTTP, Plugin, Container and Suspend nodes; done means Succeeded, Skipped or
    Omitted (a Failed node counts in the total only).
    """
    done = total = 0
    for node in status.nodes.values():
        if node.type in _EXECUTABLE:
            total += 1
            done += node.phase in (NodePhase.SUCCEEDED, NodePhase.SKIPPED, NodePhase.OMITTED)
    return f"{done}/{total}"


class Progress:
    """Shows a run as it goes: a live tree on a terminal, else one plain line per node phase change.

    Pass `on_change` to the engine and wrap the run in `showing(status)`. Step and task groups get no
    line of their own (they are forks in the tree, or not drawn, not nodes a user acts on).
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._seen: dict[str, tuple[NodePhase, int]] = {}

    def on_change(self, node: Node) -> None:
        """Print a line when `node` reached a new phase, and for each reply that requeues it (plain mode
        only; the live view redraws itself)."""
        state = (node.phase, node.calls if node.requeue is not None else 0)
        if self.live or node.type in _GROUPS or self._seen.get(node.id) == state:
            return
        self._seen[node.id] = state
        icon = ICONS[node.phase][0]
        line = f"{time.strftime('%H:%M:%S')} {icon} {node.name} {node.phase}"
        message = _message(node)
        self.console.print(f"{line}: {message}" if message else line, markup=False, highlight=False)

    @contextlib.contextmanager
    def showing(self, status: WorkflowStatus) -> Iterator[None]:
        """Show the live tree of `status` (on a terminal) while the block runs; it vanishes after."""
        if not self.live:
            yield
            return

        def view() -> Group:
            title = Text.assemble(
                "Running ",
                (status.name, "bold"),
                f" in {status.namespace}",
                f"  Progress: {progress(status)}",
            )
            return Group(title, render_tree(status))

        with Live(get_renderable=view, console=self.console, refresh_per_second=8, transient=True):
            yield
