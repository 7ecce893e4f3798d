"""The agent client over real sockets: our own server, and scripted servers that misbehave
(docs/contract.md §3)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from argoplug.agent.client import AgentClient, Backoff, NodeUpdate, PluginEndpoint, plugin_order
from argoplug.testing import make_request

from .agent_test_plugins import echo, poll
from .helpers import DROP, FakeSleep

REQUEST = make_request({"scripted": {"x": 1}}, template_name="t")
RUNNING = {"node": {"phase": "Running", "message": "working"}, "requeue": "2m"}
SUCCEEDED = {
    "node": {
        "phase": "Succeeded",
        "message": "done",
        "outputs": {"parameters": [{"name": "a", "value": "1"}]},
    }
}


def execute(
    endpoints: Sequence[PluginEndpoint], request: dict[str, Any] = REQUEST, **options: Any
) -> tuple[NodeUpdate, FakeSleep]:
    sleep = FakeSleep()

    async def main() -> NodeUpdate:
        async with AgentClient(endpoints, sleep=sleep, random=lambda: 0.0, **options) as client:
            return await client.execute(request)

    return asyncio.run(main()), sleep


def follow(
    endpoints: Sequence[PluginEndpoint], request: dict[str, Any] = REQUEST
) -> tuple[list[NodeUpdate], FakeSleep]:
    sleep = FakeSleep()
    updates: list[NodeUpdate] = []

    async def main() -> None:
        async with AgentClient(endpoints, sleep=sleep, random=lambda: 0.0) as client:
            await client.follow(request, updates.append)

    asyncio.run(main())
    return updates, sleep


def test_the_request_carries_the_token_content_type_and_the_body(scripted):
    server = scripted([(200, SUCCEEDED)])
    update, _ = execute([server.endpoint("s3cret")])
    headers, body = server.requests[0]
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    assert body == REQUEST
    assert update.phase == "Succeeded" and update.terminal
    assert update.outputs is not None and [(p.name, p.value) for p in update.outputs.parameters] == [
        ("a", "1")
    ]


def test_our_own_server_executes_its_template_and_answers_empty_for_others(live_server):
    server = live_server([echo])
    update, _ = execute(
        [PluginEndpoint(server.url, server.token)], make_request({"echo": {"greeting": "hi"}})
    )
    assert update.phase == "Succeeded"
    assert update.outputs is not None and update.outputs.parameters[0].value == "hi"
    update, _ = execute([PluginEndpoint(server.url, server.token)], make_request({"other": {}}))
    assert update.phase == "Failed"
    assert update.message.startswith("no plugin executed the template (plugin key ")


@pytest.mark.parametrize("body", [{}, None, {"requeue": "5s"}])
def test_an_empty_reply_passes_the_template_to_the_next_plugin(scripted, body):
    first = scripted([(200, body)])
    second = scripted([(200, SUCCEEDED)])
    update, _ = execute([first.endpoint(), second.endpoint()])
    assert update.phase == "Succeeded"
    assert len(first.requests) == len(second.requests) == 1


def test_no_taker_fails_the_node(scripted):
    servers = [scripted([(200, {})]), scripted([(200, None)])]
    update, _ = execute([s.endpoint() for s in servers])
    assert update.phase == "Failed"
    assert update.message.startswith("no plugin executed the template (plugin key ")


def test_the_first_plugin_to_return_a_node_wins(scripted):
    first = scripted([(200, SUCCEEDED)])
    second = scripted([(200, SUCCEEDED)])
    execute([first.endpoint(), second.endpoint()])
    assert len(first.requests) == 1 and second.requests == []


def test_a_404_marks_the_plugin_unsupported_for_the_rest_of_the_run(scripted):
    missing = scripted([(404, "not found")])
    other = scripted([(200, SUCCEEDED)])
    sleep = FakeSleep()

    async def main() -> list[NodeUpdate]:
        async with AgentClient([missing.endpoint(), other.endpoint()], sleep=sleep) as client:
            return [await client.execute(REQUEST) for _ in range(3)]

    updates = asyncio.run(main())
    assert [u.phase for u in updates] == ["Succeeded"] * 3
    assert len(missing.requests) == 1
    assert len(other.requests) == 3
    assert sleep.delays == []


def test_a_503_is_retried_with_backoff(scripted):
    server = scripted([(503, "busy"), (503, "busy"), (200, SUCCEEDED)])
    update, sleep = execute([server.endpoint()])
    assert update.phase == "Succeeded"
    assert len(server.requests) == 3
    assert sleep.delays == [1.0, 2.0]


def test_backoff_has_jitter_and_gives_up_after_five_attempts_with_the_last_error(scripted):
    server = scripted([(503, "still busy")])
    sleep = FakeSleep()

    async def main() -> NodeUpdate:
        async with AgentClient([server.endpoint()], sleep=sleep, random=lambda: 0.5) as client:
            return await client.execute(REQUEST)

    update = asyncio.run(main())
    assert (update.phase, update.message) == ("Failed", "still busy")
    assert len(server.requests) == 5
    assert sleep.delays == pytest.approx([1.1, 2.2, 4.4, 8.8])


def test_a_dropped_connection_is_transient(scripted):
    server = scripted([DROP, (200, SUCCEEDED)])
    update, sleep = execute([server.endpoint()])
    assert update.phase == "Succeeded"
    assert len(server.requests) == 2 and sleep.delays == [1.0]


def test_connection_refused_is_retried_then_fails_the_node():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    update, sleep = execute([PluginEndpoint(f"http://127.0.0.1:{port}", "t")])
    assert update.phase == "Failed"
    assert update.message.startswith(f'Post "http://127.0.0.1:{port}/api/v1/template.execute": ')
    assert len(sleep.delays) == 4


def test_a_call_slower_than_the_timeout_is_transient(scripted):
    server = scripted([(200, SUCCEEDED)], delay=0.3)
    update, sleep = execute([server.endpoint()], timeout=0.05, backoff=Backoff(steps=2))
    assert update.phase == "Failed"
    assert "Client.Timeout exceeded" in update.message
    assert len(server.requests) == 2 and sleep.delays == [1.0]


@pytest.mark.parametrize("status", [400, 403, 422, 500])
def test_a_fatal_status_fails_the_node_and_later_plugins_are_not_tried(scripted, status):
    foreign = scripted([(status, {"error": "not yours"})])
    later = scripted([(200, SUCCEEDED)])
    update, sleep = execute([foreign.endpoint(), later.endpoint()])
    assert update.phase == "Failed"
    assert update.message.startswith(f"{status} ") and update.message.endswith(': {"error": "not yours"}')
    assert later.requests == [] and sleep.delays == []


def test_the_fatal_message_is_the_go_status_line_and_the_body(scripted):
    update, _ = execute([scripted([(400, "bad key")]).endpoint()])
    assert update.message == "400 Bad Request: bad key"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "EOF"),
        (b"<html>oops</html>", "invalid JSON in reply: "),
        (
            {"node": {"phase": "Running"}, "requeue": 30},
            "json: cannot unmarshal number into Go value of type string",
        ),
        ({"node": {"phase": "Running"}, "requeue": "soon"}, 'time: invalid duration "soon"'),
    ],
)
def test_an_undecodable_reply_fails_the_node_without_retries(scripted, body, message):
    server = scripted([(200, body)])
    update, sleep = execute([server.endpoint()])
    assert update.phase == "Failed"
    assert update.message.startswith(message)
    assert len(server.requests) == 1 and sleep.delays == []


def test_a_requeue_calls_again_with_the_same_request_after_the_delay(scripted):
    server = scripted(
        [(200, RUNNING), (200, {"node": {"phase": "Pending"}, "requeue": "1h30m"}), (200, SUCCEEDED)]
    )
    updates, sleep = follow([server.endpoint()])
    assert [u.phase for u in updates] == ["Running", "Pending", "Succeeded"]
    assert sleep.delays == [120.0, 5400.0]
    assert [body for _, body in server.requests] == [REQUEST] * 3


def test_a_terminal_phase_ignores_the_requeue(scripted):
    server = scripted([(200, {**SUCCEEDED, "requeue": "5s"}), (200, RUNNING)])
    updates, sleep = follow([server.endpoint()])
    assert [u.phase for u in updates] == ["Succeeded"]
    assert updates[0].requeue is None and updates[0].warning == ""
    assert len(server.requests) == 1 and sleep.delays == []


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_a_failure_with_a_requeue_keeps_its_phase_and_warns_that_argo_would_call_again(scripted, phase):
    server = scripted(
        [(200, {"node": {"phase": phase, "message": "boom"}, "requeue": "30s"}), (200, RUNNING)]
    )
    updates, sleep = follow([server.endpoint()])
    assert [(u.phase, u.message, u.requeue) for u in updates] == [(phase, "boom", None)]
    assert updates[0].warning == (
        f"plugin 'scripted' answered {phase} with requeue \"30s\": Argo's agent would call it again; "
        "a terminal phase must not carry a requeue (docs/contract.md §2.5)"
    )
    assert len(server.requests) == 1 and sleep.delays == []


@pytest.mark.parametrize("requeue", [None, "0s"])
def test_a_failure_without_a_positive_requeue_has_no_warning(scripted, requeue):
    server = scripted([(200, {"node": {"phase": "Failed", "message": "boom"}, "requeue": requeue})])
    update, _ = execute([server.endpoint()])
    assert (update.phase, update.warning) == ("Failed", "")


def test_running_without_requeue_is_never_called_again(scripted):
    server = scripted([(200, {"node": {"phase": "Running", "message": "started"}})])
    updates: list[NodeUpdate] = []

    async def main() -> None:
        async with AgentClient([server.endpoint()], sleep=FakeSleep()) as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.follow(REQUEST, updates.append), 0.3)

    asyncio.run(main())
    assert len(server.requests) == 1
    assert [(u.phase, u.requeue) for u in updates] == [("Running", None)]


def test_outputs_of_a_reply_replace_the_earlier_ones_and_values_become_strings(scripted):
    first = {
        "node": {"phase": "Running", "outputs": {"parameters": [{"name": "early", "value": "x"}]}},
        "requeue": "1s",
    }
    final = {
        "node": {
            "phase": "Succeeded",
            "outputs": {
                "parameters": [
                    {"name": "n", "value": 3},
                    {"name": "flag", "value": True},
                    {"name": "obj", "value": {"a": 1}},
                    {"name": "none", "value": None},
                    {"name": "s", "value": "text"},
                ],
                "result": "r",
            },
        }
    }
    updates, _ = follow([scripted([(200, first), (200, final)]).endpoint()])
    outputs = updates[-1].outputs
    assert outputs is not None
    assert {p.name: p.value for p in outputs.parameters} == {
        "n": "3",
        "flag": "true",
        "obj": "",
        "none": "",
        "s": "text",
    }
    assert outputs.result == "r"


def test_requeue_against_our_own_server_polls_until_done(live_server):
    server = live_server([poll])
    request = make_request({"poll": {"polls": 3}}, uid="requeue-test")
    updates, sleep = follow([PluginEndpoint(server.url, server.token)], request)
    assert [u.phase for u in updates] == ["Running", "Running", "Succeeded"]
    assert sleep.delays == [30.0, 30.0]


def test_at_most_workers_rounds_run_at_once(scripted):
    server = scripted([(200, SUCCEEDED)], delay=0.1)

    async def main() -> None:
        async with AgentClient([server.endpoint()], workers=2) as client:
            await asyncio.gather(*(client.execute(REQUEST) for _ in range(5)))

    asyncio.run(main())
    assert len(server.requests) == 5
    assert server.max_active == 2


@pytest.mark.parametrize(("value", "workers"), [("3", 3), ("nonsense", 16), ("0", 16)])
def test_workers_default_to_the_agents_environment_variable(monkeypatch, value, workers):
    monkeypatch.setenv("ARGO_AGENT_TASK_WORKERS", value)
    client = AgentClient([])
    asyncio.run(client.aclose())
    assert client.workers == workers


def test_workers_below_one_are_refused():
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        AgentClient([], workers=0)


def test_without_a_seed_the_plugins_are_asked_in_the_order_given(scripted):
    first, second = scripted([(200, SUCCEEDED)]), scripted([(200, SUCCEEDED)])
    client = AgentClient([first.endpoint(), second.endpoint()])
    asyncio.run(client.aclose())
    assert client.order == [first.endpoint(), second.endpoint()]


@pytest.mark.parametrize("seed", range(6))
def test_a_seed_fixes_one_order_for_every_task_of_the_run(scripted, seed):
    servers = [scripted([(200, {})]) for _ in range(3)]
    endpoints = [s.endpoint() for s in servers]

    async def main() -> list[str]:
        async with AgentClient(endpoints, seed=seed, sleep=FakeSleep()) as client:
            for _ in range(3):
                await client.execute(REQUEST)
            return [e.url for e in client.order]

    order = asyncio.run(main())
    assert order == [e.url for e in plugin_order(endpoints, seed)]  # the same order again
    assert sorted(order) == sorted(e.url for e in endpoints)
    # Every plugin is asked about every task; all answered {}: no taker, so each round asks all three.
    assert all(len(s.requests) == 3 for s in servers)


def test_over_seeds_both_orders_of_two_plugins_happen(scripted):
    endpoints = [scripted([(200, {})]).endpoint(), scripted([(200, {})]).endpoint()]
    orders = set()
    for seed in range(20):
        client = AgentClient(endpoints, seed=seed)
        asyncio.run(client.aclose())
        orders.add(tuple(e.url for e in client.order))
    assert orders == {tuple(e.url for e in endpoints), tuple(e.url for e in reversed(endpoints))}


def test_a_requeue_beside_no_node_counts_for_the_next_plugins_node_as_in_go(scripted):
    # Go decodes every plugin's reply into one ExecuteTemplateReply: the first plugin's requeue stays.
    first = scripted([(200, {"requeue": "45s"})])
    second = scripted([(200, {"node": {"phase": "Running", "message": "working"}})])
    update, _ = execute([first.endpoint(), second.endpoint()])
    assert (update.phase, update.requeue) == ("Running", 45.0)


def test_a_null_requeue_clears_one_sent_before(scripted):
    first = scripted([(200, {"requeue": "45s"})])
    second = scripted([(200, {"node": {"phase": "Running"}, "requeue": None})])
    update, _ = execute([first.endpoint(), second.endpoint()])
    assert (update.phase, update.requeue) == ("Running", None)


def test_a_failure_with_an_earlier_plugins_requeue_warns_and_names_who_sent_it(scripted):
    first = scripted([(200, {"requeue": "10s"})])
    second = scripted([(200, {"node": {"phase": "Failed", "message": "boom"}})])
    update, _ = execute([first.endpoint(), second.endpoint()])
    assert update.phase == "Failed"
    assert 'answered Failed with requeue "10s" (sent by scripted): Argo\'s agent would call it again' in (
        update.warning
    )
