"""The bundle file: defaults, and every bad field refused with its path, its value and what is expected,
with nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from argoplug.build import argo
from argoplug.build.bundle import (
    DEFAULT_LIMITS,
    DEFAULT_REQUESTS,
    BundleError,
    default_security_context,
    load_bundle,
    parse_bundle,
)
from argoplug.build.quantity import canonical_quantity
from argoplug.build.writer import build_bundle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sagemaker" / "argoplug.yaml"
GOOD: dict[str, Any] = {
    "name": "demo",
    "image": "ghcr.io/example/demo:1.0",
    "plugins": ["sagemaker-pipelines"],
}
ROLE = "arn:aws:iam::123456789012:role/demo"
DROP = object()


def bundle_file(tmp_path: Path, changes: dict[str, Any]) -> Path:
    raw = {**GOOD, **changes}
    path = tmp_path / "argoplug.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in raw.items() if v is not DROP}))
    return path


def test_a_minimal_bundle_gets_the_documented_defaults() -> None:
    bundle = parse_bundle(GOOD)
    assert bundle.port == 7733
    assert bundle.namespaces == ["argo"]
    assert bundle.argo_version == ">= v3.3"
    assert bundle.resources.requests == DEFAULT_REQUESTS == {"cpu": "50m", "memory": "80Mi"}
    assert bundle.resources.limits == DEFAULT_LIMITS == {"cpu": "500m", "memory": "256Mi"}
    assert bundle.security_context == default_security_context()
    assert bundle.security_context["runAsUser"] == 1000
    assert bundle.service_account.automount_token is None
    assert bundle.sidecar_name == "demo-executor-plugin"
    assert bundle.agent_service_account == "default"
    assert (bundle.settings, bundle.env, bundle.log_level, bundle.handler_deadline) == ({}, [], None, None)


def test_with_irsa_workflows_run_as_the_plugins_account() -> None:
    bundle = parse_bundle({**GOOD, "serviceAccount": {"iamRoleArn": ROLE}})
    assert bundle.agent_service_account == "demo-executor-plugin"
    assert parse_bundle({**GOOD, "workflowServiceAccount": "runner"}).agent_service_account == "runner"


def test_the_example_bundle_loads() -> None:
    bundle = load_bundle(EXAMPLE)
    assert (bundle.name, bundle.plugins, bundle.namespaces) == (
        "sagemaker",
        ["sagemaker-pipelines"],
        ["argo"],
    )
    assert bundle.port not in (7492, 80, 443, 8080, 8081, 8443)


def test_quantities_are_written_as_go_writes_them() -> None:
    bundle = parse_bundle({**GOOD, "resources": {"requests": {"memory": "0.125Gi", "cpu": 0.5}}})
    assert bundle.resources.requests == {"memory": "128Mi", "cpu": "500m"}
    assert bundle.resources.limits == DEFAULT_LIMITS  # limits keep their default when left out
    cases: dict[str | int, str] = {
        "1024Mi": "1Gi",
        "1.5Gi": "1536Mi",
        "2000m": "2",
        "1000": "1k",
        "100M": "100M",
        "0": "0",
        "512Ki": "512Ki",
        2: "2",
    }
    assert {value: canonical_quantity(value) for value in cases} == cases
    # As the Go-faithful parser of argoplug.build.argo (which builds the ConfigMap) writes them too.
    assert {value: argo.canonical_quantity(str(value)) for value in cases} == cases


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"plugins": ["no-such-plugin"]}, "plugins[0]", "no plugin named 'no-such-plugin' is installed"),
        ({"plugins": []}, "plugins", "expected at least one plugin"),
        ({"plugins": ["sagemaker-pipelines", "sagemaker-pipelines"]}, "plugins[1]", "listed twice"),
        ({"port": 0}, "port", "expected an integer from 1024 to 65535, got 0"),
        ({"port": 70000}, "port", "expected an integer from 1024 to 65535, got 70000"),
        ({"port": "7733"}, "port", "expected an integer from 1024 to 65535, got '7733'"),
        ({"port": 8080}, "port", "8080 is one Argo tells executor plugins to avoid"),
        ({"port": 443}, "port", "443 is one Argo tells executor plugins to avoid"),
        ({"port": 7492}, "port", "7492 is the port of the published executor plugin 'awf-aws'"),
        ({"port": 999}, "port", "below 1024, which needs root or CAP_NET_BIND_SERVICE"),
        ({"image": DROP}, "image", "required (the container image"),
        ({"name": DROP}, "name", "required"),
        ({"name": "Demo"}, "name", "expected a DNS-1123 label of at most 47 characters"),
        ({"name": "d" * 48}, "name", "`<name>-executor-plugin` must fit in 63"),
        ({"namespaces": ["argo", "Bad_NS"]}, "namespaces[1]", "expected a namespace name, a DNS-1123 label"),
        ({"namespaces": ["argo", 7]}, "namespaces[1]", "expected a string, got 7"),
        ({"namespaces": []}, "namespaces", "expected at least one namespace"),
        ({"replicas": 2}, "replicas", "not a field of the bundle (expected one of: name, image, plugins"),
        ({"serviceAccount": {"role": ROLE}}, "serviceAccount.role", "not a field of serviceAccount"),
        (
            {"serviceAccount": {"iamRoleArn": "demo-role"}},
            "serviceAccount.iamRoleArn",
            "expected an IAM role ARN",
        ),
        (
            {"serviceAccount": {"iamRoleArn": ROLE}, "workflowServiceAccount": "default"},
            "workflowServiceAccount",
            "EKS gives a pod the IAM role of the service account the pod runs as",
        ),
        ({"settings": {"other": {}}}, "settings.other", "not a plugin of this bundle"),
        ({"settings": {"sagemaker-pipelines": [1]}}, "settings.sagemaker-pipelines", "expected a mapping"),
        (
            {"resources": {"limits": {"memory": "lots"}}},
            "resources.limits.memory",
            "expected a Kubernetes quantity",
        ),
        (
            {"resources": {"requests": {"memory": "1Gi"}}},
            "resources.requests.memory",
            "at most the limit '256Mi'",
        ),
        ({"resources": {"limits": {}}}, "resources.limits", "expected at least one quantity"),
        ({"env": [{"name": "DEBUG", "value": 1}]}, "env[0].value", "expected a string"),
        ({"env": [{"value": "x"}]}, "env[0].name", "expected an environment variable name"),
        ({"logLevel": "loud"}, "logLevel", "expected one of debug, info, warning, error, got 'loud'"),
        ({"handlerDeadline": 30}, "handlerDeadline", "the agent gives up on a call after 30 s"),
        ({"securityContext": {}}, "securityContext", "Argo requires one"),
    ],
)
@pytest.mark.parametrize("out_exists", [False, True], ids=["new-dir", "empty-dir"])
def test_a_bad_field_is_named_and_nothing_is_written(
    tmp_path: Path, changes: dict[str, Any], field: str, words: str, out_exists: bool
) -> None:
    out = tmp_path / "out"
    if out_exists:
        out.mkdir()
    with pytest.raises(BundleError) as raised:
        build_bundle(bundle_file(tmp_path, changes), out)
    message = str(raised.value)
    assert f"{field}: " in message
    assert words in message
    assert (sorted(out.iterdir()) == []) if out_exists else not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["argoplug.yaml", *(["out"] if out_exists else [])]


def test_an_unknown_plugin_lists_the_installed_ones(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"plugins\[1\]: .*'nope'.*installed: .*sagemaker-pipelines"):
        build_bundle(bundle_file(tmp_path, {"plugins": ["sagemaker-pipelines", "nope"]}), tmp_path / "out")


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(BundleError) as raised:
        parse_bundle({**GOOD, "port": 8080, "namespaces": ["Bad_NS"], "name": "Demo"}, source="argoplug.yaml")
    assert [problem.split(":", 2)[1].strip() for problem in raised.value.problems] == [
        "name",
        "port",
        "namespaces[0]",
    ]
    assert str(raised.value).startswith("invalid bundle argoplug.yaml:\n  - name: ")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- just\n- a list\n", "expected a mapping of bundle fields"),
        ("name: [unclosed\n", "is not valid YAML"),
    ],
)
def test_a_file_that_is_no_bundle_is_refused(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "argoplug.yaml"
    path.write_text(text)
    with pytest.raises(BundleError, match=words):
        load_bundle(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"cannot read bundle .*missing\.yaml"):
        build_bundle(tmp_path / "missing.yaml", tmp_path / "out")
    assert not (tmp_path / "out").exists()
