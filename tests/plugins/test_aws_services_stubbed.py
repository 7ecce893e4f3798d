"""The Glue, Step Functions and Lambda plugins where moto cannot show it: status progressions, AWS's own
failure messages, function errors and the stops on SIGTERM, with botocore's Stubber on the cached clients.

The endpoint is a closed loopback port: a call that is not stubbed fails, and nothing reaches AWS.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from sagemaker_support import ACCOUNT, REGION, outputs

from argoplug import aws
from argoplug.jobs import stop_running_jobs
from argoplug.plugins import glue, lambda_functions, sagemaker, step_functions
from argoplug.testing import LiveServer

RUN_ID = "jr_0123456789abcdef"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:MyStepFunction"


@pytest.fixture(autouse=True)
def closed_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    plugins = [*sagemaker.plugins, *glue.plugins, *step_functions.plugins, *lambda_functions.plugins]
    with LiveServer(plugins) as live:
        yield live


@pytest.fixture
def stubbed(request: pytest.FixtureRequest) -> Iterator[Stubber]:
    """A Stubber on the client the plugin will use: `glue`, `stepfunctions` or `lambda` (parametrized)."""
    service = request.param
    options = {"read_timeout": lambda_functions.handlers.INVOKE_READ_TIMEOUT} if service == "lambda" else {}
    client = aws.client(service, region=None, session_name="argo-argo-test-workflow", **options)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def job_run(state: str, **extra: Any) -> dict[str, Any]:
    return {"JobRun": {"Id": RUN_ID, "JobName": "MyGlueJob", "JobRunState": state, **extra}}


@pytest.mark.parametrize("stubbed", ["glue"], indirect=True)
def test_a_failing_glue_run_is_a_failed_node_with_aws_error_message(
    stubbed: Stubber, server: LiveServer
) -> None:
    stubbed.add_response("get_job_runs", {"JobRuns": []}, {"JobName": "MyGlueJob", "MaxResults": 200})
    stubbed.add_response("start_job_run", {"JobRunId": RUN_ID})
    stubbed.add_response("get_job_run", job_run("RUNNING"), {"JobName": "MyGlueJob", "RunId": RUN_ID})
    message = "AnalysisException: Table or view not found: sales; line 1 pos 14"
    stubbed.add_response(
        "get_job_run",
        job_run("FAILED", ErrorMessage=message, ExecutionTime=42),
        {"JobName": "MyGlueJob", "RunId": RUN_ID},
    )
    block = {"glue-job": {"job_name": "MyGlueJob"}}
    started = server.execute(block)
    assert started["node"]["phase"] == "Running" and started["requeue"] == "5s"
    assert outputs(started)["job-run-state"] == "STARTING"
    running = server.execute(block)
    assert running["node"]["phase"] == "Running" and running["requeue"] == "10s"
    failed = server.execute(block)
    assert failed["node"]["phase"] == "Failed"
    assert failed["node"]["message"] == f"Glue job run {RUN_ID} of MyGlueJob FAILED: {message}"
    assert outputs(failed) == {
        "job-run-id": RUN_ID,
        "job-run-state": "FAILED",
        "error-message": message,
        "execution-time": "42",
    }


@pytest.mark.parametrize("stubbed", ["glue"], indirect=True)
def test_a_glue_run_still_going_is_stopped_when_the_sidecar_stops(
    stubbed: Stubber, server: LiveServer
) -> None:
    stubbed.add_response("get_job_runs", {"JobRuns": []})
    stubbed.add_response("start_job_run", {"JobRunId": RUN_ID})
    assert server.execute({"glue-job": {"job_name": "MyGlueJob"}})["node"]["phase"] == "Running"
    stubbed.add_response(
        "batch_stop_job_run",
        {"SuccessfulSubmissions": [{"JobName": "MyGlueJob", "JobRunId": RUN_ID}], "Errors": []},
        {"JobName": "MyGlueJob", "JobRunIds": [RUN_ID]},
    )
    stopped = [s for s in stop_running_jobs(timeout=5) if s.ref == RUN_ID]
    assert [(s.stopped, s.outcome) for s in stopped] == [
        (True, f"asked Glue job run {RUN_ID} of MyGlueJob to stop")
    ]


@pytest.mark.parametrize("stubbed", ["stepfunctions"], indirect=True)
def test_an_execution_still_running_is_stopped_when_the_sidecar_stops(
    stubbed: Stubber, server: LiveServer
) -> None:
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MyStepFunction:argoplug-x-1"
    stubbed.add_client_error("describe_execution", "ExecutionDoesNotExist", "no such execution")
    stubbed.add_response("start_execution", {"executionArn": execution, "startDate": "2026-12-03T00:00:00Z"})
    running = {
        "executionArn": execution,
        "stateMachineArn": MACHINE,
        "status": "RUNNING",
        "startDate": "2026-12-03T00:00:00Z",
    }
    stubbed.add_response("describe_execution", running, {"executionArn": execution})
    reply = server.execute({"step-functions": {"state_machine": MACHINE, "input": {"n": 1}}})
    assert reply["node"]["phase"] == "Running", reply
    stubbed.add_response(
        "stop_execution",
        {"stopDate": "2026-12-03T00:01:00Z"},
        {
            "executionArn": execution,
            "error": "argoplug.SidecarStopped",
            "cause": "the argoplug sidecar that started it was stopped (Argo deleted the agent pod)",
        },
    )
    stopped = stop_running_jobs(timeout=5)
    assert [(s.ref, s.stopped) for s in stopped] == [(execution, True)]


@pytest.mark.parametrize("stubbed", ["lambda"], indirect=True)
def test_a_function_error_is_a_failed_node_with_its_type_and_message(
    stubbed: Stubber, server: LiveServer
) -> None:
    error = {"errorType": "KeyError", "errorMessage": "'customer_id'", "stackTrace": []}
    stubbed.add_response(
        "invoke",
        {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(error).encode())},
        {"FunctionName": "MyLambdaFunction", "InvocationType": "RequestResponse", "Payload": b'{"order": 7}'},
    )
    reply = server.execute({"lambda-function": {"function": "MyLambdaFunction", "payload": {"order": 7}}})
    assert reply["node"]["phase"] == "Failed"
    assert (
        reply["node"]["message"]
        == "Lambda function MyLambdaFunction failed (Unhandled): KeyError; 'customer_id'"
    )
    assert outputs(reply)["function-error"] == "Unhandled"
    assert json.loads(outputs(reply)["payload"]) == error


@pytest.mark.parametrize("stubbed", ["lambda"], indirect=True)
def test_a_response_over_the_output_limit_is_left_out_and_said(stubbed: Stubber, server: LiveServer) -> None:
    big = json.dumps({"rows": ["x" * 1000] * 300}).encode()
    stubbed.add_response("invoke", {"StatusCode": 200, "Payload": io.BytesIO(big)})
    reply = server.execute({"lambda-function": {"function": "MyLambdaFunction"}})
    assert reply["node"]["phase"] == "Succeeded"
    assert outputs(reply)["payload"] == ""
    assert f"output payload left out: {len(big)} bytes, over 256 KiB" in reply["node"]["message"]
