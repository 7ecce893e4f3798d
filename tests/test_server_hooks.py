"""The server hooks over real sockets: startup before the first answer, shutdown at stop (also on SIGTERM
of a real `argoplug serve`), before/after each handler call of a served key, and what a raising hook does."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import msgspec
import pytest

import hook_plugins
from argoplug import PermanentError, Plugin, Result, Task, TemporaryError, hookimpl
from argoplug.hooks import plugin_manager
from argoplug.plugin import outcome_for
from argoplug.protocol import Phase, Template
from argoplug.server import ServerSettings
from argoplug.testing import LiveServer, Sidecar, SidecarError, make_request

TESTS = Path(__file__).parent
PYTHONPATH = f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"


class EchoArgs(msgspec.Struct, forbid_unknown_fields=True):
    mode: str = "ok"
    refuse: str = ""
    seconds: float = 0.0


echo = Plugin("echo", args=EchoArgs)
handler_calls: list[EchoArgs] = []


@echo.handler
def run_echo(task: Task, args: EchoArgs) -> Result:
    handler_calls.append(args)
    if args.mode == "slow":
        time.sleep(args.seconds)
    if args.mode == "temporary":
        raise TemporaryError("throttled", delay=7)
    if args.mode == "permanent":
        raise PermanentError("no such pipeline", outputs={"why": "missing"})
    if args.mode == "crash":
        raise RuntimeError("disk full\nsecond line")
    return Result.succeeded("echoed", outputs={"mode": args.mode, "workflow": task.workflow_name})


@pytest.fixture(autouse=True)
def _fresh_handler_calls() -> None:
    handler_calls.clear()


def served(*packages: tuple[str, object], **settings: Any) -> LiveServer:
    return LiveServer([echo], hooks=plugin_manager(packages), settings=ServerSettings(**settings))


def calls_of(recorder: hook_plugins.Recorder, kind: str) -> list[tuple[Any, ...]]:
    return [call for call in recorder.calls if call[1] == kind]


# --- startup and shutdown ------------------------------------------------------------------------------


class Gate:
    """A startup hook that blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()

    @hookimpl
    def argoplug_startup(self) -> None:
        self.entered.set()
        self.open.wait(10)


def test_startup_runs_before_the_first_answer_and_shutdown_at_stop() -> None:
    recorder, gate = hook_plugins.Recorder(), Gate()
    server = served(("recorder", recorder), ("gate", gate))
    starting = threading.Thread(target=server.start)
    starting.start()
    try:
        assert gate.entered.wait(10)
        assert calls_of(recorder, "startup") == [("recorder", "startup", ("echo",))]
        with pytest.raises(ConnectionRefusedError):  # not listening while a startup hook runs
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    finally:
        gate.open.set()
        starting.join(10)
    try:
        assert server.execute({"echo": {}})["node"]["phase"] == "Succeeded"
        assert calls_of(recorder, "shutdown") == []
    finally:
        server.stop()
    assert recorder.calls[-1] == ("recorder", "shutdown", ("echo",))
    assert [call[1] for call in recorder.calls] == ["startup", "before", "after", "shutdown"]


def test_startup_runs_in_registration_order_and_shutdown_in_reverse() -> None:
    calls: list[tuple[Any, ...]] = []
    first, second = hook_plugins.Recorder("first", calls), hook_plugins.Recorder("second", calls)
    with served(("first", first), ("second", second)):
        pass
    assert [(name, kind) for name, kind, *_ in calls] == [
        ("first", "startup"),
        ("second", "startup"),
        ("second", "shutdown"),
        ("first", "shutdown"),
    ]


def test_a_raising_shutdown_hook_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[Any, ...]] = []
    before, after = hook_plugins.Recorder("before", calls), hook_plugins.Recorder("after", calls)
    server = served(("before", before), ("broken-pkg", hook_plugins.BrokenAtRuntime()), ("after", after))
    with caplog.at_level(logging.ERROR, logger="argoplug"):
        server.start().stop()
    assert [(name, kind) for name, kind, *_ in calls if kind == "shutdown"] == [
        ("after", "shutdown"),
        ("before", "shutdown"),
    ]
    errors = [r.getMessage() for r in caplog.records if r.name == "argoplug.server"]
    assert errors == ["plugin 'broken-pkg': hook argoplug_shutdown failed: RuntimeError: broken shutdown"]


