"""The plugin server: the ASGI app a sidecar runs, hosting any number of plugins.

`create_app` builds the Starlette app; `serve` runs it on uvicorn. The CLI (`argoplug serve`) and the
test kit (`argoplug.testing`) call them. Behaviour follows `CONTRACT.md` §2–§4; the server hooks of
`argoplug.hookspecs` (startup, shutdown, before/after each handler call) are called from here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import hmac
import inspect
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from argoplug.hooks import HookError, Implementation, failure_message, implementations
from argoplug.jobs import STOP_JOBS_TIMEOUT, stop_running_jobs
from argoplug.plugin import PermanentError, Plugin, Result, Task, TemporaryError, outcome_for, result_for
from argoplug.protocol import (
    DEFAULT_PORT,
    DEFAULT_TOKEN_FILE,
    EXECUTE_PATH,
    ExecuteTemplateArgs,
    ExecuteTemplateReply,
    NodeResult,
    Phase,
)
from argoplug.token_access import token_file_problem

if TYPE_CHECKING:
    import pluggy

__all__ = ["DEFAULT_TOKEN_FILE", "ServerSettings", "configure_logging", "create_app", "serve"]

AGENT_CALL_TIMEOUT = 30.0  # the agent's HTTP client timeout (workflow/executor/agent.go)
POD_GRACE_PERIOD = 30.0  # Kubernetes' default terminationGracePeriodSeconds: SIGTERM, then SIGKILL
STOP_GRACE = 5  # seconds calls in flight get once SIGTERM came (uvicorn's timeout_graceful_shutdown)

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
    file changes. `handler_deadline` (seconds, above 0 and below the agent's 30 s client timeout): a
    handler still running after it is answered `Running` with a requeue of `deadline_requeue` seconds;
    it goes on, and the next call of the same task waits for it or takes its result instead of starting
    the handler again. `late_result_ttl` (seconds): how long a result that finished after its call was
    answered is kept for that next call. `handler_threads`: threads for sync handlers. `tune_gc`: after
    start-up, freeze the objects made so far out of the garbage collector's reach and collect the young
    generation less often (see `_tune_gc`). `stop_jobs_timeout` (seconds): when the server stops
    (SIGTERM: Argo deletes the agent pod of a workflow stopped, terminated or ended), how long it waits
    for the external jobs still running to be cancelled (`argoplug.jobs.stop_running_jobs`); with the
    `STOP_GRACE` seconds given to calls in flight it stays under Kubernetes' default 30 s grace period.
    Raises ValueError for values out of range.
    """

    token_file: str = DEFAULT_TOKEN_FILE
    handler_deadline: float = 20.0
    deadline_requeue: float = 5.0
    late_result_ttl: float = 3600.0
    handler_threads: int = 64
    tune_gc: bool = True
    stop_jobs_timeout: float = STOP_JOBS_TIMEOUT

    def __post_init__(self) -> None:
        if not 0 < self.handler_deadline < AGENT_CALL_TIMEOUT:
            raise ValueError(
                f"handler_deadline must be between 0 and {AGENT_CALL_TIMEOUT:g} seconds (the agent's call "
                f"timeout), got {self.handler_deadline!r}"
            )
        if not 0 < self.deadline_requeue < float("inf"):
            raise ValueError(f"deadline_requeue must be > 0 seconds, got {self.deadline_requeue!r}")
        if not 0 <= self.stop_jobs_timeout < POD_GRACE_PERIOD - STOP_GRACE:
            raise ValueError(
                f"stop_jobs_timeout must be from 0 to below {POD_GRACE_PERIOD - STOP_GRACE:g} seconds (in "
                f"the pod's default {POD_GRACE_PERIOD:g} s grace period), got {self.stop_jobs_timeout!r}"
            )
        if self.handler_threads < 1:
            raise ValueError(f"handler_threads must be >= 1, got {self.handler_threads!r}")


