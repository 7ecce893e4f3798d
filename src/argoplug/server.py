"""The plugin server: the ASGI app a sidecar runs, hosting any number of plugins.

`create_app` builds the Starlette app; `serve` runs it on uvicorn. The CLI (`argoplug serve`) and the
test kit (`argoplug.testing`) call them. Behaviour follows `CONTRACT.md` §2–§4.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from argoplug.plugin import Plugin, Result, Task, outcome_for
from argoplug.protocol import ExecuteTemplateArgs, ExecuteTemplateReply, NodeResult, Phase

__all__ = ["DEFAULT_TOKEN_FILE", "ServerSettings", "configure_logging", "create_app", "serve"]

DEFAULT_TOKEN_FILE = "/var/run/argo/token"
EXECUTE_PATH = "/api/v1/template.execute"

log = logging.getLogger("argoplug.server")

_JSON = "application/json"
_EMPTY_REPLY = b"{}"


class _PluginKeys(msgspec.Struct):
    plugin: dict[str, msgspec.Raw] = {}


class _Envelope(msgspec.Struct):
    """The least of a request that tells whose template it is: decoded for every call."""

    template: _PluginKeys


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_args_decoder = msgspec.json.Decoder(ExecuteTemplateArgs)
_reply_encoder = msgspec.json.Encoder()


class ServerSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the server behaves.

    `token_file`: the agent's token (CONTRACT §4), read on the first call of ours and again whenever the
    file changes. `handler_deadline` (seconds): a handler still running after it is answered
    `Running` with a requeue of `deadline_requeue` seconds while it goes on, because the agent gives up
    on a call after 30 s. `handler_threads`: threads for sync handlers.
    """

    token_file: str = DEFAULT_TOKEN_FILE
    handler_deadline: float = 20.0
    deadline_requeue: float = 5.0
    handler_threads: int = 64


