"""The `argoplug` commands typer parses: run, check, call, plugins, init, build; `serve` is passed through.

`argoplug.cli.main` imports this module for every command but `serve` (`argoplug.cli.serve`, argparse).
Heavy imports live inside each command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from argoplug.agent.command import run as run_command
from argoplug.protocol import DEFAULT_PORT, DEFAULT_TOKEN_FILE

app = typer.Typer(
    name="argoplug",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Argo Workflows executor plugins: serve them as a sidecar, run workflows locally, call a plugin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("run")(run_command)


def _print_version(value: bool) -> None:
    if value:
        from argoplug import __version__
        from argoplug.agent.schema import ARGO_SCHEMA

        typer.echo(f"argoplug {__version__}; workflows validated against the schema of {ARGO_SCHEMA}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and the Argo schema's.",
        ),
    ] = False,
) -> None:
    """Argo Workflows executor plugins: serve them as a sidecar, run workflows locally, call a plugin."""


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
)
def serve(ctx: typer.Context) -> None:
    """Serve executor plugins as an Argo agent's sidecar (options: argoplug serve --help)."""
    from argoplug.cli.serve import serve as serve_command

    raise typer.Exit(serve_command(ctx.args))


@app.command()
def plugins(
    schema: Annotated[
        bool,
        typer.Option(
            "--schema", help="Print the JSON schema of each plugin's arguments, by plugin key, as JSON."
        ),
    ] = False,
) -> None:
    """List the installed plugins: name, plugin keys, package and version, description."""
    import re

    from rich.console import Console
    from rich.table import Table

    from argoplug.registry import describe_installed

    if schema:
        import json

        installed = describe_installed()
        schemas = {p.key: p.argument_schema() for entry in installed for p in entry.plugins}
        typer.echo(json.dumps(schemas, indent=2, ensure_ascii=False))
        for entry in installed:
            if entry.error:
                typer.echo(f"argoplug plugins: {entry.name} cannot load: {entry.error}", err=True)
        raise typer.Exit(1 if any(entry.error for entry in installed) else 0)
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "PLUGIN KEYS", "PACKAGE", "DESCRIPTION"):
        table.add_column(column, overflow="fold")
    broken = False
    for entry in describe_installed():
        if entry.error:
            broken = True
            table.add_row(
                entry.name, "-", f"{entry.package} {entry.version}", f"[red]cannot load: {entry.error}[/]"
            )
            continue
        keys = ", ".join(p.key for p in entry.plugins)
        first = next((p.description for p in entry.plugins if p.description), "")
        table.add_row(entry.name, keys, f"{entry.package} {entry.version}", re.split(r"[.:]\s", first)[0])
    Console().print(table)
    if broken:
        raise typer.Exit(1)


@app.command()
def build(
    bundle_file: Annotated[
        Path, typer.Argument(help="The bundle file (see README: the argoplug.yaml reference).")
    ] = Path("argoplug.yaml"),
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The folder to write into (created if need be).")
    ] = Path("build"),
    argo: Annotated[
        Path | None,
        typer.Option(
            "--argo",
            metavar="DIR",
            help="Build a plain Argo plugin folder (plugin.yaml + server.*) into DIR, as "
            "`argo executor-plugin build DIR` does.",
        ),
    ] = None,
    no_wheels: Annotated[
        bool,
        typer.Option(
            "--no-wheels",
            help="Do not build the wheels the image installs (argoplug's, the plugin packages' and their "
            "dependencies', with pip wheel) into DIR/wheels/: put them there yourself.",
        ),
    ] = False,
) -> None:
    """Write the ConfigMap, RBAC, IAM policies, Dockerfile, kustomization and wheels of a plugin bundle."""

    def warn(text: str) -> None:
        typer.echo(f"argoplug build: warning: {text}", err=True)

    def say(text: str) -> None:
        typer.echo(f"argoplug build: {text}", err=True)

    if argo is not None:
        from argoplug.build.argo import ArgoBuildError, build_folder

        try:
            written = build_folder(argo, warn=warn)
        except ArgoBuildError as exc:
            typer.echo(f"argoplug build: {exc}", err=True)
            raise typer.Exit(1) from None
    else:
        from argoplug.build.bundle import BundleError
        from argoplug.build.wheels import WheelBuildError
        from argoplug.build.writer import build_bundle

        try:
            written = build_bundle(bundle_file, output, warn=warn, wheels=not no_wheels, say=say)
        except WheelBuildError as exc:
            typer.echo(f"argoplug build: {exc}", err=True)
            raise typer.Exit(1) from None
        except BundleError as exc:
            typer.echo(f"argoplug build: {exc}", err=True)
            raise typer.Exit(2) from None
    for path in written:
        typer.echo(f"{path} created")


