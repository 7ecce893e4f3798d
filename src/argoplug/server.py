"""The plugin server: the ASGI app a sidecar runs, hosting any number of plugins.

`create_app` builds the Starlette app; `serve` runs it on uvicorn. The CLI (`argoplug serve`) and the
test kit (`argoplug.testing`) call them. Behaviour follows docs/contract.md §2–§4; the server hooks of
`argoplug.hookspecs` (startup, shutdown, before/after each handler call) are called from here.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import gc
import hmac
import inspect
import logging
import os
import stat
import sys
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from argoplug.hooks import HookError, Implementation, failure_message, implementations
from argoplug.jobs import STOP_JOBS_TIMEOUT, stop_running_jobs
from argoplug.plugin import (
    PermanentError,
    Plugin,
    Result,
    Task,
    TemporaryError,
    outcome_for,
    redact,
    redact_result,
    result_for,
)
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

__all__ = [
    "DEFAULT_TOKEN_FILE",
    "CallerCheck",
    "ListenError",
    "ServerSettings",
    "configure_logging",
    "create_app",
    "serve",
    "uvicorn_config",
]

AGENT_CALL_TIMEOUT = 30.0  # the agent's HTTP client timeout (workflow/executor/agent.go)
POD_GRACE_PERIOD = 30.0  # Kubernetes' default terminationGracePeriodSeconds: SIGTERM, then SIGKILL
STOP_GRACE = 5  # seconds calls in flight get once SIGTERM came (uvicorn's timeout_graceful_shutdown)

log = logging.getLogger("argoplug.server")

_JSON = "application/json"
_EMPTY_REPLY = b"{}"
_CLOSE = {"connection": "close"}
MiB = 1024 * 1024
# Kubernetes objects live in etcd, whose default request limit is 1.5 MiB (`--max-request-bytes`): no
# template of a Workflow or WorkflowTemplate is larger. The agent adds the workflow's metadata.
DEFAULT_MAX_BODY = 4 * MiB
SMALL_BODY = 64 * 1024  # bytes: bodies up to this are not counted against max_bytes_in_flight
REPORTED_TASKS = 10_000  # tasks whose last outputs are kept for their next Running reply (~1 KiB each)
TOKEN_FILE_MAX = 64 * 1024  # bytes read of the token file at most (a ServiceAccount token is ~1 KiB)


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

    `token_file`: the agent's token (docs/contract.md §4.1–§4.3), read on the first call of ours and again
    whenever the
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

    Bounds on what a caller may send (any caller that reaches the port, not only the agent):
    `max_body_bytes` (a larger body is answered 413 without being read; default 4 MiB, above anything
    Argo can send), `max_bytes_in_flight` (the bodies of all calls not yet answered, in bytes: past it a
    call is answered 503, which the agent retries; bodies up to 64 KiB are not counted; default 4 MiB, at
    least `max_body_bytes`),
    `body_timeout` (seconds to receive the body once the head came: else 408),
    and, where `serve` runs uvicorn (`argoplug.http_limits`), `header_timeout` (seconds from the
    connection, or a request's first byte, to the end of its head: else 408), `max_header_bytes` and
    `max_headers` (else 431), and `max_connections` (one more is answered 503, which the agent retries).
    A body nested deeper than msgspec decodes (Python's recursion limit, 1000 levels) is answered 400,
    or `{}` when its plugin keys are not ours.
    Raises ValueError for values out of range.
    """

    token_file: str = DEFAULT_TOKEN_FILE
    handler_deadline: float = 20.0
    deadline_requeue: float = 5.0
    late_result_ttl: float = 3600.0
    handler_threads: int = 64
    tune_gc: bool = True
    stop_jobs_timeout: float = STOP_JOBS_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_bytes_in_flight: int = DEFAULT_MAX_BODY
    body_timeout: float = 10.0
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_connections: int = 256

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
        counts = ("handler_threads", "max_body_bytes", "max_header_bytes", "max_headers", "max_connections")
        if self.max_bytes_in_flight < self.max_body_bytes:
            raise ValueError(
                f"max_bytes_in_flight ({self.max_bytes_in_flight}) must be at least max_body_bytes "
                f"({self.max_body_bytes})"
            )
        for name in counts:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("body_timeout", "header_timeout"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)!r}")


