"""The user `argoplug build` gives the sidecar reads the token file Argo's agent writes (Argo issue #13015).

Argo's agent init container, uid 8737 with gid 0 (the argoexec image's `USER 8737` has no /etc/passwd entry),
writes /var/run/argo/<plugin>/token with mode 0440 in a 0770 folder (cmd/argoexec/commands/agent.go). The
test makes such a folder and file, and reads it with `cat` started with exactly the built container's uid
and gid and no other group, as the container runtime starts the sidecar.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from argoplug.build.writer import build_bundle

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sagemaker" / "argoplug.yaml"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, and starting as another user)")
# What argoplug build wrote before (USER 1000:1000, runAsUser 1000 and no runAsGroup).
PREVIOUS_DEFAULT = (1000, 1000)


@pytest.fixture
def argo_token() -> Iterator[Path]:
    """/var/run/argo/<plugin>/token as Argo's init container leaves it: 8737:0, 0440, folder 0770.

    Under a folder of /tmp open to every user (pytest's tmp_path is under a 0700 folder of root's).
    """
    with tempfile.TemporaryDirectory(prefix="var-run-argo-") as emptydir:
        os.chmod(emptydir, 0o755)
        folder = Path(emptydir) / "awf-aws-executor-plugin"
        folder.mkdir()
        token = folder / "token"
        token.write_text("a" * 32)
        for path, mode in ((token, 0o440), (folder, 0o770)):
            os.chown(path, 8737, 0)
            os.chmod(path, mode)
        yield token


def build(tmp_path: Path, **changes: Any) -> dict[str, str]:
    """Build the example bundle with `changes` to its fields; return file name → text."""
    bundle = tmp_path / "argoplug.yaml"
    bundle.write_text(yaml.safe_dump({**yaml.safe_load(EXAMPLE.read_text()), **changes}))
    return {
        str(p.relative_to(tmp_path / "out")): p.read_text() for p in build_bundle(bundle, tmp_path / "out")
    }


def read_as(path: Path, uid: int, gid: int) -> subprocess.CompletedProcess[str]:
    cat = shutil.which("cat")
    assert cat is not None
    return subprocess.run(
        [cat, str(path)], user=uid, group=gid, extra_groups=[], capture_output=True, text=True, check=False
    )


def built_identity(files: dict[str, str]) -> tuple[int, int]:
    """The container's runAsUser/runAsGroup, checked equal to the Dockerfile's USER uid:gid."""
    container = yaml.safe_load(files["plugin.yaml"])["spec"]["sidecar"]["container"]
    context = container["securityContext"]
    users = [line.split()[1] for line in files["Dockerfile"].splitlines() if line.startswith("USER ")]
    assert users == [f"{context['runAsUser']}:{context['runAsGroup']}"]
    assert context["runAsNonRoot"] is True
    return context["runAsUser"], context["runAsGroup"]


@needs_root
def test_the_built_sidecar_user_reads_the_token_argo_writes_and_the_previous_default_could_not(
    tmp_path: Path, argo_token: Path
) -> None:
    uid, gid = built_identity(build(tmp_path))
    assert uid != 0
    read = read_as(argo_token, uid, gid)
    assert read.returncode == 0, read.stderr
    assert read.stdout == "a" * 32
    before = read_as(argo_token, *PREVIOUS_DEFAULT)
    assert before.returncode != 0
    assert "Permission denied" in before.stderr


def test_the_generated_readme_says_which_user_and_why(tmp_path: Path) -> None:
    readme = build(tmp_path)["README.md"]
    assert "## The sidecar's user and the token file" in readme
    assert "The sidecar runs as uid 8737, gid 8737" in readme
    assert "as uid 8737, gid 0, mode 0440" in readme
    assert "Argo issue #13015" in readme


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534}, "runs as uid 65534, gid 65534:"),
        (
            {"runAsNonRoot": True, "runAsUser": 1000},
            "only if its image has no /etc/passwd entry for uid 1000",
        ),
    ],
)
def test_a_security_context_whose_user_cannot_read_the_token_is_warned_about(
    tmp_path: Path, context: dict[str, Any], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    files = build(tmp_path, securityContext=context)
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("securityContext:")]
    assert len(warnings) == 1, warnings
    assert expected in warnings[0]
    assert "runAsUser: 8737 (or runAsGroup: 0)" in warnings[0]
    assert "**Warning:**" in files["README.md"] and expected in files["README.md"]


@pytest.mark.parametrize("context", [{"runAsUser": 8737}, {"runAsUser": 1000, "runAsGroup": 0}, {}])
def test_a_security_context_that_reads_the_token_is_not_warned_about(
    tmp_path: Path, context: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    build(tmp_path, securityContext={"runAsNonRoot": True, **context})
    assert not [r for r in caplog.records if r.getMessage().startswith("securityContext:")]
