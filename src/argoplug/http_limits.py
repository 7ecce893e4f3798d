"""Limits on the connections `argoplug serve` accepts, below the ASGI app: what uvicorn does not bound.

uvicorn's httptools protocol reads a request head of any size (a 256 MB header was read for 92 s, to
547 MiB), keeps a connection that never finishes its head open forever (`timeout_keep_alive` runs only
between requests) and accepts any number of connections. The sidecar shares the agent pod's memory limit
with every other plugin, so `limited_protocol` returns uvicorn's `HttpToolsProtocol` with:

- `max_connections`: a connection beyond it is answered `503` (the agent retries 503,
  `workflow/executor/agent.go`) and closed before anything is read; the connections already open keep
  being served, so the agent's keep-alive connections are not starved by others;
- `header_timeout` (seconds): a request head not complete that long after the connection opened, or
  after its first byte on a kept-alive connection, is answered `408` and the connection closed;
- `max_header_bytes` and `max_headers`: a head larger, or with more header lines, is answered `431`
  and the connection closed, without reading the rest;
- a client that half-closes its side before its body reached its `Content-Length` is answered `400`
  at once instead of waiting for the body deadline.

The ASGI app bounds the body itself (size, deadline), so those limits hold on any server. This module
is used only by `argoplug.server.serve` and the test kit; it imports uvicorn and httptools.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ConnectionLimits", "limited_protocol"]


class ConnectionLimits:
    """The bounds `limited_protocol` enforces (see the module docstring); values as in ServerSettings."""

    __slots__ = ("header_timeout", "max_connections", "max_header_bytes", "max_headers")

    def __init__(
        self, *, max_connections: int, header_timeout: float, max_header_bytes: int, max_headers: int
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers


class _TooManyHeaders(Exception):
    """Raised from the parser's header callback to stop parsing at once."""


def _reply(status: str, message: str) -> bytes:
    body = message.encode("ascii")
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


def limited_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's `HttpToolsProtocol` enforcing `limits`: pass it as `uvicorn.Config(http=...)`."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0
        _header_count = 0
        _in_head = True
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= limits.max_connections:
                self._refused = True
                self.transport = transport
                transport.write(
                    _reply(
                        "503 Service Unavailable",
                        f"too many connections (more than {limits.max_connections}); retry",
                    )
                )
                transport.close()
                return
            super().connection_made(transport)
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def eof_received(self) -> None:
            cycle = self.cycle
            if cycle is not None and cycle.more_body and not cycle.response_started and not self._in_head:
                cycle.response_started = True  # the app's own answer would now be too late
                self.transport.write(
                    _reply("400 Bad Request", "the client closed before its body reached its Content-Length")
                )
            # Returning None: asyncio closes the transport.

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)  # a parse error (ours: _TooManyHeaders) ends in send_400_response
            if self._header_count > limits.max_headers:
                self._refuse("431 Request Header Fields Too Large", f"more than {limits.max_headers} headers")
            elif self._in_head and self._head_bytes > limits.max_header_bytes:
                self._refuse(
                    "431 Request Header Fields Too Large",
                    f"request head larger than {limits.max_header_bytes} bytes",
                )

        def send_400_response(self, msg: str) -> None:
            if self._header_count > limits.max_headers:
                return  # the parse stopped on our own callback: data_received answers 431
            super().send_400_response(msg)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            self._header_count = 0
            if self._head_timer is None:
                self._start_head_timer()

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > limits.max_headers:
                raise _TooManyHeaders
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._stop_head_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_response_complete()

        def _start_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(limits.header_timeout, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self._in_head or self.transport.is_closing():
                return
            if self._head_bytes == 0 and self.cycle is not None:
                # Kept alive after a response, nothing of a next request yet: uvicorn's keep-alive
                # timer closes it; nothing to answer.
                return
            self._refuse(
                "408 Request Timeout", f"request head not received within {limits.header_timeout:g} s"
            )

        def _refuse(self, status: str, message: str) -> None:
            if not self.transport.is_closing():
                self.transport.write(_reply(status, message))
                self.transport.close()

    LimitedHttpToolsProtocol.__qualname__ = "LimitedHttpToolsProtocol"
    return LimitedHttpToolsProtocol
