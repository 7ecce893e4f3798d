"""The README's main command: the published awf-aws workflow, unchanged, through `argoplug run` + sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sagemaker"


def test_readme_runs_this_example() -> None:
    readme = (ROOT / "README.md").read_text()
    assert (
        "argoplug run examples/sagemaker/workflow.yaml examples/sagemaker/workflow-template.yaml "
        "--aws-sandbox examples/sagemaker/sandbox.yaml" in readme
    )


def test_the_example_is_the_published_awf_aws_workflow() -> None:
    workflow = yaml.safe_load((EXAMPLE / "workflow.yaml").read_text())
    template = yaml.safe_load((EXAMPLE / "workflow-template.yaml").read_text())
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "amz-sagemaker-pipeline"}
    steps = {t["name"]: t for t in template["spec"]["templates"]}
    assert steps["execute_pipeline"]["plugin"]["awf-aws-plugin"]["action"] == "execute"
    assert steps["validate_pipeline"]["plugin"]["awf-aws-plugin"]["service"] == "amazon_sagemaker_pipelines"


def test_argoplug_run_on_the_sagemaker_example_succeeds_with_the_execution_arn(tmp_path: Path) -> None:
    # A user's own AWS settings must not leak into the sandboxed run.
    env = {**os.environ, "AWS_PROFILE": "a-profile-that-does-not-exist", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "run", "examples/sagemaker/workflow.yaml",
         "examples/sagemaker/workflow-template.yaml", "--aws-sandbox", "examples/sagemaker/sandbox.yaml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "account 100000000002, region us-west-2, pipelines: MyPipeline" in out
    assert re.search(r"Status:\s+Succeeded", out)
    assert re.search(r"✔ validate-pipeline\s+validate_pipeline\s+\S+\s+pipeline MyPipeline is Active", out)
    assert re.search(r"✔ execute-pipeline\s+execute_pipeline\s+\S+\s+pipeline execution \S+ Succeeded", out)
    assert re.search(
        r"execution-arn:\s+arn:aws:sagemaker:us-west-2:100000000002:pipeline/MyPipeline/execution/\w+", out
    )
    assert "Traceback" not in out + done.stderr
