"""The plugin server over real sockets: every row of docs/contract.md §3 a server controls, and §4's
token."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from argoplug import PermanentError, Plugin, Result, Task, TemporaryError
from argoplug.server import EXECUTE_PATH, ServerSettings, create_app
from argoplug.testing import LiveServer, make_request

VECTORS = Path(__file__).parent / "vectors"


class HelloArgs(msgspec.Struct, forbid_unknown_fields=True):
    name: str = "world"
    count: int = 1
    mode: str = "ok"


hello = Plugin("hello", args=HelloArgs)


@hello.handler
def say_hello(task: Task, args: HelloArgs) -> Result:
    if args.mode == "running":
        return Result.running("still going", requeue=45)
    if args.mode == "temporary":
        raise TemporaryError("throttled by the API", delay=20)
    if args.mode == "permanent":
        raise PermanentError("pipeline not found: foo")
    if args.mode == "crash":
        raise RuntimeError("database is on fire")
    return Result.succeeded(
        "Hello template!",
        outputs={"message": f"hello {args.name} x{args.count}", "workflow": task.workflow_name},
    )


@pytest.fixture(scope="module")
def server():
    with LiveServer([hello]) as live:
        yield live


def test_our_template_succeeds_with_outputs(server: LiveServer) -> None:
    reply = server.execute({"hello": {"name": "argo", "count": "2"}}, workflow="wf-1")
    assert reply == {
        "node": {
            "phase": "Succeeded",
            "message": "Hello template!",
            "outputs": {
                "parameters": [
                    {"name": "message", "value": "hello argo x2"},
                    {"name": "workflow", "value": "wf-1"},
                ]
            },
        }
    }


@pytest.mark.parametrize("token", ["", "wrong", None])
def test_foreign_key_gets_empty_object_whatever_the_token(server: LiveServer, token: str | None) -> None:
    response = server.post(make_request({"someone-else": {"a": 1}}), token=token)
    assert response.status_code == 200
    assert response.content == b"{}"


def test_template_without_plugin_block_is_not_ours(server: LiveServer) -> None:
    response = server.post({"workflow": {"metadata": {"name": "w"}}, "template": {"name": "t"}})
    assert (response.status_code, response.content) == (200, b"{}")


@pytest.mark.parametrize(
    ("token", "why"), [(None, "missing Authorization header"), ("wrong", "invalid token")]
)
def test_our_key_with_missing_or_wrong_token_is_forbidden(
    server: LiveServer, token: str | None, why: str
) -> None:
    response = server.post(make_request({"hello": {}}), token=token)
    assert response.status_code == 403
    assert response.json() == {"error": why}
    assert server.token not in response.text


def test_running_carries_a_go_duration_requeue(server: LiveServer) -> None:
    reply = server.execute({"hello": {"mode": "running"}})
    assert reply == {"node": {"phase": "Running", "message": "still going"}, "requeue": "45s"}


def test_temporary_error_is_running_with_its_delay(server: LiveServer) -> None:
    reply = server.execute({"hello": {"mode": "temporary"}})
    assert reply == {"node": {"phase": "Running", "message": "throttled by the API"}, "requeue": "20s"}


def test_permanent_error_is_a_failed_node_in_a_200(server: LiveServer) -> None:
    reply = server.execute({"hello": {"mode": "permanent"}})
    assert reply == {"node": {"phase": "Failed", "message": "pipeline not found: foo"}}


def test_unexpected_exception_is_an_error_node_not_a_500(server: LiveServer) -> None:
    reply = server.execute({"hello": {"mode": "crash"}})
    assert reply == {"node": {"phase": "Error", "message": "RuntimeError: database is on fire"}}


def test_bad_argument_is_a_failed_node_naming_it(server: LiveServer) -> None:
    reply = server.execute({"hello": {"count": "three", "nmae": "x"}})
    assert reply["node"]["phase"] == "Failed"
    assert "`count`: expected `int`, got 'three'" in reply["node"]["message"]
    assert (
        "1 field is not an argument (names not shown: one may be a secret); did you mean `name`?"
        in (reply["node"]["message"])
    )
    assert "nmae" not in reply["node"]["message"]
    assert "requeue" not in reply


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"workflow": {}}', b'{"template": {"plugin": []}}', b"null"]
)
def test_malformed_body_is_400_with_a_message(server: LiveServer, raw: bytes) -> None:
    response = server.post(None, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed template.execute request: ")


def test_our_key_with_a_template_of_wrong_shape_is_a_failed_node(server: LiveServer) -> None:
    request = make_request({"hello": {}})
    request["template"]["inputs"] = {"parameters": "not-a-list"}
    response = server.post(request)
    assert response.status_code == 200
    assert response.json()["node"]["phase"] == "Failed"
    assert "inputs.parameters" in response.json()["node"]["message"]


def test_unknown_request_fields_are_tolerated(server: LiveServer) -> None:
    request = make_request({"hello": {}})
    request["template"]["retryStrategy"] = {"limit": "2"}
    request["template"]["newArgoField"] = {"x": [1, 2]}
    request["workflow"]["metadata"]["labels"] = {"a": "b"}
    request["agentVersion"] = "v9"
    assert server.post(request).json()["node"]["phase"] == "Succeeded"


def test_template_execute_never_answers_404(server: LiveServer) -> None:
    for body in (make_request({"hello": {}}), make_request({"other": {}}), {"template": {}}):
        assert server.post(body).status_code != 404
    assert server.client.get("/api/v1/template.execute").status_code == 405


def test_docs_hello_and_wasm_vectors_are_answered(server: LiveServer) -> None:
    for vector in ("docs-hello/request.json", "wasm/request.json"):
        request = json.loads((VECTORS / vector).read_text())
        request["template"]["plugin"] = {"hello": {}}  # the wasm vector's nested args are not HelloArgs
        reply = server.post(request).json()
        assert reply["node"]["phase"] == "Succeeded", vector


def test_awf_aws_vector_is_foreign_to_the_hello_server(server: LiveServer) -> None:
    response = server.post(json.loads((VECTORS / "awf-aws/request.json").read_text()), token=None)
    assert (response.status_code, response.content) == (200, b"{}")


def test_healthz_lists_plugin_keys(server: LiveServer) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok", "plugins": ["hello"]}


def test_token_file_is_read_again_when_it_changes(server: LiveServer) -> None:
    old = server.token
    try:
        server.token_file.chmod(0o640)
        server.token_file.write_text("rotated-token")
        assert server.post(make_request({"hello": {}}), token="rotated-token").status_code == 200
        assert server.post(make_request({"hello": {}}), token=old).status_code == 403
    finally:
        server.token_file.write_text(old)


@pytest.mark.parametrize("break_token", ["delete", "empty"])
def test_a_missing_or_empty_token_file_is_503_for_our_key_and_no_bearer_gets_in(break_token: str) -> None:
    """503 makes the agent retry (the pod's trouble); an empty token must not accept `Bearer `."""
    with LiveServer([hello]) as live:
        if break_token == "delete":
            live.token_file.unlink()
        else:
            live.token_file.chmod(0o640)
            live.token_file.write_text("")
        for token in (None, live.token):
            refused = live.post(make_request({"hello": {}}), token=token)
            assert refused.status_code == 503
            assert "is missing, unreadable, empty or not a regular file" in refused.json()["error"]
        # `Bearer ` with nothing after it, which httpx will not send: a raw request.
        body = json.dumps(make_request({"hello": {}})).encode()
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
            head = (
                f"POST {EXECUTE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
            status_line = sock.makefile("rb").readline()
        assert status_line.split()[1] == b"503"
        assert live.post(make_request({"other": {}})).content == b"{}"
        live.token_file.write_text(live.token)


def test_a_blocked_handler_does_not_hold_up_fifteen_other_calls() -> None:
    release = threading.Event()
    released_by_others = []
    slow = Plugin("slow")
    fast = Plugin("fast")

    @slow.handler
    def wait_for_others(task: Task, args: object) -> Result:
        # Released only once the other 15 replies are in: a server that serialised calls would time out here.
        released_by_others.append(release.wait(timeout=20))
        return Result.succeeded("slow done")

    @fast.handler
    def answer(task: Task, args: object) -> Result:
        return Result.succeeded("fast done")

    with LiveServer([slow, fast]) as live, concurrent.futures.ThreadPoolExecutor(16) as pool:
        slow_call = pool.submit(live.execute, {"slow": {}})
        time.sleep(0.05)
        fast_calls = [pool.submit(live.execute, {"fast": {}}, template_name=f"t{i}") for i in range(15)]
        fast_replies = [f.result(timeout=15) for f in fast_calls]
        release.set()
        assert slow_call.result(timeout=25)["node"]["message"] == "slow done"
    assert all(r["node"]["phase"] == "Succeeded" for r in fast_replies)
    assert released_by_others == [True]


def test_sixteen_slow_sync_handlers_run_at_once() -> None:
    """The loop's default pool would run only six at a time on two cores; all 16 agent workers must fit."""
    barrier = threading.Barrier(16, timeout=20)
    plugin = Plugin("barrier")

    @plugin.handler
    def meet(task: Task, args: object) -> Result:
        barrier.wait()
        return Result.succeeded()

    with LiveServer([plugin]) as live, concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda i: live.execute({"barrier": {}}, template_name=f"t{i}"), range(16)))
    assert [r["node"]["phase"] for r in replies] == ["Succeeded"] * 16


