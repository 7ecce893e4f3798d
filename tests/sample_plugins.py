"""Plugins for tests that start `argoplug serve` as a subprocess (PYTHONPATH=tests)."""

from __future__ import annotations

import msgspec

from argoplug import Plugin, Result, Task


class GreetArgs(msgspec.Struct, forbid_unknown_fields=True):
    name: str


greet = Plugin("greet", args=GreetArgs, description="Greets by name")


@greet.handler
def greet_by_name(task: Task, args: GreetArgs) -> Result:
    return Result.succeeded(f"greeted {args.name}", outputs={"greeting": f"hello {args.name}"})


collector = Plugin("collector", description="Reports the sidecar's garbage-collector settings")


@collector.handler
def report_collector(task: Task, args: object) -> Result:
    import gc

    return Result.succeeded(outputs={"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()})
