"""The `--plugin` values of `argoplug run`, each turned into a running plugin sidecar: `PluginSidecars`.

A value names installed argoplug plugins (served together by one `argoplug serve`), an argoplug bundle, an
Argo plugin folder or `plugin.yaml`, a built ConfigMap (whose container command is started here, on its
declared port, with its token file), or the URL of a server already running. `agent/command.py` enters a
`PluginSidecars` and hands its `endpoints` to the `AgentClient`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from argoplug.agent.client import PluginEndpoint
from argoplug.sidecar import HEALTH_TIMEOUT, Sidecar, SidecarError, write_token_file

__all__ = [
    "STOP_TIMEOUT",
    "TOKEN_PATH",
    "PluginError",
    "PluginSidecars",
    "SidecarContainer",
    "load_container",
]

# Where a sidecar reads its token (CONTRACT §4): the agent's init container writes
# /var/run/argo/<container>/token, mounted read-only at this path (workflow/controller/agent.go).
TOKEN_PATH = Path("/var/run/argo/token")
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
_CONFIGMAP_LABEL = ("workflows.argoproj.io/configmap-type", "ExecutorPlugin")
_LOG_TAIL = 20


class PluginError(Exception):
    """A `--plugin` value that cannot be run here; the message names the value and what to do."""


@dataclasses.dataclass(frozen=True)
class SidecarContainer:
    """What an Argo plugin folder or built ConfigMap runs as its sidecar, ready to start here.

    `plugin`: the plugin's name; `source`: the file it came from; `argv`: `command` + `args`, with
    Kubernetes' `$(VAR)` references to the container's env expanded; `port`: `ports[0].containerPort`,
    where the agent calls it; `env`: the container's EnvVars with a `value`; `unresolved`: what cannot be
    set here (`valueFrom`, `envFrom`); `server_file`: the `server.*` file whose text replaced `args`.
    """

    plugin: str
    source: Path
    name: str
    image: str
    argv: list[str]
    port: int
    env: dict[str, str]
    unresolved: list[str]
    working_dir: str = ""
    server_file: str = ""


def load_container(path: Path) -> SidecarContainer:
    """Read the sidecar container of an Argo plugin folder, its `plugin.yaml`, or a built ConfigMap YAML.

    A folder's `plugin.yaml` is parsed strictly and built as `argo executor-plugin build` would (a single
    `server.*` file's text replaces `args`; cmd/argo/commands/executorplugin/build.go); a ConfigMap's
    `sidecar.container` is read as the controller reads it (workflow/util/plugins/configmap.go). Raises
    PluginError naming the file and the field.
    """
    from argoplug.build.argo import ArgoBuildError, configmap_manifest, load_plugin_manifest

    folder = path if path.is_dir() else None
    manifest_path = path / "plugin.yaml" if folder else path
    documents = _yaml_documents(manifest_path)
    kind = documents[0].get("kind") if documents else None
    server_file = ""
    if folder is not None or kind == "ExecutorPlugin":
        folder = manifest_path.parent
        try:
            manifest = load_plugin_manifest(manifest_path.read_text(encoding="utf-8"))
            servers = sorted(folder.glob("server.*"))
            name = manifest.get("metadata", {}).get("name", "")
            if len(servers) > 1:
                raise ArgoBuildError(f"plugin {name} has more than one server.* file")
            server_text = servers[0].read_text(encoding="utf-8") if servers else None
            server_file = servers[0].name if servers else ""
            configmap = configmap_manifest(manifest, server_text=server_text)
        except (ArgoBuildError, OSError, UnicodeDecodeError) as exc:
            raise PluginError(f"{manifest_path}: {exc}") from None
    elif kind == "ConfigMap":
        configmap = documents[0]
    else:
        raise PluginError(
            f"{manifest_path}: expected kind ExecutorPlugin (plugin.yaml) or ConfigMap (built by argo "
            f"executor-plugin build), got kind {kind!r}"
        )
    return _container(configmap, manifest_path, server_file)


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise PluginError(f"{path} is not valid YAML: {exc}") from None
    if not all(isinstance(d, dict) for d in documents):
        raise PluginError(f"{path}: expected YAML mappings (Kubernetes objects)")
    return documents


def _container(configmap: Mapping[str, Any], path: Path, server_file: str) -> SidecarContainer:
    metadata = configmap.get("metadata") or {}
    if (metadata.get("labels") or {}).get(_CONFIGMAP_LABEL[0]) != _CONFIGMAP_LABEL[1]:
        raise PluginError(
            f"{path}: ConfigMap {metadata.get('name')!r} is not an executor plugin: the controller only "
            f"reads ConfigMaps labelled {_CONFIGMAP_LABEL[0]}: {_CONFIGMAP_LABEL[1]}"
        )
    plugin = str(metadata.get("name", "")).removesuffix("-executor-plugin")
    text = (configmap.get("data") or {}).get("sidecar.container")
    try:
        container = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError as exc:
        raise PluginError(f"{path}: data.sidecar.container is not valid YAML: {exc}") from None
    if not isinstance(container, dict):
        raise PluginError(f"{path}: data.sidecar.container: expected the sidecar's Container as YAML text")
    where = f"{path}: plugin {plugin}: container"
    image = str(container.get("image", ""))
    ports = container.get("ports")
    first = ports[0] if isinstance(ports, list) and ports else None
    port = first.get("containerPort") if isinstance(first, dict) else None
    if not isinstance(port, int) or not 0 < port < 65536:
        raise PluginError(
            f"{where}.ports[0].containerPort: expected a port number, got {port!r}: Argo's agent calls a "
            "plugin at http://localhost:<ports[0].containerPort> (workflow/controller/agent.go)"
        )
    command, args = container.get("command") or [], container.get("args") or []
    for field, value in (("command", command), ("args", args)):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise PluginError(f"{where}.{field}: expected a list of strings, got {_show(value)}")
    if not command:
        raise PluginError(
            f"{where}.command is not set: the sidecar runs the ENTRYPOINT of image {image or '(none)'}, "
            f"which cannot be known here; run the image yourself and pass --plugin http://localhost:{port}"
        )
    env: dict[str, str] = {}
    unresolved = [f"envFrom {_show(source)}" for source in container.get("envFrom") or []]
    for var in container.get("env") or []:
        if not isinstance(var, dict) or not var.get("name"):
            raise PluginError(f"{where}.env: expected EnvVars (name, value or valueFrom), got {_show(var)}")
        if "valueFrom" in var:
            unresolved.append(f"{var.get('name')} (valueFrom)")
        else:
            env[str(var.get("name"))] = _expand(str(var.get("value", "")), env)
    return SidecarContainer(
        plugin=plugin,
        source=path,
        name=str(container.get("name", "")),
        image=image,
        argv=[_expand(str(item), env) for item in [*command, *args]],
        port=port,
        env=env,
        unresolved=unresolved,
        working_dir=str(container.get("workingDir", "")),
        server_file=server_file,
    )


_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Expand `$(NAME)` with the container's env as the kubelet does: `$$` is `$`, unknown names stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


class _TokenFile:
    """A token file for started plugins: an existing readable one is used as it is, else one is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.created_dirs: list[Path] = []
        self.created = False
        self.token = ""

    def acquire(self, plugin: str) -> str:
        if self.path.is_file():
            try:
                self.token = self.path.read_text().strip()
            except OSError as exc:
                raise PluginError(
                    f"plugin {plugin}: the token file {self.path} exists but cannot be read "
                    f"({exc.strerror}); give another path with --plugin-token-file PATH"
                ) from None
            return self.token
        try:
            missing = [p for p in [self.path.parent, *self.path.parent.parents] if not p.exists()]
            for folder in reversed(missing):
                folder.mkdir(mode=0o770)
                self.created_dirs.insert(0, folder)
            self.token = write_token_file(self.path)
        except OSError as exc:
            raise PluginError(
                f"plugin {plugin}: cannot write the token file {self.path} ({exc.strerror or exc}): the "
                "plugin expects it there, as Argo's agent mounts it; run as a user who may create it, or "
                "give another path with --plugin-token-file PATH (and have the plugin read it there)"
            ) from None
        self.created = True
        return self.token

    def describe(self) -> str:
        if self.created:
            return f"{self.path} (a fresh token, mode 0440; removed after the run)"
        return f"{self.path} (already there: its token is used, the file is left as it is)"

    def release(self) -> None:
        if self.created:
            self.path.unlink(missing_ok=True)
            for folder in self.created_dirs:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            self.created = False


