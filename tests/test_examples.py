"""The examples run as the README says: the greet plugin of "Write a plugin", served and run locally."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from argoplug.testing import LiveServer

ROOT = Path(__file__).resolve().parent.parent
GREET = ROOT / "examples" / "greet"


@pytest.fixture
def greet_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(GREET))
    import greet

    return greet


def test_the_readme_plugin_is_the_example() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (GREET / "greet.py").read_text()
    for line in ("class GreetArgs(msgspec.Struct, forbid_unknown_fields=True):", "@greet.handler"):
        assert line in readme and line in example


def test_greet_answers_strings_as_argo_sends_them_and_fails_an_empty_name(greet_module: ModuleType) -> None:
    with LiveServer([greet_module.greet]) as server:
        ok = server.execute({"greet": {"name": "Ada", "times": "2"}})
        assert ok["node"]["outputs"]["parameters"] == [{"name": "greeting", "value": "hello Ada hello Ada"}]
        empty = server.execute({"greet": {"name": " "}})
        assert empty["node"] == {"phase": "Failed", "message": "`name` is empty: give the name to greet"}


def test_argoplug_run_runs_the_greet_workflow() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{GREET}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "run", str(GREET / "workflow.yaml"), "--plugin", "greet:greet",
         "-p", "who=Grace"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Status:\s+Succeeded", done.stdout)
    assert re.search(r"greeting:\s+hello Grace hello Grace", done.stdout)


def example_workflows() -> list[Path]:
    found = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        kinds = {doc.get("kind") for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)}
        if kinds & {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}:
            found.append(path)
    return found


# Published templates copied unchanged, with the schema problems they have upstream (argoplug run warns of
# them, as `argo lint` refuses them): Understack's get-device-nautobot declares an output field `secret`.
UPSTREAM_PROBLEMS = {"examples/understack/get-device-nautobot.yaml": ['json: unknown field "secret"']}


@pytest.mark.parametrize("path", example_workflows(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_workflow_validates_against_argos_schema(path: Path) -> None:
    from argoplug.agent.schema import schema_problems

    problems = [
        p for body in yaml.safe_load_all(path.read_text()) for p in schema_problems(body["kind"], body)
    ]
    expected = UPSTREAM_PROBLEMS.get(str(path.relative_to(ROOT)), [])
    assert len(problems) == len(expected), (path, problems)
    for problem, words in zip(problems, expected, strict=True):
        assert words in problem, (path, problem)


def test_the_examples_hold_workflows() -> None:
    names = {p.name for p in example_workflows()}
    assert {"workflow.yaml", "workflow-template.yaml"} <= names


def test_a_null_field_is_absent_as_go_decodes_it() -> None:
    """KFP's compiler writes `creationTimestamp: null` and `status: {startedAt: null}` (Go's zero values):
    Argo and the API server read them as absent, so argoplug run does too; a real problem still shows."""
    from argoplug.agent.schema import schema_problems

    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "kfp-", "creationTimestamp": None},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "suspend": {}, "timeout": None}]},
        "status": {"startedAt": None, "finishedAt": None},
    }
    assert schema_problems("Workflow", body) == []
    assert "creationTimestamp" not in body["metadata"]
    body["spec"]["templates"][0]["retryStrategy"] = {"limit": [1]}
    assert schema_problems("Workflow", body) != []
