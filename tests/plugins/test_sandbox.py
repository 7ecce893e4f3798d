"""argoplug.aws.sandbox: the AWS sandbox of `argoplug run --aws-sandbox`, its FILE, and a sidecar using it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import boto3
import httpx
import pytest

from argoplug import aws
from argoplug.aws.sandbox import DEFAULT_DEFINITION, AwsSandbox, SandboxError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sagemaker" / "sandbox.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sandbox.yaml"
    path.write_text(text)
    return path


def test_the_example_file_reads() -> None:
    sandbox = AwsSandbox.from_file(EXAMPLE)
    assert (sandbox.account, sandbox.region) == ("100000000002", "us-west-2")
    assert [p.name for p in sandbox.pipelines] == ["MyPipeline"]
    assert sandbox.describe() == (
        "AWS sandbox (moto) at (not started): account 100000000002, region us-west-2, pipelines: MyPipeline"
    )
    with pytest.raises(SandboxError, match="not started"):
        _ = sandbox.env


def test_an_unquoted_account_reads_as_twelve_digits_as_in_a_plugin_block(tmp_path: Path) -> None:
    sandbox = AwsSandbox.from_file(write(tmp_path, "account: 12345678901\n"))
    assert sandbox.account == "012345678901" == aws.account_id(12345678901)


def test_the_sandbox_serves_the_files_account_region_and_pipelines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
        account: "000000000042"
        region: eu-west-1
        pipelines:
          - name: Train
            display_name: Nightly-training
            definition: {Version: "2020-12-01", Steps: [{Name: Fit, Type: Training, Arguments: {}}]}
          - name: Score
            definition: '{"Version": "2020-12-01", "Steps": []}'
            role_arn: arn:aws:iam::000000000042:role/scorer
          - name: Plain
        """.replace("\n        ", "\n"),
    )
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "999999999999")  # restored on exit
    with AwsSandbox.from_file(path) as sandbox:
        env = sandbox.env
        assert env["AWS_ENDPOINT_URL"] == sandbox.endpoint_url
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert sandbox.describe().startswith(
            f"AWS sandbox (moto) at {sandbox.endpoint_url}: account 000000000042"
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        identity = boto3.client("sts").get_caller_identity()
        assert identity["Account"] == "000000000042"
        sm = boto3.client("sagemaker")
        train = sm.describe_pipeline(PipelineName="Train")
        assert train["PipelineArn"] == "arn:aws:sagemaker:eu-west-1:000000000042:pipeline/Train"
        assert train["PipelineDisplayName"] == "Nightly-training"
        assert json.loads(train["PipelineDefinition"])["Steps"][0]["Name"] == "Fit"
        assert (
            sm.describe_pipeline(PipelineName="Score")["RoleArn"] == "arn:aws:iam::000000000042:role/scorer"
        )
        plain = sm.describe_pipeline(PipelineName="Plain")
        assert json.loads(plain["PipelineDefinition"]) == DEFAULT_DEFINITION
        assert plain["RoleArn"] == "arn:aws:iam::000000000042:role/argoplug-sandbox-sagemaker"
        with pytest.raises(SandboxError, match="another AWS sandbox"), AwsSandbox():
            pass
    assert os.environ["MOTO_ACCOUNT_ID"] == "999999999999"


def test_entering_again_starts_from_a_clean_state(tmp_path: Path) -> None:
    sandbox = AwsSandbox.from_file(write(tmp_path, "pipelines: [{name: Only}]\n"))
    for _ in range(2):  # the second CreatePipeline would fail if moto's state survived
        with sandbox:
            assert sandbox.account == "123456789012" and sandbox.region == "us-east-1"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("account: [1\n", "is not YAML"),
        ("- a\n- b\n", "expected a mapping with account, region and pipelines, got list"),
        (
            "acount: '100000000002'\n",
            "`acount` is not a field (expected one of: account, region, pipelines, glue_jobs, "
            "state_machines, lambda_functions, eks_clusters)",
        ),
        ("eks_clusters: [{name: 'a b'}]\n", "`eks_clusters[0].name`: 'a b' is not an EKS cluster name"),
        (
            "eks_clusters: [{name: c, access_entries: [{principal_arn: someone}]}]\n",
            "`eks_clusters[0].access_entries[0].principal_arn`: expected an IAM role or user ARN, got "
            "'someone'",
        ),
        ("eks_clusters: [{name: c, kubernetes: nowhere.yaml}]\n", "`eks_clusters[0].kubernetes`: no file"),
        ("pipelines: [{name: A, defintion: {}}]\n", "`pipelines[0].defintion` is not a field"),
        ("pipelines: [{display_name: A}]\n", "`pipelines[0].name` is required"),
        ("pipelines: [{name: 3}]\n", "`pipelines[0].name`: Expected `str`, got `int`"),
        ("pipelines: {name: A}\n", "`pipelines`: Expected `array`, got `object`"),
        ("account: '12'\n", "`account`: expected 12 digits, got '12'"),
        ("region: West\n", "`region`: expected an AWS region like us-west-2"),
        ("pipelines: [{name: my_pipeline}]\n", "`pipelines[0].name`: 'my_pipeline' is not a pipeline name"),
        ("pipelines: [{name: A}, {name: A}]\n", "`pipelines[1].name`: 'A' appears twice"),
        ("pipelines: [{name: A, definition: 'not json'}]\n", "`pipelines[0].definition`: not JSON text"),
        ("glue_jobs: [{name: J}, {name: J}]\n", "`glue_jobs[1].name`: 'J' appears twice"),
        (
            "glue_jobs: [{name: J, script: x}]\n",
            "`glue_jobs[0].script` is not a field (expected one of: name,",
        ),
        ("state_machines: [{name: 'a b'}]\n", "`state_machines[0].name`: 'a b' is not a state machine name"),
        ("state_machines: [{name: M, definition: '{'}]\n", "`state_machines[0].definition`: not JSON text"),
        ("lambda_functions: [{name: f.py}]\n", "`lambda_functions[0].name`: 'f.py' is not a Lambda function"),
    ],
)
def test_a_bad_file_names_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SandboxError) as caught:
        AwsSandbox.from_file(path)
    assert str(path) in str(caught.value)
    assert says in str(caught.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"cannot read AWS sandbox file .*nope.yaml: No such file"):
        AwsSandbox.from_file(tmp_path / "nope.yaml")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_a_sidecar_subprocess_runs_the_example_against_the_sandbox(tmp_path: Path) -> None:
    """What `argoplug run --aws-sandbox` does: the sidecar gets only `env`, and reaches the sandbox."""
    token = tmp_path / "token"
    token.write_text("secret")
    port = free_port()
    request: dict[str, Any] = json.loads(
        (Path(__file__).parents[1] / "vectors/awf-aws/request.json").read_text()
    )
    with AwsSandbox.from_file(EXAMPLE) as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | sandbox.env
        command = [sys.executable, "-m", "argoplug", "serve", "-P", "sagemaker-pipelines"]
        command += ["--port", str(port), "--token-file", str(token), "--log-format", "json"]
        sidecar = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}/api/v1/template.execute"
            headers = {"Authorization": "Bearer secret"}
            deadline = time.monotonic() + 15
            while True:
                try:
                    validate = httpx.post(url, json=request, headers=headers, timeout=30).json()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or sidecar.poll() is not None:
                        raise
                    time.sleep(0.05)
            request["template"]["plugin"]["awf-aws-plugin"]["action"] = "execute"
            execute = httpx.post(url, json=request, headers=headers, timeout=30).json()
        finally:
            sidecar.terminate()
            sidecar.communicate(timeout=10)
    assert validate["node"]["phase"] == "Succeeded", validate
    assert execute["node"]["phase"] == "Succeeded", execute
    arns = {p["name"]: p["value"] for p in execute["node"]["outputs"]["parameters"]}
    assert arns["execution-arn"].startswith(
        "arn:aws:sagemaker:us-west-2:100000000002:pipeline/MyPipeline/execution/"
    )


