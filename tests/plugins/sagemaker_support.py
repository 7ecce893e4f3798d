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
class FakeClock:
    """A monotonic clock for the plugins' time budget: moves only when told, or by `per_call` seconds at
    each SageMaker call (the time the call took)."""

    now: float = 1000.0
    per_call: float = 0.0

    def __call__(self) -> float:
        return self.now

    def on_call(self, **_: Any) -> None:
        self.now += self.per_call


@dataclass
class Stubs:
    """A Stubber on the SageMaker client the plugin will use (the cached one), the names of the calls
    that reach it, and the clock of the plugins' time budget (`use_tracker(clock=...)`)."""

    sm: Any
    calls: list[str]
    clock: FakeClock

    def expect_steps(self, arn: str, steps: list[dict[str, Any]] | None = None) -> None:
        self.sm.add_response(
            "list_pipeline_execution_steps",
            {"PipelineExecutionSteps": steps or []},
            {"PipelineExecutionArn": arn, "SortOrder": "Ascending", "MaxResults": 100},
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

    def expect_list(self, summaries: list[dict[str, Any]], *, token: str = "", next_token: str = "") -> None:
        """One page of ListPipelineExecutions: asked with `token`, answering `next_token` if given."""
        expected = {
            "PipelineName": "MyPipeline",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 100,
        }
        if token:
            expected["NextToken"] = token
        response: dict[str, Any] = {"PipelineExecutionSummaries": summaries}
        if next_token:
            response["NextToken"] = next_token
        self.sm.add_response("list_pipeline_executions", response, expected)

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


def outputs(reply: dict[str, Any]) -> dict[str, str]:
    """The reply's output parameters as name → value."""
    params = (reply["node"].get("outputs") or {}).get("parameters") or []
    return {p["name"]: p["value"] for p in params}
