"""`argoplug run` end to end: the real CLI as a subprocess, the plugin server as its sidecar subprocess."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from argoplug.agent.command import SidecarError, sidecar

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


def test_the_sidecar_is_started_as_argo_starts_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    with sidecar(tmp_path, plugins=[PLUGINS]) as (url, token):
        token_file = tmp_path / "token"
        assert token_file.read_text() == token and not token.endswith("\n")
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o440
        assert url.startswith("http://127.0.0.1:")
        health = httpx.get(f"{url}/healthz").json()
        assert health["plugins"] == ["echo", "environ", "fail", "poll"]
    assert not token_file.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz")


def test_a_sidecar_that_does_not_answer_in_time_is_stopped(tmp_path):
    # No server listens within a few milliseconds of its start: a zero patience always runs out.
    with (
        pytest.raises(SidecarError, match=r"did not answer GET .*/healthz within 0s"),
        sidecar(tmp_path, plugins=[PLUGINS], health_timeout=0),
    ):
        pass
    assert not (tmp_path / "token").exists()
