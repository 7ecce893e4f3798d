"""`argoplug init`: scaffold a new plugin package whose own tests pass straight away.

The CLI's `init` command calls `init_plugin`; the text of every file it writes is a template below.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import shutil
import string
import sys
import textwrap
from pathlib import Path

from argoplug import __version__
from argoplug.build.bundle import EXECUTOR_PLUGIN_SUFFIX, MAX_NAME_LENGTH
from argoplug.build.wheels import Source, install_source

__all__ = ["MAX_NAME_LENGTH", "ScaffoldError", "argoplug_requirement", "check_name", "init_plugin"]

# The name becomes the Kubernetes object and container name `<name>-executor-plugin`: a DNS-1123 label.
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# Top-level modules the generated package must not shadow beyond those importable here: pytest's test
# folders (`tests` holds the package's own tests; `test` is stdlib's, left out of stdlib_module_names).
_TAKEN_MODULES = frozenset({"argoplug", "msgspec", "pytest", "tests", "test"})


class ScaffoldError(Exception):
    """`argoplug init` refused: a bad plugin name, or a target folder that is not empty."""


def check_name(name: str) -> None:
    """Check `name` as a plugin name: a DNS-1123 label of at most 47 characters, starting with a letter.

    The name becomes the plugin key, the distribution and entry-point name and the Kubernetes name
    `<name>-executor-plugin` (63 characters at most); the Python package is `name` with '-' → '_'.
    Raises ScaffoldError naming the value, what is wrong with it and what is expected; also when the
    package would shadow a module importable here (stdlib, an installed distribution, `test`/`tests`)
    or an installed package already registers a plugin of that name.
    """
    expected = (
        f"expected a DNS-1123 label of at most {MAX_NAME_LENGTH} characters: lowercase letters, digits "
        "and '-', starting with a letter and ending with a letter or digit, like 'my-plugin'"
    )
    problem = ""
    if not name:
        problem = "it is empty"
    elif len(name) > MAX_NAME_LENGTH:
        problem = (
            f"it has {len(name)} characters, and `{name}{EXECUTOR_PLUGIN_SUFFIX}` must fit the 63 of a "
            "Kubernetes name"
        )
    elif name != name.lower():
        problem = "it has uppercase letters"
    elif "_" in name:
        problem = "it has '_' (use '-': the Python package gets '_' in its place)"
    elif not name[0].isalpha():
        problem = "it does not start with a letter"
    elif not _NAME.fullmatch(name) or not name.isascii():
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))})
        problem = f"it has {', '.join(map(repr, bad))}" if bad else "it ends with '-'"
    if problem:
        raise ScaffoldError(f"invalid plugin name {name!r}: {problem}; {expected}")
    module = _module_name(name)
    if (
        keyword.iskeyword(module)
        or module in sys.stdlib_module_names
        or module in _TAKEN_MODULES
        or importlib.util.find_spec(module) is not None
    ):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: its Python package {module!r} would be unimportable or shadow "
            "another module; choose another name, like 'my-plugin'"
        )
    from argoplug.registry import installed

    taken = installed().get(name)
    if taken is not None:
        package = taken.dist.name if taken.dist else taken.value
        raise ScaffoldError(
            f"invalid plugin name {name!r}: an installed package ({package}) registers a plugin of that "
            "name; choose another name, like 'my-plugin'"
        )


def init_plugin(name: str, directory: Path | None = None) -> list[Path]:
    """Write a new plugin package `name` into `directory` (default `./<name>`) and list its files.

    Writes `pyproject.toml` (setuptools; entry point `argoplug.plugins`; depends on `argoplug>=` this
    release), `README.md` (its install command installs argoplug from where this one was installed from,
    see `argoplug_requirement`), `argoplug.yaml`
    (the bundle `argoplug build` reads), `request.json` (a request for `argoplug call`), `.gitignore`,
    `src/<package>/__init__.py` (a working plugin to change), `src/<package>/py.typed` and
    `tests/test_<package>.py` (the plugin through a live server), creating folders as needed. Returns
    the paths written (`directory` joined with each file's path), in that order.

    Raises ScaffoldError, having written nothing, for a bad name (see `check_name`) or when `directory`
    exists and is not an empty folder; ScaffoldError when a file cannot be written (what was written is
    removed).
    """
    check_name(name)
    target = Path(name) if directory is None else Path(directory)
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"cannot create the plugin in {str(target)!r}: it exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        raise ScaffoldError(
            f"cannot create the plugin in {str(target)!r}: the folder is not empty; "
            "give an empty or new folder with --directory"
        )
    files = _render(name)
    # The outermost folder this call creates: removed whole if a write fails.
    created: Path | None = None
    if not target.exists():
        created = target
        while not created.parent.exists():
            created = created.parent
    written: list[Path] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            for path in written:
                path.unlink(missing_ok=True)
            for folder in ("src", "tests"):
                shutil.rmtree(target / folder, ignore_errors=True)
        raise ScaffoldError(f"cannot write the plugin into {str(target)!r}: {exc}") from exc
    return written


def _module_name(name: str) -> str:
    return name.replace("-", "_")


def argoplug_requirement(source: Source | None = None) -> str | None:
    """The PEP 508 direct reference that installs the argoplug running here again, or None.

    From its `direct_url.json` (`install_source`): `argoplug @ file:///path/to/checkout` for a source
    folder (editable or not), `argoplug @ git+URL@commit` for a VCS install, `argoplug @ URL` for an
    archive. None when it came from a package index (the plain dependency `argoplug>=X` then resolves)
    or from a folder or file that no longer exists.
    """
    source = install_source("argoplug") if source is None else source
    if source.missing() is not None:
        return None
    return source.reference


def _install_texts(version: str) -> dict[str, str]:
    """The README's install command and what it says of where argoplug comes from."""
    source = install_source("argoplug")
    reference = argoplug_requirement(source)
    command = 'pip install -e ".[test]" && pytest'
    if reference is not None:
        command = f'pip install "{reference}" -e ".[test]" && pytest'
        origin = _paragraph(
            "argoplug is on no package index yet (`pip install -e .` alone finds no "
            f"`argoplug>={version}` to install). The argoplug that wrote this package is installed from "
            f"{source.where}: the command installs it from there, as `{reference}`. Where that is not at "
            "hand (on another machine), give another argoplug source in its place, a checkout or a Git URL:"
        )
        origin += (
            '\n\n    pip install /path/to/argoplug -e ".[test]" && pytest'
            '\n    pip install "argoplug @ git+https://HOST/PATH/argoplug.git" -e ".[test]" && pytest'
        )
    elif source.kind == "index":
        origin = f"argoplug comes from your package index, as `argoplug>={version}` (pyproject.toml)."
    else:
        origin = _paragraph(
            "argoplug is on no package index yet, and the argoplug that wrote this package was installed "
            f"from {source.where}, which is gone: first install argoplug from its source in the virtualenv "
            "(`pip install /path/to/argoplug`), then run the command."
        )
    return {"install_command": command, "argoplug_origin": origin}


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def _render(name: str) -> dict[str, str]:
    """Map each file's path in the package to its text."""
    module = _module_name(name)
    version = _release(__version__)
    values = {
        "name": name,
        "module": module,
        "argoplug_version": version,
        "executor_plugin": name + EXECUTOR_PLUGIN_SUFFIX,
        **_install_texts(version),
    }
    return {
        relative: string.Template(template).substitute(values)
        for relative, template in (
            ("pyproject.toml", _PYPROJECT),
            ("README.md", _README),
            ("argoplug.yaml", _BUNDLE),
            ("request.json", _REQUEST),
            (".gitignore", _GITIGNORE),
            (f"src/{module}/__init__.py", _PLUGIN),
            (f"src/{module}/py.typed", ""),
            (f"tests/test_{module}.py", _TESTS),
        )
    }


def _release(version: str) -> str:
    """The release part of a version ("0.1.0" of "0.1.0.dev3+g1234"): the lower bound to depend on."""
    match = re.match(r"\d+(\.\d+)*", version)
    return match.group(0) if match else version


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "An Argo Workflows executor plugin, served by argoplug."
readme = "README.md"
requires-python = ">=3.11"
# Where argoplug is installed from: README.md, "Install and test".
dependencies = ["argoplug>=$argoplug_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# How argoplug finds the plugin: `argoplug serve --plugin $name`, `argoplug plugins`.
[project.entry-points."argoplug.plugins"]
$name = "$module"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
$module = ["py.typed"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "--strict-markers -ra"
filterwarnings = ["error"]

[tool.ruff]
line-length = 100
target-version = "py311"
src = ["src", "tests"]

[tool.ruff.lint]
select = ["E", "F", "W", "I", "B", "UP", "SIM", "RUF"]

[tool.mypy]
python_version = "3.11"
files = ["src", "tests"]
strict = true
"""

_PLUGIN = '''\
"""The executor plugin `$name`: make it yours.

Change `Args` (the plugin block of a template: `{message: hi, times: "2"}` under the plugin key)
and `run` (the work: return a `Result`, or raise `PermanentError` for a Failed node or
`TemporaryError` to be called again later). Keep `plugins`: argoplug finds the plugin through it
(see pyproject.toml).
"""

import msgspec
from argoplug import PermanentError, Plugin, Result, Task

__all__ = ["Args", "plugin", "plugins", "run"]


class Args(msgspec.Struct, forbid_unknown_fields=True):
    """The plugin's arguments: `message` to repeat, `times` times."""

    message: str
    times: int = 1  # Argo substitutes parameters as strings: "3" is accepted here


plugin = Plugin(
    "$name",
    args=Args,
    description="Repeats a message (change this)",
)


@plugin.handler
def run(task: Task, args: Args) -> Result:
    """Repeat `message` `times` times as the output `text`; fail the node for `times` below 1."""
    if args.times < 1:
        raise PermanentError(f"`times` is {args.times}: give 1 or more")
    return Result.succeeded(outputs={"text": " ".join([args.message] * args.times)})


plugins = (plugin,)
'''

_TESTS = '''\
"""The plugin served by a live argoplug server on loopback, called over real sockets.

`live_server` comes from argoplug's pytest plugin, which pytest loads by itself.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from argoplug.testing import LiveServer

from $module import plugin

StartServer = Callable[..., LiveServer]
KEY = plugin.key


def test_succeeds_with_outputs(live_server: StartServer) -> None:
    server = live_server([plugin])
    node = server.run_task({KEY: {"message": "hello", "times": "2"}})  # as Argo's agent calls it
    assert node.phase == "Succeeded"
    assert node.outputs is not None
    assert [(p.name, p.value) for p in node.outputs.parameters] == [("text", "hello hello")]


def test_the_reply_is_what_argo_reads(live_server: StartServer) -> None:
    server = live_server([plugin])
    reply = server.execute({KEY: {"message": "hello", "times": "2"}})
    assert reply["node"]["phase"] == "Succeeded"
    assert reply["node"]["outputs"]["parameters"] == [{"name": "text", "value": "hello hello"}]


def test_bad_argument_fails_the_node_naming_the_field(live_server: StartServer) -> None:
    server = live_server([plugin])
    reply = server.execute({KEY: {"message": "hello", "times": "many"}})
    assert reply["node"]["phase"] == "Failed"
    assert "`times`" in reply["node"]["message"]


def test_refusal_fails_the_node(live_server: StartServer) -> None:
    server = live_server([plugin])
    reply = server.execute({KEY: {"message": "hello", "times": 0}})
    assert reply["node"]["phase"] == "Failed"
    assert reply["node"]["message"] == "`times` is 0: give 1 or more"


def test_other_plugins_templates_are_left_alone(live_server: StartServer) -> None:
    server = live_server([plugin])
    assert server.execute({"another-plugin": {}}) == {}


def test_the_readme_request_succeeds(live_server: StartServer) -> None:
    server = live_server([plugin])
    request: dict[str, Any] = json.loads((Path(__file__).parents[1] / "request.json").read_text())
    response = server.post(request)
    assert response.status_code == 200, response.text
    assert response.json()["node"]["phase"] == "Succeeded"
'''

_README = """\
# $name

An [Argo Workflows executor plugin](https://argo-workflows.readthedocs.io/en/latest/executor_plugins/)
built on argoplug: plugin key `$name`. argoplug serves it as the HTTP sidecar of Argo's agent and
handles the protocol (token, replies, errors as nodes); the plugin is the typed handler in
`src/$module/__init__.py`. Change its arguments and its handler there.

Use it from a workflow:

```yaml
- name: repeat
  plugin:
    $name:
      message: "{{inputs.parameters.message}}"
      times: "2"
```

Output parameter `text`: the message, repeated.

## Install and test

In a fresh virtualenv (Python 3.11 or newer), install the package with argoplug and run its tests,
which serve the plugin on loopback and call it over real sockets:

    python3 -m venv .venv && . .venv/bin/activate
    $install_command

$argoplug_origin

## Run it locally

Serve it as the sidecar would, with a token file of your own, and send it `request.json`:

    echo -n secret > token
    argoplug serve --plugin $name --token-file token &
    argoplug call request.json --token-file token

`argoplug plugins` lists it once installed. `argoplug run WORKFLOW.yaml --plugin $name` runs a whole
workflow locally through it.

## Build

`argoplug.yaml` describes the executor plugin to build: its name (`$executor_plugin` in the cluster), the
image, the port and the plugins it serves. Set `image` to your registry, then, in the virtualenv:

    argoplug build
    docker build -t ghcr.io/example/$name:0.1.0 build

`argoplug build` writes into `build/` the image's Dockerfile and the manifests, listed in a
kustomization: install them with `kubectl apply -k build` (see `build/README.md`). Into `build/wheels/`
it puts the wheels the image installs: this package's and argoplug's, built with `pip wheel` from where
they are installed, and their dependencies' (from your package index); `--no-wheels` skips that. Argo's
controller needs `ARGO_EXECUTOR_PLUGINS=true` to run executor plugins; the workflows that use the plugin
run as `serviceAccountName: $executor_plugin` (`workflowServiceAccount` in `argoplug.yaml`), which the
build creates with the agent's permissions.
"""

_BUNDLE = """\
# The executor plugin that `argoplug build` builds: the sidecar's image and port, the plugins it serves
# (installed entry-point names) and the namespaces to install it into.
name: $name
image: ghcr.io/example/$name:0.1.0
port: 7733
plugins:
  - $name
namespaces:
  - argo
# The service account the workflows using the plugin run as (`serviceAccountName`): the build creates it
# and binds the agent's Role to it alone, not to `default`, whose every pod could forge plugin results.
workflowServiceAccount: $name-executor-plugin
"""

_REQUEST = """\
{
  "workflow": {"metadata": {"name": "example", "namespace": "argo", "uid": "example-uid"}},
  "template": {
    "name": "repeat",
    "inputs": {"parameters": []},
    "outputs": {},
    "plugin": {"$name": {"message": "hello", "times": "2"}}
  }
}
"""

_GITIGNORE = """\
__pycache__/
*.py[cod]
*.egg-info/
build/
dist/
.venv/
.pytest_cache/
.mypy_cache/
.ruff_cache/
token
"""
