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
            # An exit hook is the step's onExit (test_submit_from.py); other lifecycle hooks are not run.
            "    - name: main\n      steps: [[{name: a, template: p, hooks: {running: {template: p,"
            " expression: \"steps.a.status == 'Running'\"}}}]]\n",
            "templates.main.steps[0].a: `hooks`",
        ),
        (
            "    - name: main\n      dag: {tasks: [{name: a, inline: {plugin: {echo: {}}}}]}\n",
            "templates.main.tasks.a: `inline`",
        ),
        (
            "    - name: main\n      synchronization: {mutexes: [{name: m}]}\n      plugin: {echo: {}}\n",
            "templates.main: `synchronization`",
        ),
        (
            "    - name: main\n      memoize: {key: k, maxAge: 1h, cache: {configMap: {name: c}}}\n"
            "      plugin: {echo: {}}\n",
            "templates.main: `memoize`",
        ),
        ("    - name: main\n      daemon: true\n      plugin: {echo: {}}\n", "templates.main: `daemon`"),
        (
            "    - name: main\n      outputs: {artifacts: [{name: a, path: /tmp/a}]}\n"
            "      plugin: {echo: {}}\n",
            "templates.main.outputs: `artifacts`",
        ),
    ],
)
def test_check_names_unsupported_constructs_and_their_template(tmp_path, templates, expected):
    with pytest.raises(WorkflowError) as caught:
        workflow_from(CHECKED + templates + "    - name: p\n      plugin: {echo: {}}\n", tmp_path=tmp_path)
    assert expected in str(caught.value)
    assert "not supported by argoplug's local agent yet" in str(caught.value)


def test_a_suspend_without_duration_is_refused_saying_why(tmp_path):
    with pytest.raises(WorkflowError) as caught:
        workflow_from(CHECKED + "    - name: main\n      suspend: {}\n", tmp_path=tmp_path)
    assert (
        "templates.main: a suspend template without `duration` waits until someone resumes the workflow "
        "(`argo resume`), which nobody can do in a local run: give it a duration"
    ) in str(caught.value)


SUPPORTED = """\
  onExit: p
  retryStrategy: {limit: 1}
  templates:
    - name: main
      parallelism: 2
      steps:
        - - {name: a, template: p, when: "1 == 1", continueOn: {failed: true}, onExit: p}
          - name: b
            template: q
            withItems: [{k: 1}]
            arguments: {parameters: [{name: x, value: "{{item.k}}"}]}
          - name: c
            template: q
            withParam: '["a"]'
            arguments: {parameters: [{name: x, value: "{{item}}"}]}
          - name: d
            template: q
            withSequence: {count: "2"}
            arguments: {parameters: [{name: x, value: "{{item}}"}]}
        - - name: e
            template: d
            arguments:
              parameters:
                - name: x
                  value: "{{steps.b.outputs.parameters}}{{steps.a.outputs.result}}"
    - name: d
      inputs: {parameters: [{name: x}]}
      dag:
        target: z
        tasks:
          - {name: y, template: p}
          - {name: z, depends: "y.Failed || y.Succeeded", template: s}
    - name: p
      retryStrategy: {limit: 2, retryPolicy: OnError, backoff: {duration: "1s", factor: 2, maxDuration: "1m"}}
      timeout: 30s
      plugin: {echo: {n: "{{retries}}", e: "{{=inputs.parameters.x}}"}}
    - name: q
      inputs: {parameters: [{name: x}]}
      plugin: {echo: {x: "{{inputs.parameters.x}}"}}
    - name: s
      suspend: {duration: "10"}
"""


def test_check_accepts_what_the_engine_now_runs(tmp_path):
    workflow = resolved(HEAD + "  entrypoint: main\n" + SUPPORTED, tmp_path)
    warnings = check(workflow)
    assert warnings == [
        "templates.p: `timeout` has no effect with a retryStrategy: Argo checks it against the Retry node, "
        "which is never Pending"
    ]


