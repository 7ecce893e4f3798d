"""`argoplug run` refuses what Argo's validation refuses, word for word, on the cases of Argo's own tests.

The workflows are those of `workflow/validate/validate_test.go` (workflows/argo/validate/, each with its
source), and the messages are those the Go tests expect (`require.EqualError`; `ErrorContains` for
the ones whose tests check a part of the message: the whole is validate.go's format around it).
"""

from __future__ import annotations

import pytest

from argoplug.agent.checks import check
from argoplug.agent.workflow import WorkflowError, load_documents, resolve_workflow

from .helpers import HERE

CASES = HERE / "workflows" / "argo" / "validate"


@pytest.mark.parametrize(
    ("file", "message"),
    [
        # TestNestedTemplateRefWithError: require.EqualError.
        (
            "nested-template-ref-with-error.yaml",
            "templates.main.steps[1].call-A-input templates.A.steps[0].call-B templates.A "
            "inputs.parameters.message was not supplied",
        ),
        # TestDuplicateOrEmptyNames: "not unique", "name is required" (validateWorkflowFieldNames).
        ("dup-template-names.yaml", "spec.templates[1].name 'whalesay' is not unique"),
        ("dup-input-names.yaml", "templates.whalesay.inputs.parameters[1].name 'dup' is not unique"),
        ("empty-name.yaml", "templates.whalesay.inputs.parameters[0].name is required"),
    ],
)
def test_argos_own_validation_cases_are_refused_with_its_messages(file: str, message: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        check(resolve_workflow(load_documents([CASES / file])))
    lines = [line.strip() for line in str(caught.value).splitlines()]
    assert message in lines or str(caught.value).endswith(message), str(caught.value)
