"""Argo v4.1's workflow-level executor plugins (`spec.executorPlugins`): `argoplug run` starts them in place
of the `--plugin` sidecars, as the controller replaces its ConfigMap plugins with them
(`workflow/controller/agent.go`, `getExecutorPlugins`); turned off, the plugin nodes end Error with the
controller's message; a plugin Argo's validation refuses is refused before anything runs.

The workflow is Argo's own example (workflows/argo/workflow-level-executor-plugin.yaml, with its source).
"""

from __future__ import annotations

import io
import re
import socket
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from argoplug.conformance.command import check_command

from .helpers import HERE
from .test_plugins import argoplug

EXAMPLE = HERE / "workflows" / "argo" / "workflow-level-executor-plugin.yaml"
PORT = 4356  # the example's containerPort
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def free_example_port() -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", PORT)) == 0:
            pytest.skip(f"port {PORT}, the example plugin's, is in use here")


def test_the_workflows_own_plugin_runs_in_place_of_the_plugin_options(tmp_path: Path) -> None:
    done = argoplug(
        "run", EXAMPLE, "--plugin", "sagemaker-pipelines", "--plugin-token-file", tmp_path / "argo" / "token"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "spec.executorPlugins): they replace the controller's for this workflow, as Argo v4.1 does" in out
    assert "not used: --plugin sagemaker-pipelines" in out
    assert f"  listening on: http://localhost:{PORT}" in out
    assert "Each plugin task is offered to: workflow-level-hello-executor-plugin, in this order" in out
    assert re.search(r"Status:\s+Succeeded", out)
    assert "Hello from a workflow-level executor plugin!" in out


def test_turned_off_the_plugin_nodes_end_error_with_the_controllers_message() -> None:
    done = argoplug("run", EXAMPLE, "--no-workflow-level-plugins")
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"Status:\s+Error", done.stdout)
    assert (
        'create agent pod failed with reason:"workflow-level executor plugins are disabled in the '
        'controller. To enable them, set the environment variable ARGO_WORKFLOW_LEVEL_EXECUTOR_PLUGINS=true"'
    ) in done.stdout
    assert "listening on" not in done.stdout  # no agent pod: nothing started


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p: p["metadata"].pop("name"),
            "spec.executorPlugins: executor plugin metadata name is mandatory",
        ),
        (
            lambda p: p["spec"]["sidecar"]["container"].pop("ports"),
            "spec.executorPlugins: at least one port is mandatory",
        ),
        (
            lambda p: p["spec"]["sidecar"]["container"].pop("securityContext"),
            "spec.executorPlugins: security context is mandatory",
        ),
    ],
)
def test_a_plugin_argo_refuses_is_refused_with_its_message(tmp_path: Path, change, message: str) -> None:
    body = yaml.safe_load(EXAMPLE.read_text())
    change(body["spec"]["executorPlugins"][0])
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(yaml.safe_dump(body))
    done = argoplug("run", workflow)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "listening on" not in done.stdout


def test_check_takes_the_workflows_plugin_and_the_keys_its_templates_use() -> None:
    out = io.StringIO()
    code = check_command(str(EXAMPLE), seed=3, console=Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "Plugin keys: 'workflowLevelHello', those the workflow's plugin templates use." in text
    assert "PASS own-key: key 'workflowLevelHello': 200 Succeeded" in text
    # Argo's example checks no token: the agent's token is what keeps other pods from calling it.
    assert "FAIL token-missing" in text and code == 1
