"""The workflow using every feature of issue 4 part 3 runs, against real plugin and HTTP servers."""

from __future__ import annotations

import json

from argoplug.agent.client import PluginEndpoint
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus

from .agent_test_plugins import plugins
from .helpers import WORKFLOWS, FakeSleep, PlainHttpServer, run_engine, workflow_files


def by_display(status: WorkflowStatus) -> dict[str, Node]:
    return {node.display_name: node for node in status.nodes.values()}


def test_the_every_feature_workflow_runs_as_argo_would(live_server):
    server = live_server(plugins)
    messages: list[tuple[str, str]] = []
    with PlainHttpServer({"/status": (200, "all good")}) as web:
        workflow = workflow_files(WORKFLOWS / "every-feature.yaml", parameters={"base-url": web.url})
        sleep = FakeSleep(never=[300.0])  # the deadline (600 s at speed 2) never comes
        status = run_engine(
            workflow,
            [PluginEndpoint(server.url, server.token)],
            engine_sleep=sleep,
            http=True,
            speed=2,
            on_change=lambda node: messages.append((node.display_name, node.message)),
        )
    nodes = by_display(status)
    assert (status.phase, status.message) == (NodePhase.SUCCEEDED, "")

    # Loops fanned out, named as Argo names them; `when` skipped its step.
    for name in ("fan-out(0:red)", "fan-out(1:green)", "sequence(0:n01)", "sequence(2:n03)"):
        assert nodes[name].phase == NodePhase.SUCCEEDED
    assert nodes["sizes(1:name:large,size:2)"].inputs == {"value": "large=2"}
    assert (nodes["never"].type, nodes["never"].phase, nodes["never"].message) == (
        NodeType.SKIPPED,
        NodePhase.SKIPPED,
        "when 'loud == quiet' evaluated false",
    )

    # The retried step failed once, waited its backoff (2 s at speed 2), then succeeded; its exit handler ran.
    flaky = nodes["flaky"]
    assert (flaky.type, flaky.phase) == (NodeType.RETRY, NodePhase.SUCCEEDED)
    attempts = [status.nodes[i] for i in flaky.children]
    assert [(a.display_name, a.phase, a.retried) for a in attempts[:2]] == [
        ("flaky(0)", NodePhase.FAILED, True),
        ("flaky(1)", NodePhase.SUCCEEDED, True),
    ]
    assert ("flaky", "Backoff for 2 seconds") in messages
    assert attempts[2].display_name == "flaky.onExit" and attempts[2].hooked
    assert attempts[2].phase == NodePhase.SUCCEEDED

    # The DAG: a TaskGroup over the loop, a templateRef resolved in its WorkflowTemplate, continueOn, depends.
    paint = nodes["paint"]
    assert (paint.type, paint.phase, len(paint.children)) == (NodeType.TASK_GROUP, NodePhase.SUCCEEDED, 2)
    check = nodes["check"]
    assert (check.template_name, check.template_ref, check.template_scope) == (
        "",
        {"name": "shared-library", "template": "shout"},
        "namespaced/shared-library",
    )
    assert (nodes["upper"].template_name, nodes["upper"].template_scope) == (
        "upper",
        "namespaced/shared-library",
    )
    assert nodes["fail-softly"].phase == NodePhase.FAILED
    assert nodes["fallback"].phase == NodePhase.SUCCEEDED
    assert (nodes["unused"].phase, nodes["unused"].message) == (
        NodePhase.OMITTED,
        "omitted: depends condition not met",
    )
    assert nodes["pipeline"].phase == NodePhase.SUCCEEDED

    # The suspend waited 30 s at speed 2; the HTTP template called the server.
    assert sleep.delays == [300.0, 1.0, 15.0]
    assert (nodes["wait"].type, nodes["wait"].phase) == (NodeType.SUSPEND, NodePhase.SUCCEEDED)
    assert nodes["fetch"].type == NodeType.HTTP
    assert [(method, path) for method, path, _, _ in web.requests] == [("GET", "/status")]

    # Outputs went from step to step and task to task: aggregated loops, results, the global output.
    report = nodes["report"]
    assert report.inputs == {
        "value": '["RED","GREEN"]+recovered http=all good palette=["red","green"] attempt=1 '
        'sequence=["n01","n02","n03"]'
    }
    assert status.outputs is not None
    assert [(p.name, p.value) for p in status.outputs.parameters] == [("palette", '["red","green"]')]

    # The exit handler ran after the entrypoint and saw the workflow's status.
    exit_node = nodes[f"{status.name}.onExit"]
    assert exit_node.hooked and exit_node.boundary_id == ""
    assert nodes["notify"].inputs == {"value": "Succeeded"}


def test_the_attempts_of_a_retried_step_are_told_apart_by_retries(live_server):
    # The flaky step's attempts are told apart by `{{retries}}`: what reached the plugin shows it.
    seen: list[dict[str, str]] = []
    from argoplug import Plugin, Result

    flaky = Plugin("flaky")

    @flaky.handler
    def record(task, args):  # type: ignore[no-untyped-def]
        seen.append(dict(args))
        if len(seen) == 1:
            return Result.failed("first attempt fails")
        return Result.succeeded(outputs={"attempt": args["attempt"]})

    others = [p for p in plugins if p.key != "flaky"]
    server = live_server([flaky, *others])
    with PlainHttpServer({"/status": (200, json.dumps({"ok": True}))}) as web:
        workflow = workflow_files(WORKFLOWS / "every-feature.yaml", parameters={"base-url": web.url})
        status = run_engine(
            workflow,
            [PluginEndpoint(server.url, server.token)],
            engine_sleep=FakeSleep(never=[600.0]),
            http=True,
        )
    assert status.phase == NodePhase.SUCCEEDED
    assert [args["attempt"] for args in seen] == ["0", "1"]
    assert by_display(status)["fetch"].outputs is not None
