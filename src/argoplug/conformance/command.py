"""`argoplug check TARGET`: `check_command` (registered by `argoplug.cli.commands`) resolves the target to a
running server or one it starts (a `Launcher`), runs `argoplug.conformance.driver`'s checks and prints the
report.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from argoplug.conformance.driver import (
    DEFAULT_LIMITS,
    Launched,
    Launcher,
    LaunchError,
    check_launched,
    run_checks,
)
from argoplug.conformance.rules import Limits, Verdict, judge_token_user
from argoplug.protocol import DEFAULT_TOKEN_FILE

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["check_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def check_command(
    target: str,
    *,
    plugin_key: str | None = None,
    token: str | None = None,
    token_file: Path | None = None,
    seed: int | None = None,
    plugin_args: str | None = None,
    console: Console,
    errors: Console | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> int:
    """Run `argoplug check TARGET`: check a plugin server, print a verdict per rule; return the exit status.

    TARGET: a URL of a running server (`http://127.0.0.1:4355`; `token` or `token_file` is its token,
    else /var/run/argo/token when readable, else the own-key rules are SKIPs); an installed argoplug
    plugin name or `module:attr` (started with `argoplug serve` and a fresh token); an Argo plugin folder,
    `plugin.yaml`, built ConfigMap YAML or argoplug bundle (started as `argoplug run` starts it, by
    `argoplug.agent.plugins`; a container's token file at `token_file`, default /var/run/argo/token);
    for these, the `token-user` rule judges first whether the sidecar's user reads the token in Argo's
    agent pod, and a FAIL there starts nothing.
    The plugin key: `plugin_key`, else the plugin's name from plugin.yaml / the ConfigMap, else the keys
    the server lists at `GET /healthz` (argoplug servers), each checked in turn. `plugin_args`: YAML or
    JSON text, the plugin block's value in calls of its own key (default `{}`): the plugin's handler
    runs for real with them, some 25 times (16 of them at once). `seed` repeats a run's requests (one is
    drawn and printed when None). The report goes to `console`, usage errors to `errors` (default
    `console`). Returns 0 when no rule FAILs, 1 when one does, 2 for bad usage (the message names the
    option or the target).
    """
    errors = errors or console
    try:
        args = _parse_args(plugin_args)
        plan = _plan(target, plugin_key=plugin_key, token=token, token_file=token_file, limits=limits)
    except _UsageError as exc:
        errors.print(f"argoplug check: {exc}", markup=False, highlight=False)
        return EXIT_USAGE
    seed = random.randrange(1_000_000) if seed is None else seed
    for note in plan.notes:
        console.print(note, markup=False, highlight=False)
    if any(verdict.status == "FAIL" for verdict in plan.checks):
        results: Mapping[str, Sequence[Verdict]] = {", ".join(plan.keys) or target: plan.checks}
    elif plan.launcher is None:
        others = {key: [k for k in plan.served if k != key] for key in plan.keys}
        results = {
            key: run_checks(
                plan.url,
                plugin_key=key,
                token=plan.token,
                plugin_args=args,
                other_keys=others[key],
                seed=seed,
                limits=limits,
            )
            for key in plan.keys
        }
    else:
        try:
            launched, results = check_launched(
                plan.launcher, plugin_keys=plan.keys, plugin_args=args, seed=seed, limits=limits
            )
        except ValueError as exc:
            errors.print(f"argoplug check: {target}: {exc} (--plugin-key KEY)", markup=False, highlight=False)
            return EXIT_USAGE
        if launched is not None and launched.description:
            console.print(launched.description, markup=False, highlight=False)
        results = {key: [*plan.checks, *found] for key, found in results.items()}
    _print_report(console, results, seed)
    return EXIT_FAILED if any(v.status == "FAIL" for found in results.values() for v in found) else EXIT_OK


class _UsageError(Exception):
    """Bad usage of `argoplug check`: the message names the target or option."""


@dataclasses.dataclass
class _Plan:
    """What `check_command` will check: a running server (`url`, `token`) or one to start (`launcher`)."""

    keys: list[str]
    notes: list[str]
    served: tuple[str, ...] = ()  # every key the server lists, when it does
    url: str = ""
    token: str | None = None
    launcher: Launcher | None = None
    checks: list[Verdict] = dataclasses.field(default_factory=list)  # judged before anything starts


def _parse_args(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _UsageError(f"--args is not valid YAML or JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _UsageError(f"--args must be a mapping (the plugin block's arguments), got {text!r}")
    return value


def _plan(
    target: str, *, plugin_key: str | None, token: str | None, token_file: Path | None, limits: Limits
) -> _Plan:
    if "://" in target:
        return _url_plan(target, plugin_key, token, token_file)
    if token is not None:
        raise _UsageError(f"--token is for a URL target: {target} is started here, with a fresh token")
    path = Path(target)
    if path.exists():
        return _manifest_plan(path, target, plugin_key, token_file, limits)
    if "/" in target or os.sep in target or target.endswith((".yaml", ".yml")):
        raise _UsageError(f"{target}: no such file or folder")
    if token_file is not None:
        raise _UsageError(
            f"--token-file is not for {target}: argoplug serve is started with a fresh token file"
        )
    if ":" not in target and "." not in target:
        from argoplug.registry import installed

        names = installed()
        if target not in names:
            known = ", ".join(sorted(names)) or "none"
            raise _UsageError(
                f"{target!r} is not a URL, a file or folder, nor an installed argoplug plugin "
                f"(installed: {known})"
            )
    notes = [f"Checking argoplug plugin {target}, started with argoplug serve."]
    return _Plan([plugin_key] if plugin_key else [], notes, launcher=_argoplug_launcher(target, limits))


def _url_plan(url: str, plugin_key: str | None, token: str | None, token_file: Path | None) -> _Plan:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _UsageError(f"{url}: expected a URL like http://127.0.0.1:4355")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _UsageError(f"{url}: the port is not a number from 1 to 65535") from None
    try:
        socket.create_connection((parts.hostname, port), timeout=2.0).close()
    except OSError as exc:
        raise _UsageError(f"{url}: nothing answers there ({exc.strerror or exc})") from None
    notes = [f"Checking the plugin server at {url}."]
    if token is None:
        path = token_file or Path(DEFAULT_TOKEN_FILE)
        try:
            token = path.read_text().strip()
            notes.append(f"Token: read from {path}.")
        except OSError as exc:
            if token_file is not None:
                raise _UsageError(f"--token-file {token_file}: cannot read it ({exc.strerror})") from None
            notes.append(
                f"No token given (--token, --token-file) and {path} cannot be read: the own-key rules "
                "are skipped."
            )
    served = _served_keys(url)
    keys = [plugin_key] if plugin_key else list(served)
    if not keys:
        raise _UsageError(
            f"{url} does not list its plugin keys (GET /healthz, as argoplug servers do): "
            "give --plugin-key KEY"
        )
    if not plugin_key:
        notes.append(f"Plugin keys from GET {url.rstrip('/')}/healthz: {', '.join(keys)}.")
    return _Plan(keys, notes, served, url=url.rstrip("/"), token=token)


def _manifest_plan(
    path: Path, target: str, plugin_key: str | None, token_file: Path | None, limits: Limits
) -> _Plan:
    """A plan for an Argo plugin folder, plugin.yaml or ConfigMap (`container`), or an argoplug bundle."""
    from argoplug.agent.plugins import PluginError, load_container, workflow_plugin_container

    kind = _manifest_kind(path)
    if kind == "bundle":
        if token_file is not None:
            raise _UsageError(f"--token-file is not for {target}: a bundle is served with a fresh token file")
        notes = [f"Checking the argoplug bundle {target}, started as argoplug run starts it."]
        return _Plan(
            [plugin_key] if plugin_key else [],
            notes,
            launcher=_sidecars_launcher(target, None, limits),
            checks=_bundle_checks(path),
        )
    own: list[dict[str, Any]] = []
    used: list[str] = []
    try:
        if kind == "workflow":
            own, used = _workflow_plugins(path)
            container = workflow_plugin_container(own[0], path)
        else:
            container = load_container(path)
    except PluginError as exc:
        raise _UsageError(str(exc)) from None
    if shutil.which(container.argv[0]) is None:
        raise _UsageError(
            f"{target}: the sidecar's command {container.argv[0]!r} is not found here (it was meant for "
            f"image {container.image or '(none)'}): run the image yourself and check "
            f"http://localhost:{container.port}"
        )
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", container.port)) == 0:
            raise _UsageError(
                f"{target}: port {container.port}, where the plugin listens, is already in use here"
            )
    _check_token_path(token_file or Path(DEFAULT_TOKEN_FILE), target)
    keys = [plugin_key] if plugin_key else used or [container.plugin]
    notes = [f"Checking the Argo plugin {container.plugin} ({target}), its sidecar command started here."]
    if len(own) > 1:
        others = ", ".join(str((p.get("metadata") or {}).get("name")) for p in own[1:])
        notes.append(f"The workflow's first executor plugin; not checked: {others} (one server at a time).")
    if not plugin_key and used:
        notes.append(f"Plugin keys: {', '.join(map(repr, used))}, those the workflow's plugin templates use.")
    elif not plugin_key:
        notes.append(f"Plugin key: {keys[0]!r}, the plugin's name.")
    checks = [judge_token_user(container.security_context)]
    launcher = _sidecars_launcher(target, token_file, limits, workflow_plugins=own[:1], origin=path)
    return _Plan(keys, notes, launcher=launcher, checks=checks)


def _workflow_plugins(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The `spec.executorPlugins` of the Workflow in `path` (Argo v4.1), checked as Argo's validation does,
    and the plugin keys its templates use."""
    import yaml

    from argoplug.agent.checks import executor_plugins_problem

    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    spec = next((d.get("spec") or {} for d in documents if d.get("kind") == "Workflow"), {})
    plugins = [p for p in spec.get("executorPlugins") or [] if isinstance(p, dict)]
    if not plugins:
        raise _UsageError(f"{path}: the Workflow has no spec.executorPlugins: nothing to check")
    problem = executor_plugins_problem(spec)
    if problem:
        raise _UsageError(f"{path}: {problem}")
    used = [
        str(key)
        for template in spec.get("templates") or []
        if isinstance(template, dict) and isinstance(template.get("plugin"), dict)
        for key in template["plugin"]
    ]
    return plugins, list(dict.fromkeys(used))


