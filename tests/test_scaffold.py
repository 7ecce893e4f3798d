"""`argoplug init` (argoplug.scaffold): the files written, the names refused, the install command its README
gives for each way argoplug may be installed, and a generated package installed by that command in a fresh
virtualenv, its tests passing, then built by `argoplug build` into wheels that install offline and serve."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from argoplug import __version__, scaffold
from argoplug.build.wheels import Source
from argoplug.scaffold import MAX_NAME_LENGTH, ScaffoldError, argoplug_requirement, check_name, init_plugin
from argoplug.testing import LiveServer, Sidecar

NAME = "scaffolded-echo"
LONGEST = "a-" + "b" * (MAX_NAME_LENGTH - 2)

FILES = [
    "pyproject.toml",
    "README.md",
    "argoplug.yaml",
    "request.json",
    ".gitignore",
    "src/scaffolded_echo/__init__.py",
    "src/scaffolded_echo/py.typed",
    "tests/test_scaffolded_echo.py",
]


def relative(paths: list[Path], root: Path) -> list[str]:
    return [path.relative_to(root).as_posix() for path in paths]


def every_file(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_writes_the_package(tmp_path: Path) -> None:
    target = tmp_path / "plugins" / "echo"
    written = init_plugin(NAME, target)
    assert written == [target / path for path in FILES]
    assert every_file(target) == sorted(FILES)


def test_default_directory_is_the_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    written = init_plugin(NAME)
    assert written[0] == Path(NAME) / "pyproject.toml"
    assert every_file(tmp_path / NAME) == sorted(FILES)


def test_an_existing_empty_folder_is_used(tmp_path: Path) -> None:
    assert relative(init_plugin(NAME, tmp_path), tmp_path) == FILES


def test_pyproject(tmp_path: Path) -> None:
    init_plugin(NAME, tmp_path)
    project = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["name"] == NAME
    assert project["project"]["dependencies"] == [f"argoplug>={__version__}"]
    assert project["project"]["optional-dependencies"] == {"test": ["pytest>=8"]}
    assert project["project"]["entry-points"] == {"argoplug.plugins": {NAME: "scaffolded_echo"}}
    assert project["tool"]["pytest"]["ini_options"]["filterwarnings"] == ["error"]
    assert project["tool"]["ruff"]["line-length"] <= 100


def test_bundle_readme_and_request(tmp_path: Path) -> None:
    init_plugin(NAME, tmp_path)
    bundle = yaml.safe_load((tmp_path / "argoplug.yaml").read_text())
    assert bundle == {
        "name": NAME,
        "image": f"ghcr.io/example/{NAME}:0.1.0",
        "port": 7733,
        "plugins": [NAME],
        "namespaces": ["argo"],
        "workflowServiceAccount": f"{NAME}-executor-plugin",
    }
    readme = (tmp_path / "README.md").read_text()
    reference = argoplug_requirement()
    install = f'pip install "{reference}" -e' if reference else "pip install -e"
    for line in (
        f'    {install} ".[test]" && pytest\n',
        f"argoplug serve --plugin {NAME}",
        "argoplug call request.json",
        "argoplug build",
    ):
        assert line in readme
    request = json.loads((tmp_path / "request.json").read_text())
    assert list(request["template"]["plugin"]) == [NAME]
    assert "__pycache__/" in (tmp_path / ".gitignore").read_text().splitlines()


def test_the_scaffolds_bundle_builds_without_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argoplug.build.bundle import bundle_warnings, load_bundle

    init_plugin(NAME, tmp_path)
    bundle = load_bundle(tmp_path / "argoplug.yaml")
    assert bundle_warnings(bundle) == []
    assert bundle.agent_service_account == f"{NAME}-executor-plugin"  # created by the build, not `default`


def test_the_generated_plugin_works(tmp_path: Path) -> None:
    init_plugin(NAME, tmp_path)
    spec = importlib.util.spec_from_file_location(
        "scaffolded_echo", tmp_path / "src" / "scaffolded_echo" / "__init__.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [p.key for p in module.plugins] == [NAME]
    assert module.__doc__ and "change" in module.__doc__.lower()
    with LiveServer(module.plugins) as server:
        reply = server.execute({NAME: {"message": "hi", "times": "3"}})
        assert reply["node"]["phase"] == "Succeeded"
        assert reply["node"]["outputs"]["parameters"] == [{"name": "text", "value": "hi hi hi"}]
        request = json.loads((tmp_path / "request.json").read_text())
        assert server.post(request).json()["node"]["phase"] == "Succeeded"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("MyPlugin", "it has uppercase letters"),
        ("1plugin", "it does not start with a letter"),
        ("-plugin", "it does not start with a letter"),
        ("a" * (MAX_NAME_LENGTH + 1), "it has 48 characters"),
        ("my_plugin", "it has '_'"),
        ("my.plugin", "it has '.'"),
        ("my plugin", "it has ' '"),
        ("plugin-", "it ends with '-'"),
        ("", "it is empty"),
    ],
)
def test_refuses_bad_names(tmp_path: Path, name: str, problem: str) -> None:
    target = tmp_path / "new"
    with pytest.raises(ScaffoldError) as info:
        init_plugin(name, target)
    message = str(info.value)
    assert message.startswith(f"invalid plugin name {name!r}: {problem}")
    assert "expected a DNS-1123 label of at most 47 characters" in message
    assert not target.exists()


@pytest.mark.parametrize("name", ["import", "json", "argoplug", "test", "yaml", "starlette", "boto3"])
def test_refuses_names_whose_package_cannot_be_imported_alone(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScaffoldError, match=f"invalid plugin name '{name}': its Python package '{name}'"):
        init_plugin(name, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_refuses_the_name_of_an_installed_plugin(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError) as refused:
        init_plugin("sagemaker-pipelines", tmp_path / "new")
    assert "an installed package (argoplug) registers a plugin of that name" in str(refused.value)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["a", "s3-copy", "my--plugin", LONGEST])
def test_accepts_good_names(name: str) -> None:
    check_name(name)


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ScaffoldError) as info:
        init_plugin(NAME, tmp_path)
    assert str(info.value) == (
        f"cannot create the plugin in {str(tmp_path)!r}: the folder is not empty; "
        "give an empty or new folder with --directory"
    )
    assert every_file(tmp_path) == ["notes.txt"]


def test_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(ScaffoldError, match="it exists and is not a folder"):
        init_plugin(NAME, tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_text = Path.write_text
    calls = 0

    def failing(self: Path, *args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise OSError(28, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(ScaffoldError, match="No space left on device"):
        init_plugin(NAME, tmp_path / "new" / "plugin")
    assert not (tmp_path / "new").exists()
    with pytest.raises(ScaffoldError):
        calls = 0
        init_plugin(NAME, tmp_path)
    assert list(tmp_path.iterdir()) == []


def run(*command: str | Path, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environment.update(env)
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", [NAME, LONGEST])
def test_the_generated_code_passes_ruff(tmp_path: Path, name: str) -> None:
    init_plugin(name, tmp_path)
    for command in (("check",), ("format", "--check")):
        # In the package's folder, so its own pyproject.toml (line length 100) is the configuration.
        done = run(sys.executable, "-m", "ruff", *command, "--no-cache", ".", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_the_generated_code_is_typed(tmp_path: Path) -> None:
    package = tmp_path / NAME
    init_plugin(NAME, package)
    # The package's own configuration: mypy --strict over src and tests.
    done = run(sys.executable, "-m", "mypy", "--cache-dir", tmp_path / "mypy-cache", cwd=package)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues found in 2 source files" in done.stdout


def install_block(readme: str) -> list[str]:
    """The first block of commands under "## Install and test": what a user runs in a fresh folder."""
    section = readme.split("\n## Install and test\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"(?:^    \S.*\n)+", section, re.MULTILINE)
    assert block is not None, section
    return [line.removeprefix("    ") for line in block.group(0).splitlines()]


CHECKOUT = Source(
    "argoplug",
    "0.1.0",
    "directory",
    "argoplug @ file:///src/argo%20plug",
    "/src/argo plug, an editable install",
)


@pytest.mark.parametrize(
    ("source", "command", "said"),
    [
        (
            CHECKOUT,
            'pip install "argoplug @ file:///src/argo%20plug" -e ".[test]" && pytest',
            "installed from /src/argo plug, an editable install: the command installs it from there",
        ),
        (
            Source(
                "argoplug",
                "0.1.0",
                "vcs",
                "argoplug @ git+https://example.com/argoplug.git@abc123",
                "git+https://example.com/argoplug.git@abc123",
            ),
            'pip install "argoplug @ git+https://example.com/argoplug.git@abc123" -e ".[test]" && pytest',
            "installed from git+https://example.com/argoplug.git@abc123",
        ),
        (
            Source("argoplug", "0.1.0", "index", "argoplug==0.1.0", "the package index"),
            'pip install -e ".[test]" && pytest',
            "argoplug comes from your package index, as `argoplug>=0.1.0`",
        ),
    ],
    ids=["checkout", "vcs", "index"],
)
def test_the_readme_installs_argoplug_from_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Source, command: str, said: str
) -> None:
    monkeypatch.setattr(scaffold, "install_source", lambda name: source)
    init_plugin(NAME, tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert install_block(readme) == ["python3 -m venv .venv && . .venv/bin/activate", command]
    assert said in " ".join(readme.split())
    assert "pypi.org" not in readme
    # The package's own dependency stays a plain one: its wheel must install from `argoplug build`'s
    # wheels/, offline, and in the image, where no checkout is.
    project = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == [f"argoplug>={__version__}"]


def test_an_argoplug_installed_from_a_folder_now_gone_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = Source(
        "argoplug", "0.1.0", "directory", "argoplug @ file:///gone", "/gone", path=tmp_path / "gone"
    )
    monkeypatch.setattr(scaffold, "install_source", lambda name: gone)
    assert argoplug_requirement(gone) is None
    init_plugin(NAME, tmp_path / "new")
    readme = (tmp_path / "new" / "README.md").read_text()
    assert install_block(readme)[1] == 'pip install -e ".[test]" && pytest'
    assert "which is gone: first install argoplug from its source" in " ".join(readme.split())


def fresh_env(**changes: str) -> dict[str, str]:
    """This environment as a new shell would have it: no virtualenv active, this Python's folder first on
    PATH (so `python3` is the Python under test), pytest's and PYTHONPATH left out."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST_") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(changes)
    return env


def shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euc", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def installed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """`argoplug init demo`, then its README's install-and-test commands in a fresh shell and virtualenv,
    with the package index pip is configured with: the package folder and what the commands did."""
    root = tmp_path_factory.mktemp("journey")
    done = run(sys.executable, "-m", "argoplug", "init", "demo", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    package = root / "demo"
    commands = install_block((package / "README.md").read_text())
    yield package, shell("\n".join(commands), package, fresh_env())


@pytest.mark.slow
def test_the_readme_commands_install_the_package_in_a_fresh_virtualenv_and_its_tests_pass(
    installed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    package, done = installed
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout, done.stdout
    listed = shell(". .venv/bin/activate && argoplug plugins", package, fresh_env(COLUMNS="200"))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert "demo 0.1.0" in rows.get("demo", ""), listed.stdout
    assert "sagemaker-pipelines" in rows, listed.stdout


@pytest.mark.slow
def test_argoplug_builds_wheels_that_install_offline_into_a_fresh_virtualenv_and_serve(
    installed: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    package, done = installed
    assert done.returncode == 0, done.stdout + done.stderr
    # The README's `argoplug build`, in the package's virtualenv: the wheels come with the manifests.
    built = shell(". .venv/bin/activate && argoplug build", package, fresh_env())
    assert built.returncode == 0, built.stdout + built.stderr
    out = package / "build"
    wheels = sorted(path.name for path in (out / "wheels").glob("*.whl"))
    assert [name for name in wheels if name.startswith(("argoplug-", "demo-"))] == [
        "argoplug-0.1.0-py3-none-any.whl",
        "demo-0.1.0-py3-none-any.whl",
    ]
    assert "build/wheels/demo-0.1.0-py3-none-any.whl created" in built.stdout.splitlines()
    said = " ".join(built.stderr.split())
    assert f"built the wheels of argoplug 0.1.0 (from {Path(scaffold.__file__).parents[2]}" in said, said
    assert f"demo 0.1.0 (from {package}, an editable install) and " in said, said
    assert not (out / "lib").exists()  # setuptools did not build in the package's build/ (the output)

    # A fresh virtualenv, no index and no pip configuration: only wheels/.
    venv = tmp_path / "offline"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    python = venv / "bin" / "python"
    offline = {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env = {k: v for k, v in fresh_env(**offline).items() if not (k.startswith("PIP_") and k not in offline)}
    pip = [python, "-m", "pip", "install", "--no-index", "--find-links", out / "wheels", "demo"]
    done = subprocess.run(pip, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    where = subprocess.run(
        [python, "-c", "import argoplug, demo; print(argoplug.__file__); print(demo.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert all(Path(line).is_relative_to(venv) for line in where.stdout.split()), where.stdout

    sidecar = Sidecar(["demo"], env={"PYTHONPATH": None, "VIRTUAL_ENV": None})
    sidecar.command[0] = str(python)
    with sidecar:
        assert sidecar.plugin_keys == ("demo",)
        reply = sidecar.post(json.loads((package / "request.json").read_text()))
        assert reply.status_code == 200, reply.text
        assert reply.json()["node"]["phase"] == "Succeeded"
