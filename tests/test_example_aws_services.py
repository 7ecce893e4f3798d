"""The published awf-aws Glue, Step Functions and Lambda workflows, unchanged, through `argoplug run` and the
AWS sandbox (examples/aws-services): each runs Succeeded, its awf-aws-plugin templates served by the
glue-job, step-functions and lambda-function plugins."""

from __future__ import annotations

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