def test_a_raising_startup_hook_stops_the_start_naming_the_package() -> None:
    calls: list[tuple[Any, ...]] = []
    first, last = hook_plugins.Recorder("first", calls), hook_plugins.Recorder("last", calls)
    server = served(("first", first), ("db-package", hook_plugins.Broken()), ("last", last))
    failure = "plugin 'db-package': hook argoplug_startup failed: RuntimeError: broken startup"
    with pytest.raises(RuntimeError, match=f"^argoplug test server did not start: {failure}$") as caught:
        server.start()
    assert str(caught.value.__cause__) == failure
    # The later startup hooks and every shutdown hook are skipped; nothing listens.
    assert [(name, kind) for name, kind, *_ in calls] == [("first", "startup")]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_async_hooks_are_awaited() -> None:
    recorder = hook_plugins.AsyncRecorder()
    with served(("async-pkg", recorder)) as server:
        assert server.execute({"echo": {}})["node"]["phase"] == "Succeeded"
    assert recorder.calls == [("startup",), ("after", "Succeeded")]


# --- before and after each call ---------------------------------------------------------------------------


def test_before_and_after_run_once_per_call_of_a_served_key_with_the_task_and_result() -> None:
    recorder = hook_plugins.Recorder()
    with served(("recorder", recorder)) as server:
        reply = server.execute({"echo": {"mode": "ok"}}, workflow="wf-7")
        assert server.post(make_request({"someone-else": {}}), token=None).content == b"{}"
        assert server.post(make_request({"echo": {}}), token="wrong").status_code == 403
    assert reply["node"]["phase"] == "Succeeded"
    before, after = calls_of(recorder, "before"), calls_of(recorder, "after")
    assert len(before) == len(after) == 1  # neither for the foreign key nor for the refused token
    task = before[0][2]
    assert isinstance(task, Task)
    assert (task.plugin_key, task.workflow_name, task.template.plugin) == (
        "echo",
        "wf-7",
        {"echo": {"mode": "ok"}},
    )
    assert after[0][2] is task
    assert after[0][3] == Result.succeeded("echoed", outputs={"mode": "ok", "workflow": "wf-7"})
    assert len(handler_calls) == 1


@pytest.mark.parametrize(
    ("block", "phase", "message", "requeue"),
    [
        ({"mode": "temporary"}, Phase.RUNNING, "throttled", 7),
        ({"mode": "permanent"}, Phase.FAILED, "no such pipeline", None),
        ({"mode": "crash"}, Phase.ERROR, "RuntimeError: disk full", None),
        (
            {"mode": 3},
            Phase.FAILED,
            "invalid arguments for plugin 'echo': `mode`: expected `str`, got 3",
            None,
        ),
    ],
)
def test_after_gets_exceptions_mapped_as_the_reply_maps_them(
    block: dict[str, Any], phase: Phase, message: str, requeue: float | None
) -> None:
    recorder = hook_plugins.Recorder()
    with served(("recorder", recorder)) as server:
        reply = server.execute({"echo": block})
    (_, _, _, result), *_ = calls_of(recorder, "after")
    assert (result.phase, result.message, result.requeue) == (phase, message, requeue)
    assert reply["node"]["phase"] == phase.value
    assert reply["node"]["message"] == message


