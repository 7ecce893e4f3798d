"""The `argoplug run` command: a Workflow run locally, its plugins served by a real sidecar subprocess.

`cli.py` registers `run`. It loads and checks the files (`workflow`, `checks.check`), starts
`argoplug serve` as Argo starts a plugin sidecar (`argoplug.sidecar`), optionally with an AWS sandbox,
runs the workflow through the engine and the agent client, and prints the report. Heavy imports happen
inside `run`, so that importing the CLI stays fast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from argoplug.agent.engine import Engine
    from argoplug.agent.nodes import WorkflowStatus
    from argoplug.agent.workflow import Workflow

__all__ = ["run"]

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
            metavar="URL",
            help="Give the sidecar AWS_ENDPOINT_URL=URL, an AWS-compatible endpoint. Not with --aws-sandbox.",
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
    if aws_sandbox is not None and aws_endpoint:
        errors.print(
            "argoplug run: --aws-endpoint and --aws-sandbox cannot be used together: the sandbox gives the "
            "sidecar its own endpoint (AWS_ENDPOINT_URL); drop one of them",
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE)
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
    from argoplug.sidecar import Sidecar, SidecarError

    try:
        overrides = parse_parameters(parameter)
        workflow = resolve_workflow(load_documents(files), parameters=overrides)
        warnings = check(workflow)
    except WorkflowError as exc:
        errors.print(f"argoplug run: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    for warning in warnings:
        errors.print(f"argoplug run: warning: {workflow.origin}: {warning}", markup=False)
    # Merged over this process's environment by Sidecar; None removes a variable.
    env: dict[str, str | None] = {}
    if aws_endpoint:
        env["AWS_ENDPOINT_URL"] = aws_endpoint
    with contextlib.ExitStack() as stack:
        if aws_sandbox is not None:
            # The sandbox's endpoint and credentials must win over a user's AWS_PROFILE, session token or
            # web identity: every AWS_* variable of ours is removed, then the sandbox's set.
            env.update({name: None for name in os.environ if name.startswith("AWS_")})
            env.update(_enter_sandbox(stack, aws_sandbox, console, errors))
        workdir = Path(tempfile.mkdtemp(prefix="argoplug-run-"))
        sidecar = Sidecar(plugin, env=env, workdir=workdir)
        try:
            stack.enter_context(sidecar)
        except SidecarError as exc:
            errors.print(f"argoplug run: {exc}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        status = _run_workflow(workflow, (sidecar.url, sidecar.token), console)
    if status is None:
        console.print(f"\nInterrupted. The plugin server's log: {sidecar.log_path}", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    if status.phase == "Succeeded":
        shutil.rmtree(workdir, ignore_errors=True)
        raise typer.Exit(EXIT_SUCCEEDED)
    console.print(f"\nThe plugin server's log: {sidecar.log_path}", markup=False)
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
