"""A bundle's `instances` (plugin instances per namespace, AWS Orbit's per-team plugins): their checks, and
`argoplug build` writing one build per instance with its parameters checked against the package's type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from argoplug.build.bundle import BundleError, instance_bundles, parse_bundle
from argoplug.build.writer import build_bundle


def bundle(**fields: Any) -> dict[str, Any]:
    return {"name": "teams", "image": "r.example/p:1", **fields}


def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(BundleError) as raised:
        parse_bundle(raw)
    return str(raised.value)


def test_each_instance_is_a_bundle_of_its_own() -> None:
    parsed = parse_bundle(
        bundle(
            instances=[
                {"namespace": "team-a", "plugin": "kubernetes-secret"},
                {
                    "namespace": "team-b",
                    "name": "kfp",
                    "plugin": "driver-plugin",
                    "parameters": {"timeout": 60},
                },
            ]
        )
    )
    [(a, a_name, a_bundle), (b, b_name, b_bundle)] = instance_bundles(parsed)
    assert (a, a_name, a_bundle.plugins, a_bundle.namespaces) == (
        "team-a",
        "teams",
        ["kubernetes-secret"],
        ["team-a"],
    )
    assert (b, b_name, b_bundle.settings) == ("team-b", "kfp", {"driver-plugin": {"timeout": 60}})
    assert b_bundle.sidecar_name == "kfp-executor-plugin"


@pytest.mark.parametrize(
    ("instances", "extra", "says"),
    [
        (
            [{"namespace": "a", "plugin": "p"}, {"namespace": "a", "plugin": "q"}],
            {},
            "instances[1]: namespace 'a' has instance 'teams' already",
        ),
        (
            [{"namespace": "a", "name": "x", "plugin": "p"}, {"namespace": "a", "name": "y", "plugin": "p"}],
            {},
            "instances[1]: namespace 'a' has 'p' as instance 'x' already",
        ),
        ([{"namespace": "A_B", "plugin": "p"}], {}, "instances[0].namespace: expected a namespace name"),
        (
            [{"namespace": "a", "plugin": "p"}],
            {"plugins": ["p"]},
            "plugins: give either `plugins` or `instances`",
        ),
        (
            [{"namespace": "a", "plugin": "p"}],
            {"namespaces": ["a"]},
            "namespaces: give either `namespaces` or `instances`",
        ),
    ],
)
def test_bad_instances_are_named(instances: list[dict[str, Any]], extra: dict[str, Any], says: str) -> None:
    assert says in refused(bundle(instances=instances, **extra))


def test_build_writes_one_folder_per_instance(tmp_path: Path) -> None:
    source = tmp_path / "argoplug.yaml"
    source.write_text(
        yaml.safe_dump(
            bundle(
                instances=[
                    {"namespace": "team-a", "name": "secrets", "plugin": "kubernetes-secret"},
                    {"namespace": "team-b", "name": "kfp", "plugin": "driver-plugin"},
                ]
            )
        )
    )
    out = tmp_path / "out"
    written = {str(p.relative_to(out)) for p in build_bundle(source, out)}
    assert "team-a/secrets/secrets-executor-plugin-configmap.yaml" in written
    assert "team-b/kfp/kfp-executor-plugin-configmap.yaml" in written
    assert "team-a/secrets/plugin-role.yaml" in written and "team-b/kfp/plugin-role.yaml" not in written
    configmap = yaml.safe_load((out / "team-b/kfp/kfp-executor-plugin-configmap.yaml").read_text())
    assert configmap["metadata"]["namespace"] == "team-b"


def test_a_bad_parameter_names_the_instance_and_field_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "argoplug.yaml"
    source.write_text(
        yaml.safe_dump(
            bundle(
                instances=[
                    {"namespace": "team-a", "plugin": "kubernetes-secret"},
                    {
                        "namespace": "team-b",
                        "name": "kfp",
                        "plugin": "driver-plugin",
                        "parameters": {"timeout": "x"},
                    },
                ]
            )
        )
    )
    with pytest.raises(BundleError) as raised:
        build_bundle(source, tmp_path / "out")
    assert str(raised.value) == (
        "instances[1] (namespace team-b, instance kfp, plugin driver-plugin): parameters.timeout: "
        "Expected `float`, got `str`"
    )
    assert not (tmp_path / "out").exists()


def test_settings_are_checked_against_the_packages_type_in_a_plain_bundle(tmp_path: Path) -> None:
    source = tmp_path / "argoplug.yaml"
    source.write_text(
        yaml.safe_dump(bundle(plugins=["kubernetes-secret"], settings={"kubernetes-secret": {"x": 1}}))
    )
    with pytest.raises(BundleError) as raised:
        build_bundle(source, tmp_path / "out")
    assert "settings.kubernetes-secret: Object contains unknown field `x`" in str(raised.value)


def test_a_namespace_selector_is_for_deploy_alone(tmp_path: Path) -> None:
    assert "give either `namespaceSelector` or `namespaces`" in refused(
        bundle(plugins=["p"], namespaces=["a"], namespaceSelector={"team": "x"})
    )
    assert "namespaceSelector: 'bad key!' is not a label key" in refused(
        bundle(plugins=["p"], namespaceSelector={"bad key!": "x"})
    )
    source = tmp_path / "argoplug.yaml"
    source.write_text(yaml.safe_dump(bundle(plugins=["kubernetes-secret"], namespaceSelector={"team": "x"})))
    with pytest.raises(BundleError) as raised:
        build_bundle(source, tmp_path / "out")
    assert "argoplug build reaches no cluster" in str(raised.value)
