"""The `argo get`-like report and the progress lines of `argoplug run`."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus, node_id
from argoplug.agent.report import (
    Progress,
    duration,
    progress,
    render_report,
    render_tree,
    short_duration,
    timestamp,
)
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
    # The omitted task `y` is not drawn, and `x` keeps the `├─` it gets above it, as in `argo get`.
    assert render_tree(sample(), now=T0 + 10).plain.splitlines() == [
        "STEP        TEMPLATE  PODNAME  DURATION  MESSAGE",
        " ✖ wf       main",
        " ├─┬─✔ a    say                1s",
        " │ └─✖ b    boom               2s        it broke",
        " └───● c    graph",
        "     ├─✔ x  say                0s",
    ]


def test_the_report_has_the_header_the_tree_and_the_outputs(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        lines = render_report(sample(), now=T0 + 70).plain.splitlines()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert lines[:10] == [
        "Name:                wf",
        "Namespace:           argo",
        "Status:              Failed",
        "Message:             child 'wf-1' failed",
        "Started:             Tue Nov 14 22:13:20 +0000 (1 minute ago)",
        "Finished:            Tue Nov 14 22:14:25 +0000 (5 seconds ago)",
        "Duration:            1 minute 5 seconds",
        "Progress:            2/3",
        "Parameters:",
        "  who:               world",
    ]
    assert lines[11] == "STEP        TEMPLATE  PODNAME  DURATION  MESSAGE"
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
        group = Node("tg", "wf.t", "t", NodeType.TASK_GROUP, "t", "wf", NodePhase.RUNNING)
        progress.on_change(group)  # a task group: no line either
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


def retry_and_loop() -> WorkflowStatus:
    """Steps: `flaky` retried (two attempts), `once` with one attempt, `loop` fanned out over 11 items, then
    the exit handler `wf.onExit` (a Steps node) with an HTTP step and a waiting suspend step."""
    status = WorkflowStatus("wf", "argo", "u", {}, NodePhase.RUNNING)
    status.started_at = T0
    root = add(status, "wf", "wf", NodeType.STEPS, "main", "", NodePhase.SUCCEEDED, start=0, end=30)
    g0 = add(
        status, "wf[0]", "[0]", NodeType.STEP_GROUP, "main", root.id, NodePhase.SUCCEEDED, start=0, end=9
    )
    retry = NodeType.RETRY
    flaky = add(status, "wf[0].flaky", "flaky", retry, "call", root.id, NodePhase.SUCCEEDED, start=0, end=9,
                parent=g0)  # fmt: skip
    add(status, "wf[0].flaky(0)", "flaky(0)", NodeType.PLUGIN, "call", root.id, NodePhase.FAILED, start=0,
        end=2, message="boom", parent=flaky)  # fmt: skip
    add(status, "wf[0].flaky(1)", "flaky(1)", NodeType.PLUGIN, "call", root.id, NodePhase.SUCCEEDED, start=5,
        end=9, parent=flaky)  # fmt: skip
    once = add(status, "wf[0].once", "once", retry, "call", root.id, NodePhase.SUCCEEDED, start=0, end=1,
               parent=g0)  # fmt: skip
    add(status, "wf[0].once(0)", "once(0)", NodeType.PLUGIN, "call", root.id, NodePhase.SUCCEEDED, start=0,
        end=1, parent=once)  # fmt: skip
    g1 = add(status, "wf[1]", "[1]", NodeType.STEP_GROUP, "main", root.id, NodePhase.SUCCEEDED, start=10,
             end=30)  # fmt: skip
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    for i in reversed(range(len(words))):  # created in any order: the tree sorts them
        display = f"loop({i}:{words[i]})"
        add(status, f"wf[1].{display}", display, NodeType.PLUGIN, "say", root.id, NodePhase.SUCCEEDED,
            start=10.2 + i / 100, end=11, parent=g1)  # fmt: skip
    exit_node = add(status, "wf.onExit", "wf.onExit", NodeType.STEPS, "exit", "", NodePhase.RUNNING, start=31,
                    end=None)  # fmt: skip
    eg = add(status, "wf.onExit[0]", "[0]", NodeType.STEP_GROUP, "exit", exit_node.id, NodePhase.RUNNING,
             start=31, end=None)  # fmt: skip
    add(status, "wf.onExit[0].notify", "notify", NodeType.HTTP, "notify", exit_node.id, NodePhase.FAILED,
        start=31, end=33, message="received non-2xx response code: 404", parent=eg)  # fmt: skip
    add(status, "wf.onExit[0].wait", "wait", NodeType.SUSPEND, "wait", exit_node.id, NodePhase.RUNNING,
        start=31, end=None, parent=eg)  # fmt: skip
    add(status, "wf.onExit[0].pod", "pod", NodeType.POD, "c", exit_node.id, NodePhase.ERROR, start=31,
        end=31, message="cannot run container templates", parent=eg)  # fmt: skip
    return status


def test_retries_loops_and_the_exit_handler_are_drawn_as_argo_get_draws_them():
    assert render_tree(retry_and_loop(), now=T0 + 100).plain.splitlines() == [
        "STEP                  TEMPLATE  PODNAME  DURATION  MESSAGE",
        " ✔ wf                 main",
        " ├─┬─✔ flaky          call",
        " │ │ ├─✖ flaky(0)     call               2s        boom",
        " │ │ └─✔ flaky(1)     call               4s",
        " │ └─✔ once(0)        call               1s",
        " └─┬─✔ loop(0:zero)   say                0s",
        "   ├─✔ loop(1:one)    say                0s",
        "   ├─✔ loop(2:two)    say                0s",
        "   ├─✔ loop(3:three)  say                0s",
        "   ├─✔ loop(4:four)   say                0s",
        "   ├─✔ loop(5:five)   say                0s",
        "   ├─✔ loop(6:six)    say                0s",
        "   ├─✔ loop(7:seven)  say                0s",
        "   ├─✔ loop(8:eight)  say                0s",
        "   ├─✔ loop(9:nine)   say                0s",
        "   └─✔ loop(10:ten)   say                0s",
        "",
        " ● wf.onExit          exit",
        " └─┬─✖ notify         notify             2s        received non-2xx response code: 404",
        "   ├─⚠ pod            c                  0s        cannot run container templates",
        "   └─ǁ wait           wait",
    ]


def test_siblings_sort_by_start_second_then_loop_index_as_argo_does():
    """Argo's own case (get_test.go `IndexOrdering`): items started in a later second come after."""
    status = WorkflowStatus("wf", "argo", "u", {})
    root = add_to(status, "wf", "wf", NodeType.STEPS, "", 0)
    group = add_to(status, "wf[0]", "[0]", NodeType.STEP_GROUP, root.id, 0)
    later = {10: "ten", 11: "eleven", 12: "twelve"}
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", *later.values()]
    for i, word in enumerate(words):
        start = 1.0 if i in later else 0.5
        add_to(status, f"wf[0].sleep({i}:{word})", f"sleep({i}:{word})", NodeType.POD, root.id, start, group)
    rows = render_tree(status, now=T0 + 60).plain.splitlines()
    assert [row.split()[1] for row in rows[2:]] == [f"sleep({i}:{word})" for i, word in enumerate(words)]


