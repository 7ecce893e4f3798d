"""Helpers of the AWS plugin tests: constants, moto's backend, Stubber expectations, reply outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACCOUNT = "100000000002"
REGION = "us-west-2"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/MyPipeline"


def moto_executions(pipeline: str = "MyPipeline") -> dict[str, Any]:
    """The pipeline's executions in moto's in-process backend (arn → FakePipelineExecution)."""
    from moto.sagemaker.models import sagemaker_backends

    return dict(sagemaker_backends[ACCOUNT][REGION].pipelines[pipeline].pipeline_executions)


@dataclass
class Stubs:
    """Stubbers on the clients the plugin will use (the cached ones), and counts of calls that reach them."""

    sm: Any
    steps: Any
    calls: list[str]

    def expect_steps(self, arn: str, steps: list[dict[str, Any]] | None = None) -> None:
        self.steps.add_response(
            "list_pipeline_execution_steps",
            {"PipelineExecutionSteps": steps or []},
            {"PipelineExecutionArn": arn, "SortOrder": "Ascending"},
        )

    def expect_describe(self, arn: str, status: str, *, reason: str = "", name: str = "run-1") -> None:
        response: dict[str, Any] = {
            "PipelineArn": PIPELINE_ARN,
            "PipelineExecutionArn": arn,
            "PipelineExecutionDisplayName": name,
            "PipelineExecutionStatus": status,
        }
        if reason:
            response["FailureReason"] = reason
        self.sm.add_response("describe_pipeline_execution", response, {"PipelineExecutionArn": arn})

    def expect_poll(
        self, arn: str, status: str, *, reason: str = "", steps: list[dict[str, Any]] | None = None
    ) -> None:
        self.expect_describe(arn, status, reason=reason)
        self.expect_steps(arn, steps)

    def expect_list(self, summaries: list[dict[str, Any]]) -> None:
        self.sm.add_response(
            "list_pipeline_executions",
            {"PipelineExecutionSummaries": summaries},
            {"PipelineName": "MyPipeline", "SortBy": "CreationTime", "SortOrder": "Descending"},
        )

    def expect_start(self, arn: str, params: dict[str, Any] | None = None) -> None:
        from botocore.stub import ANY

        expected = params or {
            "PipelineName": "MyPipeline",
            "PipelineExecutionDisplayName": ANY,
            "PipelineExecutionDescription": ANY,
            "ClientRequestToken": ANY,
        }
        self.sm.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn}, expected)

    def done(self) -> None:
        self.sm.assert_no_pending_responses()
        self.steps.assert_no_pending_responses()


def outputs(reply: dict[str, Any]) -> dict[str, str]:
    """The reply's output parameters as name → value."""
    params = (reply["node"].get("outputs") or {}).get("parameters") or []
    return {p["name"]: p["value"] for p in params}
