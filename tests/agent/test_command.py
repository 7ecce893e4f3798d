"""`argoplug run` end to end: the real CLI as a subprocess, the plugin server as its sidecar subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import HERE

pytestmark = pytest.mark.slow

WORKFLOW = HERE / "workflows" / "hello.yaml"
PLUGINS = "agent_test_plugins:plugins"


def argoplug(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "argoplug", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_run_succeeds_and_prints_the_tree_and_outputs():
    done = argoplug(
        "run", WORKFLOW, "--plugin", PLUGINS, "-p", "who=there", "--aws-endpoint", "http://aws.invalid:4566"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Status:              Succeeded" in out
    assert "  who:               there" in out
    tree = out[out.index("STEP ") :]
    for row in ("main", "├─┬─✔ greet", "│ └─✔ read-env", "└───✔ graph", "├─✔ first", "└─✔ second"):
        assert row in tree
    assert "said:            hello there" in out
    assert "said:            hello there, again" in out
    assert "value:           http://aws.invalid:4566" in out  # --aws-endpoint reached the sidecar
    assert "Traceback" not in done.stderr


def test_a_failed_workflow_exits_1_and_points_to_the_sidecar_log(tmp_path):
    path = tmp_path / "failing.yaml"
    path.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: failing-}\n"
        "spec:\n  entrypoint: main\n  templates:\n"
        "    - name: main\n      plugin: {fail: {message: on purpose}}\n"
    )
    done = argoplug("run", path, "--plugin", PLUGINS)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Status:              Failed" in done.stdout
    assert "Message:             on purpose" in done.stdout
    log = Path(done.stdout.split("The plugin server's log: ", 1)[1].split()[0])
    assert '"message":"template.execute"' in log.read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-p", "novalue"], "invalid parameter 'novalue': expected name=value"),
        (["--plugin", PLUGINS], "does not match Argo's schema for Workflow"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, args, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(WORKFLOW.read_text().replace("entrypoint: main", "entrypoint: {name: main}"))
    done = argoplug("run", path if "--plugin" in args else WORKFLOW, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_a_sidecar_that_cannot_start_exits_2_with_its_log():
    done = argoplug("run", WORKFLOW, "--plugin", "no_such_module:plugins")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the plugin server exited with code 2 before answering" in done.stderr
    assert "cannot import plugin module 'no_such_module'" in done.stderr


def test_aws_endpoint_and_aws_sandbox_together_are_refused(tmp_path):
    done = argoplug(
        "run", WORKFLOW, "--plugin", PLUGINS, "--aws-sandbox", tmp_path / "sandbox.yaml",
        "--aws-endpoint", "http://localhost:4566",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--aws-endpoint and --aws-sandbox cannot be used together" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_warning_of_check_is_printed_before_the_run(tmp_path):
    path = tmp_path / "retries.yaml"
    path.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: retries}\n"
        "spec:\n  entrypoint: main\n  templates:\n"
        "    - name: main\n      outputs: {parameters: [{name: key}]}\n"
        "      plugin: {echo: {key: 'k-{{retries}}'}}\n"
    )
    done = argoplug("run", path, "--plugin", PLUGINS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"argoplug run: warning: {path}, document 1 (Workflow retries): templates.main: {{{{retries}}}} is "
        "set only in a template with a retryStrategy" in done.stderr
    )
    assert "key:             k-{{retries}}" in done.stdout  # sent as written, as Argo does
