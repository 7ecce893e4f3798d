"""`check`: what the local agent refuses before a run (as Argo validation does, or not yet supported)."""

from __future__ import annotations

import pytest

from argoplug.agent.checks import check
from argoplug.agent.workflow import Workflow, WorkflowError, load_documents, resolve_workflow

from .helpers import workflow_from

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n"

CHECKED = HEAD + "  entrypoint: main\n  templates:\n"


@pytest.mark.parametrize(
    ("templates", "expected"),
    [
        (
            "    - name: main\n      plugin: {echo: {x: '{{workflow.parameters.nope}}'}}\n",
            "templates.main: failed to resolve {{workflow.parameters.nope}}",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: p}], [{name: b, template: p,"
            " arguments: {parameters: [{name: x, value: '{{steps.a.outputs.parameters.undeclared}}'}]}}]]\n"
            "    - name: p\n      plugin: {echo: {}}\n",
            "templates.main.steps[1].b: failed to resolve {{steps.a.outputs.parameters.undeclared}}",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: p}, {name: b, template: p,"
            " arguments: {parameters: [{name: x, value: '{{steps.a.outputs.result}}'}]}}]]\n"
            "    - name: p\n      plugin: {echo: {}}\n",
            "templates.main.steps[0].b: failed to resolve {{steps.a.outputs.result}}",
        ),
        (
            "    - name: main\n      dag: {tasks: [{name: a, template: p}, {name: b, template: p,"
            " arguments: {parameters: [{name: x, value: '{{tasks.a.outputs.result}}'}]}}]}\n"
            "    - name: p\n      plugin: {echo: {}}\n",
            "templates.main.tasks.b: failed to resolve {{tasks.a.outputs.result}}",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: nope}]]\n",
            "templates.main.steps[0].a: template name 'nope' undefined",
        ),
        (
            "    - name: main\n      dag: {tasks: [{name: a, template: p, dependencies: [b]},"
            " {name: b, template: p, dependencies: [a]}]}\n"
            "    - name: p\n      plugin: {echo: {}}\n",
            "templates.main.tasks dependency cycle detected: a->b->a",
        ),
        (
            "    - name: main\n      dag: {tasks: [{name: a, template: p, dependencies: [zz]}]}\n"
            "    - name: p\n      plugin: {echo: {}}\n",
            "templates.main.tasks.a dependency 'zz' not defined",
        ),
        (
            "    - name: main\n      plugin: {a: {}, b: {}}\n",
            "templates.main.plugin must have exactly one key",
        ),
        ("    - name: main\n      inputs: {}\n", "templates.main template type unspecified"),
    ],
)
def test_check_refuses_what_argo_validation_refuses(tmp_path, templates, expected):
    with pytest.raises(WorkflowError) as caught:
        workflow_from(CHECKED + templates, tmp_path=tmp_path)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("templates", "expected"),
    [
        (
            "    - name: main\n      steps: [[{name: a, template: p, when: '1 == 1'}]]\n",
            "templates.main.steps[0].a: `when`",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: p, withItems: [1, 2]}]]\n",
            "templates.main.steps[0].a: `withItems`",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: p, withParam: '[1]'}]]\n",
            "templates.main.steps[0].a: `withParam`",
        ),
        (
            "    - name: main\n      dag: {tasks: [{name: a, template: p, depends: 'b'},"
            " {name: b, template: p}]}\n",
            "templates.main.tasks.a: `depends`",
        ),
        (
            "    - name: main\n      retryStrategy: {limit: 2}\n      plugin: {echo: {}}\n",
            "templates.main: `retryStrategy`",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: p, onExit: p}]]\n",
            "templates.main.steps[0].a: `onExit`",
        ),
        (
            "    - name: main\n      steps: [[{name: a, templateRef: {name: x, template: y}}]]\n",
            "templates.main.steps[0].a: `templateRef`",
        ),
        (
            "    - name: main\n      plugin: {echo: {x: '{{=inputs.parameters.a}}'}}\n",
            "templates.main: expression tag {{=inputs.parameters.a}}",
        ),
    ],
)
def test_check_names_unsupported_constructs_and_their_template(tmp_path, templates, expected):
    with pytest.raises(WorkflowError) as caught:
        workflow_from(CHECKED + templates + "    - name: p\n      plugin: {echo: {}}\n", tmp_path=tmp_path)
    assert expected in str(caught.value)
    assert "not supported by argoplug's local agent yet" in str(caught.value)


def test_a_workflow_level_on_exit_is_refused(tmp_path):
    with pytest.raises(WorkflowError, match=r"spec: `onExit` is not supported"):
        workflow_from(
            HEAD
            + "  entrypoint: main\n  onExit: main\n  templates:\n"
            + "    - name: main\n      plugin: {echo: {}}\n",
            tmp_path=tmp_path,
        )


def test_an_unresolved_output_reference_says_what_to_fix(tmp_path):
    with pytest.raises(WorkflowError) as caught:
        workflow_from(
            CHECKED + "    - name: main\n      dag: {tasks: [{name: a, template: p}, {name: b, template: p,"
            " arguments: {parameters: [{name: x, value: '{{tasks.a.outputs.parameters.y}}'}]}},"
            " {name: c, template: p, dependencies: [a],"
            " arguments: {parameters: [{name: x, value: '{{tasks.a.outputs.parameters.y}}'}]}}]}\n"
            "    - name: p\n      plugin: {echo: {}}\n",
            tmp_path=tmp_path,
        )
    message = str(caught.value)
    assert (
        "templates.main.tasks.b: failed to resolve {{tasks.a.outputs.parameters.y}} (task `a` is not a"
        in message
    )
    assert (
        "templates.main.tasks.c: failed to resolve {{tasks.a.outputs.parameters.y}} (the template `a` calls"
        in message
    )
    assert "declares no output parameter `y`" in message


def resolved(text: str, tmp_path) -> Workflow:
    path = tmp_path / "workflow.yaml"
    path.write_text(text)
    return resolve_workflow(load_documents([path]))


RETRIES_WARNING = (
    "{{retries}} is set only in a template with a retryStrategy; without one Argo leaves it unresolved, "
    "and the text {{retries}} is passed on as written"
)


def test_retries_without_a_retry_strategy_is_a_warning_naming_the_template(tmp_path):
    # Argo's validation checks only tags with a prefix such as `inputs.`; `retries` is set only with a
    # retryStrategy (refused here): so Argo runs this and sends `{{retries}}` as written.
    workflow = resolved(
        CHECKED
        + "    - name: main\n      steps: [[{name: a, template: p}]]\n"
        + "    - name: p\n      plugin: {echo: {key: '{{workflow.name}}-{{ retries }}'}}\n",
        tmp_path,
    )
    assert check(workflow) == [f"templates.p: {RETRIES_WARNING}"]


def test_retries_in_a_step_argument_is_a_warning_for_the_steps_template(tmp_path):
    workflow = resolved(
        CHECKED
        + "    - name: main\n      steps: [[{name: a, template: p,"
        + " arguments: {parameters: [{name: x, value: '{{retries}}'}]}}]]\n"
        + "    - name: p\n      inputs: {parameters: [{name: x}]}\n      plugin: {echo: {}}\n",
        tmp_path,
    )
    assert check(workflow) == [f"templates.main: {RETRIES_WARNING}"]


def test_a_workflow_without_surprises_has_no_warnings(tmp_path):
    workflow = resolved(CHECKED + "    - name: main\n      plugin: {echo: {n: '{{node.name}}'}}\n", tmp_path)
    assert check(workflow) == []
