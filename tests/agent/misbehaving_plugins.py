"""Executor plugin servers that misbehave in each way of docs/contract.md §3, on the standard library alone.

Each serves one plugin key. For its own key it answers as its `behaviour` says (the token checked first:
403 when wrong), for other keys `{}`, unless the behaviour is about foreign keys. In-process:
`with MisbehavingPlugin("400-foreign", "bad") as server: server.endpoint()`; as a sidecar process:
`python misbehaving_plugins.py BEHAVIOUR KEY PORT [TOKEN_FILE]` (`plugin_folder` writes the Argo plugin
folder that runs it so).
"""

from __future__ import annotations

import http.server
import json
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()

# behaviour → (reply to our own key, reply to a foreign key); a reply is (status, body), body JSON or bytes.
SUCCEEDED = (200, {"node": {"phase": "Succeeded", "message": "done", "outputs": {"parameters": []}}})
NOT_MINE = (200, {})
Reply = tuple[int, Any]
BEHAVIOURS: dict[str, tuple[Reply, Reply]] = {
    "good": (SUCCEEDED, NOT_MINE),
    "404-all": ((404, b"404 page not found"), (404, b"404 page not found")),
    "404-foreign": (SUCCEEDED, (404, b"")),
    "400-foreign": (SUCCEEDED, (400, {"error": "unknown plugin"})),
    "403-foreign": (SUCCEEDED, (403, b"forbidden")),
    "empty-body": ((200, b""), NOT_MINE),
    "number-requeue": ((200, {"node": {"phase": "Running", "message": "started"}, "requeue": 30}), NOT_MINE),
    "terminal-requeue": (
        (200, {"node": {"phase": "Failed", "message": "broke"}, "requeue": "30s"}),
        NOT_MINE,
    ),
    "running-no-requeue": ((200, {"node": {"phase": "Running", "message": "started"}}), NOT_MINE),
    "500": ((500, b"internal error"), NOT_MINE),
    "slow": (SUCCEEDED, NOT_MINE),  # answers its own key after `delay` seconds
}


class MisbehavingPlugin:
    """A plugin server for key `key` on a loopback port (`port` 0: a free one), behaving as `behaviour`.

    `calls` lists the plugin key of every request received, in order; `token` is the one it expects.
    Succeeded replies carry the output parameter `said` = the `said` argument of the template (or the key).
    """

    def __init__(
        self, behaviour: str, key: str, *, token: str = "token", port: int = 0, delay: float = 1.0
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}: one of {', '.join(BEHAVIOURS)}")
        self.behaviour, self.key, self.token, self.delay = behaviour, key, token, delay
        self.calls: list[str] = []
        self._lock = threading.Lock()
        plugin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")
                status, payload = plugin.reply(self.path, self.headers.get("Authorization", ""), body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                sys.stderr.write(f"{plugin.behaviour}: {format % args}\n")

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a caller that gave up (the slow behaviour) breaks the pipe: expected

        self._server = Server(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def reply(self, path: str, authorization: str, body: Any) -> Reply:
        """The (status, body) answer to a POST of `body` to `path`."""
        if path != "/api/v1/template.execute":
            return 404, b"404 page not found"
        block = ((body or {}).get("template") or {}).get("plugin") or {}
        key = next(iter(block), "")
        with self._lock:
            self.calls.append(key)
        own, foreign = BEHAVIOURS[self.behaviour]
        if key != self.key:
            return foreign
        if self.behaviour != "404-all" and authorization != f"Bearer {self.token}":
            return 403, b"wrong token"
        if self.behaviour == "slow":
            time.sleep(self.delay)
        if own is SUCCEEDED:
            said = str((block.get(key) or {}).get("said", key))
            return 200, {"node": {"phase": "Succeeded", "message": f"{key} done", "outputs": _said(said)}}
        return own

    def endpoint(self) -> Any:
        from argoplug.agent.client import PluginEndpoint

        return PluginEndpoint(self.url, self.token, name=f"{self.key} ({self.behaviour})")

    def serve_forever(self) -> None:
        self._server.serve_forever(0.05)

    def __enter__(self) -> MisbehavingPlugin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _said(value: str) -> dict[str, Any]:
    return {"parameters": [{"name": "said", "value": value}]}


def plugin_folder(folder: Path, behaviour: str, key: str, port: int, token_file: Path | None = None) -> Path:
    """Write an Argo plugin folder (`plugin.yaml`) whose sidecar runs this module as `behaviour` for `key`."""
    folder.mkdir(parents=True, exist_ok=True)
    args = [str(HERE), behaviour, key, str(port), *([str(token_file)] if token_file else [])]
    (folder / "plugin.yaml").write_text(
        textwrap.dedent(f"""\
            apiVersion: argoproj.io/v1alpha1
            kind: ExecutorPlugin
            metadata:
              name: {key}
            spec:
              sidecar:
                container:
                  name: {key}-executor-plugin
                  image: example.org/{key}:latest
                  command: {json.dumps([sys.executable, "-u"])}
                  args: {json.dumps(args)}
                  ports: [{{containerPort: {port}}}]
                  resources: {{requests: {{cpu: 10m}}, limits: {{cpu: 100m}}}}
                  securityContext: {{runAsNonRoot: true}}
            """)
    )
    return folder


def main(argv: list[str]) -> None:
    """`BEHAVIOUR KEY PORT [TOKEN_FILE]`: serve until SIGTERM, reading the token as a sidecar does."""
    behaviour, key, port = argv[0], argv[1], int(argv[2])
    token_file = Path(argv[3] if len(argv) > 3 else "/var/run/argo/token")
    token = token_file.read_text().strip()
    print(f"{behaviour} plugin {key!r} listening on port {port}", flush=True)
    MisbehavingPlugin(behaviour, key, token=token, port=port).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
