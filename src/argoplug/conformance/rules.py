"""The rules of `argoplug check`: pure judgements, by docs/contract.md §2–§4, from recorded exchanges
(`Exchange`) to verdicts (`Verdict`), each saying what the real agent does with the answer (`workflow/util/
plugin/plugin.go`, `Client.Call`; `workflow/executor/agent.go`) and carrying the contract's clause it
applies (`argoplug.conformance.contract`). `argoplug.conformance.driver` and the package's other modules
call them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from argoplug.conformance.contract import (
    C_AGAIN,
    C_ANSWER_TIME,
    C_BAD,
    C_CONCURRENCY,
    C_FOREIGN,
    C_FOREIGN_TOKEN,
    C_OWN,
    C_START,
    C_TOKEN_MISSING,
    C_TOKEN_USER,
    C_TOKEN_WRONG,
    C_UNKNOWN,
    C_VECTOR,
    Clause,
)
from argoplug.token_access import AGENT_UID, container_identity, security_context_problem

__all__ = [
    "AGENT_WORKERS",
    "C_AGAIN",
    "C_ANSWER_TIME",
    "C_BAD",
    "C_CONCURRENCY",
    "C_FOREIGN",
    "C_FOREIGN_TOKEN",
    "C_OWN",
    "C_START",
    "C_TOKEN_MISSING",
    "C_TOKEN_USER",
    "C_TOKEN_WRONG",
    "C_UNKNOWN",
    "C_VECTOR",
    "Clause",
    "Exchange",
    "Limits",
    "Status",
    "Verdict",
    "agent_outcome",
    "foreign_problem",
    "judge_answer_time",
    "judge_bad_requests",
    "judge_concurrency",
    "judge_foreign",
    "judge_own",
    "judge_refused",
    "judge_start",
    "judge_token_user",
    "judge_tolerance",
    "judge_vector",
    "own_problem",
    "summary",
]

Status = Literal["PASS", "FAIL", "WARN", "SKIP"]

AGENT_WORKERS = 16  # ARGO_AGENT_TASK_WORKERS' default (workflow/executor/agent.go)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One rule's outcome: `rule` (a stable id such as `foreign-key`), `status`, what was `saw`, and the
    `contract` clause it applies (a section of docs/contract.md, its link and its words).

    `status`: PASS, FAIL (the real agent would fail or hang a workflow, or the contract says must),
    WARN (works, but badly: slow, serialized, ignored fields), SKIP (could not be run, `saw` says why).
    """

    rule: str
    status: Status
    saw: str
    contract: Clause


@dataclasses.dataclass(frozen=True)
class Limits:
    """The thresholds of the checks, in seconds.

    `timeout`: each call's limit, the agent's HTTP client timeout (30). `slow_answer`: an own-key answer
    slower than this is a WARN (the contract says "well inside 30 s"). `slow_foreign`: a foreign key's
    `{}` slower than this is a WARN (every plugin is asked about every plugin task). `start_warn` /
    `start_fail`: time from launch to the first answer (docs/contract.md §3.7: about 15 s). `stall_wait`:
    how long a second call may wait while another request is still arriving before the server is judged
    to serve one connection at a time.
    """

    timeout: float = 30.0
    slow_answer: float = 10.0
    slow_foreign: float = 1.0
    start_warn: float = 5.0
    start_fail: float = 15.0
    stall_wait: float = 1.0


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One request and what came back: `status` (None when no HTTP answer came: `error` says why), the
    body, and the time it took in seconds. `label` names it in messages ("no token")."""

    label: str
    status: int | None
    body: bytes = b""
    seconds: float = 0.0
    error: str = ""

    def decoded(self) -> tuple[Any, str]:
        """The reply as Go's `json.Decoder` reads it (the first JSON value), and "" or why it fails."""
        text = self.body.decode("utf-8", "replace").strip()
        if not text:
            return None, "empty body: the agent fails the node with EOF"
        try:
            value, _ = json.JSONDecoder().raw_decode(text)
        except ValueError as exc:
            return None, f"not JSON ({exc}): the agent fails the node with the decode error"
        if value is not None and not isinstance(value, dict):
            kind = _json_kind(value)
            return None, f"a JSON {kind}: the agent fails the node (json: cannot unmarshal {kind})"
        return value, ""

    def node(self) -> dict[str, Any] | None:
        """The `node` of a decodable 200 reply, or None."""
        value, problem = self.decoded()
        if self.status != 200 or problem or value is None or not isinstance(value.get("node"), dict):
            return None
        node: dict[str, Any] = value["node"]
        return node

    def describe(self) -> str:
        """'200 {} in 3 ms', '403 (empty body) in 1 ms', 'no answer (timed out) after 30 s'."""
        took = _duration(self.seconds)
        if self.status is None:
            return f"no answer ({self.error}) after {took}"
        return f"{self.status} {_snippet(self.body)} in {took}"


