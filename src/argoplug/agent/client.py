"""Calling executor plugins exactly as Argo's agent pod does: one `AgentClient` per workflow run.

Mimics `workflow/executor/agent.go` (`processTask`, `executePluginTemplate`, the requeue loop),
`workflow/util/plugin/plugin.go` (`Client.Call`: timeout, transient retries with backoff, 404 → never
called again) and the order the controller gives the agent its plugins in (`workflow/controller/agent.go`).
The engine of `argoplug run` uses it; so can `argoplug check` and the test kit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random as _random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import msgspec

from argoplug.agent.schema import go_scalar_string
from argoplug.protocol import Outputs, Parameter, parse_duration

__all__ = [
    "DEFAULT_WORKERS",
    "AgentClient",
    "Backoff",
    "FailedAgentPod",
    "NodeUpdate",
    "PluginEndpoint",
    "plugin_order",
]

_T = TypeVar("_T")
EXECUTE_METHOD = "template.execute"
DEFAULT_TIMEOUT = 30.0
DEFAULT_WORKERS = 16
WORKERS_ENV = "ARGO_AGENT_TASK_WORKERS"
# `NodePhase.Fulfilled`: once a node has one of these, the controller considers it done.
TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})


@dataclasses.dataclass(frozen=True)
class PluginEndpoint:
    """One plugin sidecar: base URL (`http://localhost:<containerPort>`), token, a name for messages and
    the plugin keys it serves when known (an argoplug server says them on `GET /healthz`)."""

    url: str
    token: str
    name: str = ""
    keys: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Retry schedule for transient failures (`wait.Backoff` of `k8s.io/apimachinery`).

    `steps` attempts in all; before attempt n+1 the client sleeps `duration * factor**(n-1)` seconds, plus up
    to `jitter` times that at random. Argo's agent uses 1 s, ×2, jitter 0.2, 5 attempts (docs/contract.md §3).
    """

    duration: float = 1.0
    factor: float = 2.0
    jitter: float = 0.2
    steps: int = 5


@dataclasses.dataclass(frozen=True)
class NodeUpdate:
    """What one round of calls records for a node (`wfv1.NodeResult` plus the requeue).

    `phase` is the plugin's string as sent ("" means nothing is recorded); `outputs` replace the node's
    outputs wholesale (None clears them). `requeue` is in seconds, or None when there is no next call: a
    terminal phase, no requeue, or a zero/negative one. `warning` says what the plugin did wrong that
    Argo would not show, e.g. a requeue with `Failed`, after which Argo's agent would call it again.
    """

    phase: str
    message: str = ""
    outputs: Outputs | None = None
    requeue: float | None = None
    warning: str = ""

    @property
    def terminal(self) -> bool:
        """True once the node is done (Succeeded, Failed, Error; also Skipped, Omitted): no more calls."""
        return self.phase in TERMINAL_PHASES


class _ReplyOutputs(msgspec.Struct):
    parameters: list[dict[str, Any]] | None = None
    artifacts: list[dict[str, Any]] | None = None
    result: str | None = None
    exitCode: str | None = None


class _ReplyNode(msgspec.Struct):
    phase: str = ""
    message: str = ""
    outputs: _ReplyOutputs | None = None
    progress: str = ""


class _Reply(msgspec.Struct):
    node: _ReplyNode | None = None
    # UNSET when absent: Go decodes every plugin's reply into the same struct, so an absent requeue keeps
    # the one an earlier plugin's reply set, and `null` clears it.
    requeue: Any | msgspec.UnsetType = msgspec.UNSET


_reply_decoder = msgspec.json.Decoder(_Reply | None)


class _CallError(Exception):
    """A plugin call failed for good: the node fails with this message (`processTask`)."""


class _TransientError(Exception):
    """A plugin call failed in a way worth retrying (503, refused, reset, EOF, timeout)."""