def _bundle_checks(path: Path) -> list[Verdict]:
    """The bundle's token-user verdict; none when it does not load (starting it then says why)."""
    from argoplug.build.bundle import BundleError, load_bundle

    try:
        bundle = load_bundle(path / "argoplug.yaml" if path.is_dir() else path)
    except BundleError:
        return []
    return [judge_token_user(bundle.security_context)]


def _manifest_kind(path: Path) -> str:
    """'container' (Argo plugin folder, plugin.yaml, ConfigMap) or 'bundle'; raises _UsageError otherwise."""
    if path.is_dir():
        if (path / "plugin.yaml").is_file():
            return "container"
        if (path / "argoplug.yaml").is_file():
            return "bundle"
        raise _UsageError(f"{path}: the folder holds neither plugin.yaml nor argoplug.yaml")
    import yaml

    try:
        first = next((d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None), None)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _UsageError(f"cannot read {path}: {exc}") from None
    if isinstance(first, dict) and first.get("kind") in ("ExecutorPlugin", "ConfigMap"):
        return "container"
    if isinstance(first, dict) and first.get("kind") == "Workflow":
        return "workflow"
    if isinstance(first, dict) and "plugins" in first and "kind" not in first:
        return "bundle"
    raise _UsageError(
        f"{path}: not an Argo plugin.yaml (kind ExecutorPlugin), a built ConfigMap (kind ConfigMap), a "
        "Workflow with spec.executorPlugins nor an argoplug bundle (a mapping with `plugins`)"
    )


