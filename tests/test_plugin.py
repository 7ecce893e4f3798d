"""The authoring API: argument conversion, results and errors mapped to nodes, idempotency keys."""

from __future__ import annotations

import asyncio
from typing import Literal

import msgspec
import pytest

from argoplug import ArgumentError, PermanentError, Phase, Plugin, Result, Task, TemporaryError
from argoplug.plugin import idempotency_key, outcome_for
from argoplug.protocol import ExecuteTemplateArgs, Outputs, Parameter, Template
from argoplug.testing import make_request


class Args(msgspec.Struct, forbid_unknown_fields=True):
    pipeline: str
    retries: int = 3
    wait: bool = True
    action: Literal["validate", "execute", "stop"] = "execute"


def args_of(request: dict) -> ExecuteTemplateArgs:
    return msgspec.convert(request, ExecuteTemplateArgs)


def test_lax_conversion_accepts_argo_strings() -> None:
    plugin = Plugin("p", args=Args)
    assert plugin.parse_args({"pipeline": "x", "retries": "5", "wait": "false"}) == Args("x", 5, False)


def test_bad_arguments_name_every_field_value_and_expectation() -> None:
    plugin = Plugin("p", args=Args)
    with pytest.raises(ArgumentError) as caught:
        plugin.parse_args({"retries": "many", "wait": "maybe", "action": "run", "pipline": "x"})
    message = str(caught.value)
    assert message.startswith("invalid arguments for plugin 'p': ")
    assert "`pipeline` is required" in message
    assert "`retries`: expected `int`, got 'many'" in message
    assert "`wait`: expected `bool`, got 'maybe'" in message
    assert "`action`: expected one of 'execute', 'stop', 'validate', got 'run'" in message
    assert (
        "1 field is not an argument (names not shown: one may be a secret); did you mean `pipeline`?"
        in message
    )
    assert "pipline" not in message


def test_arguments_that_are_not_an_object() -> None:
    with pytest.raises(ArgumentError, match="expected an object of arguments, got \\['x'\\]"):
        Plugin("p", args=Args).parse_args(["x"])


def test_post_init_check_is_reported() -> None:
    class Window(msgspec.Struct):
        low: int
        high: int

        def __post_init__(self) -> None:
            if self.low > self.high:
                raise ValueError("low must be <= high")

    with pytest.raises(ArgumentError, match="low must be <= high"):
        Plugin("w", args=Window).parse_args({"low": 3, "high": 1})


def stop_needs_an_execution(args: Args, unconverted: frozenset[str]) -> list[str]:
    if args.action == "stop" and "retries" not in unconverted and args.retries != 0:
        return ["`retries` must be 0 for action 'stop'"]
    return []


def test_check_judges_what_types_cannot_and_carries_failure_outputs() -> None:
    plugin = Plugin(
        "p",
        args=Args,
        check=stop_needs_an_execution,
        failure_outputs=lambda block: {"execution-arn": "", "action": block.get("action", "")},
    )
    assert plugin.parse_args({"pipeline": "x", "action": "stop", "retries": "0"}).retries == 0
    with pytest.raises(ArgumentError) as caught:
        plugin.parse_args({"pipeline": "x", "action": "stop"})
    assert caught.value.message == "invalid arguments for plugin 'p': `retries` must be 0 for action 'stop'"
    assert caught.value.outputs == {"execution-arn": "", "action": "stop"}


def test_check_runs_on_the_fields_that_converted_so_one_message_names_all() -> None:
    plugin = Plugin("p", args=Args, check=stop_needs_an_execution)
    with pytest.raises(ArgumentError) as caught:
        plugin.parse_args({"pipeline": "x", "action": "stop", "wait": "maybe"})
    assert "`wait`: expected `bool`, got 'maybe'" in caught.value.message
    assert "`retries` must be 0 for action 'stop'" in caught.value.message
    # A field that did not convert is not judged again by the check.
    with pytest.raises(ArgumentError) as caught:
        plugin.parse_args({"pipeline": "x", "action": "stop", "retries": "many"})
    assert "`retries`: expected `int`, got 'many'" in caught.value.message
    assert "must be 0" not in caught.value.message


def test_without_args_type_the_handler_gets_the_block() -> None:
    plugin: Plugin[dict] = Plugin("raw")
    seen = []

    @plugin.handler
    def handle(task: Task, args: dict) -> Result:
        seen.append(args)
        return Result.succeeded()

    task = Task.from_args(args_of(make_request({"raw": {"a": 1}})), "raw")
    assert asyncio.run(plugin.call(task)).phase is Phase.SUCCEEDED
    assert seen == [{"a": 1}]


def test_handler_decorator_returns_function_and_refuses_a_second() -> None:
    plugin = Plugin("p")

    def handle(task: Task, args: object) -> Result:
        return Result.succeeded()

    assert plugin.handler(handle) is handle
    with pytest.raises(ValueError, match="already has a handler"):
        plugin.handler(handle)


