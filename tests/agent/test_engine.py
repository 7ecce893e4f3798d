"""The engine running workflows against real plugin servers: steps, DAGs, parameters, failures, deadlines."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from argoplug import Plugin, Result, Task
from argoplug.agent.checks import check
from argoplug.agent.client import PluginEndpoint
from argoplug.agent.engine import DEADLINE_MESSAGE
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus, node_id
from argoplug.agent.report import render_report
from argoplug.agent.workflow import load_documents, resolve_workflow

from .agent_test_plugins import echo, poll
from .helpers import EXAMPLES, FakeSleep, run_engine, workflow_from

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n"

SAY = """\
    - name: say
      inputs: {parameters: [{name: text}]}
      outputs: {parameters: [{name: said}]}
      plugin: {echo: {said: "{{inputs.parameters.text}}"}}
"""


def recorder(key: str) -> tuple[Plugin[Any], list[Task]]:
    """A plugin that succeeds with its arguments as outputs and records every task it gets."""
    plugin = Plugin(key)
    tasks: list[Task] = []

    @plugin.handler
    def record(task: Task, args: dict[str, Any]) -> Result:
        tasks.append(task)
        return Result.succeeded(outputs=args)

    return plugin, tasks


def endpoint(server: Any) -> PluginEndpoint:
    return PluginEndpoint(server.url, server.token)


def by_name(status: WorkflowStatus) -> dict[str, Node]:
    return {node.name: node for node in status.nodes.values()}


def test_step_groups_run_in_order_and_their_steps_in_parallel(live_server, tmp_path):
    barrier = threading.Barrier(2, timeout=5)
    gate = Plugin("gate")

    @gate.handler
    def meet(task: Task, args: dict[str, Any]) -> Result:
        barrier.wait()  # both steps of the group must be in flight at once, or this breaks after 5 s
        return Result.succeeded()

    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: left, template: gate}
          - {name: right, template: gate}
        - - {name: after, template: say, arguments: {parameters: [{name: text, value: "x"}]}}
    - name: gate
      plugin: {gate: {}}
"""
        + SAY,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([gate, echo]))])
    nodes = by_name(status)
    assert status.phase == NodePhase.SUCCEEDED
    assert nodes["wf[0].left"].phase == nodes["wf[0].right"].phase == NodePhase.SUCCEEDED
    group_end = max(nodes["wf[0].left"].finished_at or 0, nodes["wf[0].right"].finished_at or 0)
    assert (nodes["wf[1].after"].started_at or 0) >= group_end
    assert nodes["wf[0]"].type == NodeType.STEP_GROUP and nodes["wf[0]"].children == [
        nodes["wf[0].left"].id,
        nodes["wf[0].right"].id,
    ]