def test_a_users_aws_profile_neither_breaks_the_sandbox_nor_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's in-process server reads the environment too; a profile missing here made it answer 500."""
    monkeypatch.setenv("AWS_PROFILE", "profile-that-does-not-exist")
    with AwsSandbox.from_file(EXAMPLE) as sandbox:
        assert "AWS_PROFILE" not in os.environ
        client = boto3.session.Session().client(
            "sagemaker",
            region_name=sandbox.region,
            endpoint_url=sandbox.env["AWS_ENDPOINT_URL"],
            aws_access_key_id=sandbox.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=sandbox.env["AWS_SECRET_ACCESS_KEY"],
        )
        assert client.describe_pipeline(PipelineName="MyPipeline")["PipelineName"] == "MyPipeline"
    assert os.environ["AWS_PROFILE"] == "profile-that-does-not-exist"


SCENARIOS = EXAMPLE.parent / "sandbox-scenarios.yaml"
GLUE_SCENARIOS = EXAMPLE.parents[1] / "aws-services" / "sandbox-scenarios.yaml"


def clients(sandbox: AwsSandbox, *services: str) -> list[Any]:
    return [
        boto3.session.Session().client(
            service,
            region_name=sandbox.region,
            endpoint_url=sandbox.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for service in services
    ]


def test_the_scenario_files_read_and_say_how_their_executions_behave() -> None:
    sandbox = AwsSandbox.from_file(SCENARIOS)
    assert sandbox.describe().endswith(
        "pipelines: MyPipeline, FailsAfterThreePolls (Executing for 3 polls, then Failed), RunsUntilStopped "
        "(Executing until stopped), StoppedElsewhere (Executing for 2 polls, then Stopped), RunsTwoMinutes "
        "(Executing for 120 s, then Succeeded)"
    )
    assert "; their seconds divided by 10" in AwsSandbox.from_file(SCENARIOS, speed=10).describe()
    glue = AwsSandbox.from_file(GLUE_SCENARIOS).describe()
    assert (
        "Glue jobs: MyGlueJob, FailsAfterThreePolls (RUNNING for 3 polls, then FAILED), RunsUntilStopped"
        in glue
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "pipelines: [{name: A, execution: {pols: 3}}]\n",
            "`pipelines[0].execution.pols` is not a field (expected one of: polls, seconds, then, "
            "failure_reason, stopping_polls, steps)",
        ),
        (
            "pipelines: [{name: A, execution: {then: failed}}]\n",
            "`pipelines[0].execution.then`: Invalid enum value 'failed' (expected one of: Succeeded, Failed, "
            "Stopped, Executing)",
        ),
        (
            "pipelines: [{name: A, execution: {polls: -1}}]\n",
            "`pipelines[0].execution.polls`: Expected `int` >= 0",
        ),
        (
            "pipelines: [{name: A, execution: {polls: x}}]\n",
            "`pipelines[0].execution.polls`: Expected `int | null`",
        ),
        (
            "pipelines: [{name: A, execution: {seconds: -2}}]\n",
            "`pipelines[0].execution.seconds`: Expected `float` >= 0.0",
        ),
        (
            "pipelines: [{name: A, execution: {polls: 1, seconds: 2}}]\n",
            "`pipelines[0].execution`: give `polls` or `seconds`, not both",
        ),
        (
            "pipelines: [{name: A, execution: {polls: 2, then: Executing}}]\n",
            "`pipelines[0].execution.polls`: an execution that runs until stopped (`then: Executing`) "
            "takes no `polls`",
        ),
        (
            "pipelines: [{name: A, execution: {failure_reason: x}}]\n",
            "`pipelines[0].execution.failure_reason`: a run that ends Succeeded has none",
        ),
        (
            "pipelines: [{name: A, execution: []}]\n",
            "`pipelines[0].execution`: Expected `object | null`, got `array`",
        ),
        (
            "pipelines: [{name: A, execution: {steps: [{status: Failed}]}}]\n",
            "`pipelines[0].execution.steps[0].name` is required",
        ),
        (
            "pipelines: [{name: A, execution: {steps: [{name: S, state: Failed}]}}]\n",
            "`pipelines[0].execution.steps[0].state` is not a field (expected one of: name, status, "
            "failure_reason)",
        ),
        (
            "pipelines: [{name: A, execution: {steps: [{name: S, status: Done}]}}]\n",
            "`pipelines[0].execution.steps[0].status`: Invalid enum value 'Done' (expected one of: Starting,",
        ),
        (
            "pipelines: [{name: A, execution: {steps: [{name: S}, {name: S}]}}]\n",
            "`pipelines[0].execution.steps[1].name`: 'S' appears twice",
        ),
        (
            "pipelines: [{name: A, execution: {steps: [{name: ' '}]}}]\n",
            "`pipelines[0].execution.steps[0].name`: empty",
        ),
        (
            "glue_jobs: [{name: J, job_run: {then: Failed}}]\n",
            "`glue_jobs[0].job_run.then`: Invalid enum value 'Failed' (expected one of: SUCCEEDED, FAILED, "
            "ERROR, TIMEOUT, STOPPED, RUNNING)",
        ),
        (
            "glue_jobs: [{name: J, job_run: {error_message: x}}]\n",
            "`glue_jobs[0].job_run.error_message`: a run that ends SUCCEEDED has none",
        ),
        (
            "glue_jobs: [{name: J, job_run: {seconds: 3, then: RUNNING}}]\n",
            "`glue_jobs[0].job_run.seconds`: an execution that runs until stopped (`then: RUNNING`) takes no",
        ),
        (
            "glue_jobs: [{name: J, job_run: {failure_reason: x}}]\n",
            "`glue_jobs[0].job_run.failure_reason` is not a field (expected one of: polls, seconds, then, "
            "error_message, stopping_polls)",
        ),
    ],
)
def test_a_bad_execution_or_job_run_names_the_field(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SandboxError) as caught:
        AwsSandbox.from_file(path)
    assert f"AWS sandbox file {path}: " in str(caught.value)
    assert says in str(caught.value)


