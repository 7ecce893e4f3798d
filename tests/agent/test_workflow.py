"""Loading, schema validation and template-ref resolution of Workflow YAML."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from argoplug.agent.schema import go_scalar_string
from argoplug.agent.workflow import (
    WorkflowError,
    generate_name,
    load_documents,
    parse_parameters,
    resolve_workflow,
)

from .helpers import EXAMPLES

EXAMPLE_FILES = [EXAMPLES / "workflow.yaml", EXAMPLES / "workflow-template.yaml"]

MINIMAL = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: minimal
spec:
  entrypoint: main
  templates:
    - name: main
      plugin:
        echo: {count: 3, nested: {parameters: [{name: p, value: 7}]}}
"""


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_published_sagemaker_example_validates_and_resolves_its_template_ref():
    workflow = resolve_workflow(load_documents(EXAMPLE_FILES))
    assert re.fullmatch(r"amz-sagemaker-pipeline-[bcdfghjklmnpqrstvwxz2456789]{5}", workflow.name)
    assert workflow.namespace == "argo"
    assert uuid.UUID(workflow.uid).version == 4
    assert workflow.entrypoint == "main"
    assert workflow.workflow_template == "amz-sagemaker-pipeline"
    assert list(workflow.templates) == ["main", "validate_pipeline", "execute_pipeline"]
    # `value: 100000000002` is a YAML int: Go's AnyString makes it the string Argo substitutes.
    assert workflow.parameters == {
        "aws_account_id": "100000000002",
        "aws_region_name": "us-west-2",
        "pipeline_name": "MyPipeline",
    }
    assert workflow.active_deadline_seconds == 600
    assert workflow.spec["serviceAccountName"] == "awf-aws-executor-plugin"


def test_workflow_arguments_override_template_arguments_by_name(tmp_path):
    template = EXAMPLE_FILES[1]
    workflow_file = write(
        tmp_path,
        """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: run-1, namespace: argo}
spec:
  arguments:
    parameters: [{name: pipeline_name, value: Other}, {name: extra, value: "x"}]
  workflowTemplateRef: {name: amz-sagemaker-pipeline}
""",
    )
    workflow = resolve_workflow(load_documents([workflow_file, template]))
    assert workflow.name == "run-1"
    assert workflow.entrypoint == "main"  # from the template
    assert workflow.parameters == {
        "pipeline_name": "Other",
        "extra": "x",
        "aws_account_id": "100000000002",
        "aws_region_name": "us-west-2",
    }


def test_p_overrides_a_parameter_and_adds_unknown_ones():
    workflow = resolve_workflow(
        load_documents(EXAMPLE_FILES), parameters=parse_parameters(["pipeline_name=Other", "new=a=b"])
    )
    assert workflow.parameters["pipeline_name"] == "Other"
    assert workflow.parameters["new"] == "a=b"


@pytest.mark.parametrize("pair", ["novalue", "=x", " =x"])
def test_a_malformed_p_is_refused(pair):
    with pytest.raises(WorkflowError, match="expected name=value"):
        parse_parameters([pair])


def test_a_template_alone_runs_as_argo_submit_from():
    workflow = resolve_workflow(load_documents([EXAMPLE_FILES[1]]))
    assert workflow.name.startswith("amz-sagemaker-pipeline-")
    assert workflow.workflow_template == "amz-sagemaker-pipeline"
    assert workflow.parameters["pipeline_name"] == "MyPipeline"


def test_a_missing_template_ref_names_it_and_what_was_loaded():
    with pytest.raises(WorkflowError) as caught:
        resolve_workflow(load_documents([EXAMPLE_FILES[0]]))
    message = str(caught.value)
    assert "WorkflowTemplate 'amz-sagemaker-pipeline' not found" in message
    assert "workflow.yaml, document 1" in message


def test_templates_beside_a_template_ref_are_refused(tmp_path):
    path = write(
        tmp_path,
        """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: x-}
spec:
  workflowTemplateRef: {name: amz-sagemaker-pipeline}
  templates: [{name: main, plugin: {echo: {}}}]
""",
    )
    with pytest.raises(WorkflowError, match="Templates is invalid field in spec"):
        resolve_workflow(load_documents([path, EXAMPLE_FILES[1]]))


