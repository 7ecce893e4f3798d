"""The published awf-aws Glue, Step Functions and Lambda workflows, unchanged, through `argoplug run` and the
AWS sandbox (examples/aws-services): each runs Succeeded, its awf-aws-plugin templates served by the
glue-job, step-functions and lambda-function plugins."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "aws-services"


def run(kind: str) -> str:
    env = {**os.environ, "AWS_PROFILE": "a-profile-that-does-not-exist", "COLUMNS": "250"}
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "run", f"examples/aws-services/aws-{kind}-workflow.yaml",
         f"examples/aws-services/aws-{kind}-workflow-template.yaml",
         "--aws-sandbox", "examples/aws-services/sandbox.yaml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert re.search(r"Status:\s+Succeeded", done.stdout)
    return done.stdout


@pytest.mark.parametrize(
    ("kind", "service"),
    [("glue-job", "aws_glue"), ("step-function", "aws_step_functions"), ("lambda-function", "aws_lambda")],
)
def test_the_examples_are_the_published_awf_aws_workflows(kind: str, service: str) -> None:
    template = yaml.safe_load((EXAMPLE / f"aws-{kind}-workflow-template.yaml").read_text())
    blocks = [t["plugin"]["awf-aws-plugin"] for t in template["spec"]["templates"] if "plugin" in t]
    assert [(b["action"], b["service"]) for b in blocks] == [("validate", service), ("execute", service)]


def test_the_glue_job_workflow_succeeds_with_the_job_run() -> None:
    out = run("glue-job")
    assert "account 100000000002, region us-west-2, pipelines: none; Glue jobs: MyGlueJob" in out
    assert re.search(r"✔ validate-glue-job\s+validate_glue_job\s+\S+\s+Glue job MyGlueJob exists", out)
    assert re.search(
        r"✔ execute-glue-job\s+execute_glue_job\s+\S+\s+Glue job run jr_\w+ of MyGlueJob SUCCEEDED", out
    )
    assert re.search(r"job-run-state:\s+SUCCEEDED", out)


def test_the_step_function_workflow_succeeds_with_the_executions_output() -> None:
    out = run("step-function")
    arn = "arn:aws:states:us-west-2:100000000002:stateMachine:MyStepFunction"
    assert re.search(
        rf"✔ validate-step-function\s+validate_step_function\s+\S+\s+state machine {arn} is ACTIVE", out
    )
    assert re.search(
        r"✔ execute-step-function\s+execute_step_function\s+\S+\s+execution argoplug-\w+-1 SUCCEEDED", out
    )
    assert re.search(r'output:\s+\{"loaded": true\}', out)


def test_the_lambda_function_workflow_queues_the_invocation() -> None:
    out = run("lambda-function")
    assert re.search(
        r"✔ execute-lambda-function\s+\S+\s+\S+\s+invocation of Lambda function MyLambdaFunction queued", out
    )
    assert re.search(r"status-code:\s+202", out)


def run_scenario(
    kind: str, *parameter: str
) -> tuple[subprocess.CompletedProcess[str], list[tuple[str, str]]]:
    """The published workflow against examples/aws-services/sandbox-scenarios.yaml at --speed 50; also the
    (phase, requeue) of each call of its execute step, from the sidecar's log (kept after a failed run)."""
    env = {**os.environ, "AWS_PROFILE": "a-profile-that-does-not-exist", "COLUMNS": "250"}
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "run", f"examples/aws-services/aws-{kind}-workflow.yaml",
         f"examples/aws-services/aws-{kind}-workflow-template.yaml",
         "--aws-sandbox", "examples/aws-services/sandbox-scenarios.yaml", "--speed", "50", *parameter],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr
    found = re.search(r"The log of [^:\n]+: (\S+)", done.stdout)
    calls = [json.loads(line) for line in Path(found.group(1)).read_text().splitlines()] if found else []
    replies = [
        (call["phase"], call.get("requeue", ""))
        for call in calls
        if call.get("message") == "template.execute" and str(call.get("template")).startswith("execute_")
    ]
    return done, replies


def test_a_glue_job_run_failing_after_three_polls_ends_failed_with_its_error_message() -> None:
    done, replies = run_scenario("glue-job", "-p", "job_name=FailsAfterThreePolls")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "Glue jobs: MyGlueJob, FailsAfterThreePolls (RUNNING for 3 polls, then FAILED)" in out
    error = "AnalysisException: Path does not exist: s3://my-bucket/input/"
    assert re.search(
        r"✖ execute-glue-job\s+execute_glue_job\s+\S+\s+Glue job run jr_\w+ of FailsAfterThreePolls "
        rf"FAILED: {error}",
        out,
    )
    assert re.search(rf"error-message:\s+{error}\n", out)
    assert re.search(r"job-run-state:\s+FAILED\n", out)
    # The start, then three GetJobRun answered RUNNING, each requeued with backoff; the fourth FAILED.
    assert replies == [
        ("Running", "5s"),
        ("Running", "10s"),
        ("Running", "20s"),
        ("Running", "40s"),
        ("Failed", ""),
    ]


def test_a_state_machine_failing_after_a_wait_ends_failed_with_its_error_and_cause() -> None:
    done, replies = run_scenario("step-function", "-p", "step_function_name=FailsAfterASecond")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert re.search(
        r"✖ execute-step-function\s+execute_step_function\s+\S+\s+execution argoplug-\w+-1 "
        r"FAILED: NoRecords; the input has no records",
        out,
    )
    assert re.search(r"error:\s+NoRecords\n", out) and re.search(r"cause:\s+the input has no records\n", out)
    assert replies[0] == ("Running", "5s") and replies[-1] == ("Failed", "")  # requeued while moto waits
