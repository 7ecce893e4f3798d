"""`argoplug build` of examples/sagemaker/argoplug.yaml (a drop-in for the published awf-aws plugin): every
file, valid Kubernetes objects, the ConfigMap as Argo builds it, least-privilege RBAC and IAM, the IRSA trust
policy, the Dockerfile."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from argoplug.build import argo
from argoplug.build.writer import build_bundle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sagemaker" / "argoplug.yaml"
# A recent Kubernetes whose schemas kubernetes-validate ships.
KUBERNETES = "1.35.0"
CONFIGMAP = "awf-aws-executor-plugin-configmap.yaml"
# Every AWS call of the SageMaker Pipelines plugin (plugins/sagemaker: handlers.py, executions.py).
SAGEMAKER_CALLS = {
    "sagemaker:DescribePipeline",
    "sagemaker:StartPipelineExecution",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:DescribePipelineExecution",
    "sagemaker:ListPipelineExecutionSteps",
    "sagemaker:StopPipelineExecution",
}
AGENT_RULES = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtasksets"], "verbs": ["list", "watch"]},
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtasksets/status"], "verbs": ["patch"]},
]


def build(tmp_path: Path, bundle: dict[str, Any] | None = None, name: str = "out") -> dict[str, str]:
    """Build `bundle` (default: the example) into tmp_path/name; return relative path → text."""
    source = EXAMPLE
    if bundle is not None:
        source = tmp_path / f"{name}.yaml"
        source.write_text(yaml.safe_dump(bundle))
    out = tmp_path / name
    written = build_bundle(source, out)
    files = {str(p.relative_to(out)): p.read_text() for p in written}
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(files)
    return files


def example(**changes: Any) -> dict[str, Any]:
    return {**yaml.safe_load(EXAMPLE.read_text()), **changes}


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def objects(files: dict[str, str], kind: str) -> list[dict[str, Any]]:
    return [doc for name in resources(files) for doc in documents(files[name]) if doc["kind"] == kind]


def resources(files: dict[str, str]) -> list[str]:
    return yaml.safe_load(files["kustomization.yaml"])["resources"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build(tmp_path_factory.mktemp("example"))


def test_every_file_is_written(built: dict[str, str]) -> None:
    assert sorted(built) == sorted(
        [
            "plugin.yaml",
            "workflow-executor-plugins.yaml",
            CONFIGMAP,
            "service-account.yaml",
            "agent-role.yaml",
            "kustomization.yaml",
            "iam-policy.json",
            "iam-trust-policy.json",
            "Dockerfile",
            "wheels/README.md",
            "README.md",
        ]
    )


def test_the_workflow_level_snippet_is_the_plugin_and_a_workflow_with_it_validates(
    built: dict[str, str], tmp_path: Path
) -> None:
    from argoplug.agent.checks import check
    from argoplug.agent.workflow import load_documents, resolve_workflow

    snippet = yaml.safe_load(built["workflow-executor-plugins.yaml"])
    plugin = yaml.safe_load(built["plugin.yaml"])
    assert snippet["executorPlugins"] == [{"metadata": {"name": "awf-aws"}, "spec": plugin["spec"]}]
    workflow = tmp_path / "workflow.yaml"
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "own-plugin-"},
        "spec": {
            **snippet,
            "entrypoint": "main",
            "templates": [{"name": "main", "plugin": {"sagemaker-pipelines": {"pipeline": "P"}}}],
        },
    }
    workflow.write_text(yaml.safe_dump(body))
    check(resolve_workflow(load_documents([workflow])))  # the JSON schema and Argo's checks accept it


def test_every_kubernetes_manifest_validates(built: dict[str, str]) -> None:
    kinds = []
    for name in resources(built):
        for doc in documents(built[name]):
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            kinds.append(doc["kind"])
    assert sorted(kinds) == ["ConfigMap", "Role", "RoleBinding", "Secret", "ServiceAccount"]
    sidecar = yaml.safe_load(built["plugin.yaml"])["spec"]["sidecar"]["container"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "agent"},
        "spec": {"containers": [sidecar]},
    }
    kubernetes_validate.validate(pod, KUBERNETES, strict=True)


def test_the_configmap_is_what_argo_builds_from_plugin_yaml(built: dict[str, str], tmp_path: Path) -> None:
    manifest = argo.load_plugin_manifest(built["plugin.yaml"])  # strictly, as Argo's CLI reads it
    assert built[CONFIGMAP] == argo.configmap_text(manifest)
    argo.validate_sidecar(manifest)
    (tmp_path / "plugin.yaml").write_text(built["plugin.yaml"])
    configmap, _ = argo.build_folder(tmp_path)  # `argo executor-plugin build` on plugin.yaml alone
    assert configmap.name == CONFIGMAP
    assert configmap.read_text() == built[CONFIGMAP]
    manifest = yaml.safe_load(built["plugin.yaml"])
    assert (manifest["apiVersion"], manifest["kind"]) == ("argoproj.io/v1alpha1", "ExecutorPlugin")
    assert manifest["metadata"]["name"] == "awf-aws"
    assert manifest["metadata"]["namespace"] == "argo"
    annotations = manifest["metadata"]["annotations"]
    assert annotations["workflows.argoproj.io/version"] == ">= v3.3"
    assert "`sagemaker-pipelines`" in annotations["workflows.argoproj.io/description"]


def test_the_sidecar_serves_the_bundle(built: dict[str, str]) -> None:
    sidecar = yaml.safe_load(built["plugin.yaml"])["spec"]["sidecar"]
    assert sidecar["automountServiceAccountToken"] is False  # no plugin asked for Kubernetes rules
    container = sidecar["container"]
    assert container["name"] == "awf-aws-executor-plugin"
    assert container["image"] == "ghcr.io/argoplug/sagemaker:0.1.0"
    assert container["command"] == ["argoplug", "serve"]
    assert container["args"] == ["--port", "7492", "--plugin", "sagemaker-pipelines", "--log-format", "json"]
    assert container["ports"] == [{"containerPort": 7492}]
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "80Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 8737,
        "runAsGroup": 8737,
    }
    assert "env" not in container and "volumeMounts" not in container


def test_the_kustomization_lists_every_manifest(built: dict[str, str]) -> None:
    kustomization = yaml.safe_load(built["kustomization.yaml"])
    assert (kustomization["apiVersion"], kustomization["kind"]) == (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
    )
    manifests = {name for name, text in built.items() if name.endswith(".yaml") and "kind:" in text}
    assert set(kustomization["resources"]) == manifests - {"plugin.yaml", "kustomization.yaml"}
    assert len(kustomization["resources"]) == len(set(kustomization["resources"]))


def test_the_iam_policy_grants_exactly_what_the_plugin_calls(built: dict[str, str]) -> None:
    policy = json.loads(built["iam-policy.json"])
    assert policy["Version"] == "2012-10-17"
    actions = [action for statement in policy["Statement"] for action in statement["Action"]]
    assert sorted(actions) == sorted(SAGEMAKER_CALLS)
    assert not any("*" in action for action in actions)
    sids = [statement["Sid"] for statement in policy["Statement"]]
    assert len(set(sids)) == len(sids) and all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            assert resource.startswith("arn:aws:sagemaker:us-west-2:100000000002:pipeline/mypipeline")


def test_assumed_roles_add_exactly_sts_assume_role(tmp_path: Path) -> None:
    role = "arn:aws:iam::100000000003:role/pipelines"
    settings = example()["settings"]
    settings["sagemaker-pipelines"]["assume_roles"] = [role]
    policy = json.loads(build(tmp_path, example(settings=settings))["iam-policy.json"])
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert actions == SAGEMAKER_CALLS | {"sts:AssumeRole"}
    [assume] = [s for s in policy["Statement"] if "sts:AssumeRole" in s["Action"]]
    assert (assume["Action"], assume["Resource"]) == (["sts:AssumeRole"], [role])


def test_the_agent_role_has_exactly_the_three_verbs(built: dict[str, str]) -> None:
    [role] = [r for r in objects(built, "Role") if r["metadata"]["name"] == "awf-aws-executor-plugin-agent"]
    assert role["rules"] == AGENT_RULES
    [binding] = objects(built, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "awf-aws-executor-plugin-agent",
    }
    # With IRSA the workflows, and so the agent pod, run as the plugin's service account.
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "awf-aws-executor-plugin", "namespace": "argo"}
    ]
    assert [r["metadata"]["name"] for r in objects(built, "Role")] == ["awf-aws-executor-plugin-agent"]
    assert not objects(built, "ClusterRole") and not objects(built, "ClusterRoleBinding")


def test_the_service_account_carries_irsa_and_has_its_token_secret(built: dict[str, str]) -> None:
    [account] = objects(built, "ServiceAccount")
    assert account["metadata"]["name"] == "awf-aws-executor-plugin"
    assert account["metadata"]["namespace"] == "argo"
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::100000000002:role/awf-aws-executor-plugin"
    }
    [secret] = objects(built, "Secret")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["name"] == "awf-aws-executor-plugin.service-account-token"
    assert secret["metadata"]["annotations"] == {
        "kubernetes.io/service-account.name": "awf-aws-executor-plugin"
    }


def test_the_trust_policy_lets_the_plugins_account_assume_the_role(built: dict[str, str]) -> None:
    [statement] = json.loads(built["iam-trust-policy.json"])["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": "arn:aws:iam::100000000002:oidc-provider/<OIDC_PROVIDER>"}
    assert statement["Condition"] == {
        "StringEquals": {
            "<OIDC_PROVIDER>:sub": "system:serviceaccount:argo:awf-aws-executor-plugin",
            "<OIDC_PROVIDER>:aud": "sts.amazonaws.com",
        }
    }
    assert "<OIDC_PROVIDER>" in built["README.md"]


def test_a_given_oidc_provider_fills_the_trust_policy(tmp_path: Path) -> None:
    provider = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    account = {**example()["serviceAccount"], "oidcProvider": f"https://{provider}"}
    files = build(tmp_path, example(serviceAccount=account))
    [statement] = json.loads(files["iam-trust-policy.json"])["Statement"]
    assert statement["Principal"]["Federated"] == f"arn:aws:iam::100000000002:oidc-provider/{provider}"
    assert set(statement["Condition"]["StringEquals"]) == {f"{provider}:sub", f"{provider}:aud"}
    assert "<OIDC_PROVIDER>" not in files["iam-trust-policy.json"] + files["README.md"]


def test_the_dockerfile_runs_the_containers_command_as_argos_agent_user(built: dict[str, str]) -> None:
    lines = built["Dockerfile"].splitlines()
    container = yaml.safe_load(built["plugin.yaml"])["spec"]["sidecar"]["container"]
    instructions = [line.split(" ", 1) for line in lines if line and not line.startswith((" ", "#"))]
    assert instructions[0] == ["FROM", "python:3.11-slim"]
    by_name = {name: rest for name, rest in instructions}
    assert json.loads(by_name["ENTRYPOINT"]) == container["command"]
    assert json.loads(by_name["CMD"]) == container["args"]
    assert by_name["USER"] == "8737:8737"
    assert by_name["EXPOSE"] == "7492"
    assert "useradd --uid 8737 --gid 8737" in built["Dockerfile"]


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, each with its continuation lines (comments left out)."""
    found: list[str] = []
    continued = False
    for line in dockerfile.splitlines():
        if continued:
            found[-1] += "\n" + line
        elif line and not line.startswith("#"):
            found.append(line)
        continued = line.endswith("\\")
    return found


