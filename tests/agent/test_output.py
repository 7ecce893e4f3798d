"""`-o json|yaml`: the final status as Argo holds it, checked against Argo's schema of WorkflowStatus."""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from typing import Any

import pytest
import yaml

from argoplug.agent.client import PluginEndpoint
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus, node_id
from argoplug.agent.output import render, rfc3339, status_document
from argoplug.protocol import Outputs, Parameter

from .agent_test_plugins import echo
from .helpers import run_engine, workflow_from

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@functools.cache
def _definitions() -> dict[str, Any]:
    text = importlib.resources.files("argoplug").joinpath("data/workflow-jsonschema.json").read_text("utf-8")
    schema = json.loads(text)
    definitions = copy.deepcopy(schema["definitions"])
    for definition in definitions.values():  # strict: a field Argo does not have is an error
        if "properties" in definition and "additionalProperties" not in definition:
            definition["additionalProperties"] = False
    # Go writes a zero metav1.Time as null (`finishedAt: null` on a running node); the schema says string.
    definitions["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["type"] = ["string", "null"]
    return definitions


def problems(kind: str, body: Any) -> list[str]:
    import jsonschema

    root = {"$ref": f"#/definitions/{kind}", "definitions": _definitions()}
    validator = jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(body)]


def assert_argo_shape(document: dict[str, Any]) -> None:
    assert set(document) == {"metadata", "status"}
    assert problems("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", document["metadata"]) == []
    assert problems("io.argoproj.workflow.v1alpha1.WorkflowStatus", document["status"]) == []


def node(
    status: WorkflowStatus,
    name: str,
    display: str,
    kind: NodeType,
    template: str,
    boundary: str,
    phase: NodePhase,
    start: float,
    end: float | None,
    parent: Node | None = None,
    **fields: Any,
) -> Node:
    new = Node(node_id(status.name, name), name, display, kind, template, boundary, phase, **fields)
    new.started_at, new.finished_at = T0 + start, (None if end is None else T0 + end)
    status.nodes[new.id] = new
    if parent is not None:
        parent.children.append(new.id)
    return new


def finished() -> WorkflowStatus:
    """A DAG: `a` succeeded with outputs, `b` failed, `c` omitted; the workflow failed."""
    status = WorkflowStatus("wf", "argo", "uid-1", {"who": "world"}, NodePhase.FAILED, "child 'b' failed")
    status.started_at, status.finished_at = T0, T0 + 65.7
    root = node(status, "wf", "wf", NodeType.DAG, "main", "", NodePhase.FAILED, 0, 65.7)
    outputs = Outputs(parameters=[Parameter(name="arn", value="arn:x", globalName="arn")], result="body")
    node(status, "wf.a", "a", NodeType.PLUGIN, "say", root.id, NodePhase.SUCCEEDED, 0.2, 1.9, root,
         inputs={"text": "hi"}, outputs=outputs)  # fmt: skip
    node(status, "wf.b", "b", NodeType.HTTP, "call", root.id, NodePhase.FAILED, 2, 3, root,
         message="received non-2xx response code: 404", outputs=Outputs(result="not found"))  # fmt: skip
    node(status, "wf.c", "c", NodeType.SKIPPED, "say", root.id, NodePhase.OMITTED, 3, 3, root,
         message="omitted: depends condition not met")  # fmt: skip
    return status


def test_the_document_has_argos_shape_nodes_by_id_and_times_in_rfc3339():
    status = finished()
    document = status_document(status)
    assert_argo_shape(document)
    assert document["metadata"] == {
        "name": "wf",
        "namespace": "argo",
        "uid": "uid-1",
        "labels": {"workflows.argoproj.io/completed": "true", "workflows.argoproj.io/phase": "Failed"},
    }
    body = document["status"]
    assert (body["phase"], body["message"], body["progress"]) == ("Failed", "child 'b' failed", "1/2")
    assert (body["startedAt"], body["finishedAt"]) == ("2023-11-14T22:13:20Z", "2023-11-14T22:14:25Z")
    assert body["conditions"] == [{"type": "Completed", "status": "True"}]
    assert list(body["nodes"]) == [n.id for n in status.nodes.values()]
    a_id = node_id("wf", "wf.a")
    assert body["nodes"][a_id] == {
        "id": a_id,
        "name": "wf.a",
        "displayName": "a",
        "type": "Plugin",
        "templateName": "say",
        "templateScope": "local/wf",
        "phase": "Succeeded",
        "boundaryID": "wf",
        "startedAt": "2023-11-14T22:13:20Z",
        "finishedAt": "2023-11-14T22:13:21Z",
        "progress": "1/1",
        "inputs": {"parameters": [{"name": "text", "value": "hi"}]},
        "outputs": {"parameters": [{"name": "arn", "value": "arn:x", "globalName": "arn"}], "result": "body"},
    }
    root = body["nodes"]["wf"]
    assert (root["type"], root["progress"], "boundaryID" in root) == ("DAG", "1/2", False)
    assert root["children"] == [a_id, node_id("wf", "wf.b"), node_id("wf", "wf.c")]
    b = body["nodes"][node_id("wf", "wf.b")]
    assert (b["type"], b["message"], b["outputs"], b["progress"]) == (
        "HTTP", "received non-2xx response code: 404", {"result": "not found"}, "0/1"
    )  # fmt: skip
    c = body["nodes"][node_id("wf", "wf.c")]
    assert "outputs" not in c and "children" not in c and "inputs" not in c and "progress" not in c


