"""examples/understack/obm-credentials.yaml through `argoplug run --kube-sandbox`: Understack's published
templates get a device's OBM IP from Nautobot (recorded answers of a real Nautobot, replayed:
tests/vectors/nautobot/README.md), the kubernetes-secret plugin hands the BMC's credentials to the next step
in a Secret owned by the run's Workflow object, the HTTP step reads them with `secretKeyRef`, and deleting
the Workflow at the end garbage-collects the Secret.

The sandbox FILE is the example's kube-sandbox.yaml with the Nautobot URL pointed at the replay; the sidecar
runs as the plugin's ServiceAccount with exactly the RBAC of that file.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest

from .helpers import ROOT, PlainHttpServer
from .nautobot_replay import NautobotReplay
from .test_command import argoplug

pytest.importorskip("lightkube")

UNDERSTACK = ROOT / "examples" / "understack"
RECORDINGS = ROOT / "tests" / "vectors" / "nautobot"
# The example's token (kube-sandbox.yaml): the replay expects it, as a Nautobot expects its API token.
TOKEN = "Token 0123456789abcdef0123456789abcdef01234567"
SERVER_1 = "bcd3f285-9d30-45d0-9fe0-eb6650a47606"  # device-server-1.json
SERVER_1_OBM_IP = "10.46.96.157"  # ip-addresses-server-1.json
EXAMPLE = [UNDERSTACK / name for name in ("obm-credentials.yaml", "get-obm-ip.yaml", "nautobot-api.yaml")]
PARAMETERS = ["-p", f"device_id={SERVER_1}", "-p", "obm_password=pw"]
SYSTEMS = {"@odata.id": "/redfish/v1/Systems", "Members": [{"@odata.id": "/redfish/v1/Systems/1"}]}


def sandbox_file(tmp_path: Path, nautobot_url: str, verbs: str = "[create, get, update, delete]") -> Path:
    text = (UNDERSTACK / "kube-sandbox.yaml").read_text()
    assert "http://127.0.0.1:8080" in text and "verbs: [create, get, update, delete]" in text
    text = text.replace("http://127.0.0.1:8080", nautobot_url).replace("[create, get, update, delete]", verbs)
    path = tmp_path / "kube-sandbox.yaml"
    path.write_text(text)
    return path


def run_example(tmp_path: Path, nautobot: NautobotReplay, bmc: PlainHttpServer, password: str, **kw: str):
    return argoplug(
        "run",
        *EXAMPLE,
        "--plugin",
        "kubernetes-secret",
        "--kube-sandbox",
        sandbox_file(tmp_path, nautobot.url, **kw),
        "--kube-service-account",
        "kubernetes-secret-executor-plugin",
        "-p",
        f"device_id={SERVER_1}",
        "-p",
        f"obm_password={password}",
        "-p",
        f"bmc_url={bmc.url}",
    )


@pytest.fixture
def servers():
    with (
        NautobotReplay(RECORDINGS, token=TOKEN) as nautobot,
        PlainHttpServer({"/redfish/v1/Systems": (200, json.dumps(SYSTEMS))}) as bmc,
    ):
        yield nautobot, bmc


@pytest.mark.slow
def test_the_bmc_step_reads_the_credentials_the_plugin_put_in_a_workflow_owned_secret(tmp_path, servers):
    nautobot, bmc = servers
    password = "pw-" + uuid.uuid4().hex
    done = run_example(tmp_path, nautobot, bmc, password)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "obm-credentials-" in out and "Succeeded" in out
    # Nautobot was asked for server-1's OBM interface address, with the token from the sandbox's Secret.
    [(method, path, headers)] = nautobot.requests
    assert (method, headers["Authorization"]) == ("GET", TOKEN)
    assert path.startswith("/api/ipam/ip-addresses/?") and f"device_id={SERVER_1}" in path
    # The BMC got the Basic credentials the Secret held, read by secretKeyRef.
    [(_, bmc_path, bmc_headers, _)] = bmc.requests
    basic = "Basic " + base64.b64encode(f"root:{password}".encode()).decode()
    assert (bmc_path, bmc_headers["Authorization"]) == ("/redfish/v1/Systems", basic)
    # The Secret was named from the Workflow's uid in the cluster and went with the Workflow.
    uid = out.split("(uid ", 1)[1].split(",", 1)[0]
    assert f"name:            obm-{uuid.UUID(uid)}" in out
    assert f"Garbage-collected with it: secret/obm-{uid}" in out
    assert SERVER_1_OBM_IP in out
    # The credentials the Secret held appear nowhere in what the run printed.
    assert basic.split()[1] not in out


@pytest.mark.slow
def test_without_the_rbac_to_create_secrets_the_step_fails_naming_the_rule(tmp_path, servers):
    nautobot, bmc = servers
    done = run_example(tmp_path, nautobot, bmc, "pw", verbs="[get, update, delete]")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert (
        'cannot create secrets in namespace "argo-events" as '
        "system:serviceaccount:argo-events:kubernetes-secret-executor-plugin"
    ) in out
    assert 'with the rule {apiGroups: [""], resources: ["secrets"], verbs: ["create"]}' in out
    assert bmc.requests == []


def test_secrets_files_are_refused_with_a_cluster(tmp_path):
    (tmp_path / "secrets.yaml").write_text("nautobot-token:\n  bearer_token: Token x\n")
    done = argoplug("run", *EXAMPLE, "--kube-sandbox", "--secrets", tmp_path / "secrets.yaml", *PARAMETERS)
    assert done.returncode == 2
    assert "--secrets/--configmaps are for runs without a cluster" in done.stderr


def test_a_sandbox_file_the_api_refuses_is_reported_with_the_api_message(tmp_path):
    bad = tmp_path / "objects.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\n  namespace: default\n")
    done = argoplug("run", *EXAMPLE, "--plugin", "kubernetes-secret", "--kube-sandbox", bad, *PARAMETERS)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot create ConfigMap 'Not_A_Name'" in done.stderr
    assert "a lowercase RFC 1123 subdomain" in done.stderr


@pytest.mark.slow
def test_the_same_run_against_a_cluster_reached_through_a_kubeconfig(tmp_path, servers):
    """--kubeconfig as against a real cluster: here a sandbox started by the test plays the cluster, with
    the example's objects applied beforehand, as an administrator would have applied them."""
    from argoplug.kube.sandbox import KubeSandbox

    nautobot, bmc = servers
    with KubeSandbox.from_file(sandbox_file(tmp_path, nautobot.url)) as cluster:
        kubeconfig = cluster.kubeconfig(tmp_path / "kubeconfig")
        done = argoplug(
            "run",
            *EXAMPLE,
            "--plugin",
            "kubernetes-secret",
            "--kubeconfig",
            kubeconfig,
            "--kube-service-account",
            "kubernetes-secret-executor-plugin",
            *PARAMETERS,
            "-p",
            f"bmc_url={bmc.url}",
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        assert f"Kubernetes cluster {cluster.url}" in out
        uid = out.split("(uid ", 1)[1].split(",", 1)[0]
        assert f"Garbage-collected with it: secret/obm-{uid}" in out
        # Nothing of the run is left in the cluster: the Workflow deleted, its Secret collected.
        assert list(cluster.objects("argoproj.io/v1alpha1", "Workflow", "argo-events")) == []
        secrets = [s["metadata"]["name"] for s in cluster.objects("v1", "Secret", "argo-events")]
        assert secrets == ["nautobot-token"]
    assert bmc.requests[0][2]["Authorization"] == "Basic " + base64.b64encode(b"root:pw").decode()


@pytest.mark.slow
def test_a_nautobot_without_an_ilo_interface_fails_the_step_with_nautobots_400(tmp_path):
    """The published get-obm-ip filters on `interfaces=iLO`; a Nautobot that has no interface of that name
    refuses the filter (recorded: tests/vectors/nautobot/without-ilo/). The run fails there, saying why."""
    with (
        NautobotReplay(RECORDINGS / "without-ilo", token=TOKEN) as nautobot,
        PlainHttpServer({"/redfish/v1/Systems": (200, json.dumps(SYSTEMS))}) as bmc,
    ):
        done = run_example(tmp_path, nautobot, bmc, "pw")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "received non-2xx response code: 400" in out
    assert "Select a valid choice. iLO is not one of the available choices." in out
    assert bmc.requests == []  # no later step ran


@pytest.mark.slow
def test_a_token_nautobot_does_not_know_fails_the_step_with_its_403(tmp_path):
    with (
        NautobotReplay(RECORDINGS, token="Token 0000") as nautobot,
        PlainHttpServer({"/redfish/v1/Systems": (200, json.dumps(SYSTEMS))}) as bmc,
    ):
        done = run_example(tmp_path, nautobot, bmc, "pw")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "received non-2xx response code: 403" in out
    assert '{"detail":"Invalid token"}' in out
    assert TOKEN not in out  # the token the run sent is not printed
    assert bmc.requests == []
