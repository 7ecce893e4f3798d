"""`argoplug check`: verdicts on real servers over loopback: argoplug's, Argo's example, and broken ones."""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.console import Console

import argoplug.conformance.command
import argoplug.conformance.driver
from argoplug import Plugin, Result, Task
from argoplug.conformance.command import check_command
from argoplug.conformance.driver import (
    Launched,
    LaunchError,
    Limits,
    Verdict,
    check_launched,
    run_checks,
)
from argoplug.conformance.replies import reply_findings
from argoplug.conformance.rules import Exchange
from argoplug.conformance.vectors import VECTORS
from argoplug.testing import LiveServer
from conformance_servers import HELLO_SERVER, Behaviour, ContractServer, hello_launcher
from sample_plugins import greet

TESTS = Path(__file__).parent
VECTOR_DIR = TESTS / "vectors"
PYTHONPATH = f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
QUICK = Limits(timeout=5.0, stall_wait=0.5)


def statuses(verdicts: Sequence[Verdict]) -> dict[str, str]:
    return {verdict.rule: verdict.status for verdict in verdicts}


def verdict(verdicts: Sequence[Verdict], rule: str) -> Verdict:
    return next(v for v in verdicts if v.rule == rule)


def check(behaviour: Behaviour) -> list[Verdict]:
    with ContractServer(behaviour) as server:
        return run_checks(server.url, plugin_key=server.key, token=server.token, seed=7, limits=QUICK)


def run_command(target: str, **options: object) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=100, soft_wrap=True, color_system=None)
    code = check_command(target, console=console, **options)  # type: ignore[arg-type]
    return code, out.getvalue()


RULES = [
    "foreign-key",
    "foreign-key-token",
    "token-missing",
    "token-wrong",
    "own-key",
    "same-request-again",
    "vector:docs-hello",
    "vector:awf-aws",
    "vector:wasm",
    "unknown-fields",
    "concurrency",
    "reply-phase",
    "reply-requeue",
    "terminal-requeue",
    "output-parameters",
    "answer-time",
    "bad-requests",
]


def test_the_shipped_vectors_are_the_captured_requests() -> None:
    assert sorted(VECTORS) == ["awf-aws", "docs-hello", "wasm"]
    for name, body in VECTORS.items():
        assert body == json.loads((VECTOR_DIR / name / "request.json").read_text()), name


@pytest.mark.parametrize("args", [{"name": "check"}, {}], ids=["succeeding", "refusing-its-arguments"])
def test_the_argoplug_server_passes_every_rule(args: dict[str, str]) -> None:
    with LiveServer([greet]) as server:
        verdicts = run_checks(server.url, plugin_key="greet", token=server.token, plugin_args=args, seed=1)
    assert list(statuses(verdicts)) == RULES
    assert {v.rule: v.status for v in verdicts if v.status != "PASS"} == {}, verdicts
    phase = "Succeeded" if args else "Failed"
    assert f"200 {phase}" in verdict(verdicts, "own-key").saw
    assert "while another request was incomplete" in verdict(verdicts, "concurrency").saw
    assert all(str(v.contract).startswith("§") for v in verdicts)


@pytest.mark.slow
def test_an_argoplug_sidecar_passes_every_rule_from_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    code, out = run_command("sample_plugins:greet", plugin_args='{"name": "check"}', seed=3)
    assert code == 0, out
    assert "Plugin key 'greet':" in out  # from the sidecar's GET /healthz
    lines = [line for line in out.splitlines() if line[:4] in ("PASS", "FAIL", "WARN", "SKIP")]
    assert [line.split()[1].rstrip(":") for line in lines] == ["slow-start", *RULES]
    assert all(line.startswith("PASS") for line in lines), out
    assert "18 passed, 0 warnings, 0 failed. Seed 3" in out


