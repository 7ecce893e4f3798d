"""`argoplug serve`, parsed with argparse: the executor plugins served as an Argo agent's sidecar.

A sidecar must answer fast after its start and stay small: typer (and the pydantic it brings) would cost
about 50 ms and 8 MiB of every sidecar (bench/README.md), so `argoplug serve` never imports it.
`argoplug.cli.main` calls `serve` directly; `argoplug.cli.commands` passes typer's `serve` through to it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from argoplug.protocol import DEFAULT_PORT, DEFAULT_TOKEN_FILE

__all__ = ["EXIT_CANNOT_LISTEN", "serve"]

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
        "--token-file", default=DEFAULT_TOKEN_FILE, help="the agent's token (default: %(default)s)"
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

    The plugins' packages are registered for the server hooks (`argoplug.hookspecs`). 2 for bad options,
    an unknown plugin, two plugins claiming one key or a package's bad hook implementation (the message
    says which, on stderr); 1 when a startup hook raised (the server logged the package and the error);
    3 (EXIT_CANNOT_LISTEN) when the port cannot be bound, one line on stderr, before anything starts.
    """
    options = _serve_parser().parse_args(list(argv))
    from argoplug.hooks import HookError, plugin_manager
    from argoplug.registry import PluginLoadError, load
    from argoplug.server import ListenError, ServerSettings, configure_logging
    from argoplug.server import serve as run_server

    try:
        configure_logging(options.log_format, options.log_level)
        loaded = load(options.plugin)
        hooks = plugin_manager(loaded.packages)
        settings = ServerSettings(
            token_file=options.token_file,
            handler_deadline=options.handler_deadline,
            max_body_bytes=options.max_body_bytes,
            max_bytes_in_flight=options.max_bytes_in_flight or options.max_body_bytes,
            body_timeout=options.body_timeout,
            header_timeout=options.header_timeout,
            max_connections=options.max_connections,
        )
    except (PluginLoadError, HookError, ValueError) as exc:
        print(f"argoplug serve: {exc}", file=sys.stderr)
        return 2
    try:
        run_server(loaded.plugins, host=options.host, port=options.port, settings=settings, hooks=hooks)
    except HookError:
        return 1  # a startup hook raised: logged by the server, with the package's name and the traceback
    except ListenError as exc:
        print(f"argoplug serve: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    return 0