def test_after_gets_running_for_a_handler_past_its_deadline() -> None:
    recorder = hook_plugins.Recorder()
    slow = {"echo": {"mode": "slow", "seconds": 0.4}}
    with served(("recorder", recorder), handler_deadline=0.2, deadline_requeue=3) as server:
        replies = [server.execute(slow)]
        # The next calls wait for the handler that went late, or take its result; before and after run
        # for each of them too.
        while replies[-1]["node"]["phase"] == "Running" and len(replies) < 50:
            replies.append(server.execute(slow))
    assert (replies[0]["node"]["phase"], replies[0]["requeue"]) == ("Running", "3s")
    assert replies[-1]["node"]["phase"] == "Succeeded"
    results = [call[3] for call in calls_of(recorder, "after")]
    assert [(r.phase, r.requeue) for r in results] == [(Phase.RUNNING, 3)] * (len(replies) - 1) + [
        (Phase.SUCCEEDED, None)
    ]
    assert results[0].message == "handler still running after 0.2s"
    assert len(calls_of(recorder, "before")) == len(replies)
    assert len(handler_calls) == 1


def test_a_permanent_error_in_before_fails_the_node_and_skips_the_handler() -> None:
    recorder = hook_plugins.Recorder()
    with served(("policy", hook_plugins.Refuser()), ("recorder", recorder)) as server:
        reply = server.execute({"echo": {"refuse": "quota spent"}})
        allowed = server.execute({"echo": {}})
    assert reply == {
        "node": {
            "phase": "Failed",
            "message": "refused by policy: quota spent",
            "outputs": {"parameters": [{"name": "policy", "value": "deny"}]},
        }
    }
    assert allowed["node"]["phase"] == "Succeeded"
    assert len(handler_calls) == 1  # only the allowed call ran the handler
    # A refusal stops the later before hooks; the after hooks see the Failed result.
    assert len(calls_of(recorder, "before")) == 1
    results = [call[3] for call in calls_of(recorder, "after")]
    assert [(r.phase, r.message) for r in results] == [
        (Phase.FAILED, "refused by policy: quota spent"),
        (Phase.SUCCEEDED, "echoed"),
    ]


def test_raising_before_and_after_hooks_are_logged_and_leave_the_reply_unchanged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = hook_plugins.Recorder()
    with LiveServer([echo]) as plain:
        expected = plain.execute({"echo": {"mode": "permanent"}})
    with (
        caplog.at_level(logging.ERROR, logger="argoplug"),
        served(("broken-pkg", hook_plugins.BrokenAtRuntime()), ("recorder", recorder)) as server,
    ):
        reply = server.execute({"echo": {"mode": "permanent"}})
    assert reply == expected
    assert len(handler_calls) == 2
    assert [call[1] for call in recorder.calls if call[1] in ("before", "after")] == ["before", "after"]
    errors = [
        r.getMessage() for r in caplog.records if r.name == "argoplug.server" and "_execute" in r.message
    ]
    assert errors == [
        "plugin 'broken-pkg': hook argoplug_before_execute failed: RuntimeError: broken before_execute",
        "plugin 'broken-pkg': hook argoplug_after_execute failed: RuntimeError: broken after_execute",
    ]


def test_only_implemented_per_call_hooks_put_hook_calls_on_the_per_call_path() -> None:
    # Decided once, in create_app: with no before/after implementation a call never looks at hooks.
    lifecycle_only = types.ModuleType("lifecycle_only")
    lifecycle_only.argoplug_startup = hookimpl(lambda plugins: None)  # type: ignore[attr-defined]
    without = LiveServer([echo], hooks=plugin_manager([("lifecycle", lifecycle_only)]))
    with_hooks = served(("recorder", hook_plugins.Recorder()))
    try:
        plain, hooked = without.app.state.plugin_server, with_hooks.app.state.plugin_server
        assert (plain._before, plain._after) == ((), ())
        assert len(hooked._before) == len(hooked._after) == 1
    finally:
        without.stop()
        with_hooks.stop()


OUTCOMES: list[Result | BaseException] = [
    Result.succeeded("ok", outputs={"n": 1, "doc": {"a": [1]}}, result="r"),
    Result.failed("bad", outputs={"x": "y"}),
    Result.running("going", requeue=12.5),
    Result(Phase.RUNNING, "no requeue given"),
    Result(Phase.PENDING, "queued", requeue=90),
    TemporaryError("throttled", delay=3, outputs={"arn": "a"}),
    PermanentError("gone", outputs={"why": "w"}),
    RuntimeError("boom\nmore"),
    RuntimeError(),
    SystemExit(3),
]
scripted = Plugin("scripted")


