"""Plugin servers for the tests of `argoplug check`: Argo's documented example, and ones that misbehave.

`ContractServer` is a plain standard-library server that keeps or breaks docs/contract.md §2–§4 one way at a
time (its `Behaviour`), so each test shows one rule failing. `hello_launcher` runs Argo's documented example
server (tests/vectors/hello-plugin-src/server.py) unchanged, as a subprocess.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from argoplug.conformance.driver import Launched, Launcher

HELLO_SERVER = Path(__file__).parent / "vectors" / "hello-plugin-src" / "server.py"

SUCCEEDED = {
    "node": {
        "phase": "Succeeded",
        "message": "done",
        "outputs": {"parameters": [{"name": "a", "value": "1"}]},
    }
}

# Run a plugin server file byte for byte, with its hard-coded token path and port redirected: `open` of
# /var/run/argo/token reads argv[1] instead, and http.server.HTTPServer binds 127.0.0.1:argv[2]. Neither
# root nor a free port 4355 is needed.
_REDIRECT = """
import builtins, http.server, runpy, sys
token_file, port, server = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_open = builtins.open
def redirected_open(file, *args, **kwargs):
    return real_open(token_file if file == "/var/run/argo/token" else file, *args, **kwargs)
builtins.open = redirected_open
class Loopback(http.server.HTTPServer):
    def __init__(self, address, handler, *args, **kwargs):
        super().__init__(("127.0.0.1", port), handler, *args, **kwargs)
http.server.HTTPServer = Loopback
sys.argv = [server]
runpy.run_path(server, run_name="__main__")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def hello_launcher(workdir: Path, server: Path = HELLO_SERVER) -> Launcher:
    """A Launcher running `server` (default: Argo's hello example) unchanged in a subprocess.

    Its token file is `workdir/token` (written as the agent's init container does), its output goes to
    `workdir/server.log`; it is stopped with SIGTERM.
    """

    def launch() -> Launched:
        token_file = workdir / "token"
        token_file.write_text("hello-token")
        port = free_port()
        with (workdir / "server.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", _REDIRECT, str(token_file), str(port), str(server)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

        def stop() -> None:
            process.terminate()
            process.wait(timeout=10)

        return Launched(
            f"http://127.0.0.1:{port}", "hello-token", stop, ("hello",), f"{server} on port {port}"
        )

    return launch


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How a ContractServer answers; the defaults keep the contract.

    `foreign_status`: the status for templates of other keys (200: `{}`); `foreign_body`: its body.
    `token_first`: check the token before the key (403 for another plugin's template without it).
    `check_token`: False accepts any caller. `prefix_token`: accept any header that starts with the token.
    `reply`: the reply to our key. `strict`: answer 500 to a body with fields it does not know (as a
    strict model would), before looking at the key. `lock`: run one call at a time, each taking `delay`
    seconds (the connections are still read in parallel). `start_delay`: listen only after that long.
    """

    foreign_status: int = 200
    foreign_body: bytes = b"{}"
    token_first: bool = False
    check_token: bool = True
    prefix_token: bool = False
    reply: Any = dataclasses.field(default_factory=lambda: SUCCEEDED)
    strict: bool = False
    lock: bool = False
    delay: float = 0.0
    start_delay: float = 0.0


_KNOWN = {
    "": {"workflow", "template"},
    "workflow": {"metadata"},
    "workflow.metadata": {"name", "namespace", "uid"},
    "template": {"name", "inputs", "outputs", "metadata", "plugin"},
    "template.inputs": {"parameters"},
}


def _unknown_field(body: dict[str, Any]) -> str:
    for path, known in _KNOWN.items():
        node: Any = body
        for part in filter(None, path.split(".")):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        for field in node if isinstance(node, dict) else ():
            if field not in known:
                return f"{path}.{field}".lstrip(".")
    return ""


class ContractServer:
    """A plugin server for plugin key `key` with token `token`, on a free loopback port (use `with`)."""

    def __init__(
        self, behaviour: Behaviour = Behaviour(), *, key: str = "bad", token: str = "the-token"
    ) -> None:
        self.behaviour, self.key, self.token = behaviour, key, token
        self.calls = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, reply = owner.answer(self.path, self.headers.get("Authorization"), body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that give up (the stall probe) break pipes: expected

        self._server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._server.server_bind()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def answer(self, path: str, authorization: str | None, raw: bytes) -> tuple[int, bytes]:
        """(status, body) for one POST."""
        b = self.behaviour
        if path != "/api/v1/template.execute":
            return 404, b""
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, b'{"error": "bad JSON"}'
        if b.strict and _unknown_field(body):
            return 500, f'{{"error": "unknown field {_unknown_field(body)}"}}'.encode()
        expected = f"Bearer {self.token}"
        if b.prefix_token:
            authorized = (authorization or "").startswith(expected[:-1])
        else:
            authorized = authorization == expected or not b.check_token
        if b.token_first and not authorized:
            return 403, b""
        if self.key not in body.get("template", {}).get("plugin", {}):
            return b.foreign_status, b.foreign_body
        if not authorized:
            return 403, b""
        if b.lock:
            with self._lock:
                time.sleep(b.delay)
        elif b.delay:
            time.sleep(b.delay)
        return 200, json.dumps(b.reply).encode()

    def _serve(self) -> None:
        if self.behaviour.start_delay:
            time.sleep(self.behaviour.start_delay)
            self._server.server_activate()
        self._server.serve_forever(poll_interval=0.01)

    def start(self) -> ContractServer:
        if not self.behaviour.start_delay:
            self._server.server_activate()  # listening when this returns
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()  # before a delayed start too: serve_forever then returns at once
        self._server.server_close()

    def launched(self) -> Launched:
        """Start it and describe it as a Launcher would (for `check_launched`)."""
        self.start()
        return Launched(self.url, self.token, self.stop, (self.key,), "a contract server")

    def __enter__(self) -> ContractServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