CallerCheck = Callable[[str | None], Awaitable[tuple[int, str] | None]]
"""Who may call the plugins served: an async callable given the `Authorization` header (None when the
request has none), answering None to accept the call or (HTTP status, message) to refuse it. `create_app`'s
default compares the agent's token file (`_TokenCheck`); `argoplug serve --upstream-auth tokenreview` gives
one asking Kubernetes (`argoplug.kube.tokenreview`)."""


class _TokenCheck:
    """Compares `Authorization: Bearer <token>` with the token file in constant time.

    `problem` answers (status, reason): 403 for a missing or wrong header; 503 (the agent retries it) when
    the token file is missing, unreadable, empty or not a regular file, which is the pod's trouble, not
    the caller's. The file is read again (off the event loop, at most TOKEN_FILE_MAX bytes) whenever its
    inode, size, mtime or ctime changed: Kubernetes rotates a mounted token by swapping a symlink (a new
    inode), and a write that keeps size and mtime still moves ctime.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, ...] | None = None
        self._expected: bytes | None = None

    async def problem(self, header: str | None) -> tuple[int, str] | None:
        """Return (status, why) when the call is refused, or None when the token matches."""
        expected = await self._load()
        if expected is None:
            return 503, f"token file {self.path} is missing, unreadable, empty or not a regular file"
        if header is None:
            return 403, "missing Authorization header"
        if not hmac.compare_digest(header.encode("utf-8", "surrogateescape"), expected):
            return 403, "invalid token"
        return None

    async def _load(self) -> bytes | None:
        try:
            found = os.stat(self.path)
        except OSError:
            self._stamp = self._expected = None
            return None
        if not stat.S_ISREG(found.st_mode):  # a FIFO would block, /dev/zero never end
            self._stamp = self._expected = None
            return None
        stamp = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
        if stamp != self._stamp:
            token = await asyncio.to_thread(_read_token, self.path)
            if not token:
                return None  # an empty token would accept "Bearer " from anyone
            self._expected = b"Bearer " + token
            self._stamp = stamp
        return self._expected


def _read_token(path: str) -> bytes | None:
    """The token file's content, stripped; None when it cannot be read or is not a regular file."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        try:
            token = file.read(TOKEN_FILE_MAX + 1)
        except OSError:
            return None
    return token.strip() if len(token) <= TOKEN_FILE_MAX else None


