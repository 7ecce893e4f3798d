"""Plugins for the local agent's tests, also served by `argoplug serve --plugin agent_test_plugins:plugins`.

The subprocess finds this module with `PYTHONPATH=tests/agent`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from argoplug import PermanentError, Plugin, Result, Task

echo = Plugin("echo", description="Succeeds with its arguments as output parameters")
fail = Plugin("fail", description="Fails with the message it is given")
poll = Plugin("poll", description="Running with a 30s requeue until called `polls` times, then Succeeded")
environ = Plugin("environ", description="Succeeds with the value of the environment variable `name`")
flaky = Plugin(
    "flaky", description="Fails the first `fails` calls for a `key`, then succeeds with its arguments"
)
emit = Plugin("emit", description="Succeeds with `outputs` (a mapping) as outputs and `result` as the result")

_calls: dict[str, int] = {}
_lock = threading.Lock()


@echo.handler
def echo_arguments(task: Task, args: dict[str, Any]) -> Result:
    return Result.succeeded(f"echoed {', '.join(sorted(args))}", outputs=args)


@fail.handler
def fail_on_purpose(task: Task, args: dict[str, Any]) -> Result:
    raise PermanentError(str(args.get("message", "failed on purpose")))


@poll.handler
def poll_until_done(task: Task, args: dict[str, Any]) -> Result:
    with _lock:
        count = _calls[task.key] = _calls.get(task.key, 0) + 1
    if count < int(args.get("polls", 2)):
        return Result.running(f"call {count}", requeue=30)
    return Result.succeeded(f"done after {count} calls", outputs={"calls": count})


@environ.handler
def read_environment(task: Task, args: dict[str, Any]) -> Result:
    return Result.succeeded(outputs={"value": os.environ.get(str(args["name"]), "(unset)")})


@flaky.handler
def fail_first(task: Task, args: dict[str, Any]) -> Result:
    key = f"flaky/{args.get('key', '')}"
    with _lock:
        count = _calls[key] = _calls.get(key, 0) + 1
    if count <= int(args.get("fails", 1)):
        raise PermanentError(f"attempt {count} fails on purpose")
    outputs = {k: v for k, v in args.items() if k not in ("key", "fails")}
    return Result.succeeded(f"succeeded on call {count}", outputs=outputs)


@emit.handler
def emit_outputs(task: Task, args: dict[str, Any]) -> Result:
    result = args.get("result")
    return Result.succeeded(
        outputs=dict(args.get("outputs") or {}), result=None if result is None else str(result)
    )


plugins = [echo, fail, poll, environ, flaky, emit]