@pytest.mark.slow
def test_argos_documented_example_gets_the_verdicts_it_deserves(tmp_path: Path) -> None:
    source = HELLO_SERVER.read_bytes()
    launched, results = check_launched(hello_launcher(tmp_path), seed=5)
    assert launched is not None and HELLO_SERVER.read_bytes() == source  # run as it is, unchanged
    verdicts = results["hello"]
    expected = dict.fromkeys(["slow-start", *RULES], "PASS")
    expected["concurrency"] = "WARN"  # HTTPServer: one connection at a time
    assert statuses(verdicts) == expected, verdicts
    # Its token check comes after the key check, and it answers `null` for other keys: the agent moves on.
    assert "no token: 200 null" in verdict(verdicts, "foreign-key-token").saw
    assert "a wrong token: 200 null" in verdict(verdicts, "foreign-key-token").saw
    assert "403 (empty body)" in verdict(verdicts, "token-missing").saw
    assert "one connection at a time" in verdict(verdicts, "concurrency").saw
    # A 404 for other paths and no answer to malformed JSON are harmless: the agent never sends those.
    bad = verdict(verdicts, "bad-requests").saw
    assert "POST /api/v1/unknown.method: 404" in bad and "malformed JSON: no answer" in bad


NUMBER_REQUEUE = {"node": {"phase": "Running", "message": "started"}, "requeue": 30}
TERMINAL_REQUEUE = {"node": {"phase": "Failed", "message": "broke"}, "requeue": "30s"}


def _param(behaviour: Behaviour, rule: str, status: str, saw: str, name: str) -> object:
    return pytest.param(behaviour, rule, status, saw, id=name)


def _outputs(*parameters: dict[str, object]) -> dict[str, object]:
    return {"node": {"phase": "Succeeded", "outputs": {"parameters": list(parameters)}}}


@pytest.mark.parametrize(
    ("behaviour", "rule", "status", "saw"),
    [
        _param(Behaviour(foreign_status=404), "foreign-key", "FAIL", "never calls it again", "404-foreign"),
        _param(
            Behaviour(foreign_status=400, foreign_body=b"unknown plugin"),
            "foreign-key",
            "FAIL",
            'fails the node with "400: <body>" and asks no other plugin',
            "400-foreign",
        ),
        _param(
            Behaviour(foreign_body=b""), "foreign-key", "FAIL", "fails the node with EOF", "empty-foreign"
        ),
        _param(
            Behaviour(foreign_body=b'{"node": {"phase": "Succeeded"}}'),
            "foreign-key",
            "FAIL",
            "steals the task",
            "node-for-foreign",
        ),
        _param(Behaviour(token_first=True), "foreign-key-token", "FAIL", "no token: 403", "token-first"),
        _param(
            Behaviour(check_token=False),
            "token-missing",
            "FAIL",
            "without the agent's token",
            "no-token-check",
        ),
        _param(
            Behaviour(prefix_token=True),
            "token-wrong",
            "FAIL",
            "its token + 'x': 200 Succeeded",
            "prefix-token",
        ),
        _param(Behaviour(reply={}), "own-key", "FAIL", "no plugin executed the template", "own-key-not-mine"),
        _param(
            Behaviour(reply=NUMBER_REQUEUE),
            "reply-requeue",
            "FAIL",
            "requeue 30 is a JSON number",
            "number-requeue",
        ),
        _param(
            Behaviour(reply={"node": {"phase": "Running"}, "requeue": "soon"}),
            "reply-requeue",
            "FAIL",
            'requeue "soon" is not a Go duration',
            "bad-duration",
        ),
        _param(
            Behaviour(reply={"node": {"phase": "Running"}}),
            "reply-requeue",
            "FAIL",
            "the node hangs",
            "running-without-requeue",
        ),
        _param(
            Behaviour(reply=TERMINAL_REQUEUE),
            "terminal-requeue",
            "FAIL",
            "calls again after a terminal phase",
            "failed-with-requeue",
        ),
        _param(
            Behaviour(reply={"node": {"phase": "Succeeded"}, "requeue": "1m"}),
            "terminal-requeue",
            "WARN",
            "ignored",
            "succeeded-with-requeue",
        ),
        _param(
            Behaviour(reply={"node": {"phase": "Done"}}), "reply-phase", "FAIL", "phase 'Done'", "bad-phase"
        ),
        _param(
            Behaviour(reply=_outputs({"name": "o", "value": {}})),
            "output-parameters",
            "FAIL",
            'silently stores ""',
            "object-value",
        ),
        _param(
            Behaviour(reply=_outputs({"name": "n", "value": 3})),
            "output-parameters",
            "WARN",
            "is a JSON number",
            "number-value",
        ),
        _param(Behaviour(strict=True), "vector:wasm", "FAIL", "500", "500-on-vectors"),
        _param(Behaviour(strict=True), "unknown-fields", "FAIL", "500", "500-on-unknown-fields"),
    ],
)
def test_a_server_breaking_a_rule_gets_its_verdict(
    behaviour: Behaviour, rule: str, status: str, saw: str
) -> None:
    verdicts = check(behaviour)
    found = verdict(verdicts, rule)
    assert found.status == status, found
    assert saw in found.saw, found.saw