def test_every_problem_of_the_executions_is_named_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pipelines: [{name: A, execution: {polls: 1, seconds: 2}},"
        " {name: B, execution: {failure_reason: x}}]\n",
    )
    with pytest.raises(
        SandboxError, match=r"`pipelines\[0\].execution`: .*; `pipelines\[1\].execution.failure"
    ):
        AwsSandbox.from_file(path)


def test_a_pipeline_runs_for_its_polls_then_fails_with_its_reason_and_steps() -> None:
    with AwsSandbox.from_file(SCENARIOS) as sandbox:
        (sm,) = clients(sandbox, "sagemaker")
        arn = sm.start_pipeline_execution(PipelineName="FailsAfterThreePolls")["PipelineExecutionArn"]

        def listed() -> tuple[str, str | None]:
            (summary,) = sm.list_pipeline_executions(PipelineName="FailsAfterThreePolls")[
                "PipelineExecutionSummaries"
            ]
            return summary["PipelineExecutionStatus"], summary.get("PipelineExecutionFailureReason")

        def steps() -> list[tuple[str, str, str | None]]:
            page = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")
            return [
                (s["StepName"], s["StepStatus"], s.get("FailureReason"))
                for s in page["PipelineExecutionSteps"]
            ]

        assert listed() == ("Executing", None)
        for _ in range(3):
            described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
            assert (described["PipelineExecutionStatus"], described.get("FailureReason")) == (
                "Executing",
                None,
            )
            # The calls that are no poll see what the last poll answered: one plugin call reads one state.
            assert listed() == ("Executing", None)
            assert steps() == [("Prepare", "Executing", None), ("Train", "Executing", None)]
        for _ in range(2):  # the 4th poll ends it, for good
            described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
            assert described["PipelineExecutionStatus"] == "Failed"
            assert described["FailureReason"] == "Step failure: One or multiple steps failed."
        assert listed() == ("Failed", "Step failure: One or multiple steps failed.")
        assert steps() == [
            ("Prepare", "Succeeded", None),
            ("Train", "Failed", "ClientError: AlgorithmError: CUDA out of memory"),
        ]
        descending = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        assert [s["StepName"] for s in descending] == ["Train", "Prepare"]
        with pytest.raises(sm.exceptions.ConflictException, match="is Failed and cannot be stopped"):
            sm.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="t" * 32)


