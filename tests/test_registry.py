"""Finding plugins: installed entry points (group `argoplug.plugins`), `module:attr` paths, conflicts."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from argoplug import Plugin, registry
from argoplug.registry import PluginLoadError, describe_installed, load_plugins

TESTS = Path(__file__).parent


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


def test_the_ready_plugin_is_installed_like_any_other() -> None:
    keys = {p.key for p in load_plugins(["sagemaker-pipelines"])}
    assert keys == {"sagemaker-pipelines", "awf-aws-plugin"}
    assert {p.key for p in load_plugins()} >= keys


def test_a_module_attr_path_loads_a_plugin(on_path: None) -> None:
    [greet] = load_plugins(["sample_plugins:greet"])
    assert greet.key == "greet"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "nope",
            "no plugin named 'nope' is installed (installed: "
            + ", ".join(sorted(ep.name for ep in importlib.metadata.entry_points(group="argoplug.plugins")))
            + ")",
        ),
        ("no_such_module:x", "cannot import plugin module 'no_such_module'"),
        ("sample_plugins:missing", "'sample_plugins' has no attribute 'missing'"),
        ("sample_plugins:GreetArgs", "sample_plugins:GreetArgs is not a plugin"),
    ],
)
def test_what_cannot_be_loaded_is_named(on_path: None, name: str, message: str) -> None:
    with pytest.raises(PluginLoadError, match=re.escape(message)):
        load_plugins([name])


def test_two_plugins_claiming_one_key_name_both_owners(on_path: None, tmp_path: Path) -> None:
    (tmp_path / "rival_plugins.py").write_text("from argoplug import Plugin\ngreet = Plugin('greet')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(
            PluginLoadError, match=r"'greet' is claimed by both sample_plugins:greet and rival"
        ):
            load_plugins(["sample_plugins:greet", "rival_plugins:greet"])
    finally:
        sys.path.remove(str(tmp_path))


def test_describe_installed_lists_packages_keys_and_a_broken_one(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.installed()
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_anywhere", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "installed", lambda: {**real, "broken": broken})
    described = {entry.name: entry for entry in describe_installed()}
    sagemaker = described["sagemaker-pipelines"]
    assert (sagemaker.package, sagemaker.error) == ("argoplug", "")
    assert sagemaker.version == importlib.metadata.version("argoplug")
    assert [p.key for p in sagemaker.plugins] == ["sagemaker-pipelines", "awf-aws-plugin"]
    assert described["broken"].plugins == ()
    assert described["broken"].error.startswith(
        "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    )


def test_argoplug_plugins_lists_the_installed_plugins() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "plugins"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("sagemaker-pipelines"))
    assert "sagemaker-pipelines, awf-aws-plugin" in row
    assert f"argoplug {importlib.metadata.version('argoplug')}" in row
    assert "Validates, executes and stops Amazon SageMaker Pipelines" in row


def test_plugins_of_accepts_a_plugin_a_list_or_a_module() -> None:
    one = Plugin("one")
    assert registry.plugins_of(one, "x") == [one]
    assert registry.plugins_of([one], "x") == [one]
    with pytest.raises(PluginLoadError, match="is not a plugin"):
        registry.plugins_of([], "x")


def test_argoplug_plugins_schema_gives_each_plugin_keys_argument_schema() -> None:
    import json

    import jsonschema

    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "plugins", "--schema"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    schemas = json.loads(done.stdout)
    native = schemas["sagemaker-pipelines"]
    jsonschema.Draft202012Validator.check_schema(native)
    definition = native["$defs"]["SageMakerArgs"]
    action = definition["properties"]["action"]
    assert action == {"enum": ["execute", "stop", "validate"], "default": "execute"}
    assert definition["additionalProperties"] is False
    assert definition["description"].startswith("The `sagemaker-pipelines` plugin block.\n\n- `action`:")
    validator = jsonschema.Draft202012Validator(native)
    assert validator.is_valid({"action": "validate", "pipeline": "MyPipeline"})
    assert not validator.is_valid({"action": "run"})
    awf = schemas["awf-aws-plugin"]
    assert awf["$defs"]["AwfAwsArgs"]["required"] == ["action"]


def test_a_plugin_without_an_argument_type_takes_any_object() -> None:
    assert Plugin("free", description="Anything goes").argument_schema() == {
        "type": "object",
        "description": "Anything goes",
    }


def install_fake_package(site: Path, package: str, entry_points: str) -> None:
    """A distribution as pip leaves it: a dist-info folder with METADATA and entry_points.txt."""
    info = site / f"{package.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_a_plugin_name_two_packages_register_is_refused_naming_both(
    on_path: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for package in ("greet-one", "greet-two"):
        install_fake_package(tmp_path, package, "[argoplug.plugins]\ngreet = sample_plugins:greet\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert registry.claimed_twice()["greet"] == ["greet-one", "greet-two"]
    expected = "plugin name 'greet' is registered by two installed packages: greet-one and greet-two"
    with pytest.raises(PluginLoadError, match=expected):
        load_plugins(["greet"])
    with pytest.raises(PluginLoadError, match=expected):
        load_plugins()
    described = {entry.name: entry for entry in describe_installed()}
    assert described["greet"].plugins == ()
    assert expected in described["greet"].error
    assert described["sagemaker-pipelines"].error == ""
