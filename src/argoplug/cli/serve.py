"""`argoplug serve`, parsed with argparse: the executor plugins served as an Argo agent's sidecar.

A sidecar must answer fast after its start and stay small: typer (and the pydantic it brings) would cost
about 50 ms and 8 MiB of every sidecar (bench/README.md), so `argoplug serve` never imports it.
`argoplug.cli.main` calls `serve` directly; `argoplug.cli.commands` passes typer's `serve` through to it.
With `--upstream-auth tokenreview` it is a central server that thin plugins call (`argoplug.kube.tokenreview`,
imported only then).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from argoplug.protocol import DEFAULT_PORT, DEFAULT_TOKEN_FILE

if TYPE_CHECKING:
    from argoplug.kube.tokenreview import TokenReviewer
    from argoplug.server import CallerCheck

__all__ = ["EXIT_CANNOT_LISTEN", "serve"]

_SERVICE_ACCOUNT = "driver-plugin-executor-plugin"  # argoplug.kube.tokenreview.DEFAULT_SERVICE_ACCOUNT

EXIT_CANNOT_LISTEN = 3  # the port is taken (or the host is not this machine's): nothing was started


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="argoplug serve",
        description="Serve executor plugins on POST /api/v1/template.execute, as an Argo agent's sidecar.",
    )
    parser.add_argument(
        "--plugin",
        "-P",
        action="append",
        default=[],
        metavar="NAME",
        help="plugin to serve: an installed name or module:attr (repeatable; default: all installed)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="the sidecar's containerPort (default: %(default)s)"
    )
    parser.add_argument(
        "--token-file",
        default=None,
        help=f"the agent's token, with --upstream-auth agent-token (default: {DEFAULT_TOKEN_FILE})",
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "text", "auto"),
        default="auto",
        help="json lines, text, or auto: text on a terminal (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--handler-deadline",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="answer a handler still running after this Running + requeue (default: %(default)s)",
    )
    upstream = parser.add_argument_group(
        "who may call: the Argo agent (its token file), or, as the central server thin plugins forward to, "
        "their ServiceAccounts (a Kubernetes TokenReview of the bearer token)"
    )
    upstream.add_argument(
        "--upstream-auth",
        choices=("agent-token", "tokenreview"),
        default="agent-token",
        help="agent-token: compare the bearer token with --token-file; tokenreview: accept the projected "
        "token of --allow-service-account in an --allow-namespace, checked by the cluster (the server's "
        "ServiceAccount needs the ClusterRole system:auth-delegator) (default: %(default)s)",
    )
    upstream.add_argument(
        "--allow-service-account",
        default=None,
        metavar="NAME",
        help=f"the ServiceAccount callers must be, with tokenreview (default: {_SERVICE_ACCOUNT})",
    )
    upstream.add_argument(
        "--allow-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="a namespace whose ServiceAccount may call, with tokenreview (repeatable; default: any)",
    )
    upstream.add_argument(
        "--kubeconfig",
        default=None,
        metavar="PATH",
        help="the cluster that reviews tokens, with tokenreview (default: $KUBECONFIG, else the pod's "
        "ServiceAccount, else ~/.kube/config)",
    )
    upstream.add_argument(
        "--context", default=None, metavar="NAME", help="the kubeconfig's context (default: its current one)"
    )
    limits = parser.add_argument_group("limits on what a caller may send (ServerSettings)")
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=4 * 1024 * 1024,
        metavar="BYTES",
        help="a larger request body is answered 413 without being read (default: %(default)s, 4 MiB)",
    )
    limits.add_argument(
        "--max-bytes-in-flight",
        type=int,
        default=None,
        metavar="BYTES",
        help="the bodies of all calls not yet answered: past it a call is answered 503, which the agent "
        "retries (default: --max-body-bytes, 4 MiB)",
    )
    limits.add_argument(
        "--body-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a body not received this long after its head is answered 408 (default: %(default)s)",
    )
    limits.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a request head not complete this long after the connection opened: 408 (default: %(default)s)",
    )
    limits.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="a connection beyond N open ones is answered 503, the agent retries (default: %(default)s)",
    )
    return parser


def serve(argv: Sequence[str]) -> int:
    """Parse `argoplug serve` options from `argv` and serve until SIGTERM; return the exit status.

    The plugins' packages are registered for the server hooks (`argoplug.hookspecs`). With
    `--upstream-auth tokenreview` each call of a served key is checked by a `TokenReviewer` (401 no valid
    token, 403 another account, 503 the review failed) instead of the token file. 2 for bad options (a
    tokenreview option without `--upstream-auth tokenreview`, `--token-file` with it, a kubeconfig that
    cannot be used), an unknown plugin, two plugins claiming one key or a package's bad hook
    implementation (the message says which, on stderr); 1 when a startup hook raised (the server logged
    the package and the error); 3 (EXIT_CANNOT_LISTEN) when the port cannot be bound, one line on stderr,
    before anything starts.
    """
    parser = _serve_parser()
    options = parser.parse_args(list(argv))
    problem = _combination_problem(options)
    if problem:
        parser.error(problem)  # exits 2, with the usage line
    from argoplug.hooks import HookError, plugin_manager
    from argoplug.registry import PluginLoadError, load
    from argoplug.server import ListenError, ServerSettings, configure_logging
    from argoplug.server import serve as run_server

    reviewer: TokenReviewer | None = None
    try:
        configure_logging(options.log_format, options.log_level)
        loaded = load(options.plugin)
        hooks = plugin_manager(loaded.packages)
        settings = ServerSettings(
            token_file=options.token_file or DEFAULT_TOKEN_FILE,
            handler_deadline=options.handler_deadline,
            max_body_bytes=options.max_body_bytes,
            max_bytes_in_flight=options.max_bytes_in_flight or options.max_body_bytes,
            body_timeout=options.body_timeout,
            header_timeout=options.header_timeout,
            max_connections=options.max_connections,
        )
        if options.upstream_auth == "tokenreview":
            reviewer = _reviewer(options)
    except (PluginLoadError, HookError, ValueError) as exc:
        print(f"argoplug serve: {exc}", file=sys.stderr)
        return 2
    check = None if reviewer is None else _tokenreview_check(reviewer)
    try:
        run_server(
            loaded.plugins,
            host=options.host,
            port=options.port,
            settings=settings,
            hooks=hooks,
            caller_check=check,
        )
    except HookError:
        return 1  # a startup hook raised: logged by the server, with the package's name and the traceback
    except ListenError as exc:
        print(f"argoplug serve: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    finally:
        if reviewer is not None:
            reviewer.close()
    return 0


def _combination_problem(options: argparse.Namespace) -> str:
    """What is wrong with the upstream options together, or ""."""
    if options.upstream_auth == "tokenreview":
        if options.token_file is not None:
            return (
                "--token-file is the Argo agent's token, which --upstream-auth tokenreview does not read: "
                "give one of them"
            )
        return ""
    given = [
        flag
        for flag, value in (
            ("--allow-service-account", options.allow_service_account),
            ("--allow-namespace", options.allow_namespace),
            ("--kubeconfig", options.kubeconfig),
            ("--context", options.context),
        )
        if value
    ]
    if given:
        return (
            f"{', '.join(given)}: only with --upstream-auth tokenreview (the token file is checked otherwise)"
        )
    return ""


def _reviewer(options: argparse.Namespace) -> TokenReviewer:
    """The TokenReviewer of the options; ValueError (exit 2) when the cluster cannot be reached as given."""
    import logging

    from argoplug.kube.tokenreview import KubeSetupError, TokenReviewer

    try:
        reviewer = TokenReviewer.from_cluster(
            kubeconfig=options.kubeconfig,
            context=options.context,
            service_account=options.allow_service_account or _SERVICE_ACCOUNT,
            namespaces=options.allow_namespace or None,
        )
    except KubeSetupError as exc:
        raise ValueError(f"--upstream-auth tokenreview: {exc}") from None
    logging.getLogger("argoplug.server").info(
        "callers are checked by TokenReview: %s, as %s (%s)",
        reviewer.expected,
        reviewer.access.identity or "an unnamed identity",
        reviewer.access.source,
    )
    return reviewer


def _tokenreview_check(reviewer: TokenReviewer) -> CallerCheck:
    """The server's caller check for `reviewer`: its blocking review off the event loop."""
    from argoplug.kube.tokenreview import CallerRefused, bearer_token

    async def check(authorization: str | None) -> tuple[int, str] | None:
        try:
            await asyncio.to_thread(reviewer.review, bearer_token(authorization))
        except CallerRefused as refused:
            return refused.status, refused.message
        return None

    return check