def test_stop_pipeline_execution_makes_it_stopping_for_one_poll_then_stopped() -> None:
    with AwsSandbox.from_file(SCENARIOS) as sandbox:
        (sm,) = clients(sandbox, "sagemaker")
        arn = sm.start_pipeline_execution(PipelineName="RunsUntilStopped")["PipelineExecutionArn"]
        for _ in range(5):
            assert (
                sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
                == "Executing"
            )
        for _ in range(2):  # asking again while it stops is no error
            assert sm.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="t" * 32) == {
                "PipelineExecutionArn": arn,
                "ResponseMetadata": ANY,
            }
        statuses = [sm.describe_pipeline_execution(PipelineExecutionArn=arn) for _ in range(3)]
        assert [d["PipelineExecutionStatus"] for d in statuses] == ["Stopping", "Stopped", "Stopped"]
        assert "FailureReason" not in statuses[-1]
        page = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")
        assert [(s["StepName"], s["StepStatus"]) for s in page["PipelineExecutionSteps"]] == [
            ("Prepare", "Succeeded"),
            ("Train", "Stopped"),
        ]

        elsewhere = sm.start_pipeline_execution(PipelineName="StoppedElsewhere")["PipelineExecutionArn"]
        statuses = [sm.describe_pipeline_execution(PipelineExecutionArn=elsewhere) for _ in range(4)]
        assert [d["PipelineExecutionStatus"] for d in statuses] == [
            "Executing",
            "Executing",
            "Stopping",
            "Stopped",
        ]


