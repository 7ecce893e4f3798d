"""The SageMaker Pipelines plugin through status progressions moto cannot show, with botocore's Stubber.

The plugin runs in a LiveServer over real sockets; only the SageMaker clients are stubbed. No test waits
for a requeue: each call is made at once, as a faster agent would.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from botocore.stub import ANY
from sagemaker_support import PIPELINE_ARN, REGION, Stubs, outputs

from argoplug import aws
from argoplug.plugin import idempotency_key
from argoplug.plugins import sagemaker
from argoplug.plugins.sagemaker.executions import CALL_SECONDS
from argoplug.protocol import ExecuteTemplateArgs
from argoplug.testing import LiveServer, make_request

EXECUTION = f"{PIPELINE_ARN}/execution/abc123def456"
SECOND = f"{PIPELINE_ARN}/execution/second000002"


def block(**args: Any) -> dict[str, Any]:
    return {"sagemaker-pipelines": {"pipeline": "MyPipeline", "region": REGION, **args}}


def key_of(request: dict[str, Any]) -> str:
    return idempotency_key(msgspec.convert(request, ExecuteTemplateArgs), "sagemaker-pipelines")


def summary(arn: str, name: str, status: str) -> dict[str, Any]:
    return {
        "PipelineExecutionArn": arn,
        "PipelineExecutionDisplayName": name,
        "PipelineExecutionStatus": status,
        "StartTime": datetime(2026, 1, 1, tzinfo=UTC),
    }


def test_executing_then_succeeded_with_backoff_capped_by_poll(server: LiveServer, stubs: Stubs) -> None:
    request = make_request(block(poll="8s"))
    key = key_of(request)
    stubs.expect_list([])
    stubs.expect_start(
        EXECUTION,
        {
            "PipelineName": "MyPipeline",
            "PipelineExecutionDisplayName": f"test-workflow-{key}-1",
            "PipelineExecutionDescription": ANY,
            "ClientRequestToken": f"argoplug-{key}-1",
        },
    )
    stubs.expect_poll(EXECUTION, "Executing", steps=[{"StepName": "Train", "StepStatus": "Executing"}])
    stubs.expect_poll(EXECUTION, "Executing")
    stubs.expect_poll(EXECUTION, "Executing")
    stubs.expect_poll(EXECUTION, "Succeeded", steps=[{"StepName": "Train", "StepStatus": "Succeeded"}])

    replies = [server.post(request).json() for _ in range(4)]

    assert [r["node"]["phase"] for r in replies] == ["Running", "Running", "Running", "Succeeded"]
    assert [r.get("requeue") for r in replies] == ["5s", "8s", "8s", None]
    assert replies[0]["node"]["message"] == "pipeline execution run-1 Executing"
    running = outputs(replies[0])
    assert running["execution-arn"] == EXECUTION and running["execution-status"] == "Executing"
    assert json.loads(running["steps"]) == [{"name": "Train", "status": "Executing", "failure_reason": ""}]
    final = outputs(replies[-1])
    assert final == {
        "pipeline-arn": PIPELINE_ARN,
        "execution-arn": EXECUTION,
        "execution-status": "Succeeded",
        "failure-reason": "",
        "steps": '[{"name":"Train","status":"Succeeded","failure_reason":""}]',
    }
    assert replies[-1]["node"]["message"] == "pipeline execution run-1 Succeeded"
    # A repeated call after success answers the same, with no AWS call at all.
    assert server.post(request).json() == replies[-1]
    assert stubs.calls.count("StartPipelineExecution") == 1
    stubs.done()


def test_failed_with_a_reason_then_an_identical_call_starts_attempt_two(
    server: LiveServer, stubs: Stubs
) -> None:
    request = make_request(block())
    key = key_of(request)
    stubs.expect_list([])
    stubs.expect_start(EXECUTION)
    failed_step = {
        "StepName": "Train",
        "StepStatus": "Failed",
        "FailureReason": "AlgorithmError: out of memory",
    }
    stubs.expect_poll(EXECUTION, "Failed", reason="Step failure: Train", steps=[failed_step])
    stubs.expect_start(
        SECOND,
        {
            "PipelineName": "MyPipeline",
            "PipelineExecutionDisplayName": f"test-workflow-{key}-2",
            "PipelineExecutionDescription": ANY,
            "ClientRequestToken": f"argoplug-{key}-2",
        },
    )
    stubs.expect_poll(SECOND, "Executing")

    failed = server.post(request).json()
    assert failed["node"]["phase"] == "Failed"
    assert (
        failed["node"]["message"]
        == "pipeline execution run-1 Failed: Step failure: Train (failed steps: Train)"
    )
    assert "requeue" not in failed
    assert outputs(failed)["failure-reason"] == "Step failure: Train"
    assert json.loads(outputs(failed)["steps"])[0]["failure_reason"] == "AlgorithmError: out of memory"

    retried = server.post(request).json()  # Argo's retryStrategy sends the identical template again
    assert retried["node"]["phase"] == "Running"
    assert outputs(retried)["execution-arn"] == SECOND
    stubs.done()


def test_stopped_execution_is_a_failed_node(server: LiveServer, stubs: Stubs) -> None:
    stubs.expect_list([])
    stubs.expect_start(EXECUTION)
    stubs.expect_poll(EXECUTION, "Stopped")
    reply = server.execute(block())
    assert reply["node"]["phase"] == "Failed"
    assert reply["node"]["message"] == "pipeline execution run-1 Stopped"


@pytest.mark.parametrize(
    ("code", "status", "says"),
    [
        (
            "ThrottlingException",
            400,
            "AWS throttled DescribePipelineExecution (ThrottlingException: slow down)",
        ),
        ("ServiceUnavailable", 503, "AWS DescribePipelineExecution failed with HTTP 503"),
        ("InternalFailure", 500, "AWS DescribePipelineExecution failed with HTTP 500"),
    ],
)
def test_throttling_and_5xx_keep_the_node_running(
    server: LiveServer, stubs: Stubs, code: str, status: int, says: str
) -> None:
    stubs.expect_list([])
    stubs.expect_start(EXECUTION)
    stubs.expect_poll(EXECUTION, "Executing")
    stubs.sm.add_client_error("describe_pipeline_execution", code, "slow down", http_status_code=status)
    stubs.expect_poll(EXECUTION, "Succeeded")

    first = server.execute(block())
    blip = server.execute(block())
    after = server.execute(block())

    assert first["node"]["phase"] == "Running"
    assert blip["node"]["phase"] == "Running"
    assert blip["requeue"] == "15s"
    assert blip["node"]["message"].startswith(says)
    assert after["node"]["phase"] == "Succeeded"
    assert stubs.calls.count("StartPipelineExecution") == 1
    stubs.done()


def test_throttled_start_is_retried_without_a_second_execution(server: LiveServer, stubs: Stubs) -> None:
    stubs.expect_list([])
    stubs.sm.add_client_error("start_pipeline_execution", "ThrottlingException", "Rate exceeded")
    stubs.expect_list([])
    stubs.expect_start(EXECUTION)
    stubs.expect_poll(EXECUTION, "Executing")

    assert server.execute(block())["node"]["phase"] == "Running"
    assert server.execute(block())["node"]["phase"] == "Running"
    stubs.done()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", 400),
        ("AccessDenied", 403),
        ("UnauthorizedOperation", 403),
        ("ResourceNotFound", 400),
    ],
)
def test_access_denied_and_not_found_fail_with_aws_message(
    server: LiveServer, stubs: Stubs, code: str, status: int
) -> None:
    stubs.expect_list([])
    message = "User: arn:aws:sts::100000000002:assumed-role/x is not authorized to perform: sagemaker:Start"
    stubs.sm.add_client_error("start_pipeline_execution", code, message, http_status_code=status)
    reply = server.execute(block())
    assert reply["node"]["phase"] == "Failed"
    assert reply["node"]["message"] == f"StartPipelineExecution failed: {code}: {message}"
    assert outputs(reply)["execution-arn"] == ""
    assert "requeue" not in reply


def test_a_restarted_server_mid_execution_polls_what_it_finds(stubs: Stubs) -> None:
    request = make_request(block())
    name = f"test-workflow-{key_of(request)}-1"
    stubs.expect_list([])
    stubs.expect_start(EXECUTION)
    stubs.expect_poll(EXECUTION, "Executing")
    with LiveServer(list(sagemaker.plugins)) as first:
        assert first.post(request).json()["node"]["phase"] == "Running"
    # The sidecar was killed: a new one, with a new tracker, gets the same request.
    sagemaker.use_tracker()
    stubs.expect_list(
        [summary(SECOND, "someone-elses-run-1", "Executing"), summary(EXECUTION, name, "Executing")]
    )
    stubs.expect_poll(EXECUTION, "Executing")
    stubs.expect_poll(EXECUTION, "Succeeded")
    with LiveServer(list(sagemaker.plugins)) as restarted:
        running = restarted.post(request).json()
        done = restarted.post(request).json()
    assert running["node"]["phase"] == "Running"
    assert outputs(running)["execution-arn"] == EXECUTION
    assert done["node"]["phase"] == "Succeeded"
    assert stubs.calls.count("StartPipelineExecution") == 1
    stubs.done()


def test_after_a_restart_the_latest_attempt_is_found(server: LiveServer, stubs: Stubs) -> None:
    request = make_request(block())
    key = key_of(request)
    stubs.expect_list(
        [
            summary(SECOND, f"test-workflow-{key}-2", "Executing"),
            summary(EXECUTION, f"test-workflow-{key}-1", "Failed"),
        ]
    )
    stubs.expect_poll(SECOND, "Executing")
    reply = server.post(request).json()
    assert reply["node"]["phase"] == "Running"
    assert outputs(reply)["execution-arn"] == SECOND
    stubs.done()


def test_wait_false_succeeds_while_the_execution_runs(server: LiveServer, stubs: Stubs) -> None:
    stubs.expect_list([])
    stubs.expect_start(EXECUTION)
    stubs.expect_poll(EXECUTION, "Executing")
    reply = server.execute(block(wait=False))
    assert reply["node"]["phase"] == "Succeeded"
    assert "not waiting" in reply["node"]["message"]
    assert outputs(reply)["execution-arn"] == EXECUTION


def test_steps_that_cannot_be_listed_are_empty_and_warned_about_once(
    server: LiveServer, stubs: Stubs, caplog: Any
) -> None:
    stubs.expect_list([])
    stubs.expect_start(EXECUTION)
    stubs.expect_describe(EXECUTION, "Executing")
    stubs.sm.add_client_error(
        "list_pipeline_execution_steps", "InternalFailure", "boom", http_status_code=500
    )
    stubs.expect_describe(EXECUTION, "Succeeded")
    stubs.sm.add_client_error("list_pipeline_execution_steps", "AccessDeniedException", "no")
    with caplog.at_level(logging.WARNING, logger="argoplug.plugins.sagemaker"):
        running = server.execute(block())
        done = server.execute(block())
    assert running["node"]["phase"] == "Running" and done["node"]["phase"] == "Succeeded"
    assert outputs(running)["steps"] == outputs(done)["steps"] == "[]"
    assert len([r for r in caplog.records if "ListPipelineExecutionSteps" in r.getMessage()]) == 1
    stubs.done()


def stop_block(**args: Any) -> dict[str, Any]:
    return {"sagemaker-pipelines": {"action": "stop", "execution_arn": EXECUTION, **args}}


def test_stop_runs_until_stopped(server: LiveServer, stubs: Stubs) -> None:
    stubs.expect_describe(EXECUTION, "Executing")  # not asked to stop yet: its steps do not matter
    stubs.sm.add_response(
        "stop_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION},
        {"PipelineExecutionArn": EXECUTION, "ClientRequestToken": ANY},
    )
    stubs.expect_poll(EXECUTION, "Stopping")
    stubs.expect_poll(EXECUTION, "Stopped")

    stopping = server.execute(stop_block())
    stopped = server.execute(stop_block())

    assert stopping["node"]["phase"] == "Running"
    assert stopping["requeue"] == "5s"
    assert stopping["node"]["message"] == "pipeline execution run-1 Stopping"
    assert stopped["node"]["phase"] == "Succeeded"
    assert stopped["node"]["message"] == "pipeline execution run-1 Stopped"
    assert outputs(stopped)["execution-status"] == "Stopped"
    assert set(outputs(stopped)) == {
        "pipeline-arn",
        "execution-arn",
        "execution-status",
        "failure-reason",
        "steps",
    }
    stubs.done()


def test_stop_of_an_ended_execution_has_nothing_to_do(server: LiveServer, stubs: Stubs) -> None:
    stubs.expect_poll(EXECUTION, "Succeeded")
    reply = server.execute(stop_block())
    assert reply["node"]["phase"] == "Succeeded"
    assert reply["node"]["message"] == "pipeline execution run-1 already Succeeded; nothing to stop"
    assert stubs.calls.count("StopPipelineExecution") == 0
    stubs.done()


def test_stop_that_conflicts_because_it_stopped_meanwhile(server: LiveServer, stubs: Stubs) -> None:
    stubs.expect_describe(EXECUTION, "Executing")
    stubs.sm.add_client_error("stop_pipeline_execution", "ConflictException", "not executing")
    stubs.expect_poll(EXECUTION, "Stopping")
    reply = server.execute(stop_block())
    assert reply["node"]["phase"] == "Running"
    stubs.done()


def test_stop_of_an_execution_in_another_account_fails(server: LiveServer, stubs: Stubs) -> None:
    reply = server.execute(stop_block(account_id="100000000009"))
    assert reply["node"]["phase"] == "Failed"
    assert (
        "in AWS account 100000000002 (by its ARN), not in account_id 100000000009" in reply["node"]["message"]
    )
    assert stubs.calls == []


@pytest.mark.parametrize(
    "prefix", ["sm-pipelines-r58tg", "nightly run / team A", "-x-", "é" * 10, "w" * 200, "", "a--b"]
)
@pytest.mark.parametrize("attempt", [1, 12, 1000])
def test_names_keep_to_aws_limits(prefix: str, attempt: int) -> None:
    key = "0123456789abcdef0123456789abcdef"
    name = sagemaker.execution_display_name(prefix, key, attempt)
    assert len(name) <= 82
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,81}", name)
    assert name.endswith(f"{key}-{attempt}")
    token = sagemaker.client_request_token(key, attempt)
    assert 32 <= len(token) <= 128 and re.fullmatch(r"[A-Za-z0-9_-]+", token)


def unrelated(page: int) -> list[dict[str, Any]]:
    """A page of 100 executions of other tasks."""
    return [
        summary(f"{PIPELINE_ARN}/execution/p{page}x{i}", f"other-{page}-{i}", "Succeeded") for i in range(100)
    ]


def test_find_reads_at_most_the_1000_most_recent_executions(server: LiveServer, stubs: Stubs) -> None:
    # A pipeline with a long history and no execution of this task: ten pages, not the whole history.
    for page in range(10):
        stubs.expect_list(unrelated(page), token=f"t{page}" if page else "", next_token=f"t{page + 1}")
    stubs.expect_start(EXECUTION)
    stubs.expect_poll(EXECUTION, "Executing")
    reply = server.execute(block())
    assert reply["node"]["phase"] == "Running", reply
    assert stubs.calls.count("ListPipelineExecutions") == 10
    stubs.done()


def test_find_reads_no_further_page_than_the_calls_time_allows(server: LiveServer, stubs: Stubs) -> None:
    stubs.clock.per_call = 1.0  # every AWS call takes a second
    for page in range(4):
        stubs.expect_list(unrelated(page), token=f"t{page}" if page else "", next_token=f"t{page + 1}")
    stubs.expect_start(EXECUTION)
    stubs.expect_poll(EXECUTION, "Executing")
    started = stubs.clock.now
    reply = server.execute(block())
    assert reply["node"]["phase"] == "Running", reply
    # A page is asked for only while it and the start after it fit in CALL_SECONDS at their worst (6 s
    # each): pages at 0-3 s, then the start, the describe and the steps.
    assert stubs.calls.count("ListPipelineExecutions") == 4
    assert stubs.clock.now - started == 7
    stubs.done()


def test_a_call_with_slow_aws_puts_off_what_can_wait(server: LiveServer, stubs: Stubs) -> None:
    stubs.clock.per_call = aws.REQUEST_SECONDS  # every AWS call takes its longest
    stubs.expect_list([], next_token="t1")  # more pages, but no time for them
    stubs.expect_start(EXECUTION)
    stubs.expect_poll(EXECUTION, "Executing")
    started = stubs.clock.now
    first = server.execute(block())
    assert stubs.clock.now - started == 2 * aws.REQUEST_SECONDS <= CALL_SECONDS
    assert first["node"]["phase"] == "Running"
    assert outputs(first)["execution-arn"] == EXECUTION
    assert stubs.calls == ["ListPipelineExecutions", "StartPipelineExecution"]  # described next call

    started = stubs.clock.now
    second = server.execute(block())
    assert stubs.clock.now - started == 2 * aws.REQUEST_SECONDS
    assert second["node"]["phase"] == "Running"
    stubs.done()


def test_an_ended_execution_is_reported_with_its_steps_even_when_a_call_runs_out_of_time(
    server: LiveServer, stubs: Stubs
) -> None:
    request = make_request(block())
    stubs.clock.per_call = 5.0
    stubs.expect_list([summary(EXECUTION, f"test-workflow-{key_of(request)}-1", "Succeeded")])
    stubs.expect_describe(EXECUTION, "Succeeded")  # found at 10 s: no time left for its steps
    stubs.expect_poll(EXECUTION, "Succeeded", steps=[{"StepName": "Train", "StepStatus": "Succeeded"}])

    first = server.post(request).json()
    assert first["node"]["phase"] == "Running"
    assert first["node"]["message"] == "pipeline execution run-1 Succeeded; reading its steps"
    done = server.post(request).json()
    assert done["node"]["phase"] == "Succeeded"
    assert json.loads(outputs(done)["steps"]) == [
        {"name": "Train", "status": "Succeeded", "failure_reason": ""}
    ]
    stubs.done()


def test_steps_are_read_100_a_page(server: LiveServer, stubs: Stubs) -> None:
    stubs.expect_list([])
    stubs.expect_start(EXECUTION)
    stubs.expect_describe(EXECUTION, "Succeeded")
    expected = {"PipelineExecutionArn": EXECUTION, "SortOrder": "Ascending", "MaxResults": 100}
    stubs.sm.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": [{"StepName": "Prepare", "StepStatus": "Succeeded"}], "NextToken": "s2"},
        expected,
    )
    stubs.sm.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": [{"StepName": "Train", "StepStatus": "Succeeded"}]},
        {**expected, "NextToken": "s2"},
    )
    reply = server.execute(block())
    assert reply["node"]["phase"] == "Succeeded"
    assert [s["name"] for s in json.loads(outputs(reply)["steps"])] == ["Prepare", "Train"]
    stubs.done()


def test_aws_refusals_before_any_job_carry_every_output(server: LiveServer, stubs: Stubs) -> None:
    stubs.sm.add_client_error("list_pipeline_executions", "AccessDeniedException", "no")
    reply = server.execute(block())
    assert reply["node"]["phase"] == "Failed"
    assert set(outputs(reply)) == {
        "pipeline-arn",
        "execution-arn",
        "execution-status",
        "failure-reason",
        "steps",
    }
    stubs.done()
