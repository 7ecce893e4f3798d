"""A what-if for bench/diagnose.py: argoplug's own request handling behind a bare ASGI callable.

Same `_PluginServer` (token check, dispatch, handler, reply) as `argoplug serve`, same uvicorn settings,
but no Starlette routing, middleware or Request/Response objects: what they cost per call is the
difference. Uses argoplug internals (`app.state.plugin_server`): a measuring device, not an API.
Usage: python bench/raw_asgi.py PORT TOKEN_FILE (serves bench/gc_probe.py's sync plugin).
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from gc_probe import sync_plugin

from argoplug.server import EXECUTE_PATH, ServerSettings, create_app

_server = create_app([sync_plugin], ServerSettings(token_file=sys.argv[2])).state.plugin_server
_EMPTY = b"{}"


class _Request:
    """The two things `_PluginServer.execute` reads from a request."""

    __slots__ = ("_body", "headers")

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self._body = body
        self.headers = headers

    async def body(self) -> bytes:
        return self._body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        async with _server.lifespan(None):
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
    if scope["path"] != EXECUTE_PATH or scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    chunks = []
    for _ in range(100_000):
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    response = await _server.execute(_Request(b"".join(chunks), headers))
    await send(
        {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=False,
        log_config=None,
        log_level="warning",
        lifespan="on",
    )