def test_a_pipeline_without_execution_is_left_to_moto() -> None:
    with AwsSandbox.from_file(SCENARIOS) as sandbox:
        (sm,) = clients(sandbox, "sagemaker")
        arn = sm.start_pipeline_execution(PipelineName="MyPipeline")["PipelineExecutionArn"]
        assert (
            sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Succeeded"
        )
        sm.meta.config.retries = {"max_attempts": 1}
        with pytest.raises(sm.exceptions.ClientError, match=r"\(500\)"):  # moto does not implement it
            sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)


def test_seconds_count_on_the_sandbox_clock_divided_by_its_speed(tmp_path: Path) -> None:
    path = write(tmp_path, "pipelines: [{name: Slow, execution: {seconds: 30, then: Failed}}]\n")
    with AwsSandbox.from_file(path, speed=100) as sandbox:  # 30 s are 0.3 s
        (sm,) = clients(sandbox, "sagemaker")
        arn = sm.start_pipeline_execution(PipelineName="Slow")["PipelineExecutionArn"]
        assert (
            sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing"
        )
        time.sleep(0.4)
        assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Failed"


def test_a_glue_job_run_runs_for_its_polls_then_fails_and_one_runs_until_stopped() -> None:
    with AwsSandbox.from_file(GLUE_SCENARIOS) as sandbox:
        (glue,) = clients(sandbox, "glue")
        run_id = glue.start_job_run(JobName="FailsAfterThreePolls")["JobRunId"]
        with pytest.raises(glue.exceptions.ConcurrentRunsExceededException):  # MaxConcurrentRuns 1
            glue.start_job_run(JobName="FailsAfterThreePolls")
        runs = [glue.get_job_run(JobName="FailsAfterThreePolls", RunId=run_id)["JobRun"] for _ in range(4)]
        assert [r["JobRunState"] for r in runs] == ["RUNNING", "RUNNING", "RUNNING", "FAILED"]
        assert "ErrorMessage" not in runs[2] and "CompletedOn" not in runs[2]
        assert runs[3]["ErrorMessage"] == "AnalysisException: Path does not exist: s3://my-bucket/input/"
        assert "CompletedOn" in runs[3]
        (listed,) = glue.get_job_runs(JobName="FailsAfterThreePolls")["JobRuns"]
        assert (listed["Id"], listed["JobRunState"]) == (run_id, "FAILED")
        glue.start_job_run(JobName="FailsAfterThreePolls")  # the first one ended: room for another

        running = glue.start_job_run(JobName="RunsUntilStopped")["JobRunId"]
        assert (
            glue.get_job_run(JobName="RunsUntilStopped", RunId=running)["JobRun"]["JobRunState"] == "RUNNING"
        )
        answer = glue.batch_stop_job_run(JobName="RunsUntilStopped", JobRunIds=[running, "jr_nope"])
        assert answer["SuccessfulSubmissions"] == [{"JobName": "RunsUntilStopped", "JobRunId": running}]
        assert [e["ErrorDetail"]["ErrorCode"] for e in answer["Errors"]] == ["EntityNotFoundException"]
        states = [glue.get_job_run(JobName="RunsUntilStopped", RunId=running)["JobRun"] for _ in range(2)]
        assert [s["JobRunState"] for s in states] == ["STOPPING", "STOPPED"]
        again = glue.batch_stop_job_run(JobName="RunsUntilStopped", JobRunIds=[running])
        assert again["SuccessfulSubmissions"] == []
        assert again["Errors"][0]["ErrorDetail"]["ErrorMessage"] == f"Job run {running} is STOPPED"