def test_async_and_sync_handlers_both_run() -> None:
    sync_plugin, async_plugin = Plugin("s"), Plugin("a")

    @sync_plugin.handler
    def sync_handle(task: Task, args: object) -> Result:
        return Result.succeeded("sync")

    @async_plugin.handler
    async def async_handle(task: Task, args: object) -> Result:
        await asyncio.sleep(0)
        return Result.succeeded("async")

    for plugin, text in ((sync_plugin, "sync"), (async_plugin, "async")):
        task = Task.from_args(args_of(make_request({plugin.key: {}})), plugin.key)
        assert asyncio.run(plugin.call(task)).message == text


def test_handler_returning_something_else_is_a_type_error() -> None:
    plugin = Plugin("p")
    plugin.handler(lambda task, args: {"phase": "Succeeded"})
    task = Task.from_args(args_of(make_request({"p": {}})), "p")
    with pytest.raises(TypeError, match=r"expected argoplug\.Result"):
        asyncio.run(plugin.call(task))


def test_task_carries_workflow_template_and_parameters() -> None:
    request = make_request({"p": {}}, parameters={"a": "1"}, workflow="wf", namespace="ns", uid="u-1")
    task = Task.from_args(args_of(request), "p")
    assert (task.workflow_name, task.namespace, task.workflow_uid) == ("wf", "ns", "u-1")
    assert task.parameters == {"a": "1"}
    assert task.template.name == "test"
    assert len(task.key) == 32


def test_idempotency_key_is_deterministic_and_tells_tasks_apart() -> None:
    base = make_request({"p": {"x": 1, "y": 2}})
    same_reordered = make_request({"p": {"y": 2, "x": 1}})
    other_uid = make_request({"p": {"x": 1, "y": 2}}, uid="another")
    other_args = make_request({"p": {"x": 1, "y": 3}})
    other_input = make_request({"p": {"x": 1, "y": 2}}, parameters={"item": "b"})
    key = idempotency_key(args_of(base), "p")
    assert key == idempotency_key(args_of(base), "p")
    assert key == idempotency_key(args_of(same_reordered), "p")
    for other in (other_uid, other_args, other_input):
        assert idempotency_key(args_of(other), "p") != key
    assert idempotency_key(args_of(base), "q") != key


def test_outcomes_map_to_nodes() -> None:
    template = Template(name="t")
    node, requeue = outcome_for(Result.succeeded("done", outputs={"n": 1}), template)
    assert (node.phase, node.message, requeue) == (Phase.SUCCEEDED, "done", None)
    assert node.outputs == Outputs(parameters=[Parameter("n", "1")])

    node, requeue = outcome_for(Result.running("wait", requeue=90), template)
    assert (node.phase, requeue) == (Phase.RUNNING, "1m30s")

    node, requeue = outcome_for(TemporaryError("throttled", delay=12, outputs={"arn": "a"}), template)
    assert (node.phase, node.message, requeue) == (Phase.RUNNING, "throttled", "12s")
    assert node.outputs == Outputs(parameters=[Parameter("arn", "a")])

    node, requeue = outcome_for(PermanentError("no such pipeline", outputs={"a": "b"}), template)
    assert (node.phase, node.message, requeue) == (Phase.FAILED, "no such pipeline", None)
    assert node.outputs == Outputs(parameters=[Parameter("a", "b")])

    node, requeue = outcome_for(RuntimeError("boom\nsecond line"), template)
    assert (node.phase, node.message, requeue) == (Phase.ERROR, "RuntimeError: boom", None)

    node, _ = outcome_for(KeyError("pipeline"), template)
    assert node.message == "KeyError: 'pipeline'"


def test_terminal_results_never_carry_requeue() -> None:
    for result in (Result.succeeded(), Result.failed("x"), Result(Phase.ERROR, "x", {}, 30)):
        assert outcome_for(result, Template())[1] is None


def test_declared_global_names_are_echoed() -> None:
    template = Template(outputs=Outputs(parameters=[Parameter("arn", globalName="pipeline-arn")]))
    node, _ = outcome_for(Result.succeeded(outputs={"arn": "a", "other": "b"}), template)
    assert node.outputs is not None
    assert node.outputs.parameters == [
        Parameter("arn", "a", globalName="pipeline-arn"),
        Parameter("other", "b"),
    ]


def test_running_requires_a_positive_requeue() -> None:
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="requeue must be > 0"):
            Result.running(requeue=bad)
        with pytest.raises(ValueError, match="delay must be > 0"):
            TemporaryError("x", delay=bad)


def test_result_phase_must_be_one_a_plugin_may_send() -> None:
    assert Result("Running", requeue=5).phase is Phase.RUNNING  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not a valid Phase"):
        Result("Skipped")  # type: ignore[arg-type]
