"""`argoplug init` (argoplug.scaffold): the files written, the names refused, and a generated package whose
own tests pass in a fresh virtualenv where it is installed for real."""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from argoplug import __version__
from argoplug.scaffold import MAX_NAME_LENGTH, ScaffoldError, check_name, init_plugin
from argoplug.testing import LiveServer

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
    }
    readme = (tmp_path / "README.md").read_text()
    for line in (
        'pip install -e ".[test]" && pytest',
        f"argoplug serve --plugin {NAME}",
        "argoplug call request.json",
        "argoplug build",
    ):
        assert line in readme
    request = json.loads((tmp_path / "request.json").read_text())
    assert list(request["template"]["plugin"]) == [NAME]
    assert "__pycache__/" in (tmp_path / ".gitignore").read_text().splitlines()


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


@pytest.mark.slow
def test_the_generated_package_installs_and_its_tests_pass(tmp_path: Path) -> None:
    package = tmp_path / NAME
    init_plugin(NAME, package)
    venv = tmp_path / "venv"
    # This environment's packages (argoplug, pytest, pip, setuptools) are made visible to the venv, so
    # nothing is fetched. Not by --system-site-packages: where this Python is itself a virtualenv (CI's),
    # that reaches the base Python's packages instead. A .pth file adds this environment's site-packages,
    # their .pth files (editable installs) included, in this interpreter's order.
    done = run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    additions = "; ".join(f"site.addsitedir({path!r})" for path in site.getsitepackages())
    (Path(purelib) / "argoplug_test_environment.pth").write_text(f"import site; {additions}\n")

    can_build = run(
        python,
        "-c",
        "import setuptools.command.bdist_wheel as b, sys; sys.exit(not hasattr(b, 'bdist_wheel'))",
    )
    if can_build.returncode != 0 and run(python, "-c", "import wheel.bdist_wheel").returncode != 0:
        pytest.fail(
            "this environment cannot build an editable install offline: it needs setuptools>=70.1 (or the "
            "`wheel` package): pip install -e '.[dev]'"
        )

    done = run(
        python,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--quiet",
        "-e",
        package,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    assert done.returncode == 0, done.stdout + done.stderr

    done = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout, done.stdout

    done = run(python, "-m", "argoplug", "plugins", COLUMNS="200")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    assert NAME in rows, done.stdout
    assert "sagemaker-pipelines" in rows, done.stdout
    assert f"{NAME} 0.1.0" in rows[NAME], done.stdout
