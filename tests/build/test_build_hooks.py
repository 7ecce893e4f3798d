"""What plugin packages contribute through the build hooks lands where Argo and Kubernetes need it; a hook
that raises or gives something malformed fails the build, naming the package, with nothing written.

The package under test is tests/build_hook_plugins.py, selected as `tests.build_hook_plugins:plugins`; its
hooks return what the bundle's settings for it say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from argoplug.build import argo
from argoplug.build.bundle import BundleError
from argoplug.build.manifests import checked_rules
from argoplug.build.writer import build_bundle

ROOT = Path(__file__).resolve().parents[2]
SPEC = "tests.build_hook_plugins:plugins"
KUBERNETES = "1.35.0"
HOOKS = [
    "argoplug_container_env",
    "argoplug_container_volumes",
    "argoplug_container_volume_mounts",
    "argoplug_kubernetes_rules",
    "argoplug_iam_statements",
    "argoplug_dockerfile_lines",
]
VOLUME = {"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}}
MOUNT = {"name": "scratch", "mountPath": "/tmp"}
RULE = {
    "apiGroups": [""],
    "resources": ["configmaps"],
    "resourceNames": ["plugin-state"],
    "verbs": ["get", "patch"],
}
STATEMENT = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::bucket/*"]}


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def build(
    tmp_path: Path,
    settings: dict[str, Any],
    *,
    plugins: list[str] | None = None,
    others: dict[str, Any] | None = None,
    **bundle: Any,
) -> dict[str, str]:
    """Build a bundle of `plugins` (default: this package) whose settings are `settings` for this package
    and `others` for the others; return relative path → text."""
    source = tmp_path / "argoplug.yaml"
    raw = {
        "name": "hooked",
        "image": "registry.example/hooked:1",
        "plugins": plugins or [SPEC],
        "settings": {SPEC: settings, **(others or {})},
        **bundle,
    }
    source.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    return {str(p.relative_to(out)): p.read_text() for p in build_bundle(source, out)}


def sidecar(files: dict[str, str]) -> dict[str, Any]:
    return yaml.safe_load(files["plugin.yaml"])["spec"]["sidecar"]


def refused(tmp_path: Path, settings: dict[str, Any], **bundle: Any) -> str:
    with pytest.raises(BundleError) as raised:
        build(tmp_path, settings, **bundle)
    assert not (tmp_path / "out").exists()
    return str(raised.value)


def test_hooks_get_the_bundles_build_context_with_their_own_settings(tmp_path: Path) -> None:
    role = "arn:aws:iam::123456789012:role/hooked"
    theirs = {"sagemaker-pipelines": {"pipelines": ["MyPipeline"]}}
    files = build(
        tmp_path,
        {"echo": True},
        plugins=[SPEC, "sagemaker-pipelines"],
        others=theirs,
        namespaces=["team-a"],
        serviceAccount={"iamRoleArn": role},
    )
    [var] = sidecar(files)["container"]["env"]
    assert json.loads(var["value"]) == {
        "name": "hooked",
        "namespaces": ["team-a"],
        "plugin_keys": ["build-hooks-sample", "sagemaker-pipelines", "awf-aws-plugin"],
        "settings": {"echo": True},  # under the name in `plugins`, here a module:attr path
        "iam_role_arn": role,
        "package": SPEC,
        "all_settings": {SPEC: {"echo": True}, **theirs},
    }


def test_no_hook_can_change_the_settings_another_hook_sees(tmp_path: Path) -> None:
    # This package's hooks, run first, empty every list of the settings their contexts hold, its own and
    # sagemaker-pipelines'; each later call still gets the bundle's settings.
    settings = {"vandal": True, "volumes": [VOLUME], "volumeMounts": [MOUNT], "statements": [STATEMENT]}
    scoped = {"pipelines": ["MyPipeline"], "regions": ["us-west-2"], "accounts": ["100000000002"]}
    files = build(
        tmp_path, settings, plugins=[SPEC, "sagemaker-pipelines"], others={"sagemaker-pipelines": scoped}
    )
    assert sidecar(files)["container"]["volumeMounts"] == [MOUNT]
    assert yaml.safe_load(files["agent-pod-spec-patch.yaml"]) == {"volumes": [VOLUME]}
    resources = [r for s in json.loads(files["iam-policy.json"])["Statement"] for r in s["Resource"]]
    assert resources == [
        "arn:aws:s3:::bucket/*",
        "arn:aws:sagemaker:us-west-2:100000000002:pipeline/mypipeline",
        "arn:aws:sagemaker:us-west-2:100000000002:pipeline/mypipeline/execution/*",
    ]


def test_settings_under_a_module_attr_path_reach_that_packages_hooks(tmp_path: Path) -> None:
    # The SageMaker package selected by its module:attr path rather than its entry point's name: its IAM
    # hook gets the settings under that path, and the policy is scoped by them.
    spec = "argoplug.plugins.sagemaker:plugins"
    scoped = {"pipelines": ["MyPipeline"], "regions": ["us-west-2"], "accounts": ["100000000002"]}
    files = build(tmp_path, {}, plugins=[SPEC, spec], others={spec: scoped})
    resources = [r for s in json.loads(files["iam-policy.json"])["Statement"] for r in s["Resource"]]
    assert resources == [
        "arn:aws:sagemaker:us-west-2:100000000002:pipeline/mypipeline",
        "arn:aws:sagemaker:us-west-2:100000000002:pipeline/mypipeline/execution/*",
    ]


def test_bad_settings_under_a_module_attr_path_are_named_by_it(tmp_path: Path) -> None:
    spec = "argoplug.plugins.sagemaker:plugins"
    with pytest.raises(BundleError) as raised:
        build(tmp_path, {}, plugins=[SPEC, spec], others={spec: {"accounts": ["12345"]}})
    assert f"plugin {spec!r}: hook argoplug_iam_statements failed" in str(raised.value)
    assert f"settings.{spec}.accounts: expected 12 digits, got '12345'" in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_settings_of_a_module_selected_twice_must_go_to_its_first_name(tmp_path: Path) -> None:
    # Its hooks run once, under the first name: settings under the second would reach no hook.
    second = "tests.build_hook_plugins:again"
    with pytest.raises(BundleError, match=rf"settings\.{second}: .* as {SPEC!r}"):
        build(tmp_path, {}, plugins=[SPEC, second], others={second: {"env": []}})


def test_env_lands_in_the_container_and_the_bundle_has_the_last_word(tmp_path: Path) -> None:
    env = [
        {"name": "MODE", "value": "hook"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    files = build(tmp_path, {"env": env}, env=[{"name": "MODE", "value": "bundle"}])
    container = sidecar(files)["container"]
    assert container["env"] == [{"name": "MODE", "value": "bundle"}, env[1]]
    assert files["hooked-executor-plugin-configmap.yaml"] == argo.configmap_text(
        yaml.safe_load(files["plugin.yaml"])
    )


def test_volumes_go_to_the_pod_spec_patch_and_mounts_to_the_container(tmp_path: Path) -> None:
    files = build(tmp_path, {"volumes": [VOLUME], "volumeMounts": [MOUNT]})
    container = sidecar(files)["container"]
    assert container["volumeMounts"] == [MOUNT]
    patch = yaml.safe_load(files["agent-pod-spec-patch.yaml"])
    assert patch == {"volumes": [VOLUME]}
    assert "agent-pod-spec-patch.yaml" not in yaml.safe_load(files["kustomization.yaml"])["resources"]
    assert "podSpecPatch" in files["README.md"] and "emptyDir" in files["README.md"]
    # The agent pod as Argo makes it, patched: the sidecar and the volume its mount names.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "agent"},
        "spec": {"containers": [container], **patch},
    }
    kubernetes_validate.validate(pod, KUBERNETES, strict=True)


def test_kubernetes_rules_make_a_role_with_exactly_them_and_mount_the_token(tmp_path: Path) -> None:
    files = build(tmp_path, {"rules": [RULE, RULE]})
    assert sidecar(files)["automountServiceAccountToken"] is True
    configmap = yaml.safe_load(files["hooked-executor-plugin-configmap.yaml"])
    assert configmap["data"]["sidecar.automountServiceAccountToken"] == "true"
    role, binding = yaml.safe_load_all(files["plugin-role.yaml"])
    assert (role["kind"], role["metadata"]["name"], role["rules"]) == (
        "Role",
        "hooked-executor-plugin",
        [RULE],
    )
    assert binding["roleRef"]["name"] == "hooked-executor-plugin"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hooked-executor-plugin", "namespace": "argo"}
    ]
    assert "plugin-role.yaml" in yaml.safe_load(files["kustomization.yaml"])["resources"]
    for doc in (role, binding):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_no_rules_no_role_and_no_token(tmp_path: Path) -> None:
    files = build(tmp_path, {})
    assert "plugin-role.yaml" not in files
    assert sidecar(files)["automountServiceAccountToken"] is False
    assert "iam-policy.json" not in files and "agent-pod-spec-patch.yaml" not in files


def test_iam_statements_are_merged_deduplicated_and_named(tmp_path: Path) -> None:
    statements = [
        STATEMENT,
        {**STATEMENT, "Action": "s3:GetObject"},
        {**STATEMENT, "Action": ["s3:PutObject"], "Sid": "Writes"},
        {**STATEMENT, "Resource": "arn:aws:s3:::other/*"},
    ]
    files = build(tmp_path, {"statements": statements}, plugins=[SPEC, "sagemaker-pipelines"])
    policy = json.loads(files["iam-policy.json"])
    mine = [s for s in policy["Statement"] if s["Action"][0].startswith("s3:")]
    assert mine == [
        {
            "Sid": "Writes",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": ["arn:aws:s3:::bucket/*"],
        },
        {
            "Sid": "TestsBuildHookPluginsPlugins",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::other/*"],
        },
    ]
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)) == 4


def test_dockerfile_lines_run_as_root_before_the_install_and_the_user(tmp_path: Path) -> None:
    lines = [
        "RUN apt-get update && apt-get install -y --no-install-recommends \\\n    libxml2",
        "ENV EXTRA=1",
    ]
    dockerfile = build(tmp_path, {"dockerfile": lines})["Dockerfile"]
    assert f"# from plugin {SPEC}\n{lines[0]}\n{lines[1]}\n" in dockerfile
    assert dockerfile.index(lines[1]) < dockerfile.index("pip install") < dockerfile.index("USER 8737:8737")
    assert f"# {SPEC}: no installed distribution holds it" in dockerfile


@pytest.mark.parametrize("hook", HOOKS)
def test_a_raising_hook_fails_the_build_naming_the_package(tmp_path: Path, hook: str) -> None:
    message = refused(tmp_path, {"fail": hook})
    assert f"plugin {SPEC!r}: hook {hook} failed: RuntimeError" in message


@pytest.mark.parametrize(
    ("settings", "bundle", "words"),
    [
        ({"env": [{"value": "x"}]}, {}, "hook argoplug_container_env: EnvVar without a name"),
        ({"env": [{"name": "N", "value": 1}]}, {}, "EnvVar 'N': value must be a string"),
        ({"volumes": [{"name": "v"}]}, {}, "Volume 'v' has no source"),
        ({"volumeMounts": [MOUNT]}, {}, "VolumeMount 'scratch' names no Volume of a build hook"),
        (
            {"volumes": [VOLUME], "volumeMounts": [{"name": "scratch", "mountPath": "tmp"}]},
            {},
            "absolute mountPath",
        ),
        ({"rules": [{**RULE, "verbs": ["*"]}]}, {}, "name the verbs the plugin needs instead of '*'"),
        ({"rules": [{**RULE, "apiGroups": ["*"]}]}, {}, "apiGroups '*': name the apiGroups the plugin needs"),
        ({"rules": [{**RULE, "resources": ["*/status"]}]}, {}, "resources '*/status': name the resources"),
        ({"rules": [{**RULE, "resourceNames": ["*"]}]}, {}, "resourceNames '*': '*' is no wildcard there"),
        (
            {"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]},
            {},
            "unknown key(s) nonResourceURLs",
        ),
        (
            {"rules": [RULE]},
            {"serviceAccount": {"automountToken": False}},
            "serviceAccount.automountToken: false",
        ),
        ({"statements": [{**STATEMENT, "Action": "s3:*"}]}, {}, "action 's3:*': expected 'service:Action'"),
        ({"statements": [{**STATEMENT, "Action": "*"}]}, {}, "without wildcards"),
        ({"statements": [{**STATEMENT, "Effect": "Maybe"}]}, {}, "Effect must be 'Allow' or 'Deny'"),
        ({"statements": [{**STATEMENT, "Principal": "*"}]}, {}, "unsupported key(s) Principal"),
        ({"dockerfile": ["USER root"]}, {}, "'USER root': USER is the build's own"),
        ({"dockerfile": ["FROM alpine"]}, {}, "FROM is the build's own"),
        ({"dockerfile": [["RUN", "true"]]}, {}, "expected Dockerfile lines as strings"),
    ],
)
def test_a_malformed_contribution_fails_the_build_naming_the_package(
    tmp_path: Path, settings: dict[str, Any], bundle: dict[str, Any], words: str
) -> None:
    message = refused(tmp_path, settings, **bundle)
    assert words in message
    if "serviceAccount" not in bundle:
        assert f"plugin {SPEC!r}" in message
    else:
        assert SPEC in message


@pytest.mark.parametrize(
    ("key", "value"),
    [("apiGroups", ["*"]), ("resources", ["*"]), ("resources", ["*/status"]), ("verbs", ["get", "*"])],
)
def test_no_wildcard_in_any_list_of_a_rule(key: str, value: list[str]) -> None:
    with pytest.raises(BundleError) as raised:
        checked_rules([("some-package", {**RULE, key: value})])
    assert str(raised.value).startswith("plugin 'some-package': hook argoplug_kubernetes_rules: rule ")
    assert f"{key} {value[-1]!r}: name the {key} the plugin needs instead of '*'" in str(raised.value)


def test_a_star_in_resource_names_is_refused_as_no_wildcard() -> None:
    words = r"plugin 'some-package': .*resourceNames '\*': '\*' is no wildcard"
    with pytest.raises(BundleError, match=words):
        checked_rules([("some-package", {**RULE, "resourceNames": ["*"]})])
    assert checked_rules([("some-package", RULE)]) == [RULE]
