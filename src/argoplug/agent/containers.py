"""The sidecar container of an Argo plugin folder or built ConfigMap, read and run here: `load_container`.

`SidecarContainer` is the container as Kubernetes would run it (`$(VAR)` expanded); `_Process` starts its
command on its port and `_TokenFile` gives it a token file. `agent/plugins.py` (`PluginSidecars`) and
`conformance/command.py` call them.
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from argoplug.sidecar import write_token_file
from argoplug.token_access import AGENT_GID, AGENT_UID, container_identity, reads_agent_token
from argoplug.yaml_marks import yaml_problem

__all__ = [
    "STOP_TIMEOUT",
    "PluginError",
    "SidecarContainer",
    "load_container",
    "pod_user",
    "workflow_plugin_container",
]

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
    set here (`valueFrom`, `envFrom`); `server_file`: the `server.*` file whose text replaced `args`;
    `security_context`: its `securityContext` (who it runs as, `pod_user`).
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
    security_context: Mapping[str, Any] = dataclasses.field(default_factory=dict)


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


def workflow_plugin_container(plugin: Mapping[str, Any], origin: Path) -> SidecarContainer:
    """The sidecar of one of a Workflow's own `spec.executorPlugins` (Argo v4.1), ready to start here.

    Read as the controller reads it (`WorkflowSpec.AsExecutorPluginSpec`): the ExecutorPlugin's metadata and
    sidecar, the container as a ConfigMap's `sidecar.container` would hold it. Raises PluginError naming
    the workflow file and the field (the workflow's check refuses the mandatory ones first).
    """
    from argoplug.build.argo import ArgoBuildError, configmap_manifest

    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ExecutorPlugin",
        "metadata": dict(plugin.get("metadata") or {}),
        "spec": dict(plugin.get("spec") or {}),
    }
    try:
        configmap = configmap_manifest(manifest)
    except ArgoBuildError as exc:
        raise PluginError(f"{origin}: spec.executorPlugins: {exc}") from None
    return _container(configmap, origin, "")


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise PluginError(f"{path} is not valid YAML: {yaml_problem(exc, path)}") from None
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
    context = container.get("securityContext")
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
        security_context=context if isinstance(context, dict) else {},
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


def pod_user(
    plugin: str, source: Path, security_context: Mapping[str, Any]
) -> tuple[tuple[int, int] | None, str]:
    """Check that the sidecar reads its token as Argo's agent pod would run it; return that user and a note.

    The pod runs it as its `runAsUser`, else 8737, and its `runAsGroup`, else gid 0 here (what the runtime
    gives a uid the image's /etc/passwd does not hold; `token_access`). A process of exactly that
    identity reads a token file made as Argo's init container makes it (`reads_agent_token`). Returns
    ((uid, gid), note), or (None, note) when this process is not root and cannot take another identity.
    Raises PluginError naming the securityContext that would let it read the token, when it cannot: in
    the cluster every call would get 503.
    """
    uid, group = container_identity(security_context)
    gid = AGENT_GID if group is None else group
    shown = f"uid {uid}, gid {gid}"
    if group is None:
        shown += " (no runAsGroup: the image's /etc/passwd decides, gid 0 without an entry; taken here)"
    readable = reads_agent_token(uid, gid)
    if readable is None:
        return None, f"user in the agent pod: {shown}; not reproduced here (only as root)"
    if not readable:
        raise PluginError(
            f"plugin {plugin} ({source}): in Argo's agent pod its sidecar runs as {shown}, which cannot read "
            f"the token file Argo's agent writes (uid {AGENT_UID}, gid {AGENT_GID}, mode 0440 in a 0770 "
            "folder; Argo issue #13015), so every call would get 503; set the container's securityContext "
            f"to runAsUser: {AGENT_UID} (or runAsGroup: {AGENT_GID})"
        )
    return (uid, gid), f"user in the agent pod: {shown}; it reads a token written as Argo writes it"


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
            if os.geteuid() == 0:  # as Argo's init container leaves it: 8737:0, its folder too
                os.chown(self.path, AGENT_UID, AGENT_GID)
                if self.path.parent in self.created_dirs:
                    os.chown(self.path.parent, AGENT_UID, AGENT_GID)
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
            owner = f"uid {AGENT_UID}, gid {AGENT_GID}, " if self.path.stat().st_uid == AGENT_UID else ""
            return f"{self.path} (a fresh token, {owner}mode 0440; removed after the run)"
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

    def __init__(
        self,
        container: SidecarContainer,
        env: Mapping[str, str],
        log_path: Path,
        *,
        user: tuple[int, int] | None = None,
        token_file: Path | None = None,
    ) -> None:
        self.container = container
        self.env = env
        self.log_path = log_path
        self.url = f"http://localhost:{container.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.user = user
        self.token_file = token_file
        self.user_note = ""

    def start(self, timeout: float) -> None:
        """Start the command, as `user` (uid, gid, no other group) when that user can run it here."""
        c = self.container
        executable = shutil.which(c.argv[0], path=self.env.get("PATH"))
        if executable is None:
            raise PluginError(
                f"plugin {c.plugin} ({c.source}): its command {c.argv[0]!r} is not found here (not on PATH), "
                f"it was meant to run in image {c.image or '(none)'}; install it, or run the image yourself "
                f"and pass --plugin http://localhost:{c.port}"
            )
        user = self.user
        if user is not None:
            blocked = [
                f"{what} {path}"
                for test, what, path in (("-x", "run", executable), ("-r", "read", self.token_file))
                if path is not None and not _allowed(user, test, str(path))
            ]
            if blocked:
                self.user_note = (
                    f"started as uid {os.getuid()} here: that user cannot {' or '.join(blocked)} on this "
                    "machine (its folders)"
                )
                user = None
            else:
                self.user_note = "started as that user"
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
                    user=user[0] if user else None,
                    group=user[1] if user else None,
                    extra_groups=[] if user else None,
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
                    f"{c.port} within {timeout:g}s (Argo's agent gives a sidecar about 15 s, "
                    "docs/contract.md §3.7); "
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


def _allowed(user: tuple[int, int], test: str, path: str) -> bool:
    """Whether `test -x`/`test -r` of `path` succeeds for exactly uid, gid `user` (no other group)."""
    program = shutil.which("test") or "/usr/bin/test"
    done = subprocess.run(
        [program, test, path], user=user[0], group=user[1], extra_groups=[], check=False, timeout=10
    )
    return done.returncode == 0


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=0.5):
            return True
    except OSError:
        return False
