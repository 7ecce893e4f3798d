"""CronWorkflows run once as `argo submit --from cronwf/NAME` runs them, `--from KIND/NAME`, and exit hooks
(`hooks.exit`), which the controller takes as `onExit` (`WorkflowSpec.GetExitHook`).

The CronWorkflow is Argo's examples/cron-workflow.yaml (workflows/argo/, with its source).
"""

from __future__ import annotations

import pytest

from argoplug.agent.checks import check
from argoplug.agent.nodes import NodePhase
from argoplug.agent.substitution import global_values
from argoplug.agent.workflow import WorkflowError, load_documents, resolve_workflow

from .agent_test_plugins import echo
from .helpers import HERE, run_engine, workflow_from
from .test_data_flow import by_name, endpoint

CRON = HERE / "workflows" / "argo" / "cron-workflow.yaml"

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: tmpl}
spec:
  entrypoint: main
  templates:
    - {name: main, plugin: {echo: {from: template}}}
"""


def test_a_cron_workflow_runs_its_workflow_spec_once_as_argo_submit_from_does() -> None:
    workflow = resolve_workflow(load_documents([CRON]))
    assert workflow.name.startswith("hello-world-") and len(workflow.name) == len("hello-world-") + 5
    assert workflow.entrypoint == "hello-world-with-time"
    assert workflow.labels["workflows.argoproj.io/cron-workflow"] == "hello-world"
    assert "schedules" not in workflow.spec  # the CronWorkflow's own fields stay behind
    scheduled = workflow.annotations["workflows.argoproj.io/scheduled-time"]
    assert global_values(workflow)["workflow.scheduledTime"] == scheduled
    check(workflow)  # its `{{workflow.scheduledTime}}` resolves


def test_from_picks_the_template_or_cron_workflow_among_the_files(tmp_path) -> None:
    other = tmp_path / "tmpl.yaml"
    other.write_text(TEMPLATE)
    documents = load_documents([CRON, other])
    # One CronWorkflow among templates (which its workflowSpec may reference) is the one to run.
    assert resolve_workflow(documents).entrypoint == "hello-world-with-time"
    second = tmp_path / "second.yaml"
    second.write_text(TEMPLATE.replace("name: tmpl", "name: second"))
    with pytest.raises(WorkflowError, match="say which with --from KIND/NAME"):
        resolve_workflow(load_documents([other, second]))
    assert resolve_workflow(documents, submit_from="cronwf/hello-world").entrypoint == "hello-world-with-time"
    from_template = resolve_workflow(documents, submit_from="workflowtemplate/tmpl")
    assert from_template.workflow_template == "tmpl" and from_template.name.startswith("tmpl-")
    with pytest.raises(
        WorkflowError, match=r"--from cronwf/nope: no CronWorkflow named 'nope' among the files"
    ):
        resolve_workflow(documents, submit_from="cronwf/nope")
    with pytest.raises(WorkflowError, match=r"--from pod/x: expected KIND/NAME, KIND one of "):
        resolve_workflow(documents, submit_from="pod/x")


def test_an_exit_hook_is_the_exit_handler_of_the_workflow_and_of_a_step(live_server, tmp_path) -> None:
    workflow = workflow_from(
        """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: hooked}
spec:
  entrypoint: main
  hooks:
    exit: {template: bye}
  templates:
    - name: main
      steps:
        - - name: work
            template: work
            hooks:
              exit: {template: bye}
    - {name: work, plugin: {echo: {doing: work}}}
    - {name: bye, plugin: {echo: {status: "{{workflow.status}}"}}}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    assert nodes["hooked.onExit"].phase is NodePhase.SUCCEEDED
    assert nodes["hooked[0].work.onExit"].phase is NodePhase.SUCCEEDED


@pytest.mark.parametrize(
    "fragment",
    [
        # Go reads `parameters:` left empty as an empty list (encoding/json), where the schema says array.
        "    - name: main\n      inputs:\n        parameters:\n      plugin: {echo: {}}\n",
        # validate.go checks a script's image, not its `source`, which the schema lists as required.
        "    - name: main\n      steps: [[{name: s, template: s}]]\n"
        "    - name: s\n      script: {image: alpine}\n",
    ],
    ids=["empty-parameters", "script-without-source"],
)
def test_what_go_decodes_and_argo_validates_is_not_refused_by_the_schemas_stricter_lists(
    tmp_path, fragment: str
) -> None:
    head = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  entrypoint: main\n"
    )
    text = f"{head}  templates:\n{fragment}"
    check(workflow_from(text, tmp_path=tmp_path))


USE = "    - name: use\n      inputs: {parameters: [{name: v}]}\n      plugin: {echo: {v: x}}\n"
MAIN_WITH_INPUT = USE.replace("name: use", "name: main")


