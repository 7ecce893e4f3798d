"""The test kit for plugin authors: a live argoplug server on loopback, over real sockets.

Usage in a test::

    from argoplug.testing import LiveServer

    def test_hello():
        with LiveServer([plugin]) as server:
            reply = server.execute({"hello": {"name": "x"}})
            assert reply["node"]["phase"] == "Succeeded"

`Sidecar` (from `argoplug.sidecar`) runs `argoplug serve` as a real subprocess instead, as the agent pod
runs it, for tests of restarts, signals and logs. With pytest, the fixture `live_server` (a factory of
LiveServers stopped after the test) comes from `argoplug.pytest_plugin`, which pytest loads by itself once
argoplug is installed.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from argoplug.plugin import Plugin
from argoplug.server import EXECUTE_PATH, ServerSettings, create_app
from argoplug.sidecar import Sidecar, SidecarError, write_token_file

__all__ = ["LiveServer", "Sidecar", "SidecarError", "make_request"]


def make_request(
    plugin_block: Mapping[str, Any],
    *,
    template_name: str = "test",
    parameters: Mapping[str, str] | None = None,
    workflow: str = "test-workflow",
    namespace: str = "argo",
    uid: str = "00000000-0000-0000-0000-000000000000",
) -> dict[str, Any]:
    """Build a template.execute request body as the agent sends it (CONTRACT §2)."""
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
    sidecar). Use it as a context manager; `start` waits (up to 10 s) until the server answers.
    """

    def __init__(self, plugins: Sequence[Plugin[Any]], *, settings: ServerSettings | None = None) -> None:
        import msgspec
        import uvicorn

        self._tmp = tempfile.TemporaryDirectory(prefix="argoplug-test-")
        self.token_file = Path(self._tmp.name) / "token"
        self.token = write_token_file(self.token_file)
        # In-process: the test process's garbage collector is not the server's to tune.
        settings = msgspec.structs.replace(
            settings or ServerSettings(), token_file=str(self.token_file), tune_gc=False
        )
        self.app = create_app(plugins, settings)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, access_log=False, log_config=None, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    def start(self) -> LiveServer:
        """Start the server and wait until it answers; raises RuntimeError if it does not in 10 s."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("argoplug test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server and remove its token file."""
        self._server.should_exit = True
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
