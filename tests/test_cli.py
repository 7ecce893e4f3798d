"""`argoplug serve` run as a sidecar is (a subprocess, a port, JSON logs, SIGTERM), and `argoplug call`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from argoplug.testing import make_request

TESTS = Path(__file__).parent
TOKEN = "s3cr3t-token-value"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "argoplug", "serve", "--plugin", "sample_plugins:greet",
             "--port", str(port), "--token-file", str(token_file), "--log-format", "json"],
            env=env, stderr=log, text=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"argoplug serve did not start: {log_path.read_text()}")
        time.sleep(0.05)
    yield url, process, log_path
    if process.poll() is None:
        process.kill()
        process.wait()


def test_serve_answers_logs_json_without_token_and_stops_on_sigterm(
    sidecar: tuple[str, subprocess.Popen[str], Path],
) -> None:
    url, process, log_path = sidecar
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ours = httpx.post(
        f"{url}/api/v1/template.execute", json=make_request({"greet": {"name": "ada"}}), headers=headers
    )
    assert ours.json()["node"]["outputs"]["parameters"] == [{"name": "greeting", "value": "hello ada"}]
    foreign = httpx.post(f"{url}/api/v1/template.execute", json=make_request({"other": {}}))
    assert foreign.content == b"{}"

    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status says SIGTERM.
    assert process.wait(timeout=10) in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert lines[-1]["message"] == "plugin server stopped"
    calls = [entry for entry in lines if entry["message"] == "template.execute"]
    assert len(calls) == 1
    assert calls[0]["plugin_key"] == "greet"
    assert calls[0]["phase"] == "Succeeded"
    assert calls[0]["workflow"] == "test-workflow"
    assert TOKEN not in log_path.read_text()


def test_call_prints_the_reply(sidecar: tuple[str, subprocess.Popen[str], Path], tmp_path: Path) -> None:
    url, _, _ = sidecar
    request = tmp_path / "request.yaml"
    request.write_text(
        "workflow: {metadata: {name: wf}}\ntemplate:\n  name: t\n  plugin:\n    greet: {name: grace}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "call", str(request), "--url", url, "--token", TOKEN],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "HTTP 200" in done.stdout
    assert '"value": "hello grace"' in done.stdout


def test_call_reports_a_refusal(sidecar: tuple[str, subprocess.Popen[str], Path], tmp_path: Path) -> None:
    url, _, _ = sidecar
    request = tmp_path / "request.json"
    request.write_text(json.dumps(make_request({"greet": {"name": "x"}})))
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "call", str(request), "--url", url, "--token", "wrong"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "HTTP 403" in done.stdout and "invalid token" in done.stdout


def test_serve_with_an_unknown_plugin_says_what_is_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "serve", "--plugin", "no-such-plugin"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no plugin named 'no-such-plugin' is installed" in done.stderr
    assert "Traceback" not in done.stderr
