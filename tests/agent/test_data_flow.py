"""What flows between nodes: `outputs.result`, `globalName`, expressions, HTTP templates and templateRefs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from argoplug.agent.client import PluginEndpoint
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus
from argoplug.agent.workflow import WorkflowError, load_documents, resolve_workflow

from .agent_test_plugins import echo, emit
from .helpers import PlainHttpServer, run_engine, workflow_files, workflow_from

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n  entrypoint: main\n"


def endpoint(server: Any) -> PluginEndpoint:
    return PluginEndpoint(server.url, server.token)


def by_name(status: WorkflowStatus) -> dict[str, Node]:
    return {node.name: node for node in status.nodes.values()}


def test_results_of_plugin_nodes_reach_steps_and_tasks(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      steps:
        - - {name: make, template: make}
        - - name: use
            template: use
            arguments: {parameters: [{name: v, value: "{{steps.make.outputs.result}}"}]}
        - - {name: d, template: d}
    - name: d
      dag:
        tasks:
          - {name: make, template: make}
          - {name: use, dependencies: [make], template: use,
             arguments: {parameters: [{name: v, value: "{{tasks.make.outputs.result}}!"}]}}
    - name: make
      plugin: {emit: {result: made}}
    - name: use
      inputs: {parameters: [{name: v}]}
      plugin: {echo: {v: "{{inputs.parameters.v}}"}}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo, emit]))])
    nodes = by_name(status)
    assert nodes["wf[1].use"].inputs == {"v": "made"}
    assert nodes["wf[2].d.use"].inputs == {"v": "made!"}


def test_a_global_output_is_usable_later_and_is_the_workflows_output(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      steps:
        - - {name: make, template: make}
        - - {name: use, template: use}
    - name: make
      outputs: {parameters: [{name: colour, globalName: favourite}]}
      plugin: {echo: {colour: blue}}
    - name: use
      plugin: {echo: {v: "{{workflow.outputs.parameters.favourite}}"}}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    assert status.phase == NodePhase.SUCCEEDED
    assert nodes["wf[1].use"].outputs is not None
    assert nodes["wf[1].use"].outputs.parameters[0].value == "blue"
    assert status.outputs is not None and [(p.name, p.value) for p in status.outputs.parameters] == [
        ("favourite", "blue")
    ]


def test_a_global_name_the_plugin_does_not_echo_is_not_set_and_the_node_says_so(scripted, tmp_path):
    server = scripted(
        [(200, {"node": {"phase": "Succeeded", "outputs": {"parameters": [{"name": "c", "value": "x"}]}}})]
    )
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      steps: [[{name: make, template: make}]]
    - name: make
      outputs: {parameters: [{name: c, globalName: g}]}
      plugin: {scripted: {}}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [server.endpoint()])
    assert status.outputs is None
    assert "declares a globalName for c (globalName g) but the plugin's reply did not echo it" in (
        by_name(status)["wf[0].make"].warning
    )


def test_expressions_are_evaluated_in_arguments_plugin_blocks_and_when(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  arguments: {parameters: [{name: n, value: "3"}]}
  templates:
    - name: main
      steps:
        - - name: calc
            template: use
            arguments: {parameters: [{name: v, value: "{{=asInt(workflow.parameters.n) * 2}}"}]}
        - - name: cond
            template: use
            when: "{{=asInt(steps.calc.outputs.parameters.v) > 5}}"
            arguments: {parameters: [{name: v, value: "{{=sprig.trim('  x  ')}}"}]}
    - name: use
      inputs: {parameters: [{name: v}]}
      outputs: {parameters: [{name: v}]}
      plugin: {echo: {v: "{{inputs.parameters.v}}", upper: "{{=sprig.upper(inputs.parameters.v)}}"}}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    assert nodes["wf[0].calc"].inputs == {"v": "6"}
    assert nodes["wf[1].cond"].phase == NodePhase.SUCCEEDED
    assert nodes["wf[1].cond"].inputs == {"v": "x"}
    assert nodes["wf[1].cond"].outputs is not None
    assert {p.name: p.value for p in nodes["wf[1].cond"].outputs.parameters}["upper"] == "X"


def test_an_expression_that_cannot_be_evaluated_errors_the_node(live_server, tmp_path):
    workflow = workflow_from(
        HEAD + "  templates:\n    - name: main\n      plugin: {echo: {v: '{{=nosuch.thing + 1}}'}}\n",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    root = by_name(status)["wf"]
    assert root.phase == NodePhase.ERROR
    assert root.message.startswith("failed to evaluate expression {{=nosuch.thing + 1}}:")


HTTP = """\
    - name: call
      inputs: {parameters: [{name: url}]}
      http:
        url: "{{inputs.parameters.url}}"
        method: POST
        body: '{"n": "{{=len(inputs.parameters.url) > 0}}"}'
        headers: [{name: X-Node, value: "{{node.name}}"}]