class _TokenCheck:
    """Compares `Authorization: Bearer <token>` with the token file in constant time.

    `problem` answers (status, reason): 403 for a missing or wrong header; 503 (the agent retries it) when
    the token file is missing, unreadable or empty, which is the pod's trouble, not the caller's.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._expected: bytes | None = None

    def problem(self, header: str | None) -> tuple[int, str] | None:
        """Return (status, why) when the call is refused, or None when the token matches."""
        expected = self._load()
        if expected is None:
            return 503, f"token file {self.path} is missing, unreadable or empty"
        if header is None:
            return 403, "missing Authorization header"
        if not hmac.compare_digest(header.encode("utf-8", "surrogateescape"), expected):
            return 403, "invalid token"
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
            if not token:
                return None  # an empty token would accept "Bearer " from anyone
            self._expected = b"Bearer " + token
            self._stamp = stamp
        return self._expected


class _PluginServer:
    def __init__(
        self, plugins: Iterable[Plugin[Any]], settings: ServerSettings, hooks: pluggy.PluginManager | None
    ) -> None:
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
        # Handler calls whose caller was answered "still running": (plugin key, task key) → the call.
        # The task's next call waits for it or takes its result. Calls within the deadline are not here:
        # two parallel steps with identical templates (Argo sends no node ID) each run their handler.
        self._late: dict[tuple[str, str], _Call] = {}
        # The hooks' implementations, taken once: a call pays nothing for hooks nobody implements.
        self._startup = _implementations(hooks, "argoplug_startup")
        self._shutdown = _implementations(hooks, "argoplug_shutdown")
        self._before = _implementations(hooks, "argoplug_before_execute")
        self._after = _implementations(hooks, "argoplug_after_execute")
        # The startup hook's failure (logged), for `serve` to exit with: uvicorn only says "startup failed".
        self.startup_error: HookError | None = None

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
            log.warning("refused template.execute for plugin key %r: %s", plugin.key, refusal[1])
            return _error(*refusal)
        started = time.perf_counter()
        try:
            args = _args_decoder.decode(body)
        except msgspec.ValidationError as exc:
            node = NodeResult(phase=Phase.FAILED, message=f"invalid template in request: {exc}")
            return self._reply(node, None, plugin.key, None, started)
        task = Task.from_args(args, plugin.key)
        # Per-call hooks only when implemented: a call pays nothing for hooks nobody implements.
        outcome: Result | BaseException | None = await self._before_execute(task) if self._before else None
        if outcome is None:
            outcome = await self._run(plugin, task)
        result = result_for(outcome)
        try:
            node, requeue = outcome_for(result, args.template)
        except Exception as exc:  # e.g. an output value msgspec cannot encode: still a node, never a 500
            log.error("cannot reply with the result of plugin %r", plugin.key, exc_info=exc)
            result = result_for(exc)
            node, requeue = outcome_for(result, args.template)
        if self._after:
            # After the outcome is a Result: the hooks see exactly what the node is answered.
            await self._after_execute(task, result)
        return self._reply(node, requeue, plugin.key, task, started)

    async def _before_execute(self, task: Task) -> PermanentError | None:
        """Call the before_execute hooks in turn; the first PermanentError refuses the call (returned)."""
        for impl in self._before:
            try:
                await _call_hook(impl, task=task)
            except PermanentError as exc:
                log.info(
                    "plugin %r refused a call of plugin key %r in argoplug_before_execute: %s",
                    impl.package,
                    task.plugin_key,
                    exc.message,
                )
                return exc
            except Exception as exc:
                log.error(failure_message(impl.package, "argoplug_before_execute", exc), exc_info=exc)
        return None

    async def _after_execute(self, task: Task, result: Result) -> None:
        for impl in self._after:
            try:
                await _call_hook(impl, task=task, result=result)
            except Exception as exc:
                log.error(failure_message(impl.package, "argoplug_after_execute", exc), exc_info=exc)

    async def _run(self, plugin: Plugin[Any], task: Task) -> Result | BaseException:
        """Run the task's handler, or, when an earlier call of the task was answered before its handler
        finished, wait for that handler or take its result instead of running the handler again."""
        ident = (plugin.key, task.key)
        self._forget_old_calls()
        late = self._late.pop(ident, None)
        future: asyncio.Future[Result] | None = late.future if late is not None else None
        try:
            if future is None:
                future = plugin.start(task)
            await _wait(future, self.settings.handler_deadline)
        except asyncio.CancelledError:
            if future is not None:  # the caller went away: the task's next call takes the result
                self._late.setdefault(ident, late or _Call(future))
            raise
        except Exception as exc:  # bad arguments: raised before the handler runs
            return exc
        if not future.done():
            # The handler goes on; answer before the agent's 30 s client timeout. The task's next call
            # (after the requeue) takes it over, so its result is neither lost nor computed twice: a job
            # tracker that saw a failure would otherwise start the next attempt, the failure never told.
            self._late.setdefault(ident, late or _Call(future))
            return Result.running(
                f"handler still running after {self.settings.handler_deadline:g}s",
                requeue=self.settings.deadline_requeue,
            )
        try:
            return future.result()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a handler's error is a Failed/Error node, never a 500
            if not isinstance(exc, (PermanentError, TemporaryError)):
                log.error("handler of plugin %r raised", plugin.key, exc_info=exc)
            return exc

    def _forget_old_calls(self) -> None:
        """Drop late results nobody came back for (the workflow was stopped, the task deleted)."""
        if not self._late:
            return
        horizon = time.monotonic() - self.settings.late_result_ttl
        for ident, entry in list(self._late.items()):
            if entry.finished_at is not None and entry.finished_at < horizon:
                del self._late[ident]

    def _reply(
        self, node: NodeResult, requeue: str | None, key: str, task: Task | None, started: float
    ) -> Response:
        response = Response(
            _reply_encoder.encode(ExecuteTemplateReply(node=node, requeue=requeue)), media_type=_JSON
        )
        if log.isEnabledFor(logging.INFO):  # the extras cost microseconds on every call
            log.info(
                "template.execute",
                extra={
                    "workflow": task.workflow_name if task else None,
                    "namespace": task.namespace if task else None,
                    "template": task.template.name if task else None,
                    "plugin_key": key,
                    "phase": node.phase.value,
                    "requeue": requeue,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "node_message": node.message,
                },
            )
        return response

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
        try:
            await self._start_up()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        if self.settings.tune_gc:
            # Just after the server listens: the agent must get its first answer fast (CONTRACT §3.7).
            asyncio.get_running_loop().call_later(_GC_TUNE_DELAY, _tune_gc)
        problem = token_file_problem(self.settings.token_file)
        if problem is not None:
            log.warning("%s", problem)
        log.info("serving plugin keys %s", ", ".join(sorted(self.plugins)) or "(none)")
        try:
            yield
        finally:
            stop_running_jobs(self.settings.stop_jobs_timeout)  # bounded; nothing is served any more
            await self._shut_down()
            pool.shutdown(wait=False, cancel_futures=True)
            log.info("plugin server stopped")

    async def _start_up(self) -> None:
        """Call the startup hooks in registration order; the first that raises stops the start.

        Raises (and keeps in `startup_error`) a HookError naming the package, once it is logged.
        """
        served = tuple(self.plugins.values())
        for impl in self._startup:
            try:
                await _call_hook(impl, plugins=served)
            except Exception as exc:
                self.startup_error = HookError(failure_message(impl.package, "argoplug_startup", exc))
                log.error("%s; the server does not start", self.startup_error, exc_info=exc)
                raise self.startup_error from exc

    async def _shut_down(self) -> None:
        """Call every shutdown hook, last registered first; one that raises is logged, the rest still run."""
        served = tuple(self.plugins.values())
        for impl in reversed(self._shutdown):
            try:
                await _call_hook(impl, plugins=served)
            except Exception as exc:
                log.error(failure_message(impl.package, "argoplug_shutdown", exc), exc_info=exc)


# gen-0 threshold: Python's default of 700 allocations makes a sidecar under load run full collections
# several times a second, each pausing every call for tens of ms (bench/README.md: p99 33 ms → 4 ms).
_GC_THRESHOLD = (10_000, 10, 10)
_GC_TUNE_DELAY = 0.5  # seconds after start-up


def _tune_gc() -> None:
    """Freeze start-up objects (imports, plugins, the app) out of the collector and raise the gen-0 threshold.

    The tens of thousands of objects made at start-up live as long as the process; scanning them in
    every full collection is what made the pauses long (`gc.freeze`, Python docs, "gc" module).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLD)