def test_a_handler_past_its_deadline_is_answered_running_and_goes_on() -> None:
    finished = threading.Event()
    release = threading.Event()
    plugin = Plugin("long")

    @plugin.handler
    def long_work(task: Task, args: object) -> Result:
        release.wait(timeout=20)
        finished.set()
        return Result.succeeded()

    with LiveServer([plugin], settings=ServerSettings(handler_deadline=0.2, deadline_requeue=7)) as live:
        reply = live.execute({"long": {}})
        assert reply == {
            "node": {"phase": "Running", "message": "handler still running after 0.2s"},
            "requeue": "7s",
        }
        release.set()
        assert finished.wait(timeout=10)


def test_a_running_reply_without_outputs_keeps_the_outputs_already_reported() -> None:
    # The agent replaces the node's outputs with each reply's: the deadline reply (and a plugin's Running
    # without outputs) must not clear the execution ARN the node already shows.
    release = threading.Event()
    calls = []
    plugin = Plugin("job")

    @plugin.handler
    def job(task: Task, args: object) -> Result:
        calls.append(1)
        if len(calls) == 1:
            return Result.running("started", requeue=5, outputs={"execution-arn": "arn:x:1"})
        if len(calls) == 2:
            release.wait(timeout=20)  # past the deadline
            return Result.running("polled", requeue=5)
        return Result.succeeded(outputs={"execution-arn": "arn:x:1", "status": "done"})

    with LiveServer([plugin], settings=ServerSettings(handler_deadline=0.2)) as live:
        first = live.execute({"job": {}})
        late = live.execute({"job": {}})
        release.set()
        polled = live.execute({"job": {}})
        done = live.execute({"job": {}})
    arn = [{"name": "execution-arn", "value": "arn:x:1"}]
    assert first["node"]["outputs"]["parameters"] == arn
    assert late["node"]["message"] == "handler still running after 0.2s"
    assert late["node"]["outputs"]["parameters"] == arn
    assert polled["node"]["message"] == "polled" and polled["node"]["outputs"]["parameters"] == arn
    assert done["node"]["phase"] == "Succeeded"


