"""`argoplug serve` as a subprocess, started as Argo starts a plugin sidecar: a port, a token file, JSON logs.

`argoplug run` (`agent/command.py`) serves a workflow's plugins through a `Sidecar`; the test kit re-exports
it (`argoplug.testing.Sidecar`) for tests that need a real process: restarts, signals, logs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from argoplug.protocol import EXECUTE_PATH

__all__ = ["HEALTH_TIMEOUT", "STOP_TIMEOUT", "Sidecar", "SidecarError", "write_token_file"]

HEALTH_TIMEOUT = 15.0  # docs/contract.md §3.7: the agent's patience with a sidecar not listening yet
STOP_TIMEOUT = 10.0
_LOG_TAIL = 20


class SidecarError(RuntimeError):
    """The plugin server exited or did not answer `GET /healthz` in time; the message ends with its log."""


class Sidecar:
    """`argoplug serve` for `plugins` as a subprocess on a free loopback port, as the agent pod runs it.

    `plugins` are installed names or `module:attr` paths (the subprocess must be able to import them:
    pass `env={"PYTHONPATH": ...}`); none means every installed plugin. `env` is merged over this
    process's environment; names mapped to None are removed from it. A fresh random token is written to
    `workdir/token` (`token_file`: mode 0440, no trailing newline, as Argo's init container writes it);
    the server logs JSON lines to `workdir/sidecar.log` (`log_path`). Without `workdir`, a temporary
    folder is used and removed on exit. `start` waits until `GET /healthz` answers, up to
    `health_timeout` seconds. `kill()` ends it with SIGKILL (a crash: nothing is cleaned up) and `start()`
    starts it again on the same port with the same token. As a context manager: started on entry; on
    exit stopped (SIGTERM, then SIGKILL), its token file removed.
    """

    def __init__(
        self,
        plugins: Sequence[str] = (),
        *,
        env: Mapping[str, str | None] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="argoplug-sidecar-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.health_timeout = health_timeout
        self.token_file = self.workdir / "token"
        self.token = write_token_file(self.token_file)
        self.log_path = self.workdir / "sidecar.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {name: value for name, value in os.environ.items() if not (env and name in env)}
        self.env.update({name: value for name, value in (env or {}).items() if value is not None})
        self.command = [
            sys.executable,
            "-m",
            "argoplug",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.command += ["--token-file", str(self.token_file), "--log-format", "json"]
        for plugin in plugins:
            self.command += ["--plugin", plugin]
        self.process: subprocess.Popen[bytes] | None = None

    plugin_keys: tuple[str, ...] = ()  # what `GET /healthz` said it serves, once started

    def start(self, timeout: float | None = None) -> Sidecar:
        """Start the subprocess and wait until `GET /healthz` answers 200 (`timeout` overrides the default);
        `plugin_keys` are then the keys it serves.

        Raises SidecarError, with the end of the log, when it exits first or does not answer in time; the
        subprocess is killed then.
        """
        if self.process is not None and self.process.poll() is None:
            raise SidecarError(f"the plugin server at {self.url} is already running")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env
            )
        try:
            self._wait_healthy(self.process, self.health_timeout if timeout is None else timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_healthy(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as http:
            while True:
                if process.poll() is not None:
                    raise SidecarError(
                        f"the plugin server exited with code {process.returncode} before answering:\n"
                        + self.log_tail()
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = http.get(f"{self.url}/healthz")
                    if answer.status_code == 200:
                        self.plugin_keys = tuple(str(key) for key in answer.json().get("plugins") or ())
                        return
                if time.monotonic() > deadline:
                    raise SidecarError(
                        f"the plugin server did not answer GET {self.url}/healthz within {timeout:g}s:\n"
                        + self.log_tail()
                    )
                time.sleep(0.02)

    def kill(self) -> None:
        """End the subprocess with SIGKILL, as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop the subprocess as Kubernetes does: SIGTERM, up to `timeout` seconds, then SIGKILL.

        Returns its exit status (negative: the signal that ended it), or None if it was never started.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def close(self) -> None:
        """Stop the subprocess, remove the token file, and the temporary folder if this made one."""
        self.stop()
        self.token_file.unlink(missing_ok=True)
        if self._tmp is not None:
            self._tmp.cleanup()

    def post(self, body: Any, *, token: str | None = "") -> httpx.Response:
        """POST `body` (JSON) to template.execute with the token (or `token`; None sends no header)."""
        use = self.token if token == "" else token
        headers = {"Authorization": f"Bearer {use}"} if use is not None else {}
        return httpx.post(f"{self.url}{EXECUTE_PATH}", json=body, headers=headers, timeout=30.0)

    def log_tail(self, lines: int = _LOG_TAIL) -> str:
        """The last `lines` lines of the log, indented, for messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "  (no log)"
        tail = text.splitlines()[-lines:]
        return "\n".join(f"  {line}" for line in tail) if tail else "  (the log is empty)"

    def __enter__(self) -> Sidecar:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_token_file(path: Path) -> str:
    """Write a fresh random token to `path` as Argo's init container does, and return it.

    Mode 0440, no trailing newline (docs/contract.md §4.1). A read-only file left at `path` is replaced.
    """
    token = secrets.token_urlsafe(32)
    path.unlink(missing_ok=True)
    path.write_text(token)
    path.chmod(0o440)
    return token


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
