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
    log = Path(done.stdout.split("The log of argoplug serve: ", 1)[1].split()[0])
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
    assert "argoplug serve: the plugin server exited with code 2 before answering" in done.stderr
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


def test_the_run_says_where_its_sidecar_listens_and_prints_its_seed_and_workers():
    done = argoplug("run", WORKFLOW, "--plugin", PLUGINS, "--seed", "42", "--workers", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"Plugin server: argoplug serve --plugin {PLUGINS}\n  listening on: http://127.0.0.1:" in out
    assert "  token file: " in out and "  log: " in out
    assert (
        "Each plugin task is offered to: argoplug serve, in this order (seed 42: --seed 42 repeats it); "
        "3 task workers" in out
    )


def test_without_a_seed_one_is_drawn_and_printed(monkeypatch):
    monkeypatch.setenv("ARGO_AGENT_TASK_WORKERS", "5")
    done = argoplug("run", WORKFLOW, "--plugin", PLUGINS)
    assert done.returncode == 0, done.stdout + done.stderr
    seed = done.stdout.split("(seed ", 1)[1].split(":", 1)[0]
    assert seed.isdigit() and f"--seed {seed} repeats it); 5 task workers" in done.stdout


@pytest.mark.parametrize("option", [["--workers", "0"], ["--seed", "x"]])
def test_bad_seed_or_workers_exit_2(option):
    done = argoplug("run", WORKFLOW, "--plugin", PLUGINS, *option)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Invalid value for" in done.stderr and done.stdout == ""


def test_a_plugin_value_that_names_nothing_exits_2_before_anything_runs(tmp_path):
    done = argoplug("run", WORKFLOW, "--plugin", str(tmp_path / "missing" / "plugin.yaml"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        f"argoplug run: --plugin {tmp_path / 'missing' / 'plugin.yaml'}: no such file or folder"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_every_feature_runs_from_the_cli_with_speed_and_prints_argos_status_as_json():
    import json

    from .helpers import PlainHttpServer

    with PlainHttpServer({"/status": (200, "all good")}) as web:
        done = argoplug(
            "run", HERE / "workflows" / "every-feature.yaml", "--plugin", PLUGINS,
            "-p", f"base-url={web.url}", "--speed", "50", "-o", "json",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Speed ×50: requeue delays, retry backoffs" in done.stderr
    assert "STEP " in done.stderr  # the tree goes to stderr, stdout holds the document alone
    document = json.loads(done.stdout)
    assert document["status"]["phase"] == "Succeeded"
    nodes = {node["displayName"]: node for node in document["status"]["nodes"].values()}
    assert nodes["flaky"]["type"] == "Retry"
    assert nodes["fan-out(1:green)"]["phase"] == "Succeeded"


def test_http_template_headers_come_from_the_secrets_file(tmp_path):
    from .helpers import PlainHttpServer

    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: api}\nstringData: {token: s3cr3t-value}\n"
    )
    workflow = tmp_path / "http.yaml"
    workflow.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: http-}\n"
        "spec:\n  entrypoint: main\n  arguments: {parameters: [{name: url}]}\n  templates:\n"
        "    - name: main\n      http:\n        url: '{{workflow.parameters.url}}/status'\n"
        "        headers:\n          - name: Authorization\n"
        "            valueFrom: {secretKeyRef: {name: api, key: token}}\n"
        "        successCondition: response.body == 'all good'\n"
    )
    with PlainHttpServer({"/status": (200, "all good")}) as web:
        done = argoplug("run", workflow, "--plugin", PLUGINS, "-p", f"url={web.url}", "--secrets", secrets)
        missing = argoplug("run", workflow, "--plugin", PLUGINS, "-p", f"url={web.url}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert web.requests[0][2]["Authorization"] == "s3cr3t-value"
    assert "s3cr3t-value" not in done.stdout + done.stderr
    assert missing.returncode == 1
    assert "--secrets" in missing.stdout


def test_sigterm_stops_the_run_and_its_sidecars(tmp_path):
    import re
    import signal
    import socket
    import time

    path = tmp_path / "waits.yaml"
    path.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: waits-}\n"
        "spec:\n  entrypoint: main\n  templates:\n"
        "    - name: main\n      suspend: {duration: '60'}\n"
    )
    process, lines = _started_run(path, "Running")
    listening = re.search(r"listening on: http://[\d.]+:(\d+)", "".join(lines))
    assert listening is not None, "".join(lines)
    port = int(listening.group(1))
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=30)[0]
    assert process.returncode == 130, "".join(lines) + rest
    time.sleep(0.2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_plugin_messages_and_node_names_are_printed_as_sent(tmp_path):
    path = tmp_path / "emoji.yaml"
    path.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: emoji-}\n"
        "spec:\n  entrypoint: main\n  templates:\n"
        "    - name: main\n      plugin: {fail: {message: 'status :fire: [bold]x[/bold]'}}\n"
    )
    done = argoplug("run", path, "--plugin", PLUGINS)
    assert done.returncode == 1
    assert "status :fire: [bold]x[/bold]" in done.stdout
    assert "🔥" not in done.stdout


