"""Exit handlers: the workflow's `onExit` after the entrypoint, with `workflow.status` and `.failures`;
a step's or task's `onExit` after it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from argoplug.agent.client import PluginEndpoint
from argoplug.agent.engine import DEADLINE_MESSAGE
from argoplug.agent.nodes import Node, NodePhase, WorkflowStatus

from .agent_test_plugins import echo, fail
from .helpers import FakeSleep, run_engine, workflow_from

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n  entrypoint: main\n"
TEMPLATES = """\
    - name: ok
      plugin: {echo: {v: done}}
    - name: bad
      plugin: {fail: {message: bad on purpose}}
    - name: report
      outputs: {parameters: [{name: status}, {name: failures}]}
      plugin: {echo: {status: "{{workflow.status}}", failures: "{{workflow.failures}}"}}
    - name: bad-exit
      plugin: {fail: {message: the exit handler failed}}
"""


def endpoint(server: Any) -> PluginEndpoint:
    return PluginEndpoint(server.url, server.token)


def by_name(status: WorkflowStatus) -> dict[str, Node]:
    return {node.name: node for node in status.nodes.values()}


def run(live_server: Any, tmp_path: Any, text: str, **options: Any) -> WorkflowStatus:
    workflow = workflow_from(HEAD + text + TEMPLATES, tmp_path=tmp_path)
    return run_engine(workflow, [endpoint(live_server([echo, fail]))], **options)


def outputs(node: Node) -> dict[str, str]:
    assert node.outputs is not None
    return {p.name: p.value or "" for p in node.outputs.parameters}


def test_the_exit_handler_runs_after_the_entrypoint_and_sees_success(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        "  onExit: report\n  templates:\n    - name: main\n      steps: [[{name: a, template: ok}]]\n",
    )
    nodes = by_name(status)
    handler = nodes["wf.onExit"]
    assert (handler.display_name, handler.boundary_id, handler.hooked) == ("wf.onExit", "", True)
    assert (handler.started_at or 0) >= (nodes["wf"].finished_at or 0)
    assert outputs(handler) == {"status": "Succeeded", "failures": '"[]"'}
    assert status.phase == NodePhase.SUCCEEDED


def test_the_exit_handler_sees_the_failure_and_the_failed_nodes(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        "  onExit: report\n  templates:\n    - name: main\n      steps: [[{name: a, template: bad}]]\n",
    )
    nodes = by_name(status)
    seen = outputs(nodes["wf.onExit"])
    assert seen["status"] == "Failed"
    failures = json.loads(json.loads(seen["failures"]))  # Argo quotes the JSON list (strconv.Quote)
    assert [(f["displayName"], f["templateName"], f["phase"], f["message"]) for f in failures] == [
        ("wf", "main", "Failed", f"child '{nodes['wf[0].a'].id}' failed"),
        ("[0]", "", "Failed", f"child '{nodes['wf[0].a'].id}' failed"),
        ("a", "bad", "Failed", "bad on purpose"),
    ]
    assert failures[2]["podName"].startswith("wf-bad-")
    assert (status.phase, status.message) == (NodePhase.FAILED, f"child '{nodes['wf[0].a'].id}' failed")


def test_a_failing_exit_handler_fails_a_workflow_that_succeeded(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        "  onExit: bad-exit\n  templates:\n    - name: main\n      plugin: {echo: {}}\n",
    )
    assert (status.phase, status.message) == (NodePhase.FAILED, "the exit handler failed")


def test_the_exit_handler_runs_after_the_deadline(scripted, tmp_path):
    server = scripted(
        [(200, {"node": {"phase": "Running", "message": "started"}}), (200, {"node": {"phase": "Succeeded"}})]
    )
    text = (
        HEAD
        + "  activeDeadlineSeconds: 60\n  onExit: notify\n  templates:\n"
        + "    - name: main\n      steps: [[{name: hang, template: hang}]]\n"
        + "    - name: hang\n      plugin: {scripted: {}}\n"
        + "    - name: notify\n      plugin: {scripted: {status: '{{workflow.status}}'}}\n"
    )
    workflow = workflow_from(text, tmp_path=tmp_path)
    calls: list[float] = []
    hanging = asyncio.Event()

    async def deadline(seconds: float) -> None:
        calls.append(seconds)
        await hanging.wait()  # the deadline "passes" once the node hangs

    def on_change(node: Node) -> None:
        if node.hangs:
            hanging.set()

    status = run_engine(workflow, [server.endpoint()], engine_sleep=deadline, speed=3, on_change=on_change)
    assert calls == [20.0]  # the deadline, three times faster
    nodes = by_name(status)
    assert (nodes["wf[0].hang"].phase, nodes["wf[0].hang"].message) == (NodePhase.FAILED, DEADLINE_MESSAGE)
    assert server.requests[-1][1]["template"]["plugin"] == {"scripted": {"status": "Failed"}}
    assert nodes["wf.onExit"].phase == NodePhase.SUCCEEDED  # the deadline does not apply to it
    assert (status.phase, status.message) == (NodePhase.FAILED, DEADLINE_MESSAGE)


def test_step_and_task_exit_handlers_run_after_their_node(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
  templates:
    - name: main
      steps:
        - - {name: a, template: bad, onExit: ok, continueOn: {failed: true}}
          - {name: skipped, template: ok, onExit: ok, when: "false"}
        - - {name: d, template: dag}
    - name: dag
      dag:
        tasks:
          - {name: t, template: ok, onExit: bad-exit}
          - {name: u, dependencies: [t], template: ok}
""",
    )
    nodes = by_name(status)
    hook = nodes["wf[0].a.onExit"]
    assert (hook.display_name, hook.hooked, hook.phase) == ("a.onExit", True, NodePhase.SUCCEEDED)
    assert hook.id in nodes["wf[0].a"].children
    assert "wf[0].skipped.onExit" not in nodes  # only a node that ran to an end gets its exit handler
    task_hook = nodes["wf[1].d.t.onExit"]
    assert task_hook.phase == NodePhase.FAILED
    # The dependent waited for the exit handler; its failure does not fail the DAG (Argo).
    assert (nodes["wf[1].d.u"].started_at or 0) >= (task_hook.finished_at or 0)
    assert nodes["wf[1].d"].phase == NodePhase.SUCCEEDED
    assert status.phase == NodePhase.SUCCEEDED


def test_a_retried_step_gets_one_exit_handler_after_its_retries(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
  templates:
    - name: main
      steps: [[{name: a, template: bad-twice, onExit: ok}]]
    - name: bad-twice
      retryStrategy: {limit: 1}
      plugin: {fail: {message: again}}
""",
        engine_sleep=FakeSleep(),
    )
    nodes = by_name(status)
    retry = nodes["wf[0].a"]
    assert [status.nodes[c].name for c in retry.children] == ["wf[0].a(0)", "wf[0].a(1)", "wf[0].a.onExit"]
    assert retry.phase == NodePhase.FAILED
