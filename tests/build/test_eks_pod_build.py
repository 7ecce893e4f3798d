"""`argoplug build` of a bundle using the `eks-pod` plugin: the IAM policy holds exactly DescribeCluster on
the clusters of its settings and AssumeRole on their roles, and `remote/eks-<cluster>/` the Role, RoleBinding
and access entry (or aws-auth mapping) an administrator applies on each remote cluster, never listed in
`kustomization.yaml`. The last test applies them to the Kubernetes sandbox that plays the remote cluster and
runs a pod through them.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from argoplug import Plugin, hookimpl
from argoplug.build.bundle import BundleError
from argoplug.build.remote import checked_remote_files
from argoplug.build.writer import build_bundle
from argoplug.hookspecs import BuildContext
from argoplug.plugins.eks_pod import build as eks_build

KUBERNETES = "1.35.0"
CLUSTER = "remote-kpo-demo"
REGION = "us-east-1"
ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AstroRemoteKPO"
NAMESPACE = "astro-remote-kpo"
CLUSTER_ARN = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
IRSA_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ArgoSidecar"
FOLDER = f"remote/eks-{CLUSTER}"
DEMO = {"name": CLUSTER, "region": REGION, "account": ACCOUNT, "role_arn": ROLE, "namespaces": [NAMESPACE]}
POD_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]
TWIN = "eks_pod_build_twin"


def build(
    tmp_path: Path,
    settings: dict[str, Any] | None = None,
    *,
    plugins: list[str] | None = None,
    others: dict[str, Any] | None = None,
    out: Path | None = None,
    **bundle: Any,
) -> dict[str, str]:
    """Build a bundle of `plugins` (default: eks-pod) named `astro`, `settings` for eks-pod (default: the
    demo cluster); return relative path → text of what was written."""
    source = tmp_path / "argoplug.yaml"
    raw = {
        "name": "astro",
        "image": "registry.example/astro:1",
        "plugins": plugins or ["eks-pod"],
        "settings": {"eks-pod": {"clusters": [DEMO]} if settings is None else settings, **(others or {})},
        **bundle,
    }
    source.write_text(yaml.safe_dump(raw))
    out = out or tmp_path / "out"
    return {p.relative_to(out).as_posix(): p.read_text() for p in build_bundle(source, out)}


def refused(tmp_path: Path, settings: dict[str, Any], **bundle: Any) -> str:
    with pytest.raises(BundleError) as raised:
        build(tmp_path, settings, **bundle)
    assert not (tmp_path / "out").exists()
    return str(raised.value)


def remote_paths(files: dict[str, str]) -> list[str]:
    return [path for path in files if path.startswith("remote/")]


# --- IAM ---------------------------------------------------------------------------------------------


def test_the_policy_allows_exactly_describe_cluster_on_the_cluster_and_assume_role_on_the_role(
    tmp_path: Path,
) -> None:
    policy = json.loads(build(tmp_path)["iam-policy.json"])
    assert policy["Statement"] == [
        {
            "Sid": "EksDescribeCluster",
            "Effect": "Allow",
            "Action": ["eks:DescribeCluster"],
            "Resource": [CLUSTER_ARN],
        },
        {"Sid": "EksAssumeRole", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": [ROLE]},
    ]


def test_each_cluster_is_described_and_each_distinct_role_assumed_once(tmp_path: Path) -> None:
    other = {"name": "batch", "region": "eu-west-1", "role_arn": ROLE, "namespaces": ["jobs"]}
    found = eks_build.argoplug_iam_statements(
        BuildContext("astro", settings={"clusters": [DEMO, other], "partition": "aws-cn"})
    )
    assert found == [
        {
            "Sid": "EksDescribeCluster",
            "Effect": "Allow",
            "Action": ["eks:DescribeCluster"],
            "Resource": [
                f"arn:aws-cn:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
                "arn:aws-cn:eks:eu-west-1:*:cluster/batch",  # account: default `*`
            ],
        },
        {"Sid": "EksAssumeRole", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": [ROLE]},
    ]


def test_without_clusters_every_cluster_may_be_described_and_no_role_assumed(tmp_path: Path) -> None:
    files = build(tmp_path, {})
    policy = json.loads(files["iam-policy.json"])
    assert policy["Statement"] == [
        {
            "Sid": "EksDescribeCluster",
            "Effect": "Allow",
            "Action": ["eks:DescribeCluster"],
            "Resource": ["arn:aws:eks:*:*:cluster/*"],
        }
    ]
    assert remote_paths(files) == []
    assert "remote/" not in files["README.md"]


# --- the remote cluster's files ----------------------------------------------------------------------


def test_rbac_yaml_grants_exactly_the_plugins_calls_to_the_mapped_user(tmp_path: Path) -> None:
    files = build(tmp_path)
    role, binding = yaml.safe_load_all(files[f"{FOLDER}/rbac.yaml"])
    assert (role["apiVersion"], role["kind"]) == ("rbac.authorization.k8s.io/v1", "Role")
    assert role["metadata"]["name"] == binding["metadata"]["name"] == "astro-eks-pod"
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == POD_RULES
    assert not [word for rule in role["rules"] for words in rule.values() for word in words if "*" in word]
    assert binding["kind"] == "RoleBinding"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "astro-eks-pod",
    }
    assert binding["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "AstroRemoteKPO"}
    ]
    for document in (role, binding):
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_role_grants_what_eks_check_checks() -> None:
    from argoplug.plugins.eks_pod.check import CHECKED_ACCESS

    granted = {
        (verb, *resource.partition("/")[::2])
        for rule in eks_build.POD_RULES
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == set(CHECKED_ACCESS)


def test_a_role_and_binding_in_each_namespace(tmp_path: Path) -> None:
    files = build(tmp_path, {"clusters": [{**DEMO, "namespaces": ["a", "b", "a"]}]})
    documents = list(yaml.safe_load_all(files[f"{FOLDER}/rbac.yaml"]))
    assert [(d["kind"], d["metadata"]["namespace"]) for d in documents] == [
        ("Role", "a"),
        ("RoleBinding", "a"),
        ("Role", "b"),
        ("RoleBinding", "b"),
    ]


def test_access_entry_json_is_the_cli_input_of_create_access_entry(tmp_path: Path) -> None:
    files = build(tmp_path)
    entry = json.loads(files[f"{FOLDER}/access-entry.json"])
    assert entry == {
        "clusterName": CLUSTER,
        "principalArn": ROLE,
        "username": "AstroRemoteKPO",
        "type": "STANDARD",
    }
    assert f"{FOLDER}/aws-auth-mapRoles.yaml" not in files
    # Every key is a parameter of CreateAccessEntry, as the AWS CLI reads --cli-input-json.
    botocore_session = pytest.importorskip("botocore.session")
    model = botocore_session.get_session().get_service_model("eks").operation_model("CreateAccessEntry")
    assert set(entry) <= set(model.input_shape.members)
    assert set(model.input_shape.required_members) <= set(entry)


def test_the_aws_auth_variant_gives_the_map_roles_entry_instead(tmp_path: Path) -> None:
    pathed = f"arn:aws:iam::{ACCOUNT}:role/teams/ml/AstroRemoteKPO"
    settings = {"clusters": [{**DEMO, "role_arn": pathed, "mapping": "aws-auth"}]}
    files = build(tmp_path, settings)
    assert f"{FOLDER}/access-entry.json" not in files
    text = files[f"{FOLDER}/aws-auth-mapRoles.yaml"]
    assert "kube-system/aws-auth" in text and "data.mapRoles" in text
    # aws-iam-authenticator matches a rolearn without the role's path only.
    assert yaml.safe_load(text) == [{"rolearn": ROLE, "username": "AstroRemoteKPO", "groups": []}]
    assert text.endswith(f"- rolearn: {ROLE}\n  username: AstroRemoteKPO\n  groups: []\n")
    # The policy's AssumeRole is on the role as the blocks name it, with its path.
    policy = json.loads(files["iam-policy.json"])
    assert policy["Statement"][1]["Resource"] == [pathed]


def test_without_role_arn_the_bundles_irsa_role_is_the_principal(tmp_path: Path) -> None:
    cluster = {"name": CLUSTER, "region": REGION}
    files = build(tmp_path, {"clusters": [cluster]}, serviceAccount={"iamRoleArn": IRSA_ROLE})
    assert json.loads(files[f"{FOLDER}/access-entry.json"]) == {
        "clusterName": CLUSTER,
        "principalArn": IRSA_ROLE,
        "username": "ArgoSidecar",
        "type": "STANDARD",
    }
    role, binding = yaml.safe_load_all(files[f"{FOLDER}/rbac.yaml"])
    assert role["metadata"]["namespace"] == "default"
    assert binding["subjects"][0]["name"] == "ArgoSidecar"
    statements = json.loads(files["iam-policy.json"])["Statement"]
    assert [s["Sid"] for s in statements] == ["EksDescribeCluster"]
    assert statements[0]["Resource"] == [f"arn:aws:eks:{REGION}:*:cluster/{CLUSTER}"]


def test_a_username_given_is_the_one_mapped_and_bound(tmp_path: Path) -> None:
    files = build(tmp_path, {"clusters": [{**DEMO, "username": "kpo-runner"}]})
    assert json.loads(files[f"{FOLDER}/access-entry.json"])["username"] == "kpo-runner"
    _, binding = yaml.safe_load_all(files[f"{FOLDER}/rbac.yaml"])
    assert binding["subjects"][0]["name"] == "kpo-runner"


def test_the_kustomization_leaves_the_remote_files_out_and_the_readme_lists_them(tmp_path: Path) -> None:
    files = build(tmp_path)
    assert remote_paths(files) == [f"{FOLDER}/rbac.yaml", f"{FOLDER}/access-entry.json"]
    resources = yaml.safe_load(files["kustomization.yaml"])["resources"]
    assert not [r for r in resources if "remote" in r]
    readme = files["README.md"]
    assert "## On the remote clusters: `remote/`" in readme
    assert readme.index("## Install") < readme.index("## On the remote clusters") < readme.index("## Use")
    assert f"- `{FOLDER}/rbac.yaml`: Role and RoleBinding `astro-eks-pod`" in readme
    assert f"`kubectl --context <remote> apply -f {FOLDER}/rbac.yaml`" in readme
    assert (
        f"`aws eks create-access-entry --region {REGION} --cli-input-json file://{FOLDER}/access-entry.json`"
        in readme
    )
    assert f"needs `eks:DescribeCluster` on `{CLUSTER_ARN}`" in readme
    assert "| `remote/` |" in readme


def test_a_rebuild_removes_the_remote_files_it_no_longer_writes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(tmp_path, out=out)
    assert (out / FOLDER / "access-entry.json").is_file()
    files = build(tmp_path, {"clusters": [{**DEMO, "name": "batch", "mapping": "aws-auth"}]}, out=out)
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "remote").rglob("*"))
    assert on_disk == [
        "remote/eks-batch",
        "remote/eks-batch/aws-auth-mapRoles.yaml",
        "remote/eks-batch/rbac.yaml",
    ]
    assert remote_paths(files) == ["remote/eks-batch/rbac.yaml", "remote/eks-batch/aws-auth-mapRoles.yaml"]
    build(tmp_path, {}, out=out)
    assert not (out / "remote").exists()
    assert (out / "kustomization.yaml").is_file()


# --- bad settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"cluster": []}, "settings.eks-pod: unknown key(s) cluster (expected some of: clusters, partition)"),
        ({"clusters": "remote-kpo-demo"}, "settings.eks-pod.clusters: expected a list of clusters"),
        ({"clusters": ["remote-kpo-demo"]}, "settings.eks-pod.clusters[0]: expected a mapping"),
        ({"clusters": [{"region": REGION, "role_arn": ROLE}]}, "settings.eks-pod.clusters[0].name: required"),
        (
            {"clusters": [{**DEMO, "name": "-bad"}]},
            "settings.eks-pod.clusters[0].name: got '-bad': expected an EKS",
        ),
        (
            {"clusters": [{**DEMO, "region": None}]},
            "clusters[0].region: got None: expected the cluster's AWS region",
        ),
        (
            {"clusters": [{"name": CLUSTER, "role_arn": ROLE}]},
            "settings.eks-pod.clusters[0].region: required",
        ),
        ({"clusters": [{**DEMO, "account": "1234"}]}, "clusters[0].account: expected 12 digits as a string"),
        ({"clusters": [{**DEMO, "account": 111122223333}]}, "(quote it: YAML reads bare digits as a number)"),
        (
            {"clusters": [{**DEMO, "role_arn": "AstroRemoteKPO"}]},
            "clusters[0].role_arn: expected an IAM role ARN",
        ),
        ({"clusters": [{**DEMO, "namespaces": []}]}, "clusters[0].namespaces: expected a non-empty list"),
        (
            {"clusters": [{**DEMO, "namespaces": ["Astro"]}]},
            "clusters[0].namespaces: expected a non-empty list",
        ),
        ({"clusters": [{**DEMO, "username": "system:kpo"}]}, "clusters[0].username: EKS refuses a username"),
        (
            {"clusters": [{**DEMO, "username": "kpo-{{SessionName}}"}]},
            "clusters[0].username: expected a fixed",
        ),
        ({"clusters": [{**DEMO, "username": ""}]}, "clusters[0].username: expected a Kubernetes user name"),
        (
            {"clusters": [{**DEMO, "mapping": "configmap"}]},
            "clusters[0].mapping: expected one of access-entry",
        ),
        (
            {"clusters": [{**DEMO, "namespace": NAMESPACE}]},
            "settings.eks-pod.clusters[0].namespace: unknown key",
        ),
        ({"clusters": [DEMO, DEMO]}, f"clusters[1].name: '{CLUSTER}' is also clusters[0]'s"),
        ({"clusters": [DEMO], "partition": "azure"}, "settings.eks-pod.partition: expected e.g. 'aws'"),
    ],
)
def test_bad_settings_fail_the_build_naming_the_key(
    tmp_path: Path, settings: dict[str, Any], words: str
) -> None:
    message = refused(tmp_path, settings)
    assert "plugin 'eks-pod': hook argoplug_iam_statements failed: SettingsError: " in message
    assert words in message


def test_a_cluster_without_any_role_says_what_to_set(tmp_path: Path) -> None:
    message = refused(tmp_path, {"clusters": [{"name": CLUSTER, "region": REGION}]})
    assert "settings.eks-pod.clusters[0].role_arn: " in message
    assert (
        "set `role_arn` (the role the blocks assume) or the bundle's `serviceAccount.iamRoleArn`" in message
    )


# --- what any package gives `remote/`, checked ------------------------------------------------------


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A plugin package `eks_pod_build_twin` (selected as `eks_pod_build_twin:plugins`) whose
    `argoplug_remote_cluster_files` returns its settings' `files`."""

    @hookimpl
    def argoplug_remote_cluster_files(context: BuildContext) -> list[dict[str, Any]]:
        return list(context.settings.get("files", []))

    module = types.ModuleType(TWIN)
    module.__dict__.update(
        plugins=[Plugin("eks-pod-twin", description="Does nothing: its remote files are under test")],
        argoplug_remote_cluster_files=argoplug_remote_cluster_files,
    )
    monkeypatch.setitem(sys.modules, TWIN, module)
    yield f"{TWIN}:plugins"


