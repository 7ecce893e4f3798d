"""Per-call costs inside argoplug's request handling, measured in-process (for bench/diagnose.py).

Times each step `_PluginServer.execute` takes for one template.execute call, without HTTP, and the two
asyncio mechanisms around the handler, one call at a time and 16 at a time. Uses argoplug internals: a
measuring device, not an API; if src/ renames them, update this file. Prints JSON: label -> µs per call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from noop_plugin import plugin

from argoplug.plugin import Result, Task, outcome_for
from argoplug.server import ServerSettings, _args_decoder, _envelope_decoder, create_app

BODY = json.dumps(
    {
        "workflow": {"metadata": {"name": "bench", "namespace": "argo", "uid": "u"}},
        "template": {"name": "t", "inputs": {}, "outputs": {}, "metadata": {}, "plugin": {"noop": {}}},
    }
).encode()
FOREIGN = BODY.replace(b'"noop"', b'"other-plugin"')
N = 20_000
out: dict[str, float] = {}


def timed(label: str, fn: Callable[[], Any], n: int = N) -> None:
    for _ in range(200):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    out[label] = (time.perf_counter() - t) / n * 1e6


class _Request:
    def __init__(self, body: bytes, token: str) -> None:
        self._body = body
        self.headers = {"authorization": f"Bearer {token}"}

    async def body(self) -> bytes:
        return self._body


async def measure(server: Any, token: str) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(64))
    args = _args_decoder.decode(BODY)
    task = Task.from_args(args, "noop")
    result = Result.succeeded(outputs={"ok": "true"})

    async def one_at_a_time(label: str, make: Callable[[], Awaitable[Any]], n: int = 5_000) -> None:
        for _ in range(200):
            await make()
        t = time.perf_counter()
        for _ in range(n):
            await make()
        out[label] = (time.perf_counter() - t) / n * 1e6

    async def sixteen_at_a_time(label: str, make: Callable[[], Awaitable[Any]], n: int = 2_000) -> None:
        async def worker() -> None:
            for _ in range(n):
                await make()

        c = time.process_time()
        await asyncio.gather(*(worker() for _ in range(16)))
        out[label + ", 16 at a time: CPU"] = (time.process_time() - c) / (16 * n) * 1e6

    async def coroutine() -> Result:
        return result

    async def deadline_wrapper() -> Result:
        call = asyncio.ensure_future(coroutine())
        return await asyncio.wait_for(asyncio.shield(call), 20.0)

    await one_at_a_time(
        "thread hop: run_in_executor of a no-op", lambda: loop.run_in_executor(None, lambda: 1)
    )
    await sixteen_at_a_time(
        "thread hop: run_in_executor of a no-op", lambda: loop.run_in_executor(None, lambda: 1)
    )
    await one_at_a_time("deadline: ensure_future + shield + wait_for", deadline_wrapper)
    await sixteen_at_a_time("deadline: ensure_future + shield + wait_for", deadline_wrapper)
    await one_at_a_time("plugin.call (sync handler: parse args + thread hop)", lambda: plugin.call(task))
    await one_at_a_time(
        "_PluginServer._run (plugin.call under the deadline)", lambda: server._run(plugin, task)
    )
    ours, foreign = _Request(BODY, token), _Request(FOREIGN, token)
    await one_at_a_time("whole execute(), our key (no HTTP)", lambda: server.execute(ours))
    await sixteen_at_a_time("whole execute(), our key (no HTTP)", lambda: server.execute(ours))
    await one_at_a_time("whole execute(), foreign key (no HTTP)", lambda: server.execute(foreign))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        token_file = Path(tmp) / "token"
        token_file.write_text("t0ken")
        server = create_app([plugin], ServerSettings(token_file=str(token_file))).state.plugin_server
        args = _args_decoder.decode(BODY)
        task = Task.from_args(args, "noop")
        node, requeue = outcome_for(Result.succeeded(outputs={"ok": "true"}), args.template)
        timed("decode the envelope (plugin keys)", lambda: _envelope_decoder.decode(BODY))
        timed("decode the whole request", lambda: _args_decoder.decode(BODY))
        timed("token check (os.stat of the file + compare)", lambda: server.token.problem("Bearer t0ken"))
        timed("Task.from_args (with the idempotency key)", lambda: Task.from_args(args, "noop"))
        timed("plugin.parse_args", lambda: plugin.parse_args(task.template.plugin.get("noop")))
        timed("outcome_for", lambda: outcome_for(Result.succeeded(outputs={"ok": "true"}), args.template))
        timed(
            "_reply (log record extras + encode + Response)",
            lambda: server._reply(node, requeue, "noop", task, 0.0),
        )
        uvloop.run(measure(server, "t0ken"))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