def test_a_template_nobody_takes_names_the_key_asked_and_the_keys_served(tmp_path):
    workflow = tmp_path / "typo.yaml"
    workflow.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: typo}\nspec:\n"
        "  entrypoint: main\n  templates:\n    - {name: main, plugin: {ecoh: {}}}\n"
    )
    failed = argoplug("run", workflow, "--plugin", PLUGINS)
    assert failed.returncode == 1
    assert "no plugin executed the template (plugin key 'ecoh' asked; argoplug serve serves " in failed.stdout
    assert "echo" in failed.stdout.split("plugin key 'ecoh' asked", 1)[1].splitlines()[0]


def _started_run(path: Path, until: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`argoplug run PATH` as a subprocess, and its output up to the first line holding `until`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "argoplug", "run", str(path), "--plugin", PLUGINS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if until in line:
            break
    return process, lines


STOPPABLE = (
    "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: stoppable}\n"
    "spec:\n  entrypoint: main\n  onExit: bye\n  templates:\n"
    "    - name: main\n      suspend: {duration: '60'}\n"
    "    - name: bye\n      plugin: {echo: {status: '{{workflow.status}}'}}\n"
)


def test_ctrl_c_stops_as_argo_stop_does_and_runs_the_exit_handler(tmp_path):
    import signal

    path = tmp_path / "stoppable.yaml"
    path.write_text(STOPPABLE)
    process, lines = _started_run(path, "stoppable Running")
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=30)[0]
    output = "".join(lines) + rest
    assert process.returncode == 1, output
    assert "Stopping as argo stop does" in output
    assert "Stopped with strategy 'Stop'" in output  # the node's and the workflow's message
    assert "stoppable.onExit" in output and "status:" in output and "Failed" in output.split("status:")[-1]


def test_a_second_ctrl_c_interrupts_without_the_exit_handler(tmp_path):
    import signal
    import time

    path = tmp_path / "stoppable.yaml"
    path.write_text(
        STOPPABLE.replace("plugin: {echo: {status: '{{workflow.status}}'}}", "suspend: {duration: '60'}")
    )
    process, lines = _started_run(path, "stoppable Running")
    process.send_signal(signal.SIGINT)
    time.sleep(1.0)  # the exit handler (a 60 s suspend) is running
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=30)[0]
    assert process.returncode == 130, "".join(lines) + rest


def test_a_failed_runs_logs_are_kept_in_one_folder_per_user_and_old_ones_removed(tmp_path):
    import re
    import tempfile
    import time

    base = Path(tempfile.gettempdir()) / f"argoplug-runs-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    old = base / "run-from-last-month"
    old.mkdir(exist_ok=True)
    month_ago = time.time() - 30 * 24 * 3600
    os.utime(old, (month_ago, month_ago))
    workflow = tmp_path / "fails.yaml"
    workflow.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: fails}\nspec:\n"
        "  entrypoint: main\n  templates:\n    - {name: main, plugin: {fail: {message: no}}}\n"
    )
    failed = argoplug("run", workflow, "--plugin", PLUGINS)
    assert failed.returncode == 1
    log = re.search(r"The log of .*?: (\S+)", failed.stdout)
    assert log is not None, failed.stdout
    assert Path(log.group(1)).is_relative_to(base) and Path(log.group(1)).exists()
    assert not old.exists()
    assert (base.stat().st_mode & 0o777) == 0o700
