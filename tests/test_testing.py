"""The test kit (`argoplug.testing`): calling a live server as Argo's agent does, and the `live_server`
fixture plugin authors use."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import msgspec
import pytest

import argoplug.agent.client
import hook_plugins
from argoplug import Plugin, Result, Task
from argoplug.hooks import plugin_manager
from argoplug.protocol import Outputs, Parameter
from argoplug.testing import LiveServer, NodeUpdate


class PollArgs(msgspec.Struct, forbid_unknown_fields=True):
    job: str
    running_for: int = 2  # calls answered Running before Succeeded
    requeue: float = 3600.0


poll = Plugin("poll", args=PollArgs)
calls: Counter[str] = Counter()


@poll.handler
def poll_job(task: Task, args: PollArgs) -> Result:
    calls[args.job] += 1
    if calls[args.job] <= args.running_for:
        return Result.running(f"call {calls[args.job]}", requeue=args.requeue, outputs={"job": args.job})
    return Result.succeeded(
        f"done after {calls[args.job]} calls", outputs={"job": args.job, "p": task.parameters}
    )


@pytest.fixture(scope="module")
def server() -> Any:
    with LiveServer([poll]) as live:
        yield live


def test_node_update_is_the_agent_clients() -> None:
    assert NodeUpdate is argoplug.agent.client.NodeUpdate


def test_run_task_follows_requeues_without_waiting_until_the_node_is_done(server: LiveServer) -> None:
    began = time.monotonic()
    node = server.run_task({"poll": {"job": "a"}}, parameters={"epochs": "3"}, workflow="wf-1")
    assert time.monotonic() - began < 10  # two requeues of an hour each, not waited out
    assert calls["a"] == 3
    assert node == NodeUpdate(
        "Succeeded",
        "done after 3 calls",
        Outputs(
            parameters=[Parameter(name="job", value="a"), Parameter(name="p", value='{"epochs":"3"}')],
            artifacts=[],
        ),
    )
    assert node.terminal and node.requeue is None and node.warning == ""


def test_run_task_fails_the_test_when_the_node_is_never_done(server: LiveServer) -> None:
    with pytest.raises(AssertionError) as caught:
        server.run_task({"poll": {"job": "b", "running_for": 1000, "requeue": 30}}, max_calls=5)
    assert str(caught.value) == (
        "plugin 'poll': the node is still Running after 5 calls (5 × Running; last message 'call 5', "
        "requeue 30s): raise max_calls, or make the task finish"
    )
    assert calls["b"] == 5


def test_run_task_with_a_task_that_succeeds_at_once_makes_one_call(server: LiveServer) -> None:
    node = server.run_task({"poll": {"job": "c", "running_for": 0}}, max_calls=1)
    assert (node.phase, calls["c"]) == ("Succeeded", 1)


def test_run_task_refuses_a_max_calls_below_one(server: LiveServer) -> None:
    with pytest.raises(ValueError, match="max_calls must be >= 1, got 0"):
        server.run_task({"poll": {"job": "d"}}, max_calls=0)
    assert calls["d"] == 0


def test_call_as_agent_makes_one_round(server: LiveServer) -> None:
    node = server.call_as_agent({"poll": {"job": "e", "requeue": 45}})
    assert node == NodeUpdate(
        "Running",
        "call 1",
        Outputs(parameters=[Parameter(name="job", value="e")], artifacts=[]),
        requeue=45.0,
    )
    assert calls["e"] == 1


def test_call_as_agent_has_the_agents_semantics(server: LiveServer) -> None:
    # Nobody takes a foreign key's template: the agent fails the node.
    update = server.call_as_agent({"someone-else": {}})
    assert update.phase == "Failed"
    assert update.message.startswith("no plugin executed the template (plugin key 'someone-else' asked; ")
    # Bad arguments are a Failed node in a 200 reply, as the agent records it.
    node = server.call_as_agent({"poll": {}})
    assert (node.phase, node.message) == ("Failed", "invalid arguments for plugin 'poll': `job` is required")


def test_call_as_agent_retries_a_503_without_waiting() -> None:
    with LiveServer([poll]) as live:
        live.token_file.unlink()  # the server answers 503: the agent retries 5 times with backoff
        began = time.monotonic()
        node = live.call_as_agent({"poll": {"job": "f"}})
    assert time.monotonic() - began < 10  # 1 + 2 + 4 + 8 s of backoff, not waited out
    assert node.phase == "Failed"
    assert "is missing, unreadable, empty or not a regular file" in node.message
    assert calls["f"] == 0


def test_live_server_fixture_with_hooks(live_server: Any) -> None:
    recorder = hook_plugins.Recorder()
    live = live_server([poll], hooks=plugin_manager([("recorder", recorder)]))
    assert isinstance(live, LiveServer)
    assert live.run_task({"poll": {"job": "g", "running_for": 1}}).phase == "Succeeded"
    assert [call[1] for call in recorder.calls] == ["startup", "before", "after", "before", "after"]
    assert [call[3].phase.value for call in recorder.calls if call[1] == "after"] == ["Running", "Succeeded"]


def test_live_server_fixture_keeps_execute_and_post(live_server: Any) -> None:
    live = live_server([poll])
    assert live.execute({"poll": {"job": "h", "running_for": 0}})["node"]["phase"] == "Succeeded"
    assert live.post({"workflow": {}, "template": {"plugin": {"poll": {}}}}, token="wrong").status_code == 403


def test_run_task_fails_the_test_when_the_node_would_hang(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # argoplug's server never answers Running without a requeue: stand in for a plugin that would.
    answers = iter([NodeUpdate("Running", "started", requeue=5.0), NodeUpdate("Running", "waiting")])

    async def execute(self: Any, request: Any) -> NodeUpdate:
        return next(answers)

    monkeypatch.setattr(argoplug.agent.client.AgentClient, "execute", execute)
    with pytest.raises(AssertionError) as caught:
        server.run_task({"poll": {"job": "i"}})
    assert str(caught.value) == (
        "plugin 'poll': call 2 answered Running without a requeue (message 'waiting'): Argo's agent would "
        "never call again, and the node would hang until the workflow's deadline"
    )
