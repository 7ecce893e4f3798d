"""The test kit for plugin authors: a live argoplug server on loopback, over real sockets.

Usage in a test::

    from argoplug.testing import LiveServer

    def test_hello():
        with LiveServer([plugin]) as server:
            reply = server.execute({"hello": {"name": "x"}})
            assert reply["node"]["phase"] == "Succeeded"

With pytest, the fixture `live_server` (a factory of LiveServers stopped after the test) comes from
`argoplug.pytest_plugin`, which pytest loads by itself once argoplug is installed.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from argoplug.plugin import Plugin
from argoplug.server import EXECUTE_PATH, ServerSettings, create_app

__all__ = ["LiveServer", "Sidecar", "make_request"]


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
    `settings` may change anything but the token file. Use it as a context manager; `start` waits
    (up to 10 s) until the server answers.
    """

    def __init__(self, plugins: Sequence[Plugin[Any]], *, settings: ServerSettings | None = None) -> None:
        import msgspec
        import uvicorn

        self._tmp = tempfile.TemporaryDirectory(prefix="argoplug-test-")
        self.token = secrets.token_hex(16)
        self.token_file = Path(self._tmp.name) / "token"
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o440)
        settings = msgspec.structs.replace(settings or ServerSettings(), token_file=str(self.token_file))
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


class Sidecar:
    """`argoplug serve` as a subprocess, as the agent pod runs it: a port, a token file, JSON logs.

    `plugins` are installed names or `module:attr` paths (the subprocess must be able to import them:
    pass `env={"PYTHONPATH": ...}`). `env` is merged over this process's environment; names mapped to
    None are removed from it. `kill()` ends it with SIGKILL (a crash: nothing is cleaned up) and
    `start()` starts it again on the same port with the same token file. Logs go to `log_path`.
    """

    def __init__(
        self,
        plugins: Sequence[str] = (),
        *,
        env: Mapping[str, str | None] | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="argoplug-sidecar-")
        self.workdir = Path(workdir if workdir is not None else self._tmp.name)  # type: ignore[union-attr]
        self.token = secrets.token_hex(16)
        self.token_file = self.workdir / "token"
        self.token_file.write_text(self.token)
        self.log_path = self.workdir / "sidecar.log"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not (env and k in env and env[k] is None)}
        self.env.update({k: v for k, v in (env or {}).items() if v is not None})
        self.command = [sys.executable, "-m", "argoplug", "serve", "--port", str(self.port)]
        self.command += ["--token-file", str(self.token_file), "--log-format", "json"]
        for plugin in plugins:
            self.command += ["--plugin", plugin]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> Sidecar:
        """Start the subprocess and wait until `/healthz` answers (the agent waits about 15 s).

        Raises RuntimeError with the log's tail when it exits or does not answer in time.
        """
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stderr=log, stdout=log)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"argoplug serve did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """End the subprocess with SIGKILL, as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Send SIGTERM (what Kubernetes sends) and wait; return the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def post(self, body: Any, *, token: str | None = "") -> httpx.Response:
        """POST `body` to template.execute with the token (or `token`; None sends no header)."""
        use = self.token if token == "" else token
        headers = {"Authorization": f"Bearer {use}"} if use is not None else {}
        return httpx.post(f"{self.url}{EXECUTE_PATH}", json=body, headers=headers, timeout=30.0)

    def __enter__(self) -> Sidecar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
