"""The README's main command: the published awf-aws workflow, unchanged, through `argoplug run` + sandbox."""

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


# The sandbox pipelines whose executions run long, fail or are stopped (examples/sagemaker), run through the
# real CLI with the example's plugin bundle. --speed 50: the requeues of 5, 10 and 20 s take 0.7 s.
SCENARIOS = "examples/sagemaker/sandbox-scenarios.yaml"
REASON = "Step failure: One or multiple steps failed."


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_PROFILE": "a-profile-that-does-not-exist", "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "argoplug", "run", *args, "--aws-sandbox", SCENARIOS,
         "--plugin", "examples/sagemaker/argoplug.yaml", "--speed", "50"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def run_example(pipeline: str) -> subprocess.CompletedProcess[str]:
    workflow = ("examples/sagemaker/workflow.yaml", "examples/sagemaker/workflow-template.yaml")
    return run(*workflow, "-p", f"pipeline_name={pipeline}")


@pytest.fixture(scope="module")
def failing_run() -> subprocess.CompletedProcess[str]:
    """The example workflow on FailsAfterThreePolls: Executing for 3 DescribePipelineExecution calls, then
    Failed."""
    return run_example("FailsAfterThreePolls")


def test_a_pipeline_failing_after_three_polls_ends_failed_with_the_declared_reason(
    failing_run: subprocess.CompletedProcess[str],
) -> None:
    done = failing_run
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "Traceback" not in out + done.stderr
    assert "FailsAfterThreePolls (Executing for 3 polls, then Failed)" in out  # what the sandbox says it does
    assert re.search(r"Status:\s+Failed", out)
    message = rf"pipeline execution \S+ Failed: {re.escape(REASON)} \(failed steps: Train\)"
    assert re.search(rf"✖ execute-pipeline\s+execute_pipeline\s+\S+\s+{message}", out)
    assert re.search(rf"failure-reason:\s+{re.escape(REASON)}\n", out)
    assert re.search(r"execution-status:\s+Failed\n", out)
    # The steps (ListPipelineExecutionSteps) as declared; the report cuts long values.
    assert (
        '"name":"Prepare","status":"Succeeded","failure_reason":""},{"name":"Train","status":"Failed"' in out
    )


def test_a_pipeline_failing_after_three_polls_is_requeued_three_times_with_backoff(
    failing_run: subprocess.CompletedProcess[str],
) -> None:
    """The sidecar's log (kept, and named, after a run that failed) has every call of the node."""
    found = re.search(r"The log of awf-aws: (\S+)", failing_run.stdout)
    assert found, failing_run.stdout
    calls = [json.loads(line) for line in Path(found.group(1)).read_text().splitlines()]
    replies = [
        (call["phase"], call.get("requeue"))
        for call in calls
        if call.get("message") == "template.execute" and call.get("template") == "execute_pipeline"
    ]
    assert replies == [("Running", "5s"), ("Running", "10s"), ("Running", "20s"), ("Failed", None)]


def test_argoplug_run_shows_each_requeue_as_it_happens(failing_run: subprocess.CompletedProcess[str]) -> None:
    running = [
        line for line in failing_run.stdout.splitlines() if re.search(r"execute-pipeline\b.*Running", line)
    ]
    assert len(running) == 3, failing_run.stdout
    for call, (line, requeue) in enumerate(zip(running, ("5s", "10s", "20s"), strict=True), start=1):
        assert line.endswith(f"(call {call}, requeue {requeue})"), line


def test_a_pipeline_stopped_elsewhere_fails_the_node_as_stopped() -> None:
    done = run_example("StoppedElsewhere")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert re.search(r"Status:\s+Failed", out)
    assert re.search(r"✖ execute-pipeline\s+execute_pipeline\s+\S+\s+pipeline execution \S+ Stopped\n", out)
    assert re.search(r"execution-status:\s+Stopped\n", out)


def test_a_pipeline_started_without_waiting_then_stopped_ends_stopped() -> None:
    """stop-workflow.yaml: `wait: false` succeeds at once, the `stop` node waits for Stopped (-o json: the
    workflow status as Argo holds it)."""
    done = run("examples/sagemaker/stop-workflow.yaml", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout)["status"]
    assert status["phase"] == "Succeeded"
    nodes = {node["displayName"]: node for node in status["nodes"].values()}
    start, stop = nodes["start-pipeline"], nodes["stop-pipeline"]
    assert (start["phase"], stop["phase"]) == ("Succeeded", "Succeeded")
    assert re.fullmatch(r"pipeline execution \S+ started \(Executing\); not waiting for it \(wait: false\)",
                        start["message"])  # fmt: skip
    assert re.fullmatch(r"pipeline execution \S+ Stopped", stop["message"])
    started = {p["name"]: p["value"] for p in start["outputs"]["parameters"]}
    stopped = {p["name"]: p["value"] for p in stop["outputs"]["parameters"]}
    assert started["execution-status"] == "Executing"
    assert stopped["execution-arn"] == started["execution-arn"]
    assert stopped["execution-status"] == "Stopped"
    assert json.loads(stopped["steps"]) == [
        {"name": "Prepare", "status": "Succeeded", "failure_reason": ""},
        {"name": "Train", "status": "Stopped", "failure_reason": ""},
    ]