def agent_outcome(exchange: Exchange) -> str:
    """What the agent does with a reply that is not 200 (`plugin.go`, `Client.Call`), for messages."""
    status = exchange.status
    if status is None:
        return "the agent retries it as transient (1 s, ×2, 5 attempts), then fails the node"
    if status == 404:
        return (
            "the agent marks the plugin unsupported and never calls it again in this workflow, for any task"
        )
    if status == 503:
        return "the agent retries it as transient (5 attempts), then fails the node"
    return f'the agent fails the node with "{status}: <body>" and asks no other plugin'


def foreign_problem(exchange: Exchange) -> str:
    """Why an answer to a template of another plugin breaks the contract, or "" (docs/contract.md §3.1)."""
    if exchange.status != 200:
        return agent_outcome(exchange)
    value, problem = exchange.decoded()
    if problem:
        return problem
    if value is not None and value.get("node") is not None:
        return "it answered a node for another plugin's template: the first node wins, so it steals the task"
    return ""


def judge_foreign(rule: str, exchanges: Sequence[Exchange], limits: Limits, contract: Clause) -> Verdict:
    """PASS when every exchange got a fast `200 {}`/`null` (no node), FAIL otherwise, WARN when slow."""
    for exchange in exchanges:
        problem = foreign_problem(exchange)
        if problem:
            return Verdict(rule, "FAIL", f"{exchange.label}: {exchange.describe()}: {problem}", contract)
    seen = "; ".join(f"{e.label}: {e.describe()}" for e in exchanges)
    slowest = max(exchanges, key=lambda e: e.seconds)
    if slowest.seconds > limits.slow_foreign:
        return Verdict(
            rule,
            "WARN",
            f"{seen}: slow ({_duration(slowest.seconds)}); every plugin is asked about every plugin task",
            contract,
        )
    return Verdict(rule, "PASS", seen, contract)


def judge_refused(rule: str, exchanges: Sequence[Exchange], key: str, contract: Clause) -> Verdict:
    """PASS when every call of our key without the right token got 403 (docs/contract.md §4.2)."""
    worst: Verdict | None = None
    for exchange in exchanges:
        status = exchange.status
        if status == 403:
            continue
        saw = f"{exchange.label}: {summary(exchange)}"
        if status == 401:
            saw += ": the agent treats 401 like 403 (the node fails), but the contract's answer is 403"
            worst = worst or Verdict(rule, "WARN", saw, contract)
            continue
        if status == 200 and exchange.node() is not None:
            saw += ": it runs templates for callers without the agent's token"
        elif status == 200:
            saw += f": 'not mine' for its own key; expected 403 (is {key!r} its plugin key?)"
        else:
            saw += f": expected 403; {agent_outcome(exchange)}"
        return Verdict(rule, "FAIL", saw, contract)
    if worst is not None:
        return worst
    return Verdict(rule, "PASS", "; ".join(f"{e.label}: {e.describe()}" for e in exchanges), contract)


def own_problem(exchange: Exchange, key: str) -> str:
    """Why an answer to a template of our key (with the right token) breaks the contract, or ""."""
    if exchange.status == 403:
        return "403 with the token given: it refuses the agent's token (is the token right?)"
    if exchange.status != 200:
        return agent_outcome(exchange)
    value, problem = exchange.decoded()
    if problem:
        return problem
    if value is None or value.get("node") is None:
        return (
            f"'not mine' for its own key {key!r}: with no other taker the agent fails the node with "
            "`no plugin executed the template` (is it the plugin key?)"
        )
    return ""


def summary(exchange: Exchange) -> str:
    """'200 Succeeded "Hello template!" in 2 ms' for a reply with a node, else `describe()`."""
    node = exchange.node()
    if node is None:
        return exchange.describe()
    message = node.get("message")
    text = f' "{_clip(str(message), 60)}"' if message else ""
    return f"200 {node.get('phase') or '(no phase)'}{text} in {_duration(exchange.seconds)}"


