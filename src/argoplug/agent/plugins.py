"""The `--plugin` values of `argoplug run`, each turned into a running plugin sidecar: `PluginSidecars`.

A value names installed argoplug plugins (served together by one `argoplug serve`), an argoplug bundle, an
Argo plugin folder or `plugin.yaml`, a built ConfigMap (whose container command is started here, on its
declared port, with its token file; `agent/containers.py`), or the URL of a server already running.
`agent/command.py` enters a `PluginSidecars` and hands its `endpoints` to the `AgentClient`.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from argoplug.agent.client import PluginEndpoint
from argoplug.agent.containers import (
    STOP_TIMEOUT,
    PluginError,
    SidecarContainer,
    _Process,
    _TokenFile,
    _yaml_documents,
    load_container,
    pod_user,
    workflow_plugin_container,
)
from argoplug.sidecar import HEALTH_TIMEOUT, Sidecar, SidecarError

__all__ = [
    "STOP_TIMEOUT",
    "TOKEN_PATH",
    "PluginError",
    "PluginSidecars",
    "SidecarContainer",
    "load_container",
]

# Where a sidecar reads its token (docs/contract.md §4.1): the agent's init container writes
# /var/run/argo/<container>/token, mounted read-only at this path (workflow/controller/agent.go).
TOKEN_PATH = Path("/var/run/argo/token")


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

    `workflow_plugins`: a Workflow's own `spec.executorPlugins` (Argo v4.1, from `workflow_origin`). As
    the controller does (`workflow/controller/agent.go`, `getExecutorPlugins`), they replace the others:
    each is started as a plugin folder's sidecar would be, in their order, and `values` are not used.
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
        workflow_plugins: Sequence[Mapping[str, Any]] = (),
        workflow_origin: Path = Path("workflow"),
    ) -> None:
        self.values = list(values)
        self.workflow_plugins = list(workflow_plugins)
        self.workflow_origin = workflow_origin
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
        if self.workflow_plugins:
            ignored = " ".join(f"--plugin {shlex.quote(value)}" for value in self.values)
            self.say(
                f"Executor plugins of the workflow ({self.workflow_origin}, spec.executorPlugins): they "
                "replace the controller's for this workflow, as Argo v4.1 does with "
                "ARGO_WORKFLOW_LEVEL_EXECUTOR_PLUGINS=true" + (f"; not used: {ignored}" if ignored else "")
            )
            for plugin in self.workflow_plugins:
                self._run_container(workflow_plugin_container(plugin, self.workflow_origin))
            return self.endpoints
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
        self.endpoints.append(
            PluginEndpoint(sidecar.url, sidecar.token, name=label, keys=sidecar.plugin_keys)
        )

    def _serve_bundle(self, path: Path) -> None:
        from argoplug.build.bundle import BundleError, load_bundle

        try:
            bundle = load_bundle(path)
        except BundleError as exc:
            raise PluginError(str(exc)) from None
        env: dict[str, str | None] = dict(self.env)
        user, user_note = pod_user(bundle.name, path, bundle.security_context)
        if user is not None:
            user_note += f"; argoplug serve is started as uid {os.getuid()} here"
        notes = [user_note]
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
        user, user_note = pod_user(container.plugin, container.source, container.security_context)
        process = _Process(container, self._environment(container.env), log, user=user, token_file=path)
        self._processes.append(process)
        self.logs.append((container.plugin, log))
        process.start(self.wait_timeout)
        notes.insert(0, f"{user_note}; {process.user_note}" if process.user_note else user_note)
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
        self.say(f"  log: {log} (removed after a run that Succeeded, else kept for 7 days)")
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
