"""retryStrategy: attempts under a Retry node, policies, limits, backoff through the injected sleep."""

from __future__ import annotations

from typing import Any

import pytest

from argoplug.agent.humanize import duration
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus
from argoplug.agent.retries import Decision, decide, is_transient, parse_duration_string
from argoplug.agent.substitution import SetupError
from argoplug.protocol import Outputs

from .helpers import FakeSleep, run_engine, workflow_from

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n  entrypoint: main\n"
FAILED = (200, {"node": {"phase": "Failed", "message": "boom"}})
ERRORED = (200, {"node": {"phase": "Error", "message": "infrastructure trouble"}})
OK = (
    200,
    {
        "node": {
            "phase": "Succeeded",
            "message": "fine",
            "outputs": {"parameters": [{"name": "n", "value": "7"}]},
        }
    },
)


def flow(strategy: str, *, spec: str = "") -> str:
    return (
        HEAD
        + spec
        + f"""\
  templates:
    - name: main
      steps: [[{{name: call, template: call}}]]
    - name: call
      retryStrategy: {strategy}
      outputs: {{parameters: [{{name: n}}]}}
      plugin: {{scripted: {{attempt: "{{{{retries}}}}", node: "{{{{node.name}}}}"}}}}
"""
    )


def by_name(status: WorkflowStatus) -> dict[str, Node]:
    return {node.name: node for node in status.nodes.values()}


def attempts(status: WorkflowStatus) -> list[Node]:
    retry = by_name(status)["wf[0].call"]
    return [status.nodes[c] for c in retry.children]


def test_a_step_that_fails_once_is_retried_and_succeeds(scripted, tmp_path):
    server = scripted([FAILED, OK])
    sleep = FakeSleep()
    status = run_engine(
        workflow_from(flow("{limit: 2}"), tmp_path=tmp_path), [server.endpoint()], engine_sleep=sleep
    )
    retry = by_name(status)["wf[0].call"]
    assert (retry.type, retry.phase, retry.message) == (NodeType.RETRY, NodePhase.SUCCEEDED, "fine")
    assert [(a.name, a.display_name, a.phase, a.retried) for a in attempts(status)] == [
        ("wf[0].call(0)", "call(0)", NodePhase.FAILED, True),
        ("wf[0].call(1)", "call(1)", NodePhase.SUCCEEDED, True),
    ]
    assert retry.outputs is not None and retry.outputs.parameters[0].value == "7"
    # `{{retries}}` is the attempt number; `{{node.name}}` the Retry node's name.
    sent = [body["template"]["plugin"]["scripted"] for _, body in server.requests]
    assert sent == [{"attempt": "0", "node": "wf[0].call"}, {"attempt": "1", "node": "wf[0].call"}]
    assert sleep.delays == []  # no backoff: the next attempt starts at once
    assert status.phase == NodePhase.SUCCEEDED


def test_the_last_attempt_failing_fails_with_no_more_retries_left(scripted, tmp_path):
    server = scripted([FAILED])
    status = run_engine(workflow_from(flow("{limit: 2}"), tmp_path=tmp_path), [server.endpoint()])
    retry = by_name(status)["wf[0].call"]
    assert [a.phase for a in attempts(status)] == [NodePhase.FAILED] * 3
    assert (retry.phase, retry.message) == (NodePhase.FAILED, "No more retries left")
    assert status.phase == NodePhase.FAILED


@pytest.mark.parametrize(
    ("policy", "replies", "tries", "phase", "message"),
    [
        ("OnFailure", [ERRORED], 1, NodePhase.ERROR, "infrastructure trouble"),
        ("OnError", [FAILED], 1, NodePhase.FAILED, "boom"),
        ("OnError", [ERRORED, OK], 2, NodePhase.SUCCEEDED, "fine"),
        ("Always", [ERRORED, FAILED, OK], 3, NodePhase.SUCCEEDED, "fine"),
        ("OnTransientError", [FAILED], 1, NodePhase.FAILED, "boom"),
    ],
)
def test_retry_policies(scripted, tmp_path, policy, replies, tries, phase, message):
    server = scripted(replies)
    status = run_engine(
        workflow_from(flow(f"{{limit: 3, retryPolicy: {policy}}}"), tmp_path=tmp_path), [server.endpoint()]
    )
    retry = by_name(status)["wf[0].call"]
    assert len(attempts(status)) == tries
    assert (retry.phase, retry.message) == (phase, message)


def test_on_transient_error_retries_what_argo_takes_for_transient(scripted, tmp_path):
    reset = (200, {"node": {"phase": "Error", "message": "read tcp 10.0.0.1: connection reset by peer"}})
    server = scripted([reset, OK])
    status = run_engine(
        workflow_from(flow("{limit: 1, retryPolicy: OnTransientError}"), tmp_path=tmp_path),
        [server.endpoint()],
    )
    assert [a.phase for a in attempts(status)] == [NodePhase.ERROR, NodePhase.SUCCEEDED]


def test_backoff_waits_through_the_engine_sleep_divided_by_the_speed(scripted, tmp_path):
    server = scripted([FAILED, FAILED, FAILED, OK])
    sleep = FakeSleep()
    changes: list[str] = []
    status = run_engine(
        workflow_from(
            flow('{limit: 3, backoff: {duration: "10s", factor: 2, cap: "30s"}}'), tmp_path=tmp_path
        ),
        [server.endpoint()],
        engine_sleep=sleep,
        speed=5,
        on_change=lambda node: changes.append(node.message) if node.type == NodeType.RETRY else None,
    )
    assert status.phase == NodePhase.SUCCEEDED
    assert sleep.delays == [2.0, 4.0, 6.0]  # 10 s, 20 s, then 40 s capped at 30 s, five times faster
    assert [m for m in changes if m.startswith("Backoff")] == [
        "Backoff for 10 seconds",
        "Backoff for 20 seconds",
        "Backoff for 30 seconds",
    ]


