"""The token file as Argo's agent pod has it: `argoplug serve` says at start-up when it cannot read it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from argoplug.token_access import AGENT_UID, token_file_problem
from conformance_servers import free_port

# Root reads any file. Without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH it reads as uid 0, gid 0 only: a file
# of another user and group is then as closed to it as Argo's token file is to a sidecar of another user.
WITHOUT_DAC = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root (chown) and setpriv"
)


@pytest.fixture
def agent_folder(tmp_path: Path) -> Path:
    """/var/run/argo as Argo's init container leaves it, for a user and group that are not this process's."""
    folder = tmp_path / "argo"
    folder.mkdir()
    token = folder / "token"
    token.write_bytes(b"s3cr3t-token")
    for path, mode in ((token, 0o440), (folder, 0o770)):
        os.chown(path, AGENT_UID, AGENT_UID)
        os.chmod(path, mode)
    tmp_path.chmod(0o755)
    return folder


def serve_start_lines(token_file: Path, *prefix: str) -> list[str]:
    """Start a real `argoplug serve`, return its log lines up to 'serving plugin keys', and stop it."""
    options = ["--port", str(free_port()), "--token-file", str(token_file), "--log-format", "text"]
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "argoplug", "serve", "--plugin", "sagemaker-pipelines", *options],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if "serving plugin keys" in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert any("serving plugin keys" in line for line in lines), lines
    return lines


@needs_root
def test_serve_names_who_it_runs_as_and_what_would_let_it_read_the_token(agent_folder: Path) -> None:
    lines = serve_start_lines(agent_folder / "token", *WITHOUT_DAC)
    problems = [line for line in lines if "is not readable by this process" in line]
    assert len(problems) == 1, lines
    line = problems[0]
    assert f"token file {agent_folder / 'token'} is not readable by this process (uid 0, gid 0" in line
    assert f"its folder is {AGENT_UID}:{AGENT_UID} mode 0770" in line
    assert f"securityContext to runAsUser: {AGENT_UID} or runAsGroup: {AGENT_UID}" in line
    assert "s3cr3t-token" not in "\n".join(lines)


@needs_root
def test_serve_that_can_read_the_token_says_nothing_of_it(agent_folder: Path) -> None:
    lines = serve_start_lines(agent_folder / "token")
    assert not [line for line in lines if "token file" in line], lines


def test_the_problem_of_a_missing_token_file(tmp_path: Path) -> None:
    problem = token_file_problem(str(tmp_path / "token"))
    assert problem is not None
    assert problem.startswith(f"token file {tmp_path / 'token'} does not exist (running as uid {os.getuid()}")
    (tmp_path / "token").write_text("t")
    assert token_file_problem(str(tmp_path / "token")) is None