@scripted.handler
def play(task: Task, block: dict[str, Any]) -> Result:
    outcome = OUTCOMES[int(block["case"])]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@pytest.mark.parametrize("case", range(len(OUTCOMES)), ids=lambda i: repr(OUTCOMES[i]))
def test_the_result_after_hooks_get_is_the_reply(case: int) -> None:
    recorder = hook_plugins.Recorder()
    with LiveServer([scripted], hooks=plugin_manager([("recorder", recorder)])) as server:
        request = make_request({"scripted": {"case": case}})
        request["template"]["outputs"] = {"parameters": [{"name": "n", "globalName": "g-n"}]}
        reply = server.post(request).json()
    [(_, _, _, result)] = calls_of(recorder, "after")
    template = msgspec.convert(request["template"], Template)
    node, requeue = outcome_for(result, template)
    assert reply["node"] == msgspec.to_builtins(node)
    assert reply.get("requeue") == requeue
    assert reply["node"]["phase"] == result.phase.value and reply["node"]["message"] == result.message


# --- a real `argoplug serve` ------------------------------------------------------------------------------


def log_lines(sidecar: Sidecar) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sidecar.log_path.read_text().splitlines()]


@pytest.mark.slow
def test_serve_exits_1_naming_the_package_when_a_startup_hook_raises(tmp_path: Path) -> None:
    sidecar = Sidecar(
        ["hook_plugins:plugin"],
        env={"PYTHONPATH": PYTHONPATH, hook_plugins.FAIL_STARTUP_ENV: "cannot reach the database"},
        workdir=tmp_path,
    )
    with pytest.raises(SidecarError, match="exited with code 1 before answering"):
        sidecar.start()
    lines = log_lines(sidecar)
    failure = (
        "plugin 'hook_plugins:plugin': hook argoplug_startup failed: RuntimeError: cannot reach the database"
    )
    assert lines[0]["message"] == failure + "; the server does not start"
    assert lines[0]["traceback"].endswith("RuntimeError: cannot reach the database")
    assert (
        "in argoplug_startup\n    raise RuntimeError(os.environ[FAIL_STARTUP_ENV])" in lines[0]["traceback"]
    )
    # uvicorn's own account, once, without a second copy of the traceback.
    assert [line["message"] for line in lines[1:]] == ["Application startup failed. Exiting."]


@pytest.mark.slow
def test_sigterm_to_serve_runs_the_shutdown_hook(tmp_path: Path) -> None:
    hook_log = tmp_path / "hooks.log"
    env = {"PYTHONPATH": PYTHONPATH, hook_plugins.HOOK_LOG_ENV: str(hook_log)}
    with Sidecar(["hook_plugins:plugin"], env=env, workdir=tmp_path) as sidecar:
        assert hook_log.read_text() == "startup hooked\n"
        assert sidecar.post(make_request({"hooked": {}})).json()["node"]["phase"] == "Succeeded"
        assert sidecar.process is not None
        sidecar.process.send_signal(signal.SIGTERM)
        assert sidecar.process.wait(timeout=10) in (0, -signal.SIGTERM)
    assert hook_log.read_text() == "startup hooked\nshutdown hooked\n"
    assert log_lines(sidecar)[-1]["message"] == "plugin server stopped"


@pytest.mark.slow
def test_serve_refuses_a_package_with_a_misspelt_hook_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "misspelt_hooks.py").write_text(
        "from argoplug import Plugin, hookimpl\n"
        "plugin = Plugin('misspelt')\n"
        "@hookimpl\n"
        "def argoplug_start_up(plugins):\n"
        "    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "argoplug", "serve", "--plugin", "misspelt_hooks:plugin", "--port", "1"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(
        "argoplug serve: plugin 'misspelt_hooks:plugin': unknown hook 'argoplug_start_up' in plugin"
    )
    assert "Traceback" not in done.stderr
