"""The `argoplug` command line. `main` is the console entry point.

`serve` (`argoplug.cli.serve`, argparse) is dispatched before typer is imported, so a sidecar starts fast and
small; every other command is typer's (`argoplug.cli.commands`). Neither module imports this one.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the `argoplug` command line."""
    if sys.argv[1:2] == ["serve"]:
        from argoplug.cli.serve import serve

        raise SystemExit(serve(sys.argv[2:]))
    from argoplug.cli.commands import app

    app()
