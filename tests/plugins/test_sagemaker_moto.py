"""The SageMaker Pipelines plugins against moto's HTTP server, called over real sockets (LiveServer).

moto facts relied on (moto 5.2.1): executions are `Succeeded` as soon as they start; ClientRequestToken is
ignored; ListPipelineExecutionSteps answers HTTP 500 (not implemented); the account is MOTO_ACCOUNT_ID.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from moto.core.exceptions import JsonRESTError
from moto.sagemaker import models as sagemaker_models
from moto.sagemaker import responses as sagemaker_responses
from sagemaker_support import ACCOUNT, PIPELINE_ARN, REGION, moto_executions, outputs

from argoplug.plugins import sagemaker
from argoplug.plugins.sagemaker.args import poll_seconds
from argoplug.testing import LiveServer, make_request

VECTORS = Path(__file__).resolve().parent.parent / "vectors"

pytestmark = pytest.mark.usefixtures("moto")


def native(**block: Any) -> dict[str, Any]:
    return {"sagemaker-pipelines": {"pipeline": "MyPipeline", "region": REGION, **block}}


def test_validate_reports_the_pipeline(server: LiveServer) -> None:
    reply = server.execute(native(action="validate", account_id=ACCOUNT))
    assert reply["node"]["phase"] == "Succeeded", reply
    assert outputs(reply) == {"pipeline-arn": PIPELINE_ARN, "pipeline-status": "Active"}
    assert "requeue" not in reply


def test_validate_of_a_missing_pipeline_fails_with_aws_message(server: LiveServer) -> None:
    reply = server.execute(native(action="validate", pipeline="NoSuchPipeline"))
    assert reply["node"]["phase"] == "Failed"
    assert "Could not find pipeline with PipelineName NoSuchPipeline" in reply["node"]["message"]
    assert "ValidationException" in reply["node"]["message"]
    assert outputs(reply) == {"pipeline-arn": "", "pipeline-status": ""}


def test_execute_starts_one_execution_and_reports_it(server: LiveServer, caplog: Any) -> None:
    before = set(moto_executions())
    block = native(parameters={"epochs": 3, "mode": "fast", "debug": True}, display_name="nightly run")
    request = make_request(block, workflow="sm-pipelines-r58tg")
    with caplog.at_level(logging.WARNING, logger="argoplug.plugins.sagemaker"):
        reply = server.post(request).json()
        again = server.post(request).json()

    assert reply["node"]["phase"] == "Succeeded", reply
    out = outputs(reply)
    assert out["pipeline-arn"] == PIPELINE_ARN
    assert re.fullmatch(re.escape(PIPELINE_ARN) + r"/execution/\w+", out["execution-arn"])
    assert out["execution-status"] == "Succeeded"
    assert out["failure-reason"] == ""
    assert out["steps"] == "[]"  # moto does not implement ListPipelineExecutionSteps
    assert again == reply  # a repeated call after success: the same success, nothing started

    started = {arn: e for arn, e in moto_executions().items() if arn not in before}
    assert list(started) == [out["execution-arn"]]
    execution = started[out["execution-arn"]]
    name = execution.pipeline_execution_display_name
    assert re.fullmatch(r"nightly-run-[0-9a-f]{32}-1", name)
    assert reply["node"]["message"] == f"pipeline execution {name} Succeeded"
    assert execution.pipeline_parameters == [
        {"Name": "epochs", "Value": "3"},
        {"Name": "mode", "Value": "fast"},
        {"Name": "debug", "Value": "true"},
    ]
    assert "sm-pipelines-r58tg" in execution.pipeline_execution_description
    warnings = [r for r in caplog.records if "ListPipelineExecutionSteps" in r.getMessage()]
    assert len(warnings) == 1  # the first call polled (and warned); the second answered from memory


def test_a_restarted_server_finds_the_execution_instead_of_starting_another() -> None:
    before = set(moto_executions())
    request = make_request(native(), uid="restart-uid")
    with LiveServer(list(sagemaker.plugins)) as first_server:
        first = first_server.post(request).json()
    assert first["node"]["phase"] == "Succeeded"

    sagemaker.use_tracker()  # the new sidecar remembers nothing
    with LiveServer(list(sagemaker.plugins)) as restarted:
        second = restarted.post(request).json()
    assert second["node"]["phase"] == "Succeeded"
    assert outputs(second)["execution-arn"] == outputs(first)["execution-arn"]
    assert len(set(moto_executions()) - before) == 1  # StartPipelineExecution ran once


class ServiceUnavailable(JsonRESTError):
    """An AWS outage, as moto's server answers it: HTTP 503 ServiceUnavailable."""

    code = 503


