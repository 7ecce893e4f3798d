"""`when`, DAG `depends` and `continueOn`: what runs, what is Skipped or Omitted, the phases that follow."""

from __future__ import annotations

from typing import Any

import pytest

from argoplug.agent.client import PluginEndpoint
from argoplug.agent.dag import depends_logic
from argoplug.agent.nodes import Node, NodePhase, NodeType, WorkflowStatus

from .agent_test_plugins import echo, fail
from .helpers import run_engine, workflow_from

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n  entrypoint: main\n"
LEAVES = """\
    - name: ok
      outputs: {parameters: [{name: v}]}
      plugin: {echo: {v: done}}
    - name: bad
      plugin: {fail: {message: bad on purpose}}
"""


def endpoint(server: Any) -> PluginEndpoint:
    return PluginEndpoint(server.url, server.token)


def by_name(status: WorkflowStatus) -> dict[str, Node]:
    return {node.name: node for node in status.nodes.values()}


def run(live_server: Any, tmp_path: Any, templates: str) -> WorkflowStatus:
    workflow = workflow_from(HEAD + "  templates:\n" + templates + LEAVES, tmp_path=tmp_path)
    return run_engine(workflow, [endpoint(live_server([echo, fail]))])


def test_when_skips_a_step_with_argos_message(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      steps:
        - - {name: first, template: ok}
        - - {name: go, template: ok, when: "{{steps.first.outputs.parameters.v}} == done"}
          - {name: stop, template: ok, when: "'{{steps.first.outputs.parameters.v}}' != 'done'"}
          - {name: number, template: ok, when: "2 > 10"}
""",
    )
    nodes = by_name(status)
    assert nodes["wf[1].go"].phase == NodePhase.SUCCEEDED
    for name, when in (("stop", "'done' != 'done'"), ("number", "2 > 10")):
        node = nodes[f"wf[1].{name}"]
        assert (node.type, node.phase, node.message) == (
            NodeType.SKIPPED,
            NodePhase.SKIPPED,
            f"when '{when}' evaluated false",
        )
        assert node.template_name == "ok"
    assert nodes["wf[1]"].phase == NodePhase.SUCCEEDED
    assert status.phase == NodePhase.SUCCEEDED


def test_an_invalid_when_errors_the_step_group(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      steps:
        - - {name: odd, template: ok, when: "1 +"}
""",
    )
    group = by_name(status)["wf[0]"]
    assert group.phase == NodePhase.ERROR
    assert group.message.startswith("Failed to resolve references: Invalid 'when' expression '1 +'")
    assert "wf[0].odd" not in by_name(status)
    assert status.phase == NodePhase.FAILED


def test_when_on_dag_tasks_skips_and_skipped_dependencies_still_satisfy(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      dag:
        tasks:
          - {name: a, template: ok, when: "false"}
          - {name: b, dependencies: [a], template: ok}
""",
    )
    nodes = by_name(status)
    assert (nodes["wf.a"].phase, nodes["wf.a"].message) == (NodePhase.SKIPPED, "when 'false' evaluated false")
    assert nodes["wf.b"].phase == NodePhase.SUCCEEDED
    assert status.phase == NodePhase.SUCCEEDED


def test_depends_runs_on_failure_and_omits_what_cannot_run(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      dag:
        tasks:
          - {name: a, template: bad}
          - {name: b, template: ok}
          - {name: on-failure, depends: "a.Failed && b.Succeeded", template: ok}
          - {name: on-success, depends: "a.Succeeded || a.Errored", template: ok}
          - {name: after-omitted, depends: "on-success.Omitted", template: ok}
""",
    )
    nodes = by_name(status)
    assert nodes["wf.on-failure"].phase == NodePhase.SUCCEEDED
    omitted = nodes["wf.on-success"]
    assert (omitted.type, omitted.phase, omitted.message) == (
        NodeType.SKIPPED,
        NodePhase.OMITTED,
        "omitted: depends condition not met",
    )
    assert nodes["wf.after-omitted"].phase == NodePhase.SUCCEEDED
    # The DAG's phase comes from its target branches: `a`'s failure reaches none of them but on-failure's
    # branch, whose last completed node succeeded.
    assert nodes["wf"].phase == NodePhase.SUCCEEDED
    assert status.phase == NodePhase.SUCCEEDED


