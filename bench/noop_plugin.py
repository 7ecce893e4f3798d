"""A no-op plugin for the benchmark: plugin key `noop`, answers Succeeded with one output at once."""

from typing import Any

from argoplug import Plugin, Result, Task

plugin: Plugin[dict[str, Any]] = Plugin("noop", description="Does nothing: the benchmark's plugin")


@plugin.handler
def noop(task: Task, args: dict[str, Any]) -> Result:
    return Result.succeeded(outputs={"ok": "true"})


async_plugin: Plugin[dict[str, Any]] = Plugin("noop", description="Does nothing, asynchronously")


@async_plugin.handler
async def async_noop(task: Task, args: dict[str, Any]) -> Result:
    return Result.succeeded(outputs={"ok": "true"})
