"""Loops: withItems, withParam and withSequence fanned out under a step group or TaskGroup, and gathered."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from argoplug import Plugin, Result, Task
from argoplug.agent.client import PluginEndpoint
from argoplug.agent.loops import aggregate_outputs, expand_call, go_json
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus
from argoplug.agent.substitution import SetupError
from argoplug.protocol import Outputs, Parameter

from .agent_test_plugins import echo, emit
from .helpers import run_engine, workflow_from

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n  entrypoint: main\n"
ECHO = """\
    - name: echo
      inputs: {parameters: [{name: value}]}
      outputs: {parameters: [{name: value}]}
      plugin: {echo: {value: "{{inputs.parameters.value}}"}}
"""


def endpoint(server: Any) -> PluginEndpoint:
    return PluginEndpoint(server.url, server.token)


def by_name(status: WorkflowStatus) -> dict[str, Node]:
    return {node.name: node for node in status.nodes.values()}


@pytest.mark.parametrize(
    ("items", "names", "values"),
    [
        ("[a, b]", ["s(0:a)", "s(1:b)"], ["a", "b"]),
        ("[1, 2.5, true]", ["s(0:1)", "s(1:2.5)", "s(2:true)"], ["1", "2.5", "true"]),
        (
            "[{os: linux, n: 1}, {os: mac(arm), n: 2}]",
            ["s(0:n:1,os:linux)", "s(1:n:2,os:macarm)"],
            ['{"n":1,"os":"linux"}', '{"n":2,"os":"mac(arm)"}'],
        ),
    ],
)
def test_with_items_names_each_item_as_argo_does(items, names, values):
    calls = expand_call(
        {"name": "s", "template": "t", "arguments": {"v": "{{item}}"}, "withItems": _yaml(items)}, {}
    )
    assert [c["name"] for c in calls] == names
    assert [c["arguments"]["v"] for c in calls] == values
    assert all("withItems" not in c and c["template"] == "t" for c in calls)


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def test_item_keys_of_map_items_are_substituted():
    (call,) = expand_call(
        {
            "name": "s",
            "template": "t",
            "arguments": {"v": "{{item.os}}-{{ item.n }}"},
            "withItems": [{"os": "linux", "n": 3}],
        },
        {},
    )
    assert call["arguments"] == {"v": "linux-3"}


def test_with_param_keeps_numbers_as_written_and_refuses_what_is_not_a_list():
    calls = expand_call(
        {"name": "p", "template": "t", "arguments": {"v": "{{item}}"}, "withParam": '[2.50, "x", [1, 2]]'}, {}
    )
    assert [c["name"] for c in calls] == ["p(0:2.50)", "p(1:x)", "p(2:[1 2])"]
    assert [c["arguments"]["v"] for c in calls] == ["2.50", "x", "[1,2]"]
    with pytest.raises(SetupError, match=r"withParam value could not be parsed as a JSON list: nope"):
        expand_call({"name": "p", "template": "t", "withParam": "nope"}, {})
    with pytest.raises(SetupError, match=r"could not be parsed as a JSON list: \{\"a\": 1\}"):
        expand_call({"name": "p", "template": "t", "withParam": '{"a": 1}'}, {})


@pytest.mark.parametrize(
    ("sequence", "items"),
    [
        ({"count": "3"}, ["0", "1", "2"]),
        ({"start": "5", "end": "3"}, ["5", "4", "3"]),
        ({"start": 1, "count": 2, "format": "host-%02d"}, ["host-01", "host-02"]),
        ({"start": "10", "count": "2", "format": "%x/%X/%o"}, ["a/A/12", "b/B/13"]),
        ({"count": "0"}, []),
    ],
)
def test_with_sequence_counts_as_argo_does(sequence, items):
    calls = expand_call(
        {"name": "q", "template": "t", "arguments": {"v": "{{item}}"}, "withSequence": sequence}, {}
    )
    assert [c["arguments"]["v"] for c in calls] == items


def test_a_bad_sequence_is_an_error_naming_the_field():
    with pytest.raises(
        SetupError, match=r'withSequence.count: strconv.Atoi: parsing "three": invalid syntax'
    ):
        expand_call({"name": "q", "template": "t", "withSequence": {"count": "three"}}, {})
    with pytest.raises(SetupError, match="neither end nor count was specified in withSequence"):
        expand_call({"name": "q", "template": "t", "withSequence": {"start": "1"}}, {})


def test_a_tag_left_once_the_item_is_in_is_an_error():
    with pytest.raises(SetupError, match=r"failed to resolve \{\{item.missing\}\}"):
        expand_call(
            {"name": "s", "template": "t", "arguments": {"v": "{{item.missing}}"}, "withItems": [{"a": 1}]},
            {},
        )


def node(name: str, phase: NodePhase, outputs: Outputs | None, **flags: bool) -> Node:
    made = Node(name, name, name, NodeType.PLUGIN, "t", "b", phase, outputs=outputs)
    for flag, value in flags.items():
        setattr(made, flag, value)
    return made


def test_loop_outputs_are_gathered_in_item_order_as_json_lists():
    items = [
        node(
            "s(1:b)",
            NodePhase.SUCCEEDED,
            Outputs(parameters=[Parameter(name="v", value="B")], result='{"n": 2}'),
        ),
        node("s(0:a)", NodePhase.SUCCEEDED, Outputs(parameters=[Parameter(name="v", value="A")], result="1")),
        node("s(2:c)", NodePhase.FAILED, Outputs(parameters=[Parameter(name="v", value="C")])),
        node(
            "s(1:b)(0)",
            NodePhase.SUCCEEDED,
            Outputs(parameters=[Parameter(name="v", value="X")]),
            retried=True,
        ),
    ]
    assert aggregate_outputs("steps.s", items) == {
        "steps.s.outputs.result": '[1,{"n":2}]',
        "steps.s.outputs.parameters": '[{"v":"A"},{"v":"B"}]',
        "steps.s.outputs.parameters.v": '["A","B"]',
    }


def test_gathered_values_that_are_all_json_objects_stay_objects():
    items = [
        node(
            "s(0:a)", NodePhase.SUCCEEDED, Outputs(parameters=[Parameter(name="v", value='{"b": 1, "a": 2}')])
        ),
        node("s(1:b)", NodePhase.SUCCEEDED, Outputs(parameters=[Parameter(name="v", value="[3]")])),
    ]
    assert aggregate_outputs("tasks.s", items)["tasks.s.outputs.parameters.v"] == '[{"a":2,"b":1},[3]]'


def test_a_result_that_is_not_json_cannot_be_gathered():
    items = [node("s(0:a)", NodePhase.SUCCEEDED, Outputs(result="plain text"))]
    with pytest.raises(SetupError, match=r"the result of s\(0:a\) is not JSON"):
        aggregate_outputs("steps.s", items)


def test_go_json_writes_as_go_does():
    assert go_json({"b": [1, 2.0, 2.5, None, True], "a": "é"}) == '{"a":"é","b":[1,2,2.5,null,true]}'
    assert go_json(1e21) == "1e+21"


def test_a_looped_step_fans_out_and_a_later_step_gets_the_gathered_outputs(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      steps:
        - - name: each
            template: echo
            arguments: {parameters: [{name: value, value: "{{item}}"}]}
            withItems: [x, y, z]
        - - name: after
            template: echo
            arguments: {parameters: [{name: value, value: "{{steps.each.outputs.parameters.value}}"}]}
"""
        + ECHO,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    assert status.phase == NodePhase.SUCCEEDED
    group = nodes["wf[0]"]
    assert [status.nodes[c].name for c in group.children] == [
        "wf[0].each(0:x)",
        "wf[0].each(1:y)",
        "wf[0].each(2:z)",
    ]
    assert {status.nodes[c].display_name for c in group.children} == {"each(0:x)", "each(1:y)", "each(2:z)"}
    assert nodes["wf[1].after"].inputs == {"value": '["x","y","z"]'}
    # Each item hangs the next step group off itself (Argo's children graph).
    assert all(nodes["wf[1]"].id in status.nodes[c].children for c in group.children)