def judge_own(rule: str, exchange: Exchange, key: str, contract: Clause) -> Verdict:
    """PASS when a call of our key with the right token got 200 with a node; FAIL saying why otherwise."""
    problem = own_problem(exchange, key)
    if problem:
        return Verdict(rule, "FAIL", f"{exchange.label}: {exchange.describe()}: {problem}", contract)
    return Verdict(rule, "PASS", f"{exchange.label}: {summary(exchange)}", contract)


def judge_vector(name: str, exchanges: Sequence[tuple[bool, Exchange]]) -> Verdict:
    """Judge the answers to one request vector: (sent with our key?, exchange) pairs.

    Our key: any decodable 200 (a node, or "not mine" for arguments it does not take); another plugin's
    key: `200 {}` as `foreign_problem` says. An error status, no answer or an undecodable body FAILs.
    """
    seen = []
    for own, exchange in exchanges:
        if not own:
            problem = foreign_problem(exchange)
        elif exchange.status == 403:
            problem = "403 with the token given: it refuses the agent's token"
        elif exchange.status != 200:
            problem = agent_outcome(exchange)
        else:
            problem = exchange.decoded()[1]
        if problem:
            saw = f"{exchange.label}: {exchange.describe()}: {problem}"
            return Verdict(f"vector:{name}", "FAIL", saw, C_VECTOR)
        seen.append(f"{exchange.label}: {summary(exchange)}")
    return Verdict(f"vector:{name}", "PASS", "; ".join(seen), C_VECTOR)


def judge_tolerance(base: Exchange, extended: Exchange) -> Verdict:
    """Compare the answer to a body with unknown fields (`extended`) with the plain body's (`base`).

    FAIL when it is not a decodable 200; WARN when its phase differs from the plain body's.
    """
    if extended.status != 200:
        saw = f"{extended.label}: {extended.describe()}: {agent_outcome(extended)}"
        return Verdict("unknown-fields", "FAIL", saw, C_UNKNOWN)
    problem = extended.decoded()[1]
    if problem:
        return Verdict(
            "unknown-fields", "FAIL", f"{extended.label}: {extended.describe()}: {problem}", C_UNKNOWN
        )
    before = (base.node() or {}).get("phase")
    after = (extended.node() or {}).get("phase")
    if before != after:
        saw = (
            f"{extended.label}: {summary(extended)}, but {base.label}: {summary(base)}: the fields changed it"
        )
        return Verdict("unknown-fields", "WARN", saw, C_UNKNOWN)
    return Verdict("unknown-fields", "PASS", f"{extended.label}: {summary(extended)}", C_UNKNOWN)


def judge_concurrency(
    alone: Exchange,
    calls: Sequence[Exchange],
    total: float,
    probe: tuple[Exchange, Exchange] | None,
    limits: Limits,
    *,
    what: str,
) -> Verdict:
    """Judge `AGENT_WORKERS` calls sent at once (`calls`, in `total` seconds) and the stall probe.

    `alone`: one call by itself, for comparison. `probe`: (a call sent while another request was still
    arriving, that other request), None when it could not run. FAIL when a call timed out or got an error
    status the agent does not retry (403 is the token rules' business). WARN, each reason said: calls
    refused, reset or answered 503 (the agent retries those, `plugin.go`), a server that answers one
    connection at a time (the probe's call got no answer within `limits.stall_wait`), or calls that took
    about as long as one after the other.
    """
    timing = (
        f"{len(calls)} calls of {what} at once took {_duration(total)}, one alone {_duration(alone.seconds)}"
    )
    for call in calls:
        if (call.status is None and call.error == "timed out") or call.status not in (None, 200, 403, 503):
            answered = sum(c.status is not None for c in calls)
            saw = (
                f"{answered} of {len(calls)} answered; {call.label}: {call.describe()}: {agent_outcome(call)}"
            )
            return Verdict("concurrency", "FAIL", f"{timing}; {saw}", C_CONCURRENCY)
    warnings = []
    transient = [c for c in calls if c.status in (None, 503)]
    if transient:
        first = transient[0]
        warnings.append(
            f"{len(transient)} of {len(calls)} got no answer or 503 ({first.label}: {first.describe()}); the "
            "agent retries those as transient, after 1 s"
        )
    if probe is not None and probe[0].status is None:
        warnings.append(
            "it serves one connection at a time: while a request's body was still arriving, another call got "
            f"no answer within {_duration(limits.stall_wait)} (the incomplete one, once sent: "
            f"{summary(probe[1])}); under the agent's 16 workers, calls wait for each other toward its 30 s "
            "timeout"
        )
    elif alone.seconds >= 0.05 and total > alone.seconds * len(calls) / 2:
        warnings.append("they seem to run one at a time (a lock, or one worker)")
    if warnings:
        return Verdict("concurrency", "WARN", f"{timing}; " + "; ".join(warnings), C_CONCURRENCY)
    saw = f"all answered; {timing}"
    if probe is not None:
        saw += f"; a call was answered in {_duration(probe[0].seconds)} while another request was incomplete"
    return Verdict("concurrency", "PASS", saw, C_CONCURRENCY)


