"""The `argoplug run` command: a Workflow run locally, its plugins served by a real sidecar subprocess.

`cli.py` registers `run`. It loads and checks the files (`workflow`, `checks.check`), starts
`argoplug serve` as Argo starts a plugin sidecar (token file, loopback port, health check), optionally
inside an AWS sandbox, runs the workflow through the engine and the agent client, and prints the report.
Heavy imports happen inside `run`, so that importing the CLI stays fast.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from argoplug.agent.engine import Engine, WorkflowStatus
    from argoplug.agent.workflow import Workflow

__all__ = ["SidecarError", "run", "sidecar"]

HEALTH_TIMEOUT = 15.0  # CONTRACT §3.7: the agent's patience with a sidecar that is not listening yet
STOP_TIMEOUT = 5.0
EXIT_SUCCEEDED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class SidecarError(Exception):
    """The plugin server did not start or did not answer `GET /healthz` in time; says why, with its log."""


def run(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Workflow and WorkflowTemplate YAML (multi-document allowed)."),
    ],
    parameter: Annotated[
        list[str] | None,
        typer.Option("--parameter", "-p", metavar="NAME=VALUE", help="Set a workflow parameter, as argo -p."),
    ] = None,
    aws_sandbox: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Run the AWS sandbox (moto) FILE describes; the sidecar uses it."),
    ] = None,
    aws_endpoint: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="Give the sidecar AWS_ENDPOINT_URL=URL (an AWS-compatible endpoint)."
        ),
    ] = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--plugin",
            "-P",
            metavar="NAME",
            help="Plugin to serve: an installed name or module:attr. Default: all.",
        ),
    ] = None,
) -> None:
    """Run a Workflow locally, as Argo's agent would, against a plugin server started as its sidecar.

    Exit code: 0 when the workflow Succeeded, 1 when it Failed or Errored, 2 for bad input or usage.
    """
    from rich.console import Console

    # soft_wrap: report lines are never folded at the terminal's (or CI's default 80) width.
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        _run(files, parameter or (), aws_sandbox, aws_endpoint, plugin or (), console, errors)
    except KeyboardInterrupt:
        errors.print("argoplug run: interrupted", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _run(
    files: Sequence[Path],
    parameter: Sequence[str],
    aws_sandbox: Path | None,
    aws_endpoint: str | None,
    plugin: Sequence[str],
    console: Console,
    errors: Console,
) -> None:
    from argoplug.agent.checks import check
    from argoplug.agent.workflow import WorkflowError, load_documents, parse_parameters, resolve_workflow

    try:
        overrides = parse_parameters(parameter)
        workflow = resolve_workflow(load_documents(files), parameters=overrides)
        check(workflow)
    except WorkflowError as exc:
        errors.print(f"argoplug run: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    env = dict(os.environ)
    if aws_endpoint:
        env["AWS_ENDPOINT_URL"] = aws_endpoint
    with contextlib.ExitStack() as stack:
        if aws_sandbox is not None:
            # The sandbox's endpoint and credentials must win over a user's AWS_PROFILE, session token or
            # web identity, which a dict update cannot unset.
            env = {name: value for name, value in env.items() if not name.startswith("AWS_")}
            env.update(_enter_sandbox(stack, aws_sandbox, console, errors))
        workdir = Path(tempfile.mkdtemp(prefix="argoplug-run-"))
        log_file = workdir / "sidecar.log"
        try:
            endpoint = stack.enter_context(sidecar(workdir, plugins=plugin, env=env))
        except SidecarError as exc:
            errors.print(f"argoplug run: {exc}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        status = _run_workflow(workflow, endpoint, console)
    if status is None:
        console.print(f"\nInterrupted. The plugin server's log: {log_file}", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    if status.phase == "Succeeded":
        shutil.rmtree(workdir, ignore_errors=True)
        raise typer.Exit(EXIT_SUCCEEDED)
    console.print(f"\nThe plugin server's log: {log_file}", markup=False)
    raise typer.Exit(EXIT_FAILED)


def _enter_sandbox(
    stack: contextlib.ExitStack, path: Path, console: Console, errors: Console
) -> dict[str, str]:
    """Start the AWS sandbox described by `path` for the run; return the environment the sidecar needs."""
    try:
        from argoplug.sandbox import AwsSandbox, SandboxError
    except ImportError as exc:
        errors.print(
            f"argoplug run: --aws-sandbox needs the sandbox extra ({exc}): pip install 'argoplug[sandbox]'",
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE) from None
    try:
        sandbox = stack.enter_context(AwsSandbox.from_file(path))
    except SandboxError as exc:
        errors.print(f"argoplug run: {path}: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    console.print(sandbox.describe(), markup=False)
    return dict(sandbox.env)


def _run_workflow(workflow: Workflow, endpoint: tuple[str, str], console: Console) -> WorkflowStatus | None:
    """Run `workflow` against the sidecar, showing progress; print the report. None when interrupted."""
    import asyncio

    from argoplug.agent.client import AgentClient, PluginEndpoint
    from argoplug.agent.engine import Engine
    from argoplug.agent.report import Progress, render_report

    progress = Progress(console)
    url, token = endpoint

    async def main(engine_slot: list[Engine]) -> WorkflowStatus:
        async with AgentClient([PluginEndpoint(url, token, name="sidecar")]) as client:
            engine = Engine(workflow, client, on_change=progress.on_change)
            engine_slot.append(engine)
            with progress.showing(engine.status):
                return await engine.run()

    slot: list[Engine] = []
    try:
        status = asyncio.run(main(slot))
    except KeyboardInterrupt:
        if slot:
            console.print(render_report(slot[0].status))
        return None
    console.print(render_report(status))
    return status


@contextlib.contextmanager
def sidecar(
    workdir: Path,
    *,
    plugins: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    health_timeout: float = HEALTH_TIMEOUT,
) -> Iterator[tuple[str, str]]:
    """Start `argoplug serve` as Argo starts a plugin sidecar and yield its `(url, token)`.

    A fresh random token goes to `workdir/token` (mode 0440, no trailing newline); the server listens on
    a free loopback port, logs JSON to `workdir/sidecar.log`, and must answer `GET /healthz` with 200
    within `health_timeout` seconds. On exit: SIGTERM, a wait, then SIGKILL; the token file is removed.
    Raises SidecarError (with the end of the log) when the server exits or does not answer in time.
    """
    import httpx

    token = secrets.token_urlsafe(32)
    token_file = workdir / "token"
    token_file.write_text(token)
    token_file.chmod(0o440)
    port = _free_port()
    command = [sys.executable, "-m", "argoplug", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--token-file", str(token_file), "--log-format", "json"]
    for name in plugins:
        command += ["--plugin", name]
    log_path = workdir / "sidecar.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=dict(env or os.environ)
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + health_timeout
        with httpx.Client(timeout=1.0) as http:
            while True:
                if process.poll() is not None:
                    raise SidecarError(
                        f"the plugin server exited with code {process.returncode} before answering:\n"
                        + _tail(log_path)
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{url}/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SidecarError(
                        f"the plugin server did not answer GET {url}/healthz within {health_timeout:g}s:\n"
                        + _tail(log_path)
                    )
                time.sleep(0.05)
        yield url, token
    finally:
        _stop(process)
        token_file.unlink(missing_ok=True)


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"  {line}" for line in tail) if tail else "  (the log is empty)"