@pytest.fixture
def outage(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """New executions start `Executing` (moto would report them Succeeded at once); the function returned
    turns an outage of DescribePipelineExecution on (HTTP 503 from moto's server) or off."""
    original_init = sagemaker_models.FakePipelineExecution.__init__
    original_describe = sagemaker_responses.SageMakerResponse.describe_pipeline_execution

    def start_executing(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.pipeline_execution_status = "Executing"

    def unavailable(self: Any) -> Any:
        raise ServiceUnavailable("ServiceUnavailable", "Service is unavailable, try again later")

    monkeypatch.setattr(sagemaker_models.FakePipelineExecution, "__init__", start_executing)

    def switch(down: bool) -> None:
        describe = unavailable if down else original_describe
        monkeypatch.setattr(sagemaker_responses.SageMakerResponse, "describe_pipeline_execution", describe)

    return switch


def test_an_outage_while_polling_keeps_the_outputs_already_reported(
    server: LiveServer, outage: Callable[[bool], None]
) -> None:
    # Argo replaces the node's outputs with each reply's: the Running reply of a failed poll must carry
    # the execution's ARN (and the rest) that the node already showed.
    request = make_request(native(), uid="outage-uid")
    running = server.post(request).json()
    assert running["node"]["phase"] == "Running", running
    shown = outputs(running)
    assert shown["execution-arn"].startswith(PIPELINE_ARN + "/execution/")
    assert shown["execution-status"] == "Executing"

    outage(True)
    blip = server.post(request).json()
    assert blip["node"]["phase"] == "Running" and blip["requeue"] == "15s"
    assert blip["node"]["message"].startswith("AWS DescribePipelineExecution failed with HTTP 503")
    assert outputs(blip) == shown

    outage(False)
    moto_executions()[shown["execution-arn"]].pipeline_execution_status = "Succeeded"
    done = server.post(request).json()
    assert done["node"]["phase"] == "Succeeded", done
    assert outputs(done)["execution-arn"] == shown["execution-arn"]
    assert outputs(done)["execution-status"] == "Succeeded"
    started = [e for e in moto_executions().values() if "outage" in e.pipeline_execution_description]
    assert len(started) == 1


def test_an_outage_after_a_restart_reports_the_execution_found(
    server: LiveServer, outage: Callable[[bool], None]
) -> None:
    # A restarted sidecar lists the executions (the execution is found) but cannot describe it: the
    # Running reply still names it, from the list's summary, and nothing is started again.
    # cancel_on_stop false: the first sidecar's tracker, still holding the execution, stops nothing later.
    block = native(cancel_on_stop=False)
    request = make_request(block, uid="restart-outage-uid", workflow="restart-outage")
    shown = outputs(server.post(request).json())
    before = set(moto_executions())

    sagemaker.use_tracker()  # the restarted sidecar remembers nothing
    outage(True)
    blip = server.post(request).json()
    assert blip["node"]["phase"] == "Running", blip
    assert outputs(blip) == shown  # pipeline ARN, execution ARN, Executing, no failure, steps []
    message = blip["node"]["message"]
    assert (
        "found (Executing); describing it next call: AWS DescribePipelineExecution failed with HTTP 503"
        in message
    )

    outage(False)
    moto_executions()[shown["execution-arn"]].pipeline_execution_status = "Succeeded"
    done = server.post(request).json()
    assert done["node"]["phase"] == "Succeeded", done
    assert outputs(done)["execution-arn"] == shown["execution-arn"]
    assert set(moto_executions()) == before  # StartPipelineExecution ran once, before the restart


def test_wait_false_succeeds_once_started(server: LiveServer) -> None:
    reply = server.execute(native(wait="false"), uid="no-wait")
    assert reply["node"]["phase"] == "Succeeded"
    assert outputs(reply)["execution-arn"].startswith(PIPELINE_ARN + "/execution/")


def test_the_captured_awf_aws_request_validates_my_pipeline(server: LiveServer) -> None:
    request = json.loads((VECTORS / "awf-aws" / "request.json").read_text())
    reply = server.post(request).json()
    assert reply["node"]["phase"] == "Succeeded", reply
    assert outputs(reply)["pipeline-arn"] == PIPELINE_ARN
    assert reply["node"]["message"] == "pipeline MyPipeline is Active"


def test_awf_aws_execute_as_the_published_template_writes_it(server: LiveServer) -> None:
    block = {
        "awf-aws-plugin": {
            "action": "execute",
            "service": "amazon_sagemaker_pipelines",
            "account_id": ACCOUNT,
            "region_name": REGION,
            "pipeline_name": "MyPipeline",
        }
    }
    reply = server.execute(block, uid="awf-execute")
    assert reply["node"]["phase"] == "Succeeded", reply
    assert outputs(reply)["execution-status"] == "Succeeded"


def test_a_pipeline_in_another_account_fails_saying_so(server: LiveServer) -> None:
    by_caller = server.execute(native(action="validate", account_id="100000000009"))
    assert by_caller["node"]["phase"] == "Failed"
    message = by_caller["node"]["message"]
    assert "is in AWS account 100000000002" in message and "not in account_id 100000000009" in message
    assert "GetCallerIdentity" in message

    other_arn = f"arn:aws:sagemaker:{REGION}:100000000009:pipeline/MyPipeline"
    by_arn = server.execute(native(pipeline=other_arn, account_id=ACCOUNT), uid="other-account")
    assert by_arn["node"]["phase"] == "Failed"
    assert (
        "is in AWS account 100000000009 (by its ARN), not in account_id 100000000002"
        in by_arn["node"]["message"]
    )
    assert outputs(by_arn)["execution-arn"] == ""  # the final reply still names every output
    assert "set role_arn to a role in account 100000000002" in by_arn["node"]["message"]


def test_under_the_awf_aws_key_another_account_is_not_fixed_by_a_role_arn_it_has_not(
    server: LiveServer,
) -> None:
    block = {
        "awf-aws-plugin": {
            "service": "amazon_sagemaker_pipelines",
            "action": "validate",
            "account_id": "100000000009",
            "region_name": REGION,
            "pipeline_name": "MyPipeline",
        }
    }
    message = server.execute(block, uid="awf-other-account")["node"]["message"]
    assert "not in account_id 100000000009: give the sidecar credentials of account 100000000009" in message
    assert "the awf-aws-plugin key has no role_arn" in message
    assert "set role_arn" not in message


def test_an_unquoted_account_id_is_read_as_twelve_digits(server: LiveServer) -> None:
    reply = server.execute(native(action="validate", account_id=100000000002))
    assert reply["node"]["phase"] == "Succeeded", reply


def test_role_arn_is_assumed_first(server: LiveServer) -> None:
    block = native(action="validate", role_arn=f"arn:aws:iam::{ACCOUNT}:role/pipelines", account_id=ACCOUNT)
    reply = server.execute(block)
    assert reply["node"]["phase"] == "Succeeded", reply


def test_no_credentials_is_an_error_saying_how_to_give_them(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    reply = server.execute(native(action="validate"))
    assert reply["node"]["phase"] == "Error"
    message = reply["node"]["message"]
    assert message.startswith("AwsSetupError: no usable AWS credentials")
    for hint in ("eks.amazonaws.com/role-arn", "-executor-plugin", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        assert hint in message
    assert "requeue" not in reply
    assert outputs(reply) == {"pipeline-arn": "", "pipeline-status": ""}  # an Error node, outputs complete


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ({"wait": "maybe"}, "`wait`: expected `bool`, got 'maybe'"),
        ({"pipline": "MyPipeline"}, "1 field is not an argument (names not shown: one may be a secret)"),
        ({"action": "run"}, "`action`: expected one of 'execute', 'stop', 'validate', got 'run'"),
        ({"poll": "soon"}, "`poll`: invalid duration 'soon'"),
        ({"poll": "0s"}, "`poll`: expected a duration > 0"),
        ({"account_id": "1234"}, "`account_id`: expected 12 digits"),
        ({"role_arn": "deployer"}, "`role_arn`: expected an IAM role ARN"),
        ({"action": "stop"}, "`execution_arn` is required for action 'stop'"),
        ({"pipeline": ""}, "`pipeline` is required for action 'execute'"),
    ],
)
def test_a_bad_argument_fails_naming_it(server: LiveServer, block: dict[str, Any], named: str) -> None:
    reply = server.execute(native(**block))
    assert reply["node"]["phase"] == "Failed"
    assert named in reply["node"]["message"]
    assert "requeue" not in reply


def test_poll_accepts_seconds_and_go_durations() -> None:
    assert poll_seconds("2m") == 120
    assert poll_seconds("30") == 30
    assert poll_seconds(45) == 45


@pytest.mark.parametrize(
    ("service", "says"),
    [
        ("aws_glue", "`job_name` is required for service 'aws_glue'"),
        ("aws_step_functions", "`step_function_name` is required for service 'aws_step_functions'"),
        ("aws_lambda", "`lambda_function_name` is required for service 'aws_lambda'"),
        (
            "amazon_s3",
            "`service`: expected one of amazon_sagemaker_pipelines, aws_glue, aws_step_functions, aws_lambda",
        ),
    ],
)
def test_awf_aws_blocks_of_each_service_are_checked_in_awf_aws_names(
    server: LiveServer, service: str, says: str
) -> None:
    block = {"awf-aws-plugin": {"action": "execute", "service": service, "region_name": REGION}}
    reply = server.execute(block)
    assert reply["node"]["phase"] == "Failed"
    assert says in reply["node"]["message"]


def test_awf_aws_field_names_are_used_in_its_messages(server: LiveServer) -> None:
    reply = server.execute(
        {"awf-aws-plugin": {"action": "validate", "pipeline_name": "MyPipeline", "account_id": "x"}}
    )
    assert reply["node"]["phase"] == "Failed"
    assert (
        "invalid arguments for plugin 'awf-aws-plugin': `account_id`: expected 12 digits"
        in reply["node"]["message"]
    )


def test_no_region_anywhere_is_an_error_saying_where_to_set_it(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    reply = server.execute({"sagemaker-pipelines": {"action": "validate", "pipeline": "MyPipeline"}})
    assert reply["node"]["phase"] == "Error"
    assert reply["node"]["message"].startswith(
        "AwsSetupError: no AWS region: set `region` in the plugin block"
    )


def test_the_entry_point_serves_both_plugins() -> None:
    from argoplug.registry import load_plugins

    loaded = load_plugins(["sagemaker-pipelines"])
    assert [p.key for p in loaded] == ["sagemaker-pipelines", "awf-aws-plugin"]
    assert all(p.description for p in loaded)