def judge_answer_time(exchanges: Sequence[Exchange], limits: Limits) -> Verdict:
    """FAIL when a call of our key timed out; WARN when the slowest answer took over `limits.slow_answer`."""
    for exchange in exchanges:
        if exchange.status is None and exchange.error == "timed out":
            saw = f"{exchange.label}: {exchange.describe()}: {agent_outcome(exchange)}"
            return Verdict("answer-time", "FAIL", saw, C_ANSWER_TIME)
    answered = [e for e in exchanges if e.status is not None]
    if not answered:
        return Verdict("answer-time", "WARN", "no call of its own key was answered", C_ANSWER_TIME)
    slowest = max(answered, key=lambda e: e.seconds)
    saw = f"slowest of {len(answered)} answers: {slowest.label}, {summary(slowest)}"
    if slowest.seconds > limits.slow_answer:
        return Verdict("answer-time", "WARN", f"{saw}: answer Running + requeue, poll later", C_ANSWER_TIME)
    return Verdict("answer-time", "PASS", saw, C_ANSWER_TIME)


def judge_bad_requests(tries: Sequence[Exchange], after: Exchange) -> Verdict:
    """Whatever `tries` got, PASS when a foreign-key call `after` them is still answered `200 {}`."""
    seen = "; ".join(f"{e.label}: {e.describe()}" for e in tries)
    problem = foreign_problem(after)
    if problem:
        saw = f"{seen}; then {after.label}: {after.describe()}: {problem}: the bad requests broke it"
        return Verdict("bad-requests", "FAIL", saw, C_BAD)
    return Verdict("bad-requests", "PASS", f"{seen}; then {after.label}: {after.describe()}", C_BAD)


def judge_start(first: Exchange, seconds: float, limits: Limits) -> Verdict:
    """Judge the `seconds` from launch to the first answer (`first`), by `limits.start_warn`/`start_fail`."""
    took = _duration(seconds)
    if first.status is None:
        return Verdict("slow-start", "FAIL", f"no answer within {took} of launch: {first.error}", C_START)
    saw = f"first answer {took} after launch ({first.describe()})"
    if seconds > limits.start_fail:
        return Verdict("slow-start", "FAIL", f"{saw}: the agent's first calls fail before that", C_START)
    if seconds > limits.start_warn:
        return Verdict("slow-start", "WARN", f"{saw}: close to the agent's patience (about 15 s)", C_START)
    return Verdict("slow-start", "PASS", saw, C_START)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return _clip(" ".join(text.split()), 80) if text else "(empty body)"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def judge_token_user(security_context: Mapping[str, Any] | None) -> Verdict:
    """Judge whether the sidecar, run as its `securityContext` says in Argo's agent pod, reads its token.

    PASS for uid 8737 (the file's owner) or gid 0 (its group); FAIL for another uid and gid (every call
    would get 503); WARN for another uid without `runAsGroup`, which the image's /etc/passwd decides
    (`token_access.security_context_problem`).
    """
    uid, gid = container_identity(security_context)
    problem = security_context_problem(security_context)
    if problem is None:
        who = "the token file's owner" if uid == AGENT_UID else "in the token file's group"
        shown = f"uid {uid}" + ("" if gid is None else f", gid {gid}")
        return Verdict("token-user", "PASS", f"the sidecar runs as {shown}, {who}", C_TOKEN_USER)
    return Verdict("token-user", "WARN" if gid is None else "FAIL", problem, C_TOKEN_USER)