def test_max_duration_stops_the_retries(scripted, tmp_path):
    server = scripted([FAILED])
    status = run_engine(
        workflow_from(flow('{limit: 5, backoff: {duration: "1m", maxDuration: "90s"}}'), tmp_path=tmp_path),
        [server.endpoint()],
        engine_sleep=FakeSleep(),
    )
    retry = by_name(status)["wf[0].call"]
    assert len(attempts(status)) == 2
    assert (retry.phase, retry.message) == (NodePhase.FAILED, "Backoff would exceed max duration limit")


def test_the_workflow_retry_strategy_applies_to_templates_without_one(scripted, tmp_path):
    server = scripted([FAILED, OK])
    text = (
        HEAD
        + "  retryStrategy: {limit: 1}\n  templates:\n"
        + "    - name: main\n      plugin: {scripted: {}}\n"
    )
    status = run_engine(workflow_from(text, tmp_path=tmp_path), [server.endpoint()])
    root = by_name(status)["wf"]
    assert (root.type, root.phase) == (NodeType.RETRY, NodePhase.SUCCEEDED)
    assert [status.nodes[c].name for c in root.children] == ["wf(0)", "wf(1)"]


def test_a_retried_steps_template_retries_the_whole_steps(scripted, tmp_path):
    server = scripted([FAILED, OK])
    text = (
        HEAD
        + """\
  templates:
    - name: main
      retryStrategy: {limit: 1}
      steps: [[{name: one, template: one}]]
    - name: one
      plugin: {scripted: {}}
"""
    )
    status = run_engine(workflow_from(text, tmp_path=tmp_path), [server.endpoint()])
    nodes = by_name(status)
    assert nodes["wf"].type == NodeType.RETRY and nodes["wf"].phase == NodePhase.SUCCEEDED
    assert nodes["wf(0)"].type == NodeType.STEPS and nodes["wf(0)"].phase == NodePhase.FAILED
    assert nodes["wf(1)[0].one"].phase == NodePhase.SUCCEEDED


def test_retry_expression_decides(scripted, tmp_path):
    server = scripted([FAILED])
    status = run_engine(
        workflow_from(flow("{limit: 5, expression: 'asInt(retries) < 1'}"), tmp_path=tmp_path),
        [server.endpoint()],
    )
    retry = by_name(status)["wf[0].call"]
    assert len(attempts(status)) == 2
    assert retry.message == "retryStrategy.expression evaluated to false"


def test_a_bad_backoff_duration_errors_the_retry_node(scripted, tmp_path):
    server = scripted([FAILED])
    status = run_engine(
        workflow_from(flow('{limit: 2, backoff: {duration: "{{workflow.name}}"}}'), tmp_path=tmp_path),
        [server.endpoint()],
    )
    retry = by_name(status)["wf[0].call"]
    assert retry.phase == NodePhase.ERROR
    assert retry.message.startswith("unable to parse wf as a duration")


def attempt(phase: NodePhase, *, start: float = 0.0, end: float = 1.0, message: str = "") -> Node:
    node = Node("i", "n", "n", NodeType.PLUGIN, "t", "", phase, message, started_at=start, finished_at=end)
    node.outputs = Outputs()
    return node


def test_decide_follows_argos_order():
    never = lambda expression, scope: True  # noqa: E731
    elapsed = lambda t: 0.0  # noqa: E731
    ok = decide({}, [attempt(NodePhase.SUCCEEDED)], elapsed=elapsed, waited=False, evaluate=never)
    assert ok == Decision(finish=True, phase=NodePhase.SUCCEEDED)
    # Without a limit Argo retries for ever; a backoff needs a limit to be waited.
    assert (
        decide({}, [attempt(NodePhase.FAILED)], elapsed=elapsed, waited=False, evaluate=never) == Decision()
    )
    strategy: dict[str, Any] = {"backoff": {"duration": "5"}}
    assert (
        decide(strategy, [attempt(NodePhase.FAILED)], elapsed=elapsed, waited=False, evaluate=never)
        == Decision()
    )
    strategy["limit"] = "2"
    assert decide(
        strategy, [attempt(NodePhase.FAILED)], elapsed=elapsed, waited=False, evaluate=never
    ) == Decision(wait=5.0, message="Backoff for 5 seconds")
    with pytest.raises(SetupError, match="Sometimes is not a valid RetryPolicy"):
        decide(
            {"retryPolicy": "Sometimes"},
            [attempt(NodePhase.FAILED)],
            elapsed=elapsed,
            waited=False,
            evaluate=never,
        )
    with pytest.raises(SetupError, match="no base duration specified for retryStrategy"):
        decide(
            {"backoff": {"factor": 2}},
            [attempt(NodePhase.FAILED)],
            elapsed=elapsed,
            waited=False,
            evaluate=never,
        )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "0 seconds"),
        (1, "1 second"),
        (42, "42 seconds"),
        (90, "1 minute 30 seconds"),
        (7260, "2 hours 1 minutes"),
    ],
)
def test_humanize_words_durations_as_argo(seconds, text):
    assert duration(seconds) == text


def test_durations_and_transient_errors(monkeypatch):
    assert parse_duration_string("30") == 30.0
    assert parse_duration_string("1m30s") == 90.0
    with pytest.raises(SetupError, match="unable to parse soon as a duration"):
        parse_duration_string("soon")
    assert is_transient('Post "http://x": dial tcp: connect: connection refused')
    assert not is_transient("pipeline not found")
    monkeypatch.setenv("TRANSIENT_ERROR_PATTERN", "throttl")
    assert is_transient("request throttled")
