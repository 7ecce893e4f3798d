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
            "state_machines, lambda_functions)",
        ),
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