@app.command()
def check(
    target: Annotated[
        str,
        typer.Argument(
            metavar="URL-OR-PLUGIN",
            help="A running server's URL, an installed plugin name or module:attr, an Argo plugin folder, "
            "plugin.yaml or built ConfigMap YAML, or an argoplug bundle.",
        ),
    ],
    plugin_key: Annotated[
        str | None,
        typer.Option(
            "--plugin-key",
            "-k",
            help="The plugin key to check (default: the plugin's name, or the keys GET /healthz lists).",
        ),
    ] = None,
    token: Annotated[str | None, typer.Option(help="The server's token (URL targets only).")] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="URL: the file holding its token (default /var/run/argo/token when readable); plugin "
            "folder/ConfigMap: where to write it."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Send the same requests as an earlier run.")] = None,
    args: Annotated[
        str | None,
        typer.Option(
            "--args",
            metavar="YAML",
            help="The plugin block's arguments for calls of its own key (default {}); the handler runs "
            "with them for real, about 25 times, 16 of them at once.",
        ),
    ] = None,
) -> None:
    """Check an executor plugin server against the contract: PASS/FAIL/WARN per rule, each with its section
    of docs/contract.md.

    Exit 1 on any FAIL, 2 for bad usage.
    """
    from rich.console import Console

    from argoplug.conformance.command import check_command

    status = check_command(
        target,
        plugin_key=plugin_key,
        token=token,
        token_file=token_file,
        seed=seed,
        plugin_args=args,
        # No emoji or markup from what servers answer: `:fire:` in a message stays as sent.
        console=Console(highlight=False, emoji=False),
        errors=Console(stderr=True, highlight=False, emoji=False),
    )
    raise typer.Exit(status)


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="The plugin's name: plugin key, package, entry point.")],
    directory: Annotated[
        Path | None, typer.Option("--directory", "-d", help="Where to write it (default: ./NAME).")
    ] = None,
) -> None:
    """Create a new plugin package whose own tests pass straight away."""
    from argoplug.scaffold import ScaffoldError, init_plugin

    try:
        written = init_plugin(name, directory)
    except ScaffoldError as exc:
        typer.echo(f"argoplug init: {exc}", err=True)
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(f"{path} created")


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
    """Send one template.execute request to a plugin server and print its status and reply.

    Exit code: 0 for a 200 reply whose node did not fail (`{}`, Pending, Running, Succeeded); 1 for another
    status, no answer, or a Failed/Error node; 2 for a request file that cannot be read.
    """
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
        reply = response.json()
        console.print_json(json.dumps(reply))
    except ValueError:
        reply = None
        console.print(repr(response.text))
    if response.status_code != 200:
        raise typer.Exit(1)
    node = reply.get("node") if isinstance(reply, dict) else None
    if isinstance(node, dict) and node.get("phase") in ("Failed", "Error"):
        raise typer.Exit(1)  # the node failed: as `argo` would, a script should see it


eks_app = typer.Typer(
    help="EKS clusters that the eks-pod plugin runs pods on.", no_args_is_help=True, add_completion=False
)
app.add_typer(eks_app, name="eks")


@eks_app.command("check")
def eks_check(
    cluster: Annotated[str, typer.Option("--cluster", help="The EKS cluster's name.")],
    namespace: Annotated[str, typer.Option(help="The namespace the pods run in.")] = "default",
    role_arn: Annotated[
        str | None, typer.Option("--role-arn", help="The IAM role the plugin blocks assume (role_arn).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="The cluster's region (default: AWS_REGION / AWS_DEFAULT_REGION).")
    ] = None,
) -> None:
    """Check each link from this machine's AWS identity to pods in a namespace of an EKS cluster: credentials,
    AssumeRole, DescribeCluster, the EKS token, its mapping (access entry) and RBAC for create, get, list,
    watch, delete pods and get pods/log. PASS/FAIL/SKIP per link; exit 1 on any FAIL, 2 for bad usage.
    """
    import os

    from rich.console import Console
    from rich.markup import escape

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        typer.echo("argoplug eks check: give --region (or set AWS_REGION)", err=True)
        raise typer.Exit(2)
    try:
        from argoplug.plugins.eks_pod.check import check_links
    except ImportError as exc:  # pragma: no cover - the aws and kube extras
        typer.echo(f"argoplug eks check: needs boto3 and lightkube: pip install 'argoplug[aws,kube]' ({exc})")
        raise typer.Exit(2) from None
    console = Console(highlight=False, emoji=False)
    links = check_links(cluster, namespace=namespace, region=region, role_arn=role_arn)
    colours = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}
    for link in links:
        detail = f": {escape(link.detail)}" if link.detail else ""
        console.print(f"[{colours[link.status]}]{link.status}[/] {escape(link.name)}{detail}")
    raise typer.Exit(1 if any(link.status == "FAIL" for link in links) else 0)


@app.command("deploy")
def deploy_command(
    bundle: Annotated[Path, typer.Argument(help="The bundle (argoplug.yaml).")] = Path("argoplug.yaml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the changes; write nothing.")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete what the bundle owns but no longer declares.")
    ] = False,
    kubeconfig: Annotated[Path | None, typer.Option(help="The kubeconfig (default $KUBECONFIG).")] = None,
    context: Annotated[str | None, typer.Option(help="The kubeconfig context (default: current).")] = None,
) -> None:
    """Apply what `argoplug build` writes for the bundle to the cluster, per namespace, with server-side
    apply; a failing namespace is rolled back and the others go on. Exit 1 when a namespace failed, 2 for
    a bad bundle."""
    from argoplug.deploy.command import run_deploy

    raise typer.Exit(run_deploy(bundle, dry_run=dry_run, prune=prune, kubeconfig=kubeconfig, context=context))


@app.command("destroy")
def destroy_command(
    bundle: Annotated[Path, typer.Argument(help="The bundle (argoplug.yaml).")] = Path("argoplug.yaml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would go; delete nothing.")] = False,
    kubeconfig: Annotated[Path | None, typer.Option(help="The kubeconfig (default $KUBECONFIG).")] = None,
    context: Annotated[str | None, typer.Option(help="The kubeconfig context (default: current).")] = None,
) -> None:
    """Delete everything the bundle owns (labelled argoplug.dev/bundle), after its destroy hooks."""
    from argoplug.deploy.command import run_deploy

    raise typer.Exit(
        run_deploy(bundle, destroying=True, dry_run=dry_run, kubeconfig=kubeconfig, context=context)
    )
