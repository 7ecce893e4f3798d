"""The `argoplug` command line: serve, run, call.

Heavy imports live inside each command so that `argoplug serve` starts in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from argoplug.agent.command import run as run_command
from argoplug.protocol import DEFAULT_PORT, DEFAULT_TOKEN_FILE

app = typer.Typer(
    name="argoplug",
    help="Argo Workflows executor plugins: serve them as a sidecar, run workflows locally, call a plugin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("run")(run_command)


@app.command()
def serve(
    plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--plugin", "-P", help="Plugin to serve: an installed name or module:attr. Default: all."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (the sidecar's containerPort).")
    ] = DEFAULT_PORT,
    token_file: Annotated[
        str, typer.Option(help="File holding the agent's token (CONTRACT §4).")
    ] = DEFAULT_TOKEN_FILE,
    log_format: Annotated[str, typer.Option(help="json, text, or auto (text on a terminal).")] = "auto",
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    handler_deadline: Annotated[
        float, typer.Option(help="Seconds after which a still-running handler is answered Running + requeue.")
    ] = 20.0,
) -> None:
    """Serve executor plugins on POST /api/v1/template.execute, as an Argo agent's sidecar."""
    from argoplug.registry import PluginLoadError, load_plugins
    from argoplug.server import ServerSettings, configure_logging
    from argoplug.server import serve as run_server

    try:
        configure_logging(log_format, log_level)
        plugins = load_plugins(plugin or ())
        settings = ServerSettings(token_file=token_file, handler_deadline=handler_deadline)
    except (PluginLoadError, ValueError) as exc:
        typer.echo(f"argoplug serve: {exc}", err=True)
        raise typer.Exit(2) from None
    run_server(plugins, host=host, port=port, settings=settings)


@app.command()
def call(
    request_file: Annotated[
        Path, typer.Argument(help="The request body (JSON or YAML), as the agent sends it.")
    ],
    url: Annotated[str, typer.Option(help="The plugin server.")] = f"http://127.0.0.1:{DEFAULT_PORT}",
    token: Annotated[str | None, typer.Option(help="The token to send (default: read --token-file).")] = None,
    token_file: Annotated[Path, typer.Option(help="File holding the token.")] = Path(DEFAULT_TOKEN_FILE),
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the reply (the agent waits 30).")
    ] = 30.0,
) -> None:
    """Send one template.execute request to a plugin server and print its status and reply."""
    import json

    import httpx
    import yaml
    from rich.console import Console

    console = Console()
    try:
        body = yaml.safe_load(request_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        typer.echo(f"argoplug call: cannot read {request_file}: {exc}", err=True)
        raise typer.Exit(2) from None
    if not isinstance(body, dict) or "template" not in body:
        typer.echo(
            f"argoplug call: {request_file} is not a template.execute request: "
            "expected an object with `template`",
            err=True,
        )
        raise typer.Exit(2)
    if token is None:
        try:
            token = token_file.read_text().strip()
        except OSError:
            typer.echo(
                f"argoplug call: {token_file} is not readable; sending no Authorization header", err=True
            )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(
            url.rstrip("/") + "/api/v1/template.execute", json=body, headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        typer.echo(f"argoplug call: {url}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    style = "green" if response.status_code == 200 else "red"
    console.print(
        f"[{style}]HTTP {response.status_code}[/] in {response.elapsed.total_seconds() * 1000:.1f} ms"
    )
    try:
        console.print_json(json.dumps(response.json()))
    except ValueError:
        console.print(repr(response.text))
    if response.status_code != 200:
        raise typer.Exit(1)


def main() -> None:
    """Run the CLI."""
    app()