def test_multi_document_files_and_names(tmp_path):
    path = write(tmp_path, "---\n" + MINIMAL + "---\n# nothing here\n")
    documents = load_documents([path])
    assert [(d.kind, d.name, d.index) for d in documents] == [("Workflow", "minimal", 1)]
    workflow = resolve_workflow(documents)
    assert (workflow.name, workflow.namespace) == ("minimal", "argo")


def test_numbers_in_a_plugin_block_are_left_alone(tmp_path):
    workflow = resolve_workflow(load_documents([write(tmp_path, MINIMAL)]))
    assert workflow.templates["main"]["plugin"]["echo"] == {
        "count": 3,
        "nested": {"parameters": [{"name": "p", "value": 7}]},
    }


def test_dates_stay_strings_as_in_go(tmp_path):
    text = MINIMAL.replace("echo: {count: 3", "echo: {day: 2024-01-31, count: 3")
    workflow = resolve_workflow(load_documents([write(tmp_path, text)]))
    assert workflow.templates["main"]["plugin"]["echo"]["day"] == "2024-01-31"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (100000000002, "100000000002"),
        (True, "true"),
        (False, "false"),
        (1.5, "1.5"),
        (1e20, "100000000000000000000"),
    ],
)
def test_scalars_become_the_strings_go_makes(value, text):
    assert go_scalar_string(value) == text


def test_int_or_string_fields_take_integers(tmp_path):
    text = MINIMAL.replace("      plugin:", "      retryStrategy: {limit: 3}\n      plugin:")
    assert load_documents([write(tmp_path, text)])[0].body["spec"]["templates"][0]["retryStrategy"] == {
        "limit": 3
    }


def test_a_schema_violation_names_file_document_path_and_expectation(tmp_path):
    text = MINIMAL + "---\n" + MINIMAL.replace("entrypoint: main", "entrypoint: [main]")
    path = write(tmp_path, text)
    with pytest.raises(WorkflowError) as caught:
        load_documents([path])
    message = str(caught.value)
    assert f"{path}, document 2 (Workflow minimal)" in message
    assert "$.spec.entrypoint: expected a string, got a list" in message


def test_an_unknown_field_is_a_warning_saying_a_cluster_ignores_it_and_argo_lint_refuses_it(tmp_path):
    # kubectl apply keeps it (the CRD preserves unknown fields) and the controller ignores it; `argo lint`
    # and `argo submit` decode strictly (workflow/common/parse.go): `json: unknown field "dependancies"`.
    text = MINIMAL.replace("    - name: main\n", "    - name: main\n      dependancies: [a]\n")
    [document] = load_documents([write(tmp_path, text)])
    [warning] = document.warnings
    assert warning.startswith("$.spec.templates[0] (template `main`): unknown field `dependancies` (expected")
    assert warning.endswith(
        "a cluster's controller ignores it, `argo lint` and `argo submit` refuse it (json: unknown field "
        '"dependancies")'
    )


