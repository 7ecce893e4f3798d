"""Sample hook implementations for the hook tests.

In-process tests register instances of the classes below with `argoplug.hooks.plugin_manager`, under a
package name of their choosing. Subprocess tests serve this module (`--plugin hook_plugins:plugin`, with
`PYTHONPATH=tests`): `registry.load` registers the module itself, whose module-level hooks append one line
per call to the file named by `HOOK_LOG_ENV` and raise in startup when `FAIL_STARTUP_ENV` is set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from argoplug import PermanentError, Plugin, Result, Task, hookimpl
from argoplug.hookspecs import BuildContext

HOOK_LOG_ENV = "ARGOPLUG_TEST_HOOK_LOG"
FAIL_STARTUP_ENV = "ARGOPLUG_TEST_FAIL_STARTUP"

# --- the module as a plugin package (subprocess tests) ---------------------------------------------------

plugin = Plugin("hooked", description="Answers Succeeded; its package's hooks write to a file")


@plugin.handler
def answer(task: Task, args: Any) -> Result:
    return Result.succeeded("done", outputs={"pid": os.getpid()})


def _log(line: str) -> None:
    path = os.environ.get(HOOK_LOG_ENV)
    if path:
        with Path(path).open("a") as log:
            log.write(line + "\n")


@hookimpl
def argoplug_startup(plugins: Sequence[Plugin[Any]]) -> None:
    if os.environ.get(FAIL_STARTUP_ENV):
        raise RuntimeError(os.environ[FAIL_STARTUP_ENV])
    _log("startup " + ",".join(p.key for p in plugins))


@hookimpl
def argoplug_shutdown(plugins: Sequence[Plugin[Any]]) -> None:
    _log("shutdown " + ",".join(p.key for p in plugins))


# --- objects registered as plugin packages (in-process tests) ----------------------------------------------


class Recorder:
    """Records each server hook call into `calls` (shared between recorders to see the order)."""

    def __init__(self, name: str = "recorder", calls: list[tuple[Any, ...]] | None = None) -> None:
        self.name = name
        self.calls: list[tuple[Any, ...]] = [] if calls is None else calls

    @hookimpl
    def argoplug_startup(self, plugins: Sequence[Plugin[Any]]) -> None:
        self.calls.append((self.name, "startup", tuple(p.key for p in plugins)))

    @hookimpl
    def argoplug_shutdown(self, plugins: Sequence[Plugin[Any]]) -> None:
        self.calls.append((self.name, "shutdown", tuple(p.key for p in plugins)))

    @hookimpl
    def argoplug_before_execute(self, task: Task) -> None:
        self.calls.append((self.name, "before", task))

    @hookimpl
    def argoplug_after_execute(self, task: Task, result: Result) -> None:
        self.calls.append((self.name, "after", task, result))


class AsyncRecorder:
    """Records startup and after_execute calls from `async def` implementations (awaited by the server)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    async def argoplug_startup(self, plugins: Sequence[Plugin[Any]]) -> None:
        self.calls.append(("startup",))

    @hookimpl
    async def argoplug_after_execute(self, result: Result) -> None:
        self.calls.append(("after", result.phase.value))


class Refuser:
    """Refuses every call whose plugin block asks for it (`{"refuse": "why"}`) with a PermanentError."""

    @hookimpl
    def argoplug_before_execute(self, task: Task) -> None:
        block = task.template.plugin.get(task.plugin_key) or {}
        if "refuse" in block:
            raise PermanentError(f"refused by policy: {block['refuse']}", outputs={"policy": "deny"})


class Broken:
    """Every server hook raises RuntimeError("broken <hook>")."""

    @hookimpl
    def argoplug_startup(self) -> None:
        raise RuntimeError("broken startup")

    @hookimpl
    def argoplug_shutdown(self) -> None:
        raise RuntimeError("broken shutdown")

    @hookimpl
    def argoplug_before_execute(self) -> None:
        raise RuntimeError("broken before_execute")

    @hookimpl
    def argoplug_after_execute(self) -> None:
        raise RuntimeError("broken after_execute")


class BrokenAtRuntime(Broken):
    """Broken, but starts: only the per-call and shutdown hooks raise."""

    @hookimpl
    def argoplug_startup(self) -> None:
        pass


class Misspelt:
    """A hook name that matches no hookspec."""

    @hookimpl
    def argoplug_start_up(self, plugins: Sequence[Plugin[Any]]) -> None:
        pass


class WrongArguments:
    """A real hook name with an argument its hookspec does not have."""

    @hookimpl
    def argoplug_startup(self, plugins: Sequence[Plugin[Any]], port: int) -> None:
        pass


class Unmarked:
    """A hook implementation without `@hookimpl`, which pluggy alone would silently ignore."""

    def argoplug_shutdown(self, plugins: Sequence[Plugin[Any]]) -> None:
        pass


class Wrapper:
    """A new-style wrapper implementation, which argoplug refuses."""

    @hookimpl(wrapper=True)
    def argoplug_dockerfile_lines(self, context: BuildContext) -> Any:
        return (yield)


class Lines:
    """Contributes Dockerfile lines `<name> 1`, `<name> 2`; `tryfirst` must not change the order."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl(tryfirst=True)
    def argoplug_dockerfile_lines(self, context: BuildContext) -> list[str]:
        return [f"{self.name} 1", f"{self.name} 2"]


class NotAList:
    """Returns a tuple from a list-returning build hook."""

    @hookimpl
    def argoplug_dockerfile_lines(self) -> Any:
        return ("RUN true",)


class FailingBuild:
    """Raises in a build hook."""

    @hookimpl
    def argoplug_kubernetes_rules(self, context: BuildContext) -> list[dict[str, Any]]:
        raise KeyError("namespace")