def test_a_running_workflow_has_null_finish_times_and_no_completed_condition():
    status = WorkflowStatus("wf", "argo", "u", {}, NodePhase.RUNNING)
    status.started_at = T0
    root = node(status, "wf", "wf", NodeType.STEPS, "main", "", NodePhase.RUNNING, 0, None)
    group = node(status, "wf[0]", "[0]", NodeType.STEP_GROUP, "main", root.id, NodePhase.RUNNING, 0, None)
    node(status, "wf[0].x", "x", NodeType.PLUGIN, "t", root.id, NodePhase.RUNNING, 0, None, group)
    document = status_document(status)
    assert_argo_shape(document)
    body = document["status"]
    assert (body["finishedAt"], "conditions" in body, body["progress"]) == (None, False, "0/1")
    assert document["metadata"]["labels"]["workflows.argoproj.io/completed"] == "false"
    assert all(n["finishedAt"] is None for n in body["nodes"].values())
    # The root holds the step through its boundary even though the group is not linked as its child.
    assert body["nodes"]["wf"]["progress"] == "0/1"


def test_a_node_without_a_template_ref_is_local_and_with_one_namespaced():
    status = finished()
    a = next(n for n in status.nodes.values() if n.name == "wf.a")
    a.template_ref, a.template_scope = {"name": "lib", "template": "say"}, "namespaced/lib"
    document = status_document(status)
    assert_argo_shape(document)
    shown = document["status"]["nodes"][a.id]
    assert (shown["templateRef"], shown["templateScope"]) == (
        {"name": "lib", "template": "say"},
        "namespaced/lib",
    )


def test_node_flags_and_outbound_nodes_are_included():
    status = finished()
    root, a = status.nodes["wf"], next(n for n in status.nodes.values() if n.name == "wf.a")
    root.outbound_nodes = [a.id]
    a.retried = True
    document = status_document(status)
    assert_argo_shape(document)
    assert document["status"]["nodes"]["wf"]["outboundNodes"] == [a.id]
    assert document["status"]["nodes"][a.id]["nodeFlag"] == {"retried": True}
    assert "nodeFlag" not in document["status"]["nodes"]["wf"]


def test_global_outputs_are_the_workflows_outputs():
    status = finished()
    status.outputs = Outputs(parameters=[Parameter(name="arn", value="arn:x")])
    document = status_document(status)
    assert_argo_shape(document)
    assert document["status"]["outputs"] == {"parameters": [{"name": "arn", "value": "arn:x"}]}


def test_the_schema_check_catches_a_wrong_shape():
    document = status_document(finished())
    document["status"]["nodes"]["wf"]["hangs"] = True
    document["status"]["startedAt"] = 5
    assert len(problems("io.argoproj.workflow.v1alpha1.WorkflowStatus", document["status"])) == 2


def test_render_json_and_yaml():
    status = finished()
    document = status_document(status)
    text = render(status, "json")
    assert text.endswith("}\n") and text.startswith('{\n  "metadata": {\n    "name": "wf",')
    assert json.loads(text) == document
    # JSON keeps Go's field order; YAML sorts keys as sigs.k8s.io/yaml does.
    assert list(json.loads(text)["status"]["nodes"]["wf"])[:4] == ["id", "name", "displayName", "type"]
    text = render(status, "yaml")
    assert yaml.safe_load(text) == document
    assert text.startswith("metadata:\n  labels:\n")
    with pytest.raises(ValueError, match="unknown output format 'xml': expected one of json, yaml"):
        render(status, "xml")  # type: ignore[arg-type]


def test_rfc3339_truncates_to_whole_seconds_in_utc():
    assert rfc3339(T0 + 0.999) == "2023-11-14T22:13:20Z"
    assert rfc3339(None) is None


def test_the_status_of_a_real_run(live_server, tmp_path):
    workflow = workflow_from(
        """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf, namespace: jobs}
spec:
  entrypoint: main
  arguments: {parameters: [{name: who, value: world}]}
  templates:
    - name: main
      steps:
        - - name: greet
            template: say
            arguments: {parameters: [{name: text, value: "hi {{workflow.parameters.who}}"}]}
        - - name: graph
            template: graph
    - name: graph
      dag:
        tasks:
          - {name: first, template: say, arguments: {parameters: [{name: text, value: one}]}}
          - name: second
            template: say
            dependencies: [first]
            arguments: {parameters: [{name: text, value: two}]}
    - name: say
      inputs: {parameters: [{name: text}]}
      outputs: {parameters: [{name: said}]}
      plugin: {echo: {said: "{{inputs.parameters.text}}"}}
""",
        tmp_path=tmp_path,
    )
    server = live_server([echo])
    status = run_engine(workflow, [PluginEndpoint(server.url, server.token)])
    document = status_document(status)
    assert_argo_shape(document)
    assert document["metadata"]["namespace"] == "jobs"
    body = document["status"]
    assert (body["phase"], body["progress"]) == ("Succeeded", "3/3")
    nodes = body["nodes"]
    assert set(nodes) == set(status.nodes) and "wf" in nodes
    by_name = {n["name"]: n for n in nodes.values()}
    greet = by_name["wf[0].greet"]
    assert (greet["type"], greet["phase"], greet["templateName"]) == ("Plugin", "Succeeded", "say")
    assert greet["outputs"]["parameters"] == [{"name": "said", "value": "hi world"}]
    second = by_name["wf[1].graph.second"]
    assert second["boundaryID"] == by_name["wf[1].graph"]["id"]
    assert second["outputs"]["parameters"] == [{"name": "said", "value": "two"}]
    for shown in nodes.values():
        assert shown["id"] == node_id("wf", shown["name"])
        assert shown["startedAt"] <= shown["finishedAt"]
        assert all(child in nodes for child in shown.get("children", []))
    assert yaml.safe_load(render(status, "yaml")) == document