async def _wait(future: asyncio.Future[Any], timeout: float) -> None:
    """Wait until `future` is done or `timeout` seconds passed, whichever comes first; never cancel it.

    One timer and one callback: `asyncio.wait_for(asyncio.shield(...))` costs a task and two futures more
    on every call (bench/README.md).
    """
    if future.done():
        return
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(timeout, wake)
    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)


def _implementations(hooks: pluggy.PluginManager | None, name: str) -> tuple[Implementation, ...]:
    return tuple(implementations(hooks, name)) if hooks is not None else ()


async def _call_hook(impl: Implementation, **kwargs: Any) -> None:
    """Call one hook implementation on the event loop, awaiting it when it is a coroutine function."""
    returned = impl.call(**kwargs)
    if returned is not None and inspect.isawaitable(returned):
        await returned


class _Call:
    """A handler call answered before it finished: its future, and when it finished (monotonic seconds)."""

    __slots__ = ("finished_at", "future")

    def __init__(self, future: asyncio.Future[Result]) -> None:
        self.future = future
        self.finished_at: float | None = None
        future.add_done_callback(lambda _: self.finished())

    def finished(self) -> None:
        self.finished_at = time.monotonic()
        if not self.future.cancelled():
            self.future.exception()  # retrieved: asyncio warns of exceptions nobody looked at