class _Process:
    """A sidecar container's command started here, in its own process group, logging to `log_path`."""

    def __init__(self, container: SidecarContainer, env: Mapping[str, str], log_path: Path) -> None:
        self.container = container
        self.env = env
        self.log_path = log_path
        self.url = f"http://localhost:{container.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float) -> None:
        c = self.container
        executable = shutil.which(c.argv[0], path=self.env.get("PATH"))
        if executable is None:
            raise PluginError(
                f"plugin {c.plugin} ({c.source}): its command {c.argv[0]!r} is not found here (not on PATH), "
                f"it was meant to run in image {c.image or '(none)'}; install it, or run the image yourself "
                f"and pass --plugin http://localhost:{c.port}"
            )
        if _listening(c.port):
            raise PluginError(
                f"plugin {c.plugin} ({c.source}): port {c.port} (its ports[0].containerPort) is already in "
                f"use here; stop what listens there, or pass --plugin http://localhost:{c.port} to use it"
            )
        try:
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [executable, *c.argv[1:]],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(self.env),
                    start_new_session=True,  # its own process group: stop() reaches what it spawned
                )
        except OSError as exc:
            raise PluginError(f"plugin {c.plugin} ({c.source}): cannot start {executable}: {exc}") from None
        deadline = time.monotonic() + timeout
        while not _listening(c.port):
            code = self.process.poll()
            if code is not None:
                raise PluginError(
                    f"plugin {c.plugin} ({c.source}): `{self.command_line()}` exited with code {code} before "
                    f"listening on port {c.port}; its output:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise PluginError(
                    f"plugin {c.plugin} ({c.source}): `{self.command_line()}` did not listen on port "
                    f"{c.port} within {timeout:g}s (Argo's agent gives a sidecar about 15 s, CONTRACT §3); "
                    f"its output:\n{self.tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to the process group, as Kubernetes stops a container; SIGKILL after STOP_TIMEOUT."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def command_line(self) -> str:
        """The command for messages: a script argument is shown as `<server.py: N lines>`."""
        shown = []
        for arg in self.container.argv:
            if "\n" in arg:
                what = self.container.server_file or "script"
                shown.append(f"<{what}: {len(arg.splitlines())} lines>")
            else:
                shown.append(shlex.quote(arg))
        return " ".join(shown)

    def tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-_LOG_TAIL:]
        except OSError:
            lines = []
        return "\n".join(f"  {line}" for line in lines) if lines else "  (no output)"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=0.5):
            return True
    except OSError:
        return False


