"""argoplug.build.wheels: where an installed distribution came from (its direct_url.json), and `build_wheels`
with a tiny package whose in-tree build backend needs nothing from an index: the wheel built, the version
checked, a failure naming the package with pip's last lines; `build_bundle(wheels=True)` leaving the output
folder alone when a wheel fails, and checking that folder before pip runs."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from argoplug.build import wheels, writer
from argoplug.build.bundle import BundleError
from argoplug.build.image import Requirements
from argoplug.build.wheels import Source, WheelBuildError, build_wheels, install_source

# A PEP 517 backend that writes a wheel by hand: no setuptools, so no index is asked for one.
BACKEND = """
import os, zipfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = open(os.path.join(os.path.dirname(__file__), "VERSION")).read().strip()
    info = f"tiny-{version}.dist-info"
    name = f"tiny-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        wheel.writestr("tiny/__init__.py", "")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\\nName: tiny\\nVersion: {version}\\n")
        tags = "Root-Is-Purelib: true\\nTag: py3-none-any\\n"
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\\nGenerator: tiny\\n" + tags)
        wheel.writestr(f"{info}/RECORD", "")
    return name
"""
PYPROJECT = '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'


def tiny_project(folder: Path, version: str = "1.0") -> Path:
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "backend.py").write_text(BACKEND)
    (folder / "VERSION").write_text(version)
    return folder


def from_folder(folder: Path, version: str = "1.0") -> Source:
    return Source("tiny", version, "directory", f"tiny @ {folder.as_uri()}", str(folder), folder)


def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_url: Any) -> None:
    info = tmp_path / "tiny-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Tiny\nVersion: 1.0\n")
    if direct_url is not None:
        text = direct_url if isinstance(direct_url, str) else json.dumps(direct_url)
        (info / "direct_url.json").write_text(text)
    dist = importlib.metadata.PathDistribution(info)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dist)


@pytest.mark.parametrize(
    ("direct_url", "kind", "requirement", "where", "path"),
    [
        (None, "index", "Tiny==1.0", "the package index", None),
        ("not json", "index", "Tiny==1.0", "the package index", None),
        (
            {"url": "file:///src/my%20tiny", "dir_info": {"editable": True}},
            "directory",
            "Tiny @ file:///src/my%20tiny",
            "/src/my tiny, an editable install",
            Path("/src/my tiny"),
        ),
        (
            {"url": "file:///src/mono", "dir_info": {}, "subdirectory": "tiny"},
            "directory",
            "Tiny @ file:///src/mono#subdirectory=tiny",
            "/src/mono",
            Path("/src/mono"),
        ),
        (
            {
                "url": "https://example.com/tiny.git",
                "vcs_info": {"vcs": "git", "commit_id": "abc123", "requested_revision": "main"},
            },
            "vcs",
            "Tiny @ git+https://example.com/tiny.git@abc123",
            "git+https://example.com/tiny.git@abc123",
            None,
        ),
        (
            {"url": "https://example.com/tiny-1.0.tar.gz", "archive_info": {"hashes": {"sha256": "ff"}}},
            "archive",
            "Tiny @ https://example.com/tiny-1.0.tar.gz#sha256=ff",
            "https://example.com/tiny-1.0.tar.gz",
            None,
        ),
        (
            {"url": "file:///w/tiny-1.0-py3-none-any.whl", "archive_info": {}},
            "archive",
            "Tiny @ file:///w/tiny-1.0-py3-none-any.whl",
            "/w/tiny-1.0-py3-none-any.whl",
            Path("/w/tiny-1.0-py3-none-any.whl"),
        ),
    ],
    ids=["index", "bad-json", "editable", "subdirectory", "vcs", "remote-archive", "local-wheel"],
)
def test_install_source_reads_direct_url(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    direct_url: Any,
    kind: str,
    requirement: str,
    where: str,
    path: Path | None,
) -> None:
    fake_dist(tmp_path, monkeypatch, direct_url)
    source = install_source("tiny")
    assert (source.name, source.version, source.kind) == ("Tiny", "1.0", kind)
    assert (source.requirement, source.where, source.path) == (requirement, where, path)
    assert source.reference == (None if kind == "index" else requirement)


def test_a_wheel_is_built_from_its_source_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tiny_project(tmp_path / "tiny")
    monkeypatch.setattr(wheels, "install_source", lambda name: from_folder(project))
    said: list[str] = []
    built = build_wheels(Requirements(("tiny==1.0",)), tmp_path / "out", say=said.append)
    assert [name for _, name in built.own] == ["tiny-1.0-py3-none-any.whl"]
    assert built.dependencies == ()
    assert [path.name for path in built.files] == ["tiny-1.0-py3-none-any.whl"]
    assert all(path.is_file() for path in built.files)
    assert said == [
        f"building the wheels of tiny 1.0 (from {project}) and of their dependencies with pip wheel"
    ]
    assert built.summary() == f"built the wheels of tiny 1.0 (from {project})"


def test_a_wheel_of_another_version_than_installed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tiny_project(tmp_path / "tiny", version="2.0")
    monkeypatch.setattr(wheels, "install_source", lambda name: from_folder(project))
    with pytest.raises(WheelBuildError) as refused:
        build_wheels(Requirements(("tiny==1.0",)), tmp_path / "out")
    assert str(refused.value) == (
        f"the wheel of tiny built from {project} is version 2.0, but 1.0 is installed here (the version the "
        f"build ran with and the Dockerfile pins): install it again (pip install {project}) and build again"
    )


def test_a_failed_wheel_names_the_package_and_ends_with_pips_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tiny_project(tmp_path / "tiny")
    (project / "backend.py").write_text(
        "def build_wheel(*args, **kwargs):\n    raise SystemExit('no, not today')\n"
    )
    monkeypatch.setattr(wheels, "install_source", lambda name: from_folder(project))
    with pytest.raises(WheelBuildError) as failed:
        build_wheels(Requirements(("tiny==1.0",)), tmp_path / "out")
    message = str(failed.value)
    assert message.startswith(
        f"cannot build the wheel of tiny 1.0 from {project}: pip wheel exited with 1:\n"
    )
    assert "no, not today" in message
    assert len(message.splitlines()) <= 16


def test_a_source_folder_gone_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wheels, "install_source", lambda name: from_folder(tmp_path / "gone"))
    with pytest.raises(
        WheelBuildError, match=r"cannot build the wheel of tiny: tiny 1.0 was installed from "
    ):
        build_wheels(Requirements(("tiny==1.0",)), tmp_path / "out")


BUNDLE = {"name": "demo", "image": "ghcr.io/example/demo:1.0", "plugins": ["glue-job"]}


def bundle_file(tmp_path: Path) -> Path:
    path = tmp_path / "argoplug.yaml"
    path.write_text(yaml.safe_dump(BUNDLE))
    return path


def test_a_failed_wheel_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # argoplug's wheel, as if argoplug were installed from a folder whose build fails.
    project = tiny_project(tmp_path / "argoplug")
    (project / "backend.py").write_text("def build_wheel(*args, **kwargs):\n    raise SystemExit('broken')\n")
    version = importlib.metadata.version("argoplug")
    source = Source("argoplug", version, "directory", f"argoplug @ {project.as_uri()}", str(project), project)
    monkeypatch.setattr(wheels, "install_source", lambda name: source)
    with pytest.raises(
        WheelBuildError, match=rf"cannot build the wheel of argoplug {version} from {project}"
    ):
        writer.build_bundle(bundle_file(tmp_path), tmp_path / "out", wheels=True)
    assert not (tmp_path / "out").exists()


def test_the_output_folder_is_checked_before_any_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("build_wheels ran")

    monkeypatch.setattr(writer, "build_wheels", no_pip)
    (tmp_path / "afile").write_text("mine\n")
    with pytest.raises(BundleError, match="is a file"):
        writer.build_bundle(bundle_file(tmp_path), tmp_path / "afile" / "out", wheels=True)
