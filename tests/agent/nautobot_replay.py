"""A loopback HTTP server that answers with responses recorded from a real Nautobot.

The recordings are in tests/vectors/nautobot/ (how they were made: README.md there). Each file is
`{"request": {"method", "path", "query", "headers"}, "response": {"status", "headers", "body"}}`.

`NautobotReplay(recordings_dir, token=...)` answers a request like this, as the recorded Nautobot did:

- a request under one of the recorded collections (`/api/dcim/devices/`, `/api/ipam/ip-addresses/`, ...)
  whose Authorization header is not `Token <token>` gets the recorded bad-token answer (403), or the recorded
  no-credentials answer when it has no Authorization header at all;
- a request whose method, path and query (its parameters compared as a multiset, so their order does not
  matter) are those of a recording gets that recording's status, headers and body;
- anything else gets 404 with the body Nautobot answered for an unknown path under /api/.
"""

from __future__ import annotations

import collections
import http.server
import json
import urllib.parse
from pathlib import Path
from typing import Any

from .helpers import LoopbackHttpServer

TOKEN_PLACEHOLDER = "Token <NAUTOBOT_TOKEN>"
NOT_FOUND_RECORDING = "unknown-api-path"

Key = tuple[str, str, tuple[tuple[str, str], ...]]


def load_recordings(recordings_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Every `*.json` recording in `recordings_dir` (not its subfolders), by file name without `.json`."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(Path(recordings_dir).glob("*.json"))}


def request_key(method: str, path: str, query: str) -> Key:
    params = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return method.upper(), path, tuple(sorted(collections.Counter(params).elements()))


def _collection(path: str) -> str:
    """`/api/dcim/devices/<id>/` -> `/api/dcim/devices/`."""
    return "/".join(path.split("/")[:4]) + "/"


class NautobotReplay(LoopbackHttpServer):
    """Serve the recordings in `recordings_dir` on 127.0.0.1, expecting `Authorization: Token <token>`.

    `token` is the API token; a value that already begins with `Token ` is taken as the whole header value.
    Use as a context manager (LoopbackHttpServer); `.url` is the base URL (Nautobot's, without `/api`),
    `.requests` lists the requests answered as `(method, path_with_query, headers)`, `.recordings` the
    loaded recordings by name.
    """

    def __init__(self, recordings_dir: str | Path, *, token: str) -> None:
        self.authorization = token if token.startswith("Token ") else f"Token {token}"
        self.recordings = load_recordings(recordings_dir)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._answers: dict[Key, dict[str, Any]] = {}
        self._bad_token: dict[str, Any] | None = None
        self._no_token: dict[str, Any] | None = None
        self._collections: set[str] = set()
        for name, recording in self.recordings.items():
            request = recording["request"]
            authorization = request.get("headers", {}).get("Authorization")
            if authorization is None:
                self._no_token = recording["response"]
            elif authorization != TOKEN_PLACEHOLDER:
                self._bad_token = recording["response"]
            elif name != NOT_FOUND_RECORDING:
                key = request_key(request["method"], request["path"], request.get("query", ""))
                if key in self._answers:
                    raise ValueError(f"{recordings_dir}: two recordings of {key}")
                self._answers[key] = recording["response"]
                self._collections.add(_collection(request["path"]))
        if NOT_FOUND_RECORDING not in self.recordings or self._bad_token is None:
            raise ValueError(f"{recordings_dir}: needs {NOT_FOUND_RECORDING}.json and a bad-token recording")
        self._not_found = self.recordings[NOT_FOUND_RECORDING]["response"]
        if self._no_token is None:
            self._no_token = self._bad_token
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or "0")
                if length:
                    self.rfile.read(length)
                replay.requests.append((self.command, self.path, dict(self.headers)))
                self._send(replay.respond(self.command, self.path, self.headers.get("Authorization")))

            def _send(self, response: dict[str, Any]) -> None:
                data = json.dumps(response["body"], separators=(",", ":")).encode()
                self.send_response(response["status"])
                for name, value in response.get("headers", {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)

    def respond(self, method: str, target: str, authorization: str | None) -> dict[str, Any]:
        """The recorded response for a request line's method and target and its Authorization header."""
        path, _, query = target.partition("?")
        if _collection(path) in self._collections and authorization != self.authorization:
            assert self._no_token is not None and self._bad_token is not None
            return self._no_token if authorization is None else self._bad_token
        return self._answers.get(request_key(method, path, query), self._not_found)
