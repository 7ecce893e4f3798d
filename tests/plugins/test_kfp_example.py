"""examples/kfp: KFP's hello-world pipeline compiled for the standalone driver (the proposal's
hello_world_plugin.yaml, unchanged) through `argoplug run` against the central driver's test double; and the
example bundle, which writes one validated ServiceAccount, Role and RoleBinding set per profile namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kfp_driver_double import KfpDriverDouble

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "kfp"
VECTOR = ROOT / "tests" / "vectors" / "kfp" / "hello_world_plugin.yaml"
KUBERNETES = "1.35.0"
PROFILES = ["team-a", "team-b", "team-c"]


def test_the_example_is_the_proposals_compiled_workflow_unchanged() -> None:
    text = (EXAMPLE / "hello-world.yaml").read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    assert body == VECTOR.read_text()
    assert "hello_world_plugin.yaml at commit 1b9be429ea44207600a2c704ae7d0cf95864d809" in text


@pytest.mark.slow
def test_argoplug_run_drives_the_pipeline_through_the_central_driver(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("the-plugins-service-account-token")
    with KfpDriverDouble() as driver:
        # The executor of hello-world is a kfp-launcher containerSet, which needs a cluster: the driver
        # says its result is cached, so the run is the two drivers and the skipped executor.
        driver.cached = True
        env = {
            **os.environ,
            "KFP_DRIVER_URL": driver.template_execute_url,
            "KFP_DRIVER_TOKEN_FILE": str(token),
            "COLUMNS": "200",
        }
        done = subprocess.run(
            [sys.executable, "-m", "argoplug", "run", "examples/kfp/hello-world.yaml", "--plugin",
             "driver-plugin", "-o", "json"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout)["status"]
    assert status["phase"] == "Succeeded"
    nodes = {node["displayName"]: node for node in status["nodes"].values()}
    root = {p["name"]: p["value"] for p in nodes["root-driver"]["outputs"]["parameters"]}
    task = {p["name"]: p["value"] for p in nodes["hello-world-driver"]["outputs"]["parameters"]}
    assert root["execution-id"] == "1" and task["cached-decision"] == "true"
    assert nodes["executor"]["phase"] == "Skipped"
    # The ROOT_DAG driver first, then the CONTAINER driver with the root's execution id as its parent DAG.
    kinds = [body["template"]["plugin"]["driver-plugin"]["args"] for _, _, body in driver.requests]
    assert [args["type"] for args in kinds] == ["ROOT_DAG", "CONTAINER"]
    assert kinds[1]["dag_execution_id"] == "1"
    assert {authorization for _, authorization, _ in driver.requests} == {
        "Bearer the-plugins-service-account-token"
    }


def test_the_bundle_writes_a_validated_set_per_profile_namespace(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "build", "examples/kfp/argoplug.yaml", "-o", str(tmp_path),
         "--no-wheels"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    objects = [
        doc
        for name in ("service-account.yaml", "agent-role.yaml")
        for doc in yaml.safe_load_all((tmp_path / name).read_text())
        if doc
    ]
    for doc in objects:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    by_kind = {
        kind: sorted(d["metadata"]["namespace"] for d in objects if d["kind"] == kind)
        for kind in ("ServiceAccount", "Role", "RoleBinding")
    }
    assert by_kind == {kind: PROFILES for kind in ("ServiceAccount", "Role", "RoleBinding")}
    accounts = {d["metadata"]["name"] for d in objects if d["kind"] == "ServiceAccount"}
    assert accounts == {"driver-plugin-executor-plugin"}
    bindings = [d for d in objects if d["kind"] == "RoleBinding"]
    assert all(b["subjects"][0]["name"] == "pipeline-runner" for b in bindings)
    plugin = yaml.safe_load((tmp_path / "plugin.yaml").read_text())
    sidecar = plugin["spec"]["sidecar"]
    assert sidecar["automountServiceAccountToken"] is True
    env = {e["name"]: e["value"] for e in sidecar["container"]["env"]}
    assert env["KFP_DRIVER_URL"] == "https://ml-pipeline-kfp-driver.kubeflow.svc:2948/api/v1/execute"
    assert env["KFP_DRIVER_CA_FILE"] == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    configmaps = list(
        yaml.safe_load_all((tmp_path / "driver-plugin-executor-plugin-configmap.yaml").read_text())
    )
    assert sorted(c["metadata"]["namespace"] for c in configmaps if c) == PROFILES