def test_the_next_call_collects_a_late_result_instead_of_running_the_handler_again() -> None:
    """A result computed after the deadline reply must reach the agent: a job tracker that saw a failure
    would otherwise start the next attempt on the next call (the failure never reported)."""
    release = threading.Event()
    runs = []
    plugin = Plugin("late")

    @plugin.handler
    def late(task: Task, args: object) -> Result:
        runs.append(task.key)
        release.wait(timeout=20)
        return Result.failed("pipeline execution Failed: out of memory")

    with LiveServer([plugin], settings=ServerSettings(handler_deadline=0.2)) as live:
        first = live.execute({"late": {}})
        assert first["node"]["phase"] == "Running" and first["requeue"] == "5s"
        second = live.execute({"late": {}})  # still running: joins the same call
        assert second["node"]["message"] == "handler still running after 0.2s"
        release.set()
        third = live.execute({"late": {}})
        assert third == {"node": {"phase": "Failed", "message": "pipeline execution Failed: out of memory"}}
        fourth = live.execute({"late": {}})  # collected: a new call runs the handler again
        assert fourth["node"]["phase"] == "Failed"
    assert len(runs) == 2


def test_parallel_calls_of_identical_templates_each_run_their_handler() -> None:
    """Argo sends no node ID: two parallel steps with the same template are indistinguishable, and a
    plugin with side effects (a message, an API call) must run for each."""
    barrier = threading.Barrier(2, timeout=10)
    plugin = Plugin("twin")

    @plugin.handler
    def twin(task: Task, args: object) -> Result:
        barrier.wait()  # both runs must be in flight at once
        return Result.succeeded()

    with LiveServer([plugin]) as live, concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: live.execute({"twin": {}}), range(2)))
    assert [r["node"]["phase"] for r in replies] == ["Succeeded", "Succeeded"]


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("unencodable", "TypeError: "),
        ("zero-delay", "ValueError: TemporaryError delay must be > 0 seconds and finite, got 0"),
        ("bad-phase", "ValueError: 'Done' is not a valid Phase"),
        ("exit", "SystemExit: 3"),
    ],
)
def test_handler_outcomes_that_cannot_be_sent_are_error_nodes_never_500(outcome: str, message: str) -> None:
    plugin = Plugin("odd")

    @plugin.handler
    def odd(task: Task, args: object) -> Result:
        if outcome == "unencodable":
            return Result.succeeded(outputs={"thing": object()})
        if outcome == "zero-delay":
            raise TemporaryError("x", delay=0)
        if outcome == "bad-phase":
            return Result("Done")  # type: ignore[arg-type]
        raise SystemExit(3)

    with LiveServer([plugin]) as live:
        reply = live.execute({"odd": {}})
        assert reply["node"]["phase"] == "Error"
        assert reply["node"]["message"].startswith(message)
        assert "requeue" not in reply
        assert live.execute({"odd": {}})["node"]["phase"] == "Error"  # the server still serves


