"""Helpers of the local agent's tests: a scripted misbehaving plugin server, a fake clock, runners."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import yaml

from argoplug.agent.checks import check
from argoplug.agent.client import AgentClient, Backoff, PluginEndpoint
from argoplug.agent.engine import Engine
from argoplug.agent.http_template import HttpTemplateRunner
from argoplug.agent.nodes import WorkflowStatus
from argoplug.agent.workflow import Workflow, load_documents, resolve_workflow

HERE = Path(__file__).resolve().parent
WORKFLOWS = HERE / "workflows"
ROOT = HERE.parent.parent
EXAMPLES = ROOT / "examples" / "sagemaker"

# A scripted reply: (status, body), or DROP to close the connection without answering.
DROP = "drop"
Reply = tuple[int, bytes | str | dict[str, Any] | None] | str


class FakeSleep:
    """An injectable `sleep` that records the delays asked for and returns at once, and a matching clock.

    `time()` starts at T0 and moves on by each delay slept, so waits computed from node times are exact.
    A delay listed in `never` (e.g. the workflow's deadline) is recorded and then never ends (until the
    sleeper is cancelled).
    """

    T0 = 1_700_000_000.0

    def __init__(self, *, never: Sequence[float] = ()) -> None:
        self.delays: list[float] = []
        self.never = set(never)
        self.now = self.T0

    def time(self) -> float:
        return self.now

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if seconds in self.never:
            await asyncio.Event().wait()
        self.now += seconds
        await asyncio.sleep(0)


class ScriptedPlugin:
    """A plugin server on loopback that answers each POST with the next scripted reply (the last repeats).

    Records every request as `(headers, body)`. Built on the standard library, so it can misbehave in
    ways our own server never does.
    """

    def __init__(self, replies: Sequence[Reply], *, delay: float = 0.0) -> None:
        self.replies = list(replies)
        self.delay = delay
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        plugin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                reply = plugin._next(dict(self.headers), body)
                if reply == DROP:
                    self.close_connection = True
                    return
                assert isinstance(reply, tuple)
                status, payload = reply
                data = payload if isinstance(payload, bytes) else _encode(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (timeout tests) breaks the pipe: expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def _next(self, headers: dict[str, str], body: Any) -> Reply:
        import time

        with self._lock:
            self.requests.append((headers, body))
            index = min(len(self.requests), len(self.replies)) - 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                time.sleep(self.delay)
            return self.replies[index]
        finally:
            with self._lock:
                self.active -= 1

    def endpoint(self, token: str = "scripted-token") -> PluginEndpoint:
        return PluginEndpoint(self.url, token, name="scripted")

    def __enter__(self) -> ScriptedPlugin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _encode(payload: str | dict[str, Any] | None) -> bytes:
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload).encode()


def workflow_from(text: str, *, parameters: dict[str, str] | None = None, tmp_path: Path) -> Workflow:
    """Load, resolve and check a workflow written as YAML text (through a file, as `argoplug run` does)."""
    path = tmp_path / "workflow.yaml"
    path.write_text(text)
    workflow = resolve_workflow(load_documents([path]), parameters=parameters)
    check(workflow)
    return workflow


def run_engine(
    workflow: Workflow,
    endpoints: Sequence[PluginEndpoint],
    *,
    sleep: FakeSleep | None = None,
    engine_sleep: Callable[[float], Any] | None = None,
    on_change: Callable[..., None] | None = None,
    http: bool = False,
    speed: float = 1.0,
) -> WorkflowStatus:
    """Run `workflow` against `endpoints` with a fake clock for backoff and requeue; return the status.

    `engine_sleep` is the engine's sleep (deadline, timeout, backoff, suspend: a `FakeSleep` records
    them); `http` gives the engine a real `HttpTemplateRunner`; `speed` is the engine's.
    """

    async def main() -> WorkflowStatus:
        client_sleep = sleep or FakeSleep()
        async with AgentClient(
            endpoints, sleep=client_sleep, random=lambda: 0.0, backoff=Backoff()
        ) as client:
            options: dict[str, Any] = {"on_change": on_change, "speed": speed}
            if engine_sleep is not None:
                options["sleep"] = engine_sleep
            if isinstance(engine_sleep, FakeSleep):
                options["clock"] = engine_sleep.time
            if not http:
                return await Engine(workflow, client, **options).run()
            async with HttpTemplateRunner() as runner:
                return await Engine(workflow, client, http=runner, **options).run()

    return asyncio.run(main())


def workflow_files(*paths: Path, parameters: dict[str, str] | None = None) -> Workflow:
    """Load, resolve and check the workflow of `paths`, as `argoplug run FILE...` does."""
    workflow = resolve_workflow(load_documents(paths), parameters=parameters)
    check(workflow)
    return workflow


class LoopbackHttpServer:
    """A threaded HTTP server on 127.0.0.1 (`port`, 0 for any free one) serving `handler` in a daemon thread
    while used as a context manager; `.url` and `.port` say where."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], port: int = 0) -> None:
        self._server = _DaemonThreadingServer(("127.0.0.1", port), handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _DaemonThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class PlainHttpServer(LoopbackHttpServer):
    """An HTTP server on loopback that answers GET `path` with `(status, body)` from `routes`.

    Records each request as `(method, path, headers, body)`.
    """

    def __init__(self, routes: dict[str, tuple[int, str]]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode() if length else ""
                server.requests.append((self.command, self.path, dict(self.headers), body))
                status, text = server.routes.get(self.path, (404, "not found"))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)


def yaml_dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)
