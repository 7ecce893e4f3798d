"""The test kit for plugin authors: a live argoplug server on loopback, over real sockets.

With pytest, the fixture `live_server` (from `argoplug.pytest_plugin`, which pytest loads by itself once
argoplug is installed) starts LiveServers and stops them after the test. `run_task` calls the server as
Argo's agent does (`argoplug.agent.client.AgentClient`, the client of `argoplug run`), following requeues
without waiting them out, until the node is done::

    from argoplug.testing import NodeUpdate

    def test_hello(live_server):
        server = live_server([plugin])  # hooks=plugin_manager([...]) to test hook implementations too
        node: NodeUpdate = server.run_task({"hello": {"name": "x"}}, parameters={"p": "1"})
        assert node.phase == "Succeeded"
        assert {p.name: p.value for p in node.outputs.parameters} == {"greeting": "hello x"}

`call_as_agent` makes one round of calls (one reply: e.g. `Running` with `requeue` 30.0) and `execute`
returns the raw reply (a dict) of one POST. Without pytest, `with LiveServer([plugin]) as server: ...`.

`Sidecar` (from `argoplug.sidecar`) runs `argoplug serve` as a real subprocess instead, as the agent pod
runs it, for tests of restarts, signals and logs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from argoplug.agent.client import AgentClient, NodeUpdate, PluginEndpoint
from argoplug.plugin import Plugin
from argoplug.server import EXECUTE_PATH, ServerSettings, create_app, uvicorn_config
from argoplug.sidecar import Sidecar, SidecarError, write_token_file

if TYPE_CHECKING:
    import pluggy

__all__ = ["LiveServer", "NodeUpdate", "Sidecar", "SidecarError", "make_request"]


def make_request(
    plugin_block: Mapping[str, Any],
    *,
    template_name: str = "test",
    parameters: Mapping[str, str] | None = None,
    workflow: str = "test-workflow",
    namespace: str = "argo",
    uid: str = "00000000-0000-0000-0000-000000000000",
) -> dict[str, Any]:
    """Build a template.execute request body as the agent sends it (docs/contract.md §2.1)."""
    return {
        "workflow": {"metadata": {"name": workflow, "namespace": namespace, "uid": uid}},
        "template": {
            "name": template_name,
            "inputs": {"parameters": [{"name": k, "value": v} for k, v in (parameters or {}).items()]},
            "outputs": {},
            "metadata": {},
            "plugin": dict(plugin_block),
        },
    }


class LiveServer:
    """An argoplug server for `plugins` in a background thread, on a free loopback port.

    A fresh token file is written to a temporary folder; `url`, `token` and `token_file` say where.
    `settings` may change anything but the token file and `tune_gc` (off: this process is not a
    sidecar). `hooks` (an `argoplug.hooks.plugin_manager`) gives the server hooks to call: startup in
    `start`, shutdown in `stop`, before/after each handler call. Use it as a context manager; `start`
    waits (up to 10 s) until the server answers.
    """

    def __init__(
        self,
        plugins: Sequence[Plugin[Any]],
        *,
        settings: ServerSettings | None = None,
        hooks: pluggy.PluginManager | None = None,
    ) -> None:
        import msgspec
        import uvicorn

        self._tmp = tempfile.TemporaryDirectory(prefix="argoplug-test-")
        self.token_file = Path(self._tmp.name) / "token"
        self.token = write_token_file(self.token_file)
        # In-process: the test process's garbage collector is not the server's to tune.
        settings = msgspec.structs.replace(
            settings or ServerSettings(), token_file=str(self.token_file), tune_gc=False
        )
        self.app = create_app(plugins, settings, hooks=hooks)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn_config(self.app))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    def _run(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn's exit after a failed start: `start` reports it
            self._server.run(sockets=[self._sock])

    def start(self) -> LiveServer:
        """Start the server (its startup hooks first) and wait until it answers.

        Raises RuntimeError, once the server is stopped, if it does not answer in 10 s, or when a startup
        hook raised (the message says which package and what; the HookError is its cause).
        """
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                error = self.app.state.plugin_server.startup_error
                if error is not None:
                    raise RuntimeError(f"argoplug test server did not start: {error}") from error
                raise RuntimeError("argoplug test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server (its shutdown hooks have run when this returns) and remove its token file.

        A server never started is only cleaned up.
        """
        self._server.should_exit = True
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=10)
        self.client.close()
        self._sock.close()
        self._tmp.cleanup()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def post(self, body: Any, *, token: str | None = "", raw: bytes | None = None) -> httpx.Response:
        """POST `body` (JSON) or `raw` bytes to template.execute; `token` overrides ours, None sends none."""
        headers = {"Content-Type": "application/json"}
        use = self.token if token == "" else token
        if use is not None:
            headers["Authorization"] = f"Bearer {use}"
        if raw is not None:
            return self.client.post(EXECUTE_PATH, content=raw, headers=headers)
        return self.client.post(EXECUTE_PATH, json=body, headers=headers)

    def execute(self, plugin_block: Mapping[str, Any], **request: Any) -> dict[str, Any]:
        """Send a request for `plugin_block` (see `make_request`) and return the decoded 200 reply.

        Raises AssertionError when the status is not 200.
        """
        response = self.post(make_request(plugin_block, **request))
        assert response.status_code == 200, f"{response.status_code}: {response.text}"
        reply: dict[str, Any] = response.json()
        return reply

    def call_as_agent(self, plugin_block: Mapping[str, Any], **request: Any) -> NodeUpdate:
        """Make one round of calls for `plugin_block` (see `make_request`) as Argo's agent does.

        One `AgentClient.execute`: the agent's decoding, token, 503 retries (without waiting) and messages.
        Returns what the round records for the node (`requeue` in seconds, None for a terminal phase).
        Call it from synchronous code: it runs its own event loop in this thread.
        """
        body = make_request(plugin_block, **request)

        async def one_round() -> NodeUpdate:
            async with self._agent() as agent:
                return await agent.execute(body)

        return asyncio.run(one_round())

    def run_task(
        self, plugin_block: Mapping[str, Any], *, max_calls: int = 100, **request: Any
    ) -> NodeUpdate:
        """Call as Argo's agent does until the node is done; return its terminal update.

        Each Pending/Running reply with a requeue is followed by the same request again at once (the
        delays are not waited out), as `AgentClient.follow` does for `argoplug run`. Raises AssertionError
        when the node is still not done after `max_calls` rounds (>= 1), or is Pending/Running (or has no
        phase) without a requeue: Argo would never call again and the node would hang. A terminal update
        with a `warning` (Failed/Error with a requeue) is returned as it is. Call it from synchronous code:
        it runs its own event loop in this thread.
        """
        if max_calls < 1:
            raise ValueError(f"max_calls must be >= 1, got {max_calls!r}")
        body = make_request(plugin_block, **request)
        key = next(iter(plugin_block), "")
        rounds: list[NodeUpdate] = []

        def check(update: NodeUpdate) -> None:
            rounds.append(update)
            if update.terminal:
                return
            phase = update.phase or "(no phase)"
            if update.requeue is None:
                raise AssertionError(
                    f"plugin {key!r}: call {len(rounds)} answered {phase} without a requeue "
                    f"(message {update.message!r}): Argo's agent would never call again, and the node "
                    "would hang until the workflow's deadline"
                )
            if len(rounds) >= max_calls:
                phases = ", ".join(_phase_counts(rounds))
                raise AssertionError(
                    f"plugin {key!r}: the node is still {phase} after {max_calls} calls ({phases}; last "
                    f"message {update.message!r}, requeue {update.requeue:g}s): raise max_calls, or "
                    "make the task finish"
                )

        async def follow() -> NodeUpdate:
            async with self._agent() as agent:
                return await agent.follow(body, check)

        return asyncio.run(follow())

    def _agent(self) -> AgentClient:
        """An agent client for this server alone that never sleeps (requeues, 503 backoff)."""
        return AgentClient([PluginEndpoint(self.url, self.token, name="live-server")], sleep=_no_sleep)


async def _no_sleep(seconds: float) -> None:
    """Stand in for `asyncio.sleep` in the agent client: no waiting for requeue or backoff delays."""


def _phase_counts(rounds: Sequence[NodeUpdate]) -> list[str]:
    """'3 × Running' for each phase of `rounds`, in order of first appearance."""
    counts = collections.Counter(update.phase or "(no phase)" for update in rounds)
    return [f"{count} × {phase}" for phase, count in counts.items()]