def test_each_misbehaviour_fails_only_the_rules_it_breaks() -> None:
    assert statuses(check(Behaviour(token_first=True))) == {
        **dict.fromkeys(RULES, "PASS"),
        "foreign-key-token": "FAIL",  # with the right token, the agent's own, it would pass the foreign key
    }
    broken = statuses(check(Behaviour(foreign_status=404)))
    assert {rule for rule, status in broken.items() if status == "FAIL"} == {
        "foreign-key",
        "foreign-key-token",
        "vector:docs-hello",  # its `hello` key is another plugin's
        "vector:awf-aws",
        "vector:wasm",
        "bad-requests",  # the foreign-key call after them
    }
    strict = statuses(check(Behaviour(strict=True)))
    assert {rule for rule, status in strict.items() if status == "FAIL"} == {"vector:wasm", "unknown-fields"}


def test_500_on_the_vectors_is_a_fail_with_what_the_agent_does() -> None:
    found = verdict(check(Behaviour(strict=True)), "vector:wasm")
    assert "500" in found.saw and "asks no other plugin" in found.saw
    assert found.contract.section == "2.1"


def test_calls_run_one_at_a_time_behind_a_lock_are_a_warning() -> None:
    found = verdict(check(Behaviour(lock=True, delay=0.06)), "concurrency")
    assert found.status == "WARN", found
    assert "seem to run one at a time" in found.saw


def test_a_slow_answer_is_a_warning_and_a_hang_a_fail() -> None:
    slow = Limits(timeout=5.0, stall_wait=0.5, slow_answer=0.05)
    with ContractServer(Behaviour(delay=0.1)) as server:
        verdicts = run_checks(server.url, plugin_key="bad", token=server.token, limits=slow)
    assert verdict(verdicts, "answer-time").status == "WARN"
    hang = Limits(timeout=0.2, stall_wait=0.2)
    with ContractServer(Behaviour(delay=0.6)) as server:
        verdicts = run_checks(server.url, plugin_key="bad", token=server.token, limits=hang)
    assert verdict(verdicts, "answer-time").status == "FAIL"
    assert "timed out" in verdict(verdicts, "own-key").saw


@pytest.mark.parametrize(("delay", "status"), [(0.0, "PASS"), (0.4, "WARN"), (1.2, "FAIL")])
def test_the_time_to_the_first_answer_after_launch(delay: float, status: str) -> None:
    limits = Limits(timeout=5.0, stall_wait=0.5, start_warn=0.3, start_fail=1.0)
    server = ContractServer(Behaviour(start_delay=delay))
    launched, results = check_launched(server.launched, limits=limits)
    assert launched is not None
    found = results["bad"][0]
    assert (found.rule, found.status) == ("slow-start", status), found
    if status == "FAIL":
        assert results["bad"] == [found]  # nothing more to check
    else:
        assert len(results["bad"]) == 1 + len(RULES)