@pytest.mark.parametrize(
    ("templates", "expected"),
    [
        (
            "    - name: main\n      dag: {tasks: [{name: a, template: p, depends: 'b.Done'},"
            " {name: b, template: p}]}\n",
            "templates.main.tasks.a: task result 'Done' for task 'b' is invalid",
        ),
        (
            "    - name: main\n      dag: {tasks: [{name: a, template: p, depends: 'zz'}]}\n",
            "templates.main.tasks.a dependency 'zz' not defined",
        ),
        (
            "    - name: main\n      dag: {tasks: [{name: a, template: p},"
            " {name: b, template: p, depends: a},"
            " {name: c, template: p, dependencies: [a]}]}\n",
            "templates.main cannot use both 'depends' and 'dependencies' in the same DAG template",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: p, withItems: [1], withParam: '[1]'}]]\n",
            "templates.main.steps[0].a: only one of withItems, withParam, withSequence can be specified",
        ),
        (
            "    - name: main\n"
            "      steps: [[{name: a, template: p, withSequence: {count: '1', end: '2'}}]]\n",
            "templates.main.steps[0].a: only one of count or end can be defined in withSequence",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: p,"
            " arguments: {parameters: [{name: x, value: '{{item}}'}]}, withItems: [{k: 1}]},"
            " {name: b, template: p, arguments: {parameters: [{name: x, value: '{{item.k}}'}]}}]]\n",
            "templates.main.steps[0].b: failed to resolve {{item.k}}",
        ),
        (
            "    - name: main\n      steps: [[{name: a, templateRef: {name: lib, template: y}}]]\n",
            "templates.main.steps[0].a: templateRef: WorkflowTemplate 'lib' not found in the files given",
        ),
        (
            "    - name: main\n      retryStrategy: {retryPolicy: Sometimes}\n      plugin: {echo: {}}\n",
            "templates.main.retryStrategy.retryPolicy: Sometimes is not a valid RetryPolicy",
        ),
        (
            "    - name: main\n      retryStrategy: {limit: 1, backoff: {duration: soon}}\n"
            "      plugin: {echo: {}}\n",
            "templates.main.retryStrategy.backoff.duration: unable to parse soon as a duration",
        ),
        (
            "    - name: main\n      timeout: 1m\n      steps: [[{name: a, template: p}]]\n",
            "templates.main: steps template doesn't support timeout field.",
        ),
        (
            "    - name: main\n      steps: [[{name: a, template: p, onExit: nope}]]\n",
            "templates.main.steps[0].a.onExit: template name 'nope' undefined",
        ),
        (
            "    - name: main\n      dag: {target: x, tasks: [{name: a, template: p}]}\n",
            "templates.main.targets: target 'x' is not defined",
        ),
    ],
)
def test_check_refuses_bad_uses_of_the_supported_constructs(tmp_path, templates, expected):
    with pytest.raises(WorkflowError) as caught:
        workflow_from(CHECKED + templates + "    - name: p\n      plugin: {echo: {}}\n", tmp_path=tmp_path)
    assert expected in str(caught.value)


def test_a_workflow_level_on_exit_must_name_a_template(tmp_path):
    with pytest.raises(WorkflowError, match=r"spec.onExit: template name 'nope' undefined"):
        workflow_from(
            HEAD
            + "  entrypoint: main\n  onExit: nope\n  templates:\n"
            + "    - name: main\n      plugin: {echo: {}}\n",
            tmp_path=tmp_path,
        )


def test_check_warns_of_what_argo_ignores(tmp_path):
    workflow = resolved(
        CHECKED
        + "    - name: main\n      activeDeadlineSeconds: 10\n      metrics: {prometheus: []}\n"
        + "      plugin: {echo: {}}\n",
        tmp_path,
    )
    assert check(workflow) == [
        "templates.main: `activeDeadlineSeconds` applies only to container and script templates (the pod's "
        "deadline); Argo ignores it on a plugin template",
        "templates.main: `metrics` are Prometheus metrics of the controller: none are emitted locally",
    ]


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


def test_a_call_with_a_template_typo_is_one_problem_not_one_more_for_each_use_of_its_results(tmp_path):
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: typo}\nspec:\n"
        "  entrypoint: main\n  templates:\n    - name: main\n      dag:\n        tasks:\n"
        "          - {name: a, template: echoo}\n"
        "          - name: b\n            depends: a\n            template: echo\n"
        "            arguments: {parameters: [{name: v, value: '{{tasks.a.outputs.parameters.x}}'}]}\n"
        "    - name: echo\n      inputs: {parameters: [{name: v}]}\n      plugin: {echo: {}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        workflow_from(text, tmp_path=tmp_path)
    problems = str(caught.value).splitlines()[1:]
    assert problems == ["  templates.main.tasks.a: template name 'echoo' undefined"]