def test_with_param_from_a_result_and_an_empty_list(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      steps:
        - - {name: list, template: emit-list}
          - {name: empty, template: emit-empty}
        - - name: each
            template: echo
            arguments: {parameters: [{name: value, value: "{{item.id}}"}]}
            withParam: "{{steps.list.outputs.result}}"
          - name: none
            template: echo
            arguments: {parameters: [{name: value, value: "{{item}}"}]}
            withParam: "{{steps.empty.outputs.result}}"
    - name: emit-list
      plugin: {emit: {result: '[{"id": "a1"}, {"id": "b2"}]'}}
    - name: emit-empty
      plugin: {emit: {result: "[]"}}
"""
        + ECHO,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo, emit]))])
    nodes = by_name(status)
    assert status.phase == NodePhase.SUCCEEDED
    assert nodes["wf[1].each(0:id:a1)"].inputs == {"value": "a1"}
    assert (nodes["wf[1].none"].type, nodes["wf[1].none"].phase, nodes["wf[1].none"].message) == (
        NodeType.SKIPPED,
        NodePhase.SKIPPED,
        "Skipped, empty params",
    )


def test_a_bad_with_param_errors_the_step_group(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      steps:
        - - name: each
            template: echo
            arguments: {parameters: [{name: value, value: "{{item}}"}]}
            withParam: "not a list"
"""
        + ECHO,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    group = by_name(status)["wf[0]"]
    assert group.phase == NodePhase.ERROR
    assert group.message.startswith("withParam value could not be parsed as a JSON list: not a list")
    assert status.phase == NodePhase.FAILED


def test_a_looped_dag_task_runs_under_a_task_group_and_its_dependents_see_the_list(live_server, tmp_path):
    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      dag:
        tasks:
          - name: each
            template: echo
            arguments: {parameters: [{name: value, value: "n{{item}}"}]}
            withSequence: {count: "2"}
          - name: after
            dependencies: [each]
            template: echo
            arguments: {parameters: [{name: value, value: "{{tasks.each.outputs.parameters.value}}"}]}
"""
        + ECHO,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    group = nodes["wf.each"]
    assert (group.type, group.phase, group.display_name) == (NodeType.TASK_GROUP, NodePhase.SUCCEEDED, "each")
    assert [status.nodes[c].name for c in group.children] == ["wf.each(0:0)", "wf.each(1:1)"]
    assert nodes["wf.after"].inputs == {"value": '["n0","n1"]'}
    assert nodes["wf"].children == [group.id]


def test_a_failed_item_fails_the_task_group_and_omits_the_dependents(live_server, tmp_path):
    from .agent_test_plugins import fail

    workflow = workflow_from(
        HEAD
        + """\
  templates:
    - name: main
      dag:
        tasks:
          - name: each
            template: maybe
            arguments: {parameters: [{name: v, value: "{{item}}"}]}
            withItems: [ok, bad]
          - name: after
            dependencies: [each]
            template: echo
            arguments: {parameters: [{name: value, value: x}]}
    - name: maybe
      inputs: {parameters: [{name: v}]}
      steps:
        - - name: good
            template: echo
            when: "{{inputs.parameters.v}} == ok"
            arguments: {parameters: [{name: value, value: x}]}
          - {name: boom, template: boom, when: "{{inputs.parameters.v}} == bad"}
    - name: boom
      plugin: {fail: {message: bad item}}
"""
        + ECHO,
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo, fail]))])
    nodes = by_name(status)
    assert nodes["wf.each(0:ok)"].phase == NodePhase.SUCCEEDED
    assert nodes["wf.each(1:bad)"].phase == NodePhase.FAILED
    assert nodes["wf.each"].phase == NodePhase.FAILED
    assert nodes["wf.after"].phase == NodePhase.OMITTED
    assert status.phase == NodePhase.FAILED


def test_parallelism_holds_back_steps_and_dag_children_but_not_plugin_nodes(live_server, tmp_path):
    # Argo counts only pods, steps and DAGs toward a template's parallelism (`getActiveChildrenCounter`).
    lock = threading.Lock()
    active = [0, 0]  # now, most
    gate = Plugin("gate")

    @gate.handler
    def count(task: Task, args: dict[str, Any]) -> Result:
        import time

        with lock:
            active[0] += 1
            active[1] = max(active)
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return Result.succeeded()

    def most(text: str) -> int:
        active[:] = [0, 0]
        run_engine(workflow_from(text, tmp_path=tmp_path), [endpoint(live_server([gate]))])
        return active[1]

    nested = (
        HEAD
        + """\
  templates:
    - name: main
      parallelism: 1
      steps:
        - - {name: each, template: inner, withItems: [1, 2, 3]}
    - name: inner
      steps: [[{name: g, template: g}]]
    - name: g
      plugin: {gate: {}}
"""
    )
    flat = (
        HEAD
        + """\
  templates:
    - name: main
      parallelism: 1
      steps:
        - - {name: each, template: g, withItems: [1, 2, 3]}
    - name: g
      plugin: {gate: {}}
"""
    )
    assert most(nested) == 1
    assert most(flat) == 3