def add_to(status: WorkflowStatus, name: str, display: str, kind: NodeType, boundary: str, start: float,
           parent: Node | None = None) -> Node:  # fmt: skip
    return add(status, name, display, kind, "t", boundary, NodePhase.SUCCEEDED, start=start, end=start + 1,
               parent=parent)  # fmt: skip


def test_status_progress_and_suspended_workflow():
    status = retry_and_loop()
    assert progress(status) == "13/17"  # Plugin, HTTP, Suspend and Pod nodes; 4 not done (Retry: not counted)
    lines = render_report(status, now=T0 + 100).plain.splitlines()
    assert "Status:              Running (Suspended)" in lines
    assert "Progress:            13/17" in lines
    assert "Duration:            1 minute 40 seconds" in lines
    assert not any(line.startswith("Finished:") for line in lines)


def test_a_template_ref_node_shows_workflow_template_and_template():
    status = sample()
    node = next(n for n in status.nodes.values() if n.name == "wf[0].a")
    node.template_ref = {"name": "lib", "template": "say"}
    assert " ├─┬─✔ a    lib/say" in render_tree(status, now=T0).plain


def test_global_outputs_are_listed_as_output_parameters():
    status = sample()
    status.outputs = Outputs(parameters=[Parameter(name="arn", value="arn:aws:x")])
    lines = render_report(status, now=T0 + 70).plain.splitlines()
    index = lines.index("Output Parameters:")
    assert lines[index + 1] == "  arn:               arn:aws:x"


def test_long_or_multiline_outputs_are_shortened_in_the_report():
    status = sample()
    node = next(n for n in status.nodes.values() if n.name == "wf[0].b")
    node.outputs = Outputs(result="<html>\n" + "x" * 500)
    text = render_report(status, now=T0).plain
    assert "    result:          <html>… (507 characters; -o json shows it whole)" in text
    node.outputs = Outputs(result="y" * 300)
    assert f"{'y' * 120}… (300 characters; -o json shows it whole)" in render_report(status, now=T0).plain


@pytest.mark.parametrize(
    ("seconds", "short", "long"),
    [
        (0, "0s", "0 seconds"),
        (0.9, "0s", "0 seconds"),
        (1.5, "1s", "1 second"),
        (36, "36s", "36 seconds"),
        (60, "1m", "1 minute 0 seconds"),
        (65, "1m", "1 minute 5 seconds"),
        (125, "2m", "2 minutes 5 seconds"),
        (3725, "1h", "1 hour 2 minutes"),
        (7300, "2h", "2 hours 1 minutes"),
        (90000, "1d", "1 day 1 hours"),
    ],
)
def test_durations_are_humanized_as_argo_does(seconds, short, long):
    assert short_duration(seconds) == short
    assert duration(seconds) == long


def test_timestamps_are_humanized_as_argo_does(monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert timestamp(T0, T0) == "Tue Nov 14 14:13:20 -0800 (now)"
        assert timestamp(T0, T0 + 36) == "Tue Nov 14 14:13:20 -0800 (36 seconds ago)"
        assert timestamp(T0, T0 + 7300) == "Tue Nov 14 14:13:20 -0800 (2 hours ago)"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
