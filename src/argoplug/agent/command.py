"""The `argoplug run` command (placeholder until the local agent lands)."""

from __future__ import annotations

import typer


def run() -> None:
    """Run a Workflow locally against plugin servers."""
    typer.echo("argoplug run: not implemented yet", err=True)
    raise typer.Exit(2)