class _PluginServer:
    def __init__(
        self,
        plugins: Iterable[Plugin[Any]],
        settings: ServerSettings,
        hooks: pluggy.PluginManager | None,
        *,
        caller_check: CallerCheck | None = None,
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
        # The agent's token file, unless the caller is checked another way (then the file is not read).
        self.checks_token_file = caller_check is None
        self.caller_check: CallerCheck = caller_check or _TokenCheck(settings.token_file).problem
        # Handler calls whose caller was answered "still running": (plugin key, task key) → the call.
        # The task's next call waits for it or takes its result. Calls within the deadline are not here:
        # two parallel steps with identical templates (Argo sends no node ID) each run their handler.
        self._late: dict[tuple[str, str], _Call] = {}
        # The late calls in the order they finished, to forget the expired ones without a scan.
        self._finished: deque[tuple[float, tuple[str, str], _Call]] = deque()
        # One thread pool per plugin with sync handlers (made in the lifespan): a plugin whose handlers
        # all block never holds up another plugin's calls.
        self._pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        # The last Pending/Running result with outputs of each task still running (see _carry_outputs).
        self._reported: collections.OrderedDict[tuple[str, str], Result] = collections.OrderedDict()
        self._in_flight = 0  # bytes of request bodies received and not yet answered (see _hold)
        # The hooks' implementations, taken once: a call pays nothing for hooks nobody implements.
        self._startup = _implementations(hooks, "argoplug_startup")
        self._shutdown = _implementations(hooks, "argoplug_shutdown")
        self._before = _implementations(hooks, "argoplug_before_execute")
        self._after = _implementations(hooks, "argoplug_after_execute")
        # The startup hook's failure (logged), for `serve` to exit with: uvicorn only says "startup failed".
        self.startup_error: HookError | None = None

    async def execute(self, request: Request) -> Response:
        held = _Held()
        try:
            return await self._execute(request, held)
        finally:
            self._in_flight -= held.bytes

    async def _execute(self, request: Request, held: _Held) -> Response:
        try:
            body = await self._body(request, held)
        except _Refusal as refused:
            log.warning("refused template.execute request: %s", refused.message)
            return _error(refused.status, refused.message, headers=_CLOSE)
        except ClientDisconnect:  # the caller went away: nobody reads an answer
            log.info("template.execute caller disconnected before its body was received")
            return Response(status_code=400, headers=_CLOSE)
        keys = _plugin_keys(body)
        if keys is None:  # nested too deep for msgspec: read off the event loop, it may take a second
            keys = await asyncio.to_thread(_plugin_keys_of_deep_body, body)
        if isinstance(keys, str):
            log.warning("malformed template.execute request: %s", keys)
            return _error(400, f"malformed template.execute request: {keys}")
        plugin = next((self.plugins[k] for k in keys if k in self.plugins), None)
        if plugin is None:
            return Response(_EMPTY_REPLY, media_type=_JSON)
        try:
            refusal = await self.caller_check(request.headers.get("authorization"))
        except Exception as exc:  # the check's own trouble, not the caller's: 503, which the agent retries
            log.error("the caller check failed for plugin key %r", plugin.key, exc_info=exc)
            refusal = 503, f"the caller check failed: {type(exc).__name__}"
        if refusal is not None:
            log.warning("refused template.execute for plugin key %r: %s", plugin.key, refusal[1])
            return _error(*refusal)
        started = time.perf_counter()
        try:
            args = _args_decoder.decode(body)
        except msgspec.ValidationError as exc:
            node = NodeResult(phase=Phase.FAILED, message=f"invalid template in request: {exc}")
            return self._reply(node, None, plugin.key, None, started)
        except msgspec.DecodeError as exc:  # e.g. invalid UTF-8 inside a string the envelope skipped
            log.warning("malformed template.execute request for plugin key %r: %s", plugin.key, exc)
            return _error(400, f"malformed template.execute request: {exc}")
        except RecursionError:
            node = NodeResult(phase=Phase.FAILED, message=f"invalid template in request: {_TOO_DEEP}")
            return self._reply(node, None, plugin.key, None, started)
        task = Task.from_args(args, plugin.key)
        secrets = plugin.secret_values(task.template.plugin.get(plugin.key))
        # Per-call hooks only when implemented: a call pays nothing for hooks nobody implements.
        outcome: Result | BaseException | None = await self._before_execute(task) if self._before else None
        if outcome is None:
            outcome = await self._run(plugin, task, secrets)
        result = result_for(outcome)
        try:
            node, requeue = outcome_for(result, args.template)
        except Exception as exc:  # e.g. an output value msgspec cannot encode: still a node, never a 500
            log.error("cannot reply with the result of plugin %r", plugin.key, exc_info=exc)
            result = result_for(exc)
            node, requeue = outcome_for(result, args.template)
        carried = self._carry_outputs((plugin.key, task.key), result)
        if secrets or carried is not result:
            result = redact_result(carried, secrets)
            node, requeue = outcome_for(result, args.template)
        if self._after:
            # After the outcome is a Result: the hooks see exactly what the node is answered.
            await self._after_execute(task, result)
        return self._reply(node, requeue, plugin.key, task, started)

    def _hold(self, held: _Held, size: int) -> None:
        """Count `size` more bytes of a body in flight; raise _Refusal(503) when they pass their bound.

        The bytes stay counted until the call is answered: a body decoded for one of our keys may take 25
        times its size in memory (bench/README.md), so their sum bounds the sidecar's memory.
        """
        bound = self.settings.max_bytes_in_flight
        if self._in_flight + size > bound:
            raise _Refusal(
                503,
                f"{self._in_flight} bytes of request bodies in flight, {size} more would pass {bound}: retry",
            )
        self._in_flight += size
        held.bytes += size

    def _carry_outputs(self, ident: tuple[str, str], result: Result) -> Result:
        """`result`, with the outputs last reported for the task when it is Pending/Running without any.

        Argo's agent replaces the node's outputs with each reply's, so a Running reply without outputs (the
        handler still running past the deadline, a poll that hit an outage) would clear what the node showed.
        The last outputs of up to REPORTED_TASKS tasks still running are kept; a terminal reply forgets them.
        """
        if result.phase.terminal:
            self._reported.pop(ident, None)
            return result
        if result.outputs or result.result is not None:
            self._reported[ident] = result
            self._reported.move_to_end(ident)
            while len(self._reported) > REPORTED_TASKS:
                self._reported.popitem(last=False)
            return result
        last = self._reported.get(ident)
        if last is None:
            return result
        return dataclasses.replace(result, outputs=last.outputs, result=last.result)

    async def _body(self, request: Request, held: _Held) -> bytes:
        """The request's body, at most `max_body_bytes`, received within `body_timeout` seconds; the bytes
        received of a body over SMALL_BODY are counted in `held` against `max_bytes_in_flight`.

        Counting what arrived (not what the Content-Length promises) keeps a slow body from holding the
        bound it has not used; small bodies (what the agent sends) are never refused by it, so bodies held
        open by others cannot starve the agent. Raises _Refusal (413 before reading when the
        Content-Length says too much, or once the count passes it; 503 when the bodies in flight would
        pass their bound; 408 past the deadline) and ClientDisconnect.
        """
        limit = self.settings.max_body_bytes
        header = request.headers.get("content-length")
        if header is not None and header.isdigit() and int(header) > limit:
            raise _Refusal(413, f"request body of {header} bytes is larger than the {limit} bytes served")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _Refusal(413, f"request body is larger than the {limit} bytes served")
                    if size > SMALL_BODY:
                        self._hold(held, size - held.bytes)
                    chunks.append(chunk)
        except TimeoutError:
            raise _Refusal(
                408, f"request body not received within {self.settings.body_timeout:g} s"
            ) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

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

    async def _run(self, plugin: Plugin[Any], task: Task, secrets: Sequence[str]) -> Result | BaseException:
        """Run the task's handler, or, when an earlier call of the task was answered before its handler
        finished, wait for that handler or take its result instead of running the handler again.

        A handler's traceback is logged with `secrets` (its Secret arguments' values) blanked out."""
        ident = (plugin.key, task.key)
        self._forget_old_calls()
        late = self._late.pop(ident, None)
        future: asyncio.Future[Result] | None = late.future if late is not None else None
        try:
            if future is None:
                future = plugin.start(task, self._pools.get(plugin.key))
            await _wait(future, self.settings.handler_deadline)
        except asyncio.CancelledError:
            if future is not None:  # the caller went away: the task's next call takes the result
                self._late.setdefault(ident, late or self._late_call(ident, future))
            raise
        except Exception as exc:  # bad arguments: raised before the handler runs
            return exc
        if not future.done():
            # The handler goes on; answer before the agent's 30 s client timeout. The task's next call
            # (after the requeue) takes it over, so its result is neither lost nor computed twice: a job
            # tracker that saw a failure would otherwise start the next attempt, the failure never told.
            self._late.setdefault(ident, late or self._late_call(ident, future))
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
                if secrets:
                    text = redact("".join(traceback.format_exception(exc)), secrets)
                    log.error("handler of plugin %r raised\n%s", plugin.key, text.rstrip())
                else:
                    log.error("handler of plugin %r raised", plugin.key, exc_info=exc)
            return exc

    def _late_call(self, ident: tuple[str, str], future: asyncio.Future[Result]) -> _Call:
        """A call answered before its handler finished, queued by finish time once it finishes."""
        call = _Call(future)
        future.add_done_callback(lambda _: self._finished.append((time.monotonic(), ident, call)))
        return call

    def _forget_old_calls(self) -> None:
        """Drop late results nobody came back for (the workflow was stopped, the task deleted): the
        oldest first, so a call costs nothing for the ones not yet expired."""
        finished = self._finished
        if not finished:
            return
        horizon = time.monotonic() - self.settings.late_result_ttl
        while finished and finished[0][0] < horizon:
            _, ident, call = finished.popleft()
            if self._late.get(ident) is call:
                del self._late[ident]

    def _reply(
        self, node: NodeResult, requeue: str | None, key: str, task: Task | None, started: float
    ) -> Response:
        try:
            content = _reply_encoder.encode(ExecuteTemplateReply(node=node, requeue=requeue))
        except UnicodeEncodeError:  # a lone surrogate (os.fsdecode of a non-UTF-8 name) in a text
            node = _without_surrogates(node)
            content = _reply_encoder.encode(ExecuteTemplateReply(node=node, requeue=requeue))
        response = Response(content, media_type=_JSON)
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
        self._pools = {
            key: concurrent.futures.ThreadPoolExecutor(
                max_workers=self.settings.handler_threads, thread_name_prefix=f"argoplug-{key}"[:40]
            )
            for key, plugin in self.plugins.items()
            if not plugin.is_async
        }
        try:
            await self._start_up()
        except BaseException:
            self._stop_pools(pool)
            raise
        if self.settings.tune_gc:
            # Just after the server listens: the agent must get its first answer fast (docs/contract.md §3.7).
            asyncio.get_running_loop().call_later(_GC_TUNE_DELAY, _tune_gc)
        problem = token_file_problem(self.settings.token_file) if self.checks_token_file else None
        if problem is not None:
            log.warning("%s", problem)
        log.info("serving plugin keys %s", ", ".join(sorted(self.plugins)) or "(none)")
        try:
            yield
        finally:
            stop_running_jobs(self.settings.stop_jobs_timeout)  # bounded; nothing is served any more
            await self._shut_down()
            self._stop_pools(pool)
            log.info("plugin server stopped")

    def _stop_pools(self, default: concurrent.futures.ThreadPoolExecutor) -> None:
        for pool in (default, *self._pools.values()):
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools = {}

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


class _Held:
    """The body bytes one call holds in the in-flight count (see `_PluginServer._hold`)."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


class _Refusal(Exception):
    """A request refused before it is decoded: the status and the message answered."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_TOO_DEEP = "nested deeper than the server decodes (Python's recursion limit, 1000 levels)"


def _plugin_keys(body: bytes) -> Sequence[str] | str | None:
    """The plugin keys of the request's template, why they cannot be read (a message), or None when the
    body is nested deeper than msgspec decodes (then see `_plugin_keys_of_deep_body`).

    msgspec reads them without decoding the rest of the body.
    """
    try:
        return tuple(_envelope_decoder.decode(body).template.plugin)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return str(exc)
    except RecursionError:
        return None


def _plugin_keys_of_deep_body(body: bytes) -> Sequence[str] | str:
    """`_plugin_keys` of a body too deep for msgspec, read as a stream of events (any depth), so that a
    foreign key still gets `{}`; a message when even that fails (the JSON is malformed)."""
    from argoplug.json_events import template_plugin_keys

    try:
        return template_plugin_keys(body)
    except ValueError as exc:
        return f"{exc} ({_TOO_DEEP})"


def _without_surrogates(node: NodeResult) -> NodeResult:
    """`node` with its texts' lone surrogates written as `\\udcXX` escapes (encodable as UTF-8)."""
    return msgspec.convert(_clean(msgspec.to_builtins(node)), NodeResult)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    content = _reply_encoder.encode({"error": message.encode("utf-8", "backslashreplace").decode()})
    return Response(content, status_code=status, media_type=_JSON, headers=headers)


def create_app(
    plugins: Iterable[Plugin[Any]],
    settings: ServerSettings | None = None,
    *,
    hooks: pluggy.PluginManager | None = None,
    caller_check: CallerCheck | None = None,
) -> Starlette:
    """Build the ASGI app serving `plugins`, calling the server hooks implemented in `hooks`.

    Routes: `POST /api/v1/template.execute` (docs/contract.md §2–§4) and `GET /healthz`. A template whose
    plugin key is not served gets `200 {}`; the caller is checked only for served keys; a malformed body
    gets 400; a handler's error is a Failed/Error node in a 200 reply.

    `caller_check` (a `CallerCheck`) decides who may call: awaited with the `Authorization` header of each
    call of a served key (never of a foreign key's `{}`), it answers None to accept the call or (status,
    message) to refuse it, answered as `{"error": message}` with that status. The default compares the
    header with `Bearer <settings.token_file's token>` in constant time (docs/contract.md §4): 403 for a
    missing or wrong header, 503 when the file is missing, unreadable or empty; the start-up warning about
    a token file this process cannot read is given only with the default. A check that blocks must run
    off the event loop (`asyncio.to_thread`); one that raises is logged and the call answered 503.

    `hooks` (see `argoplug.hooks.plugin_manager`): the app's lifespan calls `argoplug_startup` before
    the first answer and `argoplug_shutdown` at the end; `argoplug_before_execute` and
    `argoplug_after_execute` wrap each handler call of a served key, never a foreign key's `{}`. Their
    implementations are taken here, once. Raises ValueError when two plugins claim the same key, and
    HookError for a wrapper implementation of a server hook.
    """
    server = _PluginServer(plugins, settings or ServerSettings(), hooks, caller_check=caller_check)
    app = Starlette(
        routes=[
            Route(EXECUTE_PATH, server.execute, methods=["POST"]),
            Route("/healthz", server.healthz, methods=["GET"]),
        ],
        lifespan=server.lifespan,
    )
    app.router.redirect_slashes = False  # its redirect would echo the Host header back
    app.state.plugin_server = server
    return app


def uvicorn_config(app: Starlette, **options: Any) -> Any:
    """The `uvicorn.Config` argoplug serves `app` (from `create_app`) with: no access log, no websockets,
    and the connection limits of the app's ServerSettings (`argoplug.http_limits`); `options` are passed
    on (host, port, ...)."""
    import uvicorn

    from argoplug.http_limits import ConnectionLimits, limited_protocol

    settings: ServerSettings = app.state.plugin_server.settings
    limits = ConnectionLimits(
        max_connections=settings.max_connections,
        header_timeout=settings.header_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
    )
    # No websockets: the agent speaks plain HTTP/1.1, and importing them costs start-up time and memory.
    return uvicorn.Config(
        app,
        access_log=False,
        log_config=None,
        log_level="warning",
        lifespan="on",
        ws="none",
        http=limited_protocol(limits),
        **options,
    )


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
        try:
            return msgspec.json.encode(entry, enc_hook=str).decode()
        except UnicodeEncodeError:  # a lone surrogate in a text: escaped rather than the line lost
            return msgspec.json.encode(_clean(msgspec.to_builtins(entry, enc_hook=str))).decode()


# Control characters (a newline in a workflow name would forge a log line) and lone surrogates, escaped.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)} | {
    code: f"\\u{code:04x}" for code in range(0xD800, 0xE000)
}


def _escaped(value: Any) -> str:
    return str(value).translate(_ESCAPES)


class _TextFormatter(logging.Formatter):
    """One line per record: what a caller sent (names, messages) is escaped, only tracebacks span lines."""

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _JsonFormatter._skip and v is not None}
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {_escaped(record.getMessage())}"
        if extra:
            text += " " + " ".join(f"{k}={_escaped(v)}" for k, v in extra.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info).translate(_SURROGATES)
        return text