def test_a_server_that_does_not_start_fails_the_start() -> None:
    def launch() -> Launched:
        raise LaunchError("exited with code 1 before answering")

    launched, results = check_launched(launch, plugin_keys=["hello"])
    assert launched is None
    assert results == {
        "hello": [
            Verdict(
                "slow-start",
                "FAIL",
                "it did not start: exited with code 1 before answering",
                argoplug.conformance.driver.C_START,
            )
        ]
    }


def test_the_seed_repeats_the_requests() -> None:
    with LiveServer([greet]) as server:
        first = run_checks(server.url, plugin_key="greet", token=server.token, seed=11)
        again = run_checks(server.url, plugin_key="greet", token=server.token, seed=11)
    assert verdict(first, "foreign-key").saw.split(":")[0] == verdict(again, "foreign-key").saw.split(":")[0]


def test_reply_findings_judge_the_shape_as_the_agent_decodes_it() -> None:
    def findings(reply: object) -> list[tuple[str, str]]:
        return [
            (rule, status)
            for rule, status, _ in reply_findings(Exchange("r", 200, json.dumps(reply).encode()))
        ]

    assert findings({"node": {"phase": "Running"}, "requeue": "1h30m"}) == []
    assert findings({"node": {"phase": "Pending"}, "requeue": "0s"}) == [("reply-requeue", "FAIL")]
    assert findings({"node": {"phase": ""}, "requeue": "5s"}) == [("reply-phase", "FAIL")]
    assert findings({"node": {"phase": 3}}) == [("reply-phase", "FAIL")]
    assert findings({"node": {"phase": "Error"}, "requeue": "5s"}) == [("terminal-requeue", "FAIL")]
    assert findings({"node": {"phase": "Succeeded", "outputs": {"parameters": [{"name": "x"}]}}}) == [
        ("output-parameters", "FAIL")
    ]
    assert findings({}) == [] and findings(None) == []


# check_command: the command line around the checks.


def test_check_command_passes_a_running_argoplug_server(tmp_path: Path) -> None:
    with LiveServer([greet]) as server:
        code, out = run_command(server.url, token_file=server.token_file, seed=2)
    assert code == 0, out
    assert f"Token: read from {server.token_file}." in out
    assert "Plugin keys from GET" in out and "PASS foreign-key: key 'argoplug-check-other-" in out
    assert "     contract §3.1: a template whose key is not ours" in out
    assert "(docs/contract.md#3-1-other-plugins-templates)" in out


def test_check_command_exits_1_on_a_fail_and_shows_it() -> None:
    with ContractServer(Behaviour(foreign_status=404)) as server:
        code, out = run_command(server.url, plugin_key="bad", token=server.token)
    assert code == 1
    assert "FAIL foreign-key: key 'argoplug-check-other-" in out and "never calls it again" in out
    assert ", 6 failed." in out


hello = Plugin("hello", description="Answers every template of key hello")


@hello.handler
def say_hello(task: Task, args: dict[str, object]) -> Result:
    return Result.succeeded("Hello template!", outputs={"foo": "bar"})


def test_a_servers_other_keys_are_not_foreign_to_it() -> None:
    with LiveServer([greet, hello]) as server:
        code, out = run_command(server.url, token=server.token, seed=6)
    assert code == 0, out
    assert "Plugin keys from GET" in out and "greet, hello." in out
    assert "Plugin key 'greet':" in out and "Plugin key 'hello':" in out
    # Checking greet, the vectors of key hello get hello's node: the server's own, not a stolen task.
    assert "PASS vector:wasm: as sent (key 'hello'): 200 Succeeded \"Hello template!\"" in out
    assert "34 passed, 0 warnings, 0 failed." in out  # 17 rules per key; no start to time


def test_without_a_token_the_own_key_rules_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(argoplug.conformance.command, "DEFAULT_TOKEN_FILE", str(tmp_path / "absent"))
    with LiveServer([greet]) as server:
        code, out = run_command(server.url)
    assert code == 0, out
    assert "cannot be read: the own-key rules are skipped" in out
    assert "SKIP own-key: no token" in out and "PASS token-missing" in out
    assert "16 calls of a foreign key (no token given)" in out


