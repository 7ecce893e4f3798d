"""`argoplug serve` run as a sidecar is (a subprocess, a port, JSON logs, SIGTERM), and `argoplug call`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from argoplug.testing import Sidecar, make_request

TESTS = Path(__file__).parent


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    pythonpath = f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    with Sidecar(["sample_plugins:greet"], env={"PYTHONPATH": pythonpath}, workdir=tmp_path) as running:
        yield running


def test_serve_answers_logs_json_without_token_and_stops_on_sigterm(sidecar: Sidecar) -> None:
    ours = sidecar.post(make_request({"greet": {"name": "ada"}}))
    assert ours.json()["node"]["outputs"]["parameters"] == [{"name": "greeting", "value": "hello ada"}]
    assert sidecar.post(make_request({"other": {}}), token=None).content == b"{}"

    # uvicorn shuts down gracefully, then re-raises the signal so the exit status says SIGTERM.
    assert sidecar.stop() in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in sidecar.log_path.read_text().splitlines()]
    assert lines[-1]["message"] == "plugin server stopped"
    calls = [entry for entry in lines if entry["message"] == "template.execute"]
    assert len(calls) == 1
    assert calls[0]["plugin_key"] == "greet"
    assert calls[0]["phase"] == "Succeeded"
    assert calls[0]["workflow"] == "test-workflow"
    assert sidecar.token not in sidecar.log_path.read_text()


def test_call_prints_the_reply(sidecar: Sidecar, tmp_path: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text(
        "workflow: {metadata: {name: wf}}\ntemplate:\n  name: t\n  plugin:\n    greet: {name: grace}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "call", str(request), "--url", sidecar.url,
         "--token-file", str(sidecar.token_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "HTTP 200" in done.stdout
    assert '"value": "hello grace"' in done.stdout


def test_call_reports_a_refusal(sidecar: Sidecar, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(make_request({"greet": {"name": "x"}})))
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "call", str(request), "--url", sidecar.url, "--token", "wrong"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "HTTP 403" in done.stdout and "invalid token" in done.stdout


def test_call_with_a_file_that_is_not_a_request(tmp_path: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text("just: a mapping\n")
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "call", str(request)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "is not a template.execute request: expected an object with `template`" in done.stderr


def test_serve_with_an_unknown_plugin_says_what_is_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "serve", "--plugin", "no-such-plugin"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no plugin named 'no-such-plugin' is installed" in done.stderr
    assert "Traceback" not in done.stderr