def test_a_failed_branch_fails_the_dag(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      dag:
        tasks:
          - {name: a, template: bad}
          - {name: b, depends: "a.Succeeded", template: ok}
          - {name: c, template: ok}
""",
    )
    nodes = by_name(status)
    assert nodes["wf.b"].phase == NodePhase.OMITTED
    assert nodes["wf.c"].phase == NodePhase.SUCCEEDED
    assert nodes["wf"].phase == NodePhase.FAILED  # b's branch inherits a's failure


def test_continue_on_failed_lets_steps_and_dependents_go_on(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      steps:
        - - {name: tolerated, template: bad, continueOn: {failed: true}}
          - {name: fine, template: ok}
        - - {name: dag, template: dag}
    - name: dag
      dag:
        tasks:
          - {name: a, template: bad, continueOn: {failed: true}}
          - {name: b, dependencies: [a], template: ok}
          - {name: leaf, template: bad, continueOn: {failed: true}}
""",
    )
    nodes = by_name(status)
    assert nodes["wf[0].tolerated"].phase == NodePhase.FAILED
    assert nodes["wf[0]"].phase == NodePhase.SUCCEEDED
    assert nodes["wf[1].dag.b"].phase == NodePhase.SUCCEEDED
    assert nodes["wf[1].dag.leaf"].phase == NodePhase.FAILED
    assert nodes["wf[1].dag"].phase == NodePhase.SUCCEEDED
    assert status.phase == NodePhase.SUCCEEDED


def test_continue_on_error_does_not_cover_failures(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      steps:
        - - {name: not-tolerated, template: bad, continueOn: {error: true}}
""",
    )
    failed = by_name(status)["wf[0].not-tolerated"]
    assert by_name(status)["wf[0]"].message == f"child '{failed.id}' failed"
    assert status.phase == NodePhase.FAILED


def test_a_target_runs_only_its_ancestors(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      dag:
        target: b
        tasks:
          - {name: a, template: ok}
          - {name: b, dependencies: [a], template: ok}
          - {name: other, template: bad}
""",
    )
    nodes = by_name(status)
    assert nodes["wf.b"].phase == NodePhase.SUCCEEDED
    assert "wf.other" not in nodes
    assert status.phase == NodePhase.SUCCEEDED


def test_fail_fast_off_waits_for_every_branch(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      dag:
        failFast: false
        tasks:
          - {name: a, template: bad}
          - {name: b, template: ok}
""",
    )
    nodes = by_name(status)
    assert nodes["wf.b"].phase == NodePhase.SUCCEEDED
    assert nodes["wf"].phase == NodePhase.FAILED


@pytest.mark.parametrize(
    ("task", "names", "logic"),
    [
        (
            {"dependencies": ["a", "b"]},
            ["a", "b"],
            "(a.Succeeded || a.Skipped || a.Daemoned) && (b.Succeeded || b.Skipped || b.Daemoned)",
        ),
        ({"depends": "a && b.Failed"}, ["a", "b"], "(a.Succeeded || a.Skipped || a.Daemoned) && b.Failed"),
        (
            {"depends": "tolerant"},
            ["tolerant"],
            "(tolerant.Succeeded || tolerant.Skipped || tolerant.Daemoned || tolerant.Errored"
            " || tolerant.Failed)",
        ),
    ],
)
def test_depends_logic_spells_out_bare_names_with_continue_on(task, names, logic):
    tasks = {"t": task, "a": {}, "b": {}, "tolerant": {"continueOn": {"failed": True, "error": True}}}
    assert depends_logic("t", tasks) == (names, logic)


def test_a_bare_depends_on_a_task_with_continue_on_failed_is_satisfied_by_its_failure(live_server, tmp_path):
    status = run(
        live_server,
        tmp_path,
        """\
    - name: main
      dag:
        tasks:
          - {name: a, template: bad, continueOn: {failed: true}}
          - {name: b, template: ok, depends: a}
          - {name: c, template: bad}
          - {name: d, template: ok, depends: c}
""",
    )
    nodes = by_name(status)
    assert nodes["wf.a"].phase == NodePhase.FAILED
    assert nodes["wf.b"].phase == NodePhase.SUCCEEDED
    assert nodes["wf.d"].phase == NodePhase.OMITTED