class AgentClient:
    """Call plugins with the agent's semantics, for one workflow run (use `async with`).

    Every plugin task is offered to the `endpoints` one after the other, each with its own token, in one
    order for the whole run (`order`): the order given when `seed` is None, else a shuffle of it by
    `random.Random(seed)`. Argo's order is random too, and fixed for the life of the agent pod: the
    controller lists the sidecars by ranging over Go maps (namespace → plugin name → plugin,
    `getExecutorPlugins` in `workflow/controller/agent.go`), passes them to the agent as
    `ARGO_PLUGIN_ADDRESSES`, and the agent asks them in that slice's order for every task
    (`executePluginTemplate` in `workflow/executor/agent.go`). `argoplug run` always passes a seed.

    `timeout` (seconds, default 30) bounds each HTTP exchange. At most `workers` rounds of calls run at
    once (default: `ARGO_AGENT_TASK_WORKERS` or 16); a round holds its worker through retries, not through
    requeue delays. `sleep` and `random` are injectable so tests need not wait: backoff and requeue delays
    go through `sleep`; `random` ([0, 1)) draws the backoff jitter (default: the seeded generator, or
    `random.random` without a seed).
    """

    def __init__(
        self,
        endpoints: Sequence[PluginEndpoint],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        workers: int | None = None,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        random: Callable[[], float] | None = None,
        seed: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.seed = seed
        self.order = plugin_order(self.endpoints, seed)
        self.timeout = timeout
        self.workers = workers if workers is not None else _workers_from_env()
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        self.backoff = backoff
        self._sleep = sleep
        if random is None:
            random = _random.Random(seed).random if seed is not None else _random.random
        self._random = random
        self._http = httpx.AsyncClient(timeout=None, transport=transport)
        self._semaphore = asyncio.Semaphore(self.workers)
        # plugin.go's `invalid`: a plugin that answered 404 is never called again, for any task.
        self.unsupported: set[str] = set()

    @property
    def slots(self) -> asyncio.Semaphore:
        """The task workers (`workers` of them): plugin rounds take one each; give it to the HTTP runner
        (`HttpTemplateRunner(slots=...)`) so that HTTP tasks share them, as in Argo's agent."""
        return self._semaphore

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def execute(self, request: Mapping[str, Any]) -> NodeUpdate:
        """Make one round of calls for a task, as the agent's `processTask` does, and return its outcome.

        The plugins are asked in `order` (skipping those marked unsupported): `{}` or `null` → the next
        one; the first reply with a `node` wins. A fatal status (any 4xx/5xx but 404 and 503) or an
        undecodable reply fails the node, and later plugins are not asked. With no taker the node fails with
        `no plugin executed the template`. As in Go, where every reply is decoded into one struct, a
        `requeue` sent beside no node still counts for a later plugin's node that sends none. A
        `Failed`/`Error` that comes with a requeue is kept, as the user would see it first, with a
        `warning`: Argo's agent would call the plugin again (docs/contract.md §2.5). Never raises for plugin
        trouble.
        """
        body = msgspec.json.encode(request)
        carried = _Requeue()
        async with self._semaphore:
            for endpoint in self.order:
                if endpoint.url in self.unsupported:
                    continue
                try:
                    reply = await self._call(endpoint, body)
                except _CallError as exc:
                    return NodeUpdate("Failed", str(exc))
                if reply is None:
                    continue
                if reply.requeue_given:
                    carried = _Requeue(reply.requeue, reply.requeue_text, endpoint)
                if reply.node is None:
                    continue
                node = reply.node
                outputs = _outputs(node.outputs)
                if node.phase not in TERMINAL_PHASES:
                    return NodeUpdate(node.phase, node.message, outputs, carried.seconds)
                warning = ""
                if node.phase != "Succeeded" and carried.seconds is not None:
                    sender = "" if carried.endpoint is endpoint else f" (sent by {_name(carried.endpoint)})"
                    warning = (
                        f"plugin {_plugin_key(request)!r} answered {node.phase} with requeue "
                        f'"{carried.text}"{sender}: Argo\'s agent would call it again; a terminal phase must '
                        "not carry a requeue (docs/contract.md §2.5)"
                    )
                return NodeUpdate(node.phase, node.message, outputs, warning=warning)
        return NodeUpdate("Failed", f"no plugin executed the template ({self._served(request)})")

    def _served(self, request: Mapping[str, Any]) -> str:
        """What was asked and who serves what, after Argo's `no plugin executed the template`."""
        asked = _plugin_key(request)
        served = "; ".join(
            f"{_name(endpoint)} answered 404 (not asked any more)"
            if endpoint.url in self.unsupported
            else f"{_name(endpoint)} serves {', '.join(endpoint.keys)}"
            if endpoint.keys
            else f"{_name(endpoint)} answered {{}} (its keys are not known)"
            for endpoint in self.order
        )
        return f"plugin key {asked!r} asked; {served or 'no plugin sidecar'}"

    async def follow(self, request: Mapping[str, Any], on_update: Callable[[NodeUpdate], None]) -> NodeUpdate:
        """Call until the node is done, as the agent's task worker does, reporting every round to `on_update`.

        A Pending/Running node with a requeue is called again with the same request after that delay; a
        terminal phase ends it; without a requeue the agent never calls again, so this waits forever, as the
        node hangs in Argo until the workflow's deadline ends it (cancel the task). Returns the terminal
        update.
        """
        while True:
            update = await self.execute(request)
            on_update(update)
            if update.terminal:
                return update
            if update.requeue is None:
                await asyncio.Event().wait()
            else:
                await self._sleep(update.requeue)

    async def _call(self, endpoint: PluginEndpoint, body: bytes) -> _ReplyDecoded | None:
        """POST one request with retries (`plugin.go`, `Client.Call`); None when the plugin answered 404."""
        url = f"{endpoint.url.rstrip('/')}/api/v1/{EXECUTE_METHOD}"
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {endpoint.token}"}
        delay = self.backoff.duration
        attempt = 1
        while True:
            try:
                return await self._post(endpoint, url, body, headers)
            except _TransientError as exc:
                if attempt >= self.backoff.steps:
                    raise _CallError(str(exc)) from None
            await self._sleep(delay + self._random() * self.backoff.jitter * delay)
            delay *= self.backoff.factor
            attempt += 1

    async def _post(
        self, endpoint: PluginEndpoint, url: str, body: bytes, headers: Mapping[str, str]
    ) -> _ReplyDecoded | None:
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.post(url, content=body, headers=headers)
        except TimeoutError:
            raise _TransientError(
                f'Post "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
            ) from None
        except httpx.TransportError as exc:
            raise _TransientError(f'Post "{url}": {str(exc) or type(exc).__name__}') from None
        status = response.status_code
        if status == 200:
            return _decode(response.content)
        if status == 404:
            self.unsupported.add(endpoint.url)
            return None
        if status == 503:
            raise _TransientError(response.text)
        raise _CallError(f"{status} {response.reason_phrase}: {response.text}")


def plugin_order(endpoints: Sequence[_T], seed: int | None) -> list[_T]:
    """Return `endpoints` in the order the agent asks them: as given for None, else shuffled by `seed`.

    `random.Random(seed).shuffle`, so a seed gives the same order on every run and platform; Argo draws
    the order once per agent pod from Go's randomized map iteration (`workflow/controller/agent.go`).
    """
    order = list(endpoints)
    if seed is not None:
        _random.Random(seed).shuffle(order)
    return order


@dataclasses.dataclass(frozen=True)
class _ReplyDecoded:
    node: _ReplyNode | None
    requeue: float | None  # seconds; None when absent, null, zero or negative
    requeue_text: str = ""  # as the plugin sent it
    requeue_given: bool = False  # the reply had a `requeue` key (null included)


@dataclasses.dataclass(frozen=True)
class _Requeue:
    """The requeue of the round so far: Go's `reply.Requeue`, and which plugin's reply set it."""

    seconds: float | None = None
    text: str = ""
    endpoint: PluginEndpoint | None = None


def _decode(content: bytes) -> _ReplyDecoded | None:
    """Decode a 200 body as Go's `json.Decoder` into `ExecuteTemplateReply` would, or raise _CallError."""
    if not content.strip():
        raise _CallError("EOF")
    try:
        reply = _reply_decoder.decode(content)
    except msgspec.DecodeError as exc:
        raise _CallError(f"invalid JSON in reply: {exc}") from None
    except msgspec.ValidationError as exc:
        raise _CallError(f"json: cannot unmarshal reply: {exc}") from None
    if reply is None:
        return None
    requeue = reply.requeue
    if requeue is msgspec.UNSET:
        return _ReplyDecoded(reply.node, None)
    if requeue is None:
        return _ReplyDecoded(reply.node, None, requeue_given=True)
    # `requeue` is a *metav1.Duration: a JSON string parsed by time.ParseDuration.
    if not isinstance(requeue, str):
        raise _CallError(f"json: cannot unmarshal {_json_kind(requeue)} into Go value of type string")
    try:
        seconds = parse_duration(requeue)
    except ValueError:
        raise _CallError(f'time: invalid duration "{requeue}"') from None
    return _ReplyDecoded(reply.node, seconds if seconds > 0 else None, requeue, requeue_given=True)


def _outputs(outputs: _ReplyOutputs | None) -> Outputs | None:
    """The node's outputs as the controller stores them: parameter values are strings.

    A value that is a JSON object, array or null becomes "" (docs/contract.md §2.6); numbers and booleans
    become
    their text, as Go's `AnyString` does.
    """
    if outputs is None:
        return None
    parameters = []
    for raw in outputs.parameters or []:
        value = raw.get("value")
        if isinstance(value, (bool, int, float)):
            text = go_scalar_string(value)
        elif isinstance(value, str):
            text = value
        else:
            text = ""
        parameters.append(
            Parameter(name=str(raw.get("name", "")), value=text, globalName=raw.get("globalName") or None)
        )
    return Outputs(
        parameters=parameters,
        artifacts=list(outputs.artifacts or []),
        result=outputs.result,
        exitCode=outputs.exitCode,
    )


def _plugin_key(request: Mapping[str, Any]) -> str:
    """The plugin key of the request's template (the one key of its `plugin` block), for messages."""
    plugin = (request.get("template") or {}).get("plugin")
    return str(next(iter(plugin), "")) if isinstance(plugin, Mapping) else ""


def _name(endpoint: PluginEndpoint | None) -> str:
    if endpoint is None:
        return "an earlier plugin"
    return endpoint.name or endpoint.url


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "array" if isinstance(value, list) else "object"


def _workers_from_env() -> int:
    text = os.environ.get(WORKERS_ENV, "")
    try:
        value = int(text)
    except ValueError:
        return DEFAULT_WORKERS
    return value if value > 0 else DEFAULT_WORKERS


class FailedAgentPod:
    """The agent pod that could not be created: every plugin and HTTP node ends Error with its reason.

    As the controller marks the WorkflowTaskSet's nodes when `createAgentPod` fails
    (`workflow/controller/taskset.go`, `taskSetReconciliation`: `create agent pod failed with reason:"..."`).
    Serves as the engine's plugin executor (`follow`) and HTTP runner (`run`).
    """

    def __init__(self, reason: str) -> None:
        self.message = f'create agent pod failed with reason:"{reason}"'

    async def follow(self, request: Mapping[str, Any], on_update: Callable[[NodeUpdate], None]) -> NodeUpdate:
        """End the plugin node as Error with the agent pod's failure."""
        update = NodeUpdate("Error", self.message)
        on_update(update)
        return update

    async def run(self, template: Mapping[str, Any], node_name: str) -> NodeUpdate:
        """End the HTTP node as Error with the agent pod's failure."""
        return NodeUpdate("Error", self.message)