@pytest.mark.parametrize(
    ("templates", "arguments", "expected"),
    [
        # validate.go's `templates.%s.steps[%d].%s %s` before ProcessArgs' `inputs.parameters.%s was
        # not supplied`
        (
            "    - name: main\n      steps: [[{name: s, template: use}]]\n" + USE,
            "",
            "templates.main.steps[0].s templates.use inputs.parameters.v was not supplied",
        ),
        (
            "    - name: main\n      dag: {tasks: [{name: t, template: use}]}\n" + USE,
            "",
            "templates.main.tasks.t templates.use inputs.parameters.v was not supplied",
        ),
        # The entrypoint takes the workflow's arguments.
        (MAIN_WITH_INPUT, "", "templates.main inputs.parameters.v was not supplied"),
        (MAIN_WITH_INPUT, "  arguments: {parameters: [{name: v, value: x}]}\n", None),
    ],
)
def test_an_input_no_caller_supplies_is_refused_before_anything_runs(
    tmp_path, templates: str, arguments: str, expected: str | None
) -> None:
    head = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  entrypoint: main\n"
    )
    text = f"{head}{arguments}  templates:\n{templates}"
    if expected is None:
        check(workflow_from(text, tmp_path=tmp_path))
        return
    with pytest.raises(WorkflowError) as caught:
        workflow_from(text, tmp_path=tmp_path)
    assert expected in str(caught.value)


def test_the_workflows_exit_hook_takes_its_own_arguments_over_the_workflows(live_server, tmp_path) -> None:
    # LifecycleHook.WithArgs: the hook's arguments, when it has any, replace the workflow's.
    workflow = workflow_from(
        """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: hooked}
spec:
  entrypoint: main
  arguments: {parameters: [{name: who, value: workflow}]}
  hooks:
    exit:
      template: bye
      arguments: {parameters: [{name: who, value: "hook of {{workflow.name}}"}]}
  templates:
    - {name: main, plugin: {echo: {}}}
    - name: bye
      inputs: {parameters: [{name: who}]}
      plugin: {echo: {who: "{{inputs.parameters.who}}"}}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    node = by_name(status)["hooked.onExit"]
    assert node.phase is NodePhase.SUCCEEDED
    assert node.inputs == {"who": "hook of hooked"}


def test_a_steps_exit_hook_gets_its_arguments_with_the_steps_own_outputs_in_scope(
    live_server, tmp_path
) -> None:
    # resolveExitTmplArgument (workflow/controller/exit_handler.go): the hook's arguments may read the
    # step's outputs as `steps.<name>.outputs...`; a DAG task's as `tasks.<name>...`.
    workflow = workflow_from(
        """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: hooked}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: work
            template: work
            hooks:
              exit:
                template: report
                arguments:
                  parameters:
                    - {name: what, value: "{{steps.work.outputs.parameters.done}} {{steps.work.status}}"}
        - - name: d
            template: d
    - name: d
      dag:
        tasks:
          - name: t
            template: work
            hooks:
              exit:
                template: report
                arguments: {parameters: [{name: what, value: "{{tasks.t.outputs.parameters.done}}"}]}
    - name: work
      plugin: {echo: {done: "yes"}}
      outputs: {parameters: [{name: done}]}
    - name: report
      inputs: {parameters: [{name: what}]}
      plugin: {echo: {what: "{{inputs.parameters.what}}"}}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    assert nodes["hooked[0].work.onExit"].inputs == {"what": "yes Succeeded"}
    assert nodes["hooked[1].d.t.onExit"].inputs == {"what": "yes"}


EXIT_LIBRARY = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: test-exit-handler}
spec:
  templates:
    - name: main
      inputs: {parameters: [{name: message}]}
      plugin: {echo: {message: "{{inputs.parameters.message}}"}}
    - name: hooked-inside
      steps:
        - - name: inner
            template: main
            arguments: {parameters: [{name: message, value: inner}]}
            hooks:
              exit: {template: main, arguments: {parameters: [{name: message, value: "after inner"}]}}
---
"""


def test_an_exit_hook_may_name_its_template_by_templateref(live_server, tmp_path) -> None:
    # functional_test.go TestWorkflowLifecycleHookWithWorkflowTemplate: `hooks.exit.templateRef` with
    # arguments runs the WorkflowTemplate's template (LifecycleHook has Template and TemplateRef); the
    # WorkflowTemplate's own steps keep their exit hooks too.
    workflow = workflow_from(
        EXIT_LIBRARY
        + """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: hooked}
spec:
  entrypoint: main
  hooks:
    exit:
      templateRef: {name: test-exit-handler, template: main}
      arguments: {parameters: [{name: message, value: "bye {{workflow.status}}"}]}
  templates:
    - name: main
      steps:
        - - name: work
            templateRef: {name: test-exit-handler, template: hooked-inside}
            hooks:
              exit:
                templateRef: {name: test-exit-handler, template: main}
                arguments: {parameters: [{name: message, value: "{{steps.work.status}}"}]}
""",
        tmp_path=tmp_path,
    )
    status = run_engine(workflow, [endpoint(live_server([echo]))])
    nodes = by_name(status)
    assert status.phase is NodePhase.SUCCEEDED
    assert nodes["hooked.onExit"].inputs == {"message": "bye Succeeded"}
    assert nodes["hooked.onExit"].template_ref == {"name": "test-exit-handler", "template": "main"}
    assert nodes["hooked[0].work.onExit"].inputs == {"message": "Succeeded"}
    assert nodes["hooked[0].work[0].inner.onExit"].inputs == {"message": "after inner"}


def test_an_exit_hook_whose_templateref_names_no_template_is_refused(tmp_path) -> None:
    text = EXIT_LIBRARY + (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  entrypoint: main\n"
        "  hooks: {exit: {templateRef: {name: test-exit-handler, template: nope}}}\n"
        "  templates:\n    - {name: main, plugin: {echo: {}}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        workflow_from(text, tmp_path=tmp_path)
    assert "spec.hooks.exit: " in str(caught.value)
    assert "nope" in str(caught.value)