def _check_token_path(path: Path, target: str) -> None:
    """Raise _UsageError when the token file is missing and cannot be created (e.g. /var/run as non-root)."""
    if path.is_file():
        return
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK):
        raise _UsageError(
            f"{target}: the plugin reads its token from {path}, which does not exist and cannot be "
            f"created here ({parent} is not writable): run as a user who may create it, or give "
            "--token-file PATH for a plugin that reads it there"
        )


def _served_keys(url: str) -> tuple[str, ...]:
    """The plugin keys an argoplug server lists at `GET /healthz`; () for a server that does not."""
    try:
        listed = httpx.get(f"{url.rstrip('/')}/healthz", timeout=5.0).json().get("plugins")
    except (httpx.HTTPError, ValueError, AttributeError):
        return ()
    return tuple(str(key) for key in listed) if isinstance(listed, list) else ()


def _argoplug_launcher(plugin: str, limits: Limits) -> Launcher:
    """Start `argoplug serve --plugin PLUGIN` (`argoplug.sidecar.Sidecar`) with a fresh token file."""

    def launch() -> Launched:
        from argoplug.sidecar import Sidecar, SidecarError

        sidecar = Sidecar([plugin], health_timeout=limits.start_fail)
        try:
            sidecar.start()
        except SidecarError as exc:
            sidecar.close()
            raise LaunchError(str(exc)) from None
        said = f"Started: argoplug serve --plugin {plugin} on {sidecar.url}, token file {sidecar.token_file}."
        return Launched(sidecar.url, sidecar.token, sidecar.close, _served_keys(sidecar.url), said)

    return launch