class PluginSidecars:
    """Start a sidecar for each `--plugin` value, as an agent pod's sidecars (use `with`).

    `values`, in order: installed plugin names and `module:attr` paths (all of them served by ONE
    `argoplug serve` on a free loopback port; none at all: every installed plugin), argoplug bundle files
    (their `plugins` served by their own `argoplug serve`, with the bundle's `env` values, `logLevel` and
    `handlerDeadline`), Argo plugin folders, `plugin.yaml` files or built ConfigMaps (the container's
    command run here on its `ports[0].containerPort`, with a token file at `token_file`, default
    /var/run/argo/token), and URLs of servers already running (with the token of `token_file`, or of
    /var/run/argo/token, when readable). `env` is merged over this process's environment for every
    process started (None removes a name). Each server gets up to `wait_timeout` seconds to listen.
    `say` is told, line by line, what was started where. `endpoints` (after entry) are in the order of
    `values`; `logs` holds (name, log file) of every process started. On exit every process is stopped
    (SIGTERM, then SIGKILL) and the token files written are removed. Raises PluginError.
    """

    def __init__(
        self,
        values: Sequence[str],
        *,
        workdir: Path,
        env: Mapping[str, str | None] | None = None,
        token_file: Path | None = None,
        say: Callable[[str], None] = print,
        wait_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        self.values = list(values)
        self.workdir = Path(workdir)
        self.env = dict(env or {})
        self.token_file = token_file
        self.say = say
        self.wait_timeout = wait_timeout
        self.endpoints: list[PluginEndpoint] = []
        self.logs: list[tuple[str, Path]] = []
        self._sidecars: list[Sidecar] = []
        self._processes: list[_Process] = []
        self._tokens: dict[Path, _TokenFile] = {}

    def __enter__(self) -> PluginSidecars:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> list[PluginEndpoint]:
        """Start every sidecar in turn and return the endpoints; raises PluginError for the first failure."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        installed = [value for value in self.values if _kind(value) == "installed"]
        served = False
        for value in self.values or [""]:
            kind = _kind(value) if value else "installed"
            if kind == "installed":
                if not served:
                    what = (
                        " ".join(f"--plugin {shlex.quote(p)}" for p in installed) or "(all installed plugins)"
                    )
                    self._serve(
                        installed, label="argoplug serve", heading=f"Plugin server: argoplug serve {what}"
                    )
                    served = True
            elif kind == "url":
                self._use_url(value)
            elif kind == "bundle":
                path = Path(value)
                self._serve_bundle(path / "argoplug.yaml" if path.is_dir() else path)
            else:
                self._run_container(load_container(Path(value)))
        urls = [endpoint.url for endpoint in self.endpoints]
        for url in urls:
            if urls.count(url) > 1:
                names = " and ".join(e.name for e in self.endpoints if e.url == url)
                raise PluginError(f"{names} are both at {url}: in one agent pod, sidecars share localhost")
        return self.endpoints

    def close(self) -> None:
        """Stop every process started, remove the token files written; safe to call twice."""
        for process in reversed(self._processes):
            process.stop()
        for sidecar in reversed(self._sidecars):
            sidecar.close()
        for token in self._tokens.values():
            token.release()

    def _environment(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        merged = {name: value for name, value in os.environ.items() if name not in self.env}
        merged.update({name: value for name, value in self.env.items() if value is not None})
        merged.update(extra)
        return merged

    def _serve(
        self,
        plugins: Sequence[str],
        *,
        label: str,
        heading: str,
        env: Mapping[str, str | None] | None = None,
        options: Sequence[str] = (),
        notes: Sequence[str] = (),
    ) -> None:
        folder = self.workdir / _slug(label)
        folder.mkdir(parents=True, exist_ok=True)
        env = self.env if env is None else env
        sidecar = Sidecar(plugins, env=env, workdir=folder, health_timeout=self.wait_timeout)
        sidecar.command += list(options)
        self._sidecars.append(sidecar)
        self.logs.append((label, sidecar.log_path))
        try:
            sidecar.start()
        except SidecarError as exc:
            raise PluginError(f"{label}: {exc}") from None
        self.say(heading)
        self._tell(
            url=sidecar.url, token=f"{sidecar.token_file} (a fresh token)", log=sidecar.log_path, notes=notes
        )
        self.endpoints.append(PluginEndpoint(sidecar.url, sidecar.token, name=label))

    def _serve_bundle(self, path: Path) -> None:
        from argoplug.build.bundle import BundleError, load_bundle

        try:
            bundle = load_bundle(path)
        except BundleError as exc:
            raise PluginError(str(exc)) from None
        env: dict[str, str | None] = dict(self.env)
        notes = []
        skipped = [str(var.get("name")) for var in bundle.env if "value" not in var]
        env.update({str(var["name"]): str(var["value"]) for var in bundle.env if "value" in var})
        if skipped:
            notes.append(f"not set here (valueFrom): {', '.join(skipped)}")
        if any(":" in plugin for plugin in bundle.plugins):
            folder = str(path.resolve().parent)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, self._environment().get("PYTHONPATH")]))
            notes.append(f"PYTHONPATH starts with {folder}, the bundle's folder, for its module:attr plugins")
        notes.append(f"port {bundle.port} of the bundle is for the cluster: here it listens on a free port")
        options = []
        if bundle.log_level:
            options += ["--log-level", bundle.log_level]
        if bundle.handler_deadline is not None:
            options += ["--handler-deadline", f"{bundle.handler_deadline:g}"]
        command = " ".join(
            ["argoplug serve", *(f"--plugin {shlex.quote(p)}" for p in bundle.plugins), *options]
        )
        heading = f"Plugin bundle {bundle.name} ({path}): {command}"
        self._serve(bundle.plugins, label=bundle.name, heading=heading, env=env, options=options, notes=notes)

    def _run_container(self, container: SidecarContainer) -> None:
        path = self.token_file or TOKEN_PATH
        token_file = self._tokens.setdefault(path, _TokenFile(path))
        token = token_file.token or token_file.acquire(container.plugin)
        log = self.workdir / f"{_slug(container.plugin or 'plugin')}.log"
        notes = [f"not set here: {', '.join(container.unresolved)}"] if container.unresolved else []
        if container.working_dir:
            notes.append(f"workingDir {container.working_dir} ignored: it runs in {Path.cwd()}")
        process = _Process(container, self._environment(container.env), log)
        self._processes.append(process)
        self.logs.append((container.plugin, log))
        process.start(self.wait_timeout)
        self.say(f"Plugin {container.plugin} ({container.source}, meant for image {container.image or '-'}):")
        self.say(f"  started: {process.command_line()}")
        self._tell(url=process.url, token=token_file.describe(), log=log, notes=notes)
        self.endpoints.append(PluginEndpoint(process.url, token, name=container.plugin))

    def _use_url(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PluginError(f"--plugin {url}: expected a URL like http://localhost:4355")
        host, port = parsed.hostname, port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((host, port), timeout=2.0).close()
        except OSError as exc:
            raise PluginError(f"--plugin {url}: nothing answers there ({exc.strerror or exc})") from None
        path = self.token_file or TOKEN_PATH
        try:
            token, source = path.read_text().strip(), str(path)
        except OSError as exc:
            if self.token_file is not None:
                raise PluginError(f"--plugin-token-file {path}: cannot read it ({exc.strerror})") from None
            token, source = "", f"none ({path} cannot be read): the calls carry `Bearer ` and no token"
        self.say(f"Plugin at {url}: already running, used as it is")
        self.say(f"  token: {source}")
        self.endpoints.append(PluginEndpoint(url.rstrip("/"), token, name=url))

    def _tell(self, *, url: str, token: str, log: Path, notes: Sequence[str]) -> None:
        self.say(f"  listening on: {url}")
        self.say(f"  token file: {token}")
        self.say(f"  log: {log} (removed after a run that Succeeded)")
        for note in notes:
            self.say(f"  {note}")


def _kind(value: str) -> str:
    """What a `--plugin` value names: url, bundle, container (folder, plugin.yaml, ConfigMap), installed."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        return "url"
    path = Path(value)
    if path.is_dir():
        if (path / "plugin.yaml").is_file():
            return "container"
        if (path / "argoplug.yaml").is_file():
            return "bundle"
        if os.sep in value or "/" in value:
            raise PluginError(f"--plugin {value}: the folder holds neither plugin.yaml nor argoplug.yaml")
        return "installed"
    if path.is_file():
        documents = _yaml_documents(path)
        first = documents[0] if documents else {}
        if first.get("kind") in ("ExecutorPlugin", "ConfigMap"):
            return "container"
        if "plugins" in first and "kind" not in first:
            return "bundle"
        raise PluginError(
            f"--plugin {value}: not an argoplug bundle (a mapping with `plugins`), an Argo plugin.yaml "
            "(kind ExecutorPlugin) nor a built ConfigMap (kind ConfigMap)"
        )
    if "/" in value or os.sep in value or value.endswith((".yaml", ".yml")):
        raise PluginError(f"--plugin {value}: no such file or folder")
    return "installed"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "plugin"
