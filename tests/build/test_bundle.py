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
    bundle_warnings,
    default_security_context,
    load_bundle,
    parse_bundle,
)
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
    assert (bundle.security_context["runAsUser"], bundle.security_context["runAsGroup"]) == (8737, 8737)
    assert bundle.service_account.automount_token is None
    assert bundle.sidecar_name == "demo-executor-plugin"
    assert bundle.agent_service_account == "default"
    assert (bundle.settings, bundle.env, bundle.log_level, bundle.handler_deadline) == ({}, [], None, None)


def test_with_irsa_workflows_run_as_the_plugins_account() -> None:
    bundle = parse_bundle({**GOOD, "serviceAccount": {"iamRoleArn": ROLE}})
    assert bundle.agent_service_account == "demo-executor-plugin"
    assert parse_bundle({**GOOD, "workflowServiceAccount": "runner"}).agent_service_account == "runner"


def test_the_example_bundle_is_a_drop_in_for_the_published_awf_aws_plugin() -> None:
    bundle = load_bundle(EXAMPLE)
    assert (bundle.name, bundle.plugins, bundle.namespaces) == ("awf-aws", ["sagemaker-pipelines"], ["argo"])
    # What the published workflows (workflow-template.yaml, unchanged) run as, and its plugin's port.
    template = yaml.safe_load((EXAMPLE.parent / "workflow-template.yaml").read_text())
    assert bundle.agent_service_account == bundle.sidecar_name == template["spec"]["serviceAccountName"]
    assert bundle.port == 7492


def test_a_bundle_named_like_a_published_plugin_may_take_its_port_and_only_its() -> None:
    assert parse_bundle({**GOOD, "name": "awf-aws", "port": 7492}).port == 7492
    with pytest.raises(BundleError, match="4355 is the port of the published executor plugin 'hello'"):
        parse_bundle({**GOOD, "name": "awf-aws", "port": 4355})
    with pytest.raises(BundleError, match="or name the bundle 'awf-aws' to replace that plugin"):
        parse_bundle({**GOOD, "port": 7492})


def test_quantities_are_written_as_go_writes_them() -> None:
    bundle = parse_bundle({**GOOD, "resources": {"requests": {"memory": "0.125Gi", "cpu": 0.5}}})
    assert bundle.resources.requests == {"memory": "128Mi", "cpu": "500m"}
    assert bundle.resources.limits == DEFAULT_LIMITS  # limits keep their default when left out
    cases: dict[str | int | float, str] = {
        "1024Mi": "1Gi",
        "1.5Gi": "1536Mi",
        "2000m": "2",
        "1000": "1k",
        "100M": "100M",
        "0": "0",
        "512Ki": "512Ki",
        2: "2",
        0.25: "250m",
        # Valid Kubernetes quantities, kept or rewritten as Go's ParseQuantity does.
        "1e3": "1e3",
        "+1": "+1",
        "1n": "1n",
        "1u": "1u",
        "0.0001": "100u",
        "1e-12": "1e-9",
    }
    for value, written in cases.items():
        bundle = parse_bundle(
            {**GOOD, "resources": {"requests": {"memory": value}, "limits": {"memory": "2Gi"}}}
        )
        assert bundle.resources.requests == {"memory": written}, value
        # The ConfigMap Argo's Go CLI builds from plugin.yaml holds the same text.
        assert argo.canonical_quantity(written) == written


@pytest.mark.parametrize(
    ("requests", "limits", "fits"),
    [
        ("1e3", "999", False),
        ("1e3", "1k", True),
        ("+1", "1000m", True),
        ("1n", "1u", True),
        ("1u", "1n", False),
        ("0.0001", "100u", True),
        ("0.0001", "99u", False),
        ("1Gi", "1e9", False),
        ("1e9", "1Gi", True),
    ],
)
def test_requests_are_compared_with_limits_by_the_amounts_kubernetes_reads(
    requests: str, limits: str, fits: bool
) -> None:
    raw = {**GOOD, "resources": {"requests": {"cpu": requests}, "limits": {"cpu": limits}}}
    if fits:
        parse_bundle(raw)
    else:
        with pytest.raises(
            BundleError, match=f"resources.requests.cpu: expected at most the limit '{limits}'"
        ):
            parse_bundle(raw)


@pytest.mark.parametrize("value", ["-1", "-50m", "1.2.3", "1Mb", "", "ten"])
def test_a_quantity_kubernetes_would_refuse_is_named(value: str) -> None:
    raw = {**GOOD, "resources": {"limits": {"memory": value}}}
    with pytest.raises(BundleError, match=r"resources\.limits\.memory: expected a"):
        parse_bundle(raw)


def test_workflows_running_as_default_are_warned_about() -> None:
    [warning] = bundle_warnings(parse_bundle({**GOOD, "namespaces": ["argo", "team-a"]}))
    assert "service account 'default' in argo, team-a" in warning
    assert "forge plugin results" in warning
    assert bundle_warnings(parse_bundle({**GOOD, "workflowServiceAccount": "default"})) == [
        warning.replace(", team-a", "")
    ]
    assert bundle_warnings(parse_bundle({**GOOD, "workflowServiceAccount": "runner"})) == []
    assert bundle_warnings(parse_bundle({**GOOD, "serviceAccount": {"iamRoleArn": ROLE}})) == []


def test_build_bundle_hands_over_the_warnings_and_the_readme_says_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warned: list[str] = []
    written = build_bundle(bundle_file(tmp_path, {}), tmp_path / "out", warn=warned.append)
    assert warned == bundle_warnings(parse_bundle(GOOD)) != []
    assert tmp_path / "out" / "README.md" in written
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "**Warning:** the agent Role is bound to service account `default`" in readme
    # Without `warn`, they are logged.
    build_bundle(bundle_file(tmp_path, {}), tmp_path / "logged")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("argoplug.build", "WARNING", warned[0])
    ]
    irsa: list[str] = []
    build_bundle(
        bundle_file(tmp_path, {"serviceAccount": {"iamRoleArn": ROLE}}), tmp_path / "irsa", warn=irsa.append
    )
    assert irsa == []
    assert "**Warning:**" not in (tmp_path / "irsa" / "README.md").read_text()


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
        (
            {"name": "awf-aws", "port": 7984},
            "port",
            "7984 is the port of the published executor plugin 'python'",
        ),
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
            {"resources": {"requests": {"cpu": "-1"}}},
            "resources.requests.cpu",
            "expected a quantity of at least 0",
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
