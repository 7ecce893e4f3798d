"""Time: suspend durations, template `timeout` (enforced only while Pending), and the `speed` factor."""

from __future__ import annotations

import asyncio

import pytest

from argoplug.agent.client import AgentClient
from argoplug.agent.engine import Engine
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus

from .helpers import FakeSleep, run_engine, workflow_from

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n  entrypoint: main\n"
PENDING = (200, {"node": {"phase": "Pending", "message": "queued"}, "requeue": "30s"})
RUNNING = (200, {"node": {"phase": "Running", "message": "working"}, "requeue": "30s"})
DONE = (200, {"node": {"phase": "Succeeded", "message": "done"}})


def by_name(status: WorkflowStatus) -> dict[str, Node]:
    return {node.name: node for node in status.nodes.values()}


def test_a_suspend_waits_its_duration_divided_by_the_speed_and_resumes_with_defaults(scripted, tmp_path):
    server = scripted([DONE])
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      steps:
        - - {name: pause, template: pause}
        - - name: use
            template: use
            arguments: {parameters: [{name: answer, value: "{{steps.pause.outputs.parameters.answer}}"}]}
    - name: pause
      suspend: {duration: "2m"}
      outputs:
        parameters:
          - name: answer
            valueFrom: {supplied: {}, default: "yes"}
    - name: use
      inputs: {parameters: [{name: answer}]}
      plugin: {scripted: {answer: "{{inputs.parameters.answer}}"}}
""",
        tmp_path=tmp_path,
    )
    sleep = FakeSleep()
    status = run_engine(workflow, [server.endpoint()], engine_sleep=sleep, speed=4)
    pause = by_name(status)["wf[0].pause"]
    assert (pause.type, pause.phase) == (NodeType.SUSPEND, NodePhase.SUCCEEDED)
    assert sleep.delays == [30.0]
    assert (pause.finished_at or 0) - (pause.started_at or 0) == 30.0
    assert server.requests[0][1]["template"]["plugin"] == {"scripted": {"answer": "yes"}}


def test_a_suspend_output_without_default_errors(tmp_path, scripted):
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      suspend: {duration: "1"}
      outputs: {parameters: [{name: answer, valueFrom: {supplied: {}}}]}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [scripted([DONE]).endpoint()], engine_sleep=FakeSleep())
    root = by_name(status)["wf"]
    assert (root.phase, root.message) == (
        NodePhase.ERROR,
        "raw output parameter 'answer' has not been set and does not have a default value",
    )


def timed(timeout: str) -> str:
    return (
        HEAD
        + f"""\
  templates:
    - name: main
      steps: [[{{name: call, template: call, continueOn: {{failed: true}}}}]]
    - name: call
      timeout: "{timeout}"
      plugin: {{scripted: {{}}}}
"""
    )


def test_the_timeout_fails_a_node_still_pending(scripted, tmp_path):
    server = scripted([PENDING])
    status = run_engine(
        workflow_from(timed("1m"), tmp_path=tmp_path), [server.endpoint()], engine_sleep=FakeSleep()
    )
    nodes = by_name(status)
    assert (nodes["wf[0].call"].phase, nodes["wf[0].call"].message) == (NodePhase.FAILED, "timeout")
    # ErrTimeout fails the step group with its message, even for a step that continues on failure.
    assert (nodes["wf[0]"].phase, nodes["wf[0]"].message) == (NodePhase.FAILED, "timeout")
    assert (status.phase, status.message) == (NodePhase.FAILED, "timeout")


def test_the_timeout_does_not_apply_once_the_node_runs(scripted, tmp_path):
    server = scripted([RUNNING, RUNNING, DONE])
    running = asyncio.Event()

    async def timer(seconds: float) -> None:
        await running.wait()  # the timeout passes once the node runs

    def on_change(node: Node) -> None:
        if node.phase == NodePhase.RUNNING and node.type == NodeType.PLUGIN:
            running.set()

    status = run_engine(
        workflow_from(timed("1s"), tmp_path=tmp_path),
        [server.endpoint()],
        engine_sleep=timer,
        on_change=on_change,
    )
    assert by_name(status)["wf[0].call"].phase == NodePhase.SUCCEEDED
    assert len(server.requests) == 3


def test_the_timeout_fails_a_node_that_is_pending_again_after_it(tmp_path, scripted):
    server = scripted([RUNNING, PENDING])
    running = asyncio.Event()

    async def timer(seconds: float) -> None:
        await running.wait()

    def on_change(node: Node) -> None:
        if node.phase == NodePhase.RUNNING and node.type == NodeType.PLUGIN:
            running.set()

    status = run_engine(
        workflow_from(timed("1s"), tmp_path=tmp_path),
        [server.endpoint()],
        engine_sleep=timer,
        on_change=on_change,
    )
    assert by_name(status)["wf[0].call"].message == "timeout"


def test_an_invalid_timeout_fails_the_node(scripted, tmp_path):
    status = run_engine(
        workflow_from(timed("{{workflow.name}}"), tmp_path=tmp_path), [scripted([DONE]).endpoint()]
    )
    node = by_name(status)["wf[0].call"]
    assert node.phase == NodePhase.FAILED and node.message.startswith("invalid timeout format.")


def test_the_speed_must_be_positive(tmp_path):
    workflow = workflow_from(
        HEAD + "  templates:\n    - name: main\n      plugin: {x: {}}\n", tmp_path=tmp_path
    )

    async def make() -> None:
        async with AgentClient([]) as client:
            Engine(workflow, client, speed=0)

    with pytest.raises(ValueError, match="speed must be a positive number, got 0"):
        asyncio.run(make())