def test_outputs_of_steps_become_inputs_of_later_steps_and_p_overrides(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  arguments: {parameters: [{name: who, value: world}]}
  templates:
    - name: main
      steps:
        - - name: a
            template: say
            arguments: {parameters: [{name: text, value: "hi {{workflow.parameters.who}}"}]}
        - - name: b
            template: say
            arguments: {parameters: [{name: text, value: "{{steps.a.outputs.parameters.said}}!"}]}
"""
        + SAY,
        parameters={"who": "there"},
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    b = by_name(status)["wf[1].b"]
    assert b.inputs == {"text": "hi there!"}
    assert b.outputs is not None and b.outputs.parameters[0].value == "hi there!"


DIAMOND = (
    HEAD
    + """\
  entrypoint: diamond
  templates:
    - name: diamond
      dag:
        tasks:
          - {name: A, template: say, arguments: {parameters: [{name: text, value: a}]}}
          - {name: B, dependencies: [A], template: say,
             arguments: {parameters: [{name: text, value: "{{tasks.A.outputs.parameters.said}}b"}]}}
          - {name: C, dependencies: [A], template: say, arguments: {parameters: [{name: text, value: c}]}}
          - name: D
            dependencies: [B, C]
            template: say
            arguments:
              parameters:
                - name: text
                  value: "{{tasks.B.outputs.parameters.said}}{{tasks.C.outputs.parameters.said}}d"
"""
    + SAY
)


def test_a_dag_runs_tasks_when_their_dependencies_succeeded(live_server, tmp_path):
    status = run_engine(workflow_from(DIAMOND, tmp_path=tmp_path), [endpoint(live_server([echo]))])
    nodes = by_name(status)
    assert status.phase == NodePhase.SUCCEEDED
    a, b, c, d = (nodes[f"wf.{t}"] for t in "ABCD")
    assert (b.started_at or 0) >= (a.finished_at or 0) and (c.started_at or 0) >= (a.finished_at or 0)
    assert (d.started_at or 0) >= max(b.finished_at or 0, c.finished_at or 0)
    assert d.inputs == {"text": "abcd"}
    assert {n.boundary_id for n in (a, b, c, d)} == {nodes["wf"].id}


def test_a_failed_dependency_omits_its_dependents_and_fails_the_dag(live_server, tmp_path):
    text = DIAMOND.replace(
        "- {name: A, template: say, arguments: {parameters: [{name: text, value: a}]}}",
        "- {name: A, template: boom}\n"
        "          - {name: E, template: say, arguments: {parameters: [{name: text, value: e}]}}",
    ).replace('value: "{{tasks.A.outputs.parameters.said}}b"', "value: b")
    text += "    - name: boom\n      plugin: {fail: {message: it broke}}\n"
    from .agent_test_plugins import fail

    status = run_engine(workflow_from(text, tmp_path=tmp_path), [endpoint(live_server([echo, fail]))])
    nodes = by_name(status)
    assert (nodes["wf.A"].phase, nodes["wf.A"].message) == (NodePhase.FAILED, "it broke")
    for name in ("wf.B", "wf.C", "wf.D"):
        assert (nodes[name].phase, nodes[name].message) == (
            NodePhase.OMITTED,
            "omitted: depends condition not met",
        )
    assert nodes["wf.E"].phase == NodePhase.SUCCEEDED  # an independent branch still runs
    assert nodes["wf"].phase == NodePhase.FAILED
    assert status.phase == NodePhase.FAILED


def test_a_failed_step_fails_its_group_and_stops_the_steps(live_server, tmp_path):
    from .agent_test_plugins import fail

    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: ok, template: say, arguments: {parameters: [{name: text, value: x}]}}
          - {name: bad, template: boom}
        - - {name: never, template: say, arguments: {parameters: [{name: text, value: y}]}}
    - name: boom
      plugin: {fail: {message: nope}}
"""
        + SAY,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo, fail]))])
    nodes = by_name(status)
    bad_id = nodes["wf[0].bad"].id
    assert nodes["wf[0].ok"].phase == NodePhase.SUCCEEDED
    assert (nodes["wf[0]"].phase, nodes["wf[0]"].message) == (NodePhase.FAILED, f"child '{bad_id}' failed")
    assert (status.phase, status.message) == (NodePhase.FAILED, f"child '{bad_id}' failed")
    assert "wf[1].never" not in nodes and "wf[1]" not in nodes


def test_a_container_template_ends_as_error_and_fails_the_steps(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: pod, template: whalesay}
          - {name: plugin, template: say, arguments: {parameters: [{name: text, value: x}]}}
    - name: whalesay
      container: {image: docker/whalesay, command: [cowsay, hi]}
