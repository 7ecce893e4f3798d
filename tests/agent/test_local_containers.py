"""Container and script steps in `argoplug run`, opt-in: `--local-containers` runs their command here,
`--container-outputs FILE` gives canned results; without either a workflow with such steps is refused
before any sidecar starts (issue: "From a fresh machine to a cluster", part 5)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .test_command import PLUGINS, argoplug

MIXED = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: mixed}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: compute
            template: compute
        - - name: use
            template: use
            arguments: {parameters: [{name: value, value: "{{steps.compute.outputs.result}}"}]}
    - name: compute
      script:
        image: python:3.12
        command: [PYTHON]
        source: |
          import json, os
          print(json.dumps({"sum": 1 + 2, "who": os.environ["WHO"]}))
        env: [{name: WHO, value: argoplug}]
    - name: use
      inputs: {parameters: [{name: value}]}
      plugin: {echo: {got: "{{inputs.parameters.value}}"}}
"""


def write(tmp_path: Path, text: str, name: str = "workflow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("PYTHON", sys.executable))
    return path


def nodes_by_display_name(stdout: str) -> dict[str, dict]:
    document = json.loads(stdout)
    return {node["displayName"]: node for node in document["status"]["nodes"].values()}


def test_a_script_step_runs_here_and_its_result_goes_to_the_next_plugin_step(tmp_path) -> None:
    done = argoplug("run", write(tmp_path, MIXED), "--plugin", PLUGINS, "--local-containers", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Container and script steps: all run as local processes (--local-containers)" in done.stderr
    nodes = nodes_by_display_name(done.stdout)
    assert nodes["compute"]["type"] == "Pod"
    assert nodes["compute"]["outputs"]["result"] == '{"sum": 3, "who": "argoplug"}'
    assert nodes["compute"]["outputs"]["exitCode"] == "0"
    assert nodes["use"]["outputs"]["parameters"] == [
        {"name": "got", "value": '{"sum": 3, "who": "argoplug"}'}
    ]


def test_without_a_stand_in_a_workflow_with_script_steps_is_refused_before_any_sidecar_starts(tmp_path):
    refused = argoplug("run", write(tmp_path, MIXED), "--plugin", PLUGINS)
    assert refused.returncode == 2
    assert (
        "templates.compute: a script template, and argoplug run has no pods: give --local-containers "
        "(run its command here) or --container-outputs FILE (its canned results)"
    ) in refused.stderr
    assert "Plugin server" not in refused.stdout + refused.stderr  # nothing was started


CONTAINER = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: boxes}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: write
            template: write
        - - name: fails
            template: fails
            continueOn: {failed: true}
    - name: write
      container:
        image: alpine:3
        command: [PYTHON, -c]
        args: ["open('out.txt', 'w').write('written'); print('done')"]
      outputs:
        parameters:
          - {name: text, valueFrom: {path: out.txt}}
          - {name: other, valueFrom: {path: missing.txt, default: fallback}}
    - name: fails
      container:
        image: alpine:3
        command: [PYTHON, -c, "import sys; sys.exit(3)"]
"""


def test_a_container_step_gives_its_files_as_outputs_and_a_non_zero_exit_fails_it(tmp_path) -> None:
    done = argoplug("run", write(tmp_path, CONTAINER), "--local-containers", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr  # the failure is continued on
    nodes = nodes_by_display_name(done.stdout)
    assert nodes["write"]["phase"] == "Succeeded"
    assert nodes["write"]["outputs"]["parameters"] == [
        {"name": "text", "value": "written"},
        {"name": "other", "value": "fallback"},
    ]
    assert nodes["write"]["outputs"]["result"] == "done"
    assert (nodes["fails"]["phase"], nodes["fails"]["message"]) == ("Failed", "Error (exit code 3)")
    assert nodes["fails"]["outputs"]["exitCode"] == "3"


def test_canned_results_stand_in_for_containers_by_template_name(tmp_path) -> None:
    canned = tmp_path / "canned.yaml"
    canned.write_text(
        "templates:\n"
        "  write: {outputs: {parameters: {text: canned, other: 7}, result: hi}}\n"
        "  fails: {phase: Failed, message: out of memory}\n"
    )
    done = argoplug("run", write(tmp_path, CONTAINER), "--container-outputs", canned, "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    nodes = nodes_by_display_name(done.stdout)
    assert nodes["write"]["outputs"]["parameters"] == [
        {"name": "text", "value": "canned"},
        {"name": "other", "value": "7"},
    ]
    assert (nodes["fails"]["phase"], nodes["fails"]["message"]) == ("Failed", "out of memory")
    # A template the file does not list, without --local-containers, is refused before the run.
    canned.write_text("templates:\n  write: {}\n")
    refused = argoplug("run", write(tmp_path, CONTAINER), "--container-outputs", canned)
    assert refused.returncode == 2
    assert f"templates.fails: a container template, and it is not in {canned}" in refused.stderr


def test_a_bad_container_outputs_file_or_a_missing_executable_is_refused_naming_it(tmp_path) -> None:
    canned = tmp_path / "canned.yaml"
    canned.write_text("templates:\n  write: {phase: Done}\n")
    bad = argoplug("run", write(tmp_path, CONTAINER), "--container-outputs", canned)
    assert bad.returncode == 2
    assert (
        f"{canned}: templates.write.phase: expected one of Succeeded, Failed, Error, got 'Done'" in bad.stderr
    )
    missing = argoplug(
        "run", write(tmp_path, CONTAINER.replace("[PYTHON, -c]", "[no-such-tool]")), "--local-containers"
    )
    assert missing.returncode == 2
    assert (
        "templates.write: a container template, and `no-such-tool` (for the image alpine:3) is not on PATH"
        in (missing.stderr)
    )
