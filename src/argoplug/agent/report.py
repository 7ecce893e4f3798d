"""What `argoplug run` shows: the live view while a workflow runs, and the `argo get`-like report after.

The tree follows `argo get` (`cmd/argo/commands/common/get.go`): boundary nodes (Steps, DAG) hold the nodes
run in them, step groups are not rows but forks (`├─┬─`), siblings sort by start time then name, and the
icons are Argo's (✔ Succeeded, ✖ Failed, ⚠ Error, ● Running, ◷ Pending, ○ Skipped and Omitted).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus
from argoplug.protocol import format_duration

__all__ = ["ICONS", "Progress", "render_report", "render_tree"]

ICONS: dict[NodePhase, tuple[str, str]] = {
    NodePhase.PENDING: ("◷", "yellow"),
    NodePhase.RUNNING: ("●", "cyan"),
    NodePhase.SUCCEEDED: ("✔", "green"),
    NodePhase.SKIPPED: ("○", "default"),
    NodePhase.OMITTED: ("○", "default"),
    NodePhase.FAILED: ("✖", "red"),
    NodePhase.ERROR: ("⚠", "red"),
}
_HEADER = "{:<20} {}"
_HANGS = "no requeue: Argo's agent never calls again; the workflow's activeDeadlineSeconds ends it"


def render_report(status: WorkflowStatus, *, now: float | None = None) -> Text:
    """The whole report: header (name, namespace, status, duration, parameters), tree, output parameters."""
    lines = [
        Text(_HEADER.format("Name:", status.name)),
        Text(_HEADER.format("Namespace:", status.namespace)),
        Text.assemble(_HEADER.format("Status:", ""), (str(status.phase), ICONS[status.phase][1])),
    ]
    if status.message:
        lines.append(Text(_HEADER.format("Message:", status.message)))
    if status.started_at is not None:
        end = status.finished_at if status.finished_at is not None else (now or time.time())
        lines.append(Text(_HEADER.format("Duration:", _long_duration(end - status.started_at))))
    if status.parameters:
        lines.append(Text(_HEADER.format("Parameters:", "")))
        lines.extend(Text(_HEADER.format(f"  {k}:", v)) for k, v in status.parameters.items())
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
    """The STEP / TEMPLATE / DURATION / MESSAGE table of the nodes, as `argo get` draws it."""
    root = status.root
    if root is None:
        return Text()
    rows: list[list[Text]] = [[Text("STEP"), Text("TEMPLATE"), Text("DURATION"), Text("MESSAGE")]]
    _render(status, root, " ", " ", rows, now or time.time())
    return _tabulate(rows)


def _contained(status: WorkflowStatus, node: Node) -> list[Node]:
    """The render children of `node` (`convertToRenderTrees`): a step group's steps, a boundary's nodes."""
    nodes = status.nodes
    if node.type == NodeType.STEP_GROUP:
        children = [nodes[i] for i in node.children if i in nodes]
    elif node.type in (NodeType.STEPS, NodeType.DAG):
        grouped = {child for n in nodes.values() if n.type == NodeType.STEP_GROUP for child in n.children}
        children = [n for n in nodes.values() if n.boundary_id == node.id and n.id not in grouped]
    else:
        return []
    return sorted(children, key=lambda n: (n.started_at or 0.0, n.display_name))


def _render(
    status: WorkflowStatus, node: Node, prefix: str, child_prefix: str, rows: list[list[Text]], now: float
) -> None:
    """`renderNodes` and `renderChild`: a step group is no row; its steps fork off the previous line."""
    filtered = node.type == NodeType.STEP_GROUP
    if not filtered:
        rows.append(_row(node, prefix, now))
    children = _contained(status, node)
    last = len(children) - 1
    for index, child in enumerate(children):
        if filtered:
            if last == 0:
                part, sub = "──", "  "
            elif index == 0:
                part, sub = "┬─", "│ "
            elif index == last:
                part, sub = "└─", "  "
            else:
                part, sub = "├─", "│ "
            node_prefix = (prefix if index == 0 else child_prefix) + part
        else:
            part, sub = ("└─", "  ") if index == last else ("├─", "│ ")
            node_prefix = child_prefix + part
        _render(status, child, node_prefix, child_prefix + sub, rows, now)


def _row(node: Node, prefix: str, now: float) -> list[Text]:
    icon, style = ICONS[node.phase]
    name = Text.assemble(prefix, (icon, style), f" {node.display_name}")
    duration = ""
    if node.type not in (NodeType.STEPS, NodeType.DAG, NodeType.STEP_GROUP) and node.started_at is not None:
        end = node.finished_at if node.finished_at is not None else now
        duration = _short_duration(end - node.started_at)
    return [name, Text(node.template_name), Text(duration), Text(_message(node))]


def _message(node: Node) -> str:
    """The node's message on one line, with why it hangs when it does and the plugin's misstep if any."""
    notes = [" ".join(node.message.split())]
    if node.hangs:
        notes.append(f"({_HANGS})" if notes[0] else _HANGS)
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
        lines.extend(Text(f"{f'    {name}:':<{width}}{value}".rstrip()) for name, value in rows)
    return lines


def _short_duration(seconds: float) -> str:
    """A node's duration: `250ms`, `4.2s`, `1m5s`."""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return format_duration(round(seconds, 3))
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_duration(round(seconds))


def _long_duration(seconds: float) -> str:
    """The workflow's duration, as `argo get` words it: `4.2 seconds`, `1 minute 5 seconds`."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f} seconds"
    whole = round(seconds)
    parts = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts)


class Progress:
    """Shows a run as it goes: a live tree on a terminal, else one plain line per node phase change.

    Pass `on_change` to the engine and wrap the run in `showing(status)`. Step groups get no line of
    their own (they are forks in the tree, not nodes a user acts on).
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._seen: dict[str, NodePhase] = {}

    def on_change(self, node: Node) -> None:
        """Print a line when `node` reached a new phase (plain mode only; the live view redraws itself)."""
        if self.live or node.type == NodeType.STEP_GROUP or self._seen.get(node.id) == node.phase:
            return
        self._seen[node.id] = node.phase
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
            title = Text.assemble("Running ", (status.name, "bold"), f" in {status.namespace}")
            return Group(title, render_tree(status))

        with Live(get_renderable=view, console=self.console, refresh_per_second=8, transient=True):
            yield