"""
        + SAY,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    pod = by_name(status)["wf[0].pod"]
    assert pod.type == NodeType.POD and pod.phase == NodePhase.ERROR
    assert "argoplug's local agent cannot run container templates (template 'whalesay')" in pod.message
    assert by_name(status)["wf[0].plugin"].phase == NodePhase.SUCCEEDED
    assert status.phase == NodePhase.FAILED


def test_the_sagemaker_example_resolves_and_sends_what_argo_sends(live_server):
    aws = Plugin("awf-aws-plugin")
    seen: list[Task] = []

    @aws.handler
    def sagemaker(task: Task, args: dict[str, Any]) -> Result:
        seen.append(task)
        if args["action"] == "execute":
            where = f"{args['region_name']}:{args['account_id']}"
            arn = f"arn:aws:sagemaker:{where}:pipeline/{args['pipeline_name']}/execution/x1"
            return Result.succeeded("started", outputs={"execution-arn": arn})
        return Result.succeeded("valid")

    workflow = resolve_workflow(
        load_documents([EXAMPLES / "workflow.yaml", EXAMPLES / "workflow-template.yaml"])
    )
    check(workflow)
    status = run_engine(workflow, [endpoint(live_server([aws]))])
    assert status.phase == NodePhase.SUCCEEDED
    assert [t.template.name for t in seen] == ["validate_pipeline", "execute_pipeline"]
    assert seen[0].template.plugin == {
        "awf-aws-plugin": {
            "action": "validate",
            "service": "amazon_sagemaker_pipelines",
            "account_id": "100000000002",
            "region_name": "us-west-2",
            "pipeline_name": "MyPipeline",
        }
    }
    assert {(t.workflow_name, t.namespace, t.workflow_uid) for t in seen} == {
        (workflow.name, "argo", workflow.uid)
    }
    arn = "arn:aws:sagemaker:us-west-2:100000000002:pipeline/MyPipeline/execution/x1"
    assert arn in render_report(status).plain


def test_the_request_is_the_substituted_template(scripted, tmp_path):
    server = scripted([(200, {"node": {"phase": "Succeeded"}})])
    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      steps: [[{name: call, template: call, arguments: {parameters: [{name: x, value: "1"}]}}]]
    - name: call
      inputs: {parameters: [{name: x}, {name: y, default: "2"}]}
      plugin:
        scripted:
          id: "{{workflow.name}}/{{ node.name }}/{{retries}}/{{workflow.uid}}"
          sum: "{{inputs.parameters.x}}+{{inputs.parameters.y}}"
          untouched: "{{something.else}}"
""",
        tmp_path=tmp_path,
    )
    run_engine(workflow, [server.endpoint()])
    (_, body) = server.requests[0]
    assert body["workflow"] == {"metadata": {"name": "wf", "namespace": "argo", "uid": workflow.uid}}
    template = body["template"]
    assert template["plugin"]["scripted"] == {
        # Without a retryStrategy Argo sets no `retries` and leaves the tag as written (check warns).
        "id": f"wf/wf[0].call/{{{{retries}}}}/{workflow.uid}",
        "sum": "1+2",
        "untouched": "{{something.else}}",
    }
    assert template["inputs"]["parameters"] == [
        {"name": "x", "value": "1"},
        {"name": "y", "default": "2", "value": "2"},
    ]
    assert template["outputs"] == {} and template["metadata"] == {}


def test_requeue_is_honoured_without_waiting(live_server, tmp_path):
    workflow = workflow_from(
        HEAD + "  entrypoint: main\n  templates:\n    - name: main\n      plugin: {poll: {polls: 3}}\n",
        tmp_path=tmp_path,
    )
    sleep = FakeSleep()
    status = run_engine(workflow, [endpoint(live_server([poll]))], sleep=sleep)
    root = by_name(status)["wf"]
    assert (root.phase, root.message) == (NodePhase.SUCCEEDED, "done after 3 calls")
    assert sleep.delays == [30.0, 30.0]


def test_a_404_disables_the_plugin_for_later_tasks(live_server, scripted, tmp_path):
    missing = scripted([(404, "no such route")])
    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: one, template: say, arguments: {parameters: [{name: text, value: "1"}]}}
        - - {name: two, template: say, arguments: {parameters: [{name: text, value: "2"}]}}
        - - {name: three, template: say, arguments: {parameters: [{name: text, value: "3"}]}}
