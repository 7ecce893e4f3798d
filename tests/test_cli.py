"""`argoplug serve` run as a sidecar is (`argoplug.sidecar`: a subprocess, a port, a token file, JSON logs,
SIGTERM), and `argoplug call`."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import argoplug.sidecar
from argoplug.testing import Sidecar, SidecarError, make_request

TESTS = Path(__file__).parent
PYTHONPATH = f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    with Sidecar(["sample_plugins:greet"], env={"PYTHONPATH": PYTHONPATH}, workdir=tmp_path) as running:
        yield running


def test_the_sidecar_is_started_as_argo_starts_one(sidecar: Sidecar, tmp_path: Path) -> None:
    assert Sidecar is argoplug.sidecar.Sidecar  # one implementation, for `argoplug run` and the test kit
    assert sidecar.token_file == tmp_path / "token"
    token = sidecar.token_file.read_text()
    assert token == sidecar.token and not token.endswith("\n")
    assert stat.S_IMODE(sidecar.token_file.stat().st_mode) == 0o440
    assert sidecar.url == f"http://127.0.0.1:{sidecar.port}"
    assert httpx.get(f"{sidecar.url}/healthz").json()["plugins"] == ["greet"]
    sidecar.close()
    assert not sidecar.token_file.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sidecar.url}/healthz")


def test_a_killed_sidecar_starts_again_on_its_port_with_its_token(sidecar: Sidecar) -> None:
    before = (sidecar.url, sidecar.token)
    sidecar.kill()
    assert sidecar.process is not None and sidecar.process.returncode == -signal.SIGKILL
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sidecar.url}/healthz")
    sidecar.start()
    assert (sidecar.url, sidecar.token) == before
    assert sidecar.post(make_request({"greet": {"name": "again"}})).json()["node"]["phase"] == "Succeeded"


def test_a_sidecar_that_exits_says_why_with_its_log(tmp_path: Path) -> None:
    with (
        pytest.raises(SidecarError, match="exited with code 2 before answering") as caught,
        Sidecar(["no_such_module:plugins"], workdir=tmp_path),
    ):
        pass
    assert "cannot import plugin module 'no_such_module'" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)  # what argoplug.testing.Sidecar raised before
    assert not (tmp_path / "token").exists()


def test_a_sidecar_that_does_not_answer_in_time_is_killed(tmp_path: Path) -> None:
    # No server listens within a few milliseconds of its start: a zero patience always runs out.
    sidecar = Sidecar(
        ["sample_plugins:greet"], env={"PYTHONPATH": PYTHONPATH}, workdir=tmp_path, health_timeout=0
    )
    with pytest.raises(SidecarError, match=r"did not answer GET .*/healthz within 0s"), sidecar:
        pass
    assert sidecar.process is not None and sidecar.process.returncode == -signal.SIGKILL
    assert not (tmp_path / "token").exists()


def test_the_test_kit_imports_without_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; import argoplug.testing; print(argoplug.testing.Sidecar)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "argoplug.sidecar.Sidecar" in done.stdout


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


def test_call_exits_1_for_a_failed_node(sidecar: Sidecar, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(make_request({"greet": {"nmae": "x"}})))  # bad arguments: Failed
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "call", str(request), "--url", sidecar.url,
         "--token-file", str(sidecar.token_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout
    assert "HTTP 200" in done.stdout and '"phase": "Failed"' in done.stdout


@pytest.mark.parametrize("command", ["run", "check", "call", "build", "init", "plugins", "serve"])
def test_dash_h_is_help_for_every_command(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", command, "-h"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"argoplug {command}" in done.stdout


def test_serve_on_a_taken_port_exits_3_with_one_line_before_starting(sidecar: Sidecar) -> None:
    port = sidecar.url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "serve", "--port", port, "--log-format", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr == f"argoplug serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_a_yaml_error_names_the_file(tmp_path: Path) -> None:
    workflow = tmp_path / "broken.yaml"
    workflow.write_text("kind: Workflow\nmetadata: {name: [x}\n")
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "run", str(workflow)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f'in "{workflow}", line 2, column 18' in done.stderr
    assert "<unicode string>" not in done.stderr


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


def test_an_in_process_server_leaves_the_test_process_collector_alone() -> None:
    import gc

    from argoplug.testing import LiveServer
    from sample_plugins import greet

    before = gc.get_threshold(), gc.get_freeze_count()
    with LiveServer([greet]) as live:
        assert live.execute({"greet": {"name": "gc"}})["node"]["phase"] == "Succeeded"
        assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_a_sidecar_freezes_start_up_objects_and_collects_less_often(tmp_path: Path) -> None:
    pythonpath = f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    values: dict[str, int] = {}
    with Sidecar(["sample_plugins:collector"], env={"PYTHONPATH": pythonpath}, workdir=tmp_path) as sidecar:
        deadline = time.monotonic() + 10  # tuned half a second after start-up, not before the first answer
        while values.get("frozen", 0) == 0 and time.monotonic() < deadline:
            reply = sidecar.post(make_request({"collector": {}})).json()
            values = {p["name"]: int(p["value"]) for p in reply["node"]["outputs"]["parameters"]}
            time.sleep(0.05)
    assert values["threshold"] == 10_000
    assert values["frozen"] > 10_000  # the imports, the plugins and the app


def test_serve_imports_neither_typer_nor_pydantic() -> None:
    """typer and its pydantic cost every sidecar ~50 ms of start-up and ~8 MiB (bench/README.md)."""
    code = (
        "import sys\n"
        "sys.argv = ['argoplug', 'serve', '--plugin', 'no-such-plugin']\n"
        "from argoplug.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, sorted(m for m in ('typer', 'pydantic', 'rich', 'click') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[0] == "2 []", done.stdout + done.stderr


def test_serve_help_and_the_typer_passthrough_show_the_same_options() -> None:
    direct = subprocess.run(
        [sys.executable, "-m", "argoplug", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert direct.returncode == 0
    for option in ("--plugin", "--host", "--port", "--token-file", "--log-format", "--handler-deadline"):
        assert option in direct.stdout
    from typer.testing import CliRunner

    from argoplug.cli.commands import app

    passed_on = CliRunner().invoke(app, ["serve", "--port", "not-a-port"])
    assert passed_on.exit_code == 2


def test_version_states_the_bundled_argo_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.startswith(
        "argoplug 0.1.0; workflows validated against the schema of Argo Workflows v4.1.0"
    )


def test_a_bare_kube_sandbox_gets_the_empty_value_and_a_given_file_is_kept():
    from argoplug.cli import with_optional_values

    assert with_optional_values(["run", "wf.yaml", "--kube-sandbox"]) == ["run", "wf.yaml", "--kube-sandbox="]
    assert with_optional_values(["run", "--kube-sandbox", "-p", "a=b", "wf.yaml"])[1] == "--kube-sandbox="
    assert with_optional_values(["run", "--kube-sandbox", "objects.yaml"])[1:] == [
        "--kube-sandbox",
        "objects.yaml",
    ]
    assert with_optional_values(["run", "--", "--kube-sandbox"]) == ["run", "--", "--kube-sandbox"]
