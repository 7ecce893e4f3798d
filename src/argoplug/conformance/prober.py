"""`Prober`: sends the requests of `argoplug check` to one server over real HTTP (a raw socket for the
stall probe) and records each as an `Exchange`; `argoplug.conformance.driver` drives it.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from typing import Any

import httpx

from argoplug.conformance.rules import AGENT_WORKERS, Exchange, Limits
from argoplug.protocol import EXECUTE_PATH

__all__ = ["Prober"]


class Prober:
    """Sends requests to one server and records them as `Exchange`s (the agent's timeout per call)."""

    def __init__(self, url: str, limits: Limits, *, timeout: float | None = None) -> None:
        self.url = url.rstrip("/")
        self.limits = limits
        pool = httpx.Limits(max_connections=AGENT_WORKERS * 2)
        self.http = httpx.Client(timeout=limits.timeout if timeout is None else timeout, limits=pool)

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def post(
        self, label: str, body: Any, *, token: str | None, path: str = EXECUTE_PATH, method: str = "POST"
    ) -> Exchange:
        """Send `body` (JSON, or bytes as they are) with `Authorization: Bearer <token>` (None: no header)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        try:
            response = self.http.request(method, self.url + path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            return Exchange(label, None, seconds=time.monotonic() - started, error=_transport_error(exc))
        return Exchange(label, response.status_code, response.content, time.monotonic() - started)

    def stall_probe(self, stalled: bytes, token: str | None, other: Any) -> tuple[Exchange, Exchange] | None:
        """Send `stalled` with half its body, then `other` on a second connection, then the rest of the first.

        Returns (the second call, the stalled one), or None when the URL is not http://. A server that
        serves one connection at a time cannot answer the second call before the first request is whole;
        the second call waits `limits.stall_wait` seconds at most.
        """
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "http" or parts.hostname is None:
            return None
        head = [f"POST {EXECUTE_PATH} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
        if token is not None:
            head.append(f"Authorization: Bearer {token}")
        head += [f"Content-Length: {len(stalled)}", "Connection: close", "", ""]
        half = len(stalled) // 2
        started = time.monotonic()
        try:
            sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=self.limits.timeout)
        except OSError:
            return None  # the calls' own verdicts say that it does not answer
        with sock:
            try:
                sock.sendall("\r\n".join(head).encode() + stalled[:half])
                time.sleep(0.05)  # the server holds the incomplete request
            except OSError:
                return None
            with Prober(self.url, self.limits, timeout=self.limits.stall_wait) as quick:
                second = quick.post("a call meanwhile", other, token=token)
            try:
                sock.sendall(stalled[half:])
            except OSError as exc:
                error = f"it closed the connection of the incomplete request ({exc.strerror or exc})"
                return second, Exchange(
                    "the incomplete call", None, seconds=time.monotonic() - started, error=error
                )
            return second, _read_answer(sock, "the incomplete call", started)


def _read_answer(sock: socket.socket, label: str, started: float) -> Exchange:
    """Read one HTTP answer until the server closes the connection (the request said `Connection: close`)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError as exc:
        return Exchange(label, None, seconds=time.monotonic() - started, error=str(exc) or type(exc).__name__)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[1].isdigit():
        error = "the connection was closed without an answer"
        return Exchange(label, None, seconds=time.monotonic() - started, error=error)
    return Exchange(label, int(status[1]), body, time.monotonic() - started)


def _transport_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was closed without an answer"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}"
    return f"{type(exc).__name__}: {exc}"
