"""The wheels of a build: argoplug's, the plugin packages' and their dependencies', made by `pip wheel`.

`argoplug.build.writer.build_bundle(..., wheels=True)` calls `build_wheels` with the distributions the image
installs (`image.Requirements`) before it writes anything; `argoplug.scaffold` calls `install_source` to
tell a new plugin package where its argoplug comes from.

Each distribution is built again from where it was installed from, as its `direct_url.json` (PEP 610) says:
a source folder (editable or not), a VCS commit, an archive; or, with no such file, from the package index
(`name==version`). Nothing is fetched beyond what pip is configured with (its index, find-links, VCS hosts
for VCS installs).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

from argoplug.build.bundle import BundleError
from argoplug.build.image import BASE_IMAGE, Requirements

__all__ = ["BuiltWheels", "Source", "WheelBuildError", "build_wheels", "install_source"]

# pip's output kept in a failure's message: the end, where pip says what went wrong.
_LAST_LINES = 15
# One `pip wheel` call, at most (a build from source, or the whole dependency tree from the index).
_PIP_TIMEOUT = 900.0
_IMAGE_PYTHON = re.search(r"python:(\d+\.\d+)", BASE_IMAGE)


class WheelBuildError(BundleError):
    """`pip wheel` failed, or could not be run, for a distribution of the build; nothing was written.

    The message names the distribution and where it was built from, and ends with pip's last lines.
    """


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the installed distribution `name` `version` came from, as pip can be given it again.

    `kind` is "directory" (a source folder; `editable` when installed with -e), "vcs", "archive" (a wheel
    or sdist, local or by URL) or "index" (no `direct_url.json`: from a package index, as `name==version`).
    `requirement` is what to give pip: a PEP 508 direct reference (`argoplug @ file:///src/argoplug`,
    `x @ git+https://host/x.git@<commit>`), or `name==version` for the index. `path` is the local folder or
    file it refers to (None for VCS, remote archives and the index); `where` says it in words.
    """

    name: str
    version: str
    kind: Literal["directory", "vcs", "archive", "index"]
    requirement: str
    where: str
    path: Path | None = None
    editable: bool = False

    @property
    def reference(self) -> str | None:
        """The PEP 508 direct reference (`name @ url`), or None for the index."""
        return None if self.kind == "index" else self.requirement

    def missing(self) -> str | None:
        """Why pip cannot build it again from `path` (it is gone), or None."""
        if self.path is not None and not self.path.exists():
            return f"{self.name} {self.version} was installed from {self.path}, which no longer exists"
        return None