"""


def test_an_http_template_runs_through_the_http_runner_and_gives_its_result(live_server, tmp_path):
    with PlainHttpServer({"/hello": (200, "hi there")}) as web:
        workflow = workflow_from(
            HEAD
            + f"""\
  templates:
    - name: main
      steps:
        - - name: call
            template: call
            arguments: {{parameters: [{{name: url, value: "{web.url}/hello"}}]}}
        - - name: use
            template: use
            arguments: {{parameters: [{{name: v, value: "{{{{steps.call.outputs.result}}}}"}}]}}
    - name: use
      inputs: {{parameters: [{{name: v}}]}}
      plugin: {{echo: {{v: "{{{{inputs.parameters.v}}}}"}}}}
"""
            + HTTP,
            tmp_path=tmp_path,
        )
        status = run_engine(workflow, [endpoint(live_server([echo]))], http=True)
    nodes = by_name(status)
    call = nodes["wf[0].call"]
    assert (call.type, call.phase) == (NodeType.HTTP, NodePhase.SUCCEEDED)
    assert nodes["wf[1].use"].inputs == {"v": "hi there"}
    method, path, headers, body = web.requests[0]
    assert (method, path, body) == ("POST", "/hello", '{"n": "true"}')
    assert headers["X-Node"] == "wf[0].call"


def test_an_http_template_without_a_runner_errors_saying_how_to_run_it(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      steps:
        - - name: call
            template: call
            arguments: {parameters: [{name: url, value: "http://127.0.0.1:9"}]}
"""
        + HTTP,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    call = by_name(status)["wf[0].call"]
    assert call.phase == NodePhase.ERROR
    assert "template 'call' is an HTTP template and this run has no HTTP template runner" in call.message


LIBRARY = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
    - name: twice
      inputs: {parameters: [{name: v}]}
      outputs: {parameters: [{name: v, valueFrom: {parameter: "{{steps.one.outputs.parameters.v}}"}}]}
      steps:
        - - name: one
            template: inner
            arguments: {parameters: [{name: v, value: "{{inputs.parameters.v}}{{inputs.parameters.v}}"}]}
    - name: inner
      inputs: {parameters: [{name: v}]}
      outputs: {parameters: [{name: v}]}
      plugin: {echo: {v: "{{inputs.parameters.v}}"}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_template_ref_runs_in_its_workflow_templates_templates(live_server, tmp_path):
    main = write(
        tmp_path,
        "wf.yaml",
        HEAD
        + """\
  templates:
    - name: main
      steps:
        - - name: ref
            templateRef: {name: lib, template: twice}
            arguments: {parameters: [{name: v, value: ab}]}
        - - name: after
            template: inner
            arguments: {parameters: [{name: v, value: "{{steps.ref.outputs.parameters.v}}"}]}
    - name: inner
      inputs: {parameters: [{name: v}]}
      plugin: {echo: {local: "{{inputs.parameters.v}}"}}
""",
    )
    workflow = workflow_files(main, write(tmp_path, "lib.yaml", LIBRARY))
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    ref = nodes["wf[0].ref"]
    assert (ref.type, ref.template_name, ref.template_ref, ref.template_scope) == (
        NodeType.STEPS,
        "",
        {"name": "lib", "template": "twice"},
        "namespaced/lib",
    )
    inner = nodes["wf[0].ref[0].one"]
    assert inner.template_scope == "namespaced/lib" and inner.outputs is not None
    assert inner.outputs.parameters[0].name == "v"  # the library's `inner`, not the workflow's
    after = nodes["wf[1].after"]
    assert after.template_scope == "local/" and after.outputs is not None
    assert after.outputs.parameters[0].name == "local" and after.outputs.parameters[0].value == "abab"


def test_a_template_ref_to_a_template_not_loaded_is_refused_naming_it(tmp_path):
    main = write(
        tmp_path,
        "wf.yaml",
        HEAD
        + "  templates:\n    - name: main\n"
        + "      steps: [[{name: r, templateRef: {name: nope, template: t}}]]\n",
    )
    with pytest.raises(
        WorkflowError, match=r"templateRef: WorkflowTemplate 'nope' not found in the files given"
    ):
        workflow_files(main)
    workflow = resolve_workflow(load_documents([main, write(tmp_path, "lib.yaml", LIBRARY)]))
    with pytest.raises(WorkflowError, match="template missing not found in workflowtemplate lib"):
        workflow.resolve({"templateRef": {"name": "lib", "template": "missing"}})