def test_usage_errors_exit_2_naming_the_problem(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, out = run_command("http://127.0.0.1:port", plugin_key="x")
    assert code == 2 and "the port is not a number" in out
    assert run_command(closed, plugin_key="x") == (
        2,
        f"argoplug check: {closed}: nothing answers there (Connection refused)\n",
    )
    with ContractServer() as server:
        code, out = run_command(server.url, token="t")
    assert code == 2 and "give --plugin-key KEY" in out
    code, out = run_command("no-such-plugin")
    assert (
        code == 2
        and "'no-such-plugin' is not a URL, a file or folder, nor an installed argoplug plugin" in out
    )
    code, out = run_command("sample_plugins:greet", token="t")
    assert code == 2 and "--token is for a URL target" in out
    code, out = run_command("sample_plugins:greet", plugin_args="[1]")
    assert code == 2 and "--args must be a mapping" in out
    code, out = run_command(str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file or folder" in out
    (tmp_path / "other.yaml").write_text("kind: Pod\n")
    code, out = run_command(str(tmp_path / "other.yaml"))
    assert code == 2 and "not an Argo plugin.yaml (kind ExecutorPlugin)" in out


def test_an_argoplug_plugin_that_cannot_load_fails_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    code, out = run_command("no_such_module:plugins", plugin_key="x")
    assert code == 1
    assert "FAIL slow-start: it did not start: the plugin server exited with code 2" in out


def _can_run_the_hello_manifest() -> str:
    token = Path(argoplug.conformance.command.DEFAULT_TOKEN_FILE)
    parent = next(p for p in [token.parent, *token.parent.parents] if p.exists())
    if not token.exists() and not os.access(parent, os.W_OK):
        return f"{token} cannot be created here (not root): the hello manifest reads its token there"
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", 4355)) == 0:
            return "port 4355, the hello plugin's, is in use"
    return ""


@pytest.mark.slow
@pytest.mark.parametrize(
    "target", ["hello-plugin-src", "hello-plugin-src/plugin.yaml", "hello-executor-plugin-configmap.yaml"]
)
def test_an_argo_plugin_folder_or_configmap_is_started_and_checked(target: str) -> None:
    reason = _can_run_the_hello_manifest()
    if reason:
        pytest.skip(reason)
    code, out = run_command(str(VECTOR_DIR / target), seed=4)
    assert code == 0, out
    assert "Plugin key: 'hello', the plugin's name." in out
    assert "PASS slow-start" in out and "WARN concurrency: " in out and "one connection at a time" in out
    assert "PASS foreign-key-token: no token: 200 null" in out
    # Argo's e2e hello plugin runs as uid 1000 with no group: its image decides whether it reads the token.
    assert "WARN token-user: the sidecar runs as uid 1000 with no runAsGroup" in out
    assert "17 passed, 2 warnings, 0 failed" in out


def test_a_sidecar_user_that_cannot_read_the_token_fails_the_check_and_nothing_starts(tmp_path: Path) -> None:
    folder = tmp_path / "hello"
    folder.mkdir()
    (folder / "server.py").write_text((VECTOR_DIR / "hello-plugin-src" / "server.py").read_text())
    plugin = (VECTOR_DIR / "hello-plugin-src" / "plugin.yaml").read_text()
    (folder / "plugin.yaml").write_text(
        plugin.replace("runAsUser: 1000", "runAsUser: 65534\n        runAsGroup: 65534")
    )
    code, out = run_command(str(folder), seed=4)
    assert code == 1, out
    assert "FAIL token-user: the sidecar runs as uid 65534, gid 65534: Argo's agent writes" in out
    assert "set the container's securityContext to runAsUser: 8737 (or runAsGroup: 0)" in out
    assert "slow-start" not in out and "Started" not in out
    assert "0 passed, 0 warnings, 1 failed" in out