def test_two_packages_writing_the_same_remote_path_fail_naming_both(tmp_path: Path, twin: str) -> None:
    clash = {"path": f"{FOLDER}/rbac.yaml", "text": "kind: Role\n", "about": "another Role"}
    with pytest.raises(BundleError) as raised:
        build(tmp_path, plugins=["eks-pod", twin], others={twin: {"files": [clash]}})
    message = str(raised.value)
    assert (
        f"plugin {twin!r}: hook argoplug_remote_cluster_files: path '{FOLDER}/rbac.yaml' is also given by"
        in message
    )
    assert "of plugin 'eks-pod'" in message
    assert not (tmp_path / "out").exists()


def test_another_packages_remote_file_is_written_and_listed(tmp_path: Path, twin: str) -> None:
    mine = {"path": "remote/gke-etl/rbac.yaml", "text": "kind: Role\n", "about": "a Role for GKE cluster etl"}
    files = build(tmp_path, plugins=["eks-pod", twin], others={twin: {"files": [mine]}})
    assert files["remote/gke-etl/rbac.yaml"] == "kind: Role\n"
    assert "- `remote/gke-etl/rbac.yaml`: a Role for GKE cluster etl" in files["README.md"]


GOOD = {"path": "remote/eks-x/rbac.yaml", "text": "", "about": "a Role"}


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("remote/eks-x/rbac.yaml", "expected a mapping (path, text, about)"),
        ({"path": "remote/eks-x/rbac.yaml", "text": ""}, "file 'remote/eks-x/rbac.yaml': missing about"),
        ({**GOOD, "mode": 0o644}, "unknown key(s) mode"),
        ({**GOOD, "path": "/remote/eks-x/rbac.yaml"}, "expected a relative POSIX path under remote/"),
        ({**GOOD, "path": "remote\\eks-x\\rbac.yaml"}, "expected a relative POSIX path under remote/"),
        ({**GOOD, "path": "rbac.yaml"}, "expected a path under remote/"),
        ({**GOOD, "path": "remote"}, "expected a path under remote/"),
        ({**GOOD, "path": "remote/../plugin.yaml"}, "segment '..': expected a name"),
        ({**GOOD, "path": "remote/./x.yaml"}, "segment '.': expected a name"),
        ({**GOOD, "path": "remote//x.yaml"}, "segment '': expected a name"),
        ({**GOOD, "path": "remote/eks-x/"}, "segment '': expected a name"),
        ({**GOOD, "path": "remote/eks x/rbac.yaml"}, "segment 'eks x': expected letters, digits"),
        ({**GOOD, "path": 3}, "path 3: expected a string"),
        ({**GOOD, "text": b"kind: Role"}, "text must be a string, got bytes"),
        ({**GOOD, "about": "two\nlines"}, "about must be one non-empty line"),
        ({**GOOD, "about": " "}, "about must be one non-empty line"),
    ],
)
def test_a_malformed_remote_file_is_refused_naming_the_package(item: Any, words: str) -> None:
    with pytest.raises(BundleError) as raised:
        checked_remote_files([("some-package", item)])
    assert str(raised.value).startswith("plugin 'some-package': hook argoplug_remote_cluster_files: ")
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("first", "second", "words"),
    [
        ("remote/eks-x/rbac.yaml", "remote/EKS-X/rbac.yaml", "is also given by"),
        ("remote/eks-x", "remote/eks-x/rbac.yaml", "lies under the file 'remote/eks-x' of plugin 'one'"),
        ("remote/eks-x/rbac.yaml", "remote/eks-x", "is a folder of 'remote/eks-x/rbac.yaml' of plugin 'one'"),
    ],
)
def test_paths_that_cannot_both_be_written_are_refused_naming_both(
    first: str, second: str, words: str
) -> None:
    with pytest.raises(BundleError) as raised:
        checked_remote_files([("one", {**GOOD, "path": first}), ("two", {**GOOD, "path": second})])
    assert str(raised.value).startswith(f"plugin 'two': hook argoplug_remote_cluster_files: path {second!r} ")
    assert words in str(raised.value) and "plugin 'one'" in str(raised.value)


