"""The `argoplug` command line. `main` is the console entry point.

`serve` (`argoplug.cli.serve`, argparse) is dispatched before typer is imported, so a sidecar starts fast and
small; every other command is typer's (`argoplug.cli.commands`). Neither module imports this one.
"""

from __future__ import annotations

import sys

__all__ = ["main", "with_optional_values"]

# Options whose value may be left out (`--kube-sandbox [FILE]`): typer's parser has no optional values, so
# a bare one is given the empty value before typer reads the line.
OPTIONAL_VALUE_OPTIONS = ("--kube-sandbox",)


def with_optional_values(args: list[str]) -> list[str]:
    """`args` with each option of OPTIONAL_VALUE_OPTIONS that has no value (last, or followed by another
    option) written `--option=`; arguments after `--` are left as they are."""
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            return out + args[index:]
        following = args[index + 1] if index + 1 < len(args) else None
        if arg in OPTIONAL_VALUE_OPTIONS and (following is None or following.startswith("-")):
            arg += "="
        out.append(arg)
    return out


def main() -> None:
    """Run the `argoplug` command line."""
    if sys.argv[1:2] == ["serve"]:
        from argoplug.cli.serve import serve

        raise SystemExit(serve(sys.argv[2:]))
    from argoplug.cli.commands import app

    app(args=with_optional_values(sys.argv[1:]), prog_name="argoplug")
