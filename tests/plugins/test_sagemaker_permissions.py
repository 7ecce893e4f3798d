"""The IAM statements the SageMaker plugins contribute to `argoplug build`: exactly the calls they make.

The calls are recorded at botocore's boundary while the plugins run every action over real sockets (moto
for validate and execute, a Stubber for stop, which moto lacks), so a new AWS call in the plugin without
its IAM action fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import ANY
from sagemaker_support import PIPELINE_ARN, REGION, Stubs

from argoplug.hooks import contributions, plugin_manager
from argoplug.hookspecs import BuildContext
from argoplug.plugins.sagemaker import permissions
from argoplug.registry import load
from argoplug.testing import LiveServer


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Every AWS API call any botocore client makes, as IAM names it (`sagemaker:DescribePipeline`)."""
    from botocore.client import BaseClient

    calls: set[str] = set()
    original = BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: Any) -> Any:
        calls.add(f"{self.meta.service_model.signing_name}:{operation_name}")
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    yield calls


def statements(
    settings: dict[str, Any] | None = None, *, name: str = "sagemaker-pipelines"
) -> list[dict[str, Any]]:
    """The statements of the package selected as `name` in a bundle giving it `settings`, as built."""
    manager = plugin_manager(load([name]).packages)
    context = BuildContext("awf-aws", ("argo",), all_settings={name: settings or {}})
    found = contributions(manager, "argoplug_iam_statements", context=context)
    assert {package for package, _ in found} == {name}
    return [statement for _, statement in found]


def actions(found: list[dict[str, Any]]) -> set[str]:
    return {action for statement in found for action in statement["Action"]}


def native(**block: Any) -> dict[str, Any]:
    return {"sagemaker-pipelines": {"pipeline": "MyPipeline", "region": REGION, **block}}


@pytest.mark.usefixtures("moto")
def test_validate_and_execute_call_only_what_the_policy_allows(
    server: LiveServer, aws_calls: set[str]
) -> None:
    assert server.execute(native(action="validate"))["node"]["phase"] == "Succeeded"
    assert server.execute(native(action="execute"))["node"]["phase"] == "Succeeded"

    sagemaker_calls = {call for call in aws_calls if call.startswith("sagemaker:")}
    assert sagemaker_calls <= actions(statements())
    assert sagemaker_calls >= {
        "sagemaker:DescribePipeline",
        "sagemaker:ListPipelineExecutions",
        "sagemaker:StartPipelineExecution",
        "sagemaker:DescribePipelineExecution",
        "sagemaker:ListPipelineExecutionSteps",
    }
    # STS GetCallerIdentity (the account check) needs no IAM permission; nothing else is called.
    assert aws_calls - sagemaker_calls <= {"sts:GetCallerIdentity"}


def test_stop_calls_only_what_the_policy_allows(
    server: LiveServer, stubs: Stubs, aws_calls: set[str]
) -> None:
    execution = f"{PIPELINE_ARN}/execution/abc123def456"
    stubs.expect_describe(execution, "Executing")
    stubs.sm.add_response(
        "stop_pipeline_execution",
        {"PipelineExecutionArn": execution},
        {"PipelineExecutionArn": execution, "ClientRequestToken": ANY},
    )
    stubs.expect_poll(execution, "Stopping")

    reply = server.execute({"sagemaker-pipelines": {"action": "stop", "execution_arn": execution}})

    assert reply["node"]["phase"] == "Running"
    assert "sagemaker:StopPipelineExecution" in aws_calls
    assert aws_calls <= actions(statements())


def test_the_policy_holds_no_action_the_plugins_never_call() -> None:
    found = statements()
    assert actions(found) == set(permissions.PIPELINE_ACTIONS) | set(permissions.EXECUTION_ACTIONS)
    assert all("*" not in action for action in actions(found))
    assert [s["Resource"] for s in found] == [
        ["arn:aws:sagemaker:*:*:pipeline/*"],
        ["arn:aws:sagemaker:*:*:pipeline/*/execution/*"],
    ]


@pytest.mark.parametrize("name", ["sagemaker-pipelines", "argoplug.plugins.sagemaker:plugins"])
def test_settings_scope_the_resources(name: str) -> None:
    # Under whichever name the bundle selects the package by: its entry point's, or a module:attr path.
    found = statements(
        {
            "pipelines": ["MyPipeline", "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/Other"],
            "regions": [REGION],
            "accounts": ["100000000002"],
            "assume_roles": ["arn:aws:iam::123456789012:role/pipelines"],
        },
        name=name,
    )
    by_sid = {s["Sid"]: s for s in found}
    assert by_sid["SageMakerPipelines"]["Resource"] == [
        "arn:aws:sagemaker:us-west-2:100000000002:pipeline/mypipeline",
        "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/other",
    ]
    assert by_sid["SageMakerPipelineExecutions"]["Resource"] == [
        "arn:aws:sagemaker:us-west-2:100000000002:pipeline/mypipeline/execution/*",
        "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/other/execution/*",
    ]
    assert by_sid["SageMakerAssumeRoles"] == {
        "Sid": "SageMakerAssumeRoles",
        "Effect": "Allow",
        "Action": ["sts:AssumeRole"],
        "Resource": ["arn:aws:iam::123456789012:role/pipelines"],
    }


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"pipeline": ["x"]}, "unknown key(s) pipeline"),
        ({"pipelines": "arn:aws:sagemaker:us-west-2:123456789012:pipeline/x/execution/y"}, "pipelines"),
        ({"accounts": ["12345"]}, "accounts: expected 12 digits, got '12345'"),
        ({"regions": [3]}, "regions: expected a list of strings"),
    ],
)
def test_bad_settings_fail_the_build_naming_the_plugin(settings: dict[str, Any], says: str) -> None:
    from argoplug.hooks import HookError

    with pytest.raises(HookError) as raised:
        statements(settings)
    assert "plugin 'sagemaker-pipelines'" in str(raised.value)
    assert "settings.sagemaker-pipelines" in str(raised.value)
    assert says in str(raised.value)


def test_the_hook_called_directly_reads_the_contexts_settings() -> None:
    context = BuildContext("awf-aws", settings={"pipelines": ["MyPipeline"]})
    found = permissions.argoplug_iam_statements(context)
    assert found[0]["Resource"] == ["arn:aws:sagemaker:*:*:pipeline/mypipeline"]
