"""The IAM statements the Glue, Step Functions and Lambda plugins contribute to `argoplug build`: scoped by
the bundle's settings, and holding every call the plugins make (recorded at botocore's boundary while they
run against moto, the stops on SIGTERM included through a Stubber-free call of `cancel`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sagemaker_support import ACCOUNT, REGION

from argoplug import aws
from argoplug.aws.sandbox import AwsSandbox, SandboxGlueJob, SandboxLambdaFunction, SandboxStateMachine
from argoplug.hooks import HookError, contributions, plugin_manager
from argoplug.hookspecs import BuildContext
from argoplug.jobs import JobState, JobStatus
from argoplug.plugins import glue, lambda_functions, step_functions
from argoplug.registry import load
from argoplug.testing import LiveServer

# API operations whose IAM action has another name (Service Authorization Reference).
IAM_NAMES = {"Invoke": "InvokeFunction"}


def statements(name: str, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    manager = plugin_manager(load([name]).packages)
    context = BuildContext("aws", ("argo",), all_settings={name: settings or {}})
    found = contributions(manager, "argoplug_iam_statements", context=context)
    assert {package for package, _ in found} == {name}
    return [statement for _, statement in found]


def actions(found: list[dict[str, Any]]) -> set[str]:
    return {action for statement in found for action in statement["Action"]}


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Every AWS API call a botocore client makes, as IAM names it (`glue:GetJob`)."""
    from botocore.client import BaseClient

    calls: set[str] = set()
    original = BaseClient._make_api_call
    prefixes = {"states": "states", "glue": "glue", "lambda": "lambda", "sts": "sts"}

    def recording(self: Any, operation_name: str, api_params: Any) -> Any:
        action = IAM_NAMES.get(operation_name, operation_name)
        calls.add(f"{prefixes.get(self.meta.service_model.signing_name, '?')}:{action}")
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    yield calls


def test_the_statements_name_the_resources_of_the_settings() -> None:
    settings = {"regions": [REGION], "accounts": [ACCOUNT]}
    assert statements("glue-job", {**settings, "jobs": ["MyGlueJob"]}) == [
        {
            "Sid": "GlueJobs",
            "Effect": "Allow",
            "Action": list(glue.permissions.JOB_ACTIONS),
            "Resource": [f"arn:aws:glue:{REGION}:{ACCOUNT}:job/MyGlueJob"],
        }
    ]
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:MyStepFunction"
    found = statements("step-functions", {**settings, "state_machines": ["MyStepFunction"]})
    assert [(s["Sid"], s["Resource"]) for s in found] == [
        ("StepFunctionsStateMachines", [machine]),
        ("StepFunctionsExecutions", [f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MyStepFunction:*"]),
    ]
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:MyLambdaFunction"
    found = statements(
        "lambda-function", {"functions": [function], "assume_roles": ["arn:aws:iam::1:role/x"]}
    )
    assert [(s["Sid"], s["Resource"]) for s in found] == [
        ("LambdaFunctions", [function]),
        ("LambdaFunctionVersions", [f"{function}:*"]),
        ("LambdaFunctionsAssumeRoles", ["arn:aws:iam::1:role/x"]),
    ]


def test_without_settings_every_resource_of_the_kind_is_allowed() -> None:
    assert statements("glue-job")[0]["Resource"] == ["arn:aws:glue:*:*:job/*"]


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"pipelines": ["x"]}, "settings.glue-job: unknown key(s) pipelines (expected some of: accounts,"),
        ({"accounts": ["12"]}, "settings.glue-job.accounts: expected 12 digits, got '12'"),
        ({"jobs": [3]}, "settings.glue-job.jobs: expected a list of strings, got [3]"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, Any], says: str) -> None:
    with pytest.raises(HookError) as caught:
        statements("glue-job", settings)
    assert says in str(caught.value)


def test_every_call_the_plugins_make_is_in_their_policy(
    aws_calls: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with AwsSandbox(
        account=ACCOUNT,
        region=REGION,
        glue_jobs=[SandboxGlueJob(name="J")],
        state_machines=[SandboxStateMachine(name="M")],
        lambda_functions=[SandboxLambdaFunction(name="F")],
    ) as sandbox:
        for name, value in sandbox.env.items():
            monkeypatch.setenv(name, value)
        aws_calls.clear()  # what the sandbox made its resources with
        plugins = [*glue.plugins, *step_functions.plugins, *lambda_functions.plugins]
        with LiveServer(plugins) as server:
            for block in (
                {"glue-job": {"action": "validate", "job_name": "J"}},
                {"glue-job": {"job_name": "J", "wait": False}},
                {"step-functions": {"action": "validate", "state_machine": "M"}},
                {"step-functions": {"state_machine": "M"}},
                {"lambda-function": {"action": "validate", "function": "F"}},
                {"lambda-function": {"function": "F"}},
            ):
                assert server.run_task(block).phase == "Succeeded", block
        execution = aws.client("stepfunctions").list_executions(
            stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:M"
        )["executions"][0]
        job = step_functions.handlers.StateMachineExecution(
            aws.client("stepfunctions"), "arn", step_functions.StepFunctionsArgs()
        )
        job.cancel(JobState(execution["executionArn"], JobStatus.RUNNING))
    calls = aws_calls - {"sts:GetCallerIdentity", "states:ListExecutions"}  # STS needs no permission
    allowed = (
        actions(statements("glue-job"))
        | actions(statements("step-functions"))
        | actions(statements("lambda-function"))
    )
    assert calls <= allowed, calls - allowed
    assert "glue:BatchStopJobRun" in allowed  # moto lacks it: test_aws_services_stubbed shows the call
    assert {"glue:GetJob", "glue:StartJobRun", "states:StopExecution", "lambda:InvokeFunction"} <= calls
