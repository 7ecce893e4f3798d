"""`write_files`: every target is checked before anything moves, a file-system error is a BundleError
naming the path, and a failed build leaves the output folder exactly as it was."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from argoplug.build import writer
from argoplug.build.bundle import BundleError
from argoplug.build.writer import build_bundle, write_files

BUNDLE: dict[str, Any] = {
    "name": "demo",
    "image": "ghcr.io/example/demo:1.0",
    "plugins": ["sagemaker-pipelines"],
    "serviceAccount": {"iamRoleArn": "arn:aws:iam::123456789012:role/demo"},
}
FILES = {"a.yaml": "a: 1\n", "b.yaml": "b: 2\n", "wheels/README.md": "wheels\n", "c.json": "{}\n"}


def bundle_file(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "argoplug.yaml"
    path.write_text(yaml.safe_dump({**BUNDLE, **changes}))
    return path


def snapshot(folder: Path) -> dict[str, str | None]:
    """Every path under `folder` → its text (None for a folder), to compare before and after."""
    return {
        str(p.relative_to(folder)): (p.read_text() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def test_an_output_folder_under_a_file_is_named(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    with pytest.raises(BundleError, match=rf"cannot write into {afile}/out: {afile} is a file"):
        build_bundle(bundle_file(tmp_path), afile / "out")
    assert afile.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "argoplug.yaml"]


def test_an_output_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("mine\n")
    with pytest.raises(BundleError, match=rf"cannot write into {out}: {out} is a file"):
        build_bundle(bundle_file(tmp_path), out)
    assert out.read_text() == "mine\n"


def dockerfile_a_folder(out: Path) -> None:
    (out / "Dockerfile").unlink()
    (out / "Dockerfile").mkdir()


def wheels_readme_a_folder(out: Path) -> None:
    (out / "wheels" / "README.md").unlink()
    (out / "wheels" / "README.md").mkdir()


def wheels_a_file(out: Path) -> None:
    (out / "wheels" / "README.md").unlink()
    (out / "wheels").rmdir()
    (out / "wheels").write_text("not a folder\n")


def stale_trust_policy_a_folder(out: Path) -> None:
    # Without IRSA the rebuild would remove the stale trust policy: a folder there stops it first.
    (out / "iam-trust-policy.json").unlink()
    (out / "iam-trust-policy.json").mkdir()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (dockerfile_a_folder, "cannot write {out}/Dockerfile: it is a folder"),
        (wheels_readme_a_folder, "cannot write {out}/wheels/README.md: it is a folder"),
        (wheels_a_file, "cannot write {out}/wheels/README.md: {out}/wheels is a file"),
        (stale_trust_policy_a_folder, "cannot remove the stale {out}/iam-trust-policy.json: it is a folder"),
    ],
    ids=lambda case: getattr(case, "__name__", ""),
)
def test_a_target_that_cannot_be_written_stops_the_build_before_anything_moves(
    tmp_path: Path, make: Any, words: str
) -> None:
    out = tmp_path / "out"
    build_bundle(bundle_file(tmp_path), out)
    for path in out.rglob("*"):
        if path.is_file():
            path.write_text("previous build\n")
    make(out)
    before = snapshot(out)
    without_irsa = bundle_file(tmp_path, serviceAccount={})
    with pytest.raises(BundleError) as raised:
        build_bundle(without_irsa, out)
    assert words.format(out=out) in str(raised.value)
    assert snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_unwritable_output_folder_is_named(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(BundleError, match=rf"cannot write into {out}: folder {out} is not writable"):
            build_bundle(bundle_file(tmp_path), out)
        with pytest.raises(BundleError, match=rf"cannot create {out}/new: folder {out} is not writable"):
            build_bundle(bundle_file(tmp_path), out / "new")
    finally:
        out.chmod(0o755)
    assert list(out.iterdir()) == []


def test_an_unwritable_folder_is_checked_before_anything_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a user who may not write into `out/wheels` sees it (root may write anywhere, so access() says so).
    out = tmp_path / "out"
    write_files(FILES, out)
    before = snapshot(out)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != out / "wheels" and real_access(path, mode)
    )
    with pytest.raises(
        BundleError, match=rf"cannot write {out}/wheels/README.md: folder {out}/wheels is not writable"
    ):
        write_files({name: "new\n" for name in FILES}, out)
    assert snapshot(out) == before


def test_a_failure_midway_puts_back_what_was_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_files({**FILES, "iam-policy.json": "{}\n"}, out)
    before = snapshot(out)
    real_replace = os.replace
    calls: list[str] = []

    def replace(source: Any, target: Any) -> None:
        calls.append(str(target))
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(writer.os, "replace", replace)
    new = {name: "new\n" for name in FILES} | {"d/e.yaml": "new\n"}
    with pytest.raises(BundleError, match=rf"cannot write {out}/wheels/README.md: No space left on device"):
        write_files(new, out)
    monkeypatch.undo()
    assert snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_failure_midway_removes_the_new_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def rename(self: Path, target: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(BundleError, match=rf"cannot create {tmp_path}/a/b/out: Input/output error"):
        write_files(FILES, tmp_path / "a" / "b" / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_rebuild_replaces_the_files_and_keeps_the_users(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_files({**FILES, "iam-policy.json": "{}\n"}, out)
    (out / "wheels" / "mine.whl").write_text("wheel\n")
    written = write_files({name: "new\n" for name in FILES}, out)
    assert written == [out / name for name in FILES]
    assert snapshot(out) == {
        "a.yaml": "new\n",
        "b.yaml": "new\n",
        "c.json": "new\n",
        "wheels": None,
        "wheels/README.md": "new\n",
        "wheels/mine.whl": "wheel\n",
    }
    assert oct((out).stat().st_mode & 0o777) == oct(0o755)