def test_result_phase_given_as_string_and_non_string_output_names_are_sent_as_argo_reads_them() -> None:
    plugin = Plugin("strings")
    plugin.handler(lambda task, args: Result("Succeeded", outputs={1: "a"}))  # type: ignore[arg-type, dict-item]
    with LiveServer([plugin]) as live:
        reply = live.execute({"strings": {}})
    assert reply == {"node": {"phase": "Succeeded", "outputs": {"parameters": [{"name": "1", "value": "a"}]}}}


@pytest.mark.parametrize(
    ("setting", "value"), [("handler_deadline", 0), ("handler_deadline", 30), ("deadline_requeue", 0)]
)
def test_settings_out_of_range_are_refused(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=setting):
        ServerSettings(**{setting: value})


def test_live_server_fixture_starts_and_stops_servers(live_server: Any) -> None:
    server = live_server([hello])
    assert server.execute({"hello": {"name": "fixture"}})["node"]["phase"] == "Succeeded"


def test_async_handler_errors_are_nodes_too() -> None:
    plugin = Plugin("async")

    @plugin.handler
    async def fail(task: Task, args: object) -> Result:
        await asyncio.sleep(0)
        raise ValueError("bad thing")

    with LiveServer([plugin]) as live:
        assert live.execute({"async": {}}) == {"node": {"phase": "Error", "message": "ValueError: bad thing"}}


def test_one_server_hosts_several_plugin_keys_and_refuses_a_duplicate() -> None:
    other = Plugin("other")
    other.handler(lambda task, args: Result.succeeded("other"))
    with LiveServer([hello, other]) as live:
        assert live.execute({"other": {}})["node"]["message"] == "other"
        assert live.execute({"hello": {}})["node"]["message"] == "Hello template!"
    with pytest.raises(ValueError, match="claimed twice"):
        create_app([hello, Plugin("hello")])


def test_each_call_is_logged_as_one_structured_line_without_the_token(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="argoplug"):
        server.execute({"hello": {}}, workflow="logged-wf", template_name="say")
    records = [r for r in caplog.records if r.getMessage() == "template.execute"]
    assert len(records) == 1
    record = records[0]
    assert (record.workflow, record.template, record.plugin_key, record.phase) == (  # type: ignore[attr-defined]
        "logged-wf",
        "say",
        "hello",
        "Succeeded",
    )
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
    assert server.token not in caplog.text
