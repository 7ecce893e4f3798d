"""The authoring API: a plugin is a typed handler bound to one plugin key.

Plugin authors declare a `Plugin`, decorate a handler, and return a `Result` or raise `TemporaryError` /
`PermanentError`. The server (`argoplug.server`) turns all of it into replies; `outcome_for` is the one
place that maps a handler's outcome to a node.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from argoplug.protocol import (
    ExecuteTemplateArgs,
    NodeResult,
    Outputs,
    Parameter,
    Phase,
    Template,
    encode_parameter_value,
    format_duration,
)

__all__ = [
    "ArgumentError",
    "PermanentError",
    "Plugin",
    "Result",
    "Secret",
    "Task",
    "TemporaryError",
    "idempotency_key",
    "redact",
    "short_repr",
]

log = logging.getLogger("argoplug.plugin")

ArgsT = TypeVar("ArgsT")
Handler = Callable[["Task", Any], "Result | Awaitable[Result]"]
# Checks beyond types: (the arguments, the names of fields whose values did not convert) → problems.
ArgumentCheck = Callable[[Any, frozenset[str]], Sequence[str]]

DEFAULT_REQUEUE = 30.0

_SecretT = TypeVar("_SecretT")
# What marks a field secret, in its msgspec metadata (`Meta.extra`); the JSON schema says `writeOnly`.
_SECRET_MARK = "argoplug.secret"
_SECRET_META = msgspec.Meta(
    extra_json_schema={"writeOnly": True, "format": "password"}, extra={_SECRET_MARK: True}
)
Secret = Annotated[_SecretT, _SECRET_META]
"""`Secret[str]` (any type inside): an argument field whose value never appears in a node's message or
outputs, in a log line or in an argument error, also when it does not convert. The server replaces
every string the field holds, wherever it shows up in what is answered or logged, by `[secret]`."""
REDACTED = "[secret]"


class TemporaryError(Exception):
    """Raise for trouble that passes (throttling, a 5xx, a lost connection): the node stays `Running`.

    The agent calls again after `delay` seconds (default 30). Nothing is failed for a blip. `outputs`
    (name → value) are reported with the Running node, as the reply replaces the node's outputs.
    """

    def __init__(
        self, message: str, *, delay: float = DEFAULT_REQUEUE, outputs: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        if not 0 < delay < math.inf:
            raise ValueError(f"TemporaryError delay must be > 0 seconds and finite, got {delay!r}")
        self.message = message
        self.delay = delay
        self.outputs = dict(outputs or {})


class PermanentError(Exception):
    """Raise when the work itself failed or cannot be done as asked: the node is `Failed`.

    Argo's `retryStrategy` with `retryPolicy: OnFailure` retries a Failed node. `outputs` (name → value)
    are reported with the failure.
    """

    def __init__(self, message: str, *, outputs: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.outputs = dict(outputs or {})


class ArgumentError(PermanentError):
    """The plugin block of a template does not fit the plugin's argument type; names each bad field."""


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """What a handler returns: a phase, a message, output parameters and, while running, a requeue.

    Build it with `Result.succeeded`, `Result.failed` or `Result.running`. `outputs` maps parameter
    names to values; values that are not strings are JSON-encoded (see `encode_parameter_value`).
    `requeue` is in seconds and only kept for Pending/Running.
    """

    phase: Phase
    message: str = ""
    outputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    requeue: float | None = None
    result: str | None = None

    def __post_init__(self) -> None:
        # Raises ValueError for a phase a plugin may not send (Argo would leave the workflow hanging).
        object.__setattr__(self, "phase", Phase(self.phase))
        if self.requeue is not None and not 0 < self.requeue < math.inf:
            raise ValueError(f"requeue must be > 0 seconds and finite, got {self.requeue!r}")

    @classmethod
    def succeeded(
        cls, message: str = "", *, outputs: Mapping[str, Any] | None = None, result: str | None = None
    ) -> Result:
        """The work is done; `outputs` must be complete (they replace the node's outputs)."""
        return cls(Phase.SUCCEEDED, message, dict(outputs or {}), None, result)

    @classmethod
    def failed(cls, message: str, *, outputs: Mapping[str, Any] | None = None) -> Result:
        """The work failed; `message` says what and why."""
        return cls(Phase.FAILED, message, dict(outputs or {}))

    @classmethod
    def running(
        cls, message: str = "", *, requeue: float = DEFAULT_REQUEUE, outputs: Mapping[str, Any] | None = None
    ) -> Result:
        """The work goes on; the agent calls again with the same request after `requeue` seconds.

        Raises ValueError unless `requeue` is > 0 and finite.
        """
        return cls(Phase.RUNNING, message, dict(outputs or {}), requeue)


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """One call of a plugin: the workflow, the template as resolved, and a deterministic key.

    `parameters` maps the template's input parameter names to their values (strings). `key` is the
    idempotency key (see `idempotency_key`): the same for every call of the same task, so external work
    can be named from it and found again after a requeue or a restart.
    """

    workflow_name: str
    namespace: str
    workflow_uid: str
    plugin_key: str
    template: Template
    parameters: Mapping[str, str]
    key: str

    @classmethod
    def from_args(cls, args: ExecuteTemplateArgs, plugin_key: str) -> Task:
        """Build the task of a decoded request for `plugin_key`."""
        meta = args.workflow.metadata
        params = {
            p.name: p.value if p.value is not None else (p.default or "")
            for p in args.template.inputs.parameters
        }
        return cls(
            workflow_name=meta.name,
            namespace=meta.namespace,
            workflow_uid=meta.uid,
            plugin_key=plugin_key,
            template=args.template,
            parameters=params,
            key=idempotency_key(args, plugin_key),
        )