"""
        + SAY,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [missing.endpoint(), endpoint(live_server([echo]))])
    assert status.phase == NodePhase.SUCCEEDED
    assert len(missing.requests) == 1


def test_no_plugin_taking_the_template_fails_the_node(live_server, tmp_path):
    workflow = workflow_from(
        HEAD + "  entrypoint: main\n  templates:\n    - name: main\n      plugin: {nobody: {}}\n",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    assert status.phase == NodePhase.FAILED
    assert status.message.startswith("no plugin executed the template (plugin key 'nobody' asked; ")


def test_an_input_not_supplied_errors_the_node(live_server, tmp_path):
    # `check` refuses it before the run, as argo lint does (test_submit_from.py); the engine, given it
    # anyway, errors the node as the controller's ProcessArgs does.
    path = tmp_path / "workflow.yaml"
    path.write_text(
        HEAD
        + "  entrypoint: main\n  templates:\n    - name: main\n      steps: [[{name: s, template: say}]]\n"
        + SAY
    )
    workflow = resolve_workflow(load_documents([path]))
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    node = by_name(status)["wf[0].s"]
    assert (node.phase, node.message) == (NodePhase.ERROR, "inputs.parameters.text was not supplied")
    assert status.phase == NodePhase.FAILED


def test_the_deadline_fails_a_hanging_node_and_the_workflow(scripted, tmp_path):
    server = scripted([(200, {"node": {"phase": "Running", "message": "started"}})])
    workflow = workflow_from(
        HEAD
        + "  entrypoint: main\n  activeDeadlineSeconds: 5\n  templates:\n"
        + "    - name: main\n      steps: [[{name: hang, template: hang}]]\n"
        + "    - name: hang\n      plugin: {scripted: {}}\n",
        tmp_path=tmp_path,
    )
    hanging = asyncio.Event()
    asked: list[float] = []

    def on_change(node: Node) -> None:
        if node.hangs:
            hanging.set()

    async def deadline(seconds: float) -> None:
        asked.append(seconds)
        await hanging.wait()  # the deadline "passes" once the node hangs: no real waiting

    status = run_engine(workflow, [server.endpoint()], engine_sleep=deadline, on_change=on_change)
    nodes = by_name(status)
    assert asked == [5]
    assert len(server.requests) == 1
    for name in ("wf", "wf[0]", "wf[0].hang"):
        assert (nodes[name].phase, nodes[name].message) == (NodePhase.FAILED, DEADLINE_MESSAGE)
    assert (status.phase, status.message) == (NodePhase.FAILED, DEADLINE_MESSAGE)
    # The report still says why the node never finished.
    assert nodes["wf[0].hang"].hangs and not nodes["wf[0]"].hangs
    assert (
        f"{DEADLINE_MESSAGE} (no requeue: Argo's agent never calls again; the workflow's "
        "activeDeadlineSeconds ends it)" in render_report(status).plain
    )


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_a_failure_sent_with_a_requeue_is_kept_and_the_report_warns(scripted, tmp_path, phase):
    server = scripted([(200, {"node": {"phase": phase, "message": "boom"}, "requeue": "30s"})])
    workflow = workflow_from(
        HEAD
        + "  entrypoint: main\n  templates:\n"
        + "    - name: main\n      steps: [[{name: call, template: call}]]\n"
        + "    - name: call\n      plugin: {scripted: {}}\n",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [server.endpoint()])
    node = by_name(status)["wf[0].call"]
    assert (node.phase, node.message) == (NodePhase(phase), "boom")
    assert len(server.requests) == 1
    warning = (
        f"plugin 'scripted' answered {phase} with requeue \"30s\": Argo's agent would call it again; a "
        "terminal phase must not carry a requeue (docs/contract.md §2.5)"
    )
    assert node.warning == warning
    row = next(line for line in render_report(status).plain.splitlines() if "call" in line and "boom" in line)
    assert row.endswith(f"boom [warning: {warning}]")


def test_nested_templates_pass_outputs_up(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: inner, template: inner}
        - - name: use
            template: say
            arguments: {parameters: [{name: text, value: "{{steps.inner.outputs.parameters.out}}"}]}
    - name: inner
      outputs: {parameters: [{name: out, valueFrom: {parameter: "{{tasks.t.outputs.parameters.said}}"}}]}
      dag:
        tasks:
          - {name: t, template: say, arguments: {parameters: [{name: text, value: deep}]}}
"""
        + SAY,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    assert status.phase == NodePhase.SUCCEEDED
    assert by_name(status)["wf[1].use"].inputs == {"text": "deep"}


