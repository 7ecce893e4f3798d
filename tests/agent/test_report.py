"""The `argo get`-like report and the progress lines of `argoplug run`."""

from __future__ import annotations

import io

from rich.console import Console

from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus, node_id
from argoplug.agent.report import Progress, render_report, render_tree
from argoplug.protocol import Outputs, Parameter

T0 = 1_700_000_000.0


def add(
    status: WorkflowStatus,
    name: str,
    display: str,
    kind: NodeType,
    template: str,
    boundary: str,
    phase: NodePhase,
    *,
    start: float,
    end: float | None,
    message: str = "",
    parent: Node | None = None,
    outputs: Outputs | None = None,
) -> Node:
    node = Node(node_id("wf", name), name, display, kind, template, boundary, phase, message)
    node.started_at, node.finished_at, node.outputs = (
        T0 + start,
        (T0 + end if end is not None else None),
        outputs,
    )
    status.nodes[node.id] = node
    if parent is not None:
        parent.children.append(node.id)
    return node


def sample() -> WorkflowStatus:
    """Steps: group 0 runs `a` and `b`, group 1 runs the DAG `c` with tasks `x` (done) and `y` (omitted)."""
    status = WorkflowStatus("wf", "argo", "uid-1", {"who": "world"}, NodePhase.FAILED, "child 'wf-1' failed")
    status.started_at, status.finished_at = T0, T0 + 65
    root = add(status, "wf", "wf", NodeType.STEPS, "main", "", NodePhase.FAILED, start=0, end=65)
    g0 = add(
        status, "wf[0]", "[0]", NodeType.STEP_GROUP, "main", root.id, NodePhase.SUCCEEDED, start=0, end=2
    )
    add(
        status,
        "wf[0].a",
        "a",
        NodeType.PLUGIN,
        "say",
        root.id,
        NodePhase.SUCCEEDED,
        start=0,
        end=1,
        parent=g0,
    )
    add(
        status, "wf[0].b", "b", NodeType.PLUGIN, "boom", root.id, NodePhase.FAILED, start=0.1, end=2.1,
        message="it broke", parent=g0,
        outputs=Outputs(parameters=[Parameter(name="arn", value="arn:aws:x")], result="r"),
    )  # fmt: skip
    g1 = add(
        status, "wf[1]", "[1]", NodeType.STEP_GROUP, "main", root.id, NodePhase.RUNNING, start=3, end=None
    )
    c = add(
        status,
        "wf[1].c",
        "c",
        NodeType.DAG,
        "graph",
        root.id,
        NodePhase.RUNNING,
        start=3,
        end=None,
        parent=g1,
    )
    add(
        status,
        "wf[1].c.y",
        "y",
        NodeType.SKIPPED,
        "say",
        c.id,
        NodePhase.OMITTED,
        start=4,
        end=4,
        message="omitted",
    )
    add(status, "wf[1].c.x", "x", NodeType.PLUGIN, "say", c.id, NodePhase.SUCCEEDED, start=3.5, end=3.75)
    return status


def test_the_tree_is_drawn_as_argo_get_draws_it():
    assert render_tree(sample(), now=T0 + 10).plain.splitlines() == [
        "STEP        TEMPLATE  DURATION  MESSAGE",
        " ✖ wf       main",
        " ├─┬─✔ a    say       1.0s",
        " │ └─✖ b    boom      2.0s      it broke",
        " └───● c    graph",
        "     ├─✔ x  say       250ms",
        "     └─○ y  say       0s        omitted",
    ]


def test_the_report_has_the_header_the_tree_and_the_outputs():
    lines = render_report(sample(), now=T0 + 10).plain.splitlines()
    assert lines[:7] == [
        "Name:                wf",
        "Namespace:           argo",
        "Status:              Failed",
        "Message:             child 'wf-1' failed",
        "Duration:            1 minute 5 seconds",
        "Parameters:",
        "  who:               world",
    ]
    assert lines[-4:] == [
        "Outputs:",
        "  b:",
        "    arn:             arn:aws:x",
        "    result:          r",
    ]


def test_icons_cover_every_phase():
    status = WorkflowStatus("wf", "argo", "u", {})
    root = add(status, "wf", "wf", NodeType.DAG, "main", "", NodePhase.RUNNING, start=0, end=None)
    for i, phase in enumerate(NodePhase):
        add(status, f"wf.{phase}", str(phase), NodeType.PLUGIN, "t", root.id, phase, start=i, end=i + 1)
    rows = render_tree(status, now=T0).plain.splitlines()[2:]
    icons = {row.split()[1]: row.split()[0][-1] for row in rows}
    assert icons == {
        "Pending": "◷",
        "Running": "●",
        "Succeeded": "✔",
        "Skipped": "○",
        "Failed": "✖",
        "Error": "⚠",
        "Omitted": "○",
    }


def test_a_hanging_node_says_why():
    status = sample()
    node = next(n for n in status.nodes.values() if n.name == "wf[1].c.x")
    node.phase, node.hangs, node.message = NodePhase.RUNNING, True, "started"
    assert "started (no requeue: Argo's agent never calls again" in render_tree(status, now=T0).plain


def test_a_plugin_warning_follows_the_message_in_the_tree_and_the_progress_line():
    status = sample()
    node = next(n for n in status.nodes.values() if n.name == "wf[0].b")
    node.warning = "plugin 'say' answered Failed with requeue \"30s\": Argo's agent would call it again"
    assert f"it broke [warning: {node.warning}]" in render_tree(status, now=T0).plain
    out = io.StringIO()
    Progress(Console(file=out, force_terminal=False, width=200)).on_change(node)
    assert out.getvalue().rstrip().endswith(f"wf[0].b Failed: it broke [warning: {node.warning}]")


def test_progress_prints_one_line_per_phase_change_off_a_terminal():
    out = io.StringIO()
    progress = Progress(Console(file=out, force_terminal=False, width=200))
    status = sample()
    nodes = {n.name: n for n in status.nodes.values()}
    with progress.showing(status):
        progress.on_change(nodes["wf[0].a"])
        progress.on_change(nodes["wf[0].a"])  # same phase: no new line
        progress.on_change(nodes["wf[0]"])  # a step group: no line
        nodes["wf[0].a"].phase = NodePhase.FAILED
        progress.on_change(nodes["wf[0].a"])
        progress.on_change(nodes["wf[0].b"])
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["✔ wf[0].a Succeeded", "✖ wf[0].a Failed", "✖ wf[0].b Failed: it broke"]


def test_on_a_terminal_the_view_is_live_and_prints_no_lines():
    out = io.StringIO()
    progress = Progress(Console(file=out, force_terminal=True, width=120))
    status = sample()
    with progress.showing(status):
        progress.on_change(next(iter(status.nodes.values())))
    assert progress.live
    assert "wf[0].a Succeeded" not in out.getvalue()