# --- the files at work: the remote cluster as the sandbox plays it ------------------------------------


@pytest.mark.slow
def test_the_remote_files_let_the_plugin_run_its_pod_on_the_remote_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The remote cluster holds the namespace, and exactly what rbac.yaml and access-entry.json give it:
    # EKS maps the role to its user by the access entry, and RBAC allows that user what the Role grants.
    pytest.importorskip("moto")
    pytest.importorskip("lightkube")
    from argoplug import aws
    from argoplug.aws.sandbox import AwsSandbox, SandboxAccessEntry, SandboxEksCluster
    from argoplug.kube.sandbox.remote_eks import RemoteEksClusters
    from argoplug.plugins import eks_pod
    from argoplug.testing import LiveServer

    files = build(tmp_path)
    entry = json.loads(files[f"{FOLDER}/access-entry.json"])
    objects = tmp_path / "remote-cluster.yaml"
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n---\n"
    objects.write_text(namespace + files[f"{FOLDER}/rbac.yaml"])
    cluster = SandboxEksCluster(
        name=entry["clusterName"],
        kubernetes=str(objects),
        access_entries=[SandboxAccessEntry(principal_arn=entry["principalArn"], username=entry["username"])],
    )
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    block = {
        "eks-pod": {
            "cluster_name": CLUSTER,
            "region": REGION,
            "role_arn": ROLE,
            "namespace": NAMESPACE,
            "image": "debian",
            "command": ["sh", "-c"],
            "args": ["echo hello from the remote cluster"],
        }
    }
    sandbox = AwsSandbox(account=ACCOUNT, region=REGION, eks_clusters=[cluster])
    with sandbox, RemoteEksClusters(sandbox):
        for name, value in sandbox.env.items():
            monkeypatch.setenv(name, value)
        aws.clear_cache()
        eks_pod.use_tracker()
        eks_pod.reset_clusters()
        try:
            with LiveServer([eks_pod.eks_pod_plugin]) as server:
                deadline = time.monotonic() + 30
                update = server.call_as_agent(block)
                while not update.terminal and time.monotonic() < deadline:
                    time.sleep(0.1)
                    update = server.call_as_agent(block)
        finally:
            eks_pod.use_tracker()
            eks_pod.reset_clusters()
            aws.clear_cache()
    assert update.phase == "Succeeded", update.message
    assert update.outputs is not None
    logs = {p.name: str(p.value) for p in update.outputs.parameters or []}["logs"]
    assert "hello from the remote cluster" in logs
