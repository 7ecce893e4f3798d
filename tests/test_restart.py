"""A sidecar killed and restarted in the middle of a pipeline execution starts no second execution.

Real processes and sockets: `argoplug serve` as a subprocess (SIGKILL, then started again) against moto's
HTTP server in this process. moto reports executions Succeeded at once, so new executions are made to
start `Executing` here, and finished by hand, as SageMaker would finish them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.sagemaker import models as sagemaker_models

from argoplug.aws.sandbox import AwsSandbox, SandboxPipeline
from argoplug.testing import Sidecar, make_request

ACCOUNT, REGION = "100000000002", "us-west-2"
REQUEST = make_request(
    {"sagemaker-pipelines": {"pipeline": "MyPipeline", "account_id": ACCOUNT, "parameters": {"epochs": 3}}},
    template_name="train",
    workflow="train-x7k2p",
    uid="0b6f4c1e-4a55-4d8e-9d61-2f3c1c9a7e01",
)


@pytest.fixture
def executions(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsSandbox, dict[str, Any]]]:
    original = sagemaker_models.FakePipelineExecution.__init__

    def start_executing(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.pipeline_execution_status = "Executing"

    monkeypatch.setattr(sagemaker_models.FakePipelineExecution, "__init__", start_executing)
    with AwsSandbox(
        account=ACCOUNT, region=REGION, pipelines=[SandboxPipeline(name="MyPipeline")]
    ) as sandbox:
        backend = sagemaker_models.sagemaker_backends[ACCOUNT][REGION]
        yield sandbox, backend.pipelines["MyPipeline"].pipeline_executions


def sidecar_env(sandbox: AwsSandbox) -> dict[str, str | None]:
    env: dict[str, str | None] = {"AWS_PROFILE": None, "AWS_SESSION_TOKEN": None}
    env.update(sandbox.env)
    return env


def outputs(reply: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in reply["node"].get("outputs", {}).get("parameters", [])}


def test_a_killed_sidecar_finds_the_running_execution_instead_of_starting_another(
    executions: tuple[AwsSandbox, dict[str, Any]],
) -> None:
    sandbox, started = executions
    with Sidecar(["sagemaker-pipelines"], env=sidecar_env(sandbox)) as sidecar:
        first = sidecar.post(REQUEST).json()
        assert first["node"]["phase"] == "Running"
        assert first["requeue"] == "5s"
        arn = outputs(first)["execution-arn"]
        assert list(started) == [arn]
        assert started[arn].pipeline_parameters == [{"Name": "epochs", "Value": "3"}]

        sidecar.kill()  # mid-execution: the sidecar's memory of the job is gone
        sidecar.start()

        again = sidecar.post(REQUEST).json()
        assert again["node"]["phase"] == "Running"
        assert outputs(again)["execution-arn"] == arn
        assert list(started) == [arn], "a second pipeline execution was started after the restart"

        started[arn].pipeline_execution_status = "Succeeded"
        done = sidecar.post(REQUEST).json()
        assert done["node"]["phase"] == "Succeeded"
        assert "requeue" not in done
        assert outputs(done) == {
            "pipeline-arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/MyPipeline",
            "execution-arn": arn,
            "execution-status": "Succeeded",
            "failure-reason": "",
            "steps": "[]",
        }
        assert list(started) == [arn]


def test_a_different_task_starts_its_own_execution(executions: tuple[AwsSandbox, dict[str, Any]]) -> None:
    sandbox, started = executions
    other = make_request(
        {"sagemaker-pipelines": {"pipeline": "MyPipeline", "parameters": {"epochs": 4}}},
        template_name="train",
        workflow="train-x7k2p",
        uid="0b6f4c1e-4a55-4d8e-9d61-2f3c1c9a7e01",
    )
    with Sidecar(["sagemaker-pipelines"], env=sidecar_env(sandbox)) as sidecar:
        first = outputs(sidecar.post(REQUEST).json())["execution-arn"]
        second = outputs(sidecar.post(other).json())["execution-arn"]
    assert first != second
    assert sorted(started) == sorted([first, second])
