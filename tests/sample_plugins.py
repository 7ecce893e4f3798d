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