def test_node_ids_are_argos():
    assert node_id("wf", "wf") == "wf"
    assert node_id("wf", "a") == "wf-3826002220"  # FNV-1a 32 of "a" is 0xe40c292c


QUIET = """\
    - name: quiet
      outputs: {parameters: [{name: x}]}
      plugin: {echo: {}}
"""


def test_an_output_the_plugin_did_not_return_errors_the_step_that_needs_it(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: a, template: quiet}
        - - name: b
            template: say
            arguments: {parameters: [{name: text, value: "{{steps.a.outputs.parameters.x}}"}]}
        - - {name: c, template: quiet}
"""
        + QUIET
        + SAY,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    problem = "failed to resolve {{steps.a.outputs.parameters.x}}"
    assert (nodes["wf[1].b"].phase, nodes["wf[1].b"].message) == (NodePhase.ERROR, problem)
    assert nodes["wf[1]"].message == f"step group deemed errored due to child wf[1].b error: {problem}"
    assert (status.phase, status.message) == (NodePhase.FAILED, nodes["wf[1]"].message)
    assert "wf[2].c" not in nodes


def test_an_output_the_plugin_did_not_return_errors_the_task_that_needs_it(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      dag:
        tasks:
          - {name: a, template: quiet}
          - name: b
            dependencies: [a]
            template: say
            arguments: {parameters: [{name: text, value: "{{tasks.a.outputs.parameters.x}}"}]}
          - {name: c, dependencies: [b], template: quiet}
"""
        + QUIET
        + SAY,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    assert (nodes["wf.b"].phase, nodes["wf.b"].message) == (
        NodePhase.ERROR,
        "failed to resolve {{tasks.a.outputs.parameters.x}}",
    )
    assert nodes["wf.c"].phase == NodePhase.OMITTED
    assert status.phase == NodePhase.ERROR  # the DAG takes its failed branch's phase


def test_the_node_graph_links_nodes_as_argo_does(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: a, template: say, arguments: {parameters: [{name: text, value: a}]}}
          - {name: b, template: inner}
        - - {name: c, template: say, arguments: {parameters: [{name: text, value: c}]}}
    - name: inner
      dag:
        tasks:
          - {name: x, template: say, arguments: {parameters: [{name: text, value: x}]}}
          - {name: y, dependencies: [x], template: say, arguments: {parameters: [{name: text, value: y}]}}
"""
        + SAY,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    ids = {name: node.id for name, node in nodes.items()}
    assert nodes["wf"].children == [ids["wf[0]"]]
    assert nodes["wf[0]"].children == [ids["wf[0].a"], ids["wf[0].b"]]
    # The next group hangs off the outbound nodes of this one: `a` itself, and the DAG's target `y`.
    assert nodes["wf[0].a"].children == [ids["wf[1]"]]
    assert nodes["wf[0].b.y"].children == [ids["wf[1]"]]
    assert nodes["wf[0].b"].children == [ids["wf[0].b.x"]]
    assert nodes["wf[0].b.x"].children == [ids["wf[0].b.y"]]
    assert nodes["wf[0].b"].outbound_nodes == [ids["wf[0].b.y"]]
    assert nodes["wf"].outbound_nodes == [ids["wf[1].c"]]
    assert [nodes[n].display_name for n in ("wf[0]", "wf[0].b.y", "wf[1].c")] == ["[0]", "y", "c"]
