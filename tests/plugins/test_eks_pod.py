"""The `eks-pod` plugin over real sockets: the sidecar (LiveServer) assumes a role in moto's STS, describes
the cluster in moto's EKS, signs the EKS token, and runs its pod on the Kubernetes sandbox that plays the
remote cluster (argoplug.kube.sandbox.remote_eks), which verifies the token against moto as EKS's
authenticator does, maps the role through its access entry and authorizes it through its RBAC. The
sandbox runs the pod's command as a local process (argoplug.kube.sandbox's kubelet).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Pod
from sagemaker_support import ACCOUNT, REGION

from argoplug import aws
from argoplug.aws import eks
from argoplug.aws.sandbox import AwsSandbox, SandboxAccessEntry, SandboxEksCluster
from argoplug.jobs import stop_running_jobs
from argoplug.kube.sandbox.remote_eks import RemoteEksClusters
from argoplug.plugins import eks_pod
from argoplug.testing import LiveServer, NodeUpdate

pytestmark = pytest.mark.slow

CLUSTER = "remote-kpo-demo"
NAMESPACE = "astro-remote-kpo"
RUNNER = f"arn:aws:iam::{ACCOUNT}:role/AstroRemoteKPO"  # mapped to user AstroRemoteKPO, bound to its Role
UNBOUND = f"arn:aws:iam::{ACCOUNT}:role/Unbound"  # mapped to a user no RoleBinding names
UNMAPPED = f"arn:aws:iam::{ACCOUNT}:role/Unmapped"  # no access entry

REMOTE_OBJECTS = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-runner, namespace: {NAMESPACE}}}
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [create, get, list, watch, delete]
  - apiGroups: [""]
    resources: [pods/log]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: pod-runner, namespace: {NAMESPACE}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-runner}}
subjects:
  - {{apiGroup: rbac.authorization.k8s.io, kind: User, name: AstroRemoteKPO}}
"""


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AwsSandbox, RemoteEksClusters]]:
    objects = tmp_path_factory.mktemp("remote") / "remote-cluster.yaml"
    objects.write_text(REMOTE_OBJECTS)
    cluster = SandboxEksCluster(
        name=CLUSTER,
        kubernetes=str(objects),
        access_entries=[
            SandboxAccessEntry(principal_arn=RUNNER, username="AstroRemoteKPO"),
            SandboxAccessEntry(principal_arn=UNBOUND, username="nobody-bound"),
        ],
    )
    sandbox = AwsSandbox(account=ACCOUNT, region=REGION, eks_clusters=[cluster])
    with sandbox, RemoteEksClusters(sandbox) as clusters:
        yield sandbox, clusters


@pytest.fixture
def cluster(
    remote: tuple[AwsSandbox, RemoteEksClusters], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Client]:
    """The AWS environment pointed at the sandbox; an admin client of the remote cluster."""
    sandbox, clusters = remote
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    eks_pod.use_tracker()
    eks_pod.reset_clusters()
    aws.clear_cache()
    admin = Client(clusters.clusters[CLUSTER].sandbox.config(), field_manager="test")
    yield admin
    for pod in pods(admin):  # each test starts with no pod (a kept one, one left running)
        admin.delete(Pod, pod.metadata.name, namespace=NAMESPACE, grace_period=0)
    deadline = time.monotonic() + 10
    while pods(admin) and time.monotonic() < deadline:
        time.sleep(0.05)
    admin.close()
    eks_pod.use_tracker()
    eks_pod.reset_clusters()


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with LiveServer([eks_pod.eks_pod_plugin]) as live:
        yield live


def block(**fields: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "cluster_name": CLUSTER,
        "region": REGION,
        "role_arn": RUNNER,
        "namespace": NAMESPACE,
        "pod_name": "hello-world",
        "image": "debian",
        "command": ["bash", "-cx"],
        "args": ["echo hello world!"],
    }
    return {"eks-pod": {**defaults, **fields}}


def run_until_done(server: LiveServer, plugin_block: dict[str, Any], timeout: float = 30.0) -> NodeUpdate:
    """Call as the agent does, waiting a little between requeues (the pod runs in real time)."""
    deadline = time.monotonic() + timeout
    while True:
        update = server.call_as_agent(plugin_block)
        if update.terminal:
            return update
        assert update.requeue is not None, update
        assert time.monotonic() < deadline, f"not done within {timeout} s: {update}"
        time.sleep(0.1)


