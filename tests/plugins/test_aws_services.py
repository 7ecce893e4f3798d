"""The Glue, Step Functions and Lambda plugins against moto's HTTP server, as the published awf-aws plugin's
templates (`awf-aws-plugin` with `service`) and as their own plugin keys.

moto runs Glue job runs STARTING → RUNNING → SUCCEEDED, runs state machines with its Amazon States
Language interpreter (a Pass state gives its input back, a Fail state fails), and, without Docker, answers
a Lambda invocation with its payload. What moto lacks (a failed Glue run with its ErrorMessage, a
function error, BatchStopJobRun) is in test_aws_services_stubbed.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sagemaker_support import ACCOUNT, REGION, outputs

from argoplug.aws.sandbox import AwsSandbox, SandboxGlueJob, SandboxLambdaFunction, SandboxStateMachine
from argoplug.plugins import glue, lambda_functions, sagemaker, step_functions
from argoplug.testing import LiveServer

FAILING = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "DataError", "Cause": "no rows"}}}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[AwsSandbox]:
    with AwsSandbox(
        account=ACCOUNT,
        region=REGION,
        glue_jobs=[SandboxGlueJob(name="MyGlueJob", default_arguments={"--day": "today"})],
        state_machines=[
            SandboxStateMachine(name="MyStepFunction"),
            SandboxStateMachine(name="Failing", definition=FAILING),
        ],
        lambda_functions=[SandboxLambdaFunction(name="MyLambdaFunction")],
    ) as running:
        yield running


@pytest.fixture
def moto(sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> AwsSandbox:
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    return sandbox


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    plugins = [*sagemaker.plugins, *glue.plugins, *step_functions.plugins, *lambda_functions.plugins]
    with LiveServer(plugins) as live:
        yield live


def client(sandbox: AwsSandbox, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=sandbox.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def awf(service: str, action: str, **fields: Any) -> dict[str, Any]:
    """An awf-aws-plugin block as the published workflow templates write it (account id unquoted)."""
    return {"awf-aws-plugin": {"action": action, "service": service, "account_id": int(ACCOUNT), **fields}}


# --- Glue ----------------------------------------------------------------------------------------------


def test_awf_aws_validates_and_runs_a_glue_job(moto: AwsSandbox, server: LiveServer) -> None:
    valid = server.run_task(awf("aws_glue", "validate", region_name=REGION, job_name="MyGlueJob"))
    assert (valid.phase, valid.message) == ("Succeeded", "Glue job MyGlueJob exists")
    node = server.run_task(
        awf("aws_glue", "execute", region_name=REGION, job_name="MyGlueJob", parameters={"rows": 10})
    )
    assert node.phase == "Succeeded", node.message
    found = {p.name: p.value for p in node.outputs.parameters}
    assert found["job-run-state"] == "SUCCEEDED" and found["error-message"] == ""
    run = client(moto, "glue").get_job_run(JobName="MyGlueJob", RunId=found["job-run-id"])["JobRun"]
    # The job's default arguments, the block's parameters as arguments, and the task's own argument.
    assert run["Arguments"]["--day"] == "today" and run["Arguments"]["--rows"] == "10"
    assert run["Arguments"][glue.TASK_ARGUMENT].endswith("-1")


def test_a_glue_run_is_found_again_after_a_restart_not_started_twice(
    moto: AwsSandbox, server: LiveServer
) -> None:
    request = {"glue-job": {"job_name": "MyGlueJob", "arguments": {"--part": "restart"}}}
    first = outputs(server.execute(request))
    glue.use_tracker()  # a restarted sidecar: nothing in memory
    again = outputs(server.execute(request))
    assert again["job-run-id"] == first["job-run-id"]
    runs = client(moto, "glue").get_job_runs(JobName="MyGlueJob")["JobRuns"]
    assert [r["Id"] for r in runs if r["Arguments"].get("--part") == "restart"] == [first["job-run-id"]]


def test_a_missing_glue_job_fails_with_aws_message_and_every_output(
    moto: AwsSandbox, server: LiveServer
) -> None:
    reply = server.execute({"glue-job": {"job_name": "NoSuchJob", "region": REGION}})
    assert reply["node"]["phase"] == "Failed"
    assert "EntityNotFoundException" in reply["node"]["message"]
    assert set(outputs(reply)) == {"job-run-id", "job-run-state", "error-message", "execution-time"}


# --- Step Functions --------------------------------------------------------------------------------------


def test_awf_aws_validates_and_runs_a_state_machine(moto: AwsSandbox, server: LiveServer) -> None:
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:MyStepFunction"
    valid = server.run_task(
        awf("aws_step_functions", "validate", region_name=REGION, step_function_name="MyStepFunction")
    )
    assert (valid.phase, valid.message) == ("Succeeded", f"state machine {arn} is ACTIVE")
    node = server.run_task(
        awf(
            "aws_step_functions",
            "execute",
            region_name=REGION,
            step_function_name="MyStepFunction",
            parameters={"n": 1},
        )
    )
    assert node.phase == "Succeeded", node.message
    found = {p.name: p.value for p in node.outputs.parameters}
    assert found["execution-status"] == "SUCCEEDED"
    assert json.loads(found["output"]) == {"n": 1}
    assert found["execution-arn"].startswith(
        f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MyStepFunction:argoplug-"
    )


def test_a_failed_execution_is_a_failed_node_with_its_error_and_cause(
    moto: AwsSandbox, server: LiveServer
) -> None:
    node = server.run_task({"step-functions": {"state_machine": "Failing"}})
    assert node.phase == "Failed"
    assert node.message.endswith("FAILED: DataError; no rows")
    found = {p.name: p.value for p in node.outputs.parameters}
    assert (found["error"], found["cause"], found["execution-status"]) == ("DataError", "no rows", "FAILED")


def test_an_execution_is_named_from_the_task_and_never_started_twice(
    moto: AwsSandbox, server: LiveServer
) -> None:
    request = {"step-functions": {"state_machine": "MyStepFunction", "input": {"run": "twice"}}}
    first = outputs(server.execute(request))
    step_functions.use_tracker()  # a restarted sidecar
    again = outputs(server.execute(request))
    assert again["execution-arn"] == first["execution-arn"]
    executions = client(moto, "stepfunctions").list_executions(
        stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:MyStepFunction"
    )["executions"]
    assert [e["executionArn"] for e in executions].count(first["execution-arn"]) == 1


def test_bad_step_functions_arguments_are_named(server: LiveServer) -> None:
    reply = server.execute({"step-functions": {"state_machine": "arn:aws:s3:::x", "input": "{not json"}})
    message = reply["node"]["message"]
    assert reply["node"]["phase"] == "Failed"
    assert "`state_machine`: expected a name or an ARN like arn:aws:states:" in message
    assert "`input`: expected a JSON object or JSON text" in message


# --- Lambda ----------------------------------------------------------------------------------------------


def test_a_request_response_invocation_ends_with_the_functions_response(
    moto: AwsSandbox, server: LiveServer
) -> None:
    node = server.run_task({"lambda-function": {"function": "MyLambdaFunction", "payload": {"x": [1, 2]}}})
    assert node.phase == "Succeeded", node.message
    found = {p.name: p.value for p in node.outputs.parameters}
    assert found["status-code"] == "200" and json.loads(found["payload"]) == {"x": [1, 2]}


def test_awf_aws_lambda_is_an_event_invocation_with_parameters_as_payload(
    moto: AwsSandbox, server: LiveServer
) -> None:
    node = server.run_task(
        awf(
            "aws_lambda",
            "execute",
            region_name=REGION,
            lambda_function_name="MyLambdaFunction",
            parameters={"a": 1},
        )
    )
    assert (node.phase, node.message) == (
        "Succeeded",
        "invocation of Lambda function MyLambdaFunction queued",
    )
    assert {p.name: p.value for p in node.outputs.parameters}["status-code"] == "202"
    valid = server.run_task(
        awf("aws_lambda", "validate", region_name=REGION, lambda_function_name="MyLambdaFunction")
    )
    assert valid.phase == "Succeeded" and valid.message == "Lambda function MyLambdaFunction is Active"


def test_a_function_in_another_account_fails_saying_so(moto: AwsSandbox, server: LiveServer) -> None:
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:MyLambdaFunction"
    reply = server.execute({"lambda-function": {"function": arn, "account_id": ACCOUNT}})
    assert reply["node"]["phase"] == "Failed"
    assert (
        f"is in AWS account 123456789012 (by its ARN), not in account_id {ACCOUNT}"
        in reply["node"]["message"]
    )
