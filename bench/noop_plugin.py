"""A no-op plugin for the benchmark: plugin key `noop`, answers Succeeded with one output at once."""

from argoplug import Plugin, Result, Task

plugin = Plugin("noop", description="Does nothing: the benchmark's plugin")


@plugin.handler
def noop(task: Task, args: dict) -> Result:
    return Result.succeeded(outputs={"ok": "true"})