class _TokenCheck:
    """Compares `Authorization: Bearer <token>` with the token file in constant time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._expected: bytes | None = None

    def problem(self, header: str | None) -> str | None:
        """Return why the call is refused, or None when the token matches."""
        expected = self._load()
        if expected is None:
            return f"token file {self.path} is missing or unreadable"
        if header is None:
            return "missing Authorization header"
        if not hmac.compare_digest(header.encode("utf-8", "surrogateescape"), expected):
            return "invalid token"
        return None

    def _load(self) -> bytes | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            self._stamp = self._expected = None
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                token = Path(self.path).read_bytes().strip()
            except OSError:
                return None
            self._expected = b"Bearer " + token
            self._stamp = stamp
        return self._expected


class _PluginServer:
    def __init__(self, plugins: Iterable[Plugin[Any]], settings: ServerSettings) -> None:
        self.plugins: dict[str, Plugin[Any]] = {}
        for plugin in plugins:
            other = self.plugins.get(plugin.key)
            if other is not None and other is not plugin:
                raise ValueError(
                    f"plugin key {plugin.key!r} is claimed twice: by {other.name} and by {plugin.name}"
                )
            self.plugins[plugin.key] = plugin
        self.settings = settings
        self.token = _TokenCheck(settings.token_file)
        self._background: set[asyncio.Future[Any]] = set()

    async def execute(self, request: Request) -> Response:
        body = await request.body()
        try:
            envelope = _envelope_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("malformed template.execute request: %s", exc)
            return _error(400, f"malformed template.execute request: {exc}")
        plugin = next((self.plugins[k] for k in envelope.template.plugin if k in self.plugins), None)
        if plugin is None:
            return Response(_EMPTY_REPLY, media_type=_JSON)
        refusal = self.token.problem(request.headers.get("authorization"))
        if refusal is not None:
            log.warning("refused template.execute for plugin key %r: %s", plugin.key, refusal)
            return _error(403, refusal)
        started = time.perf_counter()
        try:
            args = _args_decoder.decode(body)
        except msgspec.ValidationError as exc:
            node = NodeResult(phase=Phase.FAILED, message=f"invalid template in request: {exc}")
            return self._reply(node, None, plugin.key, None, started)
        task = Task.from_args(args, plugin.key)
        outcome = await self._run(plugin, task)
        node, requeue = outcome_for(outcome, args.template)
        return self._reply(node, requeue, plugin.key, task, started)

    async def _run(self, plugin: Plugin[Any], task: Task) -> Result | BaseException:
        call = asyncio.ensure_future(plugin.call(task))
        try:
            return await asyncio.wait_for(asyncio.shield(call), self.settings.handler_deadline)
        except TimeoutError:
            # The handler goes on; answer before the agent's 30 s client timeout and come back later.
            self._background.add(call)
            call.add_done_callback(self._finished_late)
            return Result.running(
                f"handler still running after {self.settings.handler_deadline:g}s",
                requeue=self.settings.deadline_requeue,
            )
        except Exception as exc:  # mapped to a Failed/Error node, never a 500
            if not _expected_error(exc):
                log.error("handler of plugin %r raised", plugin.key, exc_info=exc)
            return exc

    def _finished_late(self, call: asyncio.Future[Any]) -> None:
        self._background.discard(call)
        if not call.cancelled() and call.exception() is not None and not _expected_error(call.exception()):
            log.error("late handler raised", exc_info=call.exception())

    def _reply(
        self, node: NodeResult, requeue: str | None, key: str, task: Task | None, started: float
    ) -> Response:
        elapsed = time.perf_counter() - started
        log.info(
            "template.execute",
            extra={
                "workflow": task.workflow_name if task else None,
                "namespace": task.namespace if task else None,
                "template": task.template.name if task else None,
                "plugin_key": key,
                "phase": node.phase.value,
                "requeue": requeue,
                "duration_ms": round(elapsed * 1000, 2),
                "node_message": node.message,
            },
        )
        return Response(
            _reply_encoder.encode(ExecuteTemplateReply(node=node, requeue=requeue)), media_type=_JSON
        )

    async def healthz(self, request: Request) -> Response:
        return Response(
            _reply_encoder.encode({"status": "ok", "plugins": sorted(self.plugins)}), media_type=_JSON
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # The loop's default pool has min(32, cpus + 4) threads: 6 on two cores, too few for 16 agent workers.
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.handler_threads, thread_name_prefix="argoplug-handler"
        )
        asyncio.get_running_loop().set_default_executor(pool)
        log.info("serving plugin keys %s", ", ".join(sorted(self.plugins)) or "(none)")
        try:
            yield
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            log.info("plugin server stopped")


def _expected_error(exc: BaseException | None) -> bool:
    from argoplug.plugin import PermanentError, TemporaryError

    return isinstance(exc, (PermanentError, TemporaryError))


def _error(status: int, message: str) -> Response:
    return Response(_reply_encoder.encode({"error": message}), status_code=status, media_type=_JSON)


def create_app(plugins: Iterable[Plugin[Any]], settings: ServerSettings | None = None) -> Starlette:
    """Build the ASGI app serving `plugins`.

    Routes: `POST /api/v1/template.execute` (CONTRACT §2–§4) and `GET /healthz`. A template whose plugin
    key is not served gets `200 {}`; the token is checked only for served keys (403 on mismatch or a
    missing header); a malformed body gets 400; a handler's error is a Failed/Error node in a 200 reply.
    Raises ValueError when two plugins claim the same key.
    """
    server = _PluginServer(plugins, settings or ServerSettings())
    app = Starlette(
        routes=[
            Route(EXECUTE_PATH, server.execute, methods=["POST"]),
            Route("/healthz", server.healthz, methods=["GET"]),
        ],
        lifespan=server.lifespan,
    )
    app.state.plugin_server = server
    return app


class _JsonFormatter(logging.Formatter):
    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self._skip and v is not None})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry, enc_hook=str).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _JsonFormatter._skip and v is not None}
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    """Send argoplug's logs to stderr: one JSON object per line (`json`), or `text`.

    `auto` picks text on a terminal and JSON elsewhere. Tokens never reach the log.
    """
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    if log_format not in ("json", "text"):
        raise ValueError(f"log format must be json, text or auto, got {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    root = logging.getLogger("argoplug")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = [handler]
        logging.getLogger(name).propagate = False


def serve(
    plugins: Iterable[Plugin[Any]],
    *,
    host: str = "127.0.0.1",
    port: int = 4355,
    settings: ServerSettings | None = None,
) -> None:
    """Serve `plugins` on `host:port` with uvicorn until SIGTERM or SIGINT."""
    import uvicorn

    app = create_app(plugins, settings)
    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_config=None, log_level="warning", lifespan="on"
    )
    uvicorn.Server(config).run()
