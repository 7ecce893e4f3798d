"""A plugin whose sync handler blocks for `seconds` (default 0): shows one slow call does not hold the others.

Blocking on purpose (it stands for a slow SDK call); a real handler would answer Running + requeue instead.
"""

import time
from typing import Any

from argoplug import Plugin, Result, Task

plugin: Plugin[dict[str, Any]] = Plugin(
    "slow", description="Blocks for `seconds`: the benchmark's concurrency probe"
)


@plugin.handler
def slow(task: Task, args: dict[str, Any]) -> Result:
    seconds = min(float(args.get("seconds", 0)), 10.0)
    if seconds > 0:
        time.sleep(seconds)
    return Result.succeeded(outputs={"slept": str(seconds)})