def _sidecars_launcher(
    target: str,
    token_file: Path | None,
    limits: Limits,
    *,
    workflow_plugins: Sequence[Mapping[str, Any]] = (),
    origin: Path = Path("workflow"),
) -> Launcher:
    """Start what `argoplug run --plugin TARGET` starts (`argoplug.agent.plugins.PluginSidecars`), or a
    workflow's own executor plugins (`workflow_plugins`, from `origin`)."""

    def launch() -> Launched:
        from argoplug.agent.plugins import PluginError, PluginSidecars

        workdir = Path(tempfile.mkdtemp(prefix="argoplug-check-"))
        said: list[str] = []
        sidecars = PluginSidecars(
            [target],
            workdir=workdir,
            token_file=token_file,
            say=said.append,
            wait_timeout=limits.start_fail,
            workflow_plugins=workflow_plugins,
            workflow_origin=origin,
        )

        def stop() -> None:
            sidecars.close()
            shutil.rmtree(workdir, ignore_errors=True)

        try:
            endpoint = sidecars.start()[0]
        except PluginError as exc:
            stop()
            raise LaunchError(str(exc)) from None
        return Launched(
            endpoint.url, endpoint.token or None, stop, _served_keys(endpoint.url), "\n".join(said)
        )

    return launch


_STYLE = {"PASS": "green", "FAIL": "bold red", "WARN": "yellow", "SKIP": "dim"}


def _print_report(console: Console, results: Mapping[str, Sequence[Verdict]], seed: int) -> None:
    """Print each verdict as `STATUS rule: saw`, beneath it the contract's clause and the link to its section
    of docs/contract.md; then the totals."""
    from rich.text import Text

    counts = dict.fromkeys(_STYLE, 0)
    for key, verdicts in results.items():
        console.print(Text(f"\nPlugin key {key!r}:" if key else "\nThe server:", style="bold"))
        for verdict in verdicts:
            counts[verdict.status] += 1
            line = Text(f"{verdict.status:<4} ", style=_STYLE[verdict.status])
            line.append(f"{verdict.rule}: ", style="bold")
            line.append(verdict.saw)
            console.print(line)
            clause = verdict.contract
            console.print(Text(f"     contract {clause} ({clause.link})", style="dim"))
    totals = f"{counts['PASS']} passed, {counts['WARN']} warnings, {counts['FAIL']} failed"
    if counts["SKIP"]:
        totals += f", {counts['SKIP']} skipped"
    console.print(Text(f"\n{totals}. Seed {seed}: --seed {seed} sends the same requests again."))