_SURROGATES = {code: f"\\u{code:04x}" for code in range(0xD800, 0xE000)}


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
    caller_check: CallerCheck | None = None,
) -> None:
    """Serve `plugins` on `host:port` with uvicorn until SIGTERM or SIGINT, with the server hooks of `hooks`
    and `caller_check` (see `create_app`).

    The startup hooks run before the port is bound; the shutdown hooks after the last answer, once a
    signal came: calls in flight get `STOP_GRACE` seconds, then the external jobs still running are
    cancelled (`ServerSettings.stop_jobs_timeout`). Raises the HookError of a startup hook that raised
    (it is logged with its traceback first, and nothing was served), and ListenError when `host:port`
    cannot be bound (taken, or not an address of this host), before anything else starts.
    """
    import socket

    import uvicorn

    try:  # bound before anything starts: a taken port is one line, not a start-up and a traceback
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenError(f"cannot listen on {host}:{port}: {why}") from None
    app = create_app(plugins, settings, hooks=hooks, caller_check=caller_check)
    config = uvicorn_config(app, host=host, port=port, timeout_graceful_shutdown=STOP_GRACE)
    server: _PluginServer = app.state.plugin_server
    # A startup hook's failure is logged by the server, with the hook's traceback; uvicorn would log it
    # again, as the traceback Starlette sends it, before "Application startup failed. Exiting.".
    repeat = _StartupTracebackFilter(server)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(repeat)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except SystemExit:
        if server.startup_error is not None:  # uvicorn exits 3 for any lifespan failure: say which
            raise server.startup_error from server.startup_error.__cause__
        raise
    finally:
        uvicorn_log.removeFilter(repeat)


class ListenError(OSError):
    """`serve` cannot bind its address: the message names host, port and why."""


class _StartupTracebackFilter(logging.Filter):
    """Drops uvicorn's copy of the traceback of a startup hook's failure, which the server logged."""

    def __init__(self, server: _PluginServer) -> None:
        super().__init__()
        self.server = server

    def filter(self, record: logging.LogRecord) -> bool:
        if self.server.startup_error is None or record.levelno < logging.ERROR:
            return True
        return not record.getMessage().startswith("Traceback (most recent call last)")
