"""A test double of Kubeflow Pipelines' central driver server, over real sockets (HTTP or TLS).

It answers as the implementation PRs' driver does (kubeflow/pipelines #13171, backend/src/driver:
`rpc_handler.go` ExecutePlugin and `driverapi/response.go`; tests/vectors/kfp/README.md): POST only (405
else); a body it cannot decode, or one without `template.plugin.driver-plugin.args`, is a plain-text 400;
`validate` refuses a missing `type` ("argument type must be specified") and a proxy argument left "unset"
("argument http_proxy is required but can be an empty value") with 400; otherwise 200 with `{"node":
{"phase", "outputs": {"parameters": [...]}, "message"}}`, no requeue. `POST /api/v1/execute` takes the
`args` alone, as the proposal's mock plugin sends them (PR #12023 main.py).

What it answers is made up here (an incrementing execution id, a pod spec patch naming the task), not
KFP's logic. `requests` records each call as (path, Authorization header, JSON body); `tokens`, when set,
are the bearer tokens it accepts (others get 401); `delay` (seconds) holds every answer; `fail` makes the
driver fail (200 with phase Failed, as the PR answers a driver error); `unavailable` answers that many calls
503 first; `cached` is the cached decision of CONTAINER tasks.
"""

from __future__ import annotations

import http.server
import itertools
import json
import ssl
import threading
import time
from typing import Any, Self

UNSET_PROXY = "unset"


class KfpDriverDouble:
    def __init__(self, *, tls: Any = None) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.tokens: set[str] | None = None
        self.delay = 0.0
        self.fail = ""
        self.unavailable = 0
        self.cached = False
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(405, "method not allowed", "text/plain")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                status, body, kind = double.answer(self.path, self.headers.get("Authorization", ""), raw)
                self._send(status, body, kind)

            def _send(self, status: int, body: str, kind: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.configure_cert(context)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.base = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def template_execute_url(self) -> str:
        """Where the PRs' driver listens (it speaks template.execute)."""
        return f"{self.base}/api/v1/template.execute"

    @property
    def execute_url(self) -> str:
        """Where the proposal's mock sends the bare `args`."""
        return f"{self.base}/api/v1/execute"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the driver --------------------------------------------------------------------------------------

    def answer(self, path: str, authorization: str, raw: bytes) -> tuple[int, str, str]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self.requests.append((path, authorization, body))
            unavailable = self.unavailable > 0
            if unavailable:
                self.unavailable -= 1
        if self.delay:
            time.sleep(self.delay)
        if self.tokens is not None and authorization.removeprefix("Bearer ") not in self.tokens:
            return 401, "Unauthorized\n", "text/plain; charset=utf-8"
        if unavailable:
            return 503, "driver unavailable\n", "text/plain; charset=utf-8"
        if path == "/api/v1/template.execute":
            try:
                args = body["template"]["plugin"]["driver-plugin"]["args"]
            except (TypeError, KeyError):
                return 400, "invalid request: no driver-plugin args\n", "text/plain; charset=utf-8"
        elif path == "/api/v1/execute":
            args = body
        else:
            return 404, "404 page not found\n", "text/plain; charset=utf-8"
        if not isinstance(args, dict):
            return 400, "invalid args\n", "text/plain; charset=utf-8"
        problem = _validate(args)
        if problem:
            return 400, problem + "\n", "text/plain; charset=utf-8"
        return 200, json.dumps({"node": self._node(args)}), "application/json"

    def _node(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.fail:
            message = f"unable to drive execution: KFP driver: {self.fail}"
            return {"phase": "Failed", "outputs": {"parameters": []}, "message": message}
        parameters = [{"name": "execution-id", "value": str(next(self._ids))}]
        if args["type"] in ("ROOT_DAG", "DAG"):
            parameters.append({"name": "iteration-count", "value": "0"})
        else:
            parameters.append({"name": "cached-decision", "value": "true" if self.cached else "false"})
        parameters.append({"name": "condition", "value": "nil"})  # extractOutputParameters: unset is "nil"
        patch = "" if args["type"] != "CONTAINER" else json.dumps({"containers": [{"name": "main"}]})
        parameters.append({"name": "pod-spec-patch", "value": patch})
        return {"phase": "Succeeded", "outputs": {"parameters": parameters}, "message": ""}


def _validate(args: dict[str, Any]) -> str:
    if not args.get("type"):
        return "argument type must be specified"
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        if args.get(name) == UNSET_PROXY:
            return f"argument {name} is required but can be an empty value"
    return ""