@dataclasses.dataclass(frozen=True)
class BuiltWheels:
    """What `build_wheels` made in `folder`: `own`, each distribution's source and wheel file name (in the
    order asked), and `dependencies`, the file names of every other wheel their dependencies need."""

    folder: Path
    own: tuple[tuple[Source, str], ...]
    dependencies: tuple[str, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        """Every wheel made, own ones first."""
        return tuple(self.folder / name for name in [*(n for _, n in self.own), *self.dependencies])

    def summary(self) -> str:
        """One sentence: what was built, from where, and for which Python."""
        own = ", ".join(f"{source.name} {source.version} (from {source.where})" for source, _ in self.own)
        text = f"built the wheels of {own}"
        if self.dependencies:
            text += f" and {len(self.dependencies)} of their dependencies, {_python_tag()}"
            if not _same_python_as_the_image():
                text += (
                    f" (the image's Python, {BASE_IMAGE}, may not use the compiled ones: it gets those from "
                    "the package index)"
                )
        return text


def install_source(name: str) -> Source:
    """Return where the installed distribution `name` came from (its PEP 610 `direct_url.json`).

    Raises importlib.metadata.PackageNotFoundError when it is not installed.
    """
    dist = importlib.metadata.distribution(name)
    dist_name, version = dist.metadata["Name"] or name, dist.version
    text = dist.read_text("direct_url.json")
    try:
        info = json.loads(text) if text else None
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return Source(dist_name, version, "index", f"{dist_name}=={version}", "the package index")
    url: str = info["url"]
    local = _local_path(url)
    if isinstance(info.get("vcs_info"), dict):
        vcs = info["vcs_info"]
        commit = vcs.get("commit_id") or vcs.get("requested_revision")
        full = f"{vcs.get('vcs', 'git')}+{url}" + (f"@{commit}" if commit else "")
        if info.get("subdirectory"):
            full += f"#subdirectory={info['subdirectory']}"
        return Source(dist_name, version, "vcs", f"{dist_name} @ {full}", full)
    if isinstance(info.get("dir_info"), dict):
        editable = bool(info["dir_info"].get("editable"))
        where = f"{local if local is not None else url}" + (", an editable install" if editable else "")
        if info.get("subdirectory"):
            url += f"#subdirectory={info['subdirectory']}"
        return Source(dist_name, version, "directory", f"{dist_name} @ {url}", where, local, editable)
    archive = info.get("archive_info")
    if isinstance(archive, dict) and "#" not in url:
        hashes = archive.get("hashes")
        if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
            url += f"#sha256={hashes['sha256']}"
        elif isinstance(archive.get("hash"), str):
            url += "#" + archive["hash"]
    where = str(local) if local is not None else url.split("#", 1)[0]
    return Source(dist_name, version, "archive", f"{dist_name} @ {url}", where, local)


def build_wheels(reqs: Requirements, into: Path, *, say: Callable[[str], None] | None = None) -> BuiltWheels:
    """Make in the empty folder `into` the wheels of `reqs` and of all their dependencies; return them.

    First each pinned distribution (`reqs.distributions`, argoplug first) from where it was installed
    (`install_source`), `pip wheel --no-deps`, and the wheel's version checked against the one installed
    here (the one the build's hooks ran with, and the Dockerfile pins). Then `pip wheel` of those wheels
    with their extras, which adds the wheels of every dependency (from pip's configured index and
    find-links; built for this Python). pip is this Python's (`python -m pip`), with the user's
    configuration; setuptools builds each in a folder of its own, not in the source tree's `build/`. `say`
    is told what is about to be built. Raises WheelBuildError naming the distribution, where from, and pip's
    last lines.
    """
    into = Path(into)
    sources = []
    for dist_name in reqs.distributions:
        name = dist_name.split("==", 1)[0]
        try:
            source = install_source(name)
        except importlib.metadata.PackageNotFoundError:
            raise WheelBuildError(f"cannot build the wheel of {name}: it is not installed here") from None
        problem = source.missing()
        if problem:
            raise WheelBuildError(
                f"cannot build the wheel of {name}: {problem}; install it again (pip install PATH) and "
                "build again, or give --no-wheels and put its wheel into wheels/ yourself"
            )
        sources.append(source)
    if say is not None and sources:
        what = ", ".join(f"{s.name} {s.version} (from {s.where})" for s in sources)
        say(f"building the wheels of {what} and of their dependencies with pip wheel")
    own_dir, deps_dir = into / "own", into / "dependencies"
    own_dir.mkdir(parents=True)
    deps_dir.mkdir()
    own: list[tuple[Source, str]] = []
    env = {**os.environ}
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    with tempfile.TemporaryDirectory(prefix="argoplug-wheels-") as scratch:
        _check_pip(env)
        for index, source in enumerate(sources):
            before = set(os.listdir(own_dir))
            args = ["wheel", "--no-deps", "--wheel-dir", str(own_dir), _pip_target(source)]
            done = _pip(args, _own_build_env(env, Path(scratch) / str(index)))
            what = f"the wheel of {source.name} {source.version} from {source.where}"
            if done.returncode != 0:
                raise WheelBuildError(
                    f"cannot build {what}: pip wheel exited with {done.returncode}:\n{_tail(done)}"
                )
            made = sorted(set(os.listdir(own_dir)) - before)
            wheel = next((name for name in made if _wheel_name(name) == _canonical(source.name)), None)
            if wheel is None:
                raise WheelBuildError(
                    f"cannot build {what}: pip wheel made no wheel of it (it made: "
                    f"{', '.join(made) or 'nothing'}):\n{_tail(done)}"
                )
            built_version = wheel.split("-")[1]
            if _canonical_version(built_version) != _canonical_version(source.version):
                raise WheelBuildError(
                    f"the wheel of {source.name} built from {source.where} is version {built_version}, but "
                    f"{source.version} is installed here (the version the build ran with and the Dockerfile "
                    f"pins): install it again (pip install {'-e ' if source.editable else ''}"
                    f"{source.path or source.where}) and build again"
                )
            own.append((source, wheel))
        if own:
            extras = _extras(reqs.pins)
            targets = [
                f"{source.name}{extras.get(_canonical(source.name), '')} @ {(own_dir / wheel).as_uri()}"
                for source, wheel in own
            ]
            done = _pip(["wheel", "--wheel-dir", str(deps_dir), "--find-links", str(own_dir), *targets], env)
            if done.returncode != 0:
                names = ", ".join(source.name for source, _ in own)
                raise WheelBuildError(
                    f"cannot make the wheels of the dependencies of {names}: pip wheel exited with "
                    f"{done.returncode}:\n{_tail(done)}"
                )
    ours = {wheel for _, wheel in own}
    dependencies = []
    for name in sorted(os.listdir(deps_dir)):
        if name.endswith(".whl") and name not in ours:
            os.replace(deps_dir / name, own_dir / name)
            dependencies.append(name)
    return BuiltWheels(own_dir, tuple(own), tuple(dependencies))


def _pip_target(source: Source) -> str:
    # A local folder or file as a path (pip reads it as is), anything else as its requirement.
    if source.path is not None and "#subdirectory=" not in source.requirement:
        return str(source.path)
    return source.requirement


def _own_build_env(env: dict[str, str], folder: Path) -> dict[str, str]:
    # setuptools builds in the source tree's `build/` (where `argoplug build` writes by default, and where
    # modules since removed would slip into the wheel) unless told otherwise: distutils reads the file
    # DIST_EXTRA_CONFIG names. A fresh folder for each build: setuptools packs all of `build/lib`.
    if "DIST_EXTRA_CONFIG" in env:
        return env
    folder.mkdir(parents=True)
    config = folder / "setup.cfg"
    config.write_text(f"[build]\nbuild_base = {folder / 'build'}\n", encoding="utf-8")
    return {**env, "DIST_EXTRA_CONFIG": str(config)}


def _check_pip(env: dict[str, str]) -> None:
    done = _pip(["--version"], env)
    if done.returncode != 0:
        raise WheelBuildError(
            f"cannot build the wheels: this Python ({sys.executable}) has no pip (python -m pip --version "
            f"exited with {done.returncode}): install it (python -m ensurepip), or give --no-wheels and put "
            f"the wheels into wheels/ yourself:\n{_tail(done)}"
        )


def _pip(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args]
    try:
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=_PIP_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or b""
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        return subprocess.CompletedProcess(command, -1, text, f"pip did not finish in {_PIP_TIMEOUT:g}s")
    except OSError as exc:
        return subprocess.CompletedProcess(command, -1, "", f"cannot run {sys.executable}: {exc}")


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    return "\n".join(f"  {line}" for line in lines[-_LAST_LINES:]) or "  (pip said nothing)"


def _local_path(url: str) -> Path | None:
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(url2pathname(parts.path))


def _extras(pins: Sequence[str]) -> dict[str, str]:
    found = {}
    for pin in pins:
        match = re.fullmatch(r"([^\[=]+)(\[[^\]]*\])?==.*", pin)
        if match and match.group(2):
            found[_canonical(match.group(1))] = match.group(2)
    return found


def _wheel_name(filename: str) -> str:
    return _canonical(filename.split("-", 1)[0])


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _canonical_version(version: str) -> str:
    # Enough of PEP 440 normalisation for a wheel's file name against the installed metadata.
    return version.lower().replace("_", "-").removeprefix("v")


def _python_tag() -> str:
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"for this Python ({python}, {sys.platform} {platform.machine()})"


def _same_python_as_the_image() -> bool:
    image = _IMAGE_PYTHON.group(1) if _IMAGE_PYTHON else ""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return sys.platform == "linux" and here == image and platform.machine() in ("x86_64", "aarch64")
