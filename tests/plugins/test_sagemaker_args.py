"""The SageMaker plugins' arguments: every problem named at once, and Failed nodes with every output.

No AWS: each of these calls is refused before any AWS call (the endpoint is a closed port).
"""

from __future__ import annotations

from typing import Any

import pytest
from sagemaker_support import REGION, outputs

from argoplug import aws
from argoplug.plugins.sagemaker.args import MAX_POLL, poll_seconds
from argoplug.testing import LiveServer

EXECUTION_OUTPUTS = {"pipeline-arn", "execution-arn", "execution-status", "failure-reason", "steps"}
VALIDATE_OUTPUTS = {"pipeline-arn", "pipeline-status"}
GLUE_RUN_OUTPUTS = {"job-run-id", "job-run-state", "error-message", "execution-time"}


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def native(**block: Any) -> dict[str, Any]:
    return {"sagemaker-pipelines": {"pipeline": "MyPipeline", "region": REGION, **block}}


def failed(server: LiveServer, block: dict[str, Any]) -> tuple[str, dict[str, str]]:
    reply = server.execute(block)
    assert reply["node"]["phase"] == "Failed", reply
    assert "requeue" not in reply
    return reply["node"]["message"], outputs(reply)


def test_a_bad_type_and_a_bad_value_are_named_together(server: LiveServer) -> None:
    message, _ = failed(server, native(poll="abc", bogus=1))
    assert message.startswith("invalid arguments for plugin 'sagemaker-pipelines': ")
    assert "1 field is not an argument (names not shown: one may be a secret); the arguments are: " in message
    assert "`poll`: invalid duration 'abc'" in message


def test_every_bad_argument_is_named_with_its_value(server: LiveServer) -> None:
    message, _ = failed(
        server, native(wait="maybe", pipline="x", account_id="1234", role_arn="deployer", poll="0s")
    )
    for says in (
        "`wait`: expected `bool`, got 'maybe'",
        "1 field is not an argument (names not shown: one may be a secret); did you mean `pipeline`?",
        "`account_id`: expected 12 digits, got '1234'",
        "`role_arn`: expected an IAM role ARN like arn:aws:iam::<account>:role/<name>, got 'deployer'",
        "`poll`: expected a duration > 0",
    ):
        assert says in message


def test_a_field_of_the_wrong_type_is_not_judged_again(server: LiveServer) -> None:
    message, _ = failed(server, native(action="validate", pipeline=123, account_id="x"))
    assert "`pipeline`: expected `str`, got 123" in message
    assert "`account_id`: expected 12 digits, got 'x'" in message
    assert "is required" not in message  # the bad `pipeline` is not "missing" as well


@pytest.mark.parametrize(
    ("block", "names"),
    [
        (native(poll="abc"), EXECUTION_OUTPUTS),
        (native(action="stop"), EXECUTION_OUTPUTS),
        (native(action="validate", account_id="1234"), VALIDATE_OUTPUTS),
        (native(wait="maybe"), EXECUTION_OUTPUTS),  # a type error: refused by the plugin, not the core
        (native(action="run"), EXECUTION_OUTPUTS | VALIDATE_OUTPUTS),  # unknown action: every output
        ({"awf-aws-plugin": {"action": "execute", "service": "aws_glue"}}, GLUE_RUN_OUTPUTS),
        ({"awf-aws-plugin": {"action": "validate", "service": "aws_glue"}}, {"job-name", "glue-version"}),
        (
            {"awf-aws-plugin": {"action": "execute", "service": "aws_step_functions"}},
            {"execution-arn", "execution-status", "error", "cause", "output"},
        ),
        (
            {"awf-aws-plugin": {"action": "execute", "service": "aws_lambda"}},
            {"status-code", "function-error", "payload", "executed-version"},
        ),
        ({"awf-aws-plugin": {"action": "validate", "service": "amazon_s3"}}, VALIDATE_OUTPUTS),
        (
            {"awf-aws-plugin": {"action": "validate", "pipeline_name": "P", "account_id": "x"}},
            VALIDATE_OUTPUTS,
        ),
    ],
)
def test_every_failed_node_carries_every_output_of_its_action(
    server: LiveServer, block: dict[str, Any], names: set[str]
) -> None:
    _, found = failed(server, block)
    assert set(found) == names
    assert all(value in ("", "[]") for value in found.values())


def test_awf_aws_names_every_problem_in_its_own_field_names(server: LiveServer) -> None:
    message, _ = failed(
        server,
        {"awf-aws-plugin": {"action": "execute", "region_name": 5, "account_id": "x", "bogus": 1}},
    )
    assert message.startswith("invalid arguments for plugin 'awf-aws-plugin': ")
    for says in (
        "`region_name`: expected `str`, got 5",
        "1 field is not an argument (names not shown: one may be a secret)",
        "`account_id`: expected 12 digits, got 'x'",
        "`pipeline_name` is required for action 'execute'",
    ):
        assert says in message


@pytest.mark.parametrize("value", ["inf", "nan", 1e12, "25h", -1])
def test_poll_is_a_finite_duration_of_at_most_a_day(value: Any) -> None:
    with pytest.raises(ValueError, match="expected a duration > 0 and at most 24h"):
        poll_seconds(value)
    assert poll_seconds("24h") == MAX_POLL


def test_account_ids_are_padded_in_one_place() -> None:
    assert aws.account_id(12345678901) == "012345678901"
    assert aws.account_id(" 100000000002 ") == "100000000002"
    assert aws.account_id(True) == "True"  # not a number of an account