def outputs(update: NodeUpdate) -> dict[str, str]:
    assert update.outputs is not None
    return {p.name: str(p.value) for p in update.outputs.parameters or []}


def pods(admin: Client) -> list[Any]:
    return list(admin.list(Pod, namespace=NAMESPACE))


def test_the_pod_runs_to_succeeded_with_its_log_in_the_outputs(cluster: Client, server: LiveServer) -> None:
    first = server.call_as_agent(block())
    assert first.phase == "Running" and first.requeue is not None
    done = run_until_done(server, block())
    assert done.phase == "Succeeded", done.message
    out = outputs(done)
    assert set(out) == set(eks_pod.OUTPUT_NAMES)
    assert out["pod_name"].startswith("hello-world-") and out["phase"] == "Succeeded"
    assert out["exit_code"] == "0"
    assert "hello world!" in out["logs"].splitlines()
    assert "+ echo hello 'world!'" in out["logs"]  # bash -x quotes the word with the !
    assert pods(cluster) == []  # on_finish: delete


def test_a_restarted_sidecar_finds_its_pod_instead_of_creating_another(
    cluster: Client, server: LiveServer
) -> None:
    slow = block(args=["sleep 1; echo done"])
    first = outputs(server.call_as_agent(slow))
    # A restart: nothing remembered, a new token and client.
    eks_pod.use_tracker()
    eks_pod.reset_clusters()
    again = outputs(server.call_as_agent(slow))
    assert again["pod_name"] == first["pod_name"]
    assert [p.metadata.name for p in pods(cluster)] == [first["pod_name"]]
    done = run_until_done(server, slow)
    assert done.phase == "Succeeded" and outputs(done)["logs"].strip().endswith("done")


def test_a_failing_command_fails_the_node_with_its_exit_code_and_message(
    cluster: Client, server: LiveServer
) -> None:
    done = run_until_done(server, block(args=["echo something broke >&2; exit 3"], on_finish="keep"))
    assert done.phase == "Failed"
    out = outputs(done)
    assert out["exit_code"] == "3" and out["phase"] == "Failed"
    assert "something broke" in out["termination_message"]  # FallbackToLogsOnError
    assert "exit code 3" in done.message and "something broke" in done.message
    assert [p.metadata.name for p in pods(cluster)] == [out["pod_name"]]  # kept


def test_an_unmapped_role_fails_naming_the_missing_mapping(cluster: Client, server: LiveServer) -> None:
    done = server.call_as_agent(block(role_arn=UNMAPPED))
    assert done.phase == "Failed"
    assert f"EKS cluster {CLUSTER} does not map {UNMAPPED} to a Kubernetes user (401" in done.message
    assert f"aws eks create-access-entry --cluster-name {CLUSTER}" in done.message
    assert "aws-auth" in done.message
    assert pods(cluster) == []


def test_a_mapped_user_without_rbac_fails_naming_the_rule(cluster: Client, server: LiveServer) -> None:
    done = server.call_as_agent(block(role_arn=UNBOUND))
    assert done.phase == "Failed"
    assert 'User "nobody-bound" cannot list resource "pods"' in done.message
    assert 'rule {apiGroups: [""], resources: ["pods"], verbs: ["list"]}' in done.message


def test_a_cluster_that_does_not_exist_fails_naming_it(cluster: Client, server: LiveServer) -> None:
    done = server.call_as_agent(block(cluster_name="no-such-cluster"))
    assert done.phase == "Failed"
    assert f"EKS cluster 'no-such-cluster' does not exist in region {REGION}" in done.message


def test_stopping_the_sidecar_deletes_the_running_pod(cluster: Client, server: LiveServer) -> None:
    first = outputs(server.call_as_agent(block(args=["sleep 60"])))
    assert [p.metadata.name for p in pods(cluster)] == [first["pod_name"]]
    [stopped] = stop_running_jobs()
    assert stopped.stopped and stopped.ref == first["pod_name"]
    assert pods(cluster) == []


