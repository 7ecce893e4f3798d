"""Plugins whose sync handler returns `Result.succeeded()` at once, for bench/hostile_memory.py.

`plugin` (key `instant`) takes any plugin block (`args=Any`): a list or a string reaches the handler, so
the memory measured is the server's decoding and handling of the whole body. `dict_plugin` (the same key)
has the default arguments (a JSON object): a block that is not one is a Failed node (an argument error).
"""

from typing import Any

from argoplug import Plugin, Result, Task

plugin: Plugin[Any] = Plugin("instant", args=Any, description="Returns at once, any block")


@plugin.handler
def instant(task: Task, args: Any) -> Result:
    return Result.succeeded()


dict_plugin: Plugin[dict[str, Any]] = Plugin("instant", description="Returns at once, object arguments")


@dict_plugin.handler
def instant_dict(task: Task, args: dict[str, Any]) -> Result:
    return Result.succeeded()