def test_argoplug_and_the_plugins_come_from_wheels_only_their_dependencies_from_pypi(
    built: dict[str, str], tmp_path: Path
) -> None:
    version = importlib.metadata.version("argoplug")
    own, dependencies = [i for i in instructions(built["Dockerfile"]) if "pip install" in i]
    mount = "RUN --mount=type=bind,source=wheels,target=/tmp/wheels \\\n"
    assert own.startswith(mount) and dependencies.startswith(mount)
    # First argoplug itself (and the plugin packages), from wheels/ alone: nothing else can slip in ...
    assert (
        f"pip install --no-cache-dir --no-index --no-deps --find-links /tmp/wheels 'argoplug=={version}'"
        in own
    )
    # ... then the same pins, extras included, with PyPI: only their dependencies are left to install.
    assert dependencies.endswith(
        f"pip install --no-cache-dir --find-links /tmp/wheels 'argoplug[aws]=={version}'"
    )
    assert f"`argoplug=={version}`" in built["wheels/README.md"]
    # Without the wheel the first step fails, saying what wheels/ lacks (pip only resolving, as if into
    # a fresh image).
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    command = own.removeprefix(mount).replace("/tmp/wheels", str(wheels))
    command = command.replace("pip install", f"{sys.executable} -m pip install --dry-run --ignore-installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert f"No matching distribution found for argoplug=={version}" in done.stderr
    assert f"no wheel in wheels/ for one of: argoplug=={version}; each must be there" in done.stderr


def test_without_irsa_there_is_no_trust_policy_and_workflows_keep_their_account(tmp_path: Path) -> None:
    bundle = example()
    del bundle["serviceAccount"]
    files = build(tmp_path, bundle)
    assert "iam-trust-policy.json" not in files and "iam-policy.json" in files
    [binding] = objects(files, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": "argo"}]
    [account] = objects(files, "ServiceAccount")
    assert "annotations" not in account["metadata"]
    assert "`default.service-account-token`" in files["README.md"]


def test_several_namespaces_get_each_object_and_a_configmap_argo_would_build(tmp_path: Path) -> None:
    files = build(tmp_path, example(namespaces=["team-a", "team-b"]))
    manifest = argo.load_plugin_manifest(files["plugin.yaml"])
    assert "namespace" not in manifest["metadata"]
    configmaps = files[CONFIGMAP].split("---\n")
    assert configmaps == [
        argo.configmap_text({**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}})
        for namespace in ("team-a", "team-b")
    ]
    for kind in ("ConfigMap", "ServiceAccount", "Secret", "Role", "RoleBinding"):
        assert [o["metadata"]["namespace"] for o in objects(files, kind)] == ["team-a", "team-b"], kind
    for name in resources(files):
        for doc in documents(files[name]):
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    [statement] = json.loads(files["iam-trust-policy.json"])["Statement"]
    assert statement["Condition"]["StringEquals"]["<OIDC_PROVIDER>:sub"] == [
        "system:serviceaccount:team-a:awf-aws-executor-plugin",
        "system:serviceaccount:team-b:awf-aws-executor-plugin",
    ]


def test_bundle_env_log_level_and_deadline_reach_the_container(tmp_path: Path) -> None:
    env = [{"name": "AWS_REGION", "value": "us-west-2"}]
    files = build(tmp_path, example(env=env, logLevel="debug", handlerDeadline=12.5))
    container = yaml.safe_load(files["plugin.yaml"])["spec"]["sidecar"]["container"]
    assert container["env"] == env
    assert container["args"][-4:] == ["--log-level", "debug", "--handler-deadline", "12.5"]
    assert json.loads(files["Dockerfile"].split("\nCMD ", 1)[1]) == container["args"]


def test_a_build_is_reproducible_and_a_rebuild_drops_what_no_longer_applies(tmp_path: Path) -> None:
    first = build(tmp_path)
    assert build(tmp_path, name="again") == first
    (tmp_path / "out" / "wheels" / "argoplug-0.1.0-py3-none-any.whl").write_text("not really")
    bundle = example()
    del bundle["serviceAccount"]
    source = tmp_path / "no-irsa.yaml"
    source.write_text(yaml.safe_dump(bundle))
    build_bundle(source, tmp_path / "out")
    out = tmp_path / "out"
    assert not (out / "iam-trust-policy.json").exists()
    assert (out / "iam-policy.json").exists()
    assert (out / "wheels" / "argoplug-0.1.0-py3-none-any.whl").exists()  # the user's wheels stay
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