def idempotency_key(args: ExecuteTemplateArgs, plugin_key: str) -> str:
    """Derive the task's idempotency key: 32 hex digits of SHA-256.

    Hashes the workflow's uid, name and namespace, the plugin key and the template as resolved (name,
    inputs, plugin arguments), in a canonical encoding. Argo sends no node ID or attempt number, so
    two fan-out items or retry attempts with identical templates share a key; put `{{node.name}}` or
    `{{retries}}` into the plugin block to tell them apart.
    """
    meta = args.workflow.metadata
    template = args.template
    material = msgspec.json.encode(
        [meta.uid, meta.name, meta.namespace, plugin_key, template.name, template.inputs, template.plugin],
        order="sorted",
    )
    return hashlib.sha256(material).hexdigest()[:32]


class Plugin(Generic[ArgsT]):
    """An executor plugin: a plugin key, an argument type and one handler.

    `args` is a msgspec Struct (or any type msgspec converts to) for the plugin block of the template.
    Conversion is lax, as Argo substitutes parameters as strings: "3" is accepted for an int field and
    "true" for a bool. Without `args` the handler receives the block as a dict.

    `check(args, unconverted)` judges what types cannot (a field required for one action, a value's
    form) and returns a list of problems, [] when fine. It also runs when some fields did not convert:
    then `args` holds the fields that did (the others at their defaults) and `unconverted` names the
    others, so that one message names every problem; leave out checks involving those fields.
    `failure_outputs(block)` gives the outputs (name → value) of a node failed for bad arguments, for
    plugins whose consumers expect every output on every final reply.

    Usage::

        plugin = Plugin("hello", args=HelloArgs, description="Says hello")

        @plugin.handler
        def hello(task: Task, args: HelloArgs) -> Result:
            return Result.succeeded(outputs={"greeting": f"hello {args.name}"})

    The handler may be sync (run in a thread pool) or async; `handler` returns it unchanged.
    """

    def __init__(
        self,
        key: str,
        *,
        args: type[ArgsT] | None = None,
        check: ArgumentCheck | None = None,
        failure_outputs: Callable[[Any], Mapping[str, Any]] | None = None,
        description: str = "",
        name: str | None = None,
    ) -> None:
        if not key or not isinstance(key, str):
            raise ValueError(f"plugin key must be a non-empty string, got {key!r}")
        self.key = key
        self.args_type: Any = args if args is not None else dict
        self.check = check
        self.failure_outputs = failure_outputs
        self.description = description
        self.name = name or key
        # The encode names of the argument fields declared `Secret[...]`, top level.
        self.secret_fields: frozenset[str] = _secret_fields(self.args_type)
        self._handler: Handler | None = None
        self._is_async = False

    def __repr__(self) -> str:
        return f"Plugin({self.key!r})"

    @property
    def is_async(self) -> bool:
        """Whether the handler is a coroutine function (a sync one runs in a thread pool)."""
        return self._is_async

    def handler(self, fn: Callable[[Task, ArgsT], Result | Awaitable[Result]]) -> Callable[..., Any]:
        """Register `fn(task, args)` as this plugin's handler and return it unchanged.

        Raises ValueError if a handler is already registered.
        """
        if self._handler is not None:
            raise ValueError(f"plugin {self.key!r} already has a handler: {self._handler.__qualname__}")
        self._handler = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        return fn

    def parse_args(self, block: Any) -> ArgsT:
        """Convert the template's plugin block to the argument type.

        Raises ArgumentError naming every bad field, the value given and what was expected, with the
        problems `check` finds after them, and `failure_outputs(block)` as its outputs.
        """
        if block is None:
            block = {}
        try:
            args = msgspec.convert(block, self.args_type, strict=False)
        except msgspec.ValidationError as exc:
            problems = _argument_problems(block, self.args_type, self.secret_fields) or [_unechoed(exc)]
            if self.check is not None:
                partial, unconverted = _convertible_part(block, self.args_type)
                if partial is not None:
                    problems.extend(self.check(partial, unconverted))
            raise self._argument_error(block, problems) from None
        if self.check is not None:
            problems = list(self.check(args, frozenset()))
            if problems:
                raise self._argument_error(block, problems)
        return args

    def _argument_error(self, block: Any, problems: Sequence[str]) -> ArgumentError:
        outputs = self.failure_outputs(block) if self.failure_outputs is not None else None
        message = f"invalid arguments for plugin {self.key!r}: " + "; ".join(problems)
        return ArgumentError(message, outputs=outputs)

    def secret_values(self, block: Any) -> tuple[str, ...]:
        """Every string the `Secret[...]` fields of the plugin block `block` hold, as given (unconverted:
        a value of the wrong type counts too), nested ones included; () without secret fields."""
        if not self.secret_fields or not isinstance(block, Mapping):
            return ()
        found: list[str] = []
        for name in self.secret_fields:
            if name in block:
                found.extend(_strings(block[name]))
        return tuple(sorted({value for value in found if value}, key=len, reverse=True))

    def argument_schema(self) -> dict[str, Any]:
        """Return the JSON schema (draft 2020-12, from `msgspec.json.schema`) of the plugin block.

        Argo substitutes parameters as strings, and parsing is lax: a string "3" is taken for an integer
        field and "true" for a boolean, beyond what the schema says. A plugin without `args` has the
        schema of any object.
        """
        schema: dict[str, Any] = msgspec.json.schema(self.args_type)
        for definition in schema.get("$defs", {}).values():
            if "description" in definition:  # msgspec copies docstrings with their indentation
                definition["description"] = inspect.cleandoc(definition["description"])
        if self.description and "description" not in schema:
            schema["description"] = self.description
        return schema

    async def call(self, task: Task) -> Result:
        """Parse the arguments of `task` and run the handler (sync handlers in a worker thread).

        Raises what the handler raises (but SystemExit and KeyboardInterrupt, which become an Error
        result); ArgumentError for bad arguments; RuntimeError without a handler.
        """
        return await self.start(task)

    def start(self, task: Task, executor: Executor | None = None) -> asyncio.Future[Result]:
        """Start `call(task)` and return its future, without a task in between for sync handlers.

        A sync handler runs in `executor` (the server gives each plugin its own pool, so one plugin's
        blocked handlers never hold up another's), else in the loop's default executor. The server uses
        it to wait for a handler with a deadline. Must be called on the event loop. Raises ArgumentError
        for bad arguments and RuntimeError without a handler, at once.
        """
        if self._handler is None:
            raise RuntimeError(
                f"plugin {self.key!r} has no handler: decorate a function with @plugin.handler"
            )
        args = self.parse_args(task.template.plugin.get(self.key))
        if self._is_async:
            return asyncio.ensure_future(self._run_async(task, args))
        return asyncio.get_running_loop().run_in_executor(executor, self._run_sync, task, args)

    def _run_sync(self, task: Task, args: Any) -> Result:
        try:
            return self._checked(self._handler(task, args))  # type: ignore[misc]
        except (SystemExit, KeyboardInterrupt) as exc:
            return self._exited(exc)

    async def _run_async(self, task: Task, args: Any) -> Result:
        try:
            return self._checked(await self._handler(task, args))  # type: ignore[misc]
        except (SystemExit, KeyboardInterrupt) as exc:
            return self._exited(exc)

    def _exited(self, exc: BaseException) -> Result:
        # Out of an asyncio task or future these would stop the whole server: one handler's exit is
        # its node's Error.
        log.error("handler of plugin %r exited", self.key, exc_info=exc)
        text = str(exc)
        return Result(Phase.ERROR, f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _checked(self, result: Any) -> Result:
        if not isinstance(result, Result):
            raise TypeError(
                f"handler of plugin {self.key!r} returned {type(result).__name__}, expected argoplug.Result"
            )
        return result


def _argument_problems(block: Any, args_type: Any, secret: frozenset[str] = frozenset()) -> list[str]:
    """List every field of `block` that does not convert to its field type in `args_type`.

    The value of a field in `secret` is never quoted, only its type; nor is the name of a field that
    `args_type` does not have (a misplaced password is as likely as a typo), only the nearest field name.
    """
    if not isinstance(block, Mapping):
        return [f"expected an object of arguments, got {short_repr(block)}"]
    try:
        info = msgspec.inspect.type_info(args_type)
    except Exception:  # not introspectable: fall back to msgspec's own message
        return []
    if not isinstance(info, msgspec.inspect.StructType):
        return []
    problems: list[str] = []
    known = set()
    for field in info.fields:
        known.add(field.encode_name)
        if field.encode_name not in block:
            if field.required:
                problems.append(f"`{field.encode_name}` is required")
            continue
        value = block[field.encode_name]
        annotation = _field_annotation(args_type, field.name)
        try:
            msgspec.convert(value, annotation, strict=False)
        except msgspec.ValidationError as exc:
            given = _secret_shape(value) if field.encode_name in secret else short_repr(value)
            problems.append(f"`{field.encode_name}`: {_expected(exc, annotation)}, got {given}")
    if info.forbid_unknown_fields:
        unknown = [name for name in block if name not in known]
        if unknown:
            problems.append(_unknown_fields_problem(unknown, known))
    if not problems:
        # Every field converts alone, so a __post_init__ check refused the whole: say what it said.
        try:
            msgspec.convert(block, args_type, strict=False)
        except msgspec.ValidationError as exc:
            problems.append(_unechoed(exc))
    return problems


def _unknown_fields_problem(unknown: Sequence[Any], known: Iterable[str]) -> str:
    import difflib

    fields = sorted(known)
    nearest = {
        match
        for name in unknown
        for match in difflib.get_close_matches(str(name), fields, n=1, cutoff=0.6)
        if isinstance(name, str)
    }
    count = f"{len(unknown)} field{'s are' if len(unknown) > 1 else ' is'} not an argument"
    hint = f"; did you mean {', '.join(f'`{n}`' for n in sorted(nearest))}?" if nearest else ""
    return f"{count} (names not shown: one may be a secret){hint}; the arguments are: {', '.join(fields)}"


def _unechoed(exc: msgspec.ValidationError) -> str:
    """msgspec's message, without the name of an unknown field (it may be a secret put in the wrong place)."""
    text = str(exc)
    if not text.startswith("Object contains unknown field"):
        return text
    at = text.rfind(" - at `")
    return "Object contains an unknown field (name not shown)" + (text[at:] if at >= 0 else "")


def _secret_shape(value: Any) -> str:
    return f"a value of type {type(value).__name__} (not shown: secret)"


def _strings(value: Any) -> Iterable[str]:
    """The strings in a decoded JSON value (not its keys), and numbers as text: what a message could quote."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)


def _secret_fields(args_type: Any) -> frozenset[str]:
    """The encode names of the fields of a Struct `args_type` whose type carries the Secret mark."""
    try:
        info = msgspec.inspect.type_info(args_type)
    except Exception:
        return frozenset()
    if not isinstance(info, msgspec.inspect.StructType):
        return frozenset()
    return frozenset(field.encode_name for field in info.fields if _is_secret(field.type))


def _is_secret(info: Any) -> bool:
    if isinstance(info, msgspec.inspect.Metadata):
        return bool((info.extra or {}).get(_SECRET_MARK)) or _is_secret(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_secret(member) for member in info.types)
    return False


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every occurrence of each of `secrets` (longest first) replaced by `[secret]`."""
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_result(result: Result, secrets: Sequence[str]) -> Result:
    """`result` with `redact` applied to its message, output values (strings or as JSON) and `result`."""
    if not secrets:
        return result
    outputs = {name: _redacted_value(value, secrets) for name, value in (result.outputs or {}).items()}
    return dataclasses.replace(
        result,
        message=redact(result.message, secrets),
        outputs=outputs,
        result=redact(result.result, secrets) if isinstance(result.result, str) else result.result,
    )


def _redacted_value(value: Any, secrets: Sequence[str]) -> Any:
    text = value if isinstance(value, str) else encode_parameter_value(value)
    redacted = redact(text, secrets)
    return value if redacted == text else redacted


def _convertible_part(block: Any, args_type: Any) -> tuple[Any, frozenset[str]]:
    """`args_type` from the fields of `block` that convert alone (others left at their defaults), and the
    names of the fields that do not; None when even that fails (a required field is missing or bad)."""
    try:
        info = msgspec.inspect.type_info(args_type)
    except Exception:
        return None, frozenset()
    if not isinstance(block, Mapping) or not isinstance(info, msgspec.inspect.StructType):
        return None, frozenset()
    by_name = {field.encode_name: field.name for field in info.fields}
    kept: dict[str, Any] = {}
    unconverted: set[str] = set()
    for name, value in block.items():
        if name not in by_name:
            continue
        try:
            msgspec.convert(value, _field_annotation(args_type, by_name[name]), strict=False)
        except msgspec.ValidationError:
            unconverted.add(name)
        else:
            kept[name] = value
    try:
        return msgspec.convert(kept, args_type, strict=False), frozenset(unconverted)
    except msgspec.ValidationError:
        return None, frozenset(unconverted)


def _field_annotation(args_type: Any, attr: str) -> Any:
    import typing

    return typing.get_type_hints(args_type)[attr]


def _expected(exc: msgspec.ValidationError, annotation: Any) -> str:
    choices = _choices(msgspec.inspect.type_info(annotation))
    if choices is not None and str(exc).startswith("Invalid enum value"):
        return "expected one of " + ", ".join(repr(c) for c in choices)
    text = str(exc)
    # msgspec says "Expected `int`, got `str`" or "Invalid enum value 'x'"; keep the first clause.
    first = text.split(" - at ", 1)[0]
    if first.startswith("Expected "):
        return "expected " + first[len("Expected ") :].split(", got ", 1)[0]
    return first[0].lower() + first[1:] if first else "invalid value"


def _choices(info: Any) -> list[Any] | None:
    if isinstance(info, msgspec.inspect.LiteralType):
        return list(info.values)
    if isinstance(info, msgspec.inspect.EnumType):
        return [member.value for member in info.cls]
    if isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            found = _choices(member)
            if found is not None:
                return found
    return None


def short_repr(value: Any, limit: int = 80) -> str:
    """Return `value` as a problem message quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def result_for(outcome: Result | BaseException) -> Result:
    """Return the `Result` a handler's outcome is answered as (what `argoplug_after_execute` is given).

    `Result` as given (Pending/Running without a requeue get the default, 30 s); `TemporaryError` →
    Running + its delay; `PermanentError` → Failed; any other exception → Error with "<type>: <text>"
    (the text's first line).
    """
    if isinstance(outcome, Result):
        if outcome.requeue is None and not outcome.phase.terminal:
            return dataclasses.replace(outcome, requeue=DEFAULT_REQUEUE)
        return outcome
    if isinstance(outcome, TemporaryError):
        return Result(Phase.RUNNING, outcome.message, outcome.outputs, outcome.delay)
    if isinstance(outcome, PermanentError):
        return Result(Phase.FAILED, outcome.message, outcome.outputs)
    text = str(outcome).strip().splitlines()[0] if str(outcome).strip() else ""
    return Result(Phase.ERROR, f"{type(outcome).__name__}: {text}" if text else type(outcome).__name__)


def outcome_for(result: Result | BaseException, template: Template) -> tuple[NodeResult, str | None]:
    """Map a handler's result or exception to the reply's node and requeue (a Go duration or None).

    The outcome is first made a `Result` by `result_for`. A terminal phase never carries a requeue.
    Output parameters declared in the template with `globalName` get it echoed. Raises what encoding
    the outputs raises (an output value msgspec cannot encode).
    """
    result = result_for(result)
    outputs = _outputs(result, template)
    node = NodeResult(phase=result.phase, message=result.message, outputs=outputs)
    requeue = None
    if not result.phase.terminal:
        requeue = format_duration(result.requeue if result.requeue is not None else DEFAULT_REQUEUE)
    return node, requeue


def _outputs(result: Result, template: Template) -> Outputs | None:
    if not result.outputs and result.result is None:
        return None
    global_names = {p.name: p.globalName for p in template.outputs.parameters if p.globalName}
    params = [
        Parameter(name=str(name), value=encode_parameter_value(value), globalName=global_names.get(str(name)))
        for name, value in result.outputs.items()
    ]
    return Outputs(parameters=params, result=result.result)