def test_a_token_that_expired_mid_run_is_renewed_after_the_401(
    cluster: Client, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed: list[float | None] = []
    real = eks.eks_token

    def first_one_old(*args: Any, **kwargs: Any) -> eks.EksToken:
        # The first token is signed 16 minutes ago: the cluster (15 minutes) refuses it, while the
        # sidecar's token source (its clock: 14 minutes from when it made it) still holds it fresh.
        kwargs["now"] = time.time() - 16 * 60 if not signed else None
        signed.append(kwargs["now"])
        return real(*args, **kwargs)

    monkeypatch.setattr(eks, "eks_token", first_one_old)
    done = run_until_done(server, block())
    assert done.phase == "Succeeded", done.message
    assert len(signed) == 2 and signed[0] is not None and signed[1] is None


def test_a_pod_that_cannot_start_fails_after_the_startup_timeout(cluster: Client, server: LiveServer) -> None:
    stuck = block(command=["argoplug-no-such-program"], args=[], startup_timeout=1)
    first = server.call_as_agent(stuck)
    assert first.phase == "Running"
    done = run_until_done(server, stuck)
    assert done.phase == "Failed"
    assert "did not start within 1s" in done.message and "ErrImagePull" in done.message
    assert pods(cluster) == []


def test_bad_arguments_fail_naming_each_field(cluster: Client, server: LiveServer) -> None:
    done = server.call_as_agent({"eks-pod": {"namespace": "Not_A_Namespace", "startup_timeout": "soon"}})
    assert done.phase == "Failed"
    assert "`cluster_name`: required" in done.message
    assert "`image`: required" in done.message
    assert "`namespace`: 'Not_A_Namespace' is not a namespace name" in done.message
    assert "`startup_timeout`" in done.message
    assert set(outputs(done)) == set(eks_pod.OUTPUT_NAMES)


def test_the_plugin_imports_no_heavy_client_until_called() -> None:
    code = "import sys, argoplug.plugins.eks_pod; print('boto3' in sys.modules, 'lightkube' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def eks_check(*options: str) -> subprocess.CompletedProcess[str]:
    """`argoplug eks check` as a user runs it, in the environment the `cluster` fixture set."""
    return subprocess.run(
        [sys.executable, "-m", "argoplug", "eks", "check", *options],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_eks_check_passes_every_link_of_a_mapped_and_bound_role(cluster: Client) -> None:
    done = eks_check("--cluster", CLUSTER, "--namespace", NAMESPACE, "--role-arn", RUNNER)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("PASS AWS credentials: the sidecar is arn:aws:")
    assert lines[1].startswith(f"PASS assume role {RUNNER}: as arn:aws:sts::{ACCOUNT}:assumed-role/")
    assert lines[2].startswith(f"PASS DescribeCluster {CLUSTER}: endpoint https://127.0.0.1:")
    assert lines[3].startswith("PASS EKS token")
    assert lines[4] == "PASS the cluster maps the token: its requests are authenticated"
    for verb in ("create", "get", "list", "watch", "delete"):
        assert any(
            line.startswith(f"PASS may {verb} pods in {NAMESPACE}: RBAC: allowed by") for line in lines
        )
    assert any(line.startswith(f"PASS may get pods/log in {NAMESPACE}") for line in lines)
    assert "k8s-aws-v1." not in done.stdout  # no token printed


def test_eks_check_fails_the_mapping_of_an_unmapped_role(cluster: Client) -> None:
    done = eks_check("--cluster", CLUSTER, "--namespace", NAMESPACE, "--role-arn", UNMAPPED)
    assert done.returncode == 1
    assert f"FAIL the cluster maps the token: EKS cluster {CLUSTER} answered 401: {UNMAPPED}" in done.stdout
    assert "SKIP may create pods" in done.stdout
    assert "PASS EKS token" in done.stdout


def test_eks_check_fails_each_rbac_link_the_role_lacks(cluster: Client) -> None:
    done = eks_check("--cluster", CLUSTER, "--namespace", NAMESPACE, "--role-arn", UNBOUND)
    assert done.returncode == 1
    assert "PASS the cluster maps the token" in done.stdout
    assert f"FAIL may create pods in {NAMESPACE}:" in done.stdout
    assert 'verbs: ["create"]' in done.stdout
    assert f"FAIL may get pods/log in {NAMESPACE}:" in done.stdout


def test_eks_check_fails_describe_cluster_of_a_missing_cluster(cluster: Client) -> None:
    done = eks_check("--cluster", "no-such-cluster", "--namespace", NAMESPACE)
    assert done.returncode == 1
    assert "FAIL DescribeCluster no-such-cluster: EKS cluster 'no-such-cluster' does not exist" in done.stdout
    assert "SKIP EKS token" in done.stdout
