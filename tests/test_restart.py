"""A sidecar killed and restarted in the middle of a pipeline execution starts no second execution; one
stopped (SIGTERM) stops the executions it started that still run.

Real processes and sockets: `argoplug serve` as a subprocess (SIGKILL, then started again; or SIGTERM)
against moto's HTTP server in this process. moto reports executions Succeeded at once, so new executions
are made to start `Executing` here, and finished by hand, as SageMaker would finish them. moto has no
StopPipelineExecution: the fixture adds it to moto's server, recording each call and setting the
execution `Stopping`, as SageMaker answers it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto.core.responses import ActionResult
from moto.sagemaker import models as sagemaker_models
from moto.sagemaker import responses as sagemaker_responses

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
    monkeypatch.setattr(
        sagemaker_responses.SageMakerResponse, "stop_pipeline_execution", _stop_execution, raising=False
    )
    STOP_CALLS.clear()
    with AwsSandbox(
        account=ACCOUNT, region=REGION, pipelines=[SandboxPipeline(name="MyPipeline")]
    ) as sandbox:
        backend = sagemaker_models.sagemaker_backends[ACCOUNT][REGION]
        yield sandbox, backend.pipelines["MyPipeline"].pipeline_executions


# The StopPipelineExecution requests moto's server got: (PipelineExecutionArn, ClientRequestToken).
STOP_CALLS: list[tuple[str, str]] = []


def _stop_execution(self: Any) -> ActionResult:
    """StopPipelineExecution as SageMaker answers it: the execution goes `Stopping`, its ARN comes back."""
    arn, token = self._get_param("PipelineExecutionArn"), self._get_param("ClientRequestToken")
    STOP_CALLS.append((arn, token))
    pipeline = self.sagemaker_backend.pipelines[arn.split("/")[1]]
    pipeline.pipeline_executions[arn].pipeline_execution_status = "Stopping"
    return ActionResult({"PipelineExecutionArn": arn})


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


def test_a_sidecar_sent_sigterm_stops_the_executions_still_running_and_exits_in_time(
    executions: tuple[AwsSandbox, dict[str, Any]],
) -> None:
    sandbox, started = executions
    keep = make_request(
        {"sagemaker-pipelines": {"pipeline": "MyPipeline", "cancel_on_stop": False}},
        template_name="publish",
        workflow="train-x7k2p",
        uid="0b6f4c1e-4a55-4d8e-9d61-2f3c1c9a7e01",
    )
    ended = make_request(
        {"sagemaker-pipelines": {"pipeline": "MyPipeline", "parameters": {"epochs": 1}}},
        template_name="train",
        workflow="train-x7k2p",
        uid="0b6f4c1e-4a55-4d8e-9d61-2f3c1c9a7e01",
    )
    sidecar = Sidecar(["sagemaker-pipelines"], env=sidecar_env(sandbox))
    with sidecar:
        running = outputs(sidecar.post(REQUEST).json())["execution-arn"]
        kept = outputs(sidecar.post(keep).json())["execution-arn"]
        finished = outputs(sidecar.post(ended).json())["execution-arn"]
        started[finished].pipeline_execution_status = "Succeeded"
        assert sidecar.post(ended).json()["node"]["phase"] == "Succeeded"
        before = time.monotonic()
        code = sidecar.stop(timeout=25.0)  # SIGTERM; SIGKILL only after 25 s
        took = time.monotonic() - before
        log = [json.loads(line) for line in sidecar.log_path.read_text().splitlines() if line.startswith("{")]
    assert code == -15  # uvicorn shuts down, then ends itself with the signal it got, as a process should
    # The bound: 5 s for calls in flight (none here) + stop_jobs_timeout (15 s), inside the 30 s grace.
    assert took < 20.0
    assert [arn for arn, _ in STOP_CALLS] == [running]
    assert STOP_CALLS[0][1] == f"argoplug-sigterm-stop-{running.rsplit('/', 1)[-1]}"
    assert started[running].pipeline_execution_status == "Stopping"
    assert started[kept].pipeline_execution_status == "Executing"
    said = [entry["message"] for entry in log if entry.get("logger") == "argoplug.jobs"]
    assert len(said) == 1, said
    assert said[0].startswith(f"sidecar stopping: asked pipeline execution {running} to stop (task ")
