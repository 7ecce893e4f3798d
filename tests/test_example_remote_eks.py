"""examples/remote-eks: Astronomer's remote-KPO `ekspo` pod as an eks-pod step, run with `argoplug run`
against the AWS sandbox (moto's STS and EKS) and the Kubernetes sandbox that plays the remote cluster; and its
bundle, whose remote RBAC is the example cluster's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "remote-eks"
RUN = [
    "run",
    "examples/remote-eks/hello-world.yaml",
    "--plugin",
    "eks-pod",
    "--aws-sandbox",
    "examples/remote-eks/aws-sandbox.yaml",
]

pytestmark = pytest.mark.slow


def argoplug(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_PROFILE": "a-profile-that-does-not-exist", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "argoplug", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_readme_runs_this_example() -> None:
    assert "argoplug " + " ".join(RUN) in (ROOT / "README.md").read_text()


def test_the_hello_world_pod_succeeds_with_its_log_in_the_outputs() -> None:
    done = argoplug(*RUN, "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout)["status"]
    assert status["phase"] == "Succeeded"
    [node] = [n for n in status["nodes"].values() if n["type"] == "Plugin"]
    outputs = {p["name"]: p["value"] for p in node["outputs"]["parameters"]}
    assert outputs["exit_code"] == "0" and outputs["phase"] == "Succeeded"
    assert outputs["logs"].splitlines() == ["+ echo hello 'world!'", "hello world!"]
    assert outputs["pod_name"].startswith("hello-world-")
    assert "Traceback" not in done.stderr


def test_the_run_says_which_cluster_plays_the_remote_one() -> None:
    done = argoplug(*RUN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "EKS clusters: remote-kpo-demo" in done.stdout
    assert "EKS cluster remote-kpo-demo: Kubernetes sandbox at https://127.0.0.1:" in done.stdout
    assert "arn:aws:iam::111122223333:role/AstroRemoteKPO → AstroRemoteKPO" in done.stdout


def rbac_of(text: str) -> list[tuple[str, str, Any]]:
    kinds = ("Role", "RoleBinding")
    found = []
    for doc in yaml.safe_load_all(text):
        if doc and doc["kind"] in kinds:
            body = doc.get("rules") or {"roleRef": doc["roleRef"], "subjects": doc["subjects"]}
            found.append((doc["kind"], doc["metadata"]["name"], body))
    return found


def test_the_bundle_writes_the_rbac_and_access_entry_the_example_cluster_holds(tmp_path: Path) -> None:
    done = argoplug("build", "examples/remote-eks/argoplug.yaml", "-o", str(tmp_path), "--no-wheels")
    assert done.returncode == 0, done.stdout + done.stderr
    remote = tmp_path / "remote" / "eks-remote-kpo-demo"
    assert rbac_of((remote / "rbac.yaml").read_text()) == rbac_of(
        (EXAMPLE / "remote-cluster.yaml").read_text()
    )
    entry = json.loads((remote / "access-entry.json").read_text())
    sandbox = yaml.safe_load((EXAMPLE / "aws-sandbox.yaml").read_text())
    [declared] = sandbox["eks_clusters"][0]["access_entries"]
    assert (entry["principalArn"], entry["username"]) == (declared["principal_arn"], declared["username"])
    policy = json.loads((tmp_path / "iam-policy.json").read_text())
    assert [(s["Action"], s["Resource"]) for s in policy["Statement"]] == [
        (["eks:DescribeCluster"], ["arn:aws:eks:us-east-1:111122223333:cluster/remote-kpo-demo"]),
        (["sts:AssumeRole"], ["arn:aws:iam::111122223333:role/AstroRemoteKPO"]),
    ]