def test_a_missing_required_field_is_named(tmp_path):
    text = MINIMAL.replace("kind: Workflow\nmetadata:\n  name: minimal\n", "kind: Workflow\n")
    with pytest.raises(WorkflowError, match=r"\$: missing required field `metadata`"):
        load_documents([write(tmp_path, text)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [unclosed", "is not valid YAML"),
        ("- 1\n- 2\n", "expected a Workflow or WorkflowTemplate object, got a list"),
        ("kind: Pod\nmetadata: {name: p}\n", "kind 'Pod' cannot be run"),
    ],
)
def test_documents_that_are_not_workflows_are_refused(tmp_path, text, expected):
    with pytest.raises(WorkflowError, match=re.escape(expected)):
        load_documents([write(tmp_path, text)])


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(WorkflowError, match="cannot read"):
        load_documents([tmp_path / "missing.yaml"])


def test_two_workflows_are_refused(tmp_path):
    documents = load_documents([write(tmp_path, MINIMAL + "---\n" + MINIMAL)])
    with pytest.raises(WorkflowError, match="found 2 Workflows"):
        resolve_workflow(documents)


def test_an_unknown_entrypoint_is_refused(tmp_path):
    documents = load_documents([write(tmp_path, MINIMAL.replace("entrypoint: main", "entrypoint: nope"))])
    with pytest.raises(WorkflowError, match="template name 'nope' undefined"):
        resolve_workflow(documents)


def test_a_parameter_without_value_and_a_value_outside_its_enum_are_refused(tmp_path):
    text = MINIMAL.replace(
        "  entrypoint: main\n", "  entrypoint: main\n  arguments:\n    parameters: [{name: who}]\n"
    )
    documents = load_documents([write(tmp_path, text)])
    with pytest.raises(WorkflowError, match=re.escape("spec.arguments.who.value is required")):
        resolve_workflow(documents)
    text = text.replace("{name: who}", "{name: who, value: a, enum: [a, b]}")
    documents = load_documents([write(tmp_path, text)])
    assert resolve_workflow(documents).parameters == {"who": "a"}
    with pytest.raises(WorkflowError, match=re.escape("should be present in spec.arguments.who.enum")):
        resolve_workflow(documents, parameters={"who": "c"})


def test_generated_names_follow_kubernetes():
    names = {generate_name("x-") for _ in range(50)}
    assert len(names) > 40
    assert all(re.fullmatch(r"x-[bcdfghjklmnpqrstvwxz2456789]{5}", n) for n in names)


LIBRARY = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib, namespace: argo}
spec:
  templates:
    - name: t
      plugin: {echo: {}}
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterWorkflowTemplate
metadata: {name: shared}
spec:
  templates:
    - name: t
      plugin: {echo: {cluster: "yes"}}
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: elsewhere, namespace: other}
spec:
  templates:
    - name: t
      plugin: {echo: {}}
"""


def test_template_refs_resolve_among_the_templates_loaded_with_the_workflow(tmp_path):
    workflow = resolve_workflow(
        load_documents([write(tmp_path, MINIMAL), write(tmp_path, LIBRARY, "lib.yaml")])
    )
    assert sorted(workflow.library) == ["cluster/shared", "namespaced/lib"]
    found, template = workflow.resolve(
        {"templateRef": {"name": "shared", "template": "t", "clusterScope": True}}
    )
    assert (found.scope, template["plugin"]) == ("cluster/shared", {"echo": {"cluster": "yes"}})
    # A name resolves in the set it is called from: the library's own templates, here.
    assert workflow.resolve({"template": "t"}, found)[1] is template
    assert workflow.resolve({"template": "main"})[0].scope == "local/"
    with pytest.raises(WorkflowError, match="template nope not found in the workflow"):
        workflow.resolve({"template": "nope"})
    # A WorkflowTemplate of another namespace is not the workflow's to use.
    with pytest.raises(WorkflowError, match=r"WorkflowTemplate 'elsewhere' not found in the files given"):
        workflow.resolve({"templateRef": {"name": "elsewhere", "template": "t"}})
    with pytest.raises(WorkflowError, match="templateRef needs both `name`"):
        workflow.resolve({"templateRef": {"name": "lib"}})


def test_fields_argo_v4_removed_and_near_misses_get_a_did_you_mean() -> None:
    from argoplug.agent.schema import schema_findings

    cron = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "old"},
        "spec": {
            "schedule": "* * * * *",
            "workflowSpec": {
                "entrypoint": "main",
                "templates": [{"name": "main", "suspend": {}, "sussspend": {}}],
            },
        },
    }
    problems, unknown = schema_findings("CronWorkflow", cron)
    assert (
        "$.spec: missing required field `schedules` (`schedule` was replaced by `schedules` (a list) since "
        "Argo v4.0: `argo convert` rewrites it)"
    ) in problems
    assert any("did you mean `suspend` for `sussspend`?" in line for line in unknown), unknown
