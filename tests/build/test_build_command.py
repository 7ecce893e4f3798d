"""`argoplug build` as a user runs it: a bundle, a plain Argo plugin folder, and a bad bundle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"


def argoplug(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "argoplug", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_build_argo_reproduces_the_vector_configmap(tmp_path: Path) -> None:
    folder = tmp_path / "hello"
    shutil.copytree(VECTORS / "hello-plugin-src", folder)
    done = argoplug("build", "--argo", folder)
    assert done.returncode == 0, done.stderr
    configmap = folder / "hello-executor-plugin-configmap.yaml"
    assert done.stdout.splitlines() == [f"{configmap} created", f"{folder / 'README.md'} created"]
    header, rest = configmap.read_text().split("\n", 1)
    assert header == "# This is an auto-generated file. DO NOT EDIT"
    assert rest == (VECTORS / "hello-executor-plugin-configmap.yaml").read_text()
    # Argo's e2e hello plugin runs as uid 1000 with no group: python:alpine has no such user, so the
    # runtime gives it gid 0 and it reads its token; argoplug cannot see the image, and says so.
    assert done.stderr.splitlines() == [
        f"argoplug build: warning: {configmap}: sidecar.container.securityContext: the sidecar runs as uid "
        "1000 with no runAsGroup: Argo's agent writes /var/run/argo/token as uid 8737, gid 0, mode 0440 in a "
        "0770 folder (Argo issue #13015), so it can read its token only if its image has no /etc/passwd "
        "entry for uid 1000 (the runtime then gives gid 0), else every call gets 503; set the container's "
        "securityContext to runAsUser: 8737 (or runAsGroup: 0)"
    ]


def test_build_argo_of_a_sidecar_that_reads_its_token_warns_of_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "hello"
    shutil.copytree(VECTORS / "hello-plugin-src", folder)
    plugin = folder / "plugin.yaml"
    plugin.write_text(plugin.read_text().replace("runAsUser: 1000", "runAsUser: 8737"))
    done = argoplug("build", "--argo", folder)
    assert (done.returncode, done.stderr) == (0, "")


def test_build_argo_reports_argos_message(tmp_path: Path) -> None:
    folder = tmp_path / "hello"
    shutil.copytree(VECTORS / "hello-plugin-src", folder)
    plugin = folder / "plugin.yaml"
    plugin.write_text(plugin.read_text().replace("      ports:\n      - containerPort: 4355\n", ""))
    done = argoplug("build", "--argo", folder)
    assert done.returncode == 1
    assert done.stderr.strip() == "argoplug build: sidecar is invalid: at least one port is mandatory"
    assert sorted(p.name for p in folder.iterdir()) == ["plugin.yaml", "server.py"]


def test_build_of_the_sagemaker_bundle_writes_every_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = argoplug("build", ROOT / "examples" / "sagemaker" / "argoplug.yaml", "-o", out, "--no-wheels")
    assert done.returncode == 0, done.stderr
    written = {Path(line.removesuffix(" created")).name for line in done.stdout.splitlines()}
    assert {
        "plugin.yaml",
        "awf-aws-executor-plugin-configmap.yaml",
        "service-account.yaml",
        "agent-role.yaml",
        "iam-policy.json",
        "iam-trust-policy.json",
        "Dockerfile",
        "kustomization.yaml",
        "README.md",
    } <= written
    assert all((out / name).is_file() for name in written - {"README.md"})


def test_a_bad_bundle_names_the_field_and_writes_nothing(tmp_path: Path) -> None:
    bundle = tmp_path / "argoplug.yaml"
    bundle.write_text("name: demo\nimage: ghcr.io/x/demo:1\nplugins: [sagemaker-pipelines]\nport: 70000\n")
    done = argoplug("build", bundle, "-o", tmp_path / "out", "--no-wheels")
    assert done.returncode == 2
    assert "port: expected an integer from 1024 to 65535, got 70000" in done.stderr
    assert not (tmp_path / "out").exists()


def test_binding_the_agent_role_to_default_is_warned_about(tmp_path: Path) -> None:
    bundle = tmp_path / "argoplug.yaml"
    bundle.write_text("name: demo\nimage: ghcr.io/x/demo:1\nplugins: [sagemaker-pipelines]\n")
    done = argoplug("build", bundle, "-o", tmp_path / "out", "--no-wheels")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("argoplug build: warning: agent-role.yaml binds the agent Role to service")
    assert "'default'" in done.stderr