def _error(status: int, message: str) -> Response:
    return Response(_reply_encoder.encode({"error": message}), status_code=status, media_type=_JSON)


def create_app(
    plugins: Iterable[Plugin[Any]],
    settings: ServerSettings | None = None,
    *,
    hooks: pluggy.PluginManager | None = None,
) -> Starlette:
    """Build the ASGI app serving `plugins`, calling the server hooks implemented in `hooks`.

    Routes: `POST /api/v1/template.execute` (CONTRACT §2–§4) and `GET /healthz`. A template whose plugin
    key is not served gets `200 {}`; the token is checked only for served keys (403 on mismatch or a
    missing header); a malformed body gets 400; a handler's error is a Failed/Error node in a 200 reply.

    `hooks` (see `argoplug.hooks.plugin_manager`): the app's lifespan calls `argoplug_startup` before
    the first answer and `argoplug_shutdown` at the end; `argoplug_before_execute` and
    `argoplug_after_execute` wrap each handler call of a served key, never a foreign key's `{}`. Their
    implementations are taken here, once. Raises ValueError when two plugins claim the same key, and
    HookError for a wrapper implementation of a server hook.
    """
    server = _PluginServer(plugins, settings or ServerSettings(), hooks)
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
    port: int = DEFAULT_PORT,
    settings: ServerSettings | None = None,
    hooks: pluggy.PluginManager | None = None,
) -> None:
    """Serve `plugins` on `host:port` with uvicorn until SIGTERM or SIGINT, with the server hooks of `hooks`.

    The startup hooks run before the port is bound; the shutdown hooks after the last answer, once a
    signal came: calls in flight get `STOP_GRACE` seconds, then the external jobs still running are
    cancelled (`ServerSettings.stop_jobs_timeout`). Raises the HookError of a startup hook that raised
    (it is logged with its traceback first, and nothing was served); uvicorn's own start failures (e.g.
    the port is taken) leave as the SystemExit uvicorn raises.
    """
    import uvicorn

    app = create_app(plugins, settings, hooks=hooks)
    # No websockets: the agent speaks plain HTTP/1.1, and importing them costs start-up time and memory.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        log_level="warning",
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=STOP_GRACE,
    )
    server: _PluginServer = app.state.plugin_server
    # A startup hook's failure is logged by the server, with the hook's traceback; uvicorn would log it
    # again, as the traceback Starlette sends it, before "Application startup failed. Exiting.".
    repeat = _StartupTracebackFilter(server)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(repeat)
    try:
        uvicorn.Server(config).run()
    except SystemExit:
        if server.startup_error is not None:  # uvicorn exits 3 for any lifespan failure: say which
            raise server.startup_error from server.startup_error.__cause__
        raise
    finally:
        uvicorn_log.removeFilter(repeat)


class _StartupTracebackFilter(logging.Filter):
    """Drops uvicorn's copy of the traceback of a startup hook's failure, which the server logged."""

    def __init__(self, server: _PluginServer) -> None:
        super().__init__()
        self.server = server

    def filter(self, record: logging.LogRecord) -> bool:
        if self.server.startup_error is None or record.levelno < logging.ERROR:
            return True
        return not record.getMessage().startswith("Traceback (most recent call last)")
